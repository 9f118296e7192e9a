"""Steady-state gradients read during the sensitivity sweep, without the full state.

``simulate(system, batch, mode="steady")`` returns the whole settled state, as the
backend contract asks: every population's mean, tension and gate signal
``e = f'(a) ⊙ T``; the readout (:func:`hwbp.verify.read_gradients`) then builds the
parameter gradients from it.  At the end four full copies of the network's state are
alive at once (means, tensions, gates, gradients).  Where only the gradients are wanted
(a training step), :func:`steady_gradients` computes the same numbers, bit for bit, the
way reverse-mode backprop does:

* the forward sweep keeps the means; a one-term population whose gate ``f'(a)`` follows
  from its output (tanh, relu: :func:`~hwbp.dynamics.output_gate`) caches no gate;
* the sensitivity sweep, in reverse topological order, settles a population's tension,
  computes its gate from its mean where it was not cached, makes ``e = f'(a) ⊙ T`` in
  place and reads its terms' gradients at once (:func:`hwbp.verify.readout.term_gradients`);
* it then drops what nothing will read again: the population's mean (its consumers are
  done), its tension (kept only while a source still reads it as ``e`` of an identity
  term) and the gates of the populations whose every source is done.

The peak is then about one copy of the means, as autograd's.  The kernel
(:class:`~hwbp.sim.kernel.Kernel`) and the drive (:mod:`hwbp.dynamics`) are the same
as the full path's: the same operations on the same operands, in the same order.
"""

from __future__ import annotations

import numpy as np

from hwbp.errors import ConfigError
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.kernel import Kernel
from hwbp.sim.recording import forward_sweep
from hwbp.types import Batch, Gradients
from hwbp.verify.readout import term_gradients

__all__ = ["steady_gradients"]


def _last_readers(kernel: Kernel) -> list[list[int]]:
    """``out[s]``: the populations whose tension and gates nobody reads once population
    ``s`` is settled (``s`` the first of their population sources in topological order;
    a population that reads only inputs is released right after itself)."""
    out: list[list[int]] = [[] for _ in kernel.names]
    for p, sources in enumerate(kernel.sources):
        out[min(sources) if sources else p].append(p)
    return out


def steady_gradients(system: DynamicsSystem, batch: Batch, *, activations: bool = False) -> Gradients:
    """The gradients of the batch-mean loss at the fixed point, read during the
    sensitivity sweep (module docstring): bit for bit those of
    ``read_gradients(system, simulate(system, batch, mode="steady").state, batch)``,
    at about a quarter of its peak memory.

    Parameters
    ----------
    system : DynamicsSystem
        The nominal network (a device instance settles by unit steps: use
        :func:`hwbp.sim.simulate`).
    batch : Batch
    activations : bool
        Also return every population's ``dl/dx = T / beta`` (``Gradients.activations``,
        one copy of the state more); default: none.

    Returns
    -------
    Gradients
        ``parameters``, ``loss`` and (with ``activations``) the activation gradients.
    """
    if system.instance is not None:
        raise ConfigError("steady_gradients reads the nominal network; a device instance settles by unit steps "
                          "(use simulate)")
    kernel = Kernel(system, batch, defer_gates=True)
    n = len(kernel.names)
    means: list = [None] * n
    tensions: list = [None] * n
    forward_sweep(kernel, means)
    release = _last_readers(kernel)
    loss_fn = get_loss(system.loss.function)
    uses: dict[str, list[tuple[int, int, np.ndarray]]] = {}  # parameter -> (population, term, gradient)
    sens: dict[str, np.ndarray] = {}
    loss = float("nan")
    for i in reversed(range(n)):
        kernel.backward((i,), means, tensions, tensions)
        kernel.restore_gates(i, means)
        kernel.gate_in_place(i, tensions[i])
        if i == kernel.loss_index:
            loss = float(loss_fn.value(means[i], batch.y).mean())
        pop = system.populations[i]
        for k, term in enumerate(pop.terms):
            if term.weight is None:
                continue
            t = kernel.terms[i][k]
            gate = kernel.gates[i][k]
            source = t.src_input if t.src < 0 else means[t.src]
            for name, g in term_gradients(system, term, tensions[i] if gate is None else gate, source,
                                          batch.size).items():
                uses.setdefault(name, []).append((i, k, g))
        if activations:
            sens[pop.name] = tensions[i] if system.beta == 1.0 else tensions[i] / system.beta
        means[i] = None  # every consumer (later in topological order) is done
        if all(g is not None for g in kernel.gates[i]):
            tensions[i] = None  # its sources read e, not T
        for p in release[i]:
            kernel.release(p)
            tensions[p] = None
    # a parameter of several terms: the sum over its uses in the readout's order
    params: dict[str, np.ndarray] = {}
    for name, found in sorted(uses.items(), key=lambda item: min(u[:2] for u in item[1])):
        found.sort(key=lambda u: u[:2])
        total = found[0][2]
        for _, _, g in found[1:]:
            total = total + g
        params[name] = total
    sens = {p.name: sens[p.name] for p in system.populations} if activations else {}  # in topological order
    return Gradients(parameters=params, activations=sens, loss=loss)
