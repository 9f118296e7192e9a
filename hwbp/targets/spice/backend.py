"""The ``spice`` verification backend: build the circuit, run ngspice, read the
conjugate node pairs back into a :class:`~hwbp.sim.state.SimulationResult`.

``analysis="op"``: the DC operating point of every sample (the fixed point, so the
tension is ``beta * dl/dx`` to solver tolerance).  ``analysis="tran"``: a transient
from a non-equilibrium initial state (default ``random``, drawn exactly as the
reference simulator draws it) for ``duration`` units of tau (default ``max(12 L, 24)``:
at depth 1, ``12 tau`` leaves a weight-gradient lag of ~1e-4); the
result carries the trace (time in units of tau) and the settling time.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from hwbp.errors import BatchError, ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.state import SimulationResult, State, Trace
from hwbp.targets.spice.build import build_circuit, stimulus
from hwbp.targets.spice.model import Circuit, SpiceOptions
from hwbp.targets.spice.ngspice import get_runner
from hwbp.types import Batch

__all__ = ["ANALYSES", "run_spice", "check_batch", "settling_time", "split_nodes", "initial_nodes"]

ANALYSES = ("op", "tran")


def split_nodes(circuit: Circuit, values: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Node voltages ``(..., len(saved_nodes))`` -> (means, tensions) per population, ``(..., n)``."""
    means, tensions = {}, {}
    k = 0
    for name, (xp, _) in circuit.nodes.items():
        n = len(xp)
        vp, vm = values[..., k:k + n], values[..., k + n:k + 2 * n]
        means[name] = 0.5 * (vp + vm)
        tensions[name] = vp - vm
        k += 2 * n
    return means, tensions


def initial_nodes(system: DynamicsSystem, batch_size: int, initial: str | State, seed: int) -> list[dict[str, float]]:
    """Per sample, the x+ / x- population values (V) of the initial state, by population
    and neuron: ``[{(pop, '+'/'-'): array}]`` flattened later by the caller."""
    shapes = [(batch_size, p.size) for p in system.populations]
    names = [p.name for p in system.populations]
    if isinstance(initial, State):
        m, t = [], []
        for n, shape in zip(names, shapes):
            for kind, values, out in (("mean", initial.mean, m), ("tension", initial.tension, t)):
                if n not in values:
                    raise ConfigError(f"spice .tran: the initial State has no {kind} of population {n!r}; "
                                      f"give every population: {', '.join(names)}")
                a = np.asarray(values[n], dtype=np.float64)
                if a.shape != shape:
                    raise ConfigError(f"spice .tran: the initial {kind} of {n!r} has shape {a.shape}, expected "
                                      f"{shape} (batch size x neurons); give one row per sample of the batch")
                if not np.all(np.isfinite(a)):
                    raise ConfigError(f"spice .tran: the initial {kind} of {n!r} has NaN or Inf values; "
                                      f"give finite node voltages")
                out.append(a)
    elif initial == "zeros":
        m, t = [np.zeros(s) for s in shapes], [np.zeros(s) for s in shapes]
    elif initial == "random":
        rng = np.random.default_rng(seed)
        m = [rng.standard_normal(s) for s in shapes]
        t = [rng.standard_normal(s) for s in shapes]
    else:
        raise ConfigError(f"spice .tran: unknown initial state {initial!r}; valid: zeros, random, or a State")
    return [{n: (mi[b] + 0.5 * ti[b], mi[b] - 0.5 * ti[b]) for n, mi, ti in zip(names, m, t)}
            for b in range(batch_size)]


def check_batch(batch: Batch, analysis: str) -> None:
    """Raise :class:`BatchError` if ``batch`` has no samples or non-finite inputs/targets
    (they would become invalid source values in the netlist)."""
    if batch.size < 1:
        raise BatchError(f"spice .{analysis}: the batch is empty; give at least one sample")
    for name, arr in [*((f"input {k!r} has", v) for k, v in batch.x.items()), ("the targets have", batch.y)]:
        bad = ~np.isfinite(np.asarray(arr, dtype=np.float64))
        if bad.any():
            rows = np.nonzero(bad.reshape(len(bad), -1).any(axis=1))[0]
            raise BatchError(f"spice .{analysis}: {name} NaN or Inf values in sample(s) "
                             f"{', '.join(map(str, rows[:5]))}; drop or fix those samples")


def settling_time(t: np.ndarray, tension: Mapping[str, np.ndarray], tol: float) -> float:
    """First time after which every population's tension stays within ``tol`` (relative,
    2-norm over batch and neurons) of its final value; ``nan`` if it never does."""
    err = np.zeros(len(t))
    for arr in tension.values():
        final = arr[-1]
        scale = max(float(np.linalg.norm(final)), 1e-300)
        err = np.maximum(err, np.linalg.norm((arr - final).reshape(len(t), -1), axis=1) / scale)
    above = np.nonzero(err > tol)[0]
    if len(above) == 0:
        return float(t[0])
    k = above[-1] + 1
    return float(t[k]) if k < len(t) else float("nan")


