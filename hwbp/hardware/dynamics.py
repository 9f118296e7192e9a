"""The device part of one device instance (``system.instance``) for the reference simulator.

:func:`hwbp.sim.simulate.simulate` is the one driver: the messaging part (the kernel or
the event rule) supplies the forward drive ``F`` (forward devices, activation cells)
and the sensitivity drive ``B`` (backward devices, derivative cells) of every
population; this part adds what the ideal nodes lack.  Node ``x±`` with resistor factor
``r±`` and capacitor factor ``c±`` obeys ``r± c± tau dx±/dt = -x± + r± (F ± B/2)``; in
the mean and tension coordinates, with ``r = (r+ + r-)/2``, ``dr = r+ - r-`` (likewise
``k± = 1/(r± c±)``)::

    D_mean = r F + dr B / 4,      D_tension = r B + dr F
    dmean/dt = k (D_mean - mean) + dk (D_tension - tension) / 4
    dtension/dt = dk (D_mean - mean) + k (D_tension - tension)

Rails clip ``x± = mean ± tension/2`` to ``[-rail, rail]`` after every step.  Thermal
noise adds ``sigma sqrt(2 k± h) xi±`` per node per step (Euler-Maruyama, continuous
mode only).  The readout ADC quantizes the final tensions and gate signals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["InstanceDevices", "quantize_readout"]

Arrays = list[np.ndarray]


def quantize_readout(values: np.ndarray, real: Any) -> np.ndarray:
    """``values`` as the readout ADC of instance ``real`` reports them (unchanged without an ADC)."""
    if real.adc_lsb is None:
        return values
    return np.clip(np.round(values / real.adc_lsb) * real.adc_lsb, -real.adc_range, real.adc_range)


class InstanceDevices:
    """The node-level equations of an instance (gains, rates, rails, noise, readout),
    for populations ``names`` in the simulator's order.

    Parameters
    ----------
    real : DeviceInstance
    names : list of str
    """

    def __init__(self, real: Any, names: list[str]) -> None:
        self.real = real
        self.n = len(names)
        self.noisy = real.noise_rms > 0
        if real.nodes is None:
            self.r = self.dr = self.k = self.dk = None
        else:
            nd = [real.nodes[name] for name in names]
            self.r = [0.5 * (d.r_plus + d.r_minus) for d in nd]
            self.dr = [d.r_plus - d.r_minus for d in nd]
            kp = [1.0 / (d.r_plus * d.c_plus) for d in nd]
            km = [1.0 / (d.r_minus * d.c_minus) for d in nd]
            self.k = [0.5 * (a + b) for a, b in zip(kp, km)]
            self.dk = [a - b for a, b in zip(kp, km)]
            self.kp, self.km = kp, km

    def check(self, mode: str, trace: bool) -> None:
        """Raise :class:`ConfigError` for what an instance cannot run in ``mode``."""
        if trace and mode == "steady":
            raise ConfigError("--trace needs a trajectory: use --mode unit-step or continuous, not steady")
        if self.noisy and mode != "continuous":
            raise ConfigError(f"hardware noise needs --mode continuous (a stochastic solver), not {mode}")

    def settle(self) -> dict[str, Any]:
        """The instance's entries of a run's ``settle`` report."""
        return {"hardware": list(self.real.hardware.features()), "instance_seed": self.real.seed}

    def rate(self, fm: Arrays, bt: Arrays, s: Arrays) -> Arrays:
        """``ds/dt`` (units of 1/tau) of the flat state ``s = means + tensions`` given the
        drive ``F`` (``fm``) and ``B`` (``bt``)."""
        n = self.n
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

    def noise_rng(self, seed: int) -> np.random.Generator:
        """The generator of the thermal noise of a run with ``seed``."""
        return np.random.default_rng([self.real.seed, seed, 0x6E6F])

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

    def readout(self, values: np.ndarray) -> np.ndarray:
        """A tension or gate signal as the instance's ADC reads it."""
        return quantize_readout(values, self.real)

    @staticmethod
    def steady_failure(change: float, steps: int) -> ConfigError:
        """The error when ``steps`` iterated unit steps do not settle."""
        return ConfigError(f"hardware instance did not settle in {steps} steps "
                           f"(last change {change:.3g}): node mismatch too large")
