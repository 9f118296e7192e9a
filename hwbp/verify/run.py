"""End-to-end verification: lower, settle on a backend, read out, compare, report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hwbp.backend import Artefact, Options, check_hardware, check_state, get_backend
from hwbp.ir.graph import Graph
from hwbp.lower.lowerer import lower
from hwbp.lower.system import DynamicsSystem
from hwbp.oracle.backprop import exact_gradients
from hwbp.state import SimulationResult, State, Trace
from hwbp.types import Batch, Gradients
from hwbp.verify.compare import Comparison, Tolerances, compare, json_number
from hwbp.verify.readout import read_gradients, readout_routes

__all__ = ["SCHEMA", "Verification", "verify", "error_curve", "build_report"]

#: Report schema tag (DESIGN.md section 4).
SCHEMA = "hwbp.verify/1"


@dataclass(frozen=True, eq=False)
class Verification:
    """Everything a verification produced: the system, the backend's result, the
    physical and exact gradients, their comparison, and the JSON-ready report."""

    system: DynamicsSystem
    result: SimulationResult
    artefact: Artefact
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
    options: Options | None = None,
) -> dict[str, Any]:
    """The ``hwbp.verify/1`` report as a JSON-ready dict (non-finite numbers -> null).

    ``tau_s`` is the time constant the backend realized (``system.tau_s`` of its
    artefact); ``backend_options`` the options it ran with; ``readout`` the route of
    each parameter's gated sensitivity (``gate``: the backend's own signal)."""
    settle = {k: (json_number(v) if isinstance(v, float) else v) for k, v in result.settle.items()}
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "model": system.name,
        "backend": backend,
        "backend_options": {} if options is None else options.as_dict(),
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
        "readout": readout_routes(system, result.state),
        "max_rel_err": json_number(comparison.max_rel_err),
        "min_cosine": json_number(comparison.min_cosine),
        "passed": comparison.passed,
    }
    from hwbp.verify.events import events_section

    events = events_section(result.stats, batch.size)
    if events is not None:
        report["events"] = events
    if extra:
        report.update(extra)
    return report


def verify(
    graph: Graph,
    batch: Batch,
    *,
    backend: str = "reference",
    beta: float = 1.0,
    options: Mapping[str, Any] | Options | None = None,
    initial: str | State | None = None,
    seed: int = 0,
    trace: bool = False,
    tolerances: Tolerances = Tolerances(),
    extra: Mapping[str, Any] | None = None,
    hardware: Any = None,
    instance_seed: int | None = None,
) -> Verification:
    """Verify that ``backend`` computes exact gradients for ``graph`` (with its loss port).

    Parameters
    ----------
    graph : Graph
        Model with a loss port (see :meth:`Graph.with_loss`).
    batch : Batch
    backend : str
        A registered backend name (:func:`hwbp.backend.backend_names`).
    beta : float
        Loss perturbation strength (tension = beta * gradient).
    options : mapping or Options
        The backend's options (fields of its ``Options``; unknown keys are errors).
    initial : str or State, optional
        Initial state (``zeros``, ``random``, ``forward-manifold``, a State; None: the
        backend's default).
    seed : int
        Seed of a random initial state.
    trace : bool
        Record the trajectory where the backend can.
    tolerances : Tolerances
    extra : mapping
        Additional top-level report fields (e.g. the model file and its hash).
    hardware : Hardware, optional
        A hardware model (:mod:`hwbp.hardware`): the backend runs one device instance
        of it, and the report's ``hardware`` section compares the instance's gradients
        with (a) the nominal network's and (b) its own forward network's.
    instance_seed : int, optional
        Seed of the device instance (default: ``seed``).
    """
    be = get_backend(backend)
    opts = be.options(options)
    system = lower(graph, beta=beta)
    if hardware is not None:
        check_hardware(be, hardware)
        system = hardware.draw_instance(system, seed if instance_seed is None else instance_seed)
    artefact = be.compile(system, opts)
    result = be.run(artefact, batch, initial=initial, seed=seed, trace=trace)
    realized = artefact.system
    check_state(realized, result.state, backend)
    physical = read_gradients(realized, result.state, batch)
    exact = exact_gradients(graph, batch)
    comparison = compare(physical, exact, tolerances)
    report = build_report(realized, backend, result, physical, exact, comparison, batch, extra, opts)
    if hardware is not None:  # the hardware model compares its instance (hwbp.hardware.compare)
        report["hardware"] = hardware.instance_section(
            realized, physical, exact, np.asarray(result.state.mean[realized.loss.population]), batch,
            seed if instance_seed is None else instance_seed)
    return Verification(realized, result, artefact, physical, exact, comparison, report)
