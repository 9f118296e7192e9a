"""Exact gradients by plain reverse-mode backprop over the graph IR.

Written independently of the dynamics code (lowering, simulator, readout): it walks
the IR nodes directly, one forward and one backward sweep, with a table of
per-node-type forward and vector-Jacobian-product functions.  Activation values and
derivatives and loss gradients come from the oracle's own
:mod:`hwbp.oracle.derivatives`, never from the tables the dynamics use.  Convolution,
pooling and batch normalization work on ``(batch, C, *S)`` arrays in
:mod:`hwbp.oracle.spatial`.  A parameter used by several nodes (tied weights)
accumulates every use's gradient.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from hwbp.ir.activations import activation_parameter
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, AvgPool, BatchNorm, Conv, Dense, Input, Loss
from hwbp.oracle import spatial
from hwbp.oracle.derivatives import oracle_activation, oracle_loss
from hwbp.types import Batch, Gradients

__all__ = ["forward", "exact_gradients"]

Values = dict[str, np.ndarray]


def _fwd_dense(node: Dense, v: Values) -> np.ndarray:
    return node.gain * (v[node.source] @ node.weight.T) + node.bias


def _fwd_activation(node: Activation, v: Values) -> np.ndarray:
    return oracle_activation(node.function).f(v[node.source], activation_parameter(node.function, node.alpha, node.high))


def _fwd_add(node: Add, v: Values) -> np.ndarray:
    return np.sum([v[s] for s in node.sources], axis=0)


def _spatial_fwd(fn: Callable) -> Callable:
    def fwd(node, v: Values) -> np.ndarray:
        x = v[node.source]
        return fn(node, x.reshape((x.shape[0],) + node.in_shape)).reshape(x.shape[0], -1)
    return fwd


_FORWARD: Mapping[type, Callable] = MappingProxyType(
    {Dense: _fwd_dense, Activation: _fwd_activation, Add: _fwd_add,
     Conv: _spatial_fwd(spatial.conv_forward), AvgPool: _spatial_fwd(spatial.avgpool_forward),
     BatchNorm: _spatial_fwd(spatial.batchnorm_forward)}
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
    _pacc(pgrad, node.weight_name, node.gain * (g.T @ v[node.source]))
    if node.has_bias:
        _pacc(pgrad, node.bias_name, g.sum(axis=0))
    acc(node.source, node.gain * (g @ node.weight))


def _pacc(pgrad: dict, name: str, g: np.ndarray) -> None:
    """Add ``g`` to parameter ``name``'s gradient (a tied parameter has several uses)."""
    pgrad[name] = pgrad[name] + g if name in pgrad else g


def _unflat(node, v: Values, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = v[node.source]
    n = x.shape[0]
    return x.reshape((n,) + node.in_shape), g.reshape((n,) + tuple(node.out_shape))


def _vjp_conv(node: Conv, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    x, gy = _unflat(node, v, g)
    gx, gw, gb = spatial.conv_vjp(node, x, gy)
    _pacc(pgrad, node.weight_name, gw)
    if node.has_bias:
        _pacc(pgrad, node.bias_name, gb)
    acc(node.source, gx.reshape(x.shape[0], -1))


def _vjp_avgpool(node: AvgPool, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    x, gy = _unflat(node, v, g)
    acc(node.source, spatial.avgpool_vjp(node, x, gy).reshape(x.shape[0], -1))


def _vjp_batchnorm(node: BatchNorm, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    x, gy = _unflat(node, v, g)
    gx, gg, gb = spatial.batchnorm_vjp(node, x, gy)
    _pacc(pgrad, node.weight_name, gg)
    _pacc(pgrad, node.bias_name, gb)
    acc(node.source, gx.reshape(x.shape[0], -1))


def _vjp_activation(node: Activation, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    p = activation_parameter(node.function, node.alpha, node.high)
    acc(node.source, g * oracle_activation(node.function).df(v[node.source], p))


def _vjp_add(node: Add, v: Values, g: np.ndarray, acc: Callable, pgrad: dict) -> None:
    for s in node.sources:
        acc(s, g)


_VJP: Mapping[type, Callable] = MappingProxyType(
    {Dense: _vjp_dense, Activation: _vjp_activation, Add: _vjp_add, Input: lambda *a: None,
     Conv: _vjp_conv, AvgPool: _vjp_avgpool, BatchNorm: _vjp_batchnorm}
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
