"""Time-stepping solvers for ``tau ds/dt = -s + D(s)``.

``s`` is a flat list of arrays (means then tensions); ``D`` the drive; ``h`` the step
in units of tau.  Each solver is a small stateless class; :data:`SOLVERS` is the table
the simulator's keyword ``solver=`` chooses from.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["Solver", "Euler", "RK4", "ExponentialEuler", "SOLVERS"]

Vec = list[np.ndarray]
Drive = Callable[[Vec], Vec]


def _combine(base: Sequence[np.ndarray], *pairs: tuple[float, Sequence[np.ndarray]]) -> Vec:
    """``base + sum_j c_j * v_j`` elementwise over the lists."""
    out = []
    for idx, b in enumerate(base):
        acc = b.copy()
        for c, v in pairs:
            acc += c * v[idx]
        out.append(acc)
    return out


def _rate(drive: Drive, s: Vec) -> Vec:
    """``ds/dt`` in units of 1/tau: ``D(s) - s``."""
    return [d - x for d, x in zip(drive(s), s)]


class Solver:
    """Base class: one step of size ``h`` (units of tau)."""

    name = ""
    #: Global order of accuracy in ``h``.
    order = 0

    def step(self, drive: Drive, s: Vec, h: float) -> Vec:  # pragma: no cover - abstract
        """Advance ``s`` by ``h``."""
        raise NotImplementedError


class Euler(Solver):
    """Forward Euler: ``s + h (D(s) - s)``.  With ``h = 1`` it is the unit step ``s <- D(s)``."""

    name = "euler"
    order = 1

    def step(self, drive: Drive, s: Vec, h: float) -> Vec:
        return _combine(s, (h, _rate(drive, s)))


class RK4(Solver):
    """Classical fourth-order Runge-Kutta."""

    name = "rk4"
    order = 4

    def step(self, drive: Drive, s: Vec, h: float) -> Vec:
        k1 = _rate(drive, s)
        k2 = _rate(drive, _combine(s, (h / 2, k1)))
        k3 = _rate(drive, _combine(s, (h / 2, k2)))
        k4 = _rate(drive, _combine(s, (h, k3)))
        return _combine(s, (h / 6, k1), (h / 3, k2), (h / 3, k3), (h / 6, k4))


class ExponentialEuler(Solver):
    """Exponential integrator: the leak is integrated exactly, the drive held over the
    step: ``s <- e^{-h} s + (1 - e^{-h}) D(s)`` (first order; exact for constant drive)."""

    name = "exponential"
    order = 1

    def step(self, drive: Drive, s: Vec, h: float) -> Vec:
        decay = float(np.exp(-h))
        return [decay * x + (1.0 - decay) * d for x, d in zip(s, drive(s))]


#: Solvers by name.
SOLVERS: Mapping[str, type[Solver]] = MappingProxyType(
    {cls.name: cls for cls in (Euler, RK4, ExponentialEuler)}
)
