"""Where the gradients of a training step come from.

``oracle``
    Plain reverse-mode backprop (:func:`hwbp.oracle.exact_gradients`).
any registered backend (``reference``, ``spice``, ...)
    The dynamics realized by that backend, settled on the mini-batch and read out with
    :func:`hwbp.verify.read_gradients` (from the backend's own gate signals); no oracle
    involved.  The artefact is compiled once; new weights reach it through the
    backend's ``update_parameters`` (SPICE: the netlist is re-parsed with the new
    conductances; ``benchmarks/bench_spice.py`` times that against ``alter``).
    Options the user does not set take the backend's ``training_defaults`` (SPICE:
    the shared-library runner).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from hwbp.backend import Artefact, backend_names, get_backend
from hwbp.ir.graph import Graph
from hwbp.types import Batch, Gradients

__all__ = ["source_names", "GradientSource", "DynamicsSource", "get_source"]

GradientSource = Callable[[Graph, Batch], Gradients]


def _oracle(graph: Graph, batch: Batch) -> Gradients:
    from hwbp.oracle.backprop import exact_gradients

    return exact_gradients(graph, batch)


class DynamicsSource:
    """Gradients read from the settled state of a backend (compiled once, parameters
    updated in place of recompiling where the backend supports it)."""

    def __init__(self, backend: str, beta: float = 1.0, options: Mapping[str, Any] | None = None) -> None:
        self.backend = get_backend(backend)
        self.beta = beta
        self.options = self.backend.options({**self.backend.training_defaults, **dict(options or {})})
        self._artefact: Artefact | None = None
        self._structure: tuple | None = None

    def __call__(self, graph: Graph, batch: Batch) -> Gradients:
        from hwbp.lower.lowerer import lower
        from hwbp.verify.readout import read_gradients

        structure = tuple((n.name, type(n).__name__, n.inputs) for n in graph.nodes)
        if self._artefact is None or self._structure != structure:
            self._artefact = self.backend.compile(lower(graph, beta=self.beta), self.options)
            self._structure = structure
        else:
            self._artefact = self.backend.update_parameters(self._artefact, graph.parameters())
        result = self.backend.run(self._artefact, batch)
        return read_gradients(self._artefact.system, result.state, batch)

    def train_on_chip(self, graph: Graph, x: Any, labels: Any, config: Any, **kw: Any) -> Any:
        """The backend's own training run (:meth:`hwbp.backend.Backend.train_on_chip`), or
        None when the backend trains on the host."""
        return self.backend.train_on_chip(graph, x, labels, config, self.options, beta=self.beta, **kw)


def source_names() -> list[str]:
    """Valid gradient sources: ``oracle`` and every registered backend."""
    return ["oracle", *backend_names()]


def get_source(name: str, *, beta: float = 1.0, options: Mapping[str, Any] | None = None) -> GradientSource:
    """The gradient source ``name`` (``oracle`` or a backend); ``options`` are the
    backend's options.  The error lists the valid names."""
    if name == "oracle":
        return _oracle
    from hwbp.errors import ConfigError

    if name not in backend_names():
        raise ConfigError(f"unknown gradient source {name!r}; valid: {', '.join(source_names())}")
    return DynamicsSource(name, beta, options)
