"""Graph IR: lint errors name the node and the shapes; the native format round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.errors import ModelError, ModelFormatError, ShapeError
from hwbp.ir import Activation, Add, Dense, Graph, Input, Loss, graph_from_bytes, graph_to_bytes
from hwbp.models import random_mlp, random_resmlp
from hwbp.oracle import forward

from conftest import make_batch


def _dense(name, src, n_in, n_out, value=0.1):
    return Dense(name, source=src, weight=np.full((n_out, n_in), value), bias=np.zeros(n_out))


def test_valid_graph_is_sorted_and_sized() -> None:
    g = Graph((Activation("a", source="d", function="tanh"), _dense("d", "x", 3, 2), Input("x", size=3)), "a")
    assert [n.name for n in g.nodes] == ["x", "d", "a"]
    assert g.size("a") == 2 and g.consumers["d"] == ("a",)


@pytest.mark.parametrize(
    "nodes,output,err,fragment",
    [
        ((Input("x", size=3), _dense("d", "x", 4, 2)), "d", ShapeError, "'d': weight expects 4 inputs but 'x' gives 3"),
        ((Input("x", size=3), Dense("d", source="x", weight=np.ones((2, 3)), bias=np.ones(3))), "d", ShapeError, "bias must have shape (2,)"),
        ((Input("x", size=3), _dense("d", "x", 3, 2, np.nan)), "d", ModelError, "'d': weight has 6 non-finite"),
        ((Input("x", size=3), _dense("d", "x", 3, 0)), "d", ShapeError, "0 outputs"),
        ((Input("x", size=0),), "x", ShapeError, "size must be a positive integer"),
        ((Input("x", size=3), _dense("d", "y", 3, 2)), "d", ModelError, "reads unknown node 'y'"),
        ((Input("x", size=3), _dense("d", "x", 3, 2), _dense("d", "x", 3, 2)), "d", ModelError, "duplicate node name 'd'"),
        ((Input("x", size=2), Add("a", sources=("x", "b")), Add("b", sources=("x", "a"))), "a", ModelError, "cycle"),
        ((Input("x", size=3), Activation("a", source="x", function="swish")), "a", ModelError, "unknown activation 'swish'"),
        ((Input("x", size=3), _dense("d", "x", 3, 2), Add("s", sources=("x", "d"))), "s", ShapeError, "inputs differ in size"),
        ((Input("x", size=3), _dense("d", "x", 3, 2), _dense("e", "x", 3, 2)), "d", ModelError, "'e' does not contribute"),
        ((Input("x", size=3), _dense("d", "x", 3, 2)), "nope", ModelError, "output 'nope'"),
        ((Input("x", size=3), _dense("d", "x", 3, 2), Loss("l", source="d", function="hinge")), "d", ModelError, "unknown function 'hinge'"),
    ],
)
def test_lint_errors_are_one_line_and_name_the_node(nodes, output, err, fragment) -> None:
    with pytest.raises(err) as info:
        Graph(nodes, output)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_nodes_are_immutable() -> None:
    d = _dense("d", "x", 3, 2)
    with pytest.raises(ValueError):
        d.weight[0, 0] = 1.0
    with pytest.raises(AttributeError):
        d.name = "e"  # type: ignore[misc]


@pytest.mark.parametrize("graph", [random_mlp([4, 5, 3], activation="leaky_relu", seed=1),
                                   random_resmlp(4, 5, 3, blocks=2, activation="softplus", seed=2).with_loss("ce")])
def test_native_round_trip_is_lossless_and_deterministic(graph) -> None:
    data = graph_to_bytes(graph)
    back = graph_from_bytes(data)
    assert graph_to_bytes(back) == data
    assert [type(n) for n in back.nodes] == [type(n) for n in graph.nodes]
    x = make_batch(graph.with_loss("mse")).x
    a, b = forward(graph, x), forward(back, x)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_native_loader_rejects_garbage_and_truncation() -> None:
    data = graph_to_bytes(random_mlp([3, 2], seed=0))
    for bad in (b"not a zip", data[: len(data) // 2]):
        with pytest.raises(ModelFormatError, match="model.hwbp"):
            graph_from_bytes(bad, source="model.hwbp")


def test_with_loss_and_with_parameters_return_new_graphs() -> None:
    g = random_mlp([3, 4, 2], seed=0)
    gl = g.with_loss("ce")
    assert g.loss is None and gl.loss is not None and gl.loss.function == "ce"
    w = np.zeros((4, 3))
    g2 = g.with_parameters({"fc1.weight": w})
    assert np.array_equal(g2.parameters()["fc1.weight"], w)
    assert not np.array_equal(g.parameters()["fc1.weight"], w)
    with pytest.raises(ModelError, match="unknown parameter"):
        g.with_parameters({"fc9.weight": w})


def test_non_numeric_weights_name_the_node_and_dtype() -> None:
    with pytest.raises(ModelError, match=r"dense 'd': weight: expected a numeric array, got <U1"):
        Dense("d", source="x", weight=np.array([["a"]]), bias=np.zeros(1))
