"""Batched numpy evaluation of the drive of each population.

A :class:`Kernel` binds a :class:`~hwbp.lower.DynamicsSystem` to a batch.  Populations
are addressed by index (topological order).  :meth:`Kernel.forward` evaluates the
forward drive ``sum_k f_k(W_k xbar_u + b_k)`` of a set of populations and caches the
gates ``f_k'(a_k)`` of their terms; :meth:`Kernel.backward` evaluates the sensitivity
drive ``sum W_kᵀ (f_k'(a_k) ⊙ T_p) + beta grad_l`` from the cached gates of the
populations that read them.  Each term is evaluated by :mod:`hwbp.dynamics`
(:func:`~hwbp.dynamics.term_forward`, :func:`~hwbp.dynamics.term_backward`), the one
definition of the physics; the kernel adds the batching and the bookkeeping.

Layers are vectorized where widths allow: a *chain* of populations that each read
the previous one through a square weight of one size, with one activation, is
evaluated as one stacked matrix product (``(G, batch, n) @ (G, n, n)``).  Stacking
saves Python overhead but copies the layers into one array; on 2 cores it paid off
(1.3-1.9x) up to ``batch * n`` of about 1024 values per layer and cost up to 1.5x
above, so by default (``stack_layers="auto"``) only layers of at most
:data:`STACK_MAX_VALUES` values are stacked.  Stacked and single evaluation use the
same BLAS calls per layer and give identical numbers.

Arrays are never modified in place once returned (a pass-through term may return
its source array itself), so callers may keep references (traces do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from hwbp.dynamics.drive import loss_drive, output_gate, term_backward, term_forward, term_gate, term_gated
from hwbp.dynamics.operands import TermOp, term_operands
from hwbp.ir.activations import ActivationFn
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem
from hwbp.types import Batch

__all__ = ["Kernel", "STACK_MAX_VALUES"]

#: ``stack_layers="auto"`` stacks chains whose layers hold at most this many values.
STACK_MAX_VALUES = 1024

Arrays = list[np.ndarray]


@dataclass(frozen=True)
class _Term:
    src: int  # population index, or -1 for an input
    src_input: np.ndarray | None  # the clamped input array when src == -1
    op: TermOp  # the term's operands (hwbp.dynamics), device values included


@dataclass(frozen=True)
class _Chain:
    """Populations ``first .. first + len - 1``, each ``f(W x_prev + b)`` with square W."""

    first: int
    weight: np.ndarray  # (G, n, n): W per member
    wt: np.ndarray  # (G, n, n): Wᵀ per member, contiguous
    bias: np.ndarray  # (G, 1, n)
    fn: ActivationFn | None
    alpha: float

    @property
    def last(self) -> int:
        return self.first + self.weight.shape[0] - 1


class Kernel:
    """Drive evaluator for one system and one batch (see module docstring).

    Attributes
    ----------
    flops : int
        Floating-point operations spent in matrix products so far (2 per multiply-add).
    evaluations : int
        Term evaluations (forward or backward) so far.
    """

    def __init__(self, system: DynamicsSystem, batch: Batch, *, stack_layers: bool | str = "auto",
                 defer_gates: bool = False) -> None:
        self.system = system
        self.names = [p.name for p in system.populations]
        index = {n: i for i, n in enumerate(self.names)}
        self.loss_index = index[system.loss.population]
        self.loss_fn = get_loss(system.loss.function)
        self.beta = system.beta
        self.target = batch.y
        self.batch_size = batch.size
        self.terms: list[list[_Term]] = []
        if system.instance is not None:
            stack_layers = False  # per-use device values: one term at a time
        for pop in system.populations:
            # Wᵀ as a view (BLAS reads the transposed operand in place, bit for bit the product
            # with a contiguous copy), a contiguous copy only for a batch of one (there numpy
            # takes a matrix-vector path whose result depends on the operand's layout)
            terms = [_Term(src=index.get(t.source, -1), src_input=None if t.source in index else batch.x[t.source],
                           op=term_operands(system, pop.name, k, contiguous=batch.size == 1))
                     for k, t in enumerate(pop.terms)]
            self.terms.append(terms)
        #: successors[i]: (population index p, term index k) reading population i.
        self.successors = [[(index[p], k) for p, k in system.successors[n]] for n in self.names]
        #: population sources / consumers (indices), for change tracking.
        self.sources = [sorted({t.src for t in terms if t.src >= 0}) for terms in self.terms]
        self.consumers = [sorted({p for p, _ in s}) for s in self.successors]
        self.sizes = [p.size for p in system.populations]
        self.gates: list[list[np.ndarray | None]] = [[None] * len(t) for t in self.terms]
        #: pre-activations of the terms whose gated sensitivity needs them (measured pair gates)
        self.acts: list[list[np.ndarray | None]] = [[None] * len(t) for t in self.terms]
        #: source-side gates φ'(ū) of the terms that have a source-side nonlinearity
        self.pre_gates: list[list[np.ndarray | None]] = [[None] * len(t) for t in self.terms]
        #: populations whose cached gates hold ``e = f'(a) ⊙ T`` (see :meth:`gate_in_place`)
        self.gated: set[int] = set()
        #: ``defer_gates``: a one-term population whose gate follows from its mean
        #: (:func:`~hwbp.dynamics.output_gate`) caches none in the forward evaluation;
        #: :meth:`restore_gates` computes it when asked (the same numbers)
        self.defer_gates = defer_gates
        #: populations whose gate is deferred (not cached)
        self.deferred: set[int] = set()
        limit = STACK_MAX_VALUES // batch.size if stack_layers == "auto" else None
        self.chains = self._find_chains(limit) if stack_layers else []
        self.chain_of = {i: c for c in self.chains for i in range(c.first, c.last + 1)}
        self.flops = 0
        self.evaluations = 0

    # ------------------------------------------------------------ structure
    def _links(self, i: int) -> bool:
        """Whether population ``i + 1`` can extend a chain ending at population ``i``."""
        if i + 1 >= len(self.terms) or self.successors[i] != [(i + 1, 0)] or i == self.loss_index:
            return False
        a, b = self.terms[i][0].op, self.terms[i + 1]
        return (
            len(b) == 1 and b[0].src == i and self._dense(b[0].op)
            and b[0].op.weight.shape == a.weight.shape and b[0].op.fn is a.fn and b[0].op.param == a.param
        )

    @staticmethod
    def _dense(t: TermOp) -> bool:
        """Whether a term can join a stacked chain: dense ``f(W u + b)``, no gain, no φ, no cell."""
        return (isinstance(t.weight, np.ndarray) and t.bias is not None and t.gain == 1.0
                and t.phi is None and t.cell is None and t.curve is None and t.weight_back is None
                and t.back_offset is None)

    def _chainable(self, i: int) -> bool:
        if len(self.terms[i]) != 1:
            return False
        t = self.terms[i][0].op
        return self._dense(t) and t.weight.shape[0] == t.weight.shape[1]

    def _find_chains(self, max_width: int | None) -> list[_Chain]:
        """Chains of at least two populations; with ``max_width``, only those whose layers
        have at most that many inputs are stacked (the others are never copied)."""
        chains, i = [], 0
        while i < len(self.terms):
            j = i
            if self._chainable(i):
                while self._links(j):
                    j += 1
            if j > i and (max_width is None or self.terms[i][0].op.weight.shape[1] <= max_width):
                members = [self.terms[m][0].op for m in range(i, j + 1)]
                chains.append(_Chain(
                    first=i,
                    weight=np.stack([t.weight for t in members]),
                    wt=np.stack([t.weight_t for t in members]),
                    bias=np.stack([t.bias for t in members])[:, None, :],
                    fn=members[0].fn,
                    alpha=members[0].param,
                ))
            i = j + 1
        return chains

    @staticmethod
    def _runs(indices: Iterable[int], chain_of: dict) -> list[tuple[_Chain | None, int, int]]:
        """Group sorted indices into (chain, lo, hi) ranges and (None, i, i) singles."""
        out: list[tuple[_Chain | None, int, int]] = []
        for i in sorted(indices):
            c = chain_of.get(i)
            if c is not None and out and out[-1][0] is c:
                out[-1] = (c, out[-1][1], i)  # cover the whole range (unchanged members recompute equal)
            else:
                out.append((c, i, i))
        return out

    # ------------------------------------------------------------ forward
    def _forward_one(self, i: int, means: Arrays) -> np.ndarray:
        out = None
        self.gated.discard(i)
        gates = self.gates[i]
        defer = self.defer_gates and len(self.terms[i]) == 1 and output_gate(self.terms[i][0].op)
        (self.deferred.add if defer else self.deferred.discard)(i)
        for k, term in enumerate(self.terms[i]):
            op = term.op
            r = term_forward(op, term.src_input if term.src < 0 else means[term.src], gate=not defer)
            if op.weight is not None:
                self.flops += 2 * r.a.size * op.weight.shape[1]
            if op.phi is not None:
                self.pre_gates[i][k] = r.pre_gate
            gates[k] = r.gate
            if op.curve is not None:
                self.acts[i][k] = r.a
            out = r.y if out is None else out + r.y
            self.evaluations += 1
        return out

    def _forward_chain(self, c: _Chain, lo: int, hi: int, means: Arrays) -> Arrays:
        t0 = self.terms[lo][0]
        first = t0.src_input if t0.src < 0 else means[t0.src]
        u = np.stack([first] + [means[m] for m in range(lo, hi)])
        s = slice(lo - c.first, hi - c.first + 1)
        a = np.matmul(u, c.wt[s])
        a += c.bias[s]
        self.flops += 2 * a.size * c.wt.shape[1]
        self.evaluations += hi - lo + 1
        if c.fn is None:
            y, g = a, None
        else:
            y = c.fn.f(a, c.alpha)
            g = c.fn.df(a, y, c.alpha)
        for j, m in enumerate(range(lo, hi + 1)):
            self.gates[m][0] = None if g is None else g[j]
            self.gated.discard(m)
            self.deferred.discard(m)
        return list(y)

    def forward(self, indices: Iterable[int], means: Arrays, out: Arrays) -> None:
        """Write the forward drive of populations ``indices`` into ``out`` (from ``means``)."""
        for c, lo, hi in self._runs(indices, self.chain_of):
            if c is None or hi == lo:
                out[lo] = self._forward_one(lo, means)
            else:
                out[lo:hi + 1] = self._forward_chain(c, lo, hi, means)

    # ------------------------------------------------------------ backward
    def _backward_one(self, i: int, means: Arrays, tensions: Arrays) -> np.ndarray:
        out = None
        if i == self.loss_index:
            out = loss_drive(self.system, means[i], self.target)
        for p, k in self.successors[i]:
            op = self.terms[p][k].op
            gate = self.gates[p][k]
            if p in self.deferred:
                raise RuntimeError(f"the gate of population {self.names[p]!r} is deferred: restore_gates first")
            if gate is None or p in self.gated:
                e = tensions[p] if gate is None else gate
            elif op.curve is not None:
                e = term_gated(op, self.acts[p][k], gate, tensions[p])
            else:
                e = tensions[p] * gate
            c = term_backward(op, e, self.pre_gates[p][k] if op.phi is not None else None)
            if op.weight is not None:
                self.flops += 2 * c.size * op.weight.shape[0]
            out = c if out is None else out + c
            self.evaluations += 1
        return np.zeros((self.batch_size, self.sizes[i])) if out is None else out

    def _backward_chain(self, c: _Chain, lo: int, hi: int, tensions: Arrays) -> Arrays:
        """Members ``lo..hi`` (all before the chain's last): each reads only its successor."""
        members = range(lo + 1, hi + 2)
        if c.fn is not None and all(m in self.gated for m in members):
            e = np.stack([self.gates[m][0] for m in members])
        else:
            e = np.stack(tensions[lo + 1:hi + 2])
            if c.fn is not None:
                e = e * np.stack([self.gates[m][0] for m in members])
        s = slice(lo + 1 - c.first, hi + 2 - c.first)
        out = np.matmul(e, c.weight[s])
        self.flops += 2 * out.size * c.weight.shape[1]
        self.evaluations += hi - lo + 1
        return list(out)

    def backward(self, indices: Iterable[int], means: Arrays, tensions: Arrays, out: Arrays) -> None:
        """Write the sensitivity drive of populations ``indices`` into ``out`` (uses the
        gates cached by :meth:`forward` for the populations that read them)."""
        for c, lo, hi in self._runs(indices, self.chain_of):
            if c is not None and hi == c.last:
                out[hi] = self._backward_one(hi, means, tensions)
                hi -= 1
            if c is None or hi < lo:
                if c is None:
                    out[lo] = self._backward_one(lo, means, tensions)
                continue
            out[lo:hi + 1] = self._backward_chain(c, lo, hi, tensions)

    def gate_in_place(self, i: int, tension: np.ndarray) -> None:
        """Turn the cached gates ``f'(a)`` of population ``i``'s terms into ``e = f'(a) ⊙ T``
        (``T`` its settled tension), in place: the sensitivity products and the readout
        then use these without a second copy (steady mode).  The next forward
        evaluation of ``i`` caches ``f'(a)`` again."""
        if i in self.gated:
            return
        for k, gate in enumerate(self.gates[i]):
            op = self.terms[i][k].op
            if gate is not None and op.curve is not None:
                self.gates[i][k] = term_gated(op, self.acts[i][k], gate, tension)
            elif gate is not None:
                np.multiply(gate, tension, out=gate)
        self.gated.add(i)

    def restore_gates(self, i: int, means: Arrays) -> None:
        """Cache the deferred gate of population ``i`` (see ``defer_gates``) from its
        mean ``means[i]``, the output of its one term."""
        if i in self.deferred:
            self.gates[i][0] = term_gate(self.terms[i][0].op, means[i])
            self.deferred.discard(i)

    def release(self, i: int) -> None:
        """Drop the gates cached for population ``i`` (nothing reads them any more)."""
        self.gates[i] = [None] * len(self.terms[i])
        self.pre_gates[i] = [None] * len(self.terms[i])
        self.gated.discard(i)
        self.deferred.discard(i)

    def drive(self, means: Arrays, tensions: Arrays) -> tuple[Arrays, Arrays]:
        """The full drive ``D(s)`` of every population (forward, then sensitivity)."""
        n = len(self.names)
        new_means: Arrays = [None] * n  # type: ignore[list-item]
        new_tensions: Arrays = [None] * n  # type: ignore[list-item]
        self.forward(range(n), means, new_means)
        self.backward(range(n), means, tensions, new_tensions)
        return new_means, new_tensions
