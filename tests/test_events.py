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
    assert ours.stats["events_by"] == ref.stats["events_by"] and ours.stats["clock_by"] == ref.stats["clock_by"]
    assert ours.settle["mode"] == "events"
    assert _max_abs(ours.state.tension, ref.state.tension) < 1e-12
    g_ref = read_gradients(system, ref.state, batch).parameters
    g_ours = read_gradients(system, ours.state, batch).parameters
    for k in g_ref:
        assert np.linalg.norm(g_ours[k] - g_ref[k]) <= 1e-9 * np.linalg.norm(g_ref[k])


def test_events_per_sender_and_the_clock_driven_count(case):
    system, batch = case
    r = simulate_events(system, batch, threshold=1e-3, dt=0.05)
    by, clock, steps = r.stats["events_by"], r.stats["clock_by"], r.settle["steps"]
    assert sum(by.values()) == sum(r.stats["events"].values()) and by.keys() == clock.keys()
    assert sum(v for k, v in by.items() if k.startswith("backward")) == r.stats["events"]["backward"]
    for p in system.populations:
        assert clock[f"forward {p.name}"] == steps * batch.size * p.size
        for k, t in enumerate(p.terms):
            if system.is_population(t.source):
                assert clock[f"backward {p.name}[{k}]"] == steps * batch.size * p.size
    assert all(0 < by[k] < clock[k] for k in by)  # events: fewer messages than every step, but some
    # theta = 0: every change fires: the populations send near every step (a constant input once)
    r0 = simulate_events(system, batch, threshold=0.0, dt=0.05, initial="random", seed=1)
    pops = [k for k in r0.stats["events_by"] if k != "forward x"]
    assert 0.9 < sum(r0.stats["events_by"][k] for k in pops) / sum(r0.stats["clock_by"][k] for k in pops) <= 1.0
    assert r0.stats["events_by"]["forward x"] == batch.size * 3


def test_verify_reports_and_prints_the_events(tmp_path, capsys):
    import json

    from hwbp.cli import main
    from hwbp.io import save_model

    save_model(GRAPH, tmp_path / "m.hwbp")
    code = main(["verify", str(tmp_path / "m.hwbp"), "--loss", "ce", "--mode", "continuous", "--event-threshold",
                 "1e-3", "--dt", "0.05", "--random-batch", "2", "--report", str(tmp_path / "r.json")])
    assert code in (0, 1)
    out = capsys.readouterr().out
    ev = json.loads((tmp_path / "r.json").read_text())["events"]
    total = ev["total"]
    assert 0 < total["ratio"] < 1 and total["events"] == pytest.approx(sum(m["events"] for m in ev["per_sample"].values()))
    assert "events sent (clock-driven: every value every step)" in out
    assert any(line.startswith("total") and f"{total['ratio']:.3g}" in line for line in out.splitlines())
    code = main(["verify", str(tmp_path / "m.hwbp"), "--loss", "ce", "--random-batch", "2", "--report",
                 str(tmp_path / "plain.json")])
    assert "events" not in json.loads((tmp_path / "plain.json").read_text())
    assert "events sent" not in capsys.readouterr().out
