"""The reference simulator's dynamics of one device instance (``system.instance``).

The kernel supplies the forward drive ``F`` (forward devices, activation cells) and the
sensitivity drive ``B`` (backward devices, derivative cells) of every population.  The
nodes add what the ideal dynamics lack.  Node ``x±`` with resistor factor ``r±`` and
capacitor factor ``c±`` obeys ``r± c± tau dx±/dt = -x± + r± (F ± B/2)``; in the mean and
tension coordinates, with ``r = (r+ + r-)/2``, ``dr = r+ - r-`` (likewise ``k± = 1/(r± c±)``)::

    D_mean = r F + dr B / 4,      D_tension = r B + dr F
    dmean/dt = k (D_mean - mean) + dk (D_tension - tension) / 4
    dtension/dt = dk (D_mean - mean) + k (D_tension - tension)

Rails clip ``x± = mean ± tension/2`` to ``[-rail, rail]`` after every step.  Thermal
noise adds ``sigma sqrt(2 k± h) xi±`` per node per step (Euler-Maruyama, continuous
mode only).  The readout ADC quantizes the final tensions and gate signals.
"""

from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from hwbp.errors import ConfigError
from hwbp.hardware.realize import DeviceInstance, quantize_readout
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.kernel import Kernel
from hwbp.sim.recording import Recorder, default_duration, duration_steps, gate_signals, initial_lists
from hwbp.sim.solvers import SOLVERS
from hwbp.state import SimulationResult, State
from hwbp.types import Batch

__all__ = ["simulate_instance", "MAX_STEADY_STEPS"]

#: Steady mode with a device instance iterates unit steps; this many at most.
MAX_STEADY_STEPS = 100_000

Arrays = list[np.ndarray]


class _Nodes:
    """The node-level equations of an instance (gains, rates, rails, noise)."""

    def __init__(self, kernel: Kernel, real: DeviceInstance) -> None:
        self.kernel = kernel
        self.real = real
        n = len(kernel.names)
        self.n = n
        if real.nodes is None:
            self.r = self.dr = self.k = self.dk = None
        else:
            nd = [real.nodes[name] for name in kernel.names]
            self.r = [0.5 * (d.r_plus + d.r_minus) for d in nd]
            self.dr = [d.r_plus - d.r_minus for d in nd]
            kp = [1.0 / (d.r_plus * d.c_plus) for d in nd]
            km = [1.0 / (d.r_minus * d.c_minus) for d in nd]
            self.k = [0.5 * (a + b) for a, b in zip(kp, km)]
            self.dk = [a - b for a, b in zip(kp, km)]
            self.kp, self.km = kp, km

    def rate(self, s: Arrays) -> Arrays:
        """``ds/dt`` (units of 1/tau) of the flat state ``means + tensions``."""
        n = self.n
        fm, bt = self.kernel.drive(s[:n], s[n:])
        if self.r is None:
            return [d - x for d, x in zip(fm + bt, s)]
        um, ut = [], []
        for i in range(n):
            dm = self.r[i] * fm[i] + 0.25 * self.dr[i] * bt[i]
            dt = self.r[i] * bt[i] + self.dr[i] * fm[i]
            um.append(dm - s[i])
            ut.append(dt - s[n + i])
        rm = [self.k[i] * um[i] + 0.25 * self.dk[i] * ut[i] for i in range(n)]
        rt = [self.dk[i] * um[i] + self.k[i] * ut[i] for i in range(n)]
        return rm + rt

    def clip(self, s: Arrays) -> Arrays:
        """Rails: clip every node ``x± = mean ± tension/2``."""
        v = self.real.rail
        if v is None:
            return s
        n = self.n
        out_m, out_t = [], []
        for m, t in zip(s[:n], s[n:]):
            xp = np.clip(m + 0.5 * t, -v, v)
            xm = np.clip(m - 0.5 * t, -v, v)
            out_m.append(0.5 * (xp + xm))
            out_t.append(xp - xm)
        return out_m + out_t

    def noise(self, s: Arrays, h: float, rng: np.random.Generator) -> Arrays:
        """Euler-Maruyama increment ``sigma sqrt(2 k± h) xi±`` of every node."""
        n, sig = self.n, self.real.noise_rms
        out_m, out_t = [], []
        for i in range(n):
            shape = s[i].shape
            kp = 1.0 if self.r is None else self.kp[i]
            km = 1.0 if self.r is None else self.km[i]
            ep = sig * np.sqrt(2.0 * kp * h) * rng.standard_normal(shape)
            em = sig * np.sqrt(2.0 * km * h) * rng.standard_normal(shape)
            out_m.append(s[i] + 0.5 * (ep + em))
            out_t.append(s[n + i] + (ep - em))
        return out_m + out_t


