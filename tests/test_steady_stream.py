"""The streaming steady path (``hwbp.sim.steady_gradients``: gradients read during the
sensitivity sweep, the state dropped as it is consumed) gives gradients bit-identical to
the full path (``simulate(mode="steady")`` then ``read_gradients``), and holds about one
copy of the means where the full path holds four copies of the state."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from hwbp.dynamics import output_gate, term_forward, term_gate, term_operands
from hwbp.errors import ConfigError
from hwbp.ir import Activation, Dense, Graph, Input
from hwbp.ir.activations import ACTIVATIONS
from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.sim import simulate, steady_gradients
from hwbp.sim.kernel import Kernel
from hwbp.sim.recording import forward_sweep
from hwbp.types import Batch, Gradients
from hwbp.verify import read_gradients
from test_steady_path import CASES, _batch


def _tied() -> Graph:
    """``fc`` applied three times (one parameter, three uses), tanh and an identity skip."""
    rng = np.random.default_rng(7)
    w, b = rng.standard_normal((6, 6)) * 0.5, rng.standard_normal(6) * 0.1
    nodes = [Input("x", 6)]
    src = "x"
    for j in range(3):
        nodes += [Dense(f"fc{j}", source=src, weight=w, bias=b, weight_param="fc.weight", bias_param="fc.bias"),
                  Activation(f"a{j}", source=f"fc{j}", function="tanh")]
        src = f"a{j}"
    nodes.append(Dense("out", source=src, weight=rng.standard_normal((2, 6)) * 0.5, bias=np.zeros(2)))
    return Graph(tuple(nodes), "out", "tied")


STREAM_CASES = {
    **CASES,
    "tied": (_tied(), 5),
    "mlp-relu": (random_mlp([30, 24, 24, 24, 4], activation="relu", seed=8), 6),
    "mlp-sigmoid": (random_mlp([20, 16, 16, 3], activation="sigmoid", output_activation="tanh", seed=9), 4),
}


def _full(system, batch) -> Gradients:
    return read_gradients(system, simulate(system, batch, mode="steady").state, batch)


def _assert_same(got: Gradients, want: Gradients, activations: bool) -> None:
    assert list(got.parameters) == list(want.parameters)
    for p, g in want.parameters.items():
        assert np.array_equal(got.parameters[p], g), p
    assert got.loss == want.loss
    if activations:
        assert list(got.activations) == list(want.activations)
        for name, a in want.activations.items():
            assert np.array_equal(got.activations[name], a), name
    else:
        assert not got.activations


@pytest.mark.parametrize("case", sorted(STREAM_CASES))
@pytest.mark.parametrize("beta", [1.0, 0.37])
def test_stream_is_bit_identical_to_the_full_path(case: str, beta: float) -> None:
    graph, n = STREAM_CASES[case]
    system = lower(graph.with_loss("mse"), beta=beta)
    batch = _batch(graph, n)
    want = _full(system, batch)
    for activations in (False, True):
        _assert_same(steady_gradients(system, batch, activations=activations), want, activations)


def test_stream_agrees_with_cross_entropy_and_the_oracle() -> None:
    from hwbp.oracle import exact_gradients

    graph = random_mlp([12, 10, 10, 4], activation="tanh", seed=11).with_loss("ce")
    rng = np.random.default_rng(2)
    batch = Batch({"x": rng.standard_normal((7, 12))}, np.eye(4)[rng.integers(0, 4, 7)])
    system = lower(graph)
    got = steady_gradients(system, batch)
    _assert_same(got, _full(system, batch), False)
    exact = exact_gradients(graph, batch)
    for p, g in exact.parameters.items():
        assert np.allclose(got.parameters[p], g, rtol=1e-12, atol=1e-15), p


def test_stream_comparison_detects_a_change() -> None:
    """Negative control: a weight one ulp off is not bit-identical."""
    graph, n = STREAM_CASES["tied"]
    system = lower(graph.with_loss("mse"))
    batch = _batch(graph, n)
    w = np.array(system.parameters["fc.weight"])
    w[2, 3] = np.nextafter(w[2, 3], 1.0)
    with pytest.raises(AssertionError):
        _assert_same(steady_gradients(system.with_parameters({"fc.weight": w}), batch), _full(system, batch), False)


def test_stream_holds_about_one_copy_of_the_means() -> None:
    """Traced peak (numpy reports its arrays to tracemalloc) of a depth-16 MLP: the
    streaming path stays under 1.5 copies of the means, the full path holds over 3."""
    graph = random_mlp([64] * 17, activation="tanh", seed=0).with_loss("mse")
    rng = np.random.default_rng(0)
    batch = Batch({"x": rng.standard_normal((64, 64))}, rng.standard_normal((64, 64)))
    system = lower(graph)
    means_bytes = 16 * 64 * 64 * 8
    peaks = {}
    for name, step in (("stream", lambda: steady_gradients(system, batch)), ("full", lambda: _full(system, batch))):
        step()  # warm-up
        tracemalloc.start()
        step()
        peaks[name] = tracemalloc.get_traced_memory()[1] / means_bytes
        tracemalloc.stop()
    assert peaks["stream"] <= 1.5, peaks
    assert peaks["full"] >= 3.0, peaks


def test_output_gate_gives_the_forward_gate() -> None:
    """tanh and relu gates from the output alone, on edge values too, bit for bit;
    the others are refused."""
    a = np.array([[-np.inf, -3.0, -0.0, 0.0, 1e-300, 2.5, np.inf, np.nan]])
    for name, fn in ACTIVATIONS.items():
        if not fn.output_only:
            continue
        with np.errstate(invalid="ignore"):
            y = fn.f(a, 0.0)
            assert np.array_equal(fn.df(None, y, 0.0), fn.df(a, y, 0.0), equal_nan=True), name
    assert {n for n, f in ACTIVATIONS.items() if f.output_only} == {"tanh", "relu"}
    system = lower(random_mlp([4, 3, 2], activation="sigmoid", seed=0).with_loss("mse"))
    op = term_operands(system, system.populations[0].name, 0)
    assert not output_gate(op)
    assert term_forward(op, np.ones((2, 4)), gate=False).gate is not None  # kept: it does not follow from y
    with pytest.raises(ConfigError):
        term_gate(op, np.ones((2, 3)))


def test_deferred_gate_is_never_read_as_identity() -> None:
    """A kernel that defers gates refuses a sensitivity product before they are restored."""
    system = lower(random_mlp([5, 4, 4, 2], activation="tanh", seed=0).with_loss("mse"))
    batch = _batch(random_mlp([5, 4, 4, 2], seed=0), 3)
    kernel = Kernel(system, batch, defer_gates=True)
    means = [None] * len(kernel.names)
    forward_sweep(kernel, means)
    assert kernel.deferred == {0, 1}
    tensions = [np.ones_like(m) for m in means]
    with pytest.raises(RuntimeError, match="deferred"):
        kernel.backward((0,), means, tensions, list(tensions))


def _instance(graph: Graph):
    """A device instance (5 % weight mismatch) of ``graph``'s network."""
    from hwbp.hardware import Hardware

    system = Hardware().replace(**{"mismatch.sigma": 0.05}).draw_instance(lower(graph.with_loss("mse")), 0)
    assert system.instance is not None
    return system


