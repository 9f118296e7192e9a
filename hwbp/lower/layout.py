"""A structured weight (convolution, pooling, batch norm): the matrix of a term built
from one parameter, held as an operator rather than a dense matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwbp.errors import ModelError
from hwbp.ir.nodes import frozen_array

__all__ = ["Layout"]


class Layout:
    """A structured (sparse) weight built from one parameter: the term's matrix is

        W[rows[m], cols[m]] = scale[m] * theta[index[m]]   (theta[-1] read as 1: a fixed entry)

    with ``theta`` the term's flattened weight parameter (all other entries zero), its
    bias ``b[j] = beta[bias_index[j]]`` from the flattened bias parameter, and its
    input shifted by a fixed ``offset``: the term computes ``f(W (u - offset) + b)``.

    A convolution is a layout whose ``index`` sends every position to its kernel
    entry, so the one kernel serves every use and ``dL/dtheta_k`` is the sum of
    ``scale[m] * (e uᵀ)[rows[m], cols[m]]`` over the entries ``m`` with ``index[m] = k``.
    A fixed linear map (average pooling) has ``index = -1`` throughout and no parameter.

    A convolution carries its :class:`~hwbp.lower.operators.ConvGeometry` (``conv``)
    instead of entry arrays: its entries are built only when asked for (emission of a
    netlist, :meth:`mask`), and :func:`term_matrix` applies it as a convolution.

    Attributes
    ----------
    shape : tuple of int
        ``(out, in)`` of the matrix.
    rows, cols, index : numpy.ndarray
        int64 arrays of equal length, one entry per structural non-zero.
    scale : numpy.ndarray
        float64 factor per entry.
    bias_index : numpy.ndarray or None
        int64 ``(out,)``: which bias parameter entry each output takes.
    offset : numpy.ndarray or None
        float64 ``(in,)`` fixed input offset (batch-norm running mean), or None for 0.
    conv : ConvGeometry or None
        The convolution this layout is (entries then derived from it on demand).
    """

    def __init__(self, shape: tuple[int, int], rows: np.ndarray | None = None, cols: np.ndarray | None = None,
                 index: np.ndarray | None = None, scale: np.ndarray | None = None,
                 bias_index: np.ndarray | None = None, offset: np.ndarray | None = None,
                 conv: Any = None) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.conv = conv
        self._entries: tuple[np.ndarray, ...] | None = None
        if conv is None:
            if rows is None or cols is None or index is None or scale is None:
                raise ModelError("a layout needs rows, cols, index and scale, or a convolution geometry")
            self._entries = self._freeze(rows, cols, index, scale)
        self.bias_index = None if bias_index is None else _frozen_int(bias_index)
        self.offset = None if offset is None else frozen_array(offset)

    @staticmethod
    def _freeze(rows, cols, index, scale) -> tuple[np.ndarray, ...]:
        return _frozen_int(rows), _frozen_int(cols), _frozen_int(index), frozen_array(scale)

    def _coo(self) -> tuple[np.ndarray, ...]:
        if self._entries is None:
            from hwbp.lower.operators import conv_entries

            r, c, ix = conv_entries(self.conv)
            self._entries = self._freeze(r, c, ix, np.ones(r.size))
        return self._entries

    @property
    def rows(self) -> np.ndarray:
        """Row of each structural non-zero."""
        return self._coo()[0]

    @property
    def cols(self) -> np.ndarray:
        """Column of each structural non-zero."""
        return self._coo()[1]

    @property
    def index(self) -> np.ndarray:
        """Parameter entry of each structural non-zero (-1: a fixed entry)."""
        return self._coo()[2]

    @property
    def scale(self) -> np.ndarray:
        """Fixed factor of each structural non-zero."""
        return self._coo()[3]

    @property
    def nnz(self) -> int:
        """Number of structural non-zeros (synapses)."""
        return self.conv.nnz if self._entries is None else int(self._entries[0].size)

    def operator(self, theta: np.ndarray | None) -> Any:
        """The matrix for the weight parameter ``theta`` (None: fixed map) as an operator
        with ``u @ W.T``, ``e @ W`` and ``.shape``: a
        :class:`~hwbp.lower.operators.ConvOperator` for a convolution, otherwise a
        ``scipy.sparse`` CSR array.  Never a dense matrix."""
        from hwbp.lower.operators import ConvOperator, sparse_layout_matrix

        if self.conv is not None:
            return ConvOperator(self.conv, theta)
        rows, cols, index, scale = self._coo()
        values = scale.copy()
        if theta is not None:
            flat = np.asarray(theta, dtype=np.float64).reshape(-1)
            tied = index >= 0
            values[tied] *= flat[index[tied]]
        return sparse_layout_matrix(self.shape, rows, cols, values)

    def matrix(self, theta: np.ndarray | None) -> np.ndarray:
        """The dense ``(out, in)`` matrix for the weight parameter ``theta`` (None: fixed
        map); for emission and small checks only (:meth:`operator` for computing)."""
        return self.operator(theta).toarray()

    def mask(self) -> np.ndarray:
        """Boolean ``(out, in)``: the structural non-zeros (where a synapse exists)."""
        m = np.zeros(self.shape, dtype=bool)
        m[self.rows, self.cols] = True
        return m

    def weight_gradient(self, e: np.ndarray, u: np.ndarray, size: int) -> np.ndarray:
        """Flat gradient of ``theta`` (``size`` entries) of ``sum_b e_b u_bᵀ`` (``e``
        ``(batch, out)``, ``u`` ``(batch, in)``): the sum over every use of each entry,
        computed at the structural non-zeros only (a convolution as a convolution)."""
        if self.conv is not None:
            from hwbp.lower.operators import conv_weight_gradient

            return conv_weight_gradient(self.conv, e, u)
        rows, cols, index, scale = self._coo()
        tied = np.flatnonzero(index >= 0)
        vals = np.empty(tied.size)
        step = max(1, (32 * 2**20) // (8 * max(e.shape[0], 1)))  # bound the gathered (batch, chunk) arrays
        for s in range(0, tied.size, step):
            m = tied[s:s + step]
            vals[s:s + step] = scale[m] * np.einsum("bm,bm->m", e[:, rows[m]], u[:, cols[m]])
        return np.bincount(index[tied], weights=vals, minlength=size)


def _frozen_int(v: np.ndarray) -> np.ndarray:
    a = np.array(v, dtype=np.int64)
    a.setflags(write=False)
    return a
