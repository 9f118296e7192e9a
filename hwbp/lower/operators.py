"""Structured term matrices as operators: a convolution as a convolution, every other
layout as a sparse matrix, never a dense ``(out, in)`` array.

A term's matrix ``W`` is only ever applied as ``u @ W.T`` (forward, ``u`` of shape
``(batch, in)``) and ``e @ W`` (sensitivity, ``e`` of shape ``(batch, out)``), and
read for ``.shape``.  :class:`ConvOperator` implements those two products for a
convolution by lowering windows to columns (``im2col``) and one matrix product per
group, processing the batch in chunks so that the column buffer stays bounded
(:data:`COLUMN_BYTES`); it holds the kernel only.  Pooling and batch normalization
layouts become ``scipy.sparse`` CSR matrices (:func:`sparse_layout_matrix`), whose
products have the same form.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import prod

import numpy as np
import scipy.sparse as sp

__all__ = ["ConvGeometry", "ConvOperator", "conv_entries", "conv_weight_gradient", "sparse_layout_matrix",
           "COLUMN_BYTES"]

#: Upper bound, in bytes, of one column buffer (window values of a chunk of samples).
COLUMN_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ConvGeometry:
    """Shape of a convolution over flat row-major ``(C, *S)`` vectors.

    Attributes
    ----------
    in_shape : tuple of int
        ``(C_in, *S)``.
    out_shape : tuple of int
        ``(C_out, *S_out)``.
    kernel : tuple of int
        Spatial kernel size ``K`` (the weight has shape ``(C_out, C_in / groups, *K)``).
    strides, dilations : tuple of int
        Per spatial axis.
    pads : tuple of int
        ``(lo_1, .., lo_d, hi_1, .., hi_d)`` zero padding.
    groups : int
        Channel groups.
    """

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    groups: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        """``(out, in)`` of the term's matrix."""
        return prod(self.out_shape), prod(self.in_shape)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """``(C_out, C_in / groups, *K)``."""
        return (self.out_shape[0], self.in_shape[0] // self.groups) + tuple(self.kernel)

    @property
    def nnz(self) -> int:
        """Structural non-zeros of the matrix (synapses): window taps inside the input."""
        inside = 1
        for i in range(len(self.kernel)):
            pos = np.arange(self.out_shape[1 + i]) * self.strides[i] - self.pads[i]
            inside *= sum(int(np.count_nonzero((pos + k * self.dilations[i] >= 0)
                                               & (pos + k * self.dilations[i] < self.in_shape[1 + i])))
                          for k in range(self.kernel[i]))
        return self.out_shape[0] * (self.in_shape[0] // self.groups) * inside

    def taps(self) -> list[tuple[int, tuple[slice, ...]]]:
        """``(flat kernel offset, slices of the padded input)`` per kernel offset."""
        out_sp = self.out_shape[1:]
        res = []
        for j, k in enumerate(itertools.product(*[range(n) for n in self.kernel])):
            res.append((j, tuple(slice(k[i] * self.dilations[i],
                                       k[i] * self.dilations[i] + (out_sp[i] - 1) * self.strides[i] + 1,
                                       self.strides[i]) for i in range(len(k)))))
        return res

    def padded(self, x: np.ndarray) -> np.ndarray:
        """``x`` of shape ``(b, C, *S)`` with its zero padding."""
        d = len(self.kernel)
        if not any(self.pads):
            return x
        return np.pad(x, [(0, 0), (0, 0)] + [(self.pads[i], self.pads[d + i]) for i in range(d)])

    def chunk(self, batch: int) -> int:
        """Samples per chunk so that one column buffer stays within :data:`COLUMN_BYTES`."""
        per_sample = 8 * self.in_shape[0] * prod(self.kernel) * prod(self.out_shape[1:])
        return max(1, min(batch, COLUMN_BYTES // max(per_sample, 1)))

    def columns(self, x: np.ndarray) -> np.ndarray:
        """Window values ``(b, G, C_in/G * K, P_out)`` of the flat inputs ``x`` ``(b, in)``."""
        b = x.shape[0]
        c, kk, p = self.in_shape[0], prod(self.kernel), prod(self.out_shape[1:])
        xp = self.padded(x.reshape((b,) + tuple(self.in_shape)))
        cols = np.empty((b, c, kk) + tuple(self.out_shape[1:]))
        for j, sl in self.taps():
            cols[:, :, j] = xp[(slice(None), slice(None)) + sl]
        return cols.reshape(b, self.groups, (c // self.groups) * kk, p)

    def fold(self, cols: np.ndarray) -> np.ndarray:
        """Adjoint of :meth:`columns`: sum window values back onto flat inputs ``(b, in)``."""
        b = cols.shape[0]
        c, kk = self.in_shape[0], prod(self.kernel)
        d = len(self.kernel)
        cols = cols.reshape((b, c, kk) + tuple(self.out_shape[1:]))
        padded = tuple(self.in_shape[1 + i] + self.pads[i] + self.pads[d + i] for i in range(d))
        gx = np.zeros((b, c) + padded)
        for j, sl in self.taps():
            gx[(slice(None), slice(None)) + sl] += cols[:, :, j]
        crop = tuple(slice(self.pads[i], self.pads[i] + self.in_shape[1 + i]) for i in range(d))
        return gx[(slice(None), slice(None)) + crop].reshape(b, -1)


def conv_entries(geo: ConvGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, index)`` of every structural non-zero, sorted by row then column:
    entry ``(o, p) <- (c_in, p s + k dil - pad)`` takes kernel entry ``W[o, c, k]``."""
    out_sp, in_sp = geo.out_shape[1:], geo.in_shape[1:]
    c_out, c_per = geo.out_shape[0], geo.in_shape[0] // geo.groups
    n_out_sp, n_in_sp, kk = prod(out_sp), prod(in_sp), prod(geo.kernel)
    per_group = c_out // geo.groups
    grids = np.meshgrid(*[np.arange(n) for n in out_sp], indexing="ij")
    out_flat = np.ravel_multi_index(tuple(g.ravel() for g in grids), out_sp) if out_sp else np.zeros(1, int)
    o = np.arange(c_out)[:, None, None]
    c = np.arange(c_per)[None, :, None]
    rows, cols, index = [], [], []
    for j, k in enumerate(itertools.product(*[range(n) for n in geo.kernel])):
        coords = [g.ravel() * geo.strides[i] + k[i] * geo.dilations[i] - geo.pads[i] for i, g in enumerate(grids)]
        ok = np.ones(out_flat.shape, dtype=bool)
        for i, x in enumerate(coords):
            ok &= (x >= 0) & (x < in_sp[i])
        op = out_flat[ok][None, None, :]
        ip = np.ravel_multi_index(tuple(x[ok] for x in coords), in_sp)[None, None, :]
        shape = (c_out, c_per, op.shape[2])
        rows.append(np.broadcast_to(o * n_out_sp + op, shape).ravel())
        cols.append(np.broadcast_to(((o // per_group) * c_per + c) * n_in_sp + ip, shape).ravel())
        index.append(np.broadcast_to((o * c_per + c) * kk + j, shape).ravel())
    r, cl, ix = (np.concatenate(v).astype(np.int64) for v in (rows, cols, index))
    order = np.lexsort((cl, r))
    return r[order], cl[order], ix[order]


class ConvOperator:
    """The matrix of a convolution with kernel ``weight``, applied as a convolution.

    Supports ``u @ op.T`` (``(b, in) -> (b, out)``, the convolution), ``e @ op``
    (``(b, out) -> (b, in)``, its transpose), ``.shape``, ``.nnz`` and
    :meth:`toarray`.  Holds the kernel only (``nbytes``).
    """

    __array_ufunc__ = None  # ``ndarray @ op`` defers to ``op.__rmatmul__``

    def __init__(self, geometry: ConvGeometry, weight: np.ndarray, *, transposed: bool = False) -> None:
        self.geometry = geometry
        g = geometry.groups
        w = np.asarray(weight, dtype=np.float64).reshape(geometry.weight_shape)
        self.weight = w
        self._w = np.ascontiguousarray(w.reshape(g, w.shape[0] // g, -1))  # (G, O/G, C/G * K)
        self._wt = np.ascontiguousarray(np.swapaxes(self._w, 1, 2))  # (G, C/G * K, O/G)
        self.transposed = transposed
        out, inn = geometry.shape
        self.shape = (inn, out) if transposed else (out, inn)
        self._adjoint_conv = _adjoint_as_conv(geometry, w)

    @property
    def T(self) -> "ConvOperator":  # noqa: N802 - the matrix transpose
        op = ConvOperator.__new__(ConvOperator)
        op.__dict__.update(self.__dict__)
        op.transposed = not self.transposed
        op.shape = self.shape[::-1]
        return op

    @property
    def nnz(self) -> int:
        """Structural non-zeros of the matrix it stands for."""
        return self.geometry.nnz

    @property
    def nbytes(self) -> int:
        """Bytes the operator holds (the kernel, its transpose and flipped copy)."""
        extra = 0 if self._adjoint_conv is None else self._adjoint_conv._w.nbytes
        return self._w.nbytes + self._wt.nbytes + extra

    def forward(self, u: np.ndarray) -> np.ndarray:
        """``u @ W.T``: the convolution of flat inputs ``u`` ``(b, in)`` -> ``(b, out)``."""
        geo = self.geometry
        b = u.shape[0]
        out = np.empty((b, geo.shape[0]))
        step = geo.chunk(b)
        for s in range(0, b, step):
            cols = geo.columns(u[s:s + step])
            y = np.matmul(self._w, cols)  # (b, G, O/G, P)
            out[s:s + step] = y.reshape(y.shape[0], -1)
        return out

    def adjoint(self, e: np.ndarray) -> np.ndarray:
        """``e @ W``: the transposed convolution of ``e`` ``(b, out)`` -> ``(b, in)``."""
        if self._adjoint_conv is not None:  # stride 1: a convolution with the flipped kernel
            return self._adjoint_conv.forward(e)
        geo = self.geometry
        b = e.shape[0]
        g, p = geo.groups, prod(geo.out_shape[1:])
        out = np.empty((b, geo.shape[1]))
        step = geo.chunk(b)
        for s in range(0, b, step):
            ec = e[s:s + step].reshape(-1, g, geo.out_shape[0] // g, p)
            out[s:s + step] = geo.fold(np.matmul(self._wt, ec))
        return out

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        squeeze = x.ndim == 1
        x2 = x[None, :] if squeeze else x
        y = self.forward(x2) if self.transposed else self.adjoint(x2)
        return y[0] if squeeze else y

    def toarray(self) -> np.ndarray:
        """The dense matrix (small layers only: emission, tests)."""
        r, c, ix = conv_entries(self.geometry)
        w = sp.csr_array((self.weight.reshape(-1)[ix], (r, c)), shape=self.geometry.shape).toarray()
        return w.T if self.transposed else w


def _adjoint_as_conv(geo: ConvGeometry, w: np.ndarray) -> "ConvOperator | None":
    """The transpose of a stride-1 convolution as a convolution: kernel ``W[o, c, k]``
    becomes ``W'[c, o, K - 1 - k]`` (per group), padding ``dil (K - 1) - pad`` each side;
    None where that does not hold (a stride, or padding beyond the dilated kernel)."""
    d = len(geo.kernel)
    span = [geo.dilations[i] * (geo.kernel[i] - 1) for i in range(d)]
    if any(s != 1 for s in geo.strides) or any(geo.pads[i] > span[i] or geo.pads[d + i] > span[i]
                                               for i in range(d)):
        return None
    g = geo.groups
    og = geo.out_shape[0] // g
    flip = (slice(None), slice(None)) + (slice(None, None, -1),) * d
    wt = np.concatenate([np.swapaxes(w[i * og:(i + 1) * og], 0, 1)[flip] for i in range(g)])  # (C_in, O/G, *K)
    adj = ConvGeometry(in_shape=tuple(geo.out_shape), out_shape=tuple(geo.in_shape), kernel=tuple(geo.kernel),
                       strides=tuple(geo.strides), dilations=tuple(geo.dilations), groups=g,
                       pads=tuple(span[i] - geo.pads[i] for i in range(d)) + tuple(span[i] - geo.pads[d + i]
                                                                                for i in range(d)))
    op = ConvOperator.__new__(ConvOperator)
    op.geometry, op.weight, op.transposed, op.shape = adj, wt, True, adj.shape[::-1]
    op._w = np.ascontiguousarray(wt.reshape(g, wt.shape[0] // g, -1))
    op._wt = None
    op._adjoint_conv = None
    return op


def conv_weight_gradient(geo: ConvGeometry, e: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``sum_b`` of ``e_b u_bᵀ`` folded onto the kernel: the flat kernel gradient
    (``C_out * C_in/G * prod(K)`` entries) for ``e`` ``(b, out)`` and ``u`` ``(b, in)``."""
    b = e.shape[0]
    g, p = geo.groups, prod(geo.out_shape[1:])
    acc = None
    step = geo.chunk(b)
    for s in range(0, b, step):
        cols = geo.columns(u[s:s + step])  # (b, G, CK, P)
        ec = e[s:s + step].reshape(-1, g, geo.out_shape[0] // g, p)
        part = np.matmul(ec, np.swapaxes(cols, 2, 3)).sum(axis=0)  # (G, O/G, CK)
        acc = part if acc is None else acc + part
    return acc.reshape(-1)


def sparse_layout_matrix(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> sp.csr_array:
    """CSR ``(out, in)`` matrix with ``values`` at ``(rows, cols)`` (repeated entries add)."""
    return sp.csr_array((values, (rows, cols)), shape=shape)
