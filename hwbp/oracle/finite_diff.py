"""Central finite differences of the batch loss, to cross-check the oracle."""

from __future__ import annotations

import numpy as np

from hwbp.ir.graph import Graph
from hwbp.oracle.backprop import forward
from hwbp.oracle.derivatives import oracle_loss
from hwbp.types import Batch

__all__ = ["batch_loss", "finite_difference_gradients"]


def batch_loss(graph: Graph, batch: Batch) -> float:
    """Batch-mean loss of ``graph`` on ``batch``."""
    loss = graph.require_loss()
    values = forward(graph, batch.x)
    return float(oracle_loss(loss.function).value(values[loss.source], batch.y).mean())


def finite_difference_gradients(graph: Graph, batch: Batch, *, eps: float = 1e-6) -> dict[str, np.ndarray]:
    """``dL/dθ`` for every parameter by central differences of step ``eps``.

    Costs two forward passes per scalar parameter: use on small models only.
    """
    out: dict[str, np.ndarray] = {}
    for name, value in graph.parameters().items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus, minus = value.copy(), value.copy()
            plus[idx] += eps
            minus[idx] -= eps
            lp = batch_loss(graph.with_parameters({name: plus}), batch)
            lm = batch_loss(graph.with_parameters({name: minus}), batch)
            g[idx] = (lp - lm) / (2 * eps)
        out[name] = g
    return out
