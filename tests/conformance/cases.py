"""The conformance cases every registered backend runs (``test_conformance.py``).

One case per (model kind, activation, loss): MLP and residual MLP, every activation,
both losses.  The other dimensions (depth up to 8, batch size 1 or 7, initial state)
are spread over those cases so that each value occurs with each model kind, rather
than multiplied out (which would be 2 x 6 x 2 x 2 x 3 x 5 = 720 runs per profile).
Two more cases run the depth studies' pre-activation residual MLP
(:func:`hwbp.models.depth_resmlp`): fixed gains on every layer and the activation on
the source side of the synapses.
"""

from __future__ import annotations

import numpy as np

from hwbp.backend import INITIAL_STATES, ConformanceCase
from hwbp.ir.graph import Graph
from hwbp.models import depth_resmlp, random_mlp, random_resmlp
from hwbp.types import Batch

MODELS = ("mlp", "resmlp")
#: The depth studies' model: (activation, loss, depth, batch size, initial state).
DEPTHRES_CASES = (("tanh", "mse", 4, 7, "random"), ("relu", "ce", 3, 1, "forward-manifold"))
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu", "leaky_relu", "softplus")
LOSSES = ("mse", "ce")
DEPTHS = (1, 2, 3, 5, 8)
BATCH_SIZES = (1, 7)
#: Weight gain per activation: keeps every activation away from saturation and dead zones.
GAIN = {"sigmoid": 4.0, "relu": 1.4, "leaky_relu": 1.4}


def cases() -> list[ConformanceCase]:
    """The case list (deterministic order)."""
    out = []
    for i, (model, act, loss) in enumerate((m, a, lo) for m in MODELS for a in ACTIVATIONS for lo in LOSSES):
        depth = DEPTHS[i % len(DEPTHS)]
        if model == "resmlp":
            depth = max(depth, 2)  # stem and head are populations of their own
        out.append(ConformanceCase(model, act, loss, depth, BATCH_SIZES[(i // 2) % 2],
                                   INITIAL_STATES[i % len(INITIAL_STATES)]))
    out += [ConformanceCase("depthres", *c) for c in DEPTHRES_CASES]
    return out


def build(case: ConformanceCase, seed: int = 0) -> tuple[Graph, Batch]:
    """The graph (with its loss port) and the batch of ``case``."""
    gain = GAIN.get(case.activation, 1.2)
    if case.model == "depthres":
        g = depth_resmlp(5, 4, 3, case.depth, activation=case.activation, seed=seed)
    elif case.model == "mlp":
        sizes = [5] + [4] * (case.depth - 1) + [3]
        out_act = case.activation if case.depth == 1 else "identity"  # depth 1: the activation is the output's
        g = random_mlp(sizes, activation=case.activation, output_activation=out_act, seed=seed, gain=gain)
    else:
        g = random_resmlp(5, 4, 3, blocks=case.depth - 2, activation=case.activation, seed=seed, gain=gain)
    g = g.with_loss(case.loss)
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((case.batch_size, 5))
    if case.loss == "ce":
        y = np.eye(3)[rng.integers(0, 3, case.batch_size)]
    else:
        y = rng.standard_normal((case.batch_size, 3))
    return g, Batch.for_model({"x": 5}, 3, x, y, loss=case.loss)
