"""The conformance cases, generated from what hwbp supports.

Every activation of :data:`hwbp.ir.activations.ACTIVATIONS` (clip with both bounds,
leaky_relu and elu with a slope that matters) runs in an MLP and in a residual MLP,
one with each loss; the structured layouts (convolution 1-D and 2-D with stride,
dilation and groups, average pooling, batch normalization with its running
statistics), tied weights, and the depth studies' model (fixed gains and source-side
activations, :func:`hwbp.models.depth_resmlp`) have cases of their own.  The other
dimensions (depth up to 8, batch size, initial state) are spread over those cases, so
that each value occurs with each model kind, rather than multiplied out: the list stays
a few dozen cases per profile.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hwbp.initial import INITIAL_STATES
from hwbp.ir.activations import ACTIVATIONS
from hwbp.ir.graph import Graph
from hwbp.ir.losses import LOSSES
from hwbp.ir.nodes import Activation, Add, AvgPool, BatchNorm, Conv, Dense, Input, Node
from hwbp.models import depth_resmlp
from hwbp.testing.profile import ConformanceCase
from hwbp.types import Batch

__all__ = ["MODELS", "ALPHA", "HIGH", "cases", "build"]

N_IN, WIDTH, N_OUT = 5, 4, 3
DEPTHS = (1, 2, 3, 5, 8)
BATCH_SIZES = (1, 7)
#: The activations' parameter in the cases: a slope or lower bound that a wrong
#: derivative cannot hide behind (the IR's default 0.01 would).
ALPHA = {"leaky_relu": 0.1, "elu": 0.7, "clip": -0.5}
#: clip's upper bound (asymmetric, unlike hardtanh's).
HIGH = {"clip": 1.5}
#: Weight gain per activation: keeps every activation away from saturation and dead zones.
GAIN = {"sigmoid": 4.0, "relu": 1.4, "leaky_relu": 1.4, "relu6": 1.4}
#: The depth studies' model: (activation, loss, depth, batch size, initial state).
DEPTHRES_CASES = (("tanh", "mse", 4, 7, "random"), ("relu", "ce", 3, 1, "forward-manifold"),
                  ("elu", "mse", 3, 2, "zeros"), ("softplus", "ce", 5, 1, "random"))
#: Structured and tied models: (model, activation, loss, depth in populations, batch size, initial state).
LAYOUT_CASES = (("conv1d", "elu", "ce", 3, 2, "random"), ("conv2d", "silu", "mse", 4, 1, "zeros"),
                ("conv2d-stride", "softsign", "ce", 2, 3, "forward-manifold"),
                ("batchnorm", "tanh", "mse", 3, 2, "random"), ("batchnorm", "elu", "ce", 3, 1, "zeros"),
                ("tied", "tanh", "ce", 4, 2, "random"), ("tied", "gelu_tanh", "mse", 4, 1, "zeros"))


def cases() -> list[ConformanceCase]:
    """The case list (deterministic order)."""
    out = []
    losses = sorted(LOSSES)
    for i, act in enumerate(ACTIVATIONS):
        for j, model in enumerate(("mlp", "resmlp")):
            k = 2 * i + j
            depth = DEPTHS[k % len(DEPTHS)]
            if model == "resmlp":
                depth = max(depth, 2)  # stem and head are populations of their own
            out.append(ConformanceCase(model, act, losses[(i + j) % 2], depth, BATCH_SIZES[(k // 2) % 2],
                                       INITIAL_STATES[k % len(INITIAL_STATES)]))
    out += [ConformanceCase("depthres", *c) for c in DEPTHRES_CASES]
    out += [ConformanceCase(*c) for c in LAYOUT_CASES]
    return out


def _act(name: str, src: str, fn: str) -> Activation:
    return Activation(name, source=src, function=fn, alpha=ALPHA.get(fn, 0.01), high=HIGH.get(fn))


def _dense(name: str, src: str, n_in: int, n_out: int, rng: np.random.Generator, gain: float, **kw) -> Dense:
    return Dense(name, source=src, weight=rng.standard_normal((n_out, n_in)) * gain / np.sqrt(n_in),
                 bias=0.1 * rng.standard_normal(n_out), **kw)


def _mlp(case: ConformanceCase, rng: np.random.Generator) -> tuple[list[Node], str]:
    gain, act = GAIN.get(case.activation, 1.2), case.activation
    sizes = [N_IN] + [WIDTH] * (case.depth - 1) + [N_OUT]
    nodes: list[Node] = [Input("x", N_IN)]
    src = "x"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        nodes.append(_dense(f"fc{i}", src, a, b, rng, gain))
        src = f"fc{i}"
        if i < len(sizes) - 1 or case.depth == 1:  # depth 1: the activation is the output's
            nodes.append(_act(f"act{i}", src, act))
            src = f"act{i}"
    return nodes, src


def _resmlp(case: ConformanceCase, rng: np.random.Generator) -> tuple[list[Node], str]:
    gain, act = GAIN.get(case.activation, 1.2), case.activation
    nodes: list[Node] = [Input("x", N_IN), _dense("stem", "x", N_IN, WIDTH, rng, gain), _act("stem_act", "stem", act)]
    src = "stem_act"
    for i in range(1, case.depth - 1):
        nodes += [_dense(f"block{i}.fc", src, WIDTH, WIDTH, rng, gain / np.sqrt(2)),
                  _act(f"block{i}.act", f"block{i}.fc", act), Add(f"block{i}", sources=(src, f"block{i}.act"))]
        src = f"block{i}"
    nodes.append(_dense("head", src, WIDTH, N_OUT, rng, gain))
    return nodes, "head"


def _conv(name: str, src: str, in_shape: tuple[int, ...], c_out: int, kernel: tuple[int, ...],
          rng: np.random.Generator, *, groups: int = 1, strides: tuple[int, ...] | None = None,
          dilations: tuple[int, ...] | None = None, pads: tuple[int, ...] | None = None) -> Conv:
    c_in = in_shape[0] // groups
    w = rng.standard_normal((c_out, c_in, *kernel)) * 1.2 / np.sqrt(c_in * int(np.prod(kernel)))
    d = len(kernel)
    return Conv(name, source=src, in_shape=in_shape, weight=w, bias=0.1 * rng.standard_normal(c_out),
                strides=strides or (1,) * d, pads=pads or (0,) * (2 * d), dilations=dilations or (1,) * d,
                groups=groups)


def _batchnorm(name: str, src: str, in_shape: tuple[int, ...], rng: np.random.Generator) -> BatchNorm:
    """Batch normalization with running statistics far enough from (0, 1) to matter."""
    c = in_shape[0]
    return BatchNorm(name, source=src, in_shape=in_shape, weight=rng.uniform(0.5, 1.5, c),
                     bias=rng.uniform(-0.3, 0.3, c), mean=rng.uniform(-0.8, 0.8, c), var=rng.uniform(0.5, 2.0, c))


def _spatial(case: ConformanceCase, rng: np.random.Generator) -> tuple[list[Node], str]:
    act = case.activation
    if case.model == "conv1d":  # stride 2, padding, then average pooling without the padded zeros
        shape = (2, 9)
        conv = _conv("conv", "x", shape, 3, (3,), rng, strides=(2,), pads=(1, 1))
        pool = AvgPool("pool", source="conv_act", in_shape=conv.out_shape, kernel=(2,), strides=(1,),
                       pads=(0, 1), count_include_pad=False)
        body: list[Node] = [conv, _act("conv_act", "conv", act), pool]
        last, size = "pool", int(np.prod(pool.out_shape))
    elif case.model == "conv2d":  # groups and dilation, batch norm, then average pooling
        shape = (2, 5, 5)
        conv = _conv("conv", "x", shape, 4, (3, 3), rng, groups=2, dilations=(2, 1), pads=(1, 1, 1, 1))
        pool = AvgPool("pool", source="bn_act", in_shape=conv.out_shape, kernel=(2, 2), strides=(1, 1),
                       pads=(0, 0, 0, 0))
        body = [conv, _batchnorm("bn", "conv", conv.out_shape, rng), _act("bn_act", "bn", act), pool]
        last, size = "pool", int(np.prod(pool.out_shape))
    else:  # conv2d-stride: strides (2, 1) with asymmetric padding
        shape = (1, 6, 5)
        conv = _conv("conv", "x", shape, 3, (3, 2), rng, strides=(2, 1), pads=(1, 0, 0, 1))
        body = [conv, _act("conv_act", "conv", act)]
        last, size = "conv_act", int(np.prod(conv.out_shape))
    nodes = [Input("x", int(np.prod(shape))), *body, _dense("head", last, size, N_OUT, rng, 1.2)]
    return nodes, "head"


def _batchnorm_mlp(case: ConformanceCase, rng: np.random.Generator) -> tuple[list[Node], str]:
    nodes = [Input("x", N_IN), _dense("fc1", "x", N_IN, WIDTH + 2, rng, 1.2),
             _batchnorm("bn", "fc1", (WIDTH + 2,), rng), _act("act", "bn", case.activation),
             _dense("head", "act", WIDTH + 2, N_OUT, rng, 1.2)]
    return nodes, "head"


def _tied(case: ConformanceCase, rng: np.random.Generator) -> tuple[list[Node], str]:
    """``head(f(fc(f(fc(f(inp(x)))))))``: ``fc`` applied twice, one parameter."""
    act = case.activation
    fc = _dense("fc", "a1", WIDTH, WIDTH, rng, 1.2)
    nodes = [Input("x", N_IN), _dense("inp", "x", N_IN, WIDTH, rng, 1.2), _act("a1", "inp", act), fc,
             _act("a2", "fc", act),
             Dense("fc_again", source="a2", weight=fc.weight, bias=fc.bias, weight_param=fc.weight_name,
                   bias_param=fc.bias_name),
             _act("a3", "fc_again", act), _dense("head", "a3", WIDTH, N_OUT, rng, 1.2)]
    return nodes, "head"


_BUILDERS: dict[str, Callable[[ConformanceCase, np.random.Generator], tuple[list[Node], str]]] = {
    "mlp": _mlp, "resmlp": _resmlp, "conv1d": _spatial, "conv2d": _spatial, "conv2d-stride": _spatial,
    "batchnorm": _batchnorm_mlp, "tied": _tied,
}
#: Every model kind a case may name.
MODELS = (*_BUILDERS, "depthres")


def build(case: ConformanceCase, seed: int = 0) -> tuple[Graph, Batch]:
    """The graph (with its loss port) and the batch of ``case`` (float64, from ``seed``).

    Parameters
    ----------
    case : ConformanceCase
    seed : int
        Seed of the weights and of the batch.

    Returns
    -------
    (Graph, Batch)
    """
    if case.model == "depthres":
        g = depth_resmlp(N_IN, WIDTH, N_OUT, case.depth, activation=case.activation, seed=seed)
    else:
        nodes, out = _BUILDERS[case.model](case, np.random.default_rng(seed))
        g = Graph(tuple(nodes), out, case.model)
    g = g.with_loss(case.loss)
    rng = np.random.default_rng(seed + 100)
    n_in, n_out = g.inputs[0].size, g.size(g.output)
    x = rng.standard_normal((case.batch_size, n_in))
    if case.loss == "ce":
        y = np.eye(n_out)[rng.integers(0, n_out, case.batch_size)]
    else:
        y = rng.standard_normal((case.batch_size, n_out))
    return g, Batch.for_model({g.inputs[0].name: n_in}, n_out, x, y, loss=case.loss)
