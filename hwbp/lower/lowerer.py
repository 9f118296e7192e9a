"""Lowering: :class:`~hwbp.ir.Graph` -> :class:`~hwbp.lower.system.DynamicsSystem`.

Lowering rules are registered per IR node type on a :class:`Lowerer` instance (no
global mutable registry).  Each rule receives a :class:`LoweringContext` and the node.
Fusion keeps the system shallow (fewer populations, smaller L):

* ``Dense`` followed by its only consumer ``Activation`` becomes one term ``f(W u + b)``;
  ``Conv``, ``BatchNorm`` and ``AvgPool`` are terms with a structured
  :class:`~hwbp.lower.system.Layout` (:mod:`hwbp.lower.structured`) and fuse the same way;
* a parameter used by several nodes (tied weights) is registered once and named by
  every term that uses it;
* an ``Activation`` of a population (or input) whose only consumer is a ``Dense``
  becomes that Dense's source-side nonlinearity: one term ``g W φ(u) + b`` (a
  pre-activation layer; see :class:`~hwbp.lower.system.Term`), so ``φ(u)`` needs no
  population of its own and L counts the network's layers;
* terms whose only consumer is an ``Add`` are summed into the Add's population
  (``x = f(W u + b) + u`` for a residual block is one population);
* every other node becomes a population of its own.

Lowering is pure: the graph is never mutated.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from hwbp.errors import ModelError
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, AvgPool, BatchNorm, Conv, Dense, Input, Loss, Node
from hwbp.lower.structured import avgpool_layout, batchnorm_layout, conv_layout
from hwbp.lower.system import (
    Coupling, DynamicsSystem, InputPort, LossPort, Population, Term, TiedParameter,
)

__all__ = ["Lowerer", "LoweringContext", "lower"]

Rule = Callable[["LoweringContext", Node], None]


class LoweringContext:
    """Mutable scratch space of one lowering run (never shared between runs)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.inputs: list[InputPort] = []
        self.populations: list[Population] = []
        self.parameters: dict[str, np.ndarray] = {}
        self.loss: LossPort | None = None
        self._pending: dict[str, tuple[Term, ...]] = {}
        #: Activation nodes realized on the source side of their only (Dense) reader:
        #: node name -> (source, function, alpha)
        self.source_side: dict[str, tuple[str, str, float]] = {}
        self._level: dict[str, int] = {}

    # ------------------------------------------------------------ building
    def add_input(self, name: str, size: int) -> None:
        """Declare a clamped input port."""
        self.inputs.append(InputPort(name, size))
        self._level[name] = 0

    def add_parameter(self, name: str, value: np.ndarray) -> str:
        """Register a parameter array and return its name."""
        self.parameters[name] = value
        return name

    def source(self, name: str) -> str:
        """Name of the population or input holding node ``name``'s value
        (materializing a pending node into a population if needed)."""
        if name in self._pending:
            self.materialize(name, self._pending.pop(name))
        if name not in self._level:
            raise ModelError(f"lowering: node {name!r} has no realization yet")
        return name

    def terms_of(self, name: str, consumer: str) -> tuple[Term, ...]:
        """Terms that realize node ``name`` inside ``consumer``: its pending terms when
        ``consumer`` is its only reader, else one pass-through term."""
        if name in self._pending and self.graph.consumers[name] == (consumer,):
            return self._pending.pop(name)
        return (Term(source=self.source(name)),)

    def emit(self, name: str, terms: tuple[Term, ...]) -> None:
        """Hand the realization of node ``name`` to its consumer when it can fuse it,
        or make it a population of its own."""
        readers = self.graph.consumers[name]
        fusable = False
        if name != self.graph.output and len(readers) == 1:
            reader = self.graph.node(readers[0])
            fusable = isinstance(reader, Add) or (
                isinstance(reader, Activation) and len(terms) == 1 and terms[0].activation == "identity"
            )
        if fusable:
            self._pending[name] = terms
        else:
            self.materialize(name, terms)

    def materialize(self, name: str, terms: tuple[Term, ...]) -> None:
        """Create population ``name`` driven by ``terms``."""
        level = 1 + max(self._level[t.source] for t in terms)
        self._level[name] = level
        self.populations.append(Population(name, self.graph.size(name), terms, level))

    # ------------------------------------------------------------ finishing
    def build(self, *, tau_s: float, beta: float) -> DynamicsSystem:
        """Assemble couplings and tied parameters into the final system."""
        if self.loss is None:
            self.graph.require_loss()  # raises the error that names the model
            raise ModelError(f"lowering of {self.graph.name!r}: the loss rule set no loss port")
        pops = {p.name for p in self.populations}
        couplings: list[Coupling] = []
        tied: list[TiedParameter] = []
        for pop in self.populations:
            for k, term in enumerate(pop.terms):
                fwd = len(couplings)
                couplings.append(Coupling("forward", term.source, pop.name, k, term.weight))
                sens = None
                if term.source in pops:
                    sens = len(couplings)
                    couplings.append(Coupling("sensitivity", pop.name, term.source, k, term.weight))
                if term.weight is not None:
                    tied.append(TiedParameter(term.weight, fwd, sens))
        return DynamicsSystem(
            name=self.graph.name,
            inputs=tuple(self.inputs),
            populations=tuple(self.populations),
            parameters=self.parameters,
            couplings=tuple(couplings),
            tied=tuple(tied),
            loss=self.loss,
            tau_s=tau_s,
            beta=beta,
        )


