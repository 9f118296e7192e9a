"""Exact gradients by plain reverse-mode backprop over the graph IR.

Written independently of the dynamics code (lowering, simulator, readout): it walks
the IR nodes directly, one forward and one backward sweep, with a table of
per-node-type forward and vector-Jacobian-product functions.  Activation values and
derivatives and loss gradients come from the oracle's own
:mod:`hwbp.oracle.derivatives`, never from the tables the dynamics use.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, Dense, Input, Loss
from hwbp.oracle.derivatives import oracle_activation, oracle_loss
from hwbp.types import Batch, Gradients

__all__ = ["forward", "exact_gradients"]

Values = dict[str, np.ndarray]


def _fwd_dense(node: Dense, v: Values) -> np.ndarray:
    return v[node.source] @ node.weight.T + node.bias


def _fwd_activation(node: Activation, v: Values) -> np.ndarray:
    return oracle_activation(node.function).f(v[node.source], node.alpha)


def _fwd_add(node: Add, v: Values) -> np.ndarray:
    return np.sum([v[s] for s in node.sources], axis=0)


_FORWARD: Mapping[type, Callable] = MappingProxyType(
    {Dense: _fwd_dense, Activation: _fwd_activation, Add: _fwd_add}
)


def forward(graph: Graph, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Values of every non-loss node for inputs ``x`` (by input name), shape ``(batch, n)``."""
    values: Values = {}
    for node in graph.nodes:
        if isinstance(node, Input):
            values[node.name] = np.asarray(x[node.name], dtype=np.float64)
        elif not isinstance(node, Loss):
            values[node.name] = _FORWARD[type(node)](node, values)
    return values


def _vjp_dense(node: Dense, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    pgrad[node.weight_name] = g.T @ v[node.source]
    if node.has_bias:
        pgrad[node.bias_name] = g.sum(axis=0)
    acc(node.source, g @ node.weight)


def _vjp_activation(node: Activation, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    acc(node.source, g * oracle_activation(node.function).df(v[node.source], node.alpha))


def _vjp_add(node: Add, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    for s in node.sources:
        acc(s, g)


_VJP: Mapping[type, Callable] = MappingProxyType(
    {Dense: _vjp_dense, Activation: _vjp_activation, Add: _vjp_add, Input: lambda *a: None}
)


def exact_gradients(graph: Graph, batch: Batch) -> Gradients:
    """Exact gradients of the batch-mean loss of ``graph`` (which must have a loss port).

    Returns
    -------
    Gradients
        ``parameters``: ``dL/dθ`` with ``L = mean_i l_i``; ``activations``: per-sample
        ``dl_i/dx_i`` for every non-loss, non-input node; ``loss``: ``L``.
    """
    loss_node = graph.require_loss()
    values = forward(graph, batch.x)
    fn = oracle_loss(loss_node.function)
    out = values[loss_node.source]
    grads: dict[str, np.ndarray] = {loss_node.source: fn.grad(out, batch.y)}

    def acc(name: str, g: np.ndarray) -> None:
        grads[name] = grads[name] + g if name in grads else g

    pgrad: dict[str, np.ndarray] = {}
    for node in reversed(graph.nodes):
        if isinstance(node, Loss) or node.name not in grads:
            continue
        _VJP[type(node)](node, values, grads[node.name], acc, pgrad)
    n = batch.size
    return Gradients(
        parameters={k: v / n for k, v in pgrad.items()},
        activations={k: v for k, v in grads.items() if not isinstance(graph.node(k), Input)},
        loss=float(fn.value(out, batch.y).mean()),
    )
