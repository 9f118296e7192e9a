"""Batched numpy evaluation of the drive of each population.

A :class:`Kernel` binds a :class:`~hwbp.lower.DynamicsSystem` to a batch.  Populations
are addressed by index (topological order).  ``forward(i, means)`` returns the forward
drive ``sum_k f_k(W_k xbar_u + b_k)`` of population ``i`` and caches the gates
``f_k'(a_k)`` of its terms; ``backward(i, means, tensions)`` returns the sensitivity
drive ``sum W_kᵀ (f_k'(a_k) ⊙ T_p) + beta grad_l`` from the cached gates of the
populations that read ``i``.  Arrays are never modified in place once returned
(a pass-through term may return its source array itself), so callers may keep
references (traces do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwbp.ir.activations import ActivationFn, get_activation
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem
from hwbp.types import Batch

__all__ = ["Kernel"]


@dataclass(frozen=True)
class _Term:
    src: int  # population index, or -1 for an input
    src_input: np.ndarray | None  # the clamped input array when src == -1
    weight: np.ndarray | None  # (out, in)
    bias: np.ndarray | None
    fn: ActivationFn | None  # None for the identity
    alpha: float


class Kernel:
    """Drive evaluator for one system and one batch (see module docstring).

    Attributes
    ----------
    flops : int
        Floating-point operations spent in matrix products so far (2 per multiply-add).
    evaluations : int
        Term evaluations (forward or backward) so far.
    """

    def __init__(self, system: DynamicsSystem, batch: Batch) -> None:
        self.system = system
        self.names = [p.name for p in system.populations]
        index = {n: i for i, n in enumerate(self.names)}
        self.loss_index = index[system.loss.population]
        self.loss_fn = get_loss(system.loss.function)
        self.beta = system.beta
        self.target = batch.y
        self.batch_size = batch.size
        self.terms: list[list[_Term]] = []
        for pop in system.populations:
            terms = []
            for t in pop.terms:
                fn = get_activation(t.activation)
                terms.append(
                    _Term(
                        src=index.get(t.source, -1),
                        src_input=None if t.source in index else batch.x[t.source],
                        weight=None if t.weight is None else system.parameters[t.weight],
                        bias=None if t.bias is None else system.parameters[t.bias],
                        fn=None if fn.name == "identity" else fn,
                        alpha=t.alpha,
                    )
                )
            self.terms.append(terms)
        #: successors[i]: (population index p, term index k) reading population i.
        self.successors = [[(index[p], k) for p, k in system.successors[n]] for n in self.names]
        #: population sources / consumers (indices), for change tracking.
        self.sources = [sorted({t.src for t in terms if t.src >= 0}) for terms in self.terms]
        self.consumers = [sorted({p for p, _ in s}) for s in self.successors]
        self.sizes = [p.size for p in system.populations]
        self.gates: list[list[np.ndarray | None]] = [[None] * len(t) for t in self.terms]
        self.flops = 0
        self.evaluations = 0

    def forward(self, i: int, means: list[np.ndarray]) -> np.ndarray:
        """Forward drive of population ``i`` from the means; caches its gates."""
        out = None
        gates = self.gates[i]
        for k, term in enumerate(self.terms[i]):
            u = term.src_input if term.src < 0 else means[term.src]
            if term.weight is not None:
                a = u @ term.weight.T
                self.flops += 2 * a.size * term.weight.shape[1]
                if term.bias is not None:
                    a += term.bias
            else:
                a = u
            if term.fn is None:
                y = a
                gates[k] = None
            else:
                y = term.fn.f(a, term.alpha)
                gates[k] = term.fn.df(a, y, term.alpha)
            out = y if out is None else out + y
            self.evaluations += 1
        return out

    def backward(self, i: int, means: list[np.ndarray], tensions: list[np.ndarray]) -> np.ndarray:
        """Sensitivity drive of population ``i`` (uses gates cached by :meth:`forward`)."""
        out = None
        if i == self.loss_index:
            out = self.beta * self.loss_fn.grad(means[i], self.target)
        for p, k in self.successors[i]:
            term = self.terms[p][k]
            gate = self.gates[p][k]
            e = tensions[p] if gate is None else tensions[p] * gate
            if term.weight is not None:
                c = e @ term.weight
                self.flops += 2 * c.size * term.weight.shape[0]
            else:
                c = e
            out = c if out is None else out + c
            self.evaluations += 1
        if out is None:
            return np.zeros((self.batch_size, self.sizes[i]))
        return out

    def drive(self, means: list[np.ndarray], tensions: list[np.ndarray]) -> tuple[list, list]:
        """The full drive ``D(s)`` of every population (forward, then sensitivity)."""
        new_means = [self.forward(i, means) for i in range(len(self.names))]
        new_tensions = [self.backward(i, means, tensions) for i in range(len(self.names))]
        return new_means, new_tensions
