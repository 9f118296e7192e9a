"""Simulation state, trace and result types.

The reference simulator works in the common/differential coordinates of each
conjugate pair: the mean ``xbar = (x+ + x-)/2`` and the tension ``T = x+ - x-``.
This is an exact linear change of coordinates (``x± = xbar ± T/2``) that keeps the
tension free of the cancellation error ``x+ - x-`` would suffer in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

__all__ = ["State", "Trace", "SimulationResult"]


@dataclass(frozen=True, eq=False)
class State:
    """State of every population at one instant.

    Attributes
    ----------
    mean : Mapping[str, numpy.ndarray]
        ``xbar`` per population, ``(batch, n)``; the activations.
    tension : Mapping[str, numpy.ndarray]
        ``T = x+ - x-`` per population, ``(batch, n)``; ``beta * dl/dx`` at the fixed point.
    t : float
        Time in units of tau.
    steps : int
        Integration steps taken to reach this state.
    """

    mean: Mapping[str, np.ndarray]
    tension: Mapping[str, np.ndarray]
    t: float = 0.0
    steps: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", MappingProxyType(dict(self.mean)))
        object.__setattr__(self, "tension", MappingProxyType(dict(self.tension)))

    def plus(self, name: str) -> np.ndarray:
        """Node voltages ``x+ = xbar + T/2`` of population ``name``."""
        return self.mean[name] + 0.5 * self.tension[name]

    def minus(self, name: str) -> np.ndarray:
        """Node voltages ``x- = xbar - T/2`` of population ``name``."""
        return self.mean[name] - 0.5 * self.tension[name]


@dataclass(frozen=True, eq=False)
class Trace:
    """Recorded states: ``t`` (times in units of tau, shape ``(K,)``) and per population
    ``mean[name]``, ``tension[name]`` of shape ``(K, batch, n)``."""

    t: np.ndarray
    mean: Mapping[str, np.ndarray]
    tension: Mapping[str, np.ndarray]

    def state(self, k: int) -> State:
        """The ``k``-th recorded state."""
        return State(
            {n: a[k] for n, a in self.mean.items()},
            {n: a[k] for n, a in self.tension.items()},
            float(self.t[k]),
            k,
        )

    def __len__(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Final state, optional trace, and how the system settled.

    ``settle`` holds ``mode`` and, as applicable, ``steps``, ``duration_tau``,
    ``dt_tau``, ``solver``, ``initial``; ``stats`` holds work counters
    (``layer_evaluations``, ``flops``).
    """

    state: State
    trace: Trace | None = None
    settle: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
