"""Forward and vector-Jacobian products of convolution, average pooling and batch
normalization on ``(batch, C, *S)`` arrays, for the oracle.

Written from the operators' definitions (zero padding, then a direct sum over kernel
offsets of strided slices), sharing nothing with the lowering's index layouts
(:mod:`hwbp.lower.structured`), so the two check each other.
"""

from __future__ import annotations

import itertools

import numpy as np

from hwbp.ir.nodes import AvgPool, BatchNorm, Conv

__all__ = ["conv_forward", "conv_vjp", "avgpool_forward", "avgpool_vjp", "batchnorm_forward", "batchnorm_vjp"]


def _pad(x: np.ndarray, pads: tuple[int, ...]) -> np.ndarray:
    d = len(pads) // 2
    return np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[d + i]) for i in range(d)])


def _tap(k: tuple[int, ...], out_sp: tuple[int, ...], strides, dilations) -> tuple[slice, ...]:
    """Slices of the padded input that tap ``k`` of every output position reads."""
    return tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + (out_sp[i] - 1) * strides[i] + 1, strides[i])
                 for i in range(len(k)))


def conv_forward(node: Conv, x: np.ndarray) -> np.ndarray:
    """``y`` of shape ``(batch, C_out, *S_out)`` for ``x`` of ``(batch, C_in, *S)``."""
    w, g = node.weight, node.groups
    out_sp = node.out_shape[1:]
    xp = _pad(x, node.pads)
    c_in_g, c_out_g = w.shape[1], w.shape[0] // g
    y = np.zeros((x.shape[0], w.shape[0]) + tuple(out_sp))
    n = x.shape[0]
    for k in itertools.product(*[range(n) for n in w.shape[2:]]):
        patch = xp[(slice(None), slice(None)) + _tap(k, out_sp, node.strides, node.dilations)]
        for gi in range(g):
            xs = patch[:, gi * c_in_g:(gi + 1) * c_in_g].reshape(n, c_in_g, -1)  # (batch, c, positions)
            ws = np.ascontiguousarray(w[(slice(gi * c_out_g, (gi + 1) * c_out_g), slice(None)) + k])  # (o, c)
            y[:, gi * c_out_g:(gi + 1) * c_out_g] += np.matmul(ws, xs).reshape((n, c_out_g) + tuple(out_sp))
    return y + node.bias.reshape((1, -1) + (1,) * len(out_sp)) if node.has_bias else y


def conv_vjp(node: Conv, x: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dW, db)`` for output cotangent ``gy`` (sums over the batch for ``dW``, ``db``)."""
    w, g = node.weight, node.groups
    out_sp = gy.shape[2:]
    xp = _pad(x, node.pads)
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    c_in_g, c_out_g = w.shape[1], w.shape[0] // g
    n = gy.shape[0]
    for k in itertools.product(*[range(n) for n in w.shape[2:]]):
        sl = (slice(None), slice(None)) + _tap(k, out_sp, node.strides, node.dilations)
        patch = xp[sl]
        for gi in range(g):
            oc, ic = slice(gi * c_out_g, (gi + 1) * c_out_g), slice(gi * c_in_g, (gi + 1) * c_in_g)
            gyo = gy[:, oc].reshape(n, c_out_g, -1)  # (batch, o, positions)
            xs = patch[:, ic].reshape(n, c_in_g, -1)
            gw[(oc, slice(None)) + k] += np.matmul(gyo, xs.transpose(0, 2, 1)).sum(axis=0)
            view = gxp[sl]
            view[:, ic] += np.matmul(np.ascontiguousarray(w[(oc, slice(None)) + k].T), gyo).reshape((n, c_in_g) + tuple(out_sp))
            gxp[sl] = view
    d = len(out_sp)
    crop = (slice(None), slice(None)) + tuple(slice(node.pads[i], node.pads[i] + x.shape[2 + i]) for i in range(d))
    return gxp[crop], gw, gy.sum(axis=tuple(i for i in range(gy.ndim) if i != 1))


def _pool_count(node: AvgPool, x_shape: tuple[int, ...]) -> np.ndarray:
    """Divisor per output position (broadcastable to ``(1, 1, *S_out)``)."""
    out_sp = node.out_shape[1:]
    if node.count_include_pad:
        return np.full((1, 1) + tuple(out_sp), float(np.prod(node.kernel)))
    ones = _pad(np.ones((1, 1) + tuple(x_shape[2:])), node.pads)
    cnt = np.zeros((1, 1) + tuple(out_sp))
    for k in itertools.product(*[range(n) for n in node.kernel]):
        cnt += ones[(slice(None), slice(None)) + _tap(k, out_sp, node.strides, (1,) * len(k))]
    return cnt


def avgpool_forward(node: AvgPool, x: np.ndarray) -> np.ndarray:
    """Mean over each window, ``(batch, C, *S_out)``."""
    out_sp = node.out_shape[1:]
    xp = _pad(x, node.pads)
    y = np.zeros(x.shape[:2] + tuple(out_sp))
    for k in itertools.product(*[range(n) for n in node.kernel]):
        y += xp[(slice(None), slice(None)) + _tap(k, out_sp, node.strides, (1,) * len(k))]
    return y / _pool_count(node, x.shape)


def avgpool_vjp(node: AvgPool, x: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """``dx`` for output cotangent ``gy``."""
    out_sp = gy.shape[2:]
    gyc = gy / _pool_count(node, x.shape)
    gxp = np.zeros_like(_pad(x, node.pads))
    for k in itertools.product(*[range(n) for n in node.kernel]):
        sl = (slice(None), slice(None)) + _tap(k, out_sp, node.strides, (1,) * len(k))
        gxp[sl] = gxp[sl] + gyc
    d = len(out_sp)
    crop = (slice(None), slice(None)) + tuple(slice(node.pads[i], node.pads[i] + x.shape[2 + i]) for i in range(d))
    return gxp[crop]


def _bn_shape(node: BatchNorm, x: np.ndarray) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.ndim - 2)


def batchnorm_forward(node: BatchNorm, x: np.ndarray) -> np.ndarray:
    """``gamma (x - mean) / sqrt(var + eps) + beta`` per channel."""
    s = _bn_shape(node, x)
    xhat = (x - node.mean.reshape(s)) / np.sqrt(node.var + node.epsilon).reshape(s)
    return node.weight.reshape(s) * xhat + node.bias.reshape(s)


def batchnorm_vjp(node: BatchNorm, x: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dgamma, dbeta)`` for output cotangent ``gy``."""
    s = _bn_shape(node, x)
    inv = 1.0 / np.sqrt(node.var + node.epsilon)
    xhat = (x - node.mean.reshape(s)) * inv.reshape(s)
    axes = tuple(i for i in range(x.ndim) if i != 1)
    return gy * (node.weight * inv).reshape(s), (gy * xhat).sum(axis=axes), gy.sum(axis=axes)
