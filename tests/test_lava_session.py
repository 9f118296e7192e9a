"""One Lava runtime per job (hwbp.targets.lava.session): runs on the kept runtime equal
fresh runtimes bit for bit (float; fixed: the numpy integer model), whatever batch,
start state or weights come next; a hang or a failing model kills the session's
processes and the next run starts a new one; closing leaves no process and no
shared memory behind."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest

from hwbp.backend import get_backend
from hwbp.initial import initial_state
from hwbp.errors import BackendError
from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.targets.lava.topology import term_table

from conftest import make_batch


def _fresh_float(system, batch, start, steps):
    """Today's path: a new runtime, variables read with Var.get, then stopped."""
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS
    from hwbp.targets.lava.network import build_network, run_network
    from hwbp.targets.lava.run_float import float_spec, read_state

    net = build_network(term_table(system), float_spec(system, batch, start, steps, 1.0))
    return run_network(net, steps + 1, tag="floating_pt", models=FLOAT_MODELS, timeout_s=120.0,
                       read=lambda n: read_state(system, n, steps, 1.0))


def _equal(a, b) -> None:
    for n in a.mean:
        assert np.array_equal(a.mean[n], b.mean[n]) and np.array_equal(a.tension[n], b.tension[n]), n
    assert a.gates.keys() == b.gates.keys()
    for k in a.gates:
        assert np.array_equal(a.gates[k], b.gates[k]), k


def _shm() -> set:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.mark.slow
def test_kept_runtime_equals_fresh_runtimes_bit_for_bit() -> None:
    from hwbp.targets.lava import session

    g = random_mlp([4, 5, 3], activation="tanh", seed=3, gain=1.2).with_loss("ce")
    system = lower(g)
    a, b = make_batch(g, size=3, seed=1, loss="ce"), make_batch(g, size=3, seed=2, loss="ce")
    lava = get_backend("lava")
    art = lava.compile(system, lava.options({}))
    steps = 2 * system.depth
    runs = [(a, "zeros"), (b, "random"), (a, "zeros")]
    got = [lava.run(art, batch, initial=init, seed=5).state for batch, init in runs]
    live = session._LIVE
    assert live is not None and live.runs == 3  # one runtime served the three runs
    children = set(mp.active_children())
    for (batch, init), state in zip(runs, got):
        _equal(state, _fresh_float(system, batch, initial_state(system, batch, init, 5), steps))
    _equal(got[0], got[2])
    # new weights (a training step) reach the same runtime
    params = {k: v * 0.5 for k, v in system.parameters.items()}
    art2 = lava.update_parameters(art, params)
    new = lava.run(art2, b, initial="zeros").state
    assert session._LIVE is live and live.runs == 4 and set(mp.active_children()) == children
    _equal(new, _fresh_float(art2.system, b, initial_state(system, b, "zeros"), steps))


def test_fixed_point_on_the_kept_runtime_is_the_integer_model() -> None:
    from hwbp.targets.lava.fixed import numpy_model, run_fixed

    g = random_mlp([4, 5, 3], activation="sigmoid", seed=4).with_loss("mse")
    system = lower(g)
    lava = get_backend("lava")
    art = lava.compile(system, lava.options({"precision": "fixed", "weight_bits": 16}))
    for seed in (1, 2):
        batch = make_batch(g, size=2, seed=seed, loss="mse")
        start = initial_state(system, batch, "random", seed)
        got = run_fixed(art.data, system, batch, start, 4, 1.0, 120.0, raw=True)
        want = numpy_model(art.data, system, batch, start, 4)
        for x, y in zip(got, want):
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def test_one_process_model_equals_the_process_per_population_network_on_a_residual_net() -> None:
    """The kept runtime runs the whole network as one process model; on a residual net
    (a population with two terms, a population read by two) it equals the network of
    one process per input, population and term bit for bit (float), and the integer
    model (fixed); a model that drops the loss does not."""
    from hwbp.models import random_resmlp
    from hwbp.targets.lava import session
    from hwbp.targets.lava.fixed import numpy_model, run_fixed
    from hwbp.targets.lava.lavaproc.fused import NetworkProcess, PyNetworkFloat
    from hwbp.targets.lava.run_float import float_spec

    g = random_resmlp(4, 5, 3, 2, activation="tanh", seed=6).with_loss("ce")
    system = lower(g)
    assert max(len(p.terms) for p in system.populations) == 2
    batch = make_batch(g, size=3, seed=4, loss="ce")
    lava = get_backend("lava")
    steps = 2 * system.depth
    start = initial_state(system, batch, "random", 2)
    got = lava.run(lava.compile(system, lava.options({})), batch, initial=start).state
    assert len(session._LIVE.models) == 1
    _equal(got, _fresh_float(system, batch, start, steps))
    art = lava.compile(system, lava.options({"precision": "fixed", "weight_bits": 16}))
    fixed = run_fixed(art.data, system, batch, start, steps, 1.0, 120.0, raw=True)
    for x, y in zip(fixed, numpy_model(art.data, system, batch, start, steps)):
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)

    class NoLoss(PyNetworkFloat):  # negative control
        def _step(self, local: int, last: bool) -> list:
            for pop in self.proc_params["layout"]["pops"]:
                pop["params"]["loss"] = 0
            return super()._step(local, last)

    spec = float_spec(system, batch, start, steps, 1.0)
    _, tens, _ = session.run_session(term_table(system), spec, "floating_pt", {NetworkProcess: NoLoss}, 120.0)
    assert all(not np.any(t) for t in tens.values()) and any(np.any(t) for t in got.tension.values())
    session.close_session()


@pytest.mark.slow
def test_a_hang_kills_the_session_and_the_next_run_starts_afresh() -> None:
    from hwbp.targets.lava import session
    from hwbp.targets.lava.compat import import_lava

    import_lava()
    from hwbp.targets.lava.lavaproc.fused import FUSED_FLOAT_MODELS, NetworkProcess, PyNetworkFloat
    from hwbp.targets.lava.run_float import float_spec

    class ReceiveTwice(PyNetworkFloat):
        def _tick(self) -> None:
            self.host_in.recv()  # the block's one message: the model's own receive then waits forever
            super()._tick()

    g = random_mlp([4, 5, 3], activation="tanh", seed=1).with_loss("mse")
    system = lower(g)
    batch = make_batch(g, size=1, seed=1, loss="mse")
    spec = float_spec(system, batch, initial_state(system, batch, "zeros"), 2, 1.0)
    session.close_session()
    before = set(mp.active_children())
    with pytest.raises(BackendError, match="did not finish within 3 s"):
        session.run_session(term_table(system), spec, "floating_pt", {NetworkProcess: ReceiveTwice}, 3.0)
    assert session._LIVE is None and set(mp.active_children()) - before == set()
    means, _, _ = session.run_session(term_table(system), spec, "floating_pt", FUSED_FLOAT_MODELS, 120.0)
    assert session._LIVE is not None and np.isfinite(means[system.populations[-1].name]).all()
    session.close_session()


@pytest.mark.slow
def test_closing_leaves_no_process_and_no_shared_memory() -> None:
    from hwbp.targets.lava import session

    session.close_session()
    before, shm = set(mp.active_children()), _shm()
    g = random_mlp([4, 5, 3], activation="relu", seed=2).with_loss("mse")
    system = lower(g)
    get_backend("lava").simulate(system, make_batch(g, size=2, seed=3, loss="mse"))
    assert set(mp.active_children()) - before  # the runtime stays up for the next run
    session.close_session()
    assert session._LIVE is None
    assert set(mp.active_children()) - before == set()
    assert _shm() - shm == set()
