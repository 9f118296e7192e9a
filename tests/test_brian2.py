"""The brian2 backend: equations, agreement with the reference simulator (same scheme),
with exact backprop (conformance), read-back through the contract, options."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_batch
from hwbp.backend import backend_names, get_backend
from hwbp.errors import ConfigError
from hwbp.lower.lowerer import lower
from hwbp.models import random_mlp, random_resmlp
from hwbp.oracle.backprop import exact_gradients
from hwbp.sim.simulate import simulate
from hwbp.targets.brian2.backend import ORACLE_RTOL, REFERENCE_RTOL, Brian2Backend, Brian2Options
from hwbp.targets.brian2.model import build_model
from hwbp.verify.compare import compare
from hwbp.verify.readout import read_gradients

import brian2  # noqa: F401  (a pinned test dependency: missing is a failure, never a skip)

REF_SOLVER = {"euler": "euler", "exponential_euler": "exponential", "rk4": "rk4"}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("brian2_build"))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _systems():
    mlp = random_mlp([3, 4, 2], activation="tanh", seed=1).with_loss("mse")
    res = random_resmlp(3, 4, 3, 1, activation="sigmoid", seed=2).with_loss("ce")
    return {"mlp-tanh-mse": (mlp, "mse"), "resmlp-sigmoid-ce": (res, "ce")}


def test_registered_and_options():
    assert "brian2" in backend_names()
    be = get_backend("brian2")
    assert isinstance(be, Brian2Backend)
    assert be.options({"codegen": "cython", "solver": "rk4"}).method == "rk4"
    assert be.options({"solver": "exponential"}).method == "exponential_euler"
    with pytest.raises(ConfigError, match="--codegen"):
        be.options({"codegen": "fortran"})
    with pytest.raises(ConfigError, match="--dt"):
        Brian2Options(dt=0.0)
    with pytest.raises(ConfigError, match="no option 'mode'"):
        be.options({"mode": "steady"})


def test_equations_one_weight_per_synapse_and_deterministic():
    graph = random_resmlp(3, 4, 3, 2, activation="tanh", seed=0).with_loss("ce")
    system = lower(graph)
    model = build_model(system)
    assert build_model(lower(graph)).groups == model.groups  # same text for the same system
    dense = [s for s in model.synapses if s.kind == "dense"]
    assert len(dense) == len(system.tied)
    for s in dense:
        lines = s.model.splitlines()
        assert lines.count("w : 1 (constant)") == 1
        summed = [ln for ln in lines if ln.endswith("(summed)")]
        assert all(" = w * " in ln for ln in summed)
        assert any(ln.startswith(f"{s.forward_var}_post") for ln in summed)
        if s.backward_var is not None:  # the backward sum goes to the presynaptic side
            assert any(ln.startswith(f"{s.backward_var}_pre = w * gate") for ln in summed)
    skips = [s for s in model.synapses if s.kind == "one_to_one"]
    assert len(skips) == 2 and all("w" not in s.model.split() for s in skips)
    out = model.group(system.loss.population)
    assert "beta * (1/Z - target)" in out.equations
    assert any(s.kind == "softmax" for s in model.synapses)


def _compare_with_reference(case: str, solver: str, dt: float, build_dir: str, duration: float | None = None
                            ) -> float:
    """Largest relative difference of means, tensions and gates from the reference
    simulator's continuous mode with the same solver and dt, at ``duration`` (default:
    the default duration 12L tau)."""
    graph, loss = _systems()[case]
    system = lower(graph)
    batch = make_batch(graph, 3, seed=5, loss=loss)
    ours = Brian2Backend().simulate(system, batch, {"solver": solver, "dt": dt, "build_dir": build_dir,
                                                    "duration": duration}, initial="random", seed=3)
    ref = simulate(system, batch, mode="continuous", solver=REF_SOLVER[solver], dt=dt, initial="random", seed=3,
                   duration=duration)
    assert ours.state.t == pytest.approx(ref.state.t) == (duration or 12 * system.depth)
    assert ours.state.steps == ref.state.steps
    assert set(ours.state.gates) == set(ref.state.gates) and ours.state.gates
    errs = [_rel(getattr(ours.state, f)[n], getattr(ref.state, f)[n]) for f in ("mean", "tension")
            for n in ref.state.tension]
    return max(errs + [_rel(ours.state.gates[k], e) for k, e in ref.state.gates.items()])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(_systems()))
@pytest.mark.parametrize("solver", ["euler", "exponential_euler"])
def test_matches_reference_continuous(case, solver, build_dir):
    """Euler and exponential Euler are the reference's schemes step for step: 1e-9
    relative at t = 12L tau (measured ~1e-15)."""
    assert _compare_with_reference(case, solver, 0.05, build_dir) < REFERENCE_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(_systems()))
def test_rk4_matches_reference_at_default_dt(case, build_dir):
    """RK4 at dt = 0.01 tau (the default of the reference), at t = 12L tau: the classical
    RK4 of the whole network, one stage per clock tick (measured ~2e-14)."""
    assert _compare_with_reference(case, "rk4", 0.01, build_dir) < REFERENCE_RTOL


@pytest.mark.parametrize("solver", ["euler", "exponential_euler"])
def test_euler_schemes_are_the_reference_mid_transient(solver, build_dir):
    """Far from settled (t = 3 tau): the final means, tensions and gates of the reference's
    scheme (the closing tick re-sums the inputs at the final state)."""
    assert _compare_with_reference("resmlp-sigmoid-ce", solver, 0.1, build_dir, duration=3.0) < REFERENCE_RTOL


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_traced_gates_are_those_of_the_traced_state(solver, build_dir):
    """Every traced state, gates included, is the reference's at the same time."""
    graph, loss = _systems()["resmlp-sigmoid-ce"]
    system = lower(graph)
    batch = make_batch(graph, 2, seed=5, loss=loss)
    opts = {"solver": solver, "dt": 0.1, "duration": 2.0, "build_dir": build_dir, "trace_every": 5}
    ours = Brian2Backend().simulate(system, batch, opts, initial="random", seed=3, trace=True).trace
    ref = simulate(system, batch, mode="continuous", solver=REF_SOLVER[solver], dt=0.1, duration=2.0,
                   initial="random", seed=3, trace=True).trace
    assert np.allclose(ours.t, np.arange(0, 2.01, 0.5))
    for k, t in enumerate(ours.t):
        j = int(np.argmin(np.abs(ref.t - t)))
        assert abs(ref.t[j] - t) < 1e-9
        for key, g in ref.gates.items():
            assert _rel(ours.gates[key][k], g[j]) < REFERENCE_RTOL, (t, key)
        for name in ref.tension:
            assert _rel(ours.tension[name][k], ref.tension[name][j]) < REFERENCE_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(_systems()))