def test_stream_refuses_a_device_instance() -> None:
    graph, n = CASES["mlp-batch-1"]
    with pytest.raises(ConfigError, match="device instance"):
        steady_gradients(_instance(graph), _batch(graph, n))


def test_training_steps_in_steady_mode_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference source in steady mode takes the streaming path (the same numbers as
    run + readout); other modes and a device instance run and read the state."""
    from hwbp.backend import StreamsGradients, get_backend
    from hwbp.sim.backend import ReferenceBackend
    from hwbp.train.sources import get_source

    graph, n = STREAM_CASES["tied"]
    graph = graph.with_loss("mse")
    batch = _batch(graph, n)
    backend = get_backend("reference")
    assert isinstance(backend, StreamsGradients)
    want = _full(lower(graph), batch)
    runs = []
    original = ReferenceBackend.run
    monkeypatch.setattr(ReferenceBackend, "run", lambda self, *a, **k: runs.append(1) or original(self, *a, **k))
    source = get_source("reference", options={"mode": "steady"})
    for _ in range(2):  # compiled once, then parameters updated
        _assert_same(source(graph, batch), want, False)
    assert not runs
    unit = get_source("reference", options={"mode": "unit-step"})(graph, batch)
    assert runs and unit.activations  # ran and read the whole state
    artefact = backend.compile(_instance(graph), backend.options({"mode": "steady"}))
    assert backend.gradients(artefact, batch) is None
    with pytest.raises(ConfigError):
        backend.gradients(backend.compile(lower(graph), backend.options({"mode": "steady"})), batch,
                          initial="sideways")
