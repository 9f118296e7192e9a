"""The one definition of the physics (hwbp.dynamics): the drive function agrees with
the reference kernel and with backprop, and every place that evaluates a term through
it handles every term feature: clip bounds, gains, source-side activations, structured
(layout) terms, batch normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_batch
from hwbp.initial import initial_state
from hwbp.cli import main
from hwbp.dynamics import drive, forward_pass, operands, term_backward, term_forward
from hwbp.errors import ConfigError
from hwbp.hardware import hardware_from_mapping, realize
from hwbp.hardware.compare import instance_gradients
from hwbp.io import save_model
from hwbp.ir import AvgPool, BatchNorm, Conv, Graph, Input
from hwbp.ir.nodes import Activation
from hwbp.lower.lowerer import lower
from hwbp.models import depth_resmlp, random_mlp
from hwbp.oracle.backprop import exact_gradients
from hwbp.sim.kernel import Kernel
from hwbp.sim.simulate import simulate, simulate_events
from hwbp.state import State
from hwbp.verify.compare import compare
from hwbp.verify.readout import read_gradients
from hwbp.verify.run import verify


def _bn_graph() -> Graph:
    rng = np.random.default_rng(1)
    conv = Conv("c", source="x", in_shape=(2, 4, 4), weight=rng.standard_normal((4, 1, 2, 2)),
                bias=rng.standard_normal(4), strides=(2, 1), pads=(1, 0, 0, 1), dilations=(1, 1), groups=2)
    act = Activation("a", source="c", function="tanh")
    bn = BatchNorm("bn", source="a", in_shape=conv.out_shape, weight=rng.uniform(0.5, 1.5, 4),
                   bias=rng.standard_normal(4), mean=rng.standard_normal(4), var=rng.uniform(0.5, 2, 4))
    pool = AvgPool("p", source="bn", in_shape=conv.out_shape, kernel=(2, 2), strides=(1, 1), pads=(0, 0, 1, 1),
                   count_include_pad=False)
    return Graph((Input("x", 32), conv, act, bn, pool), "p").with_loss("mse")


GRAPHS = {
    "depth_resmlp": depth_resmlp(3, 4, 2, 4, activation="tanh", seed=1).with_loss("mse"),
    "clip": random_mlp([3, 5, 4, 2], activation="clip", seed=2).with_loss("mse"),
    "batchnorm": _bn_graph(),
}


@pytest.fixture(params=sorted(GRAPHS))
def case(request):
    g = GRAPHS[request.param]
    return g, lower(g), make_batch(g, 3, seed=4)


def _max_rel(got: dict, want: dict) -> float:
    return max(float(np.linalg.norm(got[k] - want[k]) / max(np.linalg.norm(want[k]), 1e-300)) for k in want)


def test_drive_is_the_kernel_drive(case):
    g, system, batch = case
    st = initial_state(system, batch, "random", 3)
    d = drive(system, batch, st.mean, st.tension)
    k = Kernel(system, batch)
    names = [p.name for p in system.populations]
    fm, ft = k.drive([st.mean[n] for n in names], [st.tension[n] for n in names])
    for i, n in enumerate(names):
        np.testing.assert_allclose(d.forward[n], fm[i], rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(d.sensitivity[n], ft[i], rtol=1e-14, atol=1e-14)
    assert set(d.gates) == {(p.name, j) for p in system.populations for j, t in enumerate(p.terms) if t.weight}


def test_fixed_point_of_the_drive_is_backprop(case):
    """Iterating the drive 2L times (unit steps) gives backprop to round-off."""
    g, system, batch = case
    st = initial_state(system, batch, "random", 5)
    mean, tension = dict(st.mean), dict(st.tension)
    ops = operands(system)
    for _ in range(2 * system.depth):
        mean, tension, gates = drive(system, batch, mean, tension, ops=ops)
    gates = drive(system, batch, mean, tension, ops=ops).gates
    got = read_gradients(system, State(mean, tension, gates=gates), batch)
    assert _max_rel(got.parameters, exact_gradients(g, batch).parameters) < 1e-12
    fp = forward_pass(system, batch)
    for n in fp:
        np.testing.assert_allclose(mean[n], fp[n], rtol=1e-13, atol=1e-14)


def test_term_pieces_match_finite_differences():
    """term_backward is the transpose of the derivative of term_forward (gain, φ, layout)."""
    system = lower(GRAPHS["depth_resmlp"])
    rng = np.random.default_rng(0)
    for (p, k), op in operands(system).items():
        if op.weight is None:
            continue
        u = rng.standard_normal((2, op.weight.shape[1]))
        e = rng.standard_normal((2, op.weight.shape[0]))
        r = term_forward(op, u)
        gate = np.ones_like(r.a) if r.gate is None else r.gate
        back = term_backward(op, gate * e, r.pre_gate)
        du = rng.standard_normal(u.shape) * 1e-6
        dy = term_forward(op, u + du).y - term_forward(op, u - du).y
        assert abs(np.sum(e * dy) / 2 - np.sum(back * du)) < 1e-9 * np.abs(back).sum() * 1e-6 + 1e-14


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_events_at_threshold_zero_are_the_continuous_run(name):
    """The event rule evaluates terms through hwbp.dynamics: gains, source-side φ,
    layouts, batch norm and clip bounds included (a wrong rule gave rel_err ~950 on
    the depth model and crashed on batch norm)."""
    g = GRAPHS[name]
    system, batch = lower(g), make_batch(g, 3, seed=4)
    ev = simulate_events(system, batch, threshold=0.0, dt=0.05, initial="random", seed=1)
    cont = simulate(system, batch, mode="continuous", solver="exponential", dt=0.05, initial="random", seed=1)
    for n in cont.state.tension:
        np.testing.assert_allclose(ev.state.tension[n], cont.state.tension[n], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ev.state.mean[n], cont.state.mean[n], rtol=0, atol=1e-12)
    assert ev.state.gates.keys() == cont.state.gates.keys()
    err = compare(read_gradients(system, ev.state, batch), exact_gradients(g, batch)).max_rel_err
    assert err < 1e-6  # the continuous run's Erlang tail at the default duration (CONTINUOUS_RTOL)


def test_event_threshold_on_the_depth_model_through_the_backend():
    """``--event-threshold 0`` on the reference backend: the depth model's gradients."""
    g = GRAPHS["depth_resmlp"]
    batch = make_batch(g, 3, seed=4)
    v = verify(g, batch, backend="reference", options={"mode": "continuous", "event_threshold": 0.0,
                                                         "dt": 0.05, "duration": 80.0})
    assert v.result.settle["mode"] == "events"
    assert v.comparison.max_rel_err < 1e-12


