"""State, trace and result types that every backend returns (neutral: no backend's own).

A state holds, per population, the mean ``xbar = (x+ + x-)/2`` (the activation) and
the tension ``T = x+ - x-`` (``beta * dl/dx`` at rest), and, per weighted term, the
*gate signal* ``e = f'(a) ⊙ T`` (V of tension) as the hardware itself produced it:
the readout builds parameter gradients from it (``dL/dW = mean e uᵀ / beta``) and
never recomputes ``f'`` where a backend supplied ``e`` (DESIGN.md section 4).

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
    gates : Mapping[tuple[str, int], numpy.ndarray]
        Per weighted term ``(population, term index)``, the gated sensitivity
        ``e = f'(a) ⊙ T`` of that term, ``(batch, n)``, as the backend produced it
        (SPICE: the gate node voltages).  Empty when the backend supplies none; the
        readout then recomputes ``f'`` from the means and says so in the report.
    """

    mean: Mapping[str, np.ndarray]
    tension: Mapping[str, np.ndarray]
    t: float = 0.0
    steps: int = 0
    gates: Mapping[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", MappingProxyType(dict(self.mean)))
        object.__setattr__(self, "tension", MappingProxyType(dict(self.tension)))
        object.__setattr__(self, "gates", MappingProxyType(dict(self.gates)))

    def plus(self, name: str) -> np.ndarray:
        """Node voltages ``x+ = xbar + T/2`` of population ``name``."""
        return self.mean[name] + 0.5 * self.tension[name]

    def minus(self, name: str) -> np.ndarray:
        """Node voltages ``x- = xbar - T/2`` of population ``name``."""
        return self.mean[name] - 0.5 * self.tension[name]


@dataclass(frozen=True, eq=False)
class Trace:
    """Recorded states: ``t`` (times in units of tau, shape ``(K,)``) and per population
    ``mean[name]``, ``tension[name]`` of shape ``(K, batch, n)``; ``gates`` per weighted
    term ``(K, batch, n)`` where the backend records them."""

    t: np.ndarray
    mean: Mapping[str, np.ndarray]
    tension: Mapping[str, np.ndarray]
    gates: Mapping[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def state(self, k: int) -> State:
        """The ``k``-th recorded state."""
        return State(
            {n: a[k] for n, a in self.mean.items()},
            {n: a[k] for n, a in self.tension.items()},
            float(self.t[k]),
            k,
            {n: a[k] for n, a in self.gates.items()},
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
