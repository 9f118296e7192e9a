"""`.tran` from a non-equilibrium state: the tension at t = 12 L tau matches the
oracle, the default duration (max(12 L, 24) tau) meets `hwbp verify`'s default
tolerance, and batch and shared runners give the same trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.lower import lower
from hwbp.oracle import exact_gradients
from hwbp.targets.spice.backend import run_spice
from hwbp.verify import compare, read_gradients

from conftest import make_batch
from spice_helpers import mlp, require_ngspice

#: Issue bound on the tension at 12 L tau (relative to the oracle).
TRAN_TOL = 1e-4
#: Weight gradients mix the mean's and the tension's remaining lag (~ 12 L e^{-12 L});
#: for L = 1 that is ~1e-4, so the bound on them is looser.
GRAD_TOL = 1e-3
#: `hwbp verify`'s default tolerance on gradients.
VERIFY_TOL = 1e-6
#: Same circuit, same solver, two runners (trajectories are interpolated alike).
MODE_TOL = 1e-9


@pytest.fixture(autouse=True)
def _ngspice() -> None:
    require_ngspice()


@pytest.mark.parametrize("depth", [1, 3])
def test_tran_tension_within_bound_at_12_L_tau(depth: int) -> None:
    g = mlp(depth, 6, "tanh", seed=depth).with_loss("mse")
    batch = make_batch(g, size=2, seed=depth)
    system = lower(g)
    res = run_spice(system, batch, analysis="tran", initial="random", seed=depth, duration=12 * system.depth)
    assert res.settle["duration_tau"] == 12 * system.depth
    exact = exact_gradients(g, batch)
    for name, t in res.state.tension.items():
        ref = system.beta * exact.activations[name]
        assert np.linalg.norm(t - ref) <= TRAN_TOL * np.linalg.norm(ref), name
    assert compare(read_gradients(system, res.state, batch), exact).max_rel_err <= GRAD_TOL
    assert 0 < res.settle["settling_time_tau"] < 12 * system.depth
    # it starts away from equilibrium
    assert np.linalg.norm(res.trace.tension[system.loss.population][0] - ref) > 0.1


@pytest.mark.parametrize("depth", [1, 3])
def test_tran_default_duration_meets_verify_tolerance(depth: int) -> None:
    g = mlp(depth, 6, "tanh", seed=depth).with_loss("mse")
    batch = make_batch(g, size=2, seed=depth)
    system = lower(g)
    res = run_spice(system, batch, analysis="tran", initial="random", seed=depth)
    assert res.settle["duration_tau"] == max(12 * system.depth, 24)
    exact = exact_gradients(g, batch)
    assert compare(read_gradients(system, res.state, batch), exact).max_rel_err <= VERIFY_TOL


def test_tran_batch_and_shared_agree() -> None:
    g = mlp(2, 4, "tanh", seed=7).with_loss("ce")
    batch = make_batch(g, size=1, seed=7, loss="ce")
    system = lower(g)
    a = run_spice(system, batch, analysis="tran", runner="batch", duration=6.0)
    b = run_spice(system, batch, analysis="tran", runner="shared", duration=6.0)
    for name in a.trace.tension:
        assert np.max(np.abs(a.trace.tension[name] - b.trace.tension[name])) <= MODE_TOL
        assert np.max(np.abs(a.trace.mean[name] - b.trace.mean[name])) <= MODE_TOL


def test_default_tran_step_and_duration_follow_the_node_time_constant() -> None:
    """The default ``.tran`` output step is 0.05 of the node pairs' time constant and the
    duration max(12 L, 24) of them: R*C for the behavioral node, the transistor pair's own
    R*C (125 kohm * 1 pF) when ``--pdk-cells`` names ``node`` (no ngspice run)."""
    from hwbp.targets.spice.backend import STEP_FRACTION, SpiceBackend, _node_tau_s

    be = SpiceBackend()
    assert STEP_FRACTION == 0.05
    assert _node_tau_s(be.options({"analysis": "tran"}), 1e-6) == 1e-6
    assert _node_tau_s(be.options({"analysis": "tran", "pdk": "sky130", "pdk_cells": "act"}), 1e-6) == 1e-6
    # the .tran default act,node,loss and an explicit node
    for cells in (None, "node"):
        opts = be.options({"analysis": "tran", "pdk": "sky130", "pdk_cells": cells})
        assert _node_tau_s(opts, 1e-6) == pytest.approx(125e3 * 1e-12, rel=1e-12)
