"""Backends that settle a :class:`~hwbp.lower.DynamicsSystem` on a batch.

A backend is a callable ``run(system, batch, **options) -> SimulationResult``.  The
table :data:`BACKENDS` maps each name to ``"module:function"`` and is imported
lazily, so a backend whose external tool is missing costs nothing until chosen.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from hwbp.registry import load_entry
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.state import SimulationResult
from hwbp.types import Batch

__all__ = ["BACKENDS", "get_backend", "run_reference"]

Backend = Callable[..., SimulationResult]


def run_reference(system: DynamicsSystem, batch: Batch, **options: Any) -> SimulationResult:
    """The embedded numpy simulator; ``options`` are those of :func:`hwbp.sim.simulate`."""
    from hwbp.sim.simulate import simulate

    return simulate(system, batch, **options)


#: Backend name -> "module:function".
BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "reference": "hwbp.verify.backends:run_reference",
        "spice": "hwbp.targets.spice.backend:run_spice",
    }
)


def get_backend(name: str) -> Backend:
    """The backend callable called ``name``; the error lists the valid names."""
    return load_entry(BACKENDS, name, "backend")
