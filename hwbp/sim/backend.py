"""The ``reference`` backend: the embedded numpy simulator behind the backend contract."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hwbp.backend import FP_ERRORS, Artefact, Backend, Options, Support, option
from hwbp.testing import ConformanceProfile
from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.events import check_event_options
from hwbp.sim.simulate import MAX_UNIT_STEPS, MODES, check_initial, simulate
from hwbp.sim.solvers import SOLVERS
from hwbp.sim.stream import steady_gradients
from hwbp.state import SimulationResult, State
from hwbp.types import Batch, Gradients

__all__ = ["ReferenceOptions", "ReferenceBackend", "UNIT_STEP_RTOL", "STEADY_RTOL", "CONTINUOUS_RTOL"]

#: Unit-step Euler after 2L steps is exact (theorem 1): only float64 round-off of the
#: matrix products and the readout remains (measured <= 1e-13 up to depth 8).
UNIT_STEP_RTOL = 1e-12
#: The fixed point by one forward and one backward sweep: round-off only.
STEADY_RTOL = 1e-12
#: Continuous mode, RK4 with dt = 0.02 tau (the conformance profile; the default is 0.01),
#: over the default duration T = max(12L, 24) tau.
#: What remains of the initial error is the cascade's Erlang tail, P(Poisson(T) < 2L)
#: (theorem 2): 9.4e-10 at L = 1, 9.9e-8 at L = 2 (the worst), 1.3e-10 at L = 3, less
#: beyond; from a random N(0, 1) state the initial error is a few times the gradient,
#: so L = 2 gives ~2e-7 (measured 1.9e-7 at dt = 0.02 and at 0.01 alike: RK4's own error
#: at these steps, ~1e-10 to 2e-9 of the transient, does not show).
CONTINUOUS_RTOL = 1e-6


@dataclass(frozen=True)
class ReferenceOptions(Options):
    """Options of the reference simulator (time in units of tau)."""

    mode: str = option("unit-step", "how to settle: unit-step (Euler, dt = tau), continuous (dt << tau) or steady "
                                    "(the fixed point)", choices=MODES)
    steps: int | None = option(None, "unit-step mode: steps to take (default: 2L)")
    duration: float | None = option(None, "continuous mode: duration (default: max(12L, 24))", unit="tau")
    dt: float | None = option(None, "continuous mode: time step (default: 0.01)", unit="tau")
    solver: str | None = option(None, "continuous-mode solver (default: rk4)", choices=tuple(SOLVERS))
    tau_s: float = option(1.0, "node time constant, for artefacts and reports (default: 1)", unit="s",
                          flag="--tau")
    skip_unchanged: bool = option(True, "unit-step: skip populations whose inputs did not change", cli=False)
    progress: bool | None = option(None, "progress bar on stderr (default: when stderr is a terminal)", cli=False)
    event_threshold: float | None = option(None, "continuous mode: event-driven (sigma-delta) messaging; a value "
                                                 "is sent when it moved by more than this (solver euler or "
                                                 "exponential; default exponential)")

    def check(self) -> None:
        only = {"steps": "unit-step", "duration": "continuous", "dt": "continuous", "solver": "continuous",
                "event_threshold": "continuous"}
        for name, needs in only.items():
            if getattr(self, name) is not None and self.mode != needs:
                raise ConfigError(f"{self.info(name).flag} applies to --mode {needs}, not {self.mode}")
        if self.steps is not None and not 0 <= self.steps <= MAX_UNIT_STEPS:
            raise ConfigError(f"--steps must lie in [0, {MAX_UNIT_STEPS:.0e}] (exactness needs 2L), got {self.steps}")
        check_time_options(self.dt, self.duration, self.tau_s, self.event_threshold, self.solver or "exponential")


def check_time_options(dt: float | None, duration: float | None, tau_s: float, event_threshold: float | None,
                       solver: str) -> None:
    """Checks shared by the continuous-time backends: ``dt > 0`` and ``duration >= 0``
    (units of tau), ``tau_s > 0`` (s), and the event-driven options (``solver`` in the
    reference simulator's names)."""
    if dt is not None and not dt > 0:
        raise ConfigError(f"--dt must be > 0 (units of tau), got {dt}")
    if duration is not None and not duration >= 0:
        raise ConfigError(f"--duration must be >= 0 (units of tau), got {duration}")
    if not tau_s > 0:
        raise ConfigError(f"--tau must be a positive number of seconds, got {tau_s}")
    if event_threshold is not None:
        check_event_options(event_threshold, solver)


class ReferenceBackend(Backend):
    """The embedded numpy (float64) simulator: unit-step, continuous and steady modes."""

    name = "reference"
    description = "embedded numpy simulator (float64): unit-step Euler, continuous ODE solvers, steady state"
    Options = ReferenceOptions
    training_defaults = {"mode": "unit-step"}
    support = Support(hardware={"weights", "mismatch", "nodes", "synapses", "cells", "loss", "noise", "rails",
                                "readout"})

    def compile(self, system: DynamicsSystem, options: Options) -> Artefact:
        opts = self.options(options)
        self.check_support(system, opts)
        return Artefact(system, opts, tau_s=opts.tau_s)

    def run(self, artefact: Artefact, batch: Batch, *, initial: str | State | None = None, seed: int = 0,
            trace: bool = False) -> SimulationResult:
        o: ReferenceOptions = artefact.options  # type: ignore[assignment]
        if trace and o.mode == "steady":
            raise ConfigError("--trace needs a trajectory: use --mode unit-step or continuous, not steady")
        kw: dict = {"mode": o.mode, "initial": "zeros" if initial is None else initial, "seed": seed,
                    "trace": trace, "skip_unchanged": o.skip_unchanged}
        if o.mode == "unit-step":
            kw["steps"] = o.steps
        elif o.mode == "continuous":
            progress = sys.stderr.isatty() if o.progress is None else o.progress
            kw.update(duration=o.duration, dt=0.01 if o.dt is None else o.dt, solver=o.solver,
                      progress=progress, event_threshold=o.event_threshold)
        return simulate(artefact.system, batch, **kw)

    def gradients(self, artefact: Artefact, batch: Batch, *, initial: str | State | None = None
                  ) -> Gradients | None:
        """Steady mode on the nominal network: the gradients read during the sensitivity
        sweep (:func:`hwbp.sim.steady_gradients`), bit for bit those of :meth:`run` and
        the readout at about a quarter of the memory, without activation gradients.
        ``None`` for the other modes and for a device instance
        (:class:`hwbp.backend.StreamsGradients`)."""
        o: ReferenceOptions = artefact.options  # type: ignore[assignment]
        if o.mode != "steady" or artefact.system.instance is not None:
            return None
        with np.errstate(**FP_ERRORS):
            check_initial(artefact.system, batch, "zeros" if initial is None else initial, 0)
            return steady_gradients(artefact.system, batch)

    def conformance(self) -> Sequence[ConformanceProfile]:
        return (
            ConformanceProfile("unit-step", {"mode": "unit-step"}, UNIT_STEP_RTOL),
            ConformanceProfile("steady", {"mode": "steady"}, STEADY_RTOL),
            ConformanceProfile("continuous", {"mode": "continuous", "dt": 0.02}, CONTINUOUS_RTOL,
                               slow=lambda c: True),  # seconds a case: make test, not test-fast
        )
