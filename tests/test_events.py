"""Event-driven (sigma-delta) messaging: the reference rule (hwbp.sim.events) and the
Brian2 implementation with Brian2 events agree event for event; theta -> 0 converges
to the continuous run."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_batch
from hwbp.backend import get_backend
from hwbp.errors import ConfigError
from hwbp.lower.lowerer import lower
from hwbp.models import random_resmlp
from hwbp.oracle.backprop import exact_gradients
from hwbp.sim.simulate import simulate_events
from hwbp.sim.simulate import simulate
from hwbp.targets.brian2.backend import Brian2Backend
from hwbp.verify.compare import compare
from hwbp.verify.readout import read_gradients

GRAPH = random_resmlp(3, 4, 3, 1, activation="tanh", seed=2).with_loss("ce")


@pytest.fixture(scope="module")
def case():
    return lower(GRAPH), make_batch(GRAPH, 2, seed=4, loss="ce")


def _max_abs(a, b):
    return max(float(np.abs(a[n] - b[n]).max()) for n in b)


def test_threshold_zero_is_the_continuous_run(case):
    system, batch = case
    ev = simulate_events(system, batch, threshold=0.0, dt=0.05, initial="random", seed=1)
    cont = simulate(system, batch, mode="continuous", solver="exponential", dt=0.05, initial="random", seed=1)
    assert _max_abs(ev.state.tension, cont.state.tension) < 1e-12
    assert _max_abs(ev.state.mean, cont.state.mean) < 1e-12
    assert ev.settle["steps"] == cont.settle["steps"]


def test_error_shrinks_and_events_grow_as_threshold_falls(case):
    system, batch = case
    exact = exact_gradients(GRAPH, batch)
    errs, events = [], []
    for theta in (1e-1, 1e-2, 1e-3, 1e-5):
        r = simulate_events(system, batch, threshold=theta, dt=0.05)
        errs.append(compare(read_gradients(system, r.state, batch), exact).max_rel_err)
        events.append(r.stats["events_per_sample"])
    assert all(a > b for a, b in zip(errs, errs[1:])) and errs[-1] < 1e-3 < errs[0]
    assert all(a < b for a, b in zip(events, events[1:]))


def test_reference_backend_hook_and_errors(case):
    system, batch = case
    be = get_backend("reference")
    r = be.simulate(system, batch, {"mode": "continuous", "event_threshold": 1e-3, "dt": 0.05})
    assert r.settle["mode"] == "events" and r.stats["events"]["forward"] > 0
    with pytest.raises(ConfigError, match="--event-threshold needs --solver"):
        be.options({"mode": "continuous", "event_threshold": 1e-3, "solver": "rk4"})
    with pytest.raises(ConfigError, match="applies to --mode continuous"):
        be.options({"event_threshold": 1e-3})
    with pytest.raises(ConfigError, match=">= 0"):
        Brian2Backend().options({"event_threshold": -1.0})


@pytest.mark.parametrize("theta", [1e-1, 1e-3, 1e-6])
def test_brian2_events_match_reference_event_for_event(case, theta, tmp_path_factory):
    system, batch = case
    ref = simulate_events(system, batch, threshold=theta, dt=0.05, initial="random", seed=1)
    ours = Brian2Backend().simulate(system, batch, {"event_threshold": theta, "dt": 0.05,
                                                    "build_dir": str(tmp_path_factory.getbasetemp() / "b2ev")},
                                    initial="random", seed=1)
    assert ours.stats["events"] == ref.stats["events"]
    assert ours.settle["mode"] == "events"
    assert _max_abs(ours.state.tension, ref.state.tension) < 1e-12
    g_ref = read_gradients(system, ref.state, batch).parameters
    g_ours = read_gradients(system, ours.state, batch).parameters
    for k in g_ref:
        assert np.linalg.norm(g_ours[k] - g_ref[k]) <= 1e-9 * np.linalg.norm(g_ref[k])
