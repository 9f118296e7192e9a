"""The lowered dynamics: populations of conjugate node pairs and their couplings.

A :class:`DynamicsSystem` is the single thing every backend consumes.  For each
population ``v`` (one per activation-producing IR node after fusion) the state is a
pair of node vectors ``x+_v``, ``x-_v``; with ``xbar = (x+ + x-)/2`` and tension
``T = x+ - x-`` the dynamics are (DESIGN.md section 2)::

    tau dxbar_v/dt = -xbar_v + sum_k f_k(a_k),  a_k = g_k W_k φ_k(xbar_{u_k}) + b_k     (forward)
    tau dT_v/dt    = -T_v + sum_{(p,k): u_k = v} φ_k'(xbar_v) ⊙ g_k W_kᵀ (f_k'(a_k) ⊙ T_p)  (sensitivity)
                          + beta * grad_l(xbar_v)        if v feeds the loss

(``φ_k`` and ``g_k`` are the identity and 1 unless a term says otherwise, see :class:`Term`)

where the sum over ``k`` runs over the population's :class:`Term` s.  At the fixed
point ``xbar`` is the forward pass and ``T_v = beta * dl/dx_v`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal, Mapping

import numpy as np

from hwbp.errors import ModelError
from hwbp.ir.nodes import frozen_array

__all__ = [
    "InputPort", "Layout", "Term", "term_matrix", "dense_term_matrix", "as_dense", "Population", "Coupling", "TiedParameter", "LossPort", "DynamicsSystem",
]


#: Range of ``|beta|`` (tensions and their squares stay well inside float64).
MIN_BETA, MAX_BETA = 1e-100, 1e100

@dataclass(frozen=True)
class InputPort:
    """A clamped input vector ``x = x_data`` of ``size`` components per sample."""

    name: str
    size: int


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


@dataclass(frozen=True)
class Term:
    """One additive drive term of a population: ``f(g W φ(u) + b)``, or ``f(u)`` when
    ``weight`` is None (a skip connection when ``f`` is the identity).

    ``φ`` (``source_activation``, identity by default) is a *source-side*
    nonlinearity and ``g`` (``gain``, 1 by default) a fixed scale: together they
    realize a pre-activation layer ``W φ(z) / sqrt(N L)`` as ONE term instead of a
    population for ``φ(z)`` and one for the product, so that the depth L (in
    populations) and the unit-step budget 2L are those of the network's layers.
    With ``a = g W φ(ū) + b`` and ``e = f'(a) ⊙ T`` (the post-side gate of the
    term's population), the forward drive is ``f(a)``, the sensitivity drive into
    the source is ``φ'(ū) ⊙ (g Wᵀ e)`` (gated on the source side, where ``ū``
    lives) and the synapse reads ``dL/dW = g mean e φ(u)ᵀ / beta``.  A weightless
    term takes neither (``φ`` and ``g`` only accompany a weight).

    Attributes
    ----------
    source : str
        Population or input port ``u`` read by the term.
    activation : str
        Name of ``f`` in :data:`hwbp.ir.activations.ACTIVATIONS`.
    alpha : float
        Parameter of ``f`` (leaky_relu, elu slope; clip lower bound).
    weight, bias : str or None
        Names of the parameters ``W`` (``(out, in)``) and ``b`` in
        :attr:`DynamicsSystem.parameters`.  Several terms may name the same
        parameter (tied weights): each realizes its use from the one value, and the
        parameter's gradient is the sum of every use's local gradient.
    layout : Layout or None
        When set, the term's matrix and bias are built from the parameters by
        :meth:`Layout.matrix` (convolutions, batch normalization, fixed pooling maps;
        see :func:`term_matrix`); ``weight`` may then be None (a fixed map).
    high : float or None
        Upper bound of ``clip`` (None for every other activation).
    """

    source: str
    activation: str = "identity"
    alpha: float = 0.01
    weight: str | None = None
    bias: str | None = None
    gain: float = 1.0
    source_activation: str = "identity"
    source_alpha: float = 0.01
    layout: Layout | None = None
    high: float | None = None

    @property
    def weighted(self) -> bool:
        """Whether the term has a matrix (``W u + b``) rather than passing ``u`` through."""
        return self.weight is not None or self.layout is not None


def term_matrix(parameters: Mapping[str, np.ndarray], term: Term) -> tuple[Any, np.ndarray | None]:
    """The ``(W, b)`` a term applies, ``a = g W φ(u) + b`` (``(None, None)`` for a
    pass-through term); the fixed gain ``g`` and the source-side ``φ`` are the term's own
    fields and are not folded in.

    With a :class:`Layout`, ``W`` is an operator built from the weight parameter
    (:meth:`Layout.operator`: a convolution or a ``scipy.sparse`` CSR array; use only
    ``u @ W.T``, ``e @ W`` and ``W.shape``, or :func:`dense_term_matrix`) and the input
    offset is folded into the bias, ``b = beta[bias_index] - W offset``.
    """
    if term.layout is None:
        w = None if term.weight is None else parameters[term.weight]
        b = None if term.bias is None else parameters[term.bias]
        return w, b
    lay = term.layout
    w = lay.operator(None if term.weight is None else parameters[term.weight])
    b = None
    if term.bias is not None:
        flat = np.asarray(parameters[term.bias], dtype=np.float64).reshape(-1)
        b = flat[lay.bias_index] if lay.bias_index is not None else flat.copy()
    if lay.offset is not None:
        b = (np.zeros(lay.shape[0]) if b is None else b) - np.asarray(lay.offset[None, :] @ w.T).reshape(-1)
    return w, b


def dense_term_matrix(parameters: Mapping[str, np.ndarray], term: Term) -> tuple[np.ndarray | None, np.ndarray | None]:
    """:func:`term_matrix` with ``W`` as a dense ``(out, in)`` array (for emitters that
    write one element per entry, and device instances drawn per entry)."""
    w, b = term_matrix(parameters, term)
    return as_dense(w), b


def as_dense(w: Any) -> np.ndarray | None:
    """``w`` as a dense array (an operator's or sparse matrix's ``toarray()``)."""
    return w.toarray() if w is not None and hasattr(w, "toarray") else w


@dataclass(frozen=True)
class Population:
    """A population of ``size`` conjugate node pairs driven by ``sum_k terms[k]``.

    ``level`` is the longest path, counted in populations, from an input to this
    population (1 for a population that reads inputs only).
    """

    name: str
    size: int
    terms: tuple[Term, ...]
    level: int


@dataclass(frozen=True)
class Coupling:
    """A directed local interaction carried by one term.

    ``forward``: ``pre`` (a population or input) drives ``post`` through
    ``f(W xbar_pre + b)``.  ``sensitivity``: the tension of ``pre`` drives ``post``'s
    tension through ``Wᵀ (f'(a) ⊙ T_pre)``.  ``term`` indexes the term of the
    population that *owns* the synapse (``post`` for forward, ``pre`` for sensitivity).
    """

    kind: Literal["forward", "sensitivity"]
    pre: str
    post: str
    term: int
    parameter: str | None


@dataclass(frozen=True)
class TiedParameter:
    """A weight shared by one forward and (when its source is a population) one
    sensitivity coupling: indices into :attr:`DynamicsSystem.couplings`.  A weight
    used by several terms (a layer applied twice, a convolution kernel at every
    position) has one entry per use, all with the same ``name``; see
    :meth:`DynamicsSystem.uses`."""

    name: str
    forward: int
    sensitivity: int | None


@dataclass(frozen=True)
class LossPort:
    """Loss perturbation ``beta * grad_l(xbar)`` injected into ``population``'s tension."""

    population: str
    function: str


@dataclass(frozen=True, eq=False)
class DynamicsSystem:
    """Lowered network: inputs, populations (topological order), parameters, couplings.

    Attributes
    ----------
    name : str
        Model name.
    inputs : tuple of InputPort
    populations : tuple of Population
        In topological order.
    parameters : Mapping[str, numpy.ndarray]
        Read-only parameter arrays (weights are dimensionless gains in the
        normalized system; backends map them onto conductances etc.).
    couplings : tuple of Coupling
    tied : tuple of TiedParameter
        Each weight with the forward and sensitivity coupling it serves.
    loss : LossPort
    tau_s : float
        Time constant tau of every node, in seconds.
    beta : float
        Loss perturbation strength (dimensionless; tension = beta * gradient).
    instance : object, optional
        One device instance of a hardware model
        (:class:`hwbp.hardware.DeviceInstance`, made by :func:`hwbp.hardware.realize`):
        physically distinct forward and backward devices of each synapse, cell and node
        errors.  ``None`` (the default): the ideal system, every weight exactly tied.
    """

    name: str
    inputs: tuple[InputPort, ...]
    populations: tuple[Population, ...]
    parameters: Mapping[str, np.ndarray]
    couplings: tuple[Coupling, ...]
    tied: tuple[TiedParameter, ...]
    loss: LossPort
    tau_s: float = 1.0
    beta: float = 1.0
    instance: Any = None
    _index: Mapping[str, Population] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "parameters", MappingProxyType({k: frozen_array(v) for k, v in self.parameters.items()})
        )
        object.__setattr__(self, "_index", MappingProxyType({p.name: p for p in self.populations}))
        if not (np.isfinite(self.tau_s) and self.tau_s > 0):
            raise ModelError(f"tau_s must be a positive number of seconds, got {self.tau_s}")
        if not (np.isfinite(self.beta) and MIN_BETA <= abs(self.beta) <= MAX_BETA):
            raise ModelError(f"beta must be finite with {MIN_BETA:g} <= |beta| <= {MAX_BETA:g} (tension = "
                             f"beta * dl/dx; beyond that float64 overflows or underflows), got {self.beta}")

    def population(self, name: str) -> Population:
        """The population called ``name``."""
        try:
            return self._index[name]
        except KeyError:
            raise ModelError(f"system has no population {name!r}") from None

    def is_population(self, name: str) -> bool:
        """Whether ``name`` is a population (as opposed to an input port)."""
        return name in self._index

    @property
    def depth(self) -> int:
        """L: the longest path, in populations, from an input to the loss."""
        return self.population(self.loss.population).level

    @cached_property
    def successors(self) -> Mapping[str, tuple[tuple[str, int], ...]]:
        """For each population, the ``(population, term index)`` pairs that read it."""
        out: dict[str, list[tuple[str, int]]] = {p.name: [] for p in self.populations}
        for p in self.populations:
            for k, term in enumerate(p.terms):
                if term.source in out:
                    out[term.source].append((p.name, k))
        return MappingProxyType({k: tuple(v) for k, v in out.items()})

    def uses(self, parameter: str) -> tuple[tuple[str, int], ...]:
        """Every ``(population, term index)`` whose term reads ``parameter`` (as weight
        or bias): more than one for a tied parameter."""
        return tuple((p.name, k) for p in self.populations for k, t in enumerate(p.terms)
                     if parameter in (t.weight, t.bias))

    def with_parameters(self, params: Mapping[str, np.ndarray]) -> "DynamicsSystem":
        """A copy with some parameter values replaced (shapes must not change)."""
        merged = dict(self.parameters)
        for key, value in params.items():
            if key not in merged:
                raise ModelError(f"system has no parameter {key!r}")
            value = np.asarray(value, dtype=np.float64)
            if value.shape != merged[key].shape:
                raise ModelError(f"parameter {key!r}: shape {value.shape} != {merged[key].shape}")
            merged[key] = value
        return replace(self, parameters=merged)

    def with_options(self, *, tau_s: float | None = None, beta: float | None = None) -> "DynamicsSystem":
        """A copy with a different time constant or perturbation strength."""
        return replace(
            self,
            tau_s=self.tau_s if tau_s is None else float(tau_s),
            beta=self.beta if beta is None else float(beta),
        )
