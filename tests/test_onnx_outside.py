"""Outside models: what torch's exporters make of common layers, read faithfully.

``AdaptiveAvgPool2d(1)`` and ``x.mean((2, 3))`` become ``ReduceMean`` over the spatial
axes (a global average pool); an LSTM is refused by its own name; a BatchNorm folded
into the layer before it by the exporter and a Gemm with ``beta != 1`` are announced by a
``hwbp: note:``, since the gradients are then not those of the module's own parameters.
Gradients are checked against torch float64 autograd.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwbp.errors import ModelNote, UnsupportedOpError
from hwbp.importers.onnx import load_onnx_bytes
from hwbp.oracle.backprop import exact_gradients
from hwbp.types import Batch

from conftest import require_torch

TOL = 1e-12


def _export(module, example, **kw) -> bytes:
    torch = require_torch()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, dynamo=False, **kw)
    return buf.getvalue()


def _check_against_torch(module, graph, x4: np.ndarray, names: dict[str, str] | None = None) -> None:
    torch = require_torch()
    rng = np.random.default_rng(1)
    out = module(torch.from_numpy(x4))
    y = rng.normal(size=tuple(out.shape))
    module.zero_grad()
    (0.5 * ((out - torch.from_numpy(y)) ** 2).sum(dim=1)).mean().backward()
    g = exact_gradients(graph.with_loss("mse"), Batch({graph.inputs[0].name: x4.reshape(len(x4), -1)}, y))
    for k, p in module.named_parameters():
        ref = p.grad.numpy()
        got = np.asarray(g.parameters[(names or {}).get(k, k)]).reshape(ref.shape)
        assert np.linalg.norm(got - ref) <= TOL * np.linalg.norm(ref), k


@pytest.mark.parametrize("how", ["adaptive", "mean", "mean_keepdim"])
def test_reduce_mean_over_spatial_axes_is_global_average_pooling(how: str) -> None:
    torch = require_torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            h = torch.tanh(self.conv(x))
            if how == "adaptive":
                h = self.pool(h).flatten(1)
            else:
                h = h.mean(dim=(2, 3), keepdim=how == "mean_keepdim").flatten(1)
            return self.fc(h)

    torch.manual_seed(0)
    m = Net().double().eval()
    x4 = np.random.default_rng(0).normal(size=(4, 2, 5, 5))
    data = _export(m, torch.from_numpy(x4[:1]))
    if how != "adaptive":
        assert "ReduceMean" in {n.op_type for n in onnx.load_from_string(data).graph.node}
    _check_against_torch(m, load_onnx_bytes(data), x4)


def test_reduce_mean_over_channels_is_refused_in_one_line() -> None:
    torch = require_torch()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 3, 3)

        def forward(self, x):
            return self.conv(x).mean(dim=1).flatten(1)

    data = _export(Net().double(), torch.zeros(1, 2, 5, 5, dtype=torch.float64))
    with pytest.raises(Exception, match=r"ReduceMean over axes \[1\].*only over every spatial axis") as e:
        load_onnx_bytes(data)
    assert "\n" not in str(e.value)


def test_lstm_is_refused_by_name() -> None:
    torch = require_torch()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 5, batch_first=True)
            self.fc = torch.nn.Linear(5, 2)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    data = _export(Net().eval(), torch.zeros(1, 3, 4))
    with pytest.raises(UnsupportedOpError, match=r"unsupported op 'LSTM' at node '/lstm/LSTM' \(also unsupported"):
        load_onnx_bytes(data)


def _conv_bn():
    torch = require_torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(2)
            self.fc = nn.Linear(8, 4)
            self.bn2 = nn.BatchNorm1d(4)
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            h = torch.tanh(self.bn1(self.conv1(x))).flatten(1)
            return self.out(torch.tanh(self.bn2(self.fc(h))))

    torch.manual_seed(0)
    m = Net().double()
    x4 = np.random.default_rng(0).normal(size=(6, 1, 4, 4))
    m(torch.from_numpy(x4))  # training mode once: running statistics away from (0, 1)
    return torch, m.eval(), x4


def test_folded_batch_norm_is_noted_and_the_unfolded_export_is_exact() -> None:
    torch, m, x4 = _conv_bn()
    example = torch.from_numpy(x4[:1])
    with pytest.warns(ModelNote, match=r"'/conv1/Conv' are exporter-made constants.*folds a BatchNorm"):
        load_onnx_bytes(_export(m, example))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelNote)
        graph = load_onnx_bytes(_export(m, example, do_constant_folding=False))
    assert {"conv1.weight", "bn1.weight", "bn1.bias", "bn2.weight"} <= set(graph.parameters())
    _check_against_torch(m, graph, x4)


def _gemm_model(beta: float) -> bytes:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)), "fc.weight")
    c = numpy_helper.from_array(rng.normal(size=3), "fc.bias")
    node = helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1, beta=beta)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 3])], [w, c])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_gemm_beta_bias_is_named_for_what_it_holds() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelNote)
        plain = load_onnx_bytes(_gemm_model(1.0))
    with pytest.warns(ModelNote, match=r"Gemm 'fc' has beta = 0.5: parameter 'fc.bias' holds beta \* C "
                                       r"\('fc.bias'\); its gradient is dL/dC / beta"):
        half = load_onnx_bytes(_gemm_model(0.5))
    np.testing.assert_array_equal(half.parameters()["fc.bias"], 0.5 * plain.parameters()["fc.bias"])
