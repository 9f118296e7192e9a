"""Shared helpers for the test suite (float64 everywhere, fixed seeds)."""

from __future__ import annotations

import importlib
import os
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
if str(TEMPLATE_BACKEND) not in sys.path:
    sys.path.insert(0, str(TEMPLATE_BACKEND))
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
    """torch, for the cross-checks against torch.autograd and torch.onnx.export.

    torch is an optional dependency: without it these checks are skipped on a
    developer's machine, but under CI (``CI`` set), where ``make test`` installs
    torch==2.13.0, a missing torch is a failure, never a silent skip.
    """
    try:
        return importlib.import_module("torch")
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("torch is missing under CI: make test should have installed torch==2.13.0")
        pytest.skip("torch not installed: the torch cross-checks need it (make test installs torch==2.13.0)")


def require_onnxscript() -> None:
    """onnxscript, which torch's default (dynamo) exporter needs: a failure under CI
    (``CI`` set, where the torch extra installs it), a skip elsewhere."""
    try:
        importlib.import_module("onnxscript")
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("onnxscript is missing under CI: torch's default exporter needs it")
        pytest.skip("onnxscript not installed: torch's default exporter needs it")
