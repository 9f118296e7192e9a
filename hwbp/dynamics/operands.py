"""The resolved operands of a term: what the drive (:mod:`hwbp.dynamics.drive`) evaluates.

:func:`term_operands` resolves term ``k`` of a population into a :class:`TermOp`: its
matrix ``W`` (and ``Wᵀ``), bias, gain, activation ``f`` with its parameter, source-side
``φ``.  A device instance of a hardware model (attached to the system as
``system.instance``) supplies per-term device values: the forward and backward device
matrices, the synapses' output offsets and the activation / derivative cells; pass
``instance=None`` for the nominal (ideal) network.

``W`` may be a dense :class:`numpy.ndarray`, a :mod:`scipy.sparse` matrix or a structured
operator: the drive uses only ``u @ Wᵀ``, ``e @ W`` and ``W.shape``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hwbp.ir.activations import ActivationFn, activation_parameter, get_activation
from hwbp.lower.system import DynamicsSystem, term_matrix

__all__ = ["TermOp", "term_operands", "operands", "SYSTEM", "Key"]

Key = tuple[str, int]

#: Default of ``instance=``: the device instance attached to the system (``system.instance``).
SYSTEM: Any = object()


@dataclass(frozen=True, eq=False)
class TermOp:
    """The resolved operands of one term ``y = f(g W φ(u) + b)``.

    Attributes
    ----------
    source : str
        Population or input read by the term (``u``).
    weight : numpy.ndarray or scipy.sparse matrix or None
        ``W``, shape ``(out, in)`` (dimensionless); None for a weightless term.
    weight_t : numpy.ndarray or scipy.sparse matrix or None
        ``Wᵀ`` (a contiguous copy when dense), what the forward product uses.
    weight_back : numpy.ndarray or scipy.sparse matrix or None
        The backward device matrix when it differs from ``W`` (a device instance);
        None: tied, the backward uses ``W`` itself.
    bias : numpy.ndarray or None
        ``b``, shape ``(out,)``; only with a matrix.
    fn : ActivationFn or None
        ``f``; None for the identity.
    param : float or tuple of float
        ``f``'s parameter (:func:`~hwbp.ir.activations.activation_parameter`: the
        slope, or ``(low, high)`` for ``clip``).
    gain : float
        The fixed gain ``g``.
    phi : ActivationFn or None
        The source-side ``φ``; None for the identity.
    phi_param : float
        ``φ``'s parameter.
    cell : tuple of numpy.ndarray or None
        Device cells ``(f gain, f offset, f' gain, f' offset)`` per neuron:
        ``y = gain f(a) + offset`` and ``gate = f'gain f'(a) + f'offset``; None: ideal.
    curve : object or None
        Measured device cells (:class:`hwbp.hardware.curves.CellModel`: ``activate(a) ->
        (y, gate)`` and the gated sensitivity ``gated(a, gate, T)``), in place of ``fn``
        and ``cell``; None: ``fn`` and ``cell``.
    back_offset : numpy.ndarray or None
        A device instance's synapse offsets into the source's sensitivity sum, per source
        neuron ``(in,)`` (added before ``φ′``); None: none.  (The forward offsets are part
        of ``bias``.)
    """

    source: str
    weight: Any
    weight_t: Any
    weight_back: Any
    bias: np.ndarray | None
    fn: ActivationFn | None
    param: Any
    gain: float = 1.0
    phi: ActivationFn | None = None
    phi_param: float = 0.01
    cell: tuple | None = None
    curve: Any = None
    back_offset: np.ndarray | None = None


def _transpose(w: Any, contiguous: bool = True) -> Any:
    """``Wᵀ``: a CSR matrix for a sparse ``W``, the operator's own transpose for a
    structured operator, a contiguous copy (``contiguous``) or a view for an array."""
    if w is None:
        return None
    if sp.issparse(w):
        return w.T.tocsr()
    if not isinstance(w, np.ndarray):
        return w.T
    return np.ascontiguousarray(w.T) if contiguous else w.T


def term_operands(system: DynamicsSystem, population: str, k: int, *, instance: Any = SYSTEM,
                  contiguous: bool = True) -> TermOp:
    """The resolved operands of term ``k`` of ``population``.

    Parameters
    ----------
    system : DynamicsSystem
    population : str
    k : int
        Term index within the population.
    instance : object, optional
        A device instance (``device_weights(key, W, b) -> (W_fwd, W_bwd, b)`` and
        ``cell(key) -> tuple or None``) that realizes the term's parameters; default
        ``system.instance``; None: the nominal network.
    contiguous : bool, optional
        Hold ``Wᵀ`` of a dense ``W`` as a contiguous copy (default) rather than a view
        (the same products for batches of more than one sample, without the copy).

    Returns
    -------
    TermOp
    """
    term = system.population(population).terms[k]
    if instance is SYSTEM:
        instance = system.instance
    fn = get_activation(term.activation)
    phi = get_activation(term.source_activation)
    # each use of a tied parameter is realized from the one parameter value
    w, b = term_matrix(system.parameters, term)
    wb = cell = curve = back = None
    if instance is not None and term.weight is not None:
        w, wb, b = instance.device_weights((population, k), w, b)
        off = instance.offsets((population, k)) if hasattr(instance, "offsets") else None
        if off is not None:  # the synapses' output offsets: a constant forward drive, and backward
            b = off[0] if b is None else b + off[0]
            back = off[1]
        cell = instance.cell((population, k))
        if fn.name != "identity" and hasattr(instance, "curve"):
            curve = instance.curve((population, k), fn, activation_parameter(term.activation, term.alpha, term.high))
    return TermOp(
        source=term.source, weight=w, weight_t=_transpose(w, contiguous), weight_back=wb,
        bias=None if w is None else b,
        fn=None if fn.name == "identity" else fn,
        param=activation_parameter(term.activation, term.alpha, term.high),
        gain=float(term.gain), phi=None if phi.name == "identity" else phi,
        phi_param=float(term.source_alpha), cell=cell, curve=curve, back_offset=back,
    )


def operands(system: DynamicsSystem, *, instance: Any = SYSTEM) -> dict[Key, TermOp]:
    """:func:`term_operands` of every term, keyed ``(population, term index)``."""
    return {(p.name, k): term_operands(system, p.name, k, instance=instance)
            for p in system.populations for k in range(len(p.terms))}
