"""Build a :class:`~hwbp.targets.brian2.model.Brian2Model` in Brian2, run it, read it back.

Brian2 is imported here, lazily.  Its preferences are global, so :func:`run_model`
sets every one it depends on for each run (code-generation target, Cython cache
directory, no log file) and, for ``cpp_standalone``, resets the device afterwards.
No build or cache directory is ever the current directory: the standalone project goes
under ``build_dir``, Cython's compiled extensions into ``cache_dir`` (by default
``build_dir/cython``; the backend passes the user's cache directory, so a second run
of the same code loads them instead of compiling again).

Timings (``stats``): ``run_s`` is the time stepping (Brian2's own clock of the main run
and of the closing tick; ``cpp_standalone``: the whole run of the compiled binary),
``build_s`` everything else of the call (objects, code generation, compilation).

Scheduling (one time step): the forward sums ``a_k`` and the softmax normalizer ``Z``
are summed first, from the state at the start of the step; then the backward sums
``s_j`` from the gates built on them; then every group advances.  Each step therefore
uses the drive of the state at its start, as the reference simulator does.  Brian2's
own ``rk4`` would hold the sums over the step's four stages (summed variables are
updated once per clock tick); hwbp's ``rk4`` is the classical RK4 of the whole network
instead, one stage per tick of a clock at ``dt/4`` (:mod:`hwbp.targets.brian2.stages`),
so all three solvers are the reference's schemes step for step.  Every run ends with one
closing tick in which the groups hold still and the synapses re-sum, so the gates read
back are those of the final state (event-driven runs excepted: their sums are those of
the values last sent); a traced state is recorded after the sums of its own tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hwbp.errors import BackendError, ConfigError
from hwbp.state import State, Trace
from hwbp.targets.brian2.functions import erfc_function
from hwbp.targets.brian2.model import Brian2Model, connectivity
from hwbp.targets.brian2.stages import RK4_STAGES, rk4_stages
from hwbp.types import Batch

__all__ = ["CODEGENS", "BRIAN2_SOLVERS", "EVENT_SCHEDULE", "RunOutput", "run_model", "import_brian2"]

#: Code-generation targets.
CODEGENS = ("numpy", "cython", "cpp_standalone")
#: Solver names (hwbp's ``exponential`` is Brian2's ``exponential_euler``).
BRIAN2_SOLVERS = {"euler": "euler", "rk4": "rk4", "exponential_euler": "exponential_euler",
                  "exponential": "exponential_euler"}
#: Group scheduling order (the summed updates run before it: forward 0, backward 1;
#: the monitors between them and the groups, so a traced gate is built on the sums of
#: the traced state).
_GROUP_ORDER = 3
_MONITOR_ORDER = 2


def import_brian2() -> Any:
    """The ``brian2`` module, or a :class:`BackendError` saying how to install it."""
    try:
        import brian2
    except ImportError as exc:  # pragma: no cover - brian2 is a pinned dependency
        raise BackendError(f"the brian2 backend needs Brian2 (pip install 'hwbp[brian2]'): {exc}") from None
    return brian2


@dataclass
class RunOutput:
    """What a Brian2 run produced: final state, optional trace, timings (s)."""

    state: State
    trace: Trace | None
    stats: dict[str, Any] = field(default_factory=dict)


def _set_prefs(b2: Any, codegen: str, build_dir: Path, cache_dir: Path) -> None:
    """Every preference a run depends on.  Under runtime targets the set-up code (synapse
    creation) runs as numpy code; :func:`_use_codegen` then selects the target of the
    dynamics, so only the per-step code is compiled."""
    b2.prefs.logging.file_log = False
    b2.prefs.logging.delete_log_on_exit = True
    b2.prefs.core.default_float_dtype = np.float64
    b2.prefs.codegen.runtime.cython.cache_dir = str(cache_dir)
    b2.prefs.codegen.runtime.cython.multiprocess_safe = True
    if codegen == "cpp_standalone":
        b2.set_device("cpp_standalone", directory=str(build_dir / "standalone"), build_on_run=False)
    else:
        b2.set_device("runtime")
        b2.prefs.codegen.target = "numpy"


def _use_codegen(b2: Any, codegen: str) -> None:
    if codegen != "cpp_standalone":
        b2.prefs.codegen.target = codegen


#: Event-driven mode: events and their propagation come before the groups advance, so
#: each step's drive is that of the values sent at its start (:mod:`hwbp.sim.events`).
EVENT_SCHEDULE = ["start", "thresholds", "synapses", "resets", "groups", "end"]


def _objects(b2: Any, model: Brian2Model, batch: Batch, initial: State, params: Mapping[str, np.ndarray],
             method: str, dt_s: float, theta: float | None) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The groups by name, every Brian2 object, and the objects that advance the
    populations (what the closing tick switches off); ``dt_s`` is the solver step (s)."""
    system = model.system
    ns = {"tau": system.tau_s * b2.second, "beta": float(system.beta)}
    if "hwbp_erfc" in model.functions:
        ns["hwbp_erfc"] = erfc_function(b2)
    staged = method == "rk4"
    if staged:  # one RK4 stage per clock tick (module docstring)
        ns["h"] = dt_s * b2.second
        dt_s /= RK4_STAGES
    if theta is not None:
        ns["theta"] = float(theta)
    bsz = batch.size
    groups: dict[str, Any] = {}
    objs: list[Any] = []
    updaters: list[Any] = []
    for g in model.groups:
        n = g.size * bsz
        events = {name: cond for name, cond, _ in g.events} or None
        if g.is_input:
            grp = b2.NeuronGroup(n, g.equations, name=g.name, dt=dt_s * b2.second, order=_GROUP_ORDER,
                                 events=events, namespace=ns)
            grp.x = np.asarray(batch.x[g.source], dtype=np.float64).ravel()
        elif staged:
            equations, code = rk4_stages(g.equations)
            grp = b2.NeuronGroup(n, equations, namespace=ns, name=g.name, dt=dt_s * b2.second,
                                 order=_GROUP_ORDER, events=events)
            updaters.append(grp.run_regularly(code, when="groups", order=_GROUP_ORDER, name=f"{g.name}_rk4_stage"))
        else:
            grp = b2.NeuronGroup(n, g.equations, method=method, namespace=ns, name=g.name,
                                 dt=dt_s * b2.second, order=_GROUP_ORDER, events=events)
            updaters.append(grp.state_updater)
        if not g.is_input:
            grp.xbar = np.asarray(initial.mean[g.source], dtype=np.float64).ravel()
            grp.T = np.asarray(initial.tension[g.source], dtype=np.float64).ravel()
            for var, pname in g.biases:
                setattr(grp, var, np.tile(np.asarray(params[pname], dtype=np.float64), bsz))
            if g.name == model.loss_group:
                grp.target = np.asarray(batch.y, dtype=np.float64).ravel()
        for name, _, code in g.events:
            grp.run_on_event(name, code)
            if name != "send":  # backward events read gates built on this step's forward events
                grp.thresholder[name].when = "after_synapses"
        groups[g.name] = grp
        objs.append(grp)
    sizes = {g.name: g.size for g in model.groups}
    for s in model.synapses:
        kw: dict[str, Any] = {}
        if s.on_pre is not None:
            kw = {"on_pre": s.on_pre, "on_event": {"pre": "send"}}
            if s.on_post is not None:
                kw["on_post"] = s.on_post
                kw["on_event"]["post"] = s.post_event
        syn = b2.Synapses(groups[s.pre], groups[s.post], model=s.model, name=s.name, namespace=ns,
                          dt=dt_s * b2.second, **kw)
        if s.on_post is not None:
            syn.post.when, syn.post.order = "after_synapses", _GROUP_ORDER + 1
        i, j, w = connectivity(s, sizes[s.pre], sizes[s.post], bsz,
                               None if s.weight is None else np.asarray(params[s.weight]))
        syn.connect(i=i, j=j)
        if w is not None:
            syn.w = w
        for var, updater in syn.summed_updaters.items():
            updater.order = 0 if var == f"{s.forward_var}_post" else 1
        objs.append(syn)
    return groups, objs, updaters


