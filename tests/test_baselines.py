"""PC and PC-ALM baselines: α = 0 is PC, linear networks approach backprop with T,
and the published qualitative picture (PC-ALM closer to backprop than PC)."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.baselines import pc_alm_relax, pc_gradients, pc_relax
from hwbp.errors import ConfigError
from hwbp.lower import lower
from hwbp.models import depth_resmlp, random_mlp
from hwbp.oracle import exact_gradients
from conftest import make_batch


def cosine(a, b) -> float:
    va = np.concatenate([np.ravel(a[k]) for k in sorted(b)])
    vb = np.concatenate([np.ravel(b[k]) for k in sorted(b)])
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def _linear(depth: int = 5, width: int = 6):
    g = random_mlp([4] + [width] * (depth - 1) + [3], activation="identity", seed=1).with_loss("mse")
    return g.with_parameters({k: np.zeros_like(v) for k, v in g.parameters().items() if k.endswith(".bias")})


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_alm_with_alpha_zero_is_pc(activation: str) -> None:
    g = depth_resmlp(9, 5, 3, 6, activation=activation, seed=2).with_loss("mse")
    b = make_batch(g, 4, seed=1)
    s = lower(g)
    pc = pc_relax(s, b, steps=12, rho=1.0, eta=0.25)
    alm = pc_alm_relax(s, b, steps=12, rho=1.0, alpha=0.0, eta=0.25)
    gp, ga = pc_gradients(s, b, pc).parameters, pc_gradients(s, b, alm).parameters
    for k in gp:
        np.testing.assert_array_equal(ga[k], gp[k])
    # negative control: α = 1 differs
    alm1 = pc_gradients(s, b, pc_alm_relax(s, b, steps=12, alpha=1.0, eta=0.25)).parameters
    assert max(np.abs(alm1[k] - gp[k]).max() for k in gp) > 1e-6


def test_linear_pc_alm_approaches_backprop_as_T_grows() -> None:
    g = _linear()
    b = make_batch(g, 5, seed=3)
    s = lower(g)
    exact = exact_gradients(g, b).parameters
    weights = [k for k in exact if k.endswith(".weight")]
    errs = []
    for T in (5, 20, 80, 320, 3000):
        got = pc_gradients(s, b, pc_alm_relax(s, b, steps=T, eta=0.2)).parameters
        errs.append(max(np.linalg.norm(got[k] - exact[k]) / np.linalg.norm(exact[k]) for k in weights))
    assert all(later < earlier for earlier, later in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-10, errs  # measured 9e-14 at T = 3000
    # PC (α = 0) does not: its fixed point is not backprop
    pc = pc_gradients(s, b, pc_relax(s, b, steps=3000, eta=0.2)).parameters
    assert max(np.linalg.norm(pc[k] - exact[k]) / np.linalg.norm(exact[k]) for k in weights) > 1e-2


def test_pc_at_zero_steps_is_credit_at_the_output_only() -> None:
    g = depth_resmlp(9, 5, 3, 5, activation="tanh", seed=2).with_loss("mse")
    b = make_batch(g, 4, seed=1)
    s = lower(g)
    got = pc_gradients(s, b, pc_relax(s, b, steps=0)).parameters
    exact = exact_gradients(g, b).parameters
    np.testing.assert_allclose(got["layer5.weight"], exact["layer5.weight"], rtol=1e-12)
    assert np.all(got["layer2.weight"] == 0)


def test_pc_alm_closer_to_backprop_than_pc_at_depth() -> None:
    g = depth_resmlp(20, 16, 10, 16, activation="relu", seed=0).with_loss("mse")
    b = make_batch(g, 16, seed=1)
    s = lower(g)
    exact = exact_gradients(g, b).parameters
    c_pc = cosine(pc_gradients(s, b, pc_relax(s, b)).parameters, exact)
    c_alm = cosine(pc_gradients(s, b, pc_alm_relax(s, b)).parameters, exact)
    assert c_pc < c_alm < 1 - 1e-6, (c_pc, c_alm)


def test_bad_settings_are_errors() -> None:
    g = depth_resmlp(4, 3, 2, 3).with_loss("mse")
    s = lower(g)
    b = make_batch(g, 2)
    with pytest.raises(ConfigError, match="eta"):
        pc_relax(s, b, eta=0.0)
    with pytest.raises(ConfigError, match="steps"):
        pc_alm_relax(s, b, steps=-1)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_vectorized_chain_equals_generic_path(activation: str) -> None:
    from hwbp.baselines.stacked import stacked_chain

    g = depth_resmlp(9, 5, 3, 7, activation=activation, seed=4).with_loss("ce")
    b = make_batch(g, 4, seed=2, loss="ce")
    s = lower(g)
    assert stacked_chain(s, b) is not None
    assert stacked_chain(lower(_linear()), make_batch(_linear(), 2)) is None
    for relax in (pc_relax, pc_alm_relax):
        fast = pc_gradients(s, b, relax(s, b, steps=9)).parameters
        slow = pc_gradients(s, b, relax(s, b, steps=9, vectorize=False)).parameters
        for k in slow:
            np.testing.assert_allclose(fast[k], slow[k], rtol=1e-11, atol=1e-14)
