"""The graph IR: a validated, immutable feed-forward DAG of named nodes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

from hwbp.errors import ModelError, ShapeError
from hwbp.ir.activations import get_activation
from hwbp.ir.losses import LOSSES
from hwbp.ir.nodes import Activation, Add, AvgPool, BatchNorm, Conv, Dense, Input, Loss, Node
from hwbp.registry import unique_name

__all__ = ["Graph", "topological_order"]


def topological_order(nodes: Iterable[Node]) -> tuple[Node, ...]:
    """Order ``nodes`` so that every node follows its inputs (stable for ordered input).

    Raises
    ------
    ModelError
        On duplicate names, references to unknown nodes, or cycles.
    """
    by_name: dict[str, Node] = {}
    for node in nodes:
        if not isinstance(node, Node):
            raise ModelError(f"graph element {node!r} is not an IR node")
        if node.name in by_name:
            raise ModelError(f"duplicate node name {node.name!r}")
        by_name[node.name] = node
    for node in by_name.values():
        for src in node.inputs:
            if src not in by_name:
                raise ModelError(f"node {node.name!r} reads unknown node {src!r}")
    order: list[Node] = []
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    for root in by_name:
        stack = [(root, iter(by_name[root].inputs))]
        if state.get(root) == 2:
            continue
        state[root] = 1
        while stack:
            name, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[name] = 2
                order.append(by_name[name])
            elif state.get(nxt) == 1:
                raise ModelError(f"graph has a cycle through node {nxt!r}")
            elif state.get(nxt) is None:
                state[nxt] = 1
                stack.append((nxt, iter(by_name[nxt].inputs)))
    return tuple(order)


def _check_finite(node: Node, label: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ModelError(f"node {node.name!r}: {label} has {bad} non-finite value(s) (NaN or Inf)")


def _lint_node(node: Node, sizes: dict[str, int]) -> int:
    """Check one node against the sizes of its inputs; return its output size."""
    if isinstance(node, Input):
        if node.size < 1:  # an integer: checked by Input itself
            raise ShapeError(f"input {node.name!r}: size must be a positive integer, got {node.size!r}")
        return node.size
    if isinstance(node, Dense):
        w, b = node.weight, node.bias
        if w.ndim != 2:
            raise ShapeError(f"dense {node.name!r}: weight must be 2-D (out, in), got shape {w.shape}")
        if b.shape != (w.shape[0],):
            raise ShapeError(
                f"dense {node.name!r}: bias must have shape ({w.shape[0]},), got {b.shape}"
            )
        if w.shape[0] < 1:
            raise ShapeError(f"dense {node.name!r}: layer has 0 outputs (weight shape {w.shape})")
        expected = sizes[node.source]
        if w.shape[1] != expected:
            raise ShapeError(
                f"dense {node.name!r}: weight expects {w.shape[1]} inputs but {node.source!r} "
                f"gives {expected} (weight shape {w.shape})"
            )
        _check_finite(node, "weight", w)
        _check_finite(node, "bias", b)
        return int(w.shape[0])
    if isinstance(node, (Conv, AvgPool, BatchNorm)):
        return _lint_spatial(node, sizes)
    if isinstance(node, Activation):
        get_activation(node.function, where=f"node {node.name!r}")
        if not np.isfinite(node.alpha):
            raise ModelError(f"activation {node.name!r}: alpha must be finite, got {node.alpha}")
        if node.function == "clip" and not (node.high is not None and np.isfinite(node.high) and node.alpha < node.high):
            raise ModelError(f"activation {node.name!r}: clip needs finite bounds alpha < high, "
                             f"got [{node.alpha}, {node.high}]")
        return sizes[node.source]
    if isinstance(node, Add):
        if len(node.sources) < 2:
            raise ModelError(f"add {node.name!r}: needs at least 2 inputs, got {len(node.sources)}")
        got = [sizes[s] for s in node.sources]
        if len(set(got)) != 1:
            detail = ", ".join(f"{s!r}: {n}" for s, n in zip(node.sources, got))
            raise ShapeError(f"add {node.name!r}: inputs differ in size ({detail})")
        return got[0]
    if isinstance(node, Loss):
        if node.function not in LOSSES:
            raise ModelError(
                f"loss {node.name!r}: unknown function {node.function!r}; "
                f"valid: {', '.join(sorted(LOSSES))}"
            )
        return 0
    raise ModelError(f"node {node.name!r}: unsupported node type {type(node).__name__}")


def _lint_spatial(node: Conv | AvgPool | BatchNorm, sizes: dict[str, int]) -> int:
    """Check the geometry of a node on ``[C, *spatial]`` tensors; return its output size."""
    what = f"{node.kind} {node.name!r}"
    shape = node.in_shape
    d = len(shape) - 1
    if d < 0 or any(n < 1 for n in shape):
        raise ShapeError(f"{what}: in_shape must be positive integers (C, *spatial), got {shape}")
    if int(np.prod(shape)) != sizes[node.source]:
        raise ShapeError(f"{what}: in_shape {shape} holds {int(np.prod(shape))} values but "
                         f"{node.source!r} gives {sizes[node.source]}")
    if isinstance(node, BatchNorm):
        for label in ("weight", "bias", "mean", "var"):
            arr = getattr(node, label)
            if arr.shape != (shape[0],):
                raise ShapeError(f"{what}: {label} must have shape ({shape[0]},), got {arr.shape}")
            _check_finite(node, label, arr)
        if not (node.epsilon >= 0 and np.all(node.var + node.epsilon > 0)):
            raise ModelError(f"{what}: var + epsilon must be positive")
        return sizes[node.source]
    if d not in (1, 2):
        raise ShapeError(f"{what}: only 1-D and 2-D spatial inputs are supported, got in_shape {shape}")
    fields = {"strides": d, "pads": 2 * d} | ({"dilations": d} if isinstance(node, Conv) else {"kernel": d})
    for label, n in fields.items():
        v = getattr(node, label)
        if len(v) != n or any(x < (0 if label == "pads" else 1) for x in v):
            raise ShapeError(f"{what}: {label} must be {n} {'non-negative' if label == 'pads' else 'positive'} "
                             f"integers, got {v}")
    if isinstance(node, Conv):
        w, g = node.weight, node.groups
        if w.ndim != d + 2 or g < 1 or shape[0] % g or w.shape[0] % g or w.shape[1] * g != shape[0]:
            raise ShapeError(f"{what}: kernel of shape {w.shape} with groups={g} does not fit input "
                             f"channels {shape[0]} (expected (C_out, {shape[0]}/groups, *kernel))")
        if node.bias.shape not in ((w.shape[0],), (0,)):
            raise ShapeError(f"{what}: bias must have shape ({w.shape[0]},) (or (0,) for none), "
                             f"got {node.bias.shape}")
        _check_finite(node, "weight", w)
        _check_finite(node, "bias", node.bias)
    out = node.out_shape
    if any(n < 1 for n in out):
        raise ShapeError(f"{what}: window larger than the padded input {shape} (output shape {out})")
    return int(np.prod(out))


def _parameter_fields(node: Node) -> tuple[tuple[str, str], ...]:
    """``(parameter name, field)`` pairs of the trainable arrays of ``node``."""
    if isinstance(node, (Dense, Conv)) and not node.has_bias:
        return ((node.weight_name, "weight"),)
    if isinstance(node, (Dense, Conv, BatchNorm)):
        return ((node.weight_name, "weight"), (node.bias_name, "bias"))
    return ()


@dataclass(frozen=True, eq=False)
class Graph:
    """A validated feed-forward network.

    Construction sorts the nodes topologically and lints them; an invalid graph
    cannot exist.  Use :meth:`with_loss` to attach (or replace) the loss port.

    Attributes
    ----------
    nodes : tuple of Node
        All nodes, in topological order.
    output : str
        Name of the node whose value is the network output.
    name : str
        Model name (used in reports and artefact headers).
    """

    nodes: tuple[Node, ...]
    output: str
    name: str = "model"
    _by_name: Mapping[str, Node] = field(init=False, repr=False)
    _sizes: Mapping[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ordered = topological_order(self.nodes)
        object.__setattr__(self, "nodes", ordered)
        by_name = {n.name: n for n in ordered}
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))
        sizes: dict[str, int] = {}
        for node in ordered:
            sizes[node.name] = _lint_node(node, sizes)
        object.__setattr__(self, "_sizes", MappingProxyType(sizes))
        self._lint_structure()
        self._lint_ties()

    def _lint_ties(self) -> None:
        seen: dict[str, tuple[str, np.ndarray]] = {}
        for node in self.nodes:
            for pname, attr in _parameter_fields(node):
                arr = getattr(node, attr)
                if pname in seen:
                    first, ref = seen[pname]
                    if ref.shape != arr.shape or not np.array_equal(ref, arr):
                        raise ModelError(f"parameter {pname!r} is shared by nodes {first!r} and {node.name!r} "
                                         f"but they hold different values (shapes {ref.shape}, {arr.shape})")
                else:
                    seen[pname] = (node.name, arr)

    def _lint_structure(self) -> None:
        if self.output not in self._by_name:
            raise ModelError(f"graph output {self.output!r} is not a node of the graph")
        out = self._by_name[self.output]
        if isinstance(out, (Loss, Input)):
            raise ModelError(f"graph output {self.output!r} must be a computed node, not {out.kind}")
        if not any(isinstance(n, Input) for n in self.nodes):
            raise ModelError("graph has no input node")
        losses = [n for n in self.nodes if isinstance(n, Loss)]
        if len(losses) > 1:
            raise ModelError(f"graph has {len(losses)} loss nodes; at most one is allowed")
        if losses and losses[0].source != self.output:
            raise ModelError(
                f"loss {losses[0].name!r} reads {losses[0].source!r}, not the graph output {self.output!r}"
            )
        for node in self.nodes:
            for src in node.inputs:
                if isinstance(self._by_name[src], Loss):
                    raise ModelError(f"node {node.name!r} reads the loss node {src!r}")
        live = {self.output}
        for node in reversed(self.nodes):
            if node.name in live:
                live.update(node.inputs)
        dead = [n.name for n in self.nodes if n.name not in live and not isinstance(n, Loss)]
        if dead:
            raise ModelError(f"node {dead[0]!r} does not contribute to the output {self.output!r}")

    # ----------------------------------------------------------------- queries
    def node(self, name: str) -> Node:
        """The node called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelError(f"graph has no node {name!r}") from None

    def size(self, name: str) -> int:
        """Output width (per sample) of node ``name``."""
        return self._sizes[self.node(name).name]

    @property
    def inputs(self) -> tuple[Input, ...]:
        """The input nodes, in topological order."""
        return tuple(n for n in self.nodes if isinstance(n, Input))

    @property
    def loss(self) -> Loss | None:
        """The loss port, or ``None`` when the graph has none."""
        return next((n for n in self.nodes if isinstance(n, Loss)), None)

    @cached_property
    def consumers(self) -> Mapping[str, tuple[str, ...]]:
        """For each node, the names of the nodes that read it."""
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for node in self.nodes:
            for src in node.inputs:
                out[src].append(node.name)
        return MappingProxyType({k: tuple(v) for k, v in out.items()})

    def parameters(self) -> dict[str, np.ndarray]:
        """All parameter arrays by name (``<dense>.weight``, ``<dense>.bias``; conv
        kernels, batch-norm gamma and beta likewise; a bias-free layer has no bias).
        A tied parameter appears once."""
        params: dict[str, np.ndarray] = {}
        for node in self.nodes:
            for pname, attr in _parameter_fields(node):
                params.setdefault(pname, getattr(node, attr))
        return params

    def parameter_uses(self) -> dict[str, tuple[str, ...]]:
        """Parameter name -> the nodes that use it (more than one for a tied parameter)."""
        uses: dict[str, list[str]] = {}
        for node in self.nodes:
            for pname, _ in _parameter_fields(node):
                uses.setdefault(pname, []).append(node.name)
        return {k: tuple(v) for k, v in uses.items()}

    # ------------------------------------------------------------ derivations
    def with_loss(self, function: str, *, name: str = "loss") -> "Graph":
        """A copy of this graph with its loss port set to ``function`` (mse or ce).

        The port is called ``name``, or ``name_1``, ``name_2``, ... if a node already
        has that name."""
        kept = tuple(n for n in self.nodes if not isinstance(n, Loss))
        unique = unique_name(name, {n.name for n in kept})
        return Graph(kept + (Loss(unique, source=self.output, function=function),), self.output, self.name)

    def require_loss(self) -> Loss:
        """The loss port; raises :class:`ModelError` naming the model if there is none."""
        loss = self.loss
        if loss is None:
            raise ModelError(f"model {self.name!r} has no loss port; attach one with graph.with_loss('mse')")
        return loss

    def with_parameters(self, params: Mapping[str, np.ndarray]) -> "Graph":
        """A copy with the named parameters replaced (shapes are checked by lint)."""
        unknown = set(params) - set(self.parameters())
        if unknown:
            raise ModelError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        nodes = []
        for node in self.nodes:
            fields = _parameter_fields(node)
            if any(p in params for p, _ in fields):
                node = replace(node, **{attr: params.get(p, getattr(node, attr)) for p, attr in fields})
            nodes.append(node)
        return Graph(tuple(nodes), self.output, self.name)