def run_model(model: Brian2Model, batch: Batch, initial: State, *, codegen: str, solver: str, dt_tau: float,
              n_steps: int, build_dir: str | Path, trace_every: int | None = None,
              params: Mapping[str, np.ndarray] | None = None, theta: float | None = None,
              cache_dir: str | Path | None = None) -> RunOutput:
    """Run ``model`` on ``batch`` from ``initial`` for ``n_steps`` steps of ``dt_tau`` (units of tau).

    Parameters
    ----------
    model : Brian2Model
    batch : Batch
    initial : State
        Initial means and tensions of every population.
    codegen : {"numpy", "cython", "cpp_standalone"}
    solver : {"euler", "rk4", "exponential_euler"}
    dt_tau : float
        Time step in units of tau.
    n_steps : int
    build_dir : path
        Where Cython's cache and the standalone project go.
    trace_every : int, optional
        Record the state every this many steps (and at the end).
    params : mapping, optional
        Parameter values (default: the system's).
    theta : float, optional
        Event threshold of an event-driven ``model`` (``build_model(..., events=True)``).
    cache_dir : path, optional
        Cython's cache of compiled extensions (default: ``build_dir/cython``).
    """
    if codegen not in CODEGENS:
        raise ConfigError(f"--codegen: invalid value {codegen!r}; valid: {', '.join(CODEGENS)}")
    b2 = import_brian2()
    system = model.system
    params = dict(system.parameters if params is None else params)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    tau_s = system.tau_s
    dt_s = dt_tau * tau_s
    t0 = time.perf_counter()
    cache_dir = build_dir / "cython" if cache_dir is None else Path(cache_dir)
    _set_prefs(b2, codegen, build_dir, cache_dir)
    try:
        method = BRIAN2_SOLVERS[solver]
        groups, objs, updaters = _objects(b2, model, batch, initial, params, method, dt_s, theta)
        monitors = {}
        if trace_every:
            for g in model.groups:
                if g.is_input:
                    continue
                variables = ["xbar", "T"] + [v for _, v in g.gates]
                mon = b2.StateMonitor(groups[g.name], variables, record=True, dt=trace_every * dt_s * b2.second,
                                      name=f"{g.name}_monitor", when="groups", order=_MONITOR_ORDER)
                monitors[g.name] = (mon, variables)
                objs.append(mon)
        net = b2.Network(*objs)
        if model.events:
            net.schedule = EVENT_SCHEDULE
        _use_codegen(b2, codegen)
        tick_s = dt_s / RK4_STAGES if method == "rk4" else dt_s  # rk4: one stage per tick
        net.run(n_steps * dt_s * b2.second)
        run_s = float(getattr(b2.device, "_last_run_time", float("nan")))  # runtime targets: this run's loop
        if not model.events:  # a closing tick: the groups hold still, the synapses re-sum at the final state
            for updater in updaters:
                updater.active = False
            net.run(tick_s * b2.second)
            run_s += float(getattr(b2.device, "_last_run_time", float("nan")))
        if codegen == "cpp_standalone":
            b2.device.build(directory=str(build_dir / "standalone"), compile=True, run=True, with_output=False)
            run_s = float(b2.device.timers.get("run_binary") or float("nan"))  # the binary: every run in it
        total = time.perf_counter() - t0
        stats: dict[str, Any] = {"wall_s": total, "run_s": run_s, "build_s": total - run_s, "steps": n_steps}
        if model.events:
            stats.update(_event_counts(model, groups, batch.size, n_steps))
        return RunOutput(*_read_back(model, batch, groups, monitors, n_steps, dt_tau), stats=stats)
    except (ConfigError, BackendError):
        raise
    except Exception as exc:  # Brian2 code generation or compilation failures
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise BackendError(f"brian2 ({codegen}) failed: {type(exc).__name__}: {first}") from exc
    finally:
        if codegen == "cpp_standalone":
            b2.device.reinit()
            b2.set_device("runtime")


