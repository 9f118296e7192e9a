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
from hwbp.lower.layout import Layout

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
