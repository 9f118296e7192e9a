"""On-chip learning in the Lava processes: float on-chip SGD equals host-side SGD with
exact backprop gradients; fixed point equals a numpy replay of the same integer rule."""

from __future__ import annotations


import numpy as np
import pytest

from hwbp.backend import get_backend
from hwbp.errors import ConfigError
from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.train import TrainConfig, get_source, train
from hwbp.types import Batch

from lava_helpers import replay_fixed_on_chip

#: Float on-chip updates against host SGD with oracle gradients: the same arithmetic up
#: to float64 round-off, accumulated over a few updates.
FLOAT_RTOL = 1e-10


def _data(n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def _graph():
    return random_mlp([4, 5, 3], activation="tanh", seed=2, gain=1.2).with_loss("ce")


@pytest.mark.slow
def test_float_on_chip_equals_host_sgd_with_exact_gradients() -> None:
    x, labels = _data()
    cfg = TrainConfig(epochs=2, batch_size=4, optimizer="sgd", lr=0.3, seed=5)
    src = get_source("lava", options={"on_chip": True})
    res = train(_graph(), x, labels, src, cfg, x_test=x, y_test=labels, progress=False)
    host = train(_graph(), x, labels, get_source("oracle"), cfg, progress=False)
    start = _graph().parameters()
    for k, v in host.graph.parameters().items():
        assert not np.allclose(v, start[k])  # it learned
        np.testing.assert_allclose(res.graph.parameters()[k], v, rtol=0, atol=FLOAT_RTOL)
    assert len(res.test_accuracy) == 2


def test_fixed_on_chip_equals_numpy_replay() -> None:
    from hwbp.targets.lava.fixed import FixedFormat
    from hwbp.targets.lava.onchip import train_on_chip

    x, labels = _data(8, seed=1)
    g = _graph()
    opts = get_backend("lava").options({"precision": "fixed", "on_chip": True, "weight_bits": 8})
    cfg = TrainConfig(epochs=1, batch_size=4, optimizer="sgd", lr=0.5, seed=3)
    res = train_on_chip(g, x, labels, cfg, opts, progress=False)
    # replay: the same blocks, the numpy integer model, the same update rule and draws
    system, fmt, keys = replay_fixed_on_chip(g, x, labels, cfg, opts)
    for key in keys:
        t = system.population(key[0]).terms[key[1]]
        assert np.array_equal(res.graph.parameters()[t.weight], fmt.weight[key] * 2.0 ** fmt.exp[key])
        assert np.array_equal(res.graph.parameters()[t.bias], fmt.to_float(fmt.bias[key]))
    q0 = FixedFormat.for_system(system, opts).weight[keys[0]]
    assert not np.array_equal(fmt.weight[keys[0]], q0)  # the weights moved


def test_on_chip_is_for_training_only() -> None:
    g = _graph()
    lava = get_backend("lava")
    x, labels = _data(4)
    with pytest.raises(ConfigError, match="--on-chip"):
        lava.simulate(lower(g), Batch({"x": x}, np.eye(3)[labels]), {"on_chip": True})
    with pytest.raises(ConfigError, match="full mini-batch"):
        train(g, x[:2], labels[:2], get_source("lava", options={"on_chip": True}),
              TrainConfig(batch_size=4, optimizer="sgd"), progress=False)
