"""Theorem 2 of DESIGN.md (continuous-time convergence) and solver convergence orders."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.oracle import exact_gradients
from hwbp.sim import SOLVERS, simulate
from hwbp.verify import error_curve
from hwbp.verify.compare import compare
from hwbp.verify.readout import read_gradients

from conftest import make_batch

#: Issue bound on the gradient error at t = 8 L tau (RK4, dt = tau/100).
BOUND_8L = 1e-9


def _setup(depth: int, act: str = "tanh", seed: int = 0):
    g = random_mlp([4] + [6] * (depth - 1) + [3], activation=act, seed=seed).with_loss("mse")
    system = lower(g)
    batch = make_batch(g, size=3, seed=seed)
    return g, system, batch, exact_gradients(g, batch)


@pytest.mark.slow
@pytest.mark.parametrize("depth,act", [(6, "tanh"), (8, "sigmoid")])
def test_rk4_error_at_8L_and_monotone_tail(depth: int, act: str) -> None:
    g, system, batch, exact = _setup(depth, act)
    L = system.depth
    res = simulate(system, batch, mode="continuous", solver="rk4", dt=0.01, duration=8 * L,
                   initial="random", seed=1, trace=True, trace_every=25)
    t, err = error_curve(system, res.trace, batch, exact)
    assert err[-1] < BOUND_8L, f"rel_err {err[-1]:.2e} at t = 8L tau"
    tail = err[t >= 2 * L]
    # after the ballistic delay the error decays monotonically (to round-off)
    assert np.all(np.diff(tail) <= 1e-15 + 1e-12 * tail[:-1]), "error is not monotone after 2L tau"
    # and credit propagates ballistically: little progress before ~L tau, most after 2L tau
    assert err[np.searchsorted(t, L)] > 1e-2


def _first_below(system, trace, batch, exact, level: float) -> float:
    """The first traced instant (tau) at which :func:`hwbp.verify.error_curve`'s error (the
    largest rel_err) is below ``level``: the same per-instant error, evaluated only up to
    that instant."""
    for k in range(len(trace)):
        if compare(read_gradients(system, trace.state(k), batch), exact).max_rel_err < level:
            return float(trace.t[k])
    raise AssertionError(f"the error never falls below {level:g} (last t = {trace.t[-1]:g} tau)")


@pytest.mark.slow
def test_erlang_delay_grows_with_depth() -> None:
    """Time to reach rel_err 1e-3 grows roughly linearly with depth (one layer per tau)."""
    times = []
    for depth in (2, 4, 8):
        g, system, batch, exact = _setup(depth, seed=3)
        res = simulate(system, batch, mode="continuous", solver="exponential", dt=0.05,
                       duration=8 * depth, initial="zeros", trace=True, trace_every=1)
        times.append(_first_below(system, res.trace, batch, exact, 1e-3))
    slope = np.polyfit([2, 4, 8], times, 1)[0]
    assert 1.0 < slope < 4.0, f"settling time vs depth slope {slope:.2f} tau/layer (times {times})"


@pytest.fixture(scope="module")
def convergence_case():
    """The system, batch, run options and RK4 (dt = tau/1000) reference state at t = 2 tau
    that every solver's convergence order is fitted against (computed once per module)."""
    g, system, batch, _ = _setup(3, seed=5)
    kw = dict(mode="continuous", duration=2.0, initial="random", seed=2)
    ref = simulate(system, batch, solver="rk4", dt=1e-3, **kw).state
    return system, batch, kw, ref


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_solver_convergence_order(solver: str, convergence_case) -> None:
    """Fit the global error at t = 2 tau against the step size; slope = the order."""
    system, batch, kw, ref = convergence_case
    hs = [0.2, 0.1, 0.05, 0.025]
    errs = []
    for h in hs:
        st = simulate(system, batch, solver=solver, dt=h, **kw).state
        errs.append(max(np.abs(st.tension[n] - ref.tension[n]).max() for n in ref.tension))
    order = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    expected = SOLVERS[solver].order
    assert abs(order - expected) < 0.35, f"{solver}: fitted order {order:.2f}, expected {expected}"


def test_fixed_point_is_invariant_under_every_solver() -> None:
    g, system, batch, exact = _setup(3, seed=2)
    steady = simulate(system, batch, mode="steady").state
    for solver in SOLVERS:
        res = simulate(system, batch, mode="continuous", solver=solver, dt=0.1, duration=0.5, initial=steady)
        for n in steady.tension:
            np.testing.assert_allclose(res.state.tension[n], steady.tension[n], rtol=0, atol=1e-13)
