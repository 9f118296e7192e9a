"""Vectorized ``μ(z)`` and ``Jᵀ s`` for the residual chain of the depth studies.

PC and PC-ALM update every layer at once from the previous state, so the middle
layers of a residual chain (``z_l = z_{l-1} + g W_l φ(z_{l-1}) + b_l``) can be
evaluated as one stacked matrix product ``(L-2, batch, N) @ (L-2, N, N)`` instead of
L-2 small ones: the arithmetic per layer is the same, the Python overhead is gone.
:func:`stacked_chain` recognizes the structure on a lowered system (and returns None
for anything else, which then takes the generic per-population path); the tests check
that both paths give the same relaxation.
"""

from __future__ import annotations

import numpy as np

from hwbp.dynamics.drive import term_backward, term_forward, term_linear
from hwbp.dynamics.operands import term_operands
from hwbp.ir.activations import ActivationFn
from hwbp.lower.system import DynamicsSystem, Term
from hwbp.types import Batch

__all__ = ["StackedChain", "stacked_chain"]

Arrays = list[np.ndarray]


def _weighted(t: Term, src: str) -> bool:
    return t.source == src and t.weight is not None and t.layout is None and t.activation == "identity"


class StackedChain:
    """``μ`` and the pull-back ``Σ Jᵀ s`` of a chain ``first -> residual middles -> last``."""

    def __init__(self, system: DynamicsSystem, batch: Batch) -> None:
        pops = system.populations
        first = term_operands(system, pops[0].name, 0)
        mids = [term_operands(system, q.name, 1) for q in pops[1:-1]]
        self.last = term_operands(system, pops[-1].name, 0)
        self.mu_first = term_forward(first, batch.x[first.source]).y
        self.phi: ActivationFn = self.last.phi
        self.alpha = self.last.phi_param
        self.w = np.stack([t.weight for t in mids]) if mids else None  # (G, N, N)
        self.wt = np.stack([t.weight_t for t in mids]) if mids else None
        self.g = np.array([t.gain for t in mids])[:, None, None] if mids else None
        self.b = np.stack([t.bias if t.bias is not None else np.zeros(t.weight.shape[0])
                           for t in mids])[:, None, :] if mids else None
        self.n = len(pops)
        self._dphi: np.ndarray | None = None

    def predictions(self, z: Arrays) -> Arrays:
        """``μ_l(z)`` for every population (the last one is the output ``ŷ``)."""
        zs = np.stack(z[:-1])  # z_1 .. z_{L-1}
        phi = self.phi.f(zs, self.alpha)
        self._dphi = self.phi.df(zs, phi, self.alpha)
        out = [self.mu_first]
        if self.w is not None:
            mid = np.matmul(phi[:-1], self.wt)
            mid *= self.g
            mid += zs[:-1]
            mid += self.b
            out += list(mid)
        last = term_linear(self.last, phi[-1])
        out.append(last if self.last.bias is None else last + self.last.bias)
        return out

    def pullback(self, z: Arrays, signal: Arrays) -> Arrays:
        """``Σ_{p reads l} J_plᵀ signal_p`` for l = 1 .. L-1 (uses the gates of the last
        :meth:`predictions`); the output's entry is None."""
        assert self._dphi is not None
        back = np.empty_like(self._dphi)
        if self.w is not None:
            s = np.stack(signal[1:-1])  # signals of the middle layers 2 .. L-1
            c = np.matmul(s, self.w)
            c *= self.g
            back[:-1] = s + self._dphi[:-1] * c
        back[-1] = term_backward(self.last, signal[-1], self._dphi[-1])
        return list(back) + [None]  # type: ignore[list-item]


def stacked_chain(system: DynamicsSystem, batch: Batch) -> StackedChain | None:
    """A :class:`StackedChain` when ``system`` is a residual chain of equal square
    layers with one source-side nonlinearity (the depth-study model), else None."""
    pops = system.populations
    if len(pops) < 2 or system.loss.population != pops[-1].name or system.instance is not None:
        return None
    first, last = pops[0], pops[-1]
    if len(first.terms) != 1 or system.is_population(first.terms[0].source):
        return None
    if first.terms[0].weight is None or first.terms[0].layout is not None or first.terms[0].activation != "identity":
        return None
    if len(last.terms) != 1 or not _weighted(last.terms[0], pops[-2].name):
        return None
    phi = last.terms[0].source_activation
    if phi == "identity":
        return None
    shape = None
    for prev, q in zip(pops[:-2], pops[1:-1]):
        if len(q.terms) != 2:
            return None
        skip, t = q.terms
        if skip.source != prev.name or skip.weight is not None or skip.activation != "identity":
            return None
        if not _weighted(t, prev.name) or t.source_activation != phi or t.source_alpha != last.terms[0].source_alpha:
            return None
        w = system.parameters[t.weight]
        if shape is None:
            shape = w.shape
        if w.shape != shape or w.shape[0] != w.shape[1]:
            return None
    for q, nxt in zip(pops[:-1], pops[1:]):
        if {p for p, _ in system.successors[q.name]} != {nxt.name}:
            return None
    return StackedChain(system, batch)