def test_rk4_is_the_reference_scheme_mid_transient(case, build_dir):
    """At t = 3 tau, far from settled, with a coarse step (0.1 tau): the same RK4 as the
    reference step for step (measured ~5e-16).  Brian2's built-in rk4, which holds the
    summed inputs over the stages, is first order across groups: it differs here by
    3.6e-2 and 5.3e-2, as much as euler does (4.8e-2, 4.6e-2)."""
    assert _compare_with_reference(case, "rk4", 0.1, build_dir, duration=3.0) < REFERENCE_RTOL


def test_agrees_with_oracle_and_reads_its_own_gates(build_dir):
    graph, loss = _systems()["resmlp-sigmoid-ce"]
    system = lower(graph, beta=0.5)
    batch = make_batch(graph, 2, seed=7, loss=loss)
    res = Brian2Backend().simulate(system, batch, {"build_dir": build_dir, "dt": 0.05}, initial="forward-manifold")
    assert res.state.t == 36.0  # L = 3: 12 L tau
    weighted = {(p.name, k) for p in system.populations for k, t in enumerate(p.terms) if t.weight is not None}
    assert set(res.state.gates) == weighted
    cmp = compare(read_gradients(system, res.state, batch), exact_gradients(graph, batch))
    assert cmp.max_rel_err < ORACLE_RTOL and cmp.min_cosine > 1 - 1e-9
    # negative control: half the time is far from settled and must fail the same bound
    short = Brian2Backend().simulate(system, batch, {"build_dir": build_dir, "dt": 0.05, "duration": 4.0},
                                     initial="random")
    assert compare(read_gradients(system, short.state, batch), exact_gradients(graph, batch)).max_rel_err > 1e-3


