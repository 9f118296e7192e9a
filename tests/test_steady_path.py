"""The lean steady path (no initial state, no second forward pass for the gates, e
computed in place, no transposed weight copies) gives gradients bit-identical to the
straightforward path: contiguous transposed weights, a forward sweep from a zero state,
a sensitivity sweep, then every population's forward evaluated again for its gates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hwbp.ir import Activation, AvgPool, Conv, Dense, Graph, Input
from hwbp.ir.activations import get_activation
from hwbp.lower import lower
from hwbp.models import depth_resmlp, random_mlp, random_resmlp
from hwbp.sim import simulate
from hwbp.sim.kernel import Kernel
from hwbp.sim.recording import Recorder, forward_sweep, gate_signals
from hwbp.sim.simulate import _unit_steps
from hwbp.state import State
from hwbp.types import Batch
from hwbp.verify import read_gradients


def _cnn() -> Graph:
    rng = np.random.default_rng(3)
    c = Conv("c", source="x", in_shape=(2, 6, 6), weight=rng.standard_normal((4, 2, 3, 3)) * 0.4,
             bias=rng.standard_normal(4) * 0.1, strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1))
    nodes = (Input("x", 72), c, Activation("a", source="c", function="tanh"),
             AvgPool("p", source="a", in_shape=c.out_shape, kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0)),
             Dense("fc", source="p", weight=rng.standard_normal((3, 36)) * 0.3, bias=np.zeros(3)))
    return Graph(nodes, "fc", "cnn")


CASES = {  # name: (graph, batch size)
    "mlp-stacked": (random_mlp([48] * 10, activation="tanh", seed=1), 16),  # 16 x 48 <= 1024: chains stacked
    "mlp-wide": (random_mlp([96] * 7, activation="sigmoid", output_activation="tanh", seed=2), 16),
    "mlp-batch-1": (random_mlp([40, 30, 30, 5], activation="relu", seed=3), 1),
    "resmlp": (random_resmlp(12, 24, 3, 3, seed=4), 8),
    "depth-resmlp": (depth_resmlp(10, 20, 3, 6, activation="tanh", seed=5), 8),  # gains, source-side φ
    "cnn": (_cnn(), 5),
}


def _batch(graph: Graph, n: int) -> Batch:
    rng = np.random.default_rng(n)
    name = graph.inputs[0].name
    return Batch({name: rng.standard_normal((n, graph.inputs[0].size))},
                 rng.standard_normal((n, graph.size(graph.output))))


def _plain_kernel(system, batch) -> Kernel:
    """A kernel whose dense terms read contiguous copies of ``Wᵀ`` (the former layout)."""
    k = Kernel(system, batch)
    k.terms = [[replace(t, op=replace(t.op, weight_t=np.ascontiguousarray(t.op.weight.T)))
                 if isinstance(t.op.weight, np.ndarray) else t for t in terms] for terms in k.terms]
    return k


def _plain_readout(system, state: State, batch: Batch) -> dict:
    """``(g e uᵀ) / n`` and ``sum e / n`` per dense term, e = gate / beta (the former readout)."""
    out: dict = {}
    for pop in system.populations:
        for k, t in enumerate(pop.terms):
            if t.weight is None or t.layout is not None:
                continue
            u = state.mean[t.source] if system.is_population(t.source) else batch.x[t.source]
            if t.source_activation != "identity":  # the synapses see φ(u)
                u = get_activation(t.source_activation).f(u, t.source_alpha)
            e = np.asarray(state.gates[(pop.name, k)]) / system.beta
            grads = {t.weight: (e.T @ u if t.gain == 1.0 else t.gain * (e.T @ u)) / batch.size}
            if t.bias is not None:
                grads[t.bias] = e.sum(axis=0) / batch.size
            for p, g in grads.items():
                out[p] = out[p] + g if p in out else g
    return out


def _plain_state(kernel: Kernel, means, tensions) -> State:
    gates = gate_signals(kernel, means, tensions)  # every population's forward again
    return State(dict(zip(kernel.names, means)), dict(zip(kernel.names, tensions)), gates=gates)


def _plain_steady(system, batch) -> State:
    kernel = _plain_kernel(system, batch)
    means = [np.zeros((batch.size, n)) for n in kernel.sizes]
    tensions = [np.zeros_like(m) for m in means]
    forward_sweep(kernel, means)
    for i in reversed(range(len(tensions))):
        kernel.backward((i,), means, tensions, tensions)
    return _plain_state(kernel, means, tensions)


def _plain_manifold(system, batch) -> State:
    kernel = _plain_kernel(system, batch)
    means = [np.zeros((batch.size, n)) for n in kernel.sizes]
    forward_sweep(kernel, means)
    tensions = [np.zeros_like(m) for m in means]
    means, tensions, _ = _unit_steps(kernel, means, tensions, system.depth, True, True, Recorder(None))
    return _plain_state(kernel, means, tensions)


def _assert_identical(system, got: State, want: State, batch: Batch) -> None:
    for name in want.mean:
        assert np.array_equal(got.mean[name], want.mean[name]), name
        assert np.array_equal(got.tension[name], want.tension[name]), name
    assert sorted(got.gates) == sorted(want.gates)
    for key in want.gates:
        assert np.array_equal(got.gates[key], want.gates[key]), key
    new = read_gradients(system, got, batch).parameters
    old = read_gradients(system, want, batch).parameters
    for p, g in old.items():
        assert np.array_equal(new[p], g), p
    for p, g in _plain_readout(system, want, batch).items():
        assert np.array_equal(new[p], g), p


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("beta", [1.0, 0.37])
def test_steady_is_bit_identical_to_the_plain_path(case: str, beta: float) -> None:
    graph, n = CASES[case]
    system = lower(graph.with_loss("mse"), beta=beta)
    batch = _batch(graph, n)
    got = simulate(system, batch, mode="steady").state
    _assert_identical(system, got, _plain_steady(system, batch), batch)


@pytest.mark.parametrize("case", sorted(CASES))
def test_unit_step_from_the_manifold_is_bit_identical_to_the_plain_path(case: str) -> None:
    graph, n = CASES[case]
    system = lower(graph.with_loss("mse"))
    batch = _batch(graph, n)
    got = simulate(system, batch, mode="unit-step", steps=system.depth, initial="forward-manifold").state
    _assert_identical(system, got, _plain_manifold(system, batch), batch)


def test_plain_path_comparison_detects_a_change() -> None:
    """Negative control: a perturbed weight is not bit-identical."""
    graph, n = CASES["mlp-wide"]
    system = lower(graph.with_loss("mse"))
    batch = _batch(graph, n)
    w = np.array(system.parameters["fc3.weight"])
    w[0, 0] = np.nextafter(w[0, 0], 1.0)
    got = simulate(system.with_parameters({"fc3.weight": w}), batch, mode="steady").state
    with pytest.raises(AssertionError):
        _assert_identical(system, got, _plain_steady(system, batch), batch)


def test_steady_checks_its_initial_argument_without_building_it() -> None:
    from hwbp.errors import ConfigError

    graph, n = CASES["mlp-batch-1"]
    system = lower(graph.with_loss("mse"))
    batch = _batch(graph, n)
    for bad in ({"initial": "sideways"}, {"initial": "random", "seed": -1},
                {"initial": State({}, {})}):
        with pytest.raises(ConfigError):
            simulate(system, batch, mode="steady", **bad)