def _event_counts(model: Brian2Model, groups: Mapping[str, Any], batch_size: int, n_steps: int) -> dict[str, Any]:
    counts = {"forward": 0, "backward": 0, "input": 0}
    by: dict[str, int] = {}
    clock: dict[str, int] = {}
    for g in model.groups:
        grp = groups[g.name]
        for name, _, _ in g.events:
            n = int(round(float(np.sum(getattr(grp, "n_" + name)[:]))))
            counts["input" if g.is_input else "backward" if name != "send" else "forward"] += n
            # the senders as hwbp.sim.events names them
            label = f"forward {g.source}" if name == "send" else f"backward {g.source}[{name[len('send_e'):]}]"
            by[label] = n
            clock[label] = n_steps * len(grp)
    return {"events": counts, "events_per_sample": sum(counts.values()) / batch_size, "events_by": by,
            "clock_by": clock}


def _read_back(model: Brian2Model, batch: Batch, groups: Mapping[str, Any], monitors: Mapping[str, Any],
               n_steps: int, dt_tau: float) -> tuple[State, Trace | None]:
    bsz = batch.size
    means, tens, gates = {}, {}, {}
    for g in model.groups:
        if g.is_input:
            continue
        grp = groups[g.name]
        means[g.source] = np.array(grp.xbar[:], dtype=np.float64).reshape(bsz, g.size)
        tens[g.source] = np.array(grp.T[:], dtype=np.float64).reshape(bsz, g.size)
        for k, var in g.gates:
            gates[(g.source, k)] = np.array(getattr(grp, var)[:], dtype=np.float64).reshape(bsz, g.size)
    t_end = n_steps * dt_tau
    state = State(means, tens, t_end, n_steps, gates)
    if not monitors:
        return state, None
    tm, tt, tg = {}, {}, {}
    times = None
    for g in model.groups:
        if g.name not in monitors:
            continue
        mon, variables = monitors[g.name]
        if times is None:  # the samples before the end (an rk4 run has a closing tick after it)
            times = np.asarray(mon.t_[:], dtype=np.float64) / model.system.tau_s
            times = times[times < t_end - 1e-9 * max(1.0, t_end)]
        arrays = {v: np.asarray(getattr(mon, v), dtype=np.float64).T[: len(times)].reshape(-1, bsz, g.size)
                  for v in variables}
        tm[g.source] = np.concatenate([arrays["xbar"], means[g.source][None]])
        tt[g.source] = np.concatenate([arrays["T"], tens[g.source][None]])
        for k, var in g.gates:
            tg[(g.source, k)] = np.concatenate([arrays[var], gates[(g.source, k)][None]])
    t = np.concatenate([times, [t_end]])
    return state, Trace(t, tm, tt, tg)