def test_trace_time_in_units_of_tau(build_dir):
    graph, loss = _systems()["mlp-tanh-mse"]
    system = lower(graph)
    batch = make_batch(graph, 2, seed=1, loss=loss)
    res = Brian2Backend().simulate(system, batch, {"build_dir": build_dir, "dt": 0.05, "duration": 6.0,
                                                   "tau_s": 1e-3, "trace_every": 10}, initial="zeros", trace=True)
    tr = res.trace
    assert tr.t[0] == 0.0 and tr.t[-1] == 6.0
    np.testing.assert_allclose(np.diff(tr.t), 0.5, rtol=1e-9)
    ref = simulate(system, batch, mode="continuous", solver="exponential", dt=0.05, duration=6.0, trace=True,
                   trace_every=10)
    assert len(tr) == len(ref.trace)
    for name in ref.trace.tension:
        assert tr.tension[name].shape == ref.trace.tension[name].shape
        assert _rel(tr.tension[name], ref.trace.tension[name]) < REFERENCE_RTOL
    assert tr.gates and all(g.shape[0] == len(tr) for g in tr.gates.values())


def test_no_build_files_in_cwd_or_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    graph, loss = _systems()["mlp-tanh-mse"]
    system = lower(graph)
    be = Brian2Backend()
    be.simulate(system, make_batch(graph, 1, loss=loss), {"duration": 1.0, "dt": 0.1})
    assert list(tmp_path.iterdir()) == []
    assert be.build_dir(be.options({})).is_dir()


def test_cli_verify_report(tmp_path, build_dir):
    import json

    from hwbp.cli import main
    from hwbp.io import save_model

    graph = random_mlp([3, 4, 2], activation="softplus", seed=3, name="small")
    save_model(graph, tmp_path / "small.hwbp")
    report = tmp_path / "b2.json"
    code = main(["verify", str(tmp_path / "small.hwbp"), "--backend", "brian2", "--random-batch", "2",
                 "--codegen", "numpy", "--dt", "0.05", "--duration", "30", "--build-dir", build_dir,
                 "--report", str(report)])
    assert code == 0
    rep = json.loads(report.read_text())
    assert rep["schema"] == "hwbp.verify/1" and rep["backend"] == "brian2" and rep["passed"]
    assert rep["settle"]["duration_tau"] == 30.0 and rep["settle"]["codegen"] == "numpy"
    assert set(rep["readout"].values()) == {"gate"}
    assert rep["max_rel_err"] < ORACLE_RTOL
    # a flag of another backend is refused with a one-line error (exit 2)
    assert main(["verify", str(tmp_path / "small.hwbp"), "--backend", "brian2", "--mode", "steady"]) == 2