def _lower_input(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, Input)
    ctx.add_input(node.name, node.size)


def _lower_dense(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, Dense)
    src, phi, phi_alpha = ctx.source_side.pop(node.source, (None, "identity", 0.01))
    term = Term(
        source=ctx.source(node.source) if src is None else src,
        weight=ctx.add_parameter(node.weight_name, node.weight),
        bias=ctx.add_parameter(node.bias_name, node.bias) if node.has_bias else None,
        gain=node.gain,
        source_activation=phi,
        source_alpha=phi_alpha,
    )
    ctx.emit(node.name, (term,))


def _lower_activation(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, Activation)
    readers = ctx.graph.consumers[node.name]
    if (node.source not in ctx._pending and node.name != ctx.graph.output and len(readers) == 1
            and isinstance(ctx.graph.node(readers[0]), Dense) and node.function != "identity"):
        # pre-activation layer: φ(u) lives on the source side of the Dense's synapses
        ctx.source_side[node.name] = (ctx.source(node.source), node.function, float(node.alpha))
        return
    # emit() only hands an Activation a single identity term to fuse with
    (base,) = ctx.terms_of(node.source, node.name)
    term = replace(base, activation=node.function, alpha=float(node.alpha), high=node.high)
    ctx.emit(node.name, (term,))


def _lower_conv(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, Conv)
    term = Term(
        source=ctx.source(node.source),
        weight=ctx.add_parameter(node.weight_name, node.weight),
        bias=ctx.add_parameter(node.bias_name, node.bias) if node.has_bias else None,
        layout=conv_layout(node),
    )
    ctx.emit(node.name, (term,))


def _lower_avgpool(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, AvgPool)
    ctx.emit(node.name, (Term(source=ctx.source(node.source), layout=avgpool_layout(node)),))


def _lower_batchnorm(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, BatchNorm)
    term = Term(
        source=ctx.source(node.source),
        weight=ctx.add_parameter(node.weight_name, node.weight),
        bias=ctx.add_parameter(node.bias_name, node.bias),
        layout=batchnorm_layout(node),
    )
    ctx.emit(node.name, (term,))


def _lower_add(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, Add)
    terms: tuple[Term, ...] = ()
    for src in node.sources:
        terms += ctx.terms_of(src, node.name)
    ctx.emit(node.name, terms)


def _lower_loss(ctx: LoweringContext, node: Node) -> None:
    assert isinstance(node, Loss)
    ctx.loss = LossPort(ctx.source(node.source), node.function)


class Lowerer:
    """Lowers graphs with a per-instance table of rules, one per IR node type.

    Examples
    --------
    >>> lowerer = Lowerer()
    >>> lowerer.register(MyNode, my_rule)   # doctest: +SKIP
    >>> system = lowerer.lower(graph.with_loss("mse"), tau_s=1e-6, beta=1.0)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._rules: dict[type[Node], Rule] = {
            Input: _lower_input,
            Dense: _lower_dense,
            Activation: _lower_activation,
            Add: _lower_add,
            Loss: _lower_loss,
            Conv: _lower_conv,
            AvgPool: _lower_avgpool,
            BatchNorm: _lower_batchnorm,
        }

    def register(self, node_type: type[Node], rule: Rule) -> None:
        """Set the rule for ``node_type`` (one of the IR node types) on this lowerer only."""
        self._rules[node_type] = rule

    def lower(self, graph: Graph, *, tau_s: float = 1.0, beta: float = 1.0) -> DynamicsSystem:
        """Lower ``graph`` (which must have a loss port) to a :class:`DynamicsSystem`.

        Parameters
        ----------
        graph : Graph
        tau_s : float
            Node time constant tau in seconds (default 1: time in units of tau).
        beta : float
            Loss perturbation strength; tension = beta * gradient.
        """
        ctx = LoweringContext(graph)
        for node in graph.nodes:
            rule = self._rules.get(type(node))
            if rule is None:
                raise ModelError(
                    f"no lowering rule for node {node.name!r} of type {type(node).__name__}; "
                    f"known: {', '.join(sorted(t.__name__ for t in self._rules))}"
                )
            rule(ctx, node)
        return ctx.build(tau_s=tau_s, beta=beta)


def lower(graph: Graph, *, tau_s: float = 1.0, beta: float = 1.0) -> DynamicsSystem:
    """Lower ``graph`` with the default rules; see :meth:`Lowerer.lower`."""
    return Lowerer().lower(graph, tau_s=tau_s, beta=beta)
