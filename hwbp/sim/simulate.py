"""The reference simulator's entry point, :func:`simulate`.

Modes
-----
``unit-step``
    Euler with ``dt = tau``: ``s <- D(s)``.  Exact backprop after ``2L`` steps from any
    state, after ``L`` from the forward manifold.  Populations whose inputs did not
    change since their last evaluation are skipped (the result is identical).
``continuous``
    ``dt << tau`` with a solver from :data:`~hwbp.sim.solvers.SOLVERS`.
``steady``
    The fixed point directly: one forward sweep in topological order, then one
    sensitivity sweep in reverse order (a device instance: unit steps until the
    state stops changing).

:func:`simulate` is the one driver; it composes a solver
(:mod:`hwbp.sim.solvers`), the messaging of the drive (the kernel,
:mod:`hwbp.sim.kernel`, or the event rule, :mod:`hwbp.sim.events`) and the devices
(ideal nodes, or the device part a device instance supplies,
``system.instance.devices(names)``, e.g. :class:`hwbp.hardware.dynamics.InstanceDevices`).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from hwbp.initial import INITIAL_STATES, initial_state
from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.events import EventMessaging, check_event_options
from hwbp.sim.kernel import Kernel
from hwbp.sim.recording import (Recorder, default_duration, duration_steps, forward_sweep, gate_signals,
                                initial_lists)
from hwbp.sim.solvers import SOLVERS
from hwbp.state import SimulationResult, State
from hwbp.types import Batch

__all__ = ["MODES", "INITIAL_STATES", "simulate", "simulate_events", "default_duration", "gate_signals",
           "MAX_STEADY_STEPS"]

MODES = ("unit-step", "continuous", "steady")
#: Largest number of continuous-mode steps one call may take.
MAX_STEPS = 10**8
#: Most unit steps one run may take (exactness needs 2L).
MAX_UNIT_STEPS = 10**6
#: Steady mode with a device instance iterates unit steps; this many at most.
MAX_STEADY_STEPS = 100_000


def _backward_sweep(kernel: Kernel, means: list[np.ndarray], tensions: list[np.ndarray]) -> None:
    for i in reversed(range(len(tensions))):
        kernel.backward((i,), means, tensions, tensions)
        kernel.gate_in_place(i, tensions[i])  # settled: e = f'(a) ⊙ T once, read by sources and readout


def _check_arguments(mode: str, depth: int, steps: int | None, duration: float | None, dt: float,
                     solver: str) -> None:
    """One-line :class:`ConfigError` for a bad mode, unit-step count, solver, step or
    duration (checked before a run of the ideal network or of a device instance)."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "unit-step" and steps is not None:
        if int(steps) < 0:
            raise ConfigError(f"steps must be >= 0, got {steps}")
        if int(steps) > MAX_UNIT_STEPS:
            raise ConfigError(f"steps must be <= {MAX_UNIT_STEPS:.0e} (exactness needs 2L = {2 * depth}), got {steps}")
    if mode == "continuous":
        if solver not in SOLVERS:
            raise ConfigError(f"unknown solver {solver!r}; valid: {', '.join(SOLVERS)}")
        total = default_duration(depth) if duration is None else float(duration)
        if not (np.isfinite(dt) and dt > 0) or not (np.isfinite(total) and total >= 0):
            raise ConfigError(f"dt must be > 0 and duration >= 0 (units of tau), got dt={dt}, duration={total}")
        if total / dt > MAX_STEPS:
            raise ConfigError(f"duration/dt = {total / dt:.3g} steps exceeds {MAX_STEPS:.0e}; increase dt")


def check_initial(system: DynamicsSystem, batch: Batch, initial: str | State, seed: int) -> None:
    """Steady mode overwrites the initial state: check it as the other modes would,
    without building it (a given State is checked by building it)."""
    if isinstance(initial, State) or initial not in INITIAL_STATES:
        initial_state(system, batch, initial, seed)
    elif initial == "random" and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")


def _unit_steps(
    kernel: Kernel, means: list, tensions: list, steps: int, on_manifold: bool, skip: bool, record: Callable
) -> tuple[list, list, set]:
    """``steps`` unit steps; also returns the populations whose cached gates are stale
    (sources changed in the last step)."""
    n = len(means)
    everything = set(range(n))
    fwd_stale = set() if on_manifold else set(everything)
    bwd_stale = {kernel.loss_index} if on_manifold else set(everything)
    record(0, 0.0, means, tensions)
    for step in range(1, steps + 1):
        if not skip:
            fwd_stale, bwd_stale = set(everything), set(everything)
        new_means = list(means)
        kernel.forward(fwd_stale, means, new_means)
        new_tensions = list(tensions)
        kernel.backward(bwd_stale, means, tensions, new_tensions)
        next_fwd = {c for i in fwd_stale for c in kernel.consumers[i]}
        next_bwd = {s for p in bwd_stale | next_fwd for s in kernel.sources[p]}
        if kernel.loss_index in fwd_stale:
            next_bwd.add(kernel.loss_index)
        fwd_stale, bwd_stale = next_fwd, next_bwd
        means, tensions = new_means, new_tensions
        record(step, float(step), means, tensions, last=step == steps)
    return means, tensions, fwd_stale


