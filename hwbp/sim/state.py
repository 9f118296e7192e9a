"""Compatibility alias: the state types live in :mod:`hwbp.state` (shared by every backend)."""

from hwbp.state import SimulationResult, State, Trace

__all__ = ["State", "Trace", "SimulationResult"]
