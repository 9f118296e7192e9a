"""State bookkeeping of the reference simulator's driver (:mod:`hwbp.sim.simulate`):
the recorder of traced states, the initial state as the kernel's lists, the default
duration of the continuous mode and the gate signals read from a state.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from hwbp.dynamics.drive import term_gated
from hwbp.initial import initial_state
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.kernel import Kernel
from hwbp.state import State, Trace
from hwbp.types import Batch

__all__ = ["Recorder", "forward_sweep", "initial_lists", "default_duration", "duration_steps", "gate_signals"]


class Recorder:
    """Keeps references to the state at chosen steps (arrays are never mutated), and
    the gate signals ``gates(tensions)`` where a messaging part supplies them."""

    def __init__(self, every: int | None, gates: Callable[[list], dict] | None = None) -> None:
        self.every = every
        self.gates = gates
        self.t: list[float] = []
        self.means: list[list[np.ndarray]] = []
        self.tensions: list[list[np.ndarray]] = []
        self.gate_records: list[dict] = []

    def __call__(self, step: int, t: float, means: list, tensions: list, *, last: bool = False) -> None:
        if self.every is None or not (step % self.every == 0 or last):
            return
        if self.t and self.t[-1] == t:
            return
        self.t.append(t)
        self.means.append(list(means))
        self.tensions.append(list(tensions))
        if self.gates is not None:
            self.gate_records.append(self.gates(tensions))

    def trace(self, names: list[str]) -> Trace | None:
        if self.every is None:
            return None
        return Trace(
            np.array(self.t),
            {n: np.stack([m[i] for m in self.means]) for i, n in enumerate(names)},
            {n: np.stack([m[i] for m in self.tensions]) for i, n in enumerate(names)},
            {key: np.stack([g[key] for g in self.gate_records]) for key in self.gate_records[0]}
            if self.gate_records else {},
        )


def forward_sweep(kernel: Kernel, means: list[np.ndarray]) -> None:
    for i in range(len(means)):  # in topological order, each from the updated means
        kernel.forward((i,), means, means)


def initial_lists(kernel: Kernel, system: DynamicsSystem, batch: Batch, initial: str | State, seed: int
             ) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    """Initial means and tensions (from :func:`hwbp.initial.initial_state`), and whether
    they lie on the forward manifold."""
    if isinstance(initial, str) and initial == "forward-manifold":
        # the same sweep initial_state makes, on this kernel: it caches the gates of the
        # populations that the unit steps then skip as settled
        means = [np.zeros((batch.size, n)) for n in kernel.sizes]
        forward_sweep(kernel, means)
        return means, [np.zeros_like(m) for m in means], True
    st = initial_state(system, batch, initial, seed)
    means = [np.array(st.mean[n]) for n in kernel.names]
    tens = [np.array(st.tension[n]) for n in kernel.names]
    return means, tens, False


def default_duration(depth: int) -> float:
    """Continuous-mode default duration in units of tau: ``max(12 L, 24)``.  The error
    decays after a delay of ~2L tau with an Erlang tail; a shallow net needs more than
    ``8L`` (at L = 1, ``8 tau`` leaves ~2e-3; ``24 tau`` ~1e-8), as for SPICE ``.tran``."""
    return max(12.0 * depth, 24.0)


def duration_steps(duration: float, dt: float) -> tuple[int, float]:
    """Number of steps and the step actually taken (units of tau) for ``duration`` with
    a step of at most ``dt``: ``ceil(duration / dt)`` equal steps (``dt`` when none)."""
    n = int(np.ceil(duration / dt - 1e-9))
    return n, (duration / n if n else dt)


def gate_signals(kernel: Kernel, means: list[np.ndarray], tensions: list[np.ndarray],
                 stale: Iterable[int] | None = None) -> dict[tuple[str, int], np.ndarray]:
    """The gated sensitivity ``e = f'(a) ⊙ T`` of every weighted term at the state
    ``(means, tensions)``, as the kernel computes it (``a`` from these means).

    ``stale``: the populations whose cached gates may not belong to ``means`` (their
    sources changed since their last forward evaluation); only those are evaluated
    again, the others' gates are the kernel's own from that evaluation, bit for bit
    what a new evaluation gives.  None: every population (the default).
    """
    todo = range(len(means)) if stale is None else sorted(stale)
    if todo:
        scratch: list[np.ndarray] = list(means)
        kernel.forward(todo, means, scratch)
    out: dict[tuple[str, int], np.ndarray] = {}
    for i, (name, terms) in enumerate(zip(kernel.names, kernel.terms)):
        for k, term in enumerate(terms):
            if kernel.system.populations[i].terms[k].weight is None:  # no parameter to read out
                continue
            gate, op = kernel.gates[i][k], term.op
            if gate is None or i in kernel.gated:
                out[(name, k)] = tensions[i] if gate is None else gate
            else:
                out[(name, k)] = term_gated(op, kernel.acts[i][k], gate, tensions[i])
    return out
