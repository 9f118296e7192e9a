"""Where the gradients of a training step come from: one interface for every source.

A gradient source is a callable ``source(graph, batch) -> Gradients`` (parameters
``dL/dθ`` of the batch-mean loss, and the loss).  The sources:

``oracle``
    Plain reverse-mode backprop (:func:`hwbp.oracle.exact_gradients`).
any registered backend (``reference``, ``spice``, ...)
    The dynamics realized by that backend, settled on the mini-batch and read out with
    :func:`hwbp.verify.read_gradients` (from the backend's own gate signals); no oracle
    involved (a backend with :class:`hwbp.backend.StreamsGradients`, e.g. the reference
    simulator in steady mode, gives the same numbers without returning the whole
    state).  The artefact is compiled once; new weights reach it through the
    backend's ``update_parameters`` (SPICE: the netlist is re-parsed with the new
    conductances; ``benchmarks/bench_spice.py`` times that against ``alter``).
    Options the user does not set take the backend's ``training_defaults`` (SPICE:
    the shared-library runner).  The inference budget is the backend's ``steps``
    option (reference: unit steps, default 2L).
``pc``, ``pc-alm``
    Predictive coding and augmented-Lagrangian predictive coding
    (:mod:`hwbp.baselines`) on the same lowered system, with the options
    :class:`PCOptions` / :class:`PCALMOptions` (``--steps``, default 2L).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from hwbp.backend import Artefact, Options, StreamsGradients, TrainsOnChip, backend_names, get_backend, option
from hwbp.errors import ConfigError
from hwbp.ir.graph import Graph
from hwbp.types import Batch, Gradients

__all__ = ["source_names", "GradientSource", "DynamicsSource", "BaselineSource", "PCOptions", "PCALMOptions",
           "BASELINES", "get_source", "source_options"]

GradientSource = Callable[[Graph, Batch], Gradients]


def _oracle(graph: Graph, batch: Batch) -> Gradients:
    from hwbp.oracle.backprop import exact_gradients

    return exact_gradients(graph, batch)


@dataclass(frozen=True)
class PCOptions(Options):
    """Options of predictive coding (:func:`hwbp.baselines.pc_relax`)."""

    steps: int | None = option(None, "inference steps T (default: 2L)")
    rho: float = option(1.0, "precision rho of the layer residuals (default: 1)")
    eta: float = option(0.2, "inference step size eta (default: 0.2)")

    def check(self) -> None:
        if self.steps is not None and self.steps < 0:
            raise ConfigError(f"--steps must be >= 0, got {self.steps}")
        if not (self.rho > 0 and self.eta > 0):
            raise ConfigError(f"--rho and --eta must be > 0, got {self.rho}, {self.eta}")


@dataclass(frozen=True)
class PCALMOptions(PCOptions):
    """Options of PC-ALM (:func:`hwbp.baselines.pc_alm_relax`)."""

    alpha: float = option(1.0, "dual ascent step alpha of the multipliers (default: 1; 0 is PC)",
                          flag="--dual-step")
    timing: str = option("post_dual", "when the multipliers of the weight gradient are read: post_dual (after "
                         "the last dual update) or pre_dual_energy (before it; --protocol pc-alm's default)",
                         choices=("post_dual", "pre_dual_energy"), flag="--multiplier-timing")

    def check(self) -> None:
        super().check()
        if self.alpha < 0:
            raise ConfigError(f"--dual-step must be >= 0, got {self.alpha}")


#: The local-learning baselines and their options classes.
BASELINES: Mapping[str, type[Options]] = {"pc": PCOptions, "pc-alm": PCALMOptions}


class BaselineSource:
    """Gradients of PC or PC-ALM at the end of their inference phase."""

    def __init__(self, kind: str, beta: float = 1.0, options: Mapping[str, Any] | Options | None = None) -> None:
        cls = BASELINES[kind]
        self.kind = kind
        self.beta = beta
        self.options = options if isinstance(options, cls) else cls.from_mapping(options, owner=kind)

    def __call__(self, graph: Graph, batch: Batch) -> Gradients:
        from hwbp.baselines import pc_alm_relax, pc_gradients, pc_relax
        from hwbp.lower.lowerer import lower

        system = lower(graph, beta=self.beta)
        o = self.options
        if self.kind == "pc":
            result = pc_relax(system, batch, steps=o.steps, rho=o.rho, eta=o.eta)
        else:
            result = pc_alm_relax(system, batch, steps=o.steps, rho=o.rho, eta=o.eta, alpha=o.alpha,  # type: ignore[attr-defined]
                                  timing=o.timing)  # type: ignore[attr-defined]
        return pc_gradients(system, batch, result)


class DynamicsSource:
    """Gradients read from the settled state of a backend (compiled once, parameters
    updated in place of recompiling where the backend supports it)."""

    def __init__(self, backend: str, beta: float = 1.0, options: Mapping[str, Any] | None = None,
                 initial: str | None = None) -> None:
        self.backend = get_backend(backend)
        self.beta = beta
        #: initial state of every settle (None: the backend's default; ``"forward-manifold"``
        #: starts from the forward pass, as PC does, and is exact after L unit steps)
        self.initial = initial
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
        if isinstance(self.backend, StreamsGradients):  # the gradients without the whole state, where it can
            grads = self.backend.gradients(self._artefact, batch, initial=self.initial)
            if grads is not None:
                return grads
        result = self.backend.run(self._artefact, batch, initial=self.initial)
        return read_gradients(self._artefact.system, result.state, batch)

    def train_on_chip(self, graph: Graph, x: Any, labels: Any, config: Any, **kw: Any) -> Any:
        """The backend's own training run, where it has the capability
        (:class:`hwbp.backend.TrainsOnChip`) and its options ask for it; otherwise None
        (the host trains)."""
        if not isinstance(self.backend, TrainsOnChip):
            return None
        return self.backend.train_on_chip(graph, x, labels, config, self.options, beta=self.beta, **kw)


def source_names() -> list[str]:
    """Valid gradient sources: ``oracle``, the baselines and every registered backend."""
    return ["oracle", *BASELINES, *backend_names()]


def source_options() -> dict[str, type[Options]]:
    """Options class of every source that takes options (backends that load, baselines)."""
    from hwbp.errors import HwbpError

    out: dict[str, type[Options]] = {}
    for name in backend_names():
        try:
            out[name] = get_backend(name).Options
        except HwbpError:
            continue
    out.update(BASELINES)
    return out


def get_source(name: str, *, beta: float = 1.0, options: Mapping[str, Any] | None = None,
               initial: str | None = None) -> GradientSource:
    """The gradient source ``name`` (``oracle``, ``pc``, ``pc-alm`` or a backend);
    ``options`` are its options, ``initial`` a backend's initial state (default: the
    backend's).  The error lists the valid names."""
    if name == "oracle":
        if options:
            raise ConfigError("options do not apply to the oracle (plain backprop)")
        return _oracle
    if name in BASELINES:
        return BaselineSource(name, beta, options)
    if name not in backend_names():
        raise ConfigError(f"unknown gradient source {name!r}; valid: {', '.join(source_names())}")
    return DynamicsSource(name, beta, options, initial)
