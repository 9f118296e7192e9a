"""The three Brian2 code-generation targets run the same equations: the same tensions,
means and gates to 1e-12, built under the given build directory only, for hwbp's staged
RK4 (one stage per clock tick) and for Brian2's own exponential Euler.  Cython compiles
the RK4 network only (its code holds every equation string of ours; a second Cython
build would test Brian2's state updater, at ~12 s of compile time).

One network and one build per target for the whole module (the first Cython and C++
compiles dominate: marked slow; CI runs them).  The C++ project is built in a second
process while Cython compiles in this one, so the two compilers use both cores."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from conftest import make_batch
from hwbp.lower.lowerer import lower
from hwbp.models import random_mlp
from hwbp.state import State
from hwbp.targets.brian2.backend import CODEGEN_RTOL, Brian2Backend
from hwbp.targets.brian2.runner import CODEGENS

#: gelu: the erfc function has an implementation per target, and all of them run here
GRAPH = random_mlp([2, 3, 2], activation="gelu", seed=4).with_loss("mse")
OPTIONS = {"dt": 0.1, "duration": 12.0}
SOLVERS = ("exponential_euler", "rk4")
#: (codegen, solver) pairs compared with numpy
PAIRS = [("cython", "rk4"), ("cpp_standalone", "rk4"), ("cpp_standalone", "exponential_euler")]


def _run(codegen: str, build: str, solver: str):
    """The final state of one run (a module-level function: it runs in a worker process too)."""
    system = lower(GRAPH)
    batch = make_batch(GRAPH, 2, seed=2, loss="mse")
    st = Brian2Backend().simulate(system, batch, {**OPTIONS, "solver": solver, "codegen": codegen,
                                                  "build_dir": build}, initial="random", seed=1).state
    return dict(st.mean), dict(st.tension), st.t, st.steps, dict(st.gates)  # picklable


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{(codegen, solver): (final state, build directory)}``."""
    builds = {c: tmp_path_factory.mktemp(f"build_{c}") for c in CODEGENS}
    out = {}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        standalone = {s: pool.submit(_run, "cpp_standalone", str(builds["cpp_standalone"] / s), s) for s in SOLVERS}
        out.update({("numpy", s): (State(*_run("numpy", str(builds["numpy"]), s)), builds["numpy"]) for s in SOLVERS})
        out[("cython", "rk4")] = (State(*_run("cython", str(builds["cython"]), "rk4")), builds["cython"])
        out.update({("cpp_standalone", s): (State(*f.result()), builds["cpp_standalone"])
                    for s, f in standalone.items()})
    return out


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.slow
@pytest.mark.parametrize("codegen,solver", PAIRS)
def test_same_tensions_as_numpy(runs, codegen, solver):
    ref, ours = runs[("numpy", solver)][0], runs[(codegen, solver)][0]
    assert ours.steps == ref.steps == 120
    for name in ref.tension:
        assert _rel(ours.tension[name], ref.tension[name]) < CODEGEN_RTOL
        assert _rel(ours.mean[name], ref.mean[name]) < CODEGEN_RTOL
    assert set(ours.gates) == set(ref.gates)
    for key in ref.gates:
        assert _rel(ours.gates[key], ref.gates[key]) < CODEGEN_RTOL


@pytest.mark.slow
def test_build_products_stay_in_build_dir(runs):
    assert any((runs[("cython", "rk4")][1] / "cython").rglob("*.so"))
    assert any((runs[("cpp_standalone", "rk4")][1] / "rk4" / "standalone").rglob("main*"))
    assert not list((runs[("numpy", "rk4")][1]).rglob("*.so"))
