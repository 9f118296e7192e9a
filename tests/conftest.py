"""Shared helpers for the test suite (float64 everywhere, fixed seeds)."""

from __future__ import annotations

import importlib
import io
import warnings
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from hwbp.backend import REGISTRY
from hwbp.ir.graph import Graph
from hwbp.types import Batch

#: A backend package that lives outside hwbp and is found only through its entry point
#: (group ``hwbp.backends``): it is on the path of the whole test session, so the
#: conformance suite and the command line pick it up as a user's install would.
TEMPLATE_BACKEND = Path(__file__).resolve().parent / "fixtures" / "template_backend"
#: Another one, written with the drive function of hwbp.dynamics and scipy's solve_ivp.
SCIPY_BACKEND = Path(__file__).resolve().parent / "fixtures" / "scipy_backend"
if str(TEMPLATE_BACKEND) not in sys.path or str(SCIPY_BACKEND) not in sys.path:
    for _fixture in (TEMPLATE_BACKEND, SCIPY_BACKEND):
        if str(_fixture) not in sys.path:
            sys.path.insert(0, str(_fixture))
    REGISTRY.refresh()


def make_batch(graph: Graph, size: int = 4, seed: int = 0, loss: str = "mse") -> Batch:
    """A reproducible random batch for ``graph``: N(0,1) inputs, N(0,1) or one-hot targets."""
    rng = np.random.default_rng(seed)
    n_out = graph.size(graph.output)
    x = {n.name: rng.standard_normal((size, n.size)) for n in graph.inputs}
    if loss == "ce":
        y = np.eye(n_out)[rng.integers(0, n_out, size)]
    else:
        y = rng.standard_normal((size, n_out))
    return Batch.for_model({n.name: n.size for n in graph.inputs}, n_out, x, y)


@pytest.fixture
def batch_for():
    """Factory fixture: ``batch_for(graph, size=4, seed=0, loss='mse')``."""
    return make_batch


def require_torch() -> ModuleType:
    """torch, for the cross-checks against torch.autograd and torch.onnx.export: a
    pinned test dependency (``make test`` installs torch==2.13.0), so a missing torch
    is a failure, never a skip."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        pytest.fail("torch is not installed: run make test, or pip install -c constraints.txt -e '.[torch]'")


def require_onnxscript() -> None:
    """onnxscript, which torch's default (dynamo) exporter needs: installed with torch
    (the ``torch`` extra), so a missing one is a failure, never a skip."""
    try:
        importlib.import_module("onnxscript")
    except ImportError:
        pytest.fail("onnxscript is not installed: run make test, or pip install -c constraints.txt -e '.[torch]'")


def torch_onnx_bytes(model, n_in: int, *, dynamo: bool = False, constant_folding: bool = True) -> bytes:
    """The ONNX bytes of ``model`` taking ``[batch, n_in]`` float64: the TorchScript
    exporter (``constant_folding=False`` keeps batch normalization a node), or torch's
    default (dynamo) exporter with the weights kept inside the file."""
    torch = require_torch()
    x = (torch.zeros(2, n_in, dtype=torch.float64),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            require_onnxscript()
            return torch.onnx.export(model, x, dynamo=True, verbose=False).model_proto.SerializeToString()
        buf = io.BytesIO()
        torch.onnx.export(model, x, buf, dynamo=False, do_constant_folding=constant_folding)
        return buf.getvalue()


def torch_gradients(model, x: np.ndarray, y: np.ndarray, loss: str = "mse") -> dict[str, np.ndarray]:
    """Batch-mean loss gradients by torch float64 autograd (hwbp's mse: ``0.5 |out - y|^2``;
    ce: softmax cross-entropy with probability targets)."""
    torch = require_torch()
    model.zero_grad()
    out = model(torch.from_numpy(np.array(x)))
    yt = torch.from_numpy(np.array(y))
    if loss == "mse":
        value = (0.5 * ((out - yt) ** 2).sum(dim=1)).mean()
    else:
        value = -(yt * torch.log_softmax(out, dim=1)).sum(dim=1).mean()
    value.backward()
    return {k: p.grad.numpy().copy() for k, p in model.named_parameters()}


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--conformance spread|full``: see ``tests/conformance/conftest.py``."""
    parser.addoption("--conformance", choices=("spread", "full"), default="spread",
                     help="conformance cases of the expensive profiles: every third (spread, default) or all (full)")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze the objects alive after collection (every test module, torch, Brian2, Lava
    imported) out of the cyclic garbage collector's reach: a full collection then scans
    only what the tests create.  Brian2 runs one at the start of every ``Network.run``
    (0.16 s each once torch, Brian2 and Lava are imported, more with every test module;
    two per simulation), and Python's own oldest-generation collections scan the whole
    heap too.  Nothing a test creates is frozen."""
    import gc

    gc.collect()
    gc.freeze()