def test_hardware_comparison_on_a_clip_model():
    g = GRAPHS["clip"]
    system, batch = lower(g), make_batch(g, 3, seed=4)
    own = instance_gradients(system, batch)  # ideal: plain backprop, clip bounds included
    exact = exact_gradients(g, batch)
    assert _max_rel(own.parameters, exact.parameters) < 1e-13
    hw = hardware_from_mapping({"mismatch": {"sigma": 0.05, "correlation": 1.0}})
    v = verify(g, batch, backend="reference", hardware=hw, seed=3)
    assert v.report["hardware"]["own"]["max_rel_err"] < 1e-12  # credit for the instance's own function
    inst = realize(system, hw, 3)
    assert _max_rel(instance_gradients(inst, batch).parameters, exact.parameters) > 1e-4


def test_template_backend_realizes_clip_and_every_term_feature():
    for name in ("clip", "depth_resmlp", "batchnorm"):
        g = GRAPHS[name]
        v = verify(g, make_batch(g, 3, seed=4), backend="template", initial="random")
        assert v.passed and v.comparison.max_rel_err < 1e-12, name


@pytest.mark.parametrize("name", ["clip", "depth_resmlp"])
def test_cli_verify_event_threshold_zero(name, tmp_path: Path, capsys):
    path = tmp_path / f"{name}.hwbp"
    save_model(GRAPHS[name], path)
    rc = main(["verify", str(path), "--mode", "continuous", "--event-threshold", "0", "--dt", "0.05",
               "--duration", "80"])
    out = capsys.readouterr()
    assert rc == 0, out.err


