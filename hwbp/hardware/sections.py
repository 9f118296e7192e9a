"""The signal-path sections of the hardware model (:mod:`hwbp.hardware.model`): thermal
noise on the nodes, supply rails and the tension readout ADC, and the one-line check every
section's values go through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["Noise", "Rails", "Readout", "BOLTZMANN_J_PER_K", "check"]

#: Boltzmann constant k_B in J/K.
BOLTZMANN_J_PER_K = 1.380649e-23


def check(cond: bool, where: str, msg: str) -> None:
    """Raise a one-line :class:`ConfigError` ``hardware <where>: <msg>`` unless ``cond``."""
    if not cond:
        raise ConfigError(f"hardware {where}: {msg}")


@dataclass(frozen=True)
class Noise:
    """White thermal noise on every node: stationary rms ``sqrt(k_B T / C)`` V (kT/C noise
    of a node capacitor ``capacitance_F`` at ``temperature_K``), or ``rms_V`` given
    directly.  Integrated as an Ornstein-Uhlenbeck source,
    ``tau dx = (D - x) dt + sigma sqrt(2 tau) dW``, with Euler-Maruyama (continuous mode)."""

    temperature_K: float | None = None
    capacitance_F: float | None = None
    rms_V: float | None = None

    def __post_init__(self) -> None:
        thermal = self.temperature_K is not None or self.capacitance_F is not None
        check(not (thermal and self.rms_V is not None), "[noise]", "give temperature_K and capacitance_F, or rms_V")
        check(not thermal or (self.temperature_K is not None and self.capacitance_F is not None), "[noise]",
               "thermal noise needs both temperature_K and capacitance_F")
        check(self.temperature_K is None or self.temperature_K > 0, "[noise] temperature_K", "must be > 0")
        check(self.capacitance_F is None or self.capacitance_F > 0, "[noise] capacitance_F", "must be > 0")
        check(self.rms_V is None or self.rms_V >= 0, "[noise] rms_V", "must be >= 0")

    @property
    def sigma_V(self) -> float:
        """Stationary rms node voltage in V (0 when off)."""
        if self.rms_V is not None:
            return float(self.rms_V)
        if self.temperature_K is not None:
            return float(np.sqrt(BOLTZMANN_J_PER_K * self.temperature_K / self.capacitance_F))
        return 0.0


@dataclass(frozen=True)
class Rails:
    """Supply rails: every node voltage clips to ``[-v_V, +v_V]`` V (None: no rails)."""

    v_V: float | None = None

    def __post_init__(self) -> None:
        check(self.v_V is None or self.v_V > 0, "[rails] v_V", f"must be > 0, got {self.v_V}")


@dataclass(frozen=True)
class Readout:
    """ADC of the tension readout: tensions and gate signals are quantized to ``adc_bits``
    over ``[-adc_range_V, +adc_range_V]`` V (LSB ``2 range / 2**bits``; clipped at the range)."""

    adc_bits: int | None = None
    adc_range_V: float = 1.0

    def __post_init__(self) -> None:
        check(self.adc_bits is None or (isinstance(self.adc_bits, int) and 1 <= self.adc_bits <= 32),
               "[readout] adc_bits", f"must be an integer in 1..32, got {self.adc_bits!r}")
        check(self.adc_range_V > 0, "[readout] adc_range_V", f"must be > 0, got {self.adc_range_V}")
