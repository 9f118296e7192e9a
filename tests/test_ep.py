"""The EP comparison's two networks (sims/ep/nets.py): the references against finite
differences, EP's finite-beta bias orders, the dyadic pair's exactness, and a mismatch
negative control."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

# loaded by path under its own name: sims/ep and sims/depth both have a run.py and a figures.py
_NETS = Path(__file__).resolve().parent.parent / "sims" / "ep" / "nets.py"
_spec = importlib.util.spec_from_file_location("ep_nets", _NETS)
sys.modules["ep_nets"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sys.modules["ep_nets"])


def _setup():
    from ep_nets import Net

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (3, 6)), np.eye(3)[[0, 2, 1]]
    return Net.random(6, 5, 3, 1, gain=0.5), x, y


def test_ep_reference_matches_finite_differences_of_the_free_equilibrium_loss() -> None:
    from ep_nets import Net, ep_free_state, ep_reference

    net, x, y = _setup()
    ref = ep_reference(net, x, y)

    def loss(n: Net) -> float:
        o = ep_free_state(n, x, y)[1]
        return float(0.5 * ((o - y) ** 2).sum(1).mean())

    h = 1e-5
    for key, idx in (("w1", (1, 2)), ("w2", (2, 4)), ("b1", (3,)), ("b2", (0,))):
        plus, minus = [Net(*(p.copy() for p in (net.w1, net.b1, net.w2, net.b2))) for _ in range(2)]
        getattr(plus, key)[idx] += h
        getattr(minus, key)[idx] -= h
        fd = (loss(plus) - loss(minus)) / (2 * h)
        assert abs(fd - ref[key][idx]) < 1e-7 * max(1.0, abs(fd)), key


def test_ep_bias_orders_and_the_exact_dyadic_pair() -> None:
    from ep_nets import dyadic_gradient, ep_gradient, ep_reference, ff_reference, rel_err

    net, x, y = _setup()
    ref = ep_reference(net, x, y)
    kw = dict(t_phase=60.0, dt=0.05, sigma=0.0, rail=np.inf, rng=None)
    one = [rel_err(ep_gradient(net, x, y, b, symmetric=False, **kw), ref) for b in (0.01, 0.1)]
    sym = [rel_err(ep_gradient(net, x, y, b, symmetric=True, **kw), ref) for b in (0.01, 0.1)]
    assert 5 < one[1] / one[0] < 20  # O(beta)
    assert 50 < sym[1] / sym[0] < 200  # O(beta^2)
    fref = ff_reference(net, x, y)
    for beta in (0.01, 1.0):
        assert rel_err(dyadic_gradient(net, net, x, y, beta, **kw), fref) < 1e-9
    # negative control: backward devices that differ from the forward ones bias the pair
    bwd = net.mismatched(0.05, np.random.default_rng(3))
    assert rel_err(dyadic_gradient(net, bwd, x, y, 1.0, **kw), fref) > 1e-3
