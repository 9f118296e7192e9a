"""The lava backend, float ProcessModels: exact backprop after 2L unit steps, the
continuous-time (dt < 1) trajectory equal to the reference simulator's Euler, gate
signals from the processes, independent samples, and a clean timeout."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from hwbp.backend import get_backend
from hwbp.errors import BackendError, ConfigError
from hwbp.lower import lower
from hwbp.models import random_mlp, random_resmlp
from hwbp.oracle import exact_gradients
from hwbp.sim import simulate
from hwbp.sim.kernel import Kernel
from hwbp.sim.simulate import gate_signals
from hwbp.targets.lava.backend import FLOAT_UNIT_STEP_RTOL
from hwbp.targets.lava.topology import term_table
from hwbp.verify import compare, read_gradients

from conftest import make_batch

#: dt < 1: the same Euler recursion in float64 in both simulators; products and sums
#: in another order leave round-off only (issue bound).
EULER_TRAJECTORY_ATOL = 1e-10
#: 2L - 1 steps from a random state: far from exact for generic weights.
NOT_YET = 1e-6


def _case(kind: str, depth: int, act: str, loss: str, seed: int, size: int = 3):
    if kind == "mlp":
        g = random_mlp([4] + [5] * (depth - 1) + [3], activation=act, seed=seed, gain=1.2)
    else:
        g = random_resmlp(4, 5, 3, depth - 2, activation=act, seed=seed)
    g = g.with_loss(loss)
    return g, lower(g), make_batch(g, size=size, seed=seed, loss=loss)


def _rel_err(g, system, batch, state) -> float:
    return compare(read_gradients(system, state, batch), exact_gradients(g, batch)).max_rel_err


@pytest.mark.parametrize("kind,depth,act,loss", [("mlp", 2, "tanh", "ce"), ("resmlp", 3, "sigmoid", "mse")])
def test_unit_step_exact_after_2L_not_before(kind: str, depth: int, act: str, loss: str) -> None:
    g, system, batch = _case(kind, depth, act, loss, seed=depth)
    lava = get_backend("lava")
    L = system.depth
    r = lava.simulate(system, batch, {"steps": 2 * L}, initial="random", seed=1)
    assert _rel_err(g, system, batch, r.state) <= FLOAT_UNIT_STEP_RTOL
    assert r.settle["steps"] == 2 * L and r.settle["lava_steps"] == 2 * L + 1
    early = lava.simulate(system, batch, {"steps": 2 * L - 1}, initial="random", seed=1)
    assert _rel_err(g, system, batch, early.state) > NOT_YET


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "resmlp"])
def test_unit_step_exact_depth_8(kind: str) -> None:
    g, system, batch = _case(kind, 8, "tanh", "ce", seed=8, size=2)
    r = get_backend("lava").simulate(system, batch, {}, initial="random", seed=2)
    assert _rel_err(g, system, batch, r.state) <= FLOAT_UNIT_STEP_RTOL


def test_gates_are_the_processes_own_and_state_matches_reference() -> None:
    g, system, batch = _case("resmlp", 2, "tanh", "mse", seed=5)
    r = get_backend("lava").simulate(system, batch, {"steps": 3}, initial="random", seed=4)
    ref = simulate(system, batch, mode="unit-step", steps=3, initial="random", seed=4)
    weighted = {(p.name, k) for p in system.populations for k, t in enumerate(p.terms) if t.weight is not None}
    assert set(r.state.gates) == weighted
    for n in ref.state.mean:
        np.testing.assert_allclose(r.state.mean[n], ref.state.mean[n], rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.state.tension[n], ref.state.tension[n], rtol=0, atol=1e-12)
    kernel = Kernel(system, batch)
    names = [p.name for p in system.populations]
    expect = gate_signals(kernel, [r.state.mean[n] for n in names], [r.state.tension[n] for n in names])
    for key in weighted:
        np.testing.assert_allclose(r.state.gates[key], expect[key], rtol=0, atol=1e-12)
        assert np.any(r.state.gates[key] != 0)


def test_continuous_trajectory_equals_reference_euler() -> None:
    g, system, batch = _case("mlp", 3, "tanh", "ce", seed=7)
    lava = get_backend("lava")
    for steps in (5, 17):
        r = lava.simulate(system, batch, {"dt": 0.25, "steps": steps}, initial="random", seed=3)
        ref = simulate(system, batch, mode="continuous", solver="euler", dt=0.25, duration=steps * 0.25,
                       initial="random", seed=3)
        assert r.settle["mode"] == "continuous" and r.state.t == pytest.approx(ref.state.t)
        for n in ref.state.mean:
            np.testing.assert_allclose(r.state.mean[n], ref.state.mean[n], rtol=0, atol=EULER_TRAJECTORY_ATOL)
            np.testing.assert_allclose(r.state.tension[n], ref.state.tension[n], rtol=0,
                                       atol=EULER_TRAJECTORY_ATOL)
        assert np.abs(r.state.tension[names_last(system)]).max() > 1e-3  # a non-trivial state


def names_last(system) -> str:
    return system.populations[-1].name


def test_samples_are_independent_and_runs_reset() -> None:
    """Each row is its own network copy; a second run starts from its own initial state."""
    g, system, batch = _case("mlp", 2, "tanh", "mse", seed=9, size=3)
    lava = get_backend("lava")
    art = lava.compile(system, lava.options({}))
    whole = lava.run(art, batch, initial="zeros")
    again = lava.run(art, batch, initial="zeros")
    one = lava.run(art, _row(batch, 1), initial="zeros")
    for n in whole.state.mean:
        assert np.array_equal(whole.state.tension[n], again.state.tension[n])
        np.testing.assert_allclose(one.state.tension[n][0], whole.state.tension[n][1], rtol=0, atol=1e-14)


def _row(batch, i):
    from hwbp.types import Batch

    return Batch({k: v[i:i + 1] for k, v in batch.x.items()}, batch.y[i:i + 1])


def test_options_are_checked() -> None:
    lava = get_backend("lava")
    for bad, match in [({"dt": 1.5}, "--dt"), ({"precision": "half"}, "valid: float, fixed"),
                       ({"steps": -1}, "--steps"), ({"timeout_s": 0.0}, "--timeout")]:
        with pytest.raises(ConfigError, match=match):
            lava.options(bad)


@pytest.mark.slow
def test_hang_times_out_and_leaves_no_process() -> None:
    """A population model that receives before it sends deadlocks the loop: the run
    stops at the time limit with a clear error and kills what it started."""
    from hwbp.targets.lava.compat import import_lava

    import_lava()
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS, PopulationProcess, PyPopulationFloat
    from hwbp.targets.lava.network import build_network, run_network
    from hwbp.targets.lava.run_float import float_spec
    from hwbp.initial import initial_state

    class ReceiveFirst(PyPopulationFloat):
        def run_spk(self) -> None:
            self.fwd_in.recv()
            super().run_spk()

    g, system, batch = _case("mlp", 2, "tanh", "mse", seed=1, size=1)
    spec = float_spec(system, batch, initial_state(system, batch, "zeros"), 2, 1.0)
    net = build_network(term_table(system), spec)
    models = {**FLOAT_MODELS, PopulationProcess: ReceiveFirst}
    before = set(mp.active_children())
    with pytest.raises(BackendError, match="did not finish within 3 s"):
        run_network(net, 3, tag="floating_pt", models=models, timeout_s=3.0, read=lambda n: None)
    assert set(mp.active_children()) - before == set()


def test_conformance_profiles_run() -> None:
    """Each declared profile meets its own bound on a small case (the full case list is
    the shared conformance suite's)."""
    from hwbp.testing import ConformanceCase

    lava = get_backend("lava")
    g, system, batch = _case("mlp", 2, "tanh", "ce", seed=11)
    case = ConformanceCase("mlp", "tanh", "ce", 2, 3, "random")
    deep = ConformanceCase("mlp", "sigmoid", "ce", 8, 3, "random")
    for prof in lava.conformance():
        assert prof.unsupported is None or prof.unsupported(case) is None
        r = lava.simulate(system, batch, dict(prof.options), initial="random", seed=1)
        assert _rel_err(g, system, batch, r.state) <= prof.max_rel_err, prof.name
    fixed = [p for p in lava.conformance() if p.options.get("precision") == "fixed"]
    assert fixed and "resolution" in fixed[0].unsupported(deep)


def test_continuous_default_duration_converges() -> None:
    """dt < 1 with the default duration max(12 L, 24) tau: the Euler recursion has the
    exact fixed point, and the transient is gone to the named bound."""
    from hwbp.targets.lava.backend import FLOAT_EULER_RTOL

    g, system, batch = _case("resmlp", 2, "sigmoid", "mse", seed=12, size=1)
    r = get_backend("lava").simulate(system, batch, {"dt": 0.5}, initial="random", seed=3)
    assert r.settle["steps"] == 48 and r.settle["duration_tau"] == 24.0
    assert _rel_err(g, system, batch, r.state) <= FLOAT_EULER_RTOL


def test_a_failing_model_stops_the_run_early() -> None:
    """A ProcessModel that raises is reported by its error at once, not at the time limit."""
    import time

    from hwbp.targets.lava.compat import import_lava

    import_lava()
    from hwbp.initial import initial_state
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS, PyTermFloat, TermProcess
    from hwbp.targets.lava.network import build_network, run_network
    from hwbp.targets.lava.run_float import float_spec

    class Broken(PyTermFloat):
        def run_spk(self) -> None:
            raise ZeroDivisionError("broken synapse")

    g, system, batch = _case("mlp", 2, "tanh", "mse", seed=1, size=1)
    net = build_network(term_table(system), float_spec(system, batch, initial_state(system, batch, "zeros"), 2, 1.0))
    before = set(mp.active_children())
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="ZeroDivisionError: broken synapse"):
        run_network(net, 3, tag="floating_pt", models={**FLOAT_MODELS, TermProcess: Broken}, timeout_s=60.0,
                    read=lambda n: None)
    assert time.monotonic() - t0 < 30
    assert set(mp.active_children()) - before == set()
