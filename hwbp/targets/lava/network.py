"""Build the Lava process graph of a :class:`~hwbp.lower.DynamicsSystem` and run it.

:func:`build_network` makes one :class:`InputProcess` per input port, one
:class:`PopulationProcess` per population and one :class:`TermProcess` per term, and
connects them (``source.x_out -> term.u_in``, ``term.y_out -> pop.fwd_in``,
``pop.t_out -> term.t_in``, ``term.g_out -> source.bwd_in``); an InPort with several
senders sums them.  :func:`run_network` runs it for a number of Lava time steps in a
worker thread with a time limit, reads the variables back and stops the runtime; on
timeout it kills the Lava processes it started (none is left behind) and raises
:class:`~hwbp.errors.BackendError`.  :func:`watch` is that time limit, shared with the
runtime that :mod:`hwbp.targets.lava.session` keeps across runs.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from hwbp.errors import BackendError
from hwbp.targets.lava.compat import import_lava

__all__ = ["NetworkSpec", "Network", "build_network", "run_network", "watch", "reap"]


@dataclass
class NetworkSpec:
    """Values to put into the processes (float64, or integers for the fixed-point model).

    Attributes
    ----------
    inputs : dict
        Input port name -> ``(batch, n)`` array.
    mean, tension, target : dict
        Population name -> ``(batch, n)`` array.
    weight, bias : dict
        ``(population, term index)`` -> array or None.
    pop_params : dict
        Population name -> extra process parameters (loss, beta, dt, n_steps, ...).
    term_params : dict
        ``(population, term index)`` -> extra process parameters (act, alpha, ...).
    input_params : dict
        Extra process parameters of every input process.
    """

    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    mean: dict[str, np.ndarray] = field(default_factory=dict)
    tension: dict[str, np.ndarray] = field(default_factory=dict)
    target: dict[str, np.ndarray] = field(default_factory=dict)
    weight: dict[tuple[str, int], np.ndarray | None] = field(default_factory=dict)
    bias: dict[tuple[str, int], np.ndarray | None] = field(default_factory=dict)
    pop_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    term_params: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    input_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Network:
    """The processes of one system: ``inputs``, ``populations``, ``terms`` by key."""

    inputs: dict[str, Any]
    populations: dict[str, Any]
    terms: dict[tuple[str, int], Any]

    def any_process(self) -> Any:
        """A process of the graph (running one runs the whole connected graph)."""
        return next(iter(self.populations.values()))


def build_network(terms: Mapping[tuple[str, int], tuple[str, int, int]], spec: NetworkSpec, *,
                  host_io: bool = False) -> Network:
    """Processes and connections.

    Parameters
    ----------
    terms : Mapping[(population, k), (source, n_in, n_out)]
        Every term, with the name of what it reads and the widths.
    spec : NetworkSpec
        The values.
    host_io : bool
        Give every process its pipes to and from the host, for runs of blocks of
        ``n_steps + 1`` Lava steps (:mod:`hwbp.targets.lava.lavaproc.host`).
    """
    import_lava()
    from hwbp.targets.lava.lavaproc.processes import InputProcess, PopulationProcess, TermProcess

    extra: dict[str, Any] = {}
    if host_io:
        period = {int(prm["n_steps"]) for prm in spec.pop_params.values()}
        if len(period) != 1:
            raise ValueError(f"host I/O needs one n_steps for every population, got {sorted(period)}")
        extra = {"host_io": True, "period": period.pop() + 1}
    inputs = {n: InputProcess(x=x, name=f"input:{n}", **spec.input_params, **extra) for n, x in spec.inputs.items()}
    pops = {n: PopulationProcess(mean=m, tension=spec.tension[n], target=spec.target[n], name=f"population:{n}",
                                 **spec.pop_params.get(n, {}), **extra) for n, m in spec.mean.items()}
    procs = {}
    for key, (src, n_in, n_out) in terms.items():
        batch = spec.mean[key[0]].shape[0]
        t = TermProcess(batch=batch, n_in=n_in, n_out=n_out, weight=spec.weight.get(key), bias=spec.bias.get(key),
                        name=f"term:{key[0]}:{key[1]}", **spec.term_params.get(key, {}), **extra)
        source = pops.get(src) or inputs[src]
        source.x_out.connect(t.u_in)
        t.y_out.connect(pops[key[0]].fwd_in)
        pops[key[0]].t_out.connect(t.t_in)
        if src in pops:
            t.g_out.connect(pops[src].bwd_in)
        procs[key] = t
    return Network(inputs, pops, procs)


def _failed_model(proc: Any) -> str:
    """The last line of the traceback of a Lava process (a ProcessModel) that exited with
    an error, or "" (lava's ``SystemProcess`` keeps the error of its target)."""
    infra = getattr(getattr(proc, "_runtime", None), "_messaging_infrastructure", None)
    for actor in list(getattr(infra, "actors", []) or []):
        try:
            exc = None if actor.is_alive() else actor.exception
        except (ValueError, OSError, EOFError):  # already joined and closed by lava (a normal stop)
            continue
        if exc:
            return str(exc[1]).strip().splitlines()[-1]
    return ""


def _release_shared_memory(proc: Any) -> None:
    """Unlink the shared-memory segments of an abandoned run (a time-out): killing lava's
    manager process would leave them behind, and the resource tracker warns of each one
    at exit."""
    infra = getattr(getattr(proc, "_runtime", None), "_messaging_infrastructure", None)
    smm = getattr(getattr(infra, "smm", None), "_shared_memory_handles", None)
    for handle in list(smm or []):
        for release in (handle.close, handle.unlink):
            try:
                release()
            except (OSError, ValueError, BufferError):  # already gone, or still mapped by a view
                pass


def reap(children: set) -> None:
    """Join the Lava processes ``children`` (a normal stop ends them); kill a straggler."""
    for child in children:
        mp.Process.join(child, 5)  # lava's SystemProcess.join takes no time limit
        if child.is_alive():
            child.kill()
            mp.Process.join(child, 5)


def watch(work: Callable[[], Any], proc: Any, timeout_s: float, before: set, pipes: threading.Lock) -> Any:
    """``work()`` in a worker thread with a time limit; its value.

    While it runs, a Lava process (ProcessModel) that failed is looked for every
    0.2 s.  ``pipes`` must be held by ``work`` around any ``stop()`` of the runtime
    (lava's stop reads the processes' exit reports from the pipes the look-up reads).

    Raises
    ------
    BackendError
        If ``work`` raises, a model fails, or ``timeout_s`` seconds pass; in the last
        two cases every process started since ``before`` (a set of
        ``multiprocessing.active_children()``) is killed first.
    """
    out: dict[str, Any] = {}

    def quietly() -> None:
        with warnings.catch_warnings():
            # Lava's model discovery executes the modules next to a Process's module as
            # top-level scripts, where a package-relative import cannot resolve; the
            # models are given explicitly (exception_proc_model_map), so this is noise
            warnings.filterwarnings("ignore", message="Cannot import module", category=UserWarning)
            try:
                out["value"] = work()
            except BaseException as exc:  # reported in the calling thread
                out["error"] = exc

    worker = threading.Thread(target=quietly, name="hwbp-lava-run", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    failure = ""
    while worker.is_alive() and time.monotonic() < deadline and not failure:
        worker.join(0.2)
        if pipes.acquire(blocking=False):  # not while the run's stop() reads the same pipes
            try:
                failure = _failed_model(proc)  # a model that raised leaves the others waiting: stop now
            finally:
                pipes.release()
    if worker.is_alive():
        _release_shared_memory(proc)
        for child in set(mp.active_children()) - before:
            child.kill()
            mp.Process.join(child, 5)
        if failure:
            raise BackendError(f"the Lava run stopped; a process failed: {failure}")
        raise BackendError(f"the Lava run did not finish within {timeout_s:g} s (a process waits for a message "
                           f"that never comes, or the network is too large for the time limit); raise --timeout "
                           f"if it only needs longer")
    if "error" in out:
        err = out["error"]
        raise BackendError(f"the Lava run failed: {type(err).__name__}: {err}".splitlines()[0]) from err
    return out["value"]


def run_network(net: Network, lava_steps: int, *, tag: str, models: Mapping[type, type], timeout_s: float,
                read: Callable[[Network], Any]) -> Any:
    """Run ``net`` for ``lava_steps`` Lava time steps, return ``read(net)`` (read before
    the runtime stops).

    Raises
    ------
    BackendError
        If the run fails or does not finish within ``timeout_s`` seconds (then every
        process the run started is killed).
    """
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=dict(models))
    proc = net.any_process()
    before = set(mp.active_children())
    # lava's stop() joins every process and reads its exit report from a pipe that
    # _failed_model reads too: two threads reading one pipe can leave one blocked forever
    # on a message the other took, so the two never overlap
    pipes = threading.Lock()

    def work() -> Any:
        value, error = None, None
        try:
            proc.run(condition=RunSteps(num_steps=int(lava_steps)), run_cfg=cfg)
            value = read(net)
        except BaseException as exc:
            error = exc
        try:
            with pipes:
                proc.stop()
        except BaseException as exc:
            # on a loaded machine lava's stop can try to close a process that is still
            # exiting; the result was read before the stop, so only the clean-up below
            # is left to do.  Anything else (or a stop after a failed run) is an error.
            if error is None and "while it is still running" not in str(exc):
                error = exc
        if error is not None:
            raise error
        return value

    try:
        return watch(work, proc, timeout_s, before, pipes)
    finally:
        reap(set(mp.active_children()) - before)  # reap what the run started; kill a straggler
