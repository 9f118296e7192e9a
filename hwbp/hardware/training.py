"""Training on one device instance (circuit in the loop) and evaluating on it."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from hwbp.hardware.model import Hardware
from hwbp.hardware.realize import realize
from hwbp.ir.graph import Graph
from hwbp.types import Batch, Gradients

__all__ = ["InstanceSource", "instance_accuracy"]


class InstanceSource:
    """A training gradient source (``source(graph, batch) -> Gradients``) that reads the
    gradients from one device instance of ``hardware`` (drawn from ``seed``) settled on
    the reference simulator: the same devices at every step, the nominal parameters
    updated (the instance maps them onto its devices).

    Parameters
    ----------
    hardware : Hardware
    seed : int
        Instance seed.
    beta : float
        Loss perturbation strength.
    options : mapping
        Reference-simulator options (default: steady mode).
    """

    def __init__(self, hardware: Hardware, seed: int, *, beta: float = 1.0,
                 options: Mapping[str, Any] | None = None) -> None:
        self.hardware = hardware
        self.seed = seed
        self.beta = beta
        self.options = dict(options or {"mode": "steady"})

    def __call__(self, graph: Graph, batch: Batch) -> Gradients:
        from hwbp.lower.lowerer import lower
        from hwbp.sim.backend import ReferenceBackend
        from hwbp.verify.readout import read_gradients

        system = realize(lower(graph, beta=self.beta), self.hardware, self.seed)
        result = ReferenceBackend().simulate(system, batch, self.options)
        return read_gradients(system, result.state, batch)


def instance_accuracy(graph: Graph, hardware: Hardware, seed: int, x: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the instance's own forward network (its devices, cells and node gains)
    on ``(x, labels)``."""
    from hwbp.hardware.compare import instance_forward
    from hwbp.lower.lowerer import lower

    system = realize(lower(graph), hardware, seed)
    n_out = graph.size(graph.output)
    batch = Batch({graph.inputs[0].name: x}, np.eye(n_out)[labels])
    out = instance_forward(system, batch)["x"][system.loss.population]
    return float(np.mean(np.argmax(out, axis=1) == labels))
