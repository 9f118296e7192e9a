"""The drive of the conjugate-pair dynamics: the one definition of the physics.

Every population ``v`` of a :class:`~hwbp.lower.DynamicsSystem` is a set of conjugate
node pairs with mean ``x̄_v`` (the activation) and tension ``T_v = x⁺_v − x⁻_v``.  Both
relax toward their *drive*, ``tau dx̄/dt = −x̄ + F_v`` and ``tau dT/dt = −T + B_v``.  A
population is driven by a sum of terms; term ``k`` of ``v`` reads a source ``u`` (a
population's mean or a clamped input) and evaluates

::

    a_k = g_k W_k φ_k(u) + b_k,      y_k = f_k(a_k),      F_v = Σ_k y_k

(``W`` the term's matrix as :func:`~hwbp.lower.system.term_matrix` builds it, ``g`` a
fixed gain, ``φ`` a source-side nonlinearity, ``f`` the activation with its parameter,
the pair of bounds for ``clip``).  Its *gate* is ``f′_k(a_k)`` and its gated
sensitivity ``e_k = f′_k(a_k) ⊙ T_v``; the sensitivity drive of a population ``s`` sums,
over the terms that read it, the pull-back of their gated sensitivity, plus the loss at
the output:

::

    B_s = Σ_{(v, k) reads s} φ′_k(x̄_s) ⊙ g_k W_kᵀ e_k  +  [s = out] β ∇ℓ(x̄_s, y)

At the fixed point ``x̄`` is the forward pass and ``T = β ∂ℓ/∂x`` (backprop).  A
weightless term is ``f(u)`` (a skip connection when ``f`` is the identity): its
backward is ``e`` itself.

The per-term pieces (:func:`hwbp.dynamics.operands.term_operands`, :func:`term_forward`,
:func:`term_backward`) and the loss (:func:`loss_drive`) are what a backend evaluates;
:func:`drive` composes them into the whole system's drive.  A device instance of a
hardware model (``system.instance``) enters through the operands
(:mod:`hwbp.dynamics.operands`); pass ``instance=None`` for the nominal (ideal) network.

``W`` may be a dense :class:`numpy.ndarray` or a :mod:`scipy.sparse` matrix: the pieces
use only ``u @ Wᵀ``, ``e @ W`` and ``W.shape``.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from hwbp.dynamics.operands import SYSTEM, Key, TermOp, operands
from hwbp.errors import ConfigError
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem

__all__ = ["TermForward", "Drive", "term_input", "term_linear",
           "term_activate", "term_gated", "term_forward", "output_gate", "term_gate", "term_backward", "loss_drive",
           "drive", "forward_pass"]


class TermForward(NamedTuple):
    """What :func:`term_forward` returns: the output ``y = f(a)``, the gate ``f′(a)``
    (None for the identity), the source-side gate ``φ′(u)`` (None for the identity)
    and the pre-activation ``a``."""

    y: np.ndarray
    gate: np.ndarray | None
    pre_gate: np.ndarray | None
    a: np.ndarray


class Drive(NamedTuple):
    """The drive of every population at one state.

    Attributes
    ----------
    forward : dict[str, numpy.ndarray]
        ``F_v = Σ_k f_k(a_k)`` per population, ``(batch, n)``.
    sensitivity : dict[str, numpy.ndarray]
        ``B_v`` per population, ``(batch, n)`` (zeros for a population nothing reads).
    gates : dict[tuple[str, int], numpy.ndarray]
        ``e = f′(a) ⊙ T`` per term with a weight parameter, keyed ``(population, term
        index)`` as :attr:`hwbp.state.State.gates`.
    """

    forward: dict[str, np.ndarray]
    sensitivity: dict[str, np.ndarray]
    gates: dict[Key, np.ndarray]


def _dense(x: Any) -> np.ndarray:
    """A product with a sparse matrix as an ndarray (a dense product is returned as is)."""
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def term_input(op: TermOp, u: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The signal the synapses see and its source-side gate: ``(φ(u), φ′(u))``
    (``(u, None)`` when ``φ`` is the identity)."""
    if op.phi is None:
        return u, None
    v = op.phi.f(u, op.phi_param)
    return v, op.phi.df(u, v, op.phi_param)


