"""The ``lava`` backend: the conjugate-pair dynamics as Lava processes, run in Lava's
CPU simulator (``Loihi2SimCfg``), in floating point or in Loihi-like fixed point.

``--precision float`` (ProcessModels tagged ``floating_pt``): float64, one Lava time
step per unit step of the dynamics; ``--dt 1`` is unit-step Euler (exact backprop
after ``2L`` steps), ``--dt < 1`` the continuous-time approximation (Euler with that
step, as the reference simulator's continuous mode with ``--solver euler``).
``--steps`` counts unit steps of the dynamics (default ``2L`` at ``dt = 1``; below,
``ceil(max(12 L, 24) / dt)``, the reference's continuous duration; see
:meth:`LavaOptions.unit_steps`).  A run takes one
more Lava step than unit steps: the last one only lets the terms compute the gate
signals ``e`` of the final state; the report gives both counts.

Every run of a job goes to one Lava runtime, kept while the network's structure
stays the same (:mod:`hwbp.targets.lava.session`): the batch, the start state and the
parameters go into the processes through their host pipes, so only the first run pays
for compiling the processes and starting Lava.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


from hwbp.backend import Artefact, Backend, Options, Support, option
from hwbp.testing import ConformanceProfile, core
from hwbp.initial import initial_state
from hwbp.errors import BatchError, ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.state import SimulationResult, State
from hwbp.targets.lava.topology import LAVA_ACTIVATIONS, check_realizable
from hwbp.types import Batch

__all__ = ["PRECISIONS", "LavaOptions", "LavaBackend", "FLOAT_UNIT_STEP_RTOL", "FLOAT_EULER_RTOL", "FIXED_RTOL",
           "FIXED_MAX_SIGMOID_DEPTH", "FIXED_MAX_LEAKY_DEPTH"]

PRECISIONS = ("float", "fixed")

#: Float, dt = 1, after 2L steps: exact backprop (theorem 1) up to float64 round-off of
#: the products, which Lava's processes evaluate in an order of their own (the sums
#: over an InPort's senders, ``u Wᵀ`` instead of the reference's contiguous copy).
FLOAT_UNIT_STEP_RTOL = 1e-10
#: Float, dt = 0.5 (the continuous-time approximation) over the default max(12 L, 24) tau:
#: the Euler recursion keeps the exact fixed point and its transient has decayed to
#: <= 1.4e-10 (measured on every activation, mse and ce, MLPs and residual MLPs of depth
#: 1-8); the bound leaves a ~7x margin.  Not a conformance profile (its 24L-step runs
#: would double the suite's Lava time); tests/test_lava_float.py checks it.
FLOAT_EULER_RTOL = 1e-9
#: Fixed point with 16-bit weights, 24-bit state (16 fraction bits) and payloads, 2L unit
#: steps: the state resolution 2**-16 against gated sensitivities of 1e-3..1e-2 and the
#: tables of f, f' leave up to 2.6e-3 (measured over every activation, mse and ce, MLPs
#: and residual MLPs of depth 1-8, width 7, batch 3, zeros and random starts); the bound
#: keeps a ~4x margin.
FIXED_RTOL = 1e-2
#: sigmoid (f' <= 1/4) deeper than this shrinks the first layers' gradients toward the
#: state resolution (measured rel_err 0.02-0.05 at depth 6, 0.34-0.75 at depth 8).
FIXED_MAX_SIGMOID_DEPTH = 4
#: leaky_relu with slope 0.1 (f' = 0.1 below 0) deeper than this does the same: measured
#: rel_err 0.61 on the conformance suite's residual MLP of depth 8 (width 4, zeros
#: start); within FIXED_RTOL at depth 5.
FIXED_MAX_LEAKY_DEPTH = 5


@dataclass(frozen=True)
class LavaOptions(Options):
    """Options of the Lava backend (time in units of tau)."""

    precision: str = option("float", "number format of the ProcessModels (floating_pt or fixed_pt tag)",
                            choices=PRECISIONS)
    steps: int | None = option(None, "steps of the dynamics to take (default: 2L at --dt 1; below, "
                                     "ceil(max(12L, 24) / dt), the reference's continuous duration)")
    dt: float | None = option(None, "Euler step of the decay (1: unit-step, exact; < 1: continuous-time "
                                    "approximation; default 1)", unit="tau")
    weight_bits: int = option(8, "fixed point: bits of the integer weights (sign included; shared exponent "
                                 "per weight tensor)")
    state_bits: int = option(24, "fixed point: bits of the integer state (mean and tension, saturating)")
    payload_bits: int | None = option(None, "fixed point: bits of a graded-spike payload (messages drop low bits "
                                            "and saturate; default: as wide as the state)")
    on_chip: bool = option(False, "hwbp train: learn inside the Lava processes (ΔW = -lr e uᵀ in each "
                                  "connection, SGD; fixed point: stochastic rounding)")
    timeout_s: float = option(600.0, "time limit of one Lava run (default: 600)", unit="s", flag="--timeout")
    tau_s: float = option(1.0, "node time constant, for artefacts and reports (default: 1)", unit="s",
                          flag="--tau")

    def check(self) -> None:
        if self.steps is not None and self.steps < 0:
            raise ConfigError(f"--steps must be >= 0, got {self.steps}")
        if self.dt is not None and not 0 < self.dt <= 1:
            raise ConfigError(f"--dt must be in (0, 1] (units of tau; the decay of one Lava step), got {self.dt}")
        if not 2 <= self.weight_bits <= 24:
            raise ConfigError(f"--weight-bits must be in 2..24, got {self.weight_bits}")
        if not 8 <= self.state_bits <= 32:
            raise ConfigError(f"--state-bits must be in 8..32, got {self.state_bits}")
        if self.payload_bits is not None and not 2 <= self.payload_bits <= self.state_bits:
            raise ConfigError(f"--payload-bits must be in 2..--state-bits ({self.state_bits}), got {self.payload_bits}")
        if not self.timeout_s > 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {self.timeout_s}")
        if not self.tau_s > 0:
            raise ConfigError(f"--tau must be a positive number of seconds, got {self.tau_s}")

    @property
    def step(self) -> float:
        """The Euler step in units of tau (default 1)."""
        return 1.0 if self.dt is None else self.dt

    def unit_steps(self, depth: int) -> int:
        """Steps to take on a system of depth ``depth``: ``--steps``, else ``2L`` at
        ``dt = 1`` and ``ceil(max(12 L, 24) / dt)`` (the reference's continuous default
        duration) below."""
        from hwbp.sim.recording import default_duration, duration_steps

        if self.steps is not None:
            n = self.steps
        elif self.step == 1.0:
            n = 2 * depth
        else:
            n = duration_steps(default_duration(depth), self.step)[0]
        if n > MAX_LAVA_STEPS:
            how = "--steps" if self.steps is not None else f"--dt {self.step:g} over the default duration"
            raise ConfigError(f"lava: {how} makes {n:.3g} steps, more than {MAX_LAVA_STEPS:.0e}; "
                              f"take fewer steps or a larger --dt")
        return n


#: Most Lava steps one run may take (each is a round of messages through Lava's
#: runtime, ~1 ms): beyond it a run is refused up front instead of running for hours.
MAX_LAVA_STEPS = 10**6


class LavaBackend(Backend):
    """Lava processes in Lava's CPU simulator (floating_pt or fixed_pt ProcessModels)."""

    name = "lava"
    description = "Lava processes (lava-nc CPU simulator): float or Loihi-like fixed point"
    Options = LavaOptions
    training_defaults = {"precision": "float"}
    #: The processes' activation codes as f and φ, any fixed gain, tied weights (each term
    #: holds its use of the one parameter); no structured layout, no hardware model.
    support = Support(activations=LAVA_ACTIVATIONS, source_activations=LAVA_ACTIVATIONS,
                      features={"gain", "source_activation", "tied"})

    def compile(self, system: DynamicsSystem, options: Options) -> Artefact:
        opts: LavaOptions = self.options(options)  # type: ignore[assignment]
        self.check_support(system, opts)
        check_realizable(system)
        data = None
        if opts.precision == "fixed":
            from hwbp.targets.lava.fixed import FixedFormat

            data = FixedFormat.for_system(system, opts)
        return Artefact(system, opts, tau_s=opts.tau_s, data=data)

    def run(self, artefact: Artefact, batch: Batch, *, initial: str | State | None = None, seed: int = 0,
            trace: bool = False) -> SimulationResult:
        if artefact.options.on_chip:  # type: ignore[attr-defined]
            raise ConfigError("--on-chip applies to hwbp train only")
        if trace:
            raise ConfigError("--trace is not supported by --backend lava (the processes keep no trajectory); "
                              "use --steps to look at one instant")
        if batch.size < 1:
            raise BatchError("lava: the batch is empty; give at least one sample")
        o: LavaOptions = artefact.options  # type: ignore[assignment]
        system = artefact.system
        start = initial_state(system, batch, "zeros" if initial is None else initial, seed)
        steps = o.unit_steps(system.depth)
        if o.precision == "float":
            from hwbp.targets.lava.run_float import run_float

            state = run_float(system, batch, start, steps, o.step, o.timeout_s)
        else:
            from hwbp.targets.lava.fixed import run_fixed

            state = run_fixed(artefact.data, system, batch, start, steps, o.step, o.timeout_s)
        settle = {"mode": "unit-step" if o.step == 1.0 else "continuous", "initial": initial if isinstance(
            initial, str) else ("zeros" if initial is None else "given"), "depth": system.depth, "steps": steps,
            "lava_steps": steps + 1, "dt_tau": o.step, "precision": o.precision}
        if o.step != 1.0:
            settle.update(duration_tau=steps * o.step, solver="euler")
        return SimulationResult(state, None, settle, {"lava_steps": steps + 1})

    def train_on_chip(self, graph, x, labels, config, options, *, beta=1.0, x_test=None, y_test=None,
                      progress=True, desc="training"):
        """With ``--on-chip``: whole epochs inside Lava (:mod:`hwbp.targets.lava.onchip`);
        otherwise None (the host trains with the gradients of :meth:`run`)."""
        if not self.options(options).on_chip:
            return None
        from hwbp.targets.lava.onchip import train_on_chip

        return train_on_chip(graph, x, labels, config, self.options(options), beta=beta, x_test=x_test,
                             y_test=y_test, progress=progress, desc=desc)

    def conformance(self) -> Sequence[ConformanceProfile]:
        def too_deep(case) -> str | None:
            if case.activation == "sigmoid" and case.depth > FIXED_MAX_SIGMOID_DEPTH:
                return (f"fixed point: sigmoid deeper than {FIXED_MAX_SIGMOID_DEPTH} shrinks early-layer gradients "
                        f"toward the 2**-16 state resolution (rel_err 0.34-0.75 at depth 8; a property of the "
                        f"format, not a defect)")
            return None

        def leaky_too_deep(case) -> str | None:
            if case.activation == "leaky_relu" and case.depth > FIXED_MAX_LEAKY_DEPTH:
                return (f"fixed point: leaky_relu (f' = 0.1 below 0) deeper than {FIXED_MAX_LEAKY_DEPTH} shrinks "
                        f"early-layer gradients toward the 2**-16 state resolution (measured rel_err 0.61 at depth 8)")
            return None

        return (
            # the same unit-step Euler recursion as the reference simulator: equal states,
            # step for step, up to the round-off named by FLOAT_UNIT_STEP_RTOL
            ConformanceProfile("float-unit-step", {"precision": "float"}, FLOAT_UNIT_STEP_RTOL,
                               slow=lambda c: not core(c) or c.depth > 3,
                               reference_options={"mode": "unit-step"}, reference_rtol=FLOAT_UNIT_STEP_RTOL),
            ConformanceProfile("fixed-16bit", {"precision": "fixed", "weight_bits": 16}, FIXED_RTOL,
                               unsupported=too_deep, expected_failure=leaky_too_deep, slow=lambda c: not core(c) or c.depth > 3),
        )