class _KernelMessaging:
    """The messaging part of continuous mode: every drive evaluated at the state asked."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.n = len(kernel.names)

    def begin(self, s: list[np.ndarray]) -> None:
        """Nothing is held over a step."""

    def drive(self, s: list[np.ndarray]) -> list[np.ndarray]:
        m, t = self.kernel.drive(s[:self.n], s[self.n:])
        return m + t

    def gates(self, tensions: list[np.ndarray]) -> None:
        return None  # read from the kernel at the final state

    def stats(self) -> dict:
        return {}


def simulate(
    system: DynamicsSystem,
    batch: Batch,
    *,
    mode: str = "unit-step",
    steps: int | None = None,
    duration: float | None = None,
    dt: float = 0.01,
    solver: str | None = None,
    initial: str | State = "zeros",
    seed: int = 0,
    trace: bool = False,
    trace_every: int | None = None,
    skip_unchanged: bool = True,
    progress: bool = False,
    event_threshold: float | None = None,
) -> SimulationResult:
    """Simulate ``system`` on ``batch`` with the reference (numpy, float64) simulator.

    The one driver of the reference simulator.  It composes three parts: a *solver*
    (:data:`~hwbp.sim.solvers.SOLVERS`, continuous mode), the *messaging* of the drive
    (the kernel, every drive evaluated where the solver asks; or, with
    ``event_threshold``, the event rule of :mod:`hwbp.sim.events`, the drive held over
    each step) and the *devices* (the ideal nodes, or the device part of the instance
    attached as ``system.instance``: node gains and rates, rails, noise, readout ADC).

    Parameters
    ----------
    system : DynamicsSystem
    batch : Batch
    mode : {"unit-step", "continuous", "steady"}
    steps : int, optional
        Unit steps to take (default ``2L``).
    duration : float, optional
        Continuous-mode duration in units of tau (default ``max(12 L, 24)``).
    dt : float
        Continuous-mode step in units of tau (default 0.01).
    solver : {"euler", "rk4", "exponential"}, optional
        Continuous-mode solver (default ``rk4``; ``exponential`` with events).
    initial : {"zeros", "random", "forward-manifold"} or State
        Initial state; ``random`` draws ``N(0, 1)`` means and tensions from ``seed``.
    seed : int
        Seed of a random initial state (and of a device instance's noise).
    trace : bool
        Record the state along the way (every step, or every ``trace_every`` steps).
    trace_every : int, optional
    skip_unchanged : bool
        Unit-step only: skip populations whose inputs did not change (same result).
    progress : bool
        Continuous mode: show a progress bar on stderr.
    event_threshold : float, optional
        Continuous mode: event-driven (sigma-delta) messaging; a value is sent when it
        moved by more than this (same units as the means and tensions).

    Returns
    -------
    SimulationResult
        With events, ``stats["events"]`` (counts of ``forward``, ``backward`` and
        ``input`` events) and ``stats["events_per_sample"]``.
    """
    solver = solver or ("rk4" if event_threshold is None else "exponential")
    _check_arguments(mode, system.depth, steps, duration, dt, solver)
    if event_threshold is not None:
        if mode != "continuous":
            raise ConfigError(f"--event-threshold applies to --mode continuous, not {mode}")
        check_event_options(event_threshold, solver)
    kernel = Kernel(system, batch)
    devices = None if system.instance is None else system.instance.devices(kernel.names)
    if devices is not None:
        devices.check(mode, trace)
    L = system.depth
    n = len(kernel.names)
    if mode == "steady" and devices is None:  # the fixed point directly: no initial state to build and overwrite
        check_initial(system, batch, initial, seed)
        means = [None] * n  # type: ignore[list-item]
        tensions = [None] * n  # type: ignore[list-item]
    else:
        means, tensions, on_manifold = initial_lists(kernel, system, batch, initial, seed)
    label = initial if isinstance(initial, str) else "given"
    settle: dict = {"mode": "events" if event_threshold is not None else mode, "initial": label, "depth": L}
    if devices is not None:
        settle.update(devices.settle())
        s = devices.clip(means + tensions)
        means, tensions = s[:n], s[n:]
    messaging: Any = None
    stale: set | None = None  # populations whose cached gates are not those of the final means
    if mode == "steady":
        record = Recorder(None)
        if devices is None:
            forward_sweep(kernel, means)
            _backward_sweep(kernel, means, tensions)
            n_steps = 0
            stale = set()
        else:
            means, tensions, n_steps = _settle_instance(kernel, devices, means, tensions, L)
            settle["steps"] = n_steps
        t_end = float("inf")
    elif mode == "unit-step":
        n_steps = 2 * L if steps is None else int(steps)
        record = Recorder((trace_every or 1) if trace else None)
        if devices is None:
            means, tensions, stale = _unit_steps(kernel, means, tensions, n_steps, on_manifold, skip_unchanged,
                                                 record)
        else:
            s = means + tensions
            record(0, 0.0, s[:n], s[n:])
            for step in range(1, n_steps + 1):
                s = _instance_step(kernel, devices, s)
                record(step, float(step), s[:n], s[n:], last=step == n_steps)
            means, tensions = s[:n], s[n:]
        settle["steps"] = n_steps
        t_end = float(n_steps)
    else:
        total = default_duration(L) if duration is None else float(duration)
        n_steps, h = duration_steps(total, dt)
        noisy = devices is not None and devices.noisy
        impl = SOLVERS["euler" if noisy else solver]()
        if event_threshold is not None:
            messaging = EventMessaging(system, batch, event_threshold)
        else:
            messaging = _KernelMessaging(kernel)
        every = trace_every or max(1, n_steps // 400)
        record = Recorder(every if trace else None, None if event_threshold is None else messaging.gates)
        if devices is None:
            drive = messaging.drive
        else:
            rng = devices.noise_rng(seed)

            def drive(x: list[np.ndarray]) -> list[np.ndarray]:  # the solvers integrate D(s) - s
                d = messaging.drive(x)
                return [a + r for a, r in zip(x, devices.rate(d[:n], d[n:], x))]

        s = means + tensions
        record(0, 0.0, s[:n], s[n:])
        for step in tqdm(range(1, n_steps + 1), disable=not progress, desc="simulating",
                         unit="step", leave=False, file=sys.stderr):
            messaging.begin(s)
            s = impl.step(drive, s, h)
            if noisy:
                s = devices.noise(s, h, rng)
            if devices is not None:
                s = devices.clip(s)
            record(step, step * h, s[:n], s[n:], last=step == n_steps)
        means, tensions = s[:n], s[n:]
        if event_threshold is not None:
            settle.update(steps=n_steps, duration_tau=n_steps * h, dt_tau=h, solver=solver,
                          event_threshold=event_threshold)
        else:
            settle.update(steps=n_steps, duration_tau=total, dt_tau=h, solver="euler-maruyama" if noisy else solver)
        t_end = total if event_threshold is None else n_steps * h
    stats = messaging.stats() if event_threshold is not None else {
        "layer_evaluations": kernel.evaluations, "flops": kernel.flops}  # the dynamics, not the readout
    gates = None if messaging is None else messaging.gates(tensions)
    if gates is None:
        gates = gate_signals(kernel, means, tensions, stale)
    if devices is not None:
        # the ADC reads the tension nodes and the gate nodes (computed in analog from the raw tension)
        gates = {k: devices.readout(v) for k, v in gates.items()}
        tensions = [devices.readout(t) for t in tensions]
    state = State(dict(zip(kernel.names, means)), dict(zip(kernel.names, tensions)), t_end, n_steps, gates)
    return SimulationResult(state, record.trace(kernel.names), settle, stats)


def _instance_step(kernel: Kernel, devices: Any, s: list[np.ndarray]) -> list[np.ndarray]:
    """One unit step of a device instance: ``s + rate(s)``, then the rails."""
    n = len(kernel.names)
    fm, bt = kernel.drive(s[:n], s[n:])
    return devices.clip([x + r for x, r in zip(s, devices.rate(fm, bt, s))])


def _settle_instance(kernel: Kernel, devices: Any, means: list, tensions: list, depth: int
                     ) -> tuple[list, list, int]:
    """Steady mode of a device instance: unit steps until the state stops changing."""
    n = len(means)
    s = means + tensions
    n_steps = 0
    while True:
        new = _instance_step(kernel, devices, s)
        n_steps += 1
        change = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(new, s))
        scale = max(float(np.max(np.abs(a), initial=0.0)) for a in new)
        s = new
        if n_steps >= 2 * depth and change <= 1e-15 * (1.0 + scale):
            return s[:n], s[n:], n_steps
        if n_steps >= MAX_STEADY_STEPS:
            raise devices.steady_failure(change, MAX_STEADY_STEPS)


def simulate_events(system: DynamicsSystem, batch: Batch, *, threshold: float, duration: float | None = None,
                    dt: float = 0.01, solver: str = "exponential", initial: str | State = "zeros", seed: int = 0,
                    trace: bool = False, trace_every: int | None = None) -> SimulationResult:
    """:func:`hwbp.sim.simulate.simulate` in event-driven mode (``mode="continuous"``,
    ``event_threshold=threshold``); arguments as there.

    Returns
    -------
    SimulationResult
        ``stats["events"]``: counts of ``forward``, ``backward`` and ``input`` events;
        ``stats["events_per_sample"]``: their total over the batch size.
    """
    return simulate(system, batch, mode="continuous", event_threshold=threshold, duration=duration, dt=dt,
                    solver=solver, initial=initial, seed=seed, trace=trace, trace_every=trace_every)


