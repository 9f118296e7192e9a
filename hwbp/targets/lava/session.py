"""One Lava runtime per job: a network compiled and started once, run block after block.

Creating a Lava runtime (compiling the processes, forking one OS process per process
model and the runtime service, creating channels and the shared-memory manager) costs
seconds; a run of ``2L + 1`` Lava steps costs milliseconds.  A :class:`LavaSession`
builds the network as ONE process (:func:`fused_network`:
:class:`~hwbp.targets.lava.lavaproc.fused.NetworkProcess`, whose model holds every
population and term and takes a run's steps in its own loop under Lava's
AsyncProtocol) and keeps the runtime: each :meth:`LavaSession.run` sends the block's
inputs, targets, start state and parameters as one message through the process's host
pipe (:mod:`hwbp.targets.lava.lavaproc.host`), runs ``n_steps + 1`` steps (Lava's
``RunSteps``) and receives the final state and gates as one message.  The model
computes exactly what a fresh runtime of the process-per-population network computes,
bit for bit: it sets its state from the received arrays where a fresh runtime would
have it from the processes' initial values.

:func:`session_for` keeps the last session of this Python process alive and reuses
it for every run whose network structure and process parameters are the same (the
values sent per block may differ: another batch of the same size, new weights in
training, another start state); any other run closes it first, so at most one Lava
runtime (a few OS processes) is alive at a time.  It is closed at exit; a run that
fails or exceeds its time limit kills the session's processes and drops it.
"""

from __future__ import annotations

import atexit
import hashlib
import multiprocessing as mp
import threading
from typing import Any, Callable, Mapping

import numpy as np

from hwbp.targets.lava.compat import import_lava
from hwbp.targets.lava.network import NetworkSpec, reap, watch

__all__ = ["LavaSession", "fused_network", "session_for", "close_session", "run_session", "structure_key"]


def _freeze(value: Any) -> Any:
    """A hashable fingerprint of a process parameter (arrays by shape, type and bytes)."""
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype.str, hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest())
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def fused_network(terms: Mapping[tuple[str, int], tuple[str, int, int]], spec: NetworkSpec) -> tuple[Any, dict]:
    """The whole network as one :class:`~hwbp.targets.lava.lavaproc.fused.NetworkProcess`
    (one process model: Lava synchronizes one model per time step, not one per
    population and term) and its layout."""
    from hwbp.targets.lava.lavaproc.fused import NetworkProcess, network_layout

    steps = {int(prm["n_steps"]) for prm in spec.pop_params.values()}
    if len(steps) != 1:
        raise ValueError(f"a kept runtime needs one n_steps for every population, got {sorted(steps)}")
    batch = next(iter(spec.mean.values())).shape[0]
    layout = network_layout(
        batch, steps.pop(),
        [(n, np.shape(x)[-1], dict(spec.input_params)) for n, x in spec.inputs.items()],
        [(n, np.shape(m)[-1], dict(spec.pop_params.get(n, {}))) for n, m in spec.mean.items()],
        [(key, src, n_in, n_out, spec.weight.get(key) is not None, dict(spec.term_params.get(key, {})))
         for key, (src, n_in, n_out) in terms.items()])
    return NetworkProcess(layout=layout, name="network"), layout


def structure_key(terms: Mapping[tuple[str, int], tuple[str, int, int]], spec: NetworkSpec, tag: str,
                  models: Mapping[type, type]) -> tuple:
    """What a runtime is built from and cannot change afterwards: the term table, the
    array shapes, every process parameter, the models.  Variable values (inputs,
    targets, state, weights, biases) are not part of it: they are sent per block."""
    shapes = {n: np.shape(v) for n, v in {**spec.inputs, **spec.mean}.items()}
    wshapes = {k: None if w is None else np.shape(w) for k, w in spec.weight.items()}
    return (tag, tuple(sorted((k, v) for k, v in terms.items())), _freeze(shapes), _freeze(wshapes),
            _freeze(spec.pop_params), _freeze(spec.term_params), _freeze(spec.input_params),
            tuple(sorted((p.__name__, m.__module__ + "." + m.__qualname__) for p, m in models.items())))


