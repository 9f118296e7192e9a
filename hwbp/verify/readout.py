"""Gradients read from a physical state: the tension and the local outer-product rule.

For population ``v``: ``dl/dx_v = T_v / beta``.  For a synapse term ``f(W u + b)``
of population ``v`` the gradient is read at the synapse from what it sees locally,
the pre-synaptic mean ``u`` and the gated post-synaptic sensitivity
``e = f'(W u + b) ⊙ T_v``:  ``dL/dW = mean_i e_i u_iᵀ / beta``, ``dL/db = mean_i e_i / beta``.

``e`` is the backend's own gate signal (``State.gates``) wherever the backend supplied
it (route ``"gate"``): a hardware derivative cell that is wrong then shows up as a wrong
gradient.  Only where a backend supplies none is ``f'`` recomputed from the means
(route ``"recomputed"``); the report states the route of every parameter.
"""

from __future__ import annotations

import numpy as np

from hwbp.ir.activations import get_activation
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem
from hwbp.state import State
from hwbp.types import Batch, Gradients

__all__ = ["read_gradients", "readout_routes", "ROUTES"]

#: How the gated sensitivity of a term was obtained.
ROUTES = ("gate", "recomputed")


def _recomputed_gate(system: DynamicsSystem, term, u: np.ndarray, tension: np.ndarray) -> np.ndarray:
    w = system.parameters[term.weight]
    a = u @ w.T
    if term.bias is not None:
        a = a + system.parameters[term.bias]
    fn = get_activation(term.activation)
    return fn.df(a, fn.f(a, term.alpha), term.alpha) * tension


def readout_routes(system: DynamicsSystem, state: State) -> dict[str, str]:
    """Parameter name -> route (``"gate"``: the backend's own ``e``; ``"recomputed"``)."""
    routes: dict[str, str] = {}
    for pop in system.populations:
        for k, term in enumerate(pop.terms):
            if term.weight is None:
                continue
            route = "gate" if (pop.name, k) in state.gates else "recomputed"
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
    sens = {p.name: np.asarray(state.tension[p.name]) / beta for p in system.populations}
    params: dict[str, np.ndarray] = {}
    for pop in system.populations:
        for k, term in enumerate(pop.terms):
            if term.weight is None:
                continue
            u = np.asarray(state.mean[term.source]) if system.is_population(term.source) else batch.x[term.source]
            gate = state.gates.get((pop.name, k))
            if gate is None:
                gate = _recomputed_gate(system, term, u, np.asarray(state.tension[pop.name]))
            e = np.asarray(gate, dtype=np.float64) / beta
            params[term.weight] = e.T @ u / n
            if term.bias is not None:
                params[term.bias] = e.sum(axis=0) / n
    out = np.asarray(state.mean[system.loss.population])
    loss = float(get_loss(system.loss.function).value(out, batch.y).mean())
    return Gradients(parameters=params, activations=sens, loss=loss)
