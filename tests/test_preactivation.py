"""Pre-activation layers: a fixed gain and a source-side nonlinearity on a term
(``g W φ(u) + b``) keep the depth L in layers and Theorem 1 exact."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.errors import ConfigError, ModelError
from hwbp.exporters.onnx import graph_to_onnx_bytes
from hwbp.importers.onnx import load_onnx_bytes
from hwbp.ir.serialize import graph_from_bytes, graph_to_bytes
from hwbp.lower import lower
from hwbp.models import depth_resmlp
from hwbp.oracle import exact_gradients, finite_difference_gradients, forward
from hwbp.sim import simulate
from hwbp.verify.readout import read_gradients
from conftest import make_batch


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb else float(np.linalg.norm(a))


def _max_rel(grads, exact) -> float:
    return max(_rel(grads.parameters[k], exact.parameters[k]) for k in exact.parameters)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_lowering_counts_layers(activation: str) -> None:
    g = depth_resmlp(12, 6, 3, 9, activation=activation).with_loss("mse")
    s = lower(g)
    assert s.depth == 9 and len(s.populations) == 9
    mid = s.population("z5")
    assert [t.source for t in mid.terms] == ["z4", "z4"]
    assert mid.terms[1].source_activation == activation
    assert mid.terms[1].gain == pytest.approx(1 / np.sqrt(6 * 9))


def test_oracle_gain_matches_finite_differences() -> None:
    g = depth_resmlp(5, 4, 3, 4, activation="tanh", seed=3).with_loss("mse")
    rng = np.random.default_rng(0)
    g = g.with_parameters({k: v + 0.1 * rng.standard_normal(v.shape) for k, v in g.parameters().items()})
    b = make_batch(g, 3, seed=1)
    exact = exact_gradients(g, b)
    fd = finite_difference_gradients(g, b)
    for k in exact.parameters:
        np.testing.assert_allclose(exact.parameters[k], fd[k], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_theorem1_exact_after_2L_not_before(activation: str, loss: str) -> None:
    L = 6
    g = depth_resmlp(10, 5, 4, L, activation=activation, seed=2).with_loss(loss)
    b = make_batch(g, 5, seed=4, loss=loss)
    s = lower(g)
    exact = exact_gradients(g, b)
    r = simulate(s, b, steps=2 * L, initial="random", seed=7)
    assert _max_rel(read_gradients(s, r.state, b), exact) < 1e-12
    r = simulate(s, b, steps=2 * L - 1, initial="random", seed=7)
    assert _max_rel(read_gradients(s, r.state, b), exact) > 1e-3  # negative control
    r = simulate(s, b, steps=L, initial="forward-manifold")
    assert _max_rel(read_gradients(s, r.state, b), exact) < 1e-12


def test_readout_uses_backend_gates() -> None:
    """A wrong gate signal shows up as a wrong gradient: the readout does not recompute it."""
    g = depth_resmlp(6, 4, 3, 4, activation="tanh").with_loss("mse")
    b = make_batch(g, 3)
    s = lower(g)
    st = simulate(s, b, mode="steady").state
    gates = {k: 2 * v for k, v in st.gates.items()}
    from hwbp.state import State

    doubled = read_gradients(s, State(st.mean, st.tension, gates=gates), b)
    good = read_gradients(s, st, b)
    for k in good.parameters:
        np.testing.assert_allclose(doubled.parameters[k], 2 * good.parameters[k], rtol=1e-12, atol=1e-15)


def test_gain_round_trips_native_and_onnx() -> None:
    g = depth_resmlp(7, 4, 3, 4, activation="relu", seed=5)
    back = graph_from_bytes(graph_to_bytes(g))
    assert back.node("layer2").gain == g.node("layer2").gain
    x = np.random.default_rng(0).standard_normal((3, 7))
    onnx_graph = load_onnx_bytes(graph_to_onnx_bytes(g, dtype="float64"))
    y1 = forward(g, {"x": x})[g.output]
    y2 = forward(onnx_graph, {onnx_graph.inputs[0].name: x})[onnx_graph.output]
    # ONNX float attributes (Gemm alpha) are 32-bit: the gain comes back to ~6e-8
    np.testing.assert_allclose(y2, y1, rtol=1e-6)
    assert onnx_graph.node("layer2").gain == pytest.approx(g.node("layer2").gain, rel=1e-7)
    assert sorted(onnx_graph.parameters()) == sorted(g.parameters())


def test_bad_gain_is_an_error() -> None:
    from hwbp.ir.nodes import Dense

    with pytest.raises(ModelError, match="gain"):
        Dense("d", source="x", weight=np.ones((1, 1)), bias=np.zeros(1), gain=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dyadic_cosine_at_depth_128(activation: str) -> None:
    """T = 2L unit steps give backprop to cosine >= 0.999999 (in fact round-off) at L = 128."""
    L = 128
    g = depth_resmlp(64, 32, 10, L, activation=activation, seed=0).with_loss("mse")
    b = make_batch(g, 16, seed=1)
    s = lower(g)
    exact = exact_gradients(g, b)
    grads = read_gradients(s, simulate(s, b, steps=2 * L, initial="random", seed=2).state, b)
    va = np.concatenate([grads.parameters[k].ravel() for k in sorted(exact.parameters)])
    vb = np.concatenate([exact.parameters[k].ravel() for k in sorted(exact.parameters)])
    assert va @ vb / np.linalg.norm(va) / np.linalg.norm(vb) >= 0.999999
    assert _max_rel(grads, exact) < 1e-10


def test_spice_realizes_gains_and_source_side_nonlinearity() -> None:
    from dataclasses import replace

    from spice_helpers import require_ngspice

    from hwbp.backend import get_backend
    from hwbp.ir.graph import Graph
    from hwbp.ir.nodes import Dense
    from hwbp.models import random_mlp

    require_ngspice()
    base = random_mlp([4, 5, 3], activation="tanh", seed=2)
    nodes = tuple(replace(n, gain=0.37) if isinstance(n, Dense) else n for n in base.nodes)
    g = Graph(nodes, base.output, "gained").with_loss("mse")
    b = make_batch(g, 2, seed=1)
    s = lower(g)
    spice = get_backend("spice")
    st = spice.simulate(s, b, {"analysis": "op"}).state
    assert _max_rel(read_gradients(s, st, b), exact_gradients(g, b)) < 1e-8
    deep_graph = depth_resmlp(4, 3, 2, 3, activation="tanh").with_loss("mse")
    deep = lower(deep_graph)
    db = make_batch(deep_graph, 2, seed=1)
    st = spice.simulate(deep, db, {"analysis": "op"}).state
    assert _max_rel(read_gradients(deep, st, db), exact_gradients(deep_graph, db)) < 1e-10
    bad = replace(deep, populations=(replace(deep.populations[0]), replace(
        deep.populations[1], terms=(deep.populations[1].terms[0],
                                    replace(deep.populations[1].terms[1], source_activation="clip"))),
        *deep.populations[2:]))
    # refused by the declared support (a source-side clip has no upper bound to realize)
    with pytest.raises(ConfigError, match="'spice' does not realize the source-side activation clip"):
        spice.compile(bad, spice.options({"analysis": "op"}))


def test_equations_show_gain_and_source_side_nonlinearity() -> None:
    from hwbp.targets.equations import equations_json, equations_markdown

    s = lower(depth_resmlp(4, 3, 2, 3, activation="tanh").with_loss("mse"))
    text = equations_markdown(s)
    assert "tanh(xbar[layer1])" in text and "tanh'(xbar[layer1]) ⊙" in text
    term = equations_json(s)["populations"][1]["terms"][1]
    assert term["source_activation"] == "tanh" and term["gain"] == pytest.approx(1 / 3)
