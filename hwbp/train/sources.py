"""Where the gradients of a training step come from.

``oracle``
    Plain reverse-mode backprop (:func:`hwbp.oracle.exact_gradients`).
``reference``
    The numpy conjugate-pair dynamics (unit-step Euler, ``2L`` steps from rest),
    read out with :func:`hwbp.verify.read_gradients`; no oracle involved.
``spice``
    The circuit: the netlist with the current weights is (re)loaded into ngspice
    and solved (``.op``) for every sample of the mini-batch; the node voltages are
    read out with :func:`hwbp.verify.read_gradients`.  New weights reach the
    simulator by re-parsing the netlist.  ``benchmarks/bench_spice.py`` times both
    routes: at ~9k synapses re-parsing and ``alter``ing every synapse are within
    ~1.5x of each other (either one ahead, run to run); at ~90k elements re-parsing
    took ~0.5 s against ~2 s for the ``alter`` commands, so re-parsing is the
    route that scales.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from hwbp.errors import ConfigError
from hwbp.ir.graph import Graph
from hwbp.types import Batch, Gradients

__all__ = ["SOURCES", "GradientSource", "get_source"]

GradientSource = Callable[[Graph, Batch], Gradients]


def _oracle(graph: Graph, batch: Batch) -> Gradients:
    from hwbp.oracle.backprop import exact_gradients

    return exact_gradients(graph, batch)


@dataclass(frozen=True)
class _Dynamics:
    """Gradients read from a settled physical state (reference simulator or SPICE)."""

    backend: str
    beta: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, graph: Graph, batch: Batch) -> Gradients:
        from hwbp.lower.lowerer import lower
        from hwbp.verify.backends import get_backend
        from hwbp.verify.readout import read_gradients

        system = lower(graph, beta=self.beta)
        result = get_backend(self.backend)(system, batch, **dict(self.options))
        return read_gradients(system, result.state, batch)


#: Source names (CLI ``--backend`` of ``hwbp train``).
SOURCES = ("spice", "reference", "oracle")


def get_source(name: str, *, beta: float = 1.0, options: Mapping[str, Any] | None = None) -> GradientSource:
    """The gradient source ``name``; ``options`` go to the backend (spice: runner, r_ohm, ...)."""
    if name == "oracle":
        return _oracle
    if name == "reference":
        return _Dynamics("reference", beta, {"mode": "unit-step", "initial": "zeros", **dict(options or {})})
    if name == "spice":
        return _Dynamics("spice", beta, {"analysis": "op", "runner": "shared", **dict(options or {})})
    raise ConfigError(f"unknown gradient source {name!r}; valid: {', '.join(SOURCES)}")