def simulate_instance(system: DynamicsSystem, batch: Batch, *, mode: str = "unit-step", steps: int | None = None,
                      duration: float | None = None, dt: float = 0.01, solver: str = "rk4",
                      initial: object = "zeros", seed: int = 0, trace: bool = False,
                      progress: bool = False, **_ignored: object) -> SimulationResult:
    """Settle a device instance (see the module docstring); arguments as
    :func:`hwbp.sim.simulate.simulate`, which checks them before it hands over.  ``steady`` iterates unit steps to the fixed
    point; noise needs ``continuous`` (solved with Euler-Maruyama)."""
    real: DeviceInstance = system.instance
    if trace and mode == "steady":
        raise ConfigError("--trace needs a trajectory: use --mode unit-step or continuous, not steady")
    if real.noise_rms > 0 and mode != "continuous":
        raise ConfigError(f"hardware noise needs --mode continuous (a stochastic solver), not {mode}")
    kernel = Kernel(system, batch)
    nodes = _Nodes(kernel, real)
    means, tensions, _ = initial_lists(kernel, system, batch, initial, seed)
    s = nodes.clip(means + tensions)
    L = system.depth
    settle: dict = {"mode": mode, "initial": initial if isinstance(initial, str) else "given", "depth": L,
                    "hardware": list(real.hardware.features()), "instance_seed": real.seed}
    n = len(kernel.names)
    record = Recorder(None)
    if mode == "unit-step":
        n_steps = 2 * L if steps is None else int(steps)
        record = Recorder(1 if trace else None)
        record(0, 0.0, s[:n], s[n:])
        for step in range(1, n_steps + 1):
            s = nodes.clip([x + r for x, r in zip(s, nodes.rate(s))])
            record(step, float(step), s[:n], s[n:], last=step == n_steps)
        settle["steps"] = n_steps
        t_end = float(n_steps)
    elif mode == "steady":
        n_steps = 0
        while True:
            new = nodes.clip([x + r for x, r in zip(s, nodes.rate(s))])
            n_steps += 1
            change = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(new, s))
            scale = max(float(np.max(np.abs(a), initial=0.0)) for a in new)
            s = new
            if n_steps >= 2 * L and change <= 1e-15 * (1.0 + scale):
                break
            if n_steps >= MAX_STEADY_STEPS:
                raise ConfigError(f"hardware instance did not settle in {MAX_STEADY_STEPS} steps "
                                  f"(last change {change:.3g}): node mismatch too large")
        settle["steps"] = n_steps
        t_end = float("inf")
    else:
        total = default_duration(L) if duration is None else float(duration)  # checked by simulate()
        n_steps, h = duration_steps(total, dt)
        noisy = real.noise_rms > 0
        impl = SOLVERS["euler" if noisy else solver]()
        rng = np.random.default_rng([real.seed, seed, 0x6E6F])

        def drive(x: Arrays) -> Arrays:  # the solvers integrate D(s) - s
            return [a + r for a, r in zip(x, nodes.rate(x))]

        record = Recorder(max(1, n_steps // 400) if trace else None)
        record(0, 0.0, s[:n], s[n:])
        for step in tqdm(range(1, n_steps + 1), disable=not progress, desc="simulating", unit="step",
                         leave=False, file=sys.stderr):
            s = impl.step(drive, s, h)
            if noisy:
                s = nodes.noise(s, h, rng)
            s = nodes.clip(s)
            record(step, step * h, s[:n], s[n:], last=step == n_steps)
        settle.update(steps=n_steps, duration_tau=total, dt_tau=h,
                      solver="euler-maruyama" if noisy else solver)
        t_end = total
    means = s[:n]
    # the ADC reads the tension nodes and the gate nodes (computed in analog from the raw tension)
    gates = {k: quantize_readout(v, real) for k, v in gate_signals(kernel, means, s[n:]).items()}
    tensions = [quantize_readout(t, real) for t in s[n:]]
    stats = {"layer_evaluations": kernel.evaluations, "flops": kernel.flops}
    state = State(dict(zip(kernel.names, means)), dict(zip(kernel.names, tensions)), t_end, n_steps, gates)
    return SimulationResult(state, record.trace(kernel.names), settle, stats)
