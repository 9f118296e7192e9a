"""Tied weights: a layer applied twice is ONE parameter whose gradient is the sum of
its uses' local gradients, on every backend, in verification, training and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import require_torch, torch_gradients, torch_onnx_bytes
from hwbp.cli import main
from hwbp.errors import ModelError
from hwbp.exporters.onnx import graph_to_onnx_bytes
from hwbp.importers.onnx import load_onnx_bytes
from hwbp.io import load_model
from hwbp.ir import Activation, Dense, Graph, Input, graph_from_bytes, graph_to_bytes
from hwbp.lower import lower
from hwbp.oracle import exact_gradients
from hwbp.oracle.finite_diff import finite_difference_gradients
from hwbp.types import Batch
from hwbp.verify.run import verify


def tied_module(n_in: int = 5, width: int = 6, n_out: int = 3):
    """``out(tanh(fc(tanh(fc(tanh(inp(x)))))))``: ``fc`` applied twice (float64)."""
    torch = require_torch()

    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = torch.nn.Linear(n_in, width)
            self.fc = torch.nn.Linear(width, width)
            self.out = torch.nn.Linear(width, n_out)

        def forward(self, x):
            h = torch.tanh(self.inp(x))
            h = torch.tanh(self.fc(h))
            h = torch.tanh(self.fc(h))
            return self.out(h)

    torch.manual_seed(0)
    return Tied().double().eval()


def export(model, n_in: int, dynamo: bool) -> bytes:
    """The ONNX bytes of ``model`` (TorchScript or torch's default exporter)."""
    return torch_onnx_bytes(model, n_in, dynamo=dynamo)


def _batch(g: Graph, n: int = 4, seed: int = 3) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch({g.inputs[0].name: rng.standard_normal((n, g.inputs[0].size))},
                 rng.standard_normal((n, g.size(g.output))))


def _untie(g: Graph) -> Graph:
    """The graph with every Dense owning its own parameters (the old, wrong import)."""
    from dataclasses import replace

    return Graph(tuple(replace(n, weight_param=None, bias_param=None) if isinstance(n, Dense) else n
                       for n in g.nodes), g.output, g.name)


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["torchscript", "dynamo"])
def test_layer_applied_twice_is_one_parameter_matching_torch(dynamo: bool) -> None:
    model = tied_module()
    g = load_onnx_bytes(export(model, 5, dynamo), source="tied.onnx").with_loss("mse")
    assert sorted(g.parameters()) == sorted(k for k, _ in model.named_parameters())
    dense = [n.name for n in g.nodes if isinstance(n, Dense)]
    assert g.parameter_uses()["fc.weight"] == tuple(d for d in dense if d.startswith("fc"))
    assert len(g.parameter_uses()["fc.weight"]) == 2 and len(g.parameter_uses()["fc.bias"]) == 2
    batch = _batch(g)
    ref = torch_gradients(model, np.asarray(batch.x[g.inputs[0].name]), np.asarray(batch.y))
    exact = exact_gradients(g, batch).parameters
    v = verify(g, batch, backend="reference")
    assert v.passed
    assert set(v.report["parameters"]) == set(ref)
    for k, want in ref.items():
        np.testing.assert_allclose(exact[k], want, rtol=0, atol=1e-12 * max(1.0, np.abs(want).max()), err_msg=k)
        np.testing.assert_allclose(v.physical.parameters[k], want, rtol=0,
                                   atol=1e-12 * max(1.0, np.abs(want).max()), err_msg=k)
    if dynamo:  # torch's default exporter, on the circuit too
        vs = verify(g, batch, backend="spice", options={"analysis": "op"})
        for k, want in ref.items():
            assert np.linalg.norm(vs.physical.parameters[k] - want) / np.linalg.norm(want) < 1e-10, k


def test_untied_import_would_be_wrong() -> None:
    """Negative control: the per-use gradient alone (what an untied import reports as
    ``fc.weight``) is far from torch's, so the test above can fail."""
    model = tied_module()
    g = load_onnx_bytes(export(model, 5, False), source="tied.onnx").with_loss("mse")
    batch = _batch(g)
    ref = torch_gradients(model, np.asarray(batch.x[g.inputs[0].name]), np.asarray(batch.y))["fc.weight"]
    untied = exact_gradients(_untie(g), batch).parameters
    assert "fc_1.weight" in untied
    rel = np.linalg.norm(untied["fc.weight"] - ref) / np.linalg.norm(ref)
    assert rel > 0.05
    np.testing.assert_allclose(untied["fc.weight"] + untied["fc_1.weight"], ref, rtol=0, atol=1e-12)