@pytest.mark.parametrize("activation", ["elu", "silu", "softsign", "hardtanh", "relu6"])
def test_further_activations_match_reference(activation, build_dir):
    graph = random_mlp([3, 4, 2], activation=activation, seed=2, gain=1.5).with_loss("mse")
    system = lower(graph)
    batch = make_batch(graph, 2, seed=3)
    opts = {"dt": 0.1, "duration": 6.0, "build_dir": build_dir}
    ours = Brian2Backend().simulate(system, batch, opts, initial="random", seed=2)
    ref = simulate(system, batch, mode="continuous", solver="exponential", dt=0.1, duration=6.0, initial="random",
                   seed=2)
    for key, e in ref.state.gates.items():
        assert _rel(ours.state.gates[key], e) < REFERENCE_RTOL
    for name in ref.state.tension:
        assert _rel(ours.state.tension[name], ref.state.tension[name]) < REFERENCE_RTOL


def test_unsupported_term_features_are_one_line_errors():
    from pathlib import Path

    from hwbp.importers import load_onnx

    cnn = load_onnx(Path(__file__).resolve().parent.parent / "examples" / "cnn_digits.onnx").with_loss("ce")
    with pytest.raises(ConfigError, match="backend 'brian2' does not realize the feature conv") as err:
        Brian2Backend().compile(lower(cnn), Brian2Options())
    assert "\n" not in str(err.value)


def test_source_side_activation_is_computed_by_the_source_group():
    """The depth studies' pre-activation layers: the source group computes phi(xbar) and
    phi'(xbar); the forward sum reads phi, the backward sum is gated by phi' on the
    source side; the gain multiplies w both ways."""
    from hwbp.models import depth_resmlp

    system = lower(depth_resmlp(5, 4, 3, 3, activation="tanh", seed=1).with_loss("mse"))
    model = build_model(system)
    mid = model.group(system.populations[0].name)
    assert "phi0 = tanh(xbar) : 1  # source-side tanh" in mid.equations
    assert "dphi0 = (1 - phi0**2) : 1" in mid.equations
    syn = [s for s in model.synapses if s.pre == mid.name and s.kind == "dense"][0]
    gain = system.populations[1].terms[1].gain
    assert f"a1_post = {gain!r} * w * phi0_pre : 1 (summed)" in syn.model
    assert f"_pre = {gain!r} * w * gate1_post * dphi0_pre : 1 (summed)" in syn.model
    with pytest.raises(ConfigError, match="source-side activation .tanh. is not realized with --event-threshold"):
        build_model(system, events=True)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "clip"])
def test_more_activations_match_the_reference(activation, build_dir):
    """gelu (through hwbp_erfc: Brian2 has no erf), gelu_tanh and clip
    with its two bounds: the reference's exponential Euler step for step, mid-transient."""
    import dataclasses

    graph = random_mlp([4, 5, 3], activation="relu6", seed=1, gain=1.5).with_loss("mse")
    system = lower(graph)
    hidden = system.populations[0]
    term = dataclasses.replace(hidden.terms[0], activation=activation, alpha=-0.4, high=0.6 if activation == "clip"
                               else None)
    system = dataclasses.replace(system, populations=(dataclasses.replace(hidden, terms=(term,)),
                                                      *system.populations[1:]))
    batch = make_batch(graph, 3, seed=2, loss="mse")
    ours = Brian2Backend().simulate(system, batch, {"dt": 0.1, "duration": 5.0, "build_dir": build_dir},
                                    initial="random", seed=1).state
    ref = simulate(system, batch, mode="continuous", solver="exponential", dt=0.1, duration=5.0, initial="random",
                   seed=1).state
    for name in ref.tension:
        assert _rel(ours.tension[name], ref.tension[name]) < REFERENCE_RTOL
        assert _rel(ours.mean[name], ref.mean[name]) < REFERENCE_RTOL
    assert _rel(ours.gates[(hidden.name, 0)], ref.gates[(hidden.name, 0)]) < REFERENCE_RTOL
    if activation == "clip":  # both bounds are active somewhere, or the test would not test them
        z = batch.x["x"] @ system.parameters[term.weight].T * term.gain + system.parameters[term.bias]
        assert (z < -0.4).any() and (z > 0.6).any()
