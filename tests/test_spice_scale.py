"""A network of real size through ngspice: the 784-256-256-10 MLP, a batch of 8,
verified end to end in the default realization (real ngspice).

The bound is on CPU time (this process and the ngspice processes it ran): on a machine
shared with other jobs the wall time measures the neighbours (measured at load average
17 on 2 cores: 117.6 s wall for 9.1 s of CPU)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from hwbp.models import random_mlp
from hwbp.types import Batch
from hwbp.verify import verify

from spice_helpers import require_ngspice

#: The issue's bound on the whole `verify` of a batch of 8 (s of CPU).
BATCH8_BOUND_S = 60.0
#: `hwbp verify`'s default gradient tolerance.
VERIFY_TOL = 1e-6


@pytest.mark.slow
def test_mnist_mlp_batch_of_8_verifies_within_a_minute() -> None:
    require_ngspice()
    g = random_mlp((784, 256, 256, 10), activation="tanh", seed=0).with_loss("ce")
    rng = np.random.default_rng(0)
    batch = Batch({"x": rng.standard_normal((8, 784))}, np.eye(10)[rng.integers(0, 10, 8)])
    t0, c0 = time.perf_counter(), _cpu()
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    assert v.comparison.max_rel_err <= VERIFY_TOL
    assert cpu < BATCH8_BOUND_S, f"{cpu:.1f} s CPU ({wall:.1f} s wall)"


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
