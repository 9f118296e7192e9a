"""Gradients read from a physical state: the tension and the local outer-product rule.

For population ``v``: ``dl/dx_v = T_v / beta``.  For a synapse term ``f(W u + b)``
of population ``v`` the gradient is read at the synapse from what it sees locally,
the pre-synaptic mean ``u`` and the gated post-synaptic sensitivity
``e = f'(W u + b) ⊙ T_v / beta``:  ``dL/dW = mean_i e_i u_iᵀ``, ``dL/db = mean_i e_i``.
"""

from __future__ import annotations

import numpy as np

from hwbp.ir.activations import get_activation
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.state import State
from hwbp.types import Batch, Gradients

__all__ = ["read_gradients"]


def read_gradients(system: DynamicsSystem, state: State, batch: Batch) -> Gradients:
    """Gradients of the batch-mean loss as the physical ``state`` encodes them.

    Parameters
    ----------
    system : DynamicsSystem
    state : State
        Means and tensions of every population (any backend).
    batch : Batch
        The inputs (clamped) and targets the state was computed for.
    """
    beta = system.beta
    n = batch.size
    sens = {p.name: np.asarray(state.tension[p.name]) / beta for p in system.populations}
    params: dict[str, np.ndarray] = {}
    for pop in system.populations:
        for term in pop.terms:
            if term.weight is None:
                continue
            u = np.asarray(state.mean[term.source]) if system.is_population(term.source) else batch.x[term.source]
            w = system.parameters[term.weight]
            a = u @ w.T
            if term.bias is not None:
                a = a + system.parameters[term.bias]
            fn = get_activation(term.activation)
            e = fn.df(a, fn.f(a, term.alpha), term.alpha) * sens[pop.name]
            params[term.weight] = e.T @ u / n
            if term.bias is not None:
                params[term.bias] = e.sum(axis=0) / n
    out = np.asarray(state.mean[system.loss.population])
    loss = float(get_loss(system.loss.function).value(out, batch.y).mean())
    return Gradients(parameters=params, activations=sens, loss=loss)