def _hand_tied(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal((4, 4)) * 0.6, rng.standard_normal(4) * 0.2
    nodes = (
        Input("x", 4),
        Dense("a", source="x", weight=w, bias=b, weight_param="shared.weight", bias_param="shared.bias"),
        Activation("ha", source="a", function="sigmoid"),
        Dense("b", source="ha", weight=w, bias=b, weight_param="shared.weight", bias_param="shared.bias"),
        Activation("hb", source="b", function="tanh"),
        Dense("c", source="hb", weight=w, bias=b, weight_param="shared.weight", bias_param="shared.bias"),
    )
    return Graph(nodes, "c", "hand_tied").with_loss("mse")


def test_oracle_on_tied_graph_matches_finite_differences() -> None:
    g = _hand_tied()
    batch = _batch(g)
    exact = exact_gradients(g, batch).parameters
    fd = finite_difference_gradients(g, batch)
    assert sorted(exact) == ["shared.bias", "shared.weight"]
    for k in exact:
        np.testing.assert_allclose(exact[k], fd[k], rtol=0, atol=1e-8, err_msg=k)


def test_lowered_system_lists_every_use_of_one_parameter() -> None:
    system = lower(_hand_tied())
    assert sorted(system.parameters) == ["shared.bias", "shared.weight"]
    assert len(system.uses("shared.weight")) == 3
    assert [t.name for t in system.tied].count("shared.weight") == 3


def test_tied_nodes_with_different_values_are_refused() -> None:
    g = _hand_tied()
    nodes = [n for n in g.nodes if n.name != "loss"]
    from dataclasses import replace

    nodes[3] = replace(nodes[3], weight=nodes[3].weight + 1.0)
    with pytest.raises(ModelError, match="'shared.weight' is shared by nodes"):
        Graph(tuple(nodes), "c")


def test_tie_survives_native_format_and_onnx_export() -> None:
    g = _hand_tied()
    assert graph_to_bytes(graph_from_bytes(graph_to_bytes(g))) == graph_to_bytes(g)
    data = graph_to_onnx_bytes(g, dtype="float64")
    proto = onnx.load_from_string(data)
    assert sorted(t.name for t in proto.graph.initializer) == ["shared.bias", "shared.weight"]
    back = load_onnx_bytes(data)
    assert sorted(back.parameters()) == ["shared.bias", "shared.weight"]
    assert len(back.parameter_uses()["shared.weight"]) == 3
    # a new value for the one parameter reaches every use
    new = back.with_parameters({"shared.weight": np.eye(4)})
    assert all(np.array_equal(n.weight, np.eye(4)) for n in new.nodes if isinstance(n, Dense))


def test_spice_op_on_tied_model_matches_torch() -> None:
    model = tied_module(3, 4, 2)
    g = load_onnx_bytes(export(model, 3, False), source="tied.onnx").with_loss("mse")
    batch = _batch(g, n=2)
    ref = torch_gradients(model, np.asarray(batch.x[g.inputs[0].name]), np.asarray(batch.y))
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    assert v.passed
    for k, want in ref.items():
        rel = np.linalg.norm(v.physical.parameters[k] - want) / np.linalg.norm(want)
        assert rel < 1e-10, (k, rel)


@pytest.mark.slow
def test_cli_verify_and_train_keep_the_tie(tmp_path: Path) -> None:
    model = tied_module(64, 8, 10)
    src = tmp_path / "tied.onnx"
    src.write_bytes(export(model, 64, False))
    report = tmp_path / "r.json"
    assert main(["verify", str(src), "--random-batch", "3", "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert sorted(doc["parameters"]) == sorted(k for k, _ in model.named_parameters())
    out = tmp_path / "trained.onnx"
    assert main(["train", str(src), "--backend", "oracle", "--epochs", "1", "--batch-size", "512",
                 "-o", str(out)]) == 0
    proto = onnx.load(str(out))
    assert sorted(t.name for t in proto.graph.initializer) == sorted(k for k, _ in model.named_parameters())
    assert [list(n.input)[1] for n in proto.graph.node if n.op_type == "Gemm"].count("fc.weight") == 2
    trained = load_model(out)
    assert len(trained.parameter_uses()["fc.weight"]) == 2
    before = load_onnx_bytes(src.read_bytes())
    assert not np.allclose(trained.parameters()["fc.weight"], before.parameters()["fc.weight"])


def test_matmul_and_add_sharing_initializers_are_one_parameter() -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m1"], name="/fc/MatMul"),
             helper.make_node("Add", ["m1", "B"], ["a1"], name="/fc/Add"),
             helper.make_node("Tanh", ["a1"], ["h1"], name="/act/Tanh"),
             helper.make_node("MatMul", ["h1", "W"], ["m2"], name="/fc_1/MatMul"),
             helper.make_node("Add", ["m2", "B"], ["y"], name="/fc_1/Add")]
    inits = [numpy_helper.from_array(rng.standard_normal((3, 3)), "W"), numpy_helper.from_array(rng.standard_normal(3), "B")]
    g = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 3])], initializer=inits)
    graph = load_onnx_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert len(graph.parameters()) == 2
    uses = graph.parameter_uses()
    assert all(len(v) == 2 for v in uses.values()), uses
    g2 = graph.with_loss("mse")
    batch = _batch(g2)
    exact = exact_gradients(g2, batch).parameters
    fd = finite_difference_gradients(g2, batch)
    for k in exact:
        np.testing.assert_allclose(exact[k], fd[k], rtol=1e-7, atol=1e-8, err_msg=k)


def test_transposed_reuse_of_a_weight_is_a_one_line_error() -> None:
    """Encoder/decoder weight tying (``W`` then ``Wᵀ``) is refused with a clear message."""
    from onnx import TensorProto, helper, numpy_helper

    from hwbp.errors import UnsupportedOpError

    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], name="/enc/Gemm", transB=1),
             helper.make_node("Tanh", ["h"], ["t"], name="/act/Tanh"),
             helper.make_node("Gemm", ["t", "W"], ["y"], name="/dec/Gemm", transB=0)]
    g = helper.make_graph(nodes, "ae", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 4])],
                          initializer=[numpy_helper.from_array(np.arange(8.0).reshape(2, 4), "W")])
    with pytest.raises(UnsupportedOpError) as err:
        load_onnx_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                        source="ae.onnx")
    msg = str(err.value)
    assert "\n" not in msg and "'/dec/Gemm'" in msg and "used transposed" in msg
