"""Event-driven (sigma-delta) messaging in the reference simulator.

Neuromorphic hardware communicates in events.  With a threshold ``theta`` every
message source keeps the value it last sent and sends again only when its present
value has moved by more than ``theta`` from it; the receiver accumulates the change:

* forward: each population (and input) neuron sends its mean ``xbar``; a term's
  pre-activation accumulates ``a += W (xbar - xhat)`` over the neurons that fired,
  which then set ``xhat = xbar``;
* backward: each term whose source is a population sends its gated sensitivity
  ``e = f'(a + b) ⊙ T``; the source's backward sum accumulates ``s += Wᵀ (e - ehat)``
  over the neurons that fired, which then set ``ehat = e``.

One step of size ``h`` (units of tau), from sent values, accumulators and counters
all zero at ``t = 0``: forward events (from the means at the step's start), then
backward events (from the gates on the updated pre-activations), then every
population advances with its drive held over the step (``euler`` or ``exponential``
Euler): ``tau dxbar/dt = -xbar + sum_k f(a_k + b_k)``,
``tau dT/dt = -T + sum_j s_j [+ beta grad_l(xbar)]`` (the loss port is local to the
output population).  A value must move by MORE than ``theta`` to fire; with
``theta = 0`` every change fires and the run is the continuous one of the same
solver.  The Brian2 backend implements the same rule with Brian2 events
(:mod:`hwbp.targets.brian2`), so the two agree event for event.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwbp.backend import initial_state
from hwbp.errors import ConfigError
from hwbp.dynamics.drive import loss_drive, operands, term_activate, term_backward, term_input, term_linear
from hwbp.lower.system import DynamicsSystem
from hwbp.state import SimulationResult, State, Trace
from hwbp.types import Batch

__all__ = ["EVENT_SOLVERS", "simulate_events", "check_event_options"]

#: Solvers of the event-driven mode (the drive is held over a step by construction).
EVENT_SOLVERS = ("euler", "exponential")


def check_event_options(threshold: float, solver: str) -> None:
    """Raise :class:`ConfigError` unless ``threshold >= 0`` and ``solver`` holds the drive over a step."""
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ConfigError(f"--event-threshold must be a number >= 0, got {threshold}")
    if solver not in EVENT_SOLVERS:
        raise ConfigError(f"--event-threshold needs --solver {' or '.join(EVENT_SOLVERS)}, not {solver}")


def _step_factor(solver: str, h: float) -> float:
    """Weight of the drive in ``s <- s + c (D - s)``: ``h`` (Euler), ``1 - e^-h`` (exponential)."""
    if solver == "euler":
        return h
    if solver == "exponential":
        return float(-np.expm1(-h))
    raise ConfigError(f"event-driven messaging needs a solver of {', '.join(EVENT_SOLVERS)}, got {solver!r}")


def simulate_events(system: DynamicsSystem, batch: Batch, *, threshold: float, duration: float | None = None,
                    dt: float = 0.01, solver: str = "exponential", initial: str | State = "zeros", seed: int = 0,
                    trace: bool = False, trace_every: int | None = None) -> SimulationResult:
    """Simulate ``system`` with sigma-delta messaging of threshold ``threshold`` (see module).

    Parameters
    ----------
    system : DynamicsSystem
    batch : Batch
    threshold : float
        ``theta``: a value fires when it moved by more than this since its last event
        (same units as the means and tensions, i.e. V in a circuit).
    duration, dt : float
        Units of tau (duration default ``max(12 L, 24)``); ``ceil(duration / dt)`` steps
        of ``duration / steps``.
    solver : {"euler", "exponential"}
    initial : {"zeros", "random", "forward-manifold"} or State
    seed : int
    trace : bool
        Record the state every ``trace_every`` steps (default: about 400 per run) and at the end.
    trace_every : int, optional

    Returns
    -------
    SimulationResult
        ``stats["events"]``: counts of ``forward``, ``backward`` and ``input`` events;
        ``stats["events_per_sample"]``: their total over the batch size.
    """
    from hwbp.sim.recording import default_duration, duration_steps

    check_event_options(threshold, solver)
    duration = default_duration(system.depth) if duration is None else float(duration)
    n_steps, h = duration_steps(duration, dt)
    if trace:
        trace_every = trace_every or max(1, n_steps // 400)
    else:
        trace_every = None
    c = _step_factor(solver, h)
    st = initial_state(system, batch, initial, seed)
    means = {k: np.array(v) for k, v in st.mean.items()}
    tens = {k: np.array(v) for k, v in st.tension.items()}
    inputs = {k: np.asarray(v, dtype=np.float64) for k, v in batch.x.items()}
    ops = operands(system)
    sent = {k: np.zeros_like(v) for k, v in {**means, **inputs}.items()}
    terms = [(p.name, k) for p in system.populations for k in range(len(p.terms))]
    readers: dict[str, list] = {}
    for key in terms:
        readers.setdefault(ops[key].source, []).append(key)
    # acc: the synaptic sum g W φ(x̂) of each term, accumulated from the events it received
    acc = {key: np.zeros_like(means[key[0]]) for key in terms}
    back_sources = [key for key in terms if system.is_population(ops[key].source)]
    sent_e = {key: np.zeros_like(means[key[0]]) for key in back_sources}
    slot = {succ: j for v in system.successors for j, succ in enumerate(system.successors[v])}
    # back: g Wᵀ ê of each reading term, accumulated at its source (φ' is applied there)
    back = {(p.name, j): np.zeros_like(means[p.name]) for p in system.populations
            for j in range(len(system.successors[p.name]))}
    counts = {"forward": 0, "backward": 0, "input": 0}
    record_t, record_m, record_T, record_g = [], [], [], []

    def activated() -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
        """``(f(a), e = f'(a) ⊙ T)`` of every term, ``a = acc + b`` (the term's pre-activation)."""
        out = {}
        for key in terms:
            op = ops[key]
            a = acc[key] + op.bias if op.bias is not None else acc[key]
            y, gate = term_activate(op, a)
            out[key] = (y, tens[key[0]] if gate is None else gate * tens[key[0]])
        return out

    def gates() -> dict[tuple[str, int], np.ndarray]:
        return {key: e for key, (_, e) in activated().items() if _weighted(system, key)}

    def record(step: int) -> None:
        if trace_every is None or not (step % trace_every == 0 or step == n_steps):
            return
        record_t.append(step * h)
        record_m.append({k: v.copy() for k, v in means.items()})
        record_T.append({k: v.copy() for k, v in tens.items()})
        record_g.append(gates())

    for step in range(n_steps):
        record(step)
        # forward events, from the means (and inputs) at the step's start
        for src, value in {**inputs, **means}.items():
            delta = value - sent[src]
            fired = np.abs(delta) > threshold
            if not fired.any():
                continue
            counts["input" if src in inputs else "forward"] += int(fired.sum())
            new = np.where(fired, value, sent[src])
            delta = np.where(fired, delta, 0.0)
            for key in readers.get(src, ()):
                op = ops[key]
                change = delta if op.phi is None else term_input(op, new)[0] - term_input(op, sent[src])[0]
                acc[key] = acc[key] + term_linear(op, change)
            sent[src] = new
        # backward events, from the gates on the updated pre-activations
        act = activated()
        for key in back_sources:
            delta = act[key][1] - sent_e[key]
            fired = np.abs(delta) > threshold
            if not fired.any():
                continue
            counts["backward"] += int(fired.sum())
            delta = np.where(fired, delta, 0.0)
            op = ops[key]
            j = (op.source, slot[key])
            back[j] = back[j] + term_backward(op, delta)
            sent_e[key] = np.where(fired, act[key][1], sent_e[key])
        # every population advances with its drive held over the step
        new_m, new_T = {}, {}
        for pop in system.populations:
            drive = 0.0
            for k in range(len(pop.terms)):
                drive = drive + act[(pop.name, k)][0]
            sens = np.zeros_like(tens[pop.name])
            for j, (owner, k) in enumerate(system.successors[pop.name]):
                pre_gate = term_input(ops[(owner, k)], means[pop.name])[1]  # φ'(x̄) at the source
                sens = sens + (back[(pop.name, j)] if pre_gate is None else pre_gate * back[(pop.name, j)])
            if pop.name == system.loss.population:
                sens = sens + loss_drive(system, means[pop.name], batch.y)
            new_m[pop.name] = means[pop.name] + c * (drive - means[pop.name])
            new_T[pop.name] = tens[pop.name] + c * (sens - tens[pop.name])
        means, tens = new_m, new_T
    record(n_steps)
    final_gates = gates()
    state = State(means, tens, n_steps * h, n_steps, final_gates)
    trace = None
    if trace_every is not None:
        trace = Trace(np.array(record_t), {n: np.stack([r[n] for r in record_m]) for n in means},
                      {n: np.stack([r[n] for r in record_T]) for n in tens},
                      {key: np.stack([r[key] for r in record_g]) for key in final_gates})
    total = sum(counts.values())
    settle: dict[str, Any] = {"mode": "events", "initial": initial if isinstance(initial, str) else "given",
                              "depth": system.depth, "steps": n_steps, "duration_tau": n_steps * h, "dt_tau": h,
                              "solver": solver, "event_threshold": threshold}
    return SimulationResult(state, trace, settle, {"events": counts, "events_per_sample": total / batch.size})


def _weighted(system: DynamicsSystem, key: tuple[str, int]) -> bool:
    return system.population(key[0]).terms[key[1]].weight is not None
