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
    sensitivity sweep in reverse order.
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np
from tqdm import tqdm

from hwbp.backend import INITIAL_STATES
from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.kernel import Kernel
from hwbp.sim.recording import (Recorder, default_duration, duration_steps, forward_sweep, gate_signals,
                                initial_lists)
from hwbp.sim.solvers import SOLVERS
from hwbp.state import SimulationResult, State
from hwbp.types import Batch

__all__ = ["MODES", "INITIAL_STATES", "simulate", "default_duration", "gate_signals"]

MODES = ("unit-step", "continuous", "steady")
#: Largest number of continuous-mode steps one call may take.
MAX_STEPS = 10**8
#: Most unit steps one run may take (exactness needs 2L).
MAX_UNIT_STEPS = 10**6


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


def _check_initial(system: DynamicsSystem, batch: Batch, initial: str | State, seed: int) -> None:
    """Steady mode overwrites the initial state: check it as the other modes would,
    without building it (a given State is checked by building it)."""
    from hwbp.backend import initial_state

    if isinstance(initial, State) or initial not in ("zeros", "random", "forward-manifold"):
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


def simulate(
    system: DynamicsSystem,
    batch: Batch,
    *,
    mode: str = "unit-step",
    steps: int | None = None,
    duration: float | None = None,
    dt: float = 0.01,
    solver: str = "rk4",
    initial: str | State = "zeros",
    seed: int = 0,
    trace: bool = False,
    trace_every: int | None = None,
    skip_unchanged: bool = True,
    progress: bool = False,
) -> SimulationResult:
    """Simulate ``system`` on ``batch`` with the reference (numpy, float64) simulator.

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
    solver : {"euler", "rk4", "exponential"}
        Continuous-mode solver.
    initial : {"zeros", "random", "forward-manifold"} or State
        Initial state; ``random`` draws ``N(0, 1)`` means and tensions from ``seed``.
    trace : bool
        Record the state along the way (every step, or every ``trace_every`` steps).
    skip_unchanged : bool
        Unit-step only: skip populations whose inputs did not change (same result).
    progress : bool
        Continuous mode: show a progress bar on stderr.

    Returns
    -------
    SimulationResult
    """
    _check_arguments(mode, system.depth, steps, duration, dt, solver)
    if system.realization is not None:  # one device instance of a hardware model
        from hwbp.hardware.dynamics import simulate_instance

        return simulate_instance(system, batch, mode=mode, steps=steps, duration=duration, dt=dt, solver=solver,
                                 initial=initial, seed=seed, trace=trace, progress=progress)
    kernel = Kernel(system, batch)
    L = system.depth
    if mode == "steady":  # the fixed point directly: no initial state to build and overwrite
        _check_initial(system, batch, initial, seed)
        means = [None] * len(kernel.names)  # type: ignore[list-item]
        tensions = [None] * len(kernel.names)  # type: ignore[list-item]
    else:
        means, tensions, on_manifold = initial_lists(kernel, system, batch, initial, seed)
    label = initial if isinstance(initial, str) else "given"
    settle: dict = {"mode": mode, "initial": label, "depth": L}
    stale: set | None = None  # populations whose cached gates are not those of the final means
    if mode == "steady":
        stale = set()
        forward_sweep(kernel, means)
        _backward_sweep(kernel, means, tensions)
        record = Recorder(None)
        t_end, n_steps = float("inf"), 0
    elif mode == "unit-step":
        n_steps = 2 * L if steps is None else int(steps)
        record = Recorder((trace_every or 1) if trace else None)
        means, tensions, stale = _unit_steps(kernel, means, tensions, n_steps, on_manifold, skip_unchanged, record)
        settle["steps"] = n_steps
        t_end = float(n_steps)
    else:
        total = default_duration(L) if duration is None else float(duration)
        n_steps, h = duration_steps(total, dt)
        every = trace_every or max(1, n_steps // 400)
        record = Recorder(every if trace else None)
        impl = SOLVERS[solver]()
        n = len(means)

        def drive(s: list[np.ndarray]) -> list[np.ndarray]:
            m, t = kernel.drive(s[:n], s[n:])
            return m + t

        s = means + tensions
        record(0, 0.0, s[:n], s[n:])
        for step in tqdm(range(1, n_steps + 1), disable=not progress, desc="simulating",
                         unit="step", leave=False, file=sys.stderr):
            s = impl.step(drive, s, h)
            record(step, step * h, s[:n], s[n:], last=step == n_steps)
        means, tensions = s[:n], s[n:]
        settle.update(steps=n_steps, duration_tau=total, dt_tau=h, solver=solver)
        t_end = total
    stats = {"layer_evaluations": kernel.evaluations, "flops": kernel.flops}  # the dynamics, not the readout
    gates = gate_signals(kernel, means, tensions, stale)
    state = State(dict(zip(kernel.names, means)), dict(zip(kernel.names, tensions)), t_end, n_steps, gates)
    return SimulationResult(state, record.trace(kernel.names), settle, stats)
