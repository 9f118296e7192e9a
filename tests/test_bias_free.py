"""A layer without bias has no bias parameter anywhere: graph, gradients, state.npz,
native archive, ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwbp.cli import main
from hwbp.errors import ModelError
from hwbp.exporters.onnx import graph_to_onnx_bytes
from hwbp.importers import load_onnx_bytes
from hwbp.ir.nodes import Dense
from hwbp.ir.serialize import graph_from_bytes, graph_to_bytes
from hwbp.oracle.backprop import exact_gradients
from hwbp.verify import verify

from conftest import make_batch


def _model(with_add: bool) -> bytes:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "fc1.weight")  # Gemm, no C
    w2 = numpy_helper.from_array(rng.standard_normal((4, 2)).astype(np.float32), "fc2.weight")  # MatMul (in, out)
    b2 = numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "fc2.bias")
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight"], ["h"], transB=0),
             helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("MatMul", ["t", "fc2.weight"], ["m" if with_add else "y"])]
    if with_add:
        nodes.append(helper.make_node("Add", ["m", "fc2.bias"], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                          [w1, w2] + ([b2] if with_add else []))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_importer_records_bias_absence() -> None:
    assert sorted(load_onnx_bytes(_model(False)).parameters()) == ["fc1.weight", "fc2.weight"]
    assert sorted(load_onnx_bytes(_model(True)).parameters()) == ["fc1.weight", "fc2.bias", "fc2.weight"]


def test_gradients_and_roundtrips_have_no_bias() -> None:
    g = load_onnx_bytes(_model(False)).with_loss("mse")
    batch = make_batch(g, size=3)
    assert sorted(exact_gradients(g, batch).parameters) == ["fc1.weight", "fc2.weight"]
    v = verify(g, batch)
    assert v.passed and sorted(v.physical.parameters) == ["fc1.weight", "fc2.weight"]
    back = graph_from_bytes(graph_to_bytes(g))
    assert sorted(back.parameters()) == ["fc1.weight", "fc2.weight"]
    proto = onnx.load_from_string(graph_to_onnx_bytes(g))
    assert sorted(t.name for t in proto.graph.initializer) == ["fc1.weight", "fc2.weight"]
    assert sorted(load_onnx_bytes(graph_to_onnx_bytes(g)).parameters()) == ["fc1.weight", "fc2.weight"]


def test_state_npz_has_no_bias_gradient(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(_model(False))
    assert main(["simulate", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out")]) == 0
    grads = [k for k in np.load(tmp_path / "out" / "state.npz").files if k.startswith("grad/")]
    assert sorted(grads) == ["grad/fc1.weight", "grad/fc2.weight"]


def test_bias_free_layer_must_have_zero_bias() -> None:
    with pytest.raises(ModelError, match="bias-free"):
        Dense("d", source="x", weight=np.ones((2, 2)), bias=np.ones(2), has_bias=False)
    with pytest.raises(ModelError, match="has_bias must be"):
        Dense("d", source="x", weight=np.ones((2, 2)), bias=np.zeros(2), has_bias="no")  # type: ignore[arg-type]
