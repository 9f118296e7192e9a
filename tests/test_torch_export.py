"""Models exported the way users export them, checked against torch float64 autograd.

``torch.onnx.export(model, x, path)`` in torch 2.13 uses the dynamo exporter
(onnxscript; weights above 1 KiB in ``path + ".data"``); ``dynamo=False`` is the
TorchScript exporter.  For every model the gradients hwbp computes (reference
simulator; ngspice ``.op`` for the SPICE backend) are compared with torch autograd
of the same float64 model, parameter by parameter and for the input population.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import pytest

from hwbp.io import load_model
from hwbp.verify import verify

from conftest import require_torch
from spice_helpers import require_ngspice

#: Reference simulator vs torch float64 autograd (unit-step Euler is exact in 2L steps).
REF_TOL = 1e-12
#: ngspice .op vs torch (reltol 1e-9, vntol 1e-12 V on ~1 V signals).
SPICE_TOL = 1e-10
N_IN, N_OUT, BATCH = 6, 3, 5


def _mlp(act: str, bias: bool = True):
    torch = require_torch()
    nn = torch.nn
    layer = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "relu": nn.ReLU(),
             "leaky_relu": nn.LeakyReLU(0.2), "softplus": nn.Softplus()}[act]
    # 20 hidden units: the first weight (480 B) stays inline, the second layer's too;
    # the 20x20 middle weight (1600 B) goes to the external data file
    return nn.Sequential(nn.Linear(N_IN, 20, bias=bias), layer, nn.Linear(20, 20, bias=bias), nn.Tanh(),
                         nn.Linear(20, N_OUT, bias=bias))


def _resmlp():
    torch = require_torch()
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(20, 20)

        def forward(self, x):
            return x + torch.tanh(self.fc(x))

    class ResMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Linear(N_IN, 20)
            self.blocks = nn.Sequential(Block(), Block())
            self.head = nn.Linear(20, N_OUT, bias=False)

        def forward(self, x):
            return self.head(self.blocks(torch.sigmoid(self.stem(x))))

    return ResMLP()


MODELS = {
    **{f"mlp_{a}": (lambda a=a: _mlp(a)) for a in ("tanh", "sigmoid", "relu", "leaky_relu", "softplus")},
    "mlp_nobias": lambda: _mlp("tanh", bias=False),
    "resmlp": _resmlp,
}


def export(model, path: Path, *, dynamo: bool = True, opset: int | None = None) -> Path:
    """``torch.onnx.export(model, x, path)`` as a user calls it (float32 model)."""
    torch = require_torch()
    kwargs = {} if opset is None else {"opset_version": opset}
    if not dynamo:
        kwargs["dynamo"] = False
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, N_IN),), str(path), **kwargs)
    return path


def torch_gradients(model, x: np.ndarray, y: np.ndarray, loss: str) -> dict[str, np.ndarray]:
    """Gradients of the batch-mean loss (hwbp's conventions) by torch float64 autograd;
    ``output`` holds the per-sample ``dl_i/dx_L`` of the output population."""
    torch = require_torch()
    m = model.double()
    xt = torch.tensor(x, requires_grad=True)
    out = m(xt)
    out.retain_grad()
    yt = torch.tensor(y)
    if loss == "mse":
        per_sample = 0.5 * ((out - yt) ** 2).sum(dim=1)
    else:
        per_sample = -(yt * torch.log_softmax(out, dim=1)).sum(dim=1)
    m.zero_grad()
    per_sample.mean().backward()
    grads = {k: p.grad.numpy().copy() for k, p in m.named_parameters()}
    grads["output"] = out.grad.numpy() * len(x)
    return grads


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check(path: Path, model, backend: str, tol: float, loss: str = "mse") -> None:
    graph = load_model(path).with_loss(loss)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((BATCH, N_IN))
    y = np.eye(N_OUT)[rng.integers(0, N_OUT, BATCH)] if loss == "ce" else rng.standard_normal((BATCH, N_OUT))
    from hwbp.types import Batch

    inp = graph.inputs[0].name
    batch = Batch.for_model({inp: N_IN}, N_OUT, {inp: x}, y, loss=loss)
    options = {"analysis": "op"} if backend == "spice" else None
    v = verify(graph, batch, backend=backend, options=options)
    ref = torch_gradients(model, x, y, loss)
    want = {k: g for k, g in ref.items() if k != "output"}
    assert set(v.physical.parameters) == set(want), "hwbp's parameters are not the model's"
    for name, g in want.items():
        assert _rel(v.physical.parameters[name], g) <= tol, (name, _rel(v.physical.parameters[name], g))
    assert _rel(v.physical.activations[graph.output], ref["output"]) <= tol


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported[name, dynamo]``: model ``name`` of :data:`MODELS` (seeded by its
    position) exported once per module, in its own directory, and the torch model."""
    torch = require_torch()
    cache: dict[tuple[str, bool], tuple[Path, object]] = {}

    class Lazy:
        def __getitem__(self, key: tuple[str, bool]) -> tuple[Path, object]:
            if key not in cache:
                name, dynamo = key
                torch.manual_seed(sorted(MODELS).index(name))
                model = MODELS[name]()
                d = tmp_path_factory.mktemp(f"{name}_{'dynamo' if dynamo else 'ts'}")
                cache[key] = (export(model, d / "m.onnx", dynamo=dynamo), model)
            return cache[key]

    return Lazy()


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [True, False], ids=["default", "dynamo_false"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_matches_torch_autograd(exported, name: str, dynamo: bool) -> None:
    path, model = exported[name, dynamo]
    check(path, model, "reference", REF_TOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp_tanh", "mlp_softplus", "resmlp"])
def test_reference_ce_matches_torch_autograd(exported, name: str) -> None:
    path, model = exported[name, True]
    check(path, model, "reference", REF_TOL, loss="ce")


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [True, False], ids=["default", "dynamo_false"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_spice_op_matches_torch_autograd(exported, name: str, dynamo: bool) -> None:
    require_ngspice()
    path, model = exported[name, dynamo]
    check(path, model, "spice", SPICE_TOL)


@pytest.mark.slow
def test_default_export_writes_external_data(exported) -> None:
    """The case of the issue: the default export keeps the 20x20 weight in m.onnx.data."""
    import onnx

    path, _ = exported["mlp_tanh", True]
    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and path.with_name("m.onnx.data").stat().st_size > 0
    assert "2.weight" in load_model(path).parameters()


@pytest.mark.slow
def test_bias_free_model_has_no_bias_anywhere(exported, tmp_path: Path) -> None:
    """No grad/<layer>.bias in state.npz, the report, or the trained model."""
    import json

    import onnx

    from hwbp.cli import main

    path, _ = exported["mlp_nobias", True]
    assert not [k for k in load_model(path).parameters() if k.endswith(".bias")]
    assert main(["simulate", str(path), "-o", str(tmp_path / "sim")]) == 0
    files = np.load(tmp_path / "sim" / "state.npz").files
    assert [k for k in files if k.startswith("grad/")] == ["grad/0.weight", "grad/2.weight", "grad/4.weight"]
    assert main(["verify", str(path), "--report", str(tmp_path / "r.json")]) == 0
    assert not [k for k in json.loads((tmp_path / "r.json").read_text())["parameters"] if "bias" in k]
    from hwbp.exporters.onnx import graph_to_onnx_bytes

    proto = onnx.load_from_string(graph_to_onnx_bytes(load_model(path)))
    assert [t.name for t in proto.graph.initializer] == ["0.weight", "2.weight", "4.weight"]


@pytest.mark.slow
@pytest.mark.parametrize("dynamo,opset", [(False, 13), (False, 17), (False, 21), (True, 18), (True, 21)])
def test_opsets(tmp_path: Path, dynamo: bool, opset: int) -> None:
    """Opsets 13-21 (the dynamo exporter writes 18 at least)."""
    torch = require_torch()
    torch.manual_seed(opset)
    model = _mlp("softplus")
    path = export(model, tmp_path / "m.onnx", dynamo=dynamo, opset=opset)
    import onnx

    assert onnx.load(str(path), load_external_data=False).opset_import[0].version == opset
    check(path, model, "reference", REF_TOL)