def run_spice(
    system: DynamicsSystem,
    batch: Batch,
    *,
    analysis: str = "op",
    runner: str = "batch",
    r_ohm: float = 1e3,
    c_f: float = 1e-9,
    reltol: float | None = None,
    abstol_a: float | None = None,
    vntol_v: float | None = None,
    tran_reltol: float | None = None,
    cells: Mapping[str, str] | None = None,
    duration: float | None = None,
    step: float = 0.05,
    initial: str | State = "random",
    seed: int = 0,
    settle_tol: float = 1e-4,
    timeout_s: float = 600.0,
    trace: bool = True,
) -> SimulationResult:
    """Simulate ``system`` on ``batch`` in ngspice.

    Parameters
    ----------
    analysis : {"op", "tran"}
    runner : {"batch", "shared"}
        Subprocess with raw files, or the shared library through PySpice.
    r_ohm, c_f : float
        Node resistance (ohm) and capacitance (F); tau = R*C (s).
    reltol, abstol_a, vntol_v, tran_reltol : float, optional
        Solver tolerances (defaults of :class:`SpiceOptions`).
    cells : mapping, optional
        Cell role -> replacement subcircuit file.
    duration : float, optional
        ``.tran`` length in units of tau (default ``max(12 L, 24)``).
    step : float
        ``.tran`` output step in units of tau.
    initial : {"random", "zeros"} or State
        ``.tran`` initial state (``random``: N(0, 1) means and tensions from ``seed``).
    settle_tol : float
        Relative tolerance of the reported settling time.
    timeout_s : float
        Wall-clock limit (s) of one ngspice process (batch) or one analysis (shared).
    """
    if analysis not in ANALYSES:
        raise ConfigError(f"unknown spice analysis {analysis!r}; valid: {', '.join(ANALYSES)}")
    check_batch(batch, analysis)
    kw = {k: v for k, v in (("reltol", reltol), ("abstol_a", abstol_a), ("vntol_v", vntol_v),
                            ("tran_reltol", tran_reltol)) if v is not None}
    opts = SpiceOptions(r_ohm=r_ohm, c_f=c_f, cells=dict(cells or {}), **kw)
    circuit = build_circuit(system, opts)
    run = get_runner(runner, timeout_s=timeout_s)
    nodes = circuit.saved_nodes()
    stims = [stimulus(circuit, {k: v[b] for k, v in batch.x.items()}, batch.y[b]) for b in range(batch.size)]
    settle: dict[str, Any] = {"mode": analysis, "runner": runner, "simulator": "ngspice", "r_ohm": r_ohm,
                              "c_f": c_f, "tau_s": opts.tau_s, "depth": system.depth}
    if analysis == "op":
        values = run.op(circuit, stims, nodes)
        means, tensions = split_nodes(circuit, values)
        settle.update(reltol=opts.reltol, abstol_a=opts.abstol_a, vntol_v=opts.vntol_v)
        return SimulationResult(State(means, tensions, float("inf"), 0), None, settle)

    L = system.depth
    total = max(12.0 * L, 24.0) if duration is None else float(duration)
    if not (np.isfinite(total) and total > 0 and np.isfinite(step) and 0 < step <= total):
        raise ConfigError(f"spice .tran needs 0 < step <= duration (units of tau), got step={step}, duration={total}")
    init = initial_nodes(system, batch.size, initial, seed)
    tau = opts.tau_s
    n_out = int(round(total / step))
    series = []
    for b in range(batch.size):
        ic: dict[str, float] = {}
        for name, (xp, xm) in circuit.nodes.items():
            vp, vm = init[b][name]
            ic.update(zip(xp, map(float, vp)))
            ic.update(zip(xm, map(float, vm)))
        t_s, v = run.tran(circuit, stims[b], ic, step * tau, total * tau, nodes, opts.tran_reltol)
        t_tau = t_s / tau
        grid = np.arange(n_out + 1) * step
        series.append(np.stack([np.interp(grid, t_tau, v[:, i]) for i in range(v.shape[1])], axis=1))
    values = np.stack(series, axis=1)  # (K, B, N)
    means, tensions = split_nodes(circuit, values)
    tr = Trace(grid, means, tensions)
    t_settle = settling_time(grid, tensions, settle_tol)
    settle.update(duration_tau=total, dt_tau=step, reltol=opts.tran_reltol, settle_tol=settle_tol,
                  settling_time_tau=t_settle, settling_time_s=t_settle * tau,
                  initial=initial if isinstance(initial, str) else "given")
    final = State({k: v[-1] for k, v in means.items()}, {k: v[-1] for k, v in tensions.items()}, total, n_out)
    return SimulationResult(final, tr if trace else None, settle)
