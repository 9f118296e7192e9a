"""Event-driven (sigma-delta) messaging in the reference simulator.

Neuromorphic hardware communicates in events.  With a threshold ``theta`` every
message source keeps the value it last sent and sends again only when its present
value has moved by more than ``theta`` from it; the receiver accumulates the change:

* forward: each population (and input) neuron sends its mean ``xbar``; a term
  ``f(g W φ(u) + b)`` accumulates its synaptic sum ``acc += g W (φ(xbar) - φ(xhat))``
  over the neurons that fired, which then set ``xhat = xbar``;
* backward: each term whose source is a population sends its gated sensitivity
  ``e = f'(acc + b) ⊙ T``; the source accumulates ``s += g Wᵀ (e - ehat)`` per reading
  term over the neurons that fired, which then set ``ehat = e``, and gates it locally
  with its own ``φ'(xbar)``.

Every term is evaluated with :mod:`hwbp.dynamics` (gains, source-side activations,
structured layouts, clip bounds and device instances included).  This module is the
*messaging part* of the one driver :func:`hwbp.sim.simulate.simulate`
(``event_threshold=``).

One step of size ``h`` (units of tau), from sent values, accumulators and counters
all zero at ``t = 0``: forward events (from the means at the step's start), then
backward events (from the gates on the updated pre-activations), then every
population advances with its drive held over the step (``euler`` or ``exponential``
Euler): ``tau dxbar/dt = -xbar + sum_k f(a_k + b_k)``,
``tau dT/dt = -T + sum_j φ_j'(xbar) ⊙ s_j [+ beta grad_l(xbar)]`` (the loss port is local to the
output population).  A value must move by MORE than ``theta`` to fire; with
``theta = 0`` every change fires and the run is the continuous one of the same
solver.  The Brian2 backend implements the same rule with Brian2 events
(:mod:`hwbp.targets.brian2`), so the two agree event for event.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from hwbp.errors import ConfigError
from hwbp.dynamics.drive import loss_drive, term_activate, term_backward, term_gated, term_input, term_linear
from hwbp.dynamics.operands import operands
from hwbp.lower.system import DynamicsSystem
from hwbp.types import Batch

__all__ = ["EVENT_SOLVERS", "EventMessaging", "check_event_options"]

#: Solvers of the event-driven mode (the drive is held over a step by construction).
EVENT_SOLVERS = ("euler", "exponential")


def check_event_options(threshold: float, solver: str) -> None:
    """Raise :class:`ConfigError` unless ``threshold >= 0`` and ``solver`` holds the drive over a step."""
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ConfigError(f"--event-threshold must be a number >= 0, got {threshold}")
    if solver not in EVENT_SOLVERS:
        raise ConfigError(f"--event-threshold needs --solver {' or '.join(EVENT_SOLVERS)}, not {solver}")


class EventMessaging:
    """The messaging part of :func:`hwbp.sim.simulate.simulate` in event-driven mode.

    It keeps the last sent values and the receivers' accumulators (see the module
    docstring).  :meth:`begin` exchanges one step's events from the state at the
    step's start and holds the drive that the solver then integrates over the step;
    :meth:`drive` returns it whatever state it is asked at (the drive is held).

    Parameters
    ----------
    system : DynamicsSystem
    batch : Batch
    threshold : float
        ``theta``: a value fires when it moved by more than this since its last event.
    """

    def __init__(self, system: DynamicsSystem, batch: Batch, threshold: float) -> None:
        self.system, self.batch, self.threshold = system, batch, threshold
        self.names = [p.name for p in system.populations]
        self.inputs = {k: np.asarray(v, dtype=np.float64) for k, v in batch.x.items()}
        self.ops = ops = operands(system)
        shape = {p.name: (batch.size, p.size) for p in system.populations}
        self.sent = {k: np.zeros(shape[k]) for k in self.names}
        self.sent.update({k: np.zeros_like(v) for k, v in self.inputs.items()})
        self.terms = [(p.name, k) for p in system.populations for k in range(len(p.terms))]
        self.readers: dict[str, list] = {}
        for key in self.terms:
            self.readers.setdefault(ops[key].source, []).append(key)
        # acc: the synaptic sum g W φ(x̂) of each term, accumulated from the events it received
        self.acc = {key: np.zeros(shape[key[0]]) for key in self.terms}
        self.back_sources = [key for key in self.terms if system.is_population(ops[key].source)]
        self.sent_e = {key: np.zeros(shape[key[0]]) for key in self.back_sources}
        self.slot = {succ: j for v in system.successors for j, succ in enumerate(system.successors[v])}
        # back: g Wᵀ ê of each reading term, accumulated at its source (φ' is applied there)
        self.back = {(p.name, j): np.zeros(shape[p.name]) for p in system.populations
                     for j in range(len(system.successors[p.name]))}
        for p in system.populations:  # a device instance's synapse offsets: there before any event
            for j, succ in enumerate(system.successors[p.name]):
                if ops[succ].back_offset is not None:
                    self.back[(p.name, j)] = self.back[(p.name, j)] + ops[succ].back_offset
        self.counts = {"forward": 0, "backward": 0, "input": 0}
        #: events per sender: ``forward <population or input>``, ``backward <population>[k]``
        self.by = {f"forward {src}": 0 for src in [*self.inputs, *self.names]}
        self.by.update({f"backward {p}[{k}]": 0 for p, k in self.back_sources})
        self.steps = 0
        self.held: list[np.ndarray] = []

    def _activated(self, tens: Mapping[str, np.ndarray]) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
        """``(f(a), e = f'(a) ⊙ T)`` of every term, ``a = acc + b`` (the term's pre-activation)."""
        out = {}
        for key in self.terms:
            op = self.ops[key]
            a = self.acc[key] + op.bias if op.bias is not None else self.acc[key]
            y, gate = term_activate(op, a)
            out[key] = (y, term_gated(op, a, gate, tens[key[0]]))
        return out

    def gates(self, tensions: list[np.ndarray]) -> dict[tuple[str, int], np.ndarray]:
        """The gate signal ``e`` of every weighted term, from the accumulators and ``tensions``."""
        act = self._activated(dict(zip(self.names, tensions)))
        return {key: e for key, (_, e) in act.items() if _weighted(self.system, key)}

    def begin(self, s: list[np.ndarray]) -> None:
        """One step's events from the state ``s = means + tensions`` at the step's start;
        holds the drive of the step."""
        n, th = len(self.names), self.threshold
        self.steps += 1
        means, tens = dict(zip(self.names, s[:n])), dict(zip(self.names, s[n:]))
        # forward events, from the means (and inputs) at the step's start
        for src, value in {**self.inputs, **means}.items():
            delta = value - self.sent[src]
            fired = np.abs(delta) > th
            if not fired.any():
                continue
            self.counts["input" if src in self.inputs else "forward"] += int(fired.sum())
            self.by[f"forward {src}"] += int(fired.sum())
            new = np.where(fired, value, self.sent[src])
            delta = np.where(fired, delta, 0.0)
            for key in self.readers.get(src, ()):
                op = self.ops[key]
                change = delta if op.phi is None else term_input(op, new)[0] - term_input(op, self.sent[src])[0]
                self.acc[key] = self.acc[key] + term_linear(op, change)
            self.sent[src] = new
        # backward events, from the gates on the updated pre-activations
        act = self._activated(tens)
        for key in self.back_sources:
            delta = act[key][1] - self.sent_e[key]
            fired = np.abs(delta) > th
            if not fired.any():
                continue
            self.counts["backward"] += int(fired.sum())
            self.by[f"backward {key[0]}[{key[1]}]"] += int(fired.sum())
            delta = np.where(fired, delta, 0.0)
            op = self.ops[key]
            j = (op.source, self.slot[key])
            self.back[j] = self.back[j] + term_backward(op, delta, offset=False)
            self.sent_e[key] = np.where(fired, act[key][1], self.sent_e[key])
        # the drive held over the step
        system = self.system
        fwd, sens_all = [], []
        for pop in system.populations:
            drive = 0.0
            for k in range(len(pop.terms)):
                drive = drive + act[(pop.name, k)][0]
            sens = np.zeros_like(tens[pop.name])
            for j, (owner, k) in enumerate(system.successors[pop.name]):
                pre_gate = term_input(self.ops[(owner, k)], means[pop.name])[1]  # φ'(x̄) at the source
                sens = sens + (self.back[(pop.name, j)] if pre_gate is None else pre_gate * self.back[(pop.name, j)])
            if pop.name == system.loss.population:
                sens = sens + loss_drive(system, means[pop.name], self.batch.y)
            fwd.append(drive)
            sens_all.append(sens)
        self.held = fwd + sens_all

    def drive(self, s: list[np.ndarray]) -> list[np.ndarray]:
        """The drive held over the step (``s`` is not read)."""
        return self.held

    def stats(self) -> dict[str, Any]:
        """Event counts: ``events`` by kind, ``events_per_sample`` (their total over the batch
        size), ``events_by`` (per sender) and ``clock_by`` (the messages each sender would
        send clock-driven: every value every step)."""
        sizes = {k: int(np.size(v)) for k, v in self.sent.items()}
        clock = {f"forward {src}": self.steps * sizes[src] for src in [*self.inputs, *self.names]}
        clock.update({f"backward {p}[{k}]": self.steps * sizes[p] for p, k in self.back_sources})
        return {"events": dict(self.counts), "events_per_sample": sum(self.counts.values()) / self.batch.size,
                "events_by": dict(self.by), "clock_by": clock}


def _weighted(system: DynamicsSystem, key: tuple[str, int]) -> bool:
    return system.population(key[0]).terms[key[1]].weight is not None
