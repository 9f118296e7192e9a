"""Structured linear terms: convolutions, average pooling and batch normalization as
:class:`~hwbp.lower.system.Layout` s over flat per-sample vectors.

Layout of a ``[C, *S]`` tensor: flattened row-major, so component ``(c, p_1, .., p_d)``
sits at ``((c * S_1 + p_1) * S_2 + p_2) ...``, as ONNX ``Flatten`` and PyTorch
``x.flatten(1)`` lay it out.  Every structural non-zero of the term's matrix records
which parameter entry it takes (the kernel entry of a convolution, the channel's
gamma of a batch normalization), so each parameter stays one value however many
synapses realize it.
"""

from __future__ import annotations

import itertools

import numpy as np

from hwbp.ir.nodes import AvgPool, BatchNorm, Conv
from hwbp.lower.operators import ConvGeometry
from hwbp.lower.system import Layout

__all__ = ["conv_layout", "avgpool_layout", "batchnorm_layout"]


def _windows(in_shape: tuple[int, ...], out_spatial: tuple[int, ...], kernel: tuple[int, ...],
             strides: tuple[int, ...], pads: tuple[int, ...], dilations: tuple[int, ...]):
    """Yield ``(k, out_pos, in_pos)`` per kernel offset ``k``: flat spatial indices of
    the output positions whose window tap ``k`` lands inside the input, and of those
    input positions."""
    d = len(kernel)
    spatial = in_shape[1:]
    grids = np.meshgrid(*[np.arange(n) for n in out_spatial], indexing="ij")
    out_flat = np.ravel_multi_index(tuple(g.ravel() for g in grids), out_spatial) if d else np.zeros(1, int)
    for k in itertools.product(*[range(n) for n in kernel]):
        coords = [g.ravel() * strides[i] + k[i] * dilations[i] - pads[i] for i, g in enumerate(grids)]
        ok = np.ones(out_flat.shape, dtype=bool)
        for i, c in enumerate(coords):
            ok &= (c >= 0) & (c < spatial[i])
        inside = tuple(c[ok] for c in coords)
        yield k, out_flat[ok], np.ravel_multi_index(inside, spatial)


def conv_layout(node: Conv) -> Layout:
    """The layout of ``node``: entry ``(o, p) <- (c_in, p s + k dil - pad)`` takes kernel
    entry ``W[o, c, k]`` (``c`` the channel within the group); bias by output channel.
    It carries the convolution's geometry, so that it is applied as a convolution and
    its entries (:func:`~hwbp.lower.operators.conv_entries`) are built only on demand."""
    geo = ConvGeometry(in_shape=tuple(int(n) for n in node.in_shape), out_shape=tuple(int(n) for n in node.out_shape),
                       kernel=tuple(int(n) for n in node.weight.shape[2:]), strides=tuple(node.strides),
                       pads=tuple(node.pads), dilations=tuple(node.dilations), groups=int(node.groups))
    n_out_sp = int(np.prod(node.out_shape[1:]))
    return Layout(shape=geo.shape, conv=geo, bias_index=np.repeat(np.arange(geo.out_shape[0]), n_out_sp))


def avgpool_layout(node: AvgPool) -> Layout:
    """The fixed layout of ``node`` (no parameter): ``1 / n(p)`` on every window tap."""
    out_shape = node.out_shape
    d = len(node.kernel)
    n_out_sp = int(np.prod(out_shape[1:]))
    n_in_sp = int(np.prod(node.in_shape[1:]))
    taps = list(_windows(node.in_shape, out_shape[1:], node.kernel, node.strides, node.pads, (1,) * d))
    if node.count_include_pad:
        count = np.full(n_out_sp, float(np.prod(node.kernel)))
    else:
        count = np.zeros(n_out_sp)
        for _, op, _ in taps:
            count[op] += 1.0
    rows, cols, scale = [], [], []
    for _, op, ip in taps:
        for c in range(node.in_shape[0]):
            rows.append(c * n_out_sp + op)
            cols.append(c * n_in_sp + ip)
            scale.append(1.0 / count[op])
    rows_a, cols_a, scale_a = (np.concatenate(v) for v in (rows, cols, scale))
    order = np.lexsort((cols_a, rows_a))
    return Layout(
        shape=(node.in_shape[0] * n_out_sp, int(np.prod(node.in_shape))),
        rows=rows_a[order], cols=cols_a[order], index=np.full(order.size, -1), scale=scale_a[order],
    )


def batchnorm_layout(node: BatchNorm) -> Layout:
    """The diagonal layout of ``node``: ``W[j, j] = gamma[c] / sqrt(var[c] + eps)`` (entry
    ``c`` of gamma, scale ``1 / sqrt(var + eps)``), bias ``beta[c]``, input offset
    ``mean[c]``, with ``c`` the channel of component ``j``."""
    n_sp = int(np.prod(node.in_shape[1:]))
    channel = np.repeat(np.arange(node.in_shape[0]), n_sp)
    n = channel.size
    inv = 1.0 / np.sqrt(node.var + node.epsilon)
    return Layout(
        shape=(n, n), rows=np.arange(n), cols=np.arange(n), index=channel, scale=inv[channel],
        bias_index=channel, offset=node.mean[channel],
    )
