"""Gradients read from a physical state: the tension and the local outer-product rule.

For population ``v``: ``dl/dx_v = T_v / beta``.  For a synapse term ``f(g W φ(u) + b)``
of population ``v`` the gradient is read at the synapse from what it sees locally,
the pre-synaptic signal ``φ(u)`` (``u`` itself when ``φ`` is the identity) and the
gated post-synaptic sensitivity ``e = f'(g W φ(u) + b) ⊙ T_v``:
``dL/dW = g mean_i e_i φ(u_i)ᵀ / beta``, ``dL/db = mean_i e_i / beta``.

A parameter used by several terms (tied weights; a convolution kernel, used at every
position) gets the sum of every use's local gradient; a term with a structured
:class:`~hwbp.lower.system.Layout` folds ``e uᵀ`` onto its parameter entries with
:meth:`~hwbp.lower.system.Layout.weight_gradient`.

``e`` is the backend's own gate signal (``State.gates``) wherever the backend supplied
it (route ``"gate"``): a hardware derivative cell that is wrong then shows up as a wrong
gradient.  Only where a backend supplies none is ``f'`` recomputed from the means
(route ``"recomputed"``); the report states the route of every parameter.
"""

from __future__ import annotations

import numpy as np

from hwbp.dynamics.drive import term_forward
from hwbp.dynamics.operands import term_operands
from hwbp.ir.activations import get_activation
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem, Term
from hwbp.state import State
from hwbp.types import Batch, Gradients

__all__ = ["read_gradients", "readout_routes", "local_gradients", "term_gradients", "ROUTES"]

#: How the gated sensitivity of a term was obtained.
ROUTES = ("gate", "recomputed")


def _presynaptic(term: Term, u: np.ndarray) -> np.ndarray:
    """The signal a term's synapses see: ``φ(u)`` (``u`` when ``φ`` is the identity)."""
    if term.source_activation == "identity":
        return u
    return get_activation(term.source_activation).f(u, term.source_alpha)


def _per_beta(x: np.ndarray, beta: float) -> np.ndarray:
    """``x / beta`` as float64; ``x`` itself when ``beta`` is 1 (the same numbers, no copy)."""
    x = np.asarray(x, dtype=np.float64)
    return x if beta == 1.0 else x / beta


def _recomputed_gate(system: DynamicsSystem, population: str, k: int, u: np.ndarray,
                     tension: np.ndarray) -> np.ndarray:
    """``f'(a) ⊙ T`` of term ``k`` of ``population`` on the source value ``u`` (the
    nominal term, :func:`hwbp.dynamics.term_forward`)."""
    gate = term_forward(term_operands(system, population, k, instance=None), u).gate
    return tension if gate is None else gate * tension


def local_gradients(system: DynamicsSystem, term: Term, e: np.ndarray, u: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """This term's local gradients ``g mean_i e_i u_iᵀ`` and ``mean_i e_i`` of its parameters
    (``u`` the presynaptic signal, ``g`` the term's fixed gain)."""
    lay = term.layout
    out: dict[str, np.ndarray] = {}
    g = term.gain
    if lay is None:
        w = e.T @ u
        if g != 1.0:
            w *= g
        w /= n  # in place: the same numbers as (g * (e.T @ u)) / n, without the temporaries
        out[term.weight] = w
        if term.bias is not None:
            out[term.bias] = e.sum(axis=0) / n
        return out
    if lay.offset is not None:
        u = u - lay.offset
    theta = system.parameters[term.weight]
    out[term.weight] = (g * lay.weight_gradient(e, u, theta.size) / n).reshape(theta.shape)
    if term.bias is not None:
        bias = system.parameters[term.bias]
        eb = e.sum(axis=0) / n
        out[term.bias] = (np.bincount(lay.bias_index, weights=eb, minlength=bias.size).reshape(bias.shape)
                          if lay.bias_index is not None else eb)
    return out


def term_gradients(system: DynamicsSystem, term: Term, gate: np.ndarray, source: np.ndarray, n: int
                   ) -> dict[str, np.ndarray]:
    """One term's local gradients from its gate signal ``gate = f'(a) ⊙ T`` and its
    source's value ``source`` (a population's mean or a clamped input), over a batch of
    ``n``: :func:`local_gradients` of ``e = gate / beta`` and ``u = φ(source)``."""
    return local_gradients(system, term, _per_beta(gate, system.beta), _presynaptic(term, source), n)


def readout_routes(system: DynamicsSystem, state: State) -> dict[str, str]:
    """Parameter name -> route (``"gate"``: the backend's own ``e``; ``"recomputed"``)."""
    routes: dict[str, str] = {}
    for pop in system.populations:
        for k, term in enumerate(pop.terms):
            if term.weight is None:
                continue
            route = ROUTES[0] if (pop.name, k) in state.gates else ROUTES[1]
            for p in (term.weight, term.bias):
                if p is not None:
                    routes[p] = route
    return routes


def read_gradients(system: DynamicsSystem, state: State, batch: Batch) -> Gradients:
    """Gradients of the batch-mean loss as the physical ``state`` encodes them.

    Parameters
    ----------
    system : DynamicsSystem
    state : State
        Means, tensions and (where the backend supplies them) gate signals.
    batch : Batch
        The inputs (clamped) and targets the state was computed for.
    """
    beta = system.beta
    n = batch.size
    sens = {p.name: _per_beta(state.tension[p.name], beta) for p in system.populations}
    params: dict[str, np.ndarray] = {}
    for pop in system.populations:
        for k, term in enumerate(pop.terms):
            if term.weight is None:
                continue
            source = np.asarray(state.mean[term.source]) if system.is_population(term.source) else batch.x[term.source]
            gate = state.gates.get((pop.name, k))
            if gate is None:
                gate = _recomputed_gate(system, pop.name, k, source, np.asarray(state.tension[pop.name]))
            for pname, g in term_gradients(system, term, gate, source, n).items():
                params[pname] = params[pname] + g if pname in params else g
    out = np.asarray(state.mean[system.loss.population])
    loss = float(get_loss(system.loss.function).value(out, batch.y).mean())
    return Gradients(parameters=params, activations=sens, loss=loss)