class LavaSession:
    """A started Lava runtime of one network, run block by block (module docstring).

    Parameters
    ----------
    terms : Mapping
        The term table (:func:`hwbp.targets.lava.topology.term_table`).
    spec : NetworkSpec
        Process parameters and shapes (its values are those of the first block unless
        :meth:`run` sends others, which it always does).
    tag, models : str, Mapping
        ``select_tag`` and ProcessModels of the run configuration.
    key : tuple
        :func:`structure_key` of the above.
    """

    def __init__(self, terms: Mapping, spec: NetworkSpec, tag: str, models: Mapping[type, type], key: tuple) -> None:
        import_lava()
        self.key = key
        self.tag = tag
        self.models = dict(models)
        self.proc, self.layout = fused_network(terms, spec)
        self.period = self.layout["period"]
        self.pipes = threading.Lock()
        self.before: set = set()
        self.started = False
        self.alive = True
        self.runs = 0

    def _guard(self, work: Callable[[], Any], timeout_s: float) -> Any:
        try:
            return watch(work, self.proc, timeout_s, self.before, self.pipes)
        except BaseException:
            self.alive = False  # a failed or timed-out runtime is not used again
            self.close()
            raise

    def run(self, x: Mapping[str, np.ndarray], mean: Mapping[str, np.ndarray], tension: Mapping[str, np.ndarray],
            target: Mapping[str, np.ndarray], weight: Mapping, bias: Mapping, timeout_s: float
            ) -> tuple[dict, dict, dict]:
        """One block: send the values, run ``period`` Lava steps, receive
        ``(means, tensions, gates)`` as the models hold them.

        Raises
        ------
        BackendError
            If the run fails or does not finish within ``timeout_s`` seconds (the
            session is then closed, its processes killed).
        """
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        from hwbp.targets.lava.lavaproc.host import recv_network, send_network

        def work() -> tuple[dict, dict, dict]:
            if not self.started:
                self.before = set(mp.active_children())
                self.started = True
                self.proc.create_runtime(run_cfg=Loihi2SimCfg(select_tag=self.tag,
                                                              exception_proc_model_map=self.models))
            send_network(self.proc, self.layout, x, mean, tension, target, weight, bias)
            self.proc.run(condition=RunSteps(num_steps=self.period))
            return recv_network(self.proc, self.layout)

        out = self._guard(work, timeout_s)
        self.runs += 1
        return out

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the runtime and reap its processes (kill what does not end)."""
        global _LIVE
        if _LIVE is self:
            _LIVE = None
        if not self.started:
            return
        self.started = False
        if self.alive:
            self.alive = False

            def stop() -> None:
                try:
                    with self.pipes:
                        self.proc.stop()
                except BaseException as exc:  # a process still exiting under load: reaped below
                    if "while it is still running" not in str(exc):
                        raise

            try:
                watch(stop, self.proc, timeout_s, self.before, self.pipes)
            finally:
                reap(set(mp.active_children()) - self.before)
        else:
            reap(set(mp.active_children()) - self.before)


_LIVE: LavaSession | None = None
_LOCK = threading.RLock()


def session_for(terms: Mapping, spec: NetworkSpec, tag: str, models: Mapping[type, type]) -> LavaSession:
    """The live session of this structure, or a new one (closing the previous)."""
    global _LIVE
    key = structure_key(terms, spec, tag, models)
    if _LIVE is not None and _LIVE.alive and _LIVE.key == key:
        return _LIVE
    close_session()
    _LIVE = LavaSession(terms, spec, tag, models, key)
    return _LIVE


def close_session() -> None:
    """Stop the live Lava runtime of this Python process, if any."""
    if _LIVE is not None:
        _LIVE.close()


atexit.register(close_session)


def run_session(terms: Mapping, spec: NetworkSpec, tag: str, models: Mapping[type, type], timeout_s: float
                ) -> tuple[dict, dict, dict]:
    """Run one block of ``spec`` (its inputs, targets, start state and parameters) on
    the live session of its structure: ``(means, tensions, gates)`` as the models hold
    them (gates of the weighted terms)."""
    with _LOCK:
        session = session_for(terms, spec, tag, models)
        return session.run(spec.inputs, spec.mean, spec.tension, spec.target, spec.weight, spec.bias, timeout_s)
