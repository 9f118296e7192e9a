"""The ``brian2`` backend: the conjugate-pair dynamics as Brian2 equations, run with
Brian2's numpy, cython or cpp_standalone code generation and read back through the
backend contract (means, tensions and the gate signals ``e = f'(a) ⊙ T`` as Brian2
computed them; time in units of tau).

Brian2 is imported lazily (inside :meth:`Brian2Backend.run`), so listing the options
costs nothing.  Generated code and caches live under ``--build-dir`` or, by default,
in one temporary directory per process, except Cython's compiled extensions: by
default they are kept in the user's cache directory (``$XDG_CACHE_HOME/hwbp/brian2/
cython``, else ``~/.cache/hwbp/brian2/cython``; :func:`cython_cache_dir`), so a second
``--codegen cython`` run of the same model loads them instead of compiling again
(Brian2 names each extension by a hash of its code and locks it while it builds).
Never the current directory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


from hwbp.backend import Artefact, Backend, Options, Support, option
from hwbp.testing import ConformanceCase, ConformanceProfile, core
from hwbp.initial import initial_state
from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.recording import duration_steps
from hwbp.state import SimulationResult, State
from hwbp.targets.brian2.model import ACTIVATION_EQUATIONS, build_model
from hwbp.targets.brian2.runner import BRIAN2_SOLVERS, CODEGENS
from hwbp.types import Batch

__all__ = ["Brian2Options", "Brian2Backend", "cython_cache_dir", "ORACLE_RTOL", "REFERENCE_RTOL", "CODEGEN_RTOL", "DEFAULT_DT",
           "DEFAULT_SOLVER", "duration_steps"]

#: Conformance against the oracle at the default duration max(12L, 24) tau: the error
#: left by the Erlang tail of the cascade is ~1e-8 at L = 1-2 and far smaller deeper
#: (theorem 2); the bound the issue sets.
ORACLE_RTOL = 1e-6
#: Against the reference simulator's continuous mode with the same solver and dt: the
#: same discrete scheme (euler, exponential_euler, and rk4 staged one stage per clock
#: tick), so only summation order differs.
REFERENCE_RTOL = 1e-9
#: Between code-generation targets: the same equations compiled three ways; only libm
#: and summation order differ (round-off).
CODEGEN_RTOL = 1e-12
#: Time step of the conformance profile (units of tau): exponential Euler's fixed point
#: is the exact one at any step, and at 0.1 the settling is that of the continuous
#: cascade to within ~5% of its rate (measured: rel_err 8e-10 at L = 1 after 24 tau).
CONFORMANCE_DT = 0.1
#: Default time step (units of tau).
DEFAULT_DT = 0.01
#: Default solver.
DEFAULT_SOLVER = "exponential_euler"


@dataclass(frozen=True)
class Brian2Options(Options):
    """Options of the Brian2 backend (time in units of tau)."""

    codegen: str = option("numpy", "Brian2 code generation: numpy, cython or cpp_standalone", choices=CODEGENS)
    duration: float | None = option(None, "continuous mode: duration (default: max(12L, 24))", unit="tau")
    dt: float | None = option(None, f"continuous mode: time step (default: {DEFAULT_DT})", unit="tau")
    solver: str | None = option(None, f"integration method (default: {DEFAULT_SOLVER}; exponential is "
                                      "exponential_euler)", choices=tuple(BRIAN2_SOLVERS))
    tau_s: float = option(1.0, "node time constant, for artefacts and reports (default: 1)", unit="s",
                          flag="--tau")
    event_threshold: float | None = option(None, "event-driven (sigma-delta) messaging with Brian2 events: a mean "
                                                 "or gate is sent when it moved by more than this (solver euler or "
                                                 "exponential_euler)")
    build_dir: str | None = option(None, "directory for generated code and caches (default: a temporary "
                                         "directory, Cython's compiled extensions in ~/.cache/hwbp/brian2)")
    trace_every: int | None = option(None, "steps between traced states (default: about 400 per run)", cli=False)

    def check(self) -> None:
        from hwbp.sim.backend import check_time_options

        check_time_options(self.dt, self.duration, self.tau_s, self.event_threshold,
                           "exponential" if self.method == "exponential_euler" else self.method)
        if self.trace_every is not None and self.trace_every < 1:
            raise ConfigError(f"trace_every must be >= 1, got {self.trace_every}")

    @property
    def method(self) -> str:
        """Brian2's name of the solver."""
        return BRIAN2_SOLVERS[self.solver or DEFAULT_SOLVER]


