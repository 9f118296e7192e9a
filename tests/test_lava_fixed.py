"""The lava backend, fixed-point ProcessModels: bit-exact against the plain numpy model
of the same integer arithmetic, and the gradient cosine of the digits MLP with 8-bit
weights."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest

from hwbp.backend import get_backend
from hwbp.initial import initial_state
from hwbp.io import load_batch, load_model
from hwbp.lower import lower
from hwbp.models import random_mlp, random_resmlp
from hwbp.oracle import exact_gradients
from hwbp.targets.lava.fixed import numpy_model, quantize_weight, run_fixed
from hwbp.verify import compare, read_gradients

from conftest import make_batch

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Issue bound: gradient cosine to the oracle with 8-bit weights on the digits MLP.
DIGITS_MIN_COSINE = 0.999


def _equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind,act,loss,opts,initial", [
    ("mlp", "tanh", "ce", {}, "zeros"),
    ("resmlp", "sigmoid", "mse", {"weight_bits": 6, "payload_bits": 12, "dt": 0.5, "steps": 7}, "random"),
    ("mlp", "leaky_relu", "mse", {"state_bits": 16, "weight_bits": 4}, "random"),
])
def test_bit_exact_against_numpy_model(kind: str, act: str, loss: str, opts: dict, initial: str) -> None:
    if kind == "mlp":
        g = random_mlp([4, 6, 5, 3], activation=act, seed=3, gain=1.5)
    else:
        g = random_resmlp(4, 5, 3, 1, activation=act, seed=4, gain=1.5)
    g = g.with_loss(loss)
    system, batch = lower(g), make_batch(g, size=3, seed=5, loss=loss)
    lava = get_backend("lava")
    o = lava.options({"precision": "fixed", **opts})
    art = lava.compile(system, o)
    start = initial_state(system, batch, initial, seed=2)
    steps = o.unit_steps(system.depth)
    got = run_fixed(art.data, system, batch, start, steps, o.step, 120.0, raw=True)
    want = numpy_model(art.data, system, batch, start, steps)
    for g_, w_ in zip(got, want):
        assert _equal(g_, w_)
    assert any(np.any(v != 0) for v in got[2].values())
    # negative control: the same comparison sees one weight changed by one LSB
    key = next(k for k, w in art.data.weight.items() if w is not None)
    bumped = dict(art.data.weight)
    bumped[key] = bumped[key].copy()
    bumped[key][0, 0] += 1
    other = numpy_model(dataclasses.replace(art.data, weight=bumped), system, batch, start, steps)
    assert not all(_equal(g_, w_) for g_, w_ in zip(got, other))


def test_quantized_weights_share_one_exponent() -> None:
    w = np.array([[0.5, -0.25], [0.124, 1.0]])
    q, exp = quantize_weight(w, 8)
    assert q.dtype == np.int64 and np.abs(q).max() <= 127 and exp == -6
    assert np.array_equal(q, np.rint(w * 64).astype(np.int64))


def test_digits_mlp_8bit_cosine() -> None:
    g = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    full = load_batch(ROOT / "examples" / "digits_batch.npz", g, loss="ce")
    from hwbp.types import Batch

    batch = Batch({k: v[:8] for k, v in full.x.items()}, full.y[:8])
    system = lower(g)
    r = get_backend("lava").simulate(system, batch, {"precision": "fixed", "weight_bits": 8})
    cmp = compare(read_gradients(system, r.state, batch), exact_gradients(g, batch))
    assert min(m.cosine for m in cmp.parameters.values()) >= DIGITS_MIN_COSINE
    assert cmp.max_rel_err > 1e-6  # it is fixed point: not the float result


def test_precision_sweep_improves_with_bits() -> None:
    from hwbp.targets.lava.precision import sweep, to_csv, to_markdown

    g = random_mlp([4, 6, 3], activation="tanh", seed=1, gain=1.5).with_loss("mse")
    pts = sweep(g, make_batch(g, size=4, seed=1), [4, 8, 14], [24])
    errs = [p.max_rel_err for p in pts]
    assert errs[0] > errs[1] > errs[2] and pts[2].min_cosine > 0.9999
    assert to_csv(pts).splitlines()[0] == "weight_bits,state_bits,min_cosine,max_rel_err"
    assert "| 8 |" in to_markdown(pts, "t")