def term_linear(op: TermOp, v: np.ndarray) -> np.ndarray:
    """The synaptic sum ``g W v`` (no bias), a new array; ``v`` itself for a weightless term."""
    if op.weight is None:
        return v
    a = _dense(v @ op.weight_t)
    if op.gain != 1.0:
        a *= op.gain
    return a


def term_activate(op: TermOp, a: np.ndarray, *, gate: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``(y, gate) = (f(a), f′(a))`` through the device cells if any (``(a, None)``
    for the identity).  ``gate=False`` on a term whose gate follows from its output
    (:func:`output_gate`) leaves ``f′(a)`` to :func:`term_gate` (returned as None)."""
    if op.fn is None:
        return a, None
    if op.curve is not None:  # measured cells (a tabulated curve, a pair gate)
        return op.curve.activate(a)
    y = op.fn.f(a, op.param)
    if not gate and output_gate(op):
        return y, None
    gate = op.fn.df(a, y, op.param)
    if op.cell is not None:  # a device instance's activation and derivative cells
        gain, offset, dgain, doffset = op.cell
        y = gain * y + offset
        gate = dgain * gate + doffset
    return y, gate


def term_gated(op: TermOp, a: np.ndarray, gate: np.ndarray | None, t: np.ndarray) -> np.ndarray:
    """The gated sensitivity ``e`` of a term with pre-activation ``a``, gate ``gate`` (from
    :func:`term_activate`) and its population's tension ``t``: ``t`` for the identity,
    ``f′(a) ⊙ t``, or what measured pair-gate cells give (``op.curve.gated(a, gate, t)``)."""
    if gate is None:
        return t
    if op.curve is not None:
        return op.curve.gated(a, gate, t)
    return gate * t


def output_gate(op: TermOp) -> bool:
    """Whether the term's gate ``f′(a)`` is a function of its output ``y = f(a)`` alone
    (an ideal ``f`` whose derivative reads only ``y``: tanh, relu), so that
    :func:`term_gate` gives it from ``y`` later."""
    return op.fn is not None and op.fn.output_only and op.cell is None and op.curve is None


def term_gate(op: TermOp, y: np.ndarray) -> np.ndarray:
    """The gate ``f′(a)`` of a term where :func:`output_gate` holds, from its output
    ``y = f(a)`` (a new array): the same numbers as :func:`term_forward`'s gate."""
    if not output_gate(op):
        raise ConfigError(f"the gate of f = {op.fn.name if op.fn else 'identity'} does not follow from its output")
    return op.fn.df(None, y, op.param)


def term_forward(op: TermOp, u: np.ndarray, *, gate: bool = True) -> TermForward:
    """Evaluate one term on its source value ``u`` (``(batch, in)``).

    ``a = g W φ(u) + b``, ``y = f(a)``; returns :class:`TermForward` ``(y, gate =
    f′(a), pre_gate = φ′(u), a)``.  A weightless term returns ``a = u`` (the same
    array).  Arrays are never modified after they are returned.  ``gate=False``: no
    gate where it follows from ``y`` (:func:`output_gate`; :func:`term_gate` gives it).
    """
    v, pre_gate = term_input(op, u)
    a = term_linear(op, v)
    if op.weight is not None and op.bias is not None:
        a += op.bias
    y, g = term_activate(op, a, gate=gate)
    return TermForward(y, g, pre_gate, a)


def term_backward(op: TermOp, e: np.ndarray, pre_gate: np.ndarray | None = None, *,
                  offset: bool = True) -> np.ndarray:
    """The pull-back of a gated sensitivity into the term's source: ``φ′(ū) ⊙ (g Wᵀ e + o)``
    (``Wᵀ`` the backward device when the term has one, ``o`` its synapses' backward
    offsets when it has them; ``e`` itself for a weightless term).

    Parameters
    ----------
    op : TermOp
    e : numpy.ndarray
        The gated sensitivity ``f′(a) ⊙ T`` of the term's population, ``(batch, out)``.
    pre_gate : numpy.ndarray, optional
        ``φ′(ū)`` from :func:`term_forward` (None when ``φ`` is the identity).
    offset : bool, optional
        Add the backward offsets ``o`` (default); False for a change of ``e`` (events).
    """
    if op.weight is None:
        return e
    c = _dense(e @ (op.weight if op.weight_back is None else op.weight_back))
    if op.gain != 1.0:
        c *= op.gain
    if offset and op.back_offset is not None:
        c += op.back_offset
    if pre_gate is not None:
        c *= pre_gate
    return c


def loss_drive(system: DynamicsSystem, mean: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss's drive of the output population's tension, ``β ∇ℓ(x̄_out, y)``
    (``mean`` the output population's mean, ``y`` the target); on a device instance whose
    loss port has a gain error ``g`` and an input offset ``o`` (:class:`hwbp.hardware.model.Loss`),
    ``β (1 + g) ∇ℓ(x̄_out + o, y)``."""
    beta = system.beta
    real = system.instance
    if real is not None and real.loss_beta_gain != 0.0:
        beta = beta * (1.0 + real.loss_beta_gain)
    offset = None if real is None else getattr(real, "loss_offset", None)
    if offset is not None:
        mean = mean + offset
    return beta * get_loss(system.loss.function).grad(mean, y)


def _source(system: DynamicsSystem, batch: Any, mean: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return mean[name] if system.is_population(name) else np.asarray(batch.x[name], dtype=np.float64)


def drive(system: DynamicsSystem, batch: Any, mean: Mapping[str, np.ndarray], tension: Mapping[str, np.ndarray],
          *, ops: Mapping[Key, TermOp] | None = None, instance: Any = SYSTEM) -> Drive:
    """The forward drive, the sensitivity drive and the gate signals at one state.

    Parameters
    ----------
    system : DynamicsSystem
    batch : Batch
        Clamped inputs ``batch.x`` and targets ``batch.y``.
    mean, tension : Mapping[str, numpy.ndarray]
        ``x̄`` and ``T`` per population, ``(batch, n)``.
    ops : Mapping, optional
        Precomputed :func:`operands` (saves rebuilding structured matrices each call).
    instance : object, optional
        As :func:`term_operands` (used only when ``ops`` is None).

    Returns
    -------
    Drive
        ``F_v = Σ_k f_k(g_k W_k φ_k(u_k) + b_k)``,
        ``B_s = Σ φ′ ⊙ g Wᵀ (f′(a) ⊙ T) + [s = out] β ∇ℓ`` and ``e = f′(a) ⊙ T``.
    """
    if ops is None:
        ops = operands(system, instance=instance)
    fwd: dict[str, np.ndarray] = {}
    gates: dict[Key, np.ndarray] = {}
    pre: dict[Key, np.ndarray | None] = {}
    for pop in system.populations:
        total = None
        for k, term in enumerate(pop.terms):
            op = ops[(pop.name, k)]
            r = term_forward(op, _source(system, batch, mean, op.source))
            total = r.y if total is None else total + r.y
            t = np.asarray(tension[pop.name])
            gates[(pop.name, k)] = term_gated(op, r.a, r.gate, t)
            pre[(pop.name, k)] = r.pre_gate
        fwd[pop.name] = total
    sens: dict[str, np.ndarray] = {}
    for pop in system.populations:
        total = None
        if pop.name == system.loss.population:
            total = loss_drive(system, mean[pop.name], batch.y)
        for owner, k in system.successors[pop.name]:
            c = term_backward(ops[(owner, k)], gates[(owner, k)], pre[(owner, k)])
            total = c if total is None else total + c
        sens[pop.name] = np.zeros_like(np.asarray(tension[pop.name])) if total is None else total
    weighted = {key: e for key, e in gates.items() if system.population(key[0]).terms[key[1]].weight is not None}
    return Drive(fwd, sens, weighted)


def forward_pass(system: DynamicsSystem, batch: Any, *, ops: Mapping[Key, TermOp] | None = None,
                 instance: Any = SYSTEM) -> dict[str, np.ndarray]:
    """The fixed point of the forward field: every population's mean in topological
    order, each from the settled means before it (the forward pass)."""
    if ops is None:
        ops = operands(system, instance=instance)
    mean: dict[str, np.ndarray] = {}
    for pop in system.populations:
        total = None
        for k in range(len(pop.terms)):
            op = ops[(pop.name, k)]
            y = term_forward(op, _source(system, batch, mean, op.source)).y
            total = y if total is None else total + y
        mean[pop.name] = total
    return mean