def test_scipy_backend_from_outside_realizes_every_term_feature():
    """The outside backend (drive function + solve_ivp) on layouts, batch norm, clip
    and gains; cut short, it fails verification (negative control)."""
    for name in ("batchnorm", "clip", "depth_resmlp"):
        g = GRAPHS[name]
        v = verify(g, make_batch(g, 3, seed=4), backend="scipy", initial="random")
        assert v.passed and v.comparison.max_rel_err < 1e-6, name
    g = GRAPHS["depth_resmlp"]
    short = verify(g, make_batch(g, 3, seed=4), backend="scipy", options={"duration": 2.0}, initial="random")
    assert not short.passed


def test_term_pieces_take_a_sparse_matrix():
    """A structured term's W may be a scipy.sparse matrix: same numbers, ndarray out."""
    import scipy.sparse as sp
    from dataclasses import replace

    from hwbp.lower.system import as_dense

    system = lower(GRAPHS["batchnorm"])
    rng = np.random.default_rng(0)
    for op in operands(system).values():
        if op.weight is None:
            continue
        dense_w = as_dense(op.weight)
        op = replace(op, weight=dense_w, weight_t=np.ascontiguousarray(dense_w.T))
        w = sp.csr_matrix(dense_w)
        sparse = replace(op, weight=w, weight_t=w.T.tocsr())
        u = rng.standard_normal((3, op.weight.shape[1]))
        e = rng.standard_normal((3, op.weight.shape[0]))
        dense_fw, sparse_fw = term_forward(op, u), term_forward(sparse, u)
        assert type(sparse_fw.y) is np.ndarray
        np.testing.assert_allclose(sparse_fw.y, dense_fw.y, rtol=1e-14, atol=1e-14)
        back = term_backward(sparse, e, sparse_fw.pre_gate)
        assert type(back) is np.ndarray
        np.testing.assert_allclose(back, term_backward(op, e, dense_fw.pre_gate), rtol=1e-14, atol=1e-14)


def test_one_driver_composes_events_with_a_device_instance():
    """The event rule (messaging part) and a device instance (device part) in one run:
    at threshold 0 it is the instance's continuous run with the same solver."""
    g = GRAPHS["clip"]
    system, batch = lower(g), make_batch(g, 3, seed=4)
    hw = hardware_from_mapping({"mismatch": {"sigma": 0.05}, "nodes": {"r_sigma": 0.02, "c_sigma": 0.05},
                                "cells": {"f_gain_sigma": 0.02}})
    inst = realize(system, hw, 2)
    ev = simulate(inst, batch, mode="continuous", event_threshold=0.0, dt=0.05, initial="random", seed=1)
    cont = simulate(inst, batch, mode="continuous", solver="exponential", dt=0.05, initial="random", seed=1)
    assert ev.settle["mode"] == "events" and ev.settle["instance_seed"] == 2
    for n in cont.state.tension:
        np.testing.assert_allclose(ev.state.tension[n], cont.state.tension[n], rtol=0, atol=1e-12)
    ideal = simulate(system, batch, mode="continuous", event_threshold=0.0, dt=0.05, initial="random", seed=1)
    assert max(float(np.abs(ev.state.tension[n] - ideal.state.tension[n]).max()) for n in cont.state.tension) > 1e-4
    with pytest.raises(ConfigError, match="applies to --mode continuous"):
        simulate(system, batch, mode="unit-step", event_threshold=0.0)


def test_cli_verify_with_hardware_on_a_clip_model(tmp_path: Path, capsys):
    """The hardware comparison of a clip model through the command line (was exit 3)."""
    path = tmp_path / "clip.hwbp"
    save_model(GRAPHS["clip"], path)
    hw = Path(__file__).resolve().parents[1] / "examples" / "hardware" / "typical.toml"
    rc = main(["verify", str(path), "--hardware", str(hw), "--report", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert rc in (0, 1), out.err  # a verdict on the instance, not a defect
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["hardware"]["own"]["max_rel_err"] is not None
