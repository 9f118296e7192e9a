"""End-to-end verification: lower, settle on a backend, read out, compare, report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hwbp.ir.graph import Graph
from hwbp.lower.lowerer import lower
from hwbp.lower.system import DynamicsSystem
from hwbp.oracle.backprop import exact_gradients
from hwbp.sim.state import SimulationResult, Trace
from hwbp.types import Batch, Gradients
from hwbp.verify.backends import get_backend
from hwbp.verify.compare import Comparison, Tolerances, compare, json_number
from hwbp.verify.readout import read_gradients

__all__ = ["SCHEMA", "Verification", "verify", "error_curve", "build_report"]

#: Report schema tag (DESIGN.md section 4).
SCHEMA = "hwbp.verify/1"


@dataclass(frozen=True, eq=False)
class Verification:
    """Everything a verification produced: the system, the backend's result, the
    physical and exact gradients, their comparison, and the JSON-ready report."""

    system: DynamicsSystem
    result: SimulationResult
    physical: Gradients
    exact: Gradients
    comparison: Comparison
    report: Mapping[str, Any]

    @property
    def passed(self) -> bool:
        """Whether every tensor met the tolerances."""
        return self.comparison.passed


def error_curve(system: DynamicsSystem, trace: Trace, batch: Batch, exact: Gradients) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``rel_err`` (over parameters and populations, as in the verdict) at each
    traced instant: ``(t in units of tau, max_rel_err)``."""
    errs = [
        compare(read_gradients(system, trace.state(k), batch), exact).max_rel_err for k in range(len(trace))
    ]
    return np.asarray(trace.t, dtype=np.float64), np.asarray(errs)


def build_report(
    system: DynamicsSystem,
    backend: str,
    result: SimulationResult,
    physical: Gradients,
    exact: Gradients,
    comparison: Comparison,
    batch: Batch,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``hwbp.verify/1`` report as a JSON-ready dict (non-finite numbers -> null)."""
    settle = {k: (json_number(v) if isinstance(v, float) else v) for k, v in result.settle.items()}
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "model": system.name,
        "backend": backend,
        "loss": system.loss.function,
        "beta": system.beta,
        "tau_s": system.tau_s,
        "depth": system.depth,
        "batch_size": batch.size,
        "settle": settle,
        "loss_value": {"physical": json_number(physical.loss), "exact": json_number(exact.loss)},
        "tolerances": {
            "max_rel_err": comparison.tolerances.max_rel_err,
            "min_cosine": comparison.tolerances.min_cosine,
        },
        "parameters": {k: m.as_dict() for k, m in comparison.parameters.items()},
        "populations": {k: m.as_dict() for k, m in comparison.populations.items()},
        "max_rel_err": json_number(comparison.max_rel_err),
        "min_cosine": json_number(comparison.min_cosine),
        "passed": comparison.passed,
    }
    if extra:
        report.update(extra)
    return report


def verify(
    graph: Graph,
    batch: Batch,
    *,
    backend: str = "reference",
    beta: float = 1.0,
    tau_s: float = 1.0,
    tolerances: Tolerances = Tolerances(),
    options: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Verification:
    """Verify that ``backend`` computes exact gradients for ``graph`` (with its loss port).

    Parameters
    ----------
    graph : Graph
        Model with a loss port (see :meth:`Graph.with_loss`).
    batch : Batch
    backend : str
        A name from :data:`hwbp.verify.backends.BACKENDS`.
    beta : float
        Loss perturbation strength.
    tau_s : float
        Node time constant in seconds.
    tolerances : Tolerances
    options : mapping
        Backend options (for ``reference``: those of :func:`hwbp.sim.simulate`).
    extra : mapping
        Additional top-level report fields (e.g. the model file and its hash).
    """
    run = get_backend(backend)
    system = lower(graph, tau_s=tau_s, beta=beta)
    result = run(system, batch, **dict(options or {}))
    physical = read_gradients(system, result.state, batch)
    exact = exact_gradients(graph, batch)
    comparison = compare(physical, exact, tolerances)
    report = build_report(system, backend, result, physical, exact, comparison, batch, extra)
    return Verification(system, result, physical, exact, comparison, report)