class Brian2Backend(Backend):
    """Brian2 (numpy / cython / cpp_standalone) simulation of the conjugate-pair dynamics."""

    name = "brian2"
    description = "Brian2 simulator: NeuronGroups and Synapses with summed variables (numpy, cython, cpp_standalone)"
    Options = Brian2Options
    #: Every activation as f (:data:`ACTIVATION_EQUATIONS`), gains and source-side φ (not
    #: with event-driven messaging, see :meth:`supports`), tied weights; no structured
    #: layout, no hardware model.
    support = Support(activations=ACTIVATION_EQUATIONS, features={"gain", "source_activation", "tied"})

    def supports(self, options: Options | None = None) -> Support:
        """:attr:`support`; with ``event_threshold`` the messages carry the mean itself, so no
        source-side activation."""
        if options is not None and getattr(options, "event_threshold", None) is not None:
            return self.support.replace(features=self.support.features - {"source_activation"})
        return self.support

    def build_dir(self, options: Brian2Options) -> Path:
        """Where Brian2's generated code and caches go: ``--build-dir``, or one temporary
        directory per process (shared by every run, so Cython compiles each distinct
        piece of code once; removed at exit)."""
        if options.build_dir is not None:
            return Path(options.build_dir)
        return _process_build_dir()

    def cache_dir(self, options: Brian2Options) -> Path:
        """Cython's cache of compiled extensions: ``--build-dir``/cython, or the user's
        cache directory (:func:`cython_cache_dir`)."""
        if options.build_dir is not None:
            return Path(options.build_dir) / "cython"
        return cython_cache_dir()

    def compile(self, system: DynamicsSystem, options: Options) -> Artefact:
        opts = self.options(options)
        self.check_support(system, opts)
        realized = system.with_options(tau_s=opts.tau_s)
        return Artefact(realized, opts, tau_s=opts.tau_s,
                        data=build_model(realized, events=opts.event_threshold is not None))

    def run(self, artefact: Artefact, batch: Batch, *, initial: str | State | None = None, seed: int = 0,
            trace: bool = False) -> SimulationResult:
        from hwbp.sim.simulate import default_duration
        from hwbp.targets.brian2.runner import run_model

        o: Brian2Options = artefact.options  # type: ignore[assignment]
        system = artefact.system
        total = default_duration(system.depth) if o.duration is None else o.duration
        n_steps, h = duration_steps(total, DEFAULT_DT if o.dt is None else o.dt)
        if n_steps > 10**8:
            raise ConfigError(f"duration/dt = {n_steps:.3g} steps exceeds 1e8; increase --dt")
        init = initial_state(system, batch, "zeros" if initial is None else initial, seed)
        every = (o.trace_every or max(1, n_steps // 400)) if trace else None
        out = run_model(artefact.data, batch, init, codegen=o.codegen, solver=o.method, dt_tau=h,
                        n_steps=n_steps, build_dir=self.build_dir(o), trace_every=every, theta=o.event_threshold,
                        cache_dir=self.cache_dir(o))
        label = initial if isinstance(initial, str) else ("zeros" if initial is None else "given")
        settle = {"mode": "continuous", "initial": label, "depth": system.depth, "steps": n_steps,
                  "duration_tau": total, "dt_tau": h, "solver": o.method, "codegen": o.codegen}
        if o.event_threshold is not None:
            settle.update(mode="events", event_threshold=o.event_threshold)
        return SimulationResult(out.state, out.trace, settle, out.stats)

    def conformance(self) -> Sequence[ConformanceProfile]:
        # numpy code generation (no compile per case; the cython and cpp_standalone
        # targets run the same equations, tests/test_brian2_codegen.py); exponential
        # Euler at dt = 0.1 tau over max(12L, 24) tau
        # at the same time the reference simulator's exponential Euler step for step
        return (ConformanceProfile("numpy", {"codegen": "numpy", "dt": CONFORMANCE_DT}, ORACLE_RTOL,
                                   slow=_slow_case,
                                   reference_options={"mode": "continuous", "solver": "exponential",
                                                      "dt": CONFORMANCE_DT},
                                   reference_rtol=REFERENCE_RTOL),)


_BUILD_DIR: list[Path] = []


def cython_cache_dir() -> Path:
    """The persistent Cython cache: ``$XDG_CACHE_HOME/hwbp/brian2/cython`` (an absolute
    ``XDG_CACHE_HOME``), else ``~/.cache/hwbp/brian2/cython``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "hwbp" / "brian2" / "cython"


def _process_build_dir() -> Path:
    if not _BUILD_DIR:
        _BUILD_DIR.append(Path(tempfile.mkdtemp(prefix="hwbp-brian2-")))
        atexit.register(shutil.rmtree, _BUILD_DIR[0], ignore_errors=True)
    return _BUILD_DIR[0]


def _slow_case(case: ConformanceCase) -> bool:
    """Beyond the core cases, cases that take more than a couple of seconds with numpy
    code generation (the per-step cost grows with the number of groups and synapses, the
    steps with L)."""
    return not core(case) or case.depth >= 5 or case.depth * case.batch_size > 8
