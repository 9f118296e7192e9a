"""The simulator kernel: layer-stacked chains give the same numbers as layer-by-layer."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.lower import lower
from hwbp.models import random_mlp, random_resmlp
from hwbp.sim import Kernel

from conftest import make_batch


@pytest.mark.parametrize("graph", [
    random_mlp([5, 8, 8, 8, 8, 3], activation="tanh", seed=0),
    random_mlp([4, 6, 6, 6, 6, 6, 6], activation="identity", output_activation="identity", seed=1),
    random_mlp([4, 6, 6, 6, 2], activation="leaky_relu", seed=2),
    random_resmlp(3, 5, 2, blocks=3, seed=3),
], ids=["tanh-chain", "identity-ends-in-chain", "leaky", "residual-no-chain"])
def test_stacked_chains_match_single_layers(graph) -> None:
    g = graph.with_loss("mse")
    system = lower(g)
    batch = make_batch(g, size=3, seed=1)
    stacked, single = Kernel(system, batch, stack_layers=True), Kernel(system, batch, stack_layers=False)
    assert not single.chains
    rng = np.random.default_rng(0)
    shapes = [(3, n) for n in stacked.sizes]
    means = [rng.standard_normal(s) for s in shapes]
    tensions = [rng.standard_normal(s) for s in shapes]
    a, b = stacked.drive(means, tensions), single.drive(means, tensions)
    for x, y in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(x, y)
    assert stacked.flops == single.flops and stacked.evaluations == single.evaluations


def test_chains_are_found_where_widths_allow() -> None:
    system = lower(random_mlp([5, 8, 8, 8, 8, 3], seed=0).with_loss("mse"))
    kernel = Kernel(system, make_batch(random_mlp([5, 8, 8, 8, 8, 3], seed=0).with_loss("mse")))
    # fc1 is 8x5 (not square) and fc5 is 3x8: the square 8x8 layers 2..4 form one chain
    assert [(c.first, c.last) for c in kernel.chains] == [(1, 3)]


def test_auto_stacking_only_for_small_layers() -> None:
    g = random_mlp([5, 8, 8, 8, 8, 3], seed=0).with_loss("mse")
    system = lower(g)
    assert Kernel(system, make_batch(g, size=4)).chains  # 4 x 8 values per layer
    assert not Kernel(system, make_batch(g, size=1000)).chains  # 8000 values per layer
