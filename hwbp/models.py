"""Builders of common graphs (random MLPs and residual MLPs), for experiments,
tests and benchmarks."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hwbp.errors import ConfigError
from hwbp.ir.activations import ACTIVATIONS
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, Dense, Input, Node

__all__ = ["random_mlp", "random_resmlp", "random_init", "depth_resmlp"]


def _dense(name: str, src: str, n_in: int, n_out: int, rng: np.random.Generator, gain: float) -> Dense:
    w = rng.standard_normal((n_out, n_in)) * gain / np.sqrt(n_in)
    b = 0.1 * rng.standard_normal(n_out)
    return Dense(name, source=src, weight=w, bias=b)


def _check(sizes: Sequence[int], activation: str) -> None:
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ConfigError(f"sizes must list >= 2 positive widths, got {list(sizes)}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; valid: {', '.join(sorted(ACTIVATIONS))}")


#: Bounds of ``clip`` in random models (asymmetric, unlike hardtanh's).
CLIP_BOUNDS = (-0.5, 1.5)


def _bounds(activation: str) -> dict[str, float]:
    return {"alpha": CLIP_BOUNDS[0], "high": CLIP_BOUNDS[1]} if activation == "clip" else {}


def random_mlp(
    sizes: Sequence[int],
    *,
    activation: str = "tanh",
    output_activation: str = "identity",
    gain: float = 1.0,
    seed: int = 0,
    name: str = "mlp",
) -> Graph:
    """A dense MLP ``sizes[0] -> ... -> sizes[-1]`` with Gaussian weights.

    Hidden layers use ``activation``; the last layer ``output_activation``.
    Weights are ``N(0, gain^2 / fan_in)``, biases ``N(0, 0.01)``; no loss port.
    """
    _check(sizes, activation)
    _check(sizes, output_activation)
    rng = np.random.default_rng(seed)
    nodes: list[Node] = [Input("x", size=int(sizes[0]))]
    src = "x"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        nodes.append(_dense(f"fc{i}", src, n_in, n_out, rng, gain))
        src = f"fc{i}"
        act = activation if i < len(sizes) - 1 else output_activation
        if act != "identity":
            nodes.append(Activation(f"act{i}", source=src, function=act, **_bounds(act)))
            src = f"act{i}"
    return Graph(tuple(nodes), src, name)


def random_resmlp(
    n_in: int,
    width: int,
    n_out: int,
    blocks: int,
    *,
    activation: str = "tanh",
    gain: float = 1.0,
    seed: int = 0,
    name: str = "resmlp",
) -> Graph:
    """A residual MLP: ``h0 = f(W0 x + b0)``, then ``blocks`` residual blocks
    ``h <- h + f(W h + b)``, then a linear readout to ``n_out``.  Depth in
    populations: ``blocks + 2``."""
    _check([n_in, width, n_out], activation)
    rng = np.random.default_rng(seed)
    nodes: list[Node] = [
        Input("x", size=n_in),
        _dense("stem", "x", n_in, width, rng, gain),
        Activation("stem_act", source="stem", function=activation, **_bounds(activation)),
    ]
    src = "stem_act"
    for i in range(1, blocks + 1):
        nodes += [
            _dense(f"block{i}.fc", src, width, width, rng, gain / np.sqrt(2)),
            Activation(f"block{i}.act", source=f"block{i}.fc", function=activation, **_bounds(activation)),
            Add(f"block{i}", sources=(src, f"block{i}.act")),
        ]
        src = f"block{i}"
    nodes.append(_dense("head", src, width, n_out, rng, gain))
    return Graph(tuple(nodes), "head", name)


def random_init(graph: Graph, *, seed: int = 0) -> Graph:
    """``graph`` with fresh weights ``N(0, 1/fan_in)`` (``fan_in`` = product of all but
    the first axis: a convolution kernel's ``C_in/groups * prod(kernel)``), batch-norm
    scales (1-D weights) of 1, and biases ``N(0, 0.01)``, drawn from ``seed``
    (parameters in sorted-name order, so the draw is reproducible).  A tied parameter
    is drawn once."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, value in sorted(graph.parameters().items()):
        if name.endswith(".weight") and value.ndim == 1:
            params[name] = np.ones(value.shape)
        elif name.endswith(".weight"):
            params[name] = rng.standard_normal(value.shape) / np.sqrt(np.prod(value.shape[1:]))
        else:
            params[name] = 0.1 * rng.standard_normal(value.shape)
    return graph.with_parameters(params)


def depth_resmlp(
    n_in: int,
    width: int,
    n_out: int,
    depth: int,
    *,
    activation: str = "relu",
    seed: int = 0,
    name: str | None = None,
    bias: bool = True,
) -> Graph:
    """The pre-activation residual MLP of the depth studies (depth-muP scaling, as in
    the PC-ALM paper), with ``depth = L`` weight layers::

        z_1 = W_1 x / sqrt(n_in)
        z_l = z_{l-1} + W_l φ(z_{l-1}) / sqrt(N L)      l = 2 .. L-1
        ŷ   = W_L φ(z_{L-1}) / N

    Weights ``N(0, 1)`` (drawn in layer order from ``seed``); the scale factors are
    the fixed gains of the Dense nodes (part of the IR, so every backend realizes
    them).  Biases (``bias=True``) start at 0 and are trained like the weights by
    every gradient source; ``bias=False`` builds bias-free layers.  ``activation``
    may be ``identity`` (the linear cells of the PC-ALM paper).  Lowered, each ``φ`` sits on the
    source side of its layer's synapses, so the system has exactly ``L``
    populations ``z_1 .. z_{L-1}, ŷ`` and the unit-step budget is ``2L``.
    """
    if int(depth) < 2:
        raise ConfigError(f"depth must be >= 2 (input and output layers), got {depth}")
    _check([n_in, width, n_out], activation)
    depth = int(depth)
    nb = {} if bias else {"has_bias": False}
    rng = np.random.default_rng(seed)
    nodes: list[Node] = [
        Input("x", size=int(n_in)),
        Dense("layer1", source="x", weight=rng.standard_normal((width, n_in)), bias=np.zeros(width),
              gain=1.0 / np.sqrt(n_in), **nb),
    ]
    src = "layer1"
    for k in range(2, depth):
        # a linear cell has no activation nodes (each would be a population of its own)
        nodes += [] if activation == "identity" else [Activation(f"phi{k}", source=src, function=activation)]
        nodes += [
            Dense(f"layer{k}", source=src if activation == "identity" else f"phi{k}", weight=rng.standard_normal((width, width)), bias=np.zeros(width),
                  gain=1.0 / np.sqrt(width * depth), **nb),
            Add(f"z{k}", sources=(src, f"layer{k}")),
        ]
        src = f"z{k}"
    nodes += [] if activation == "identity" else [Activation(f"phi{depth}", source=src, function=activation)]
    nodes += [
        Dense(f"layer{depth}", source=src if activation == "identity" else f"phi{depth}", weight=rng.standard_normal((n_out, width)),
              bias=np.zeros(n_out), gain=1.0 / width, **nb),
    ]
    return Graph(tuple(nodes), f"layer{depth}", name or f"resmlp_{activation}_L{depth}")
