"""The three Brian2 code-generation targets run the same equations: the same tensions,
means and gates to 1e-12, built under the given build directory only.

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

GRAPH = random_mlp([2, 3, 2], activation="tanh", seed=4).with_loss("mse")
OPTIONS = {"solver": "exponential_euler", "dt": 0.1, "duration": 12.0}


def _run(codegen: str, build: str):
    """The final state of one run (a module-level function: it runs in a worker process too)."""
    system = lower(GRAPH)
    batch = make_batch(GRAPH, 2, seed=2, loss="mse")
    st = Brian2Backend().simulate(system, batch, {**OPTIONS, "codegen": codegen, "build_dir": build},
                                  initial="random", seed=1).state
    return dict(st.mean), dict(st.tension), st.t, st.steps, dict(st.gates)  # picklable


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    builds = {c: tmp_path_factory.mktemp(f"build_{c}") for c in CODEGENS}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        standalone = pool.submit(_run, "cpp_standalone", str(builds["cpp_standalone"]))
        out = {c: (State(*_run(c, str(builds[c]))), builds[c]) for c in ("numpy", "cython")}
        out["cpp_standalone"] = (State(*standalone.result()), builds["cpp_standalone"])
    return out


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.slow
@pytest.mark.parametrize("codegen", ["cython", "cpp_standalone"])
def test_same_tensions_as_numpy(runs, codegen):
    ref, ours = runs["numpy"][0], runs[codegen][0]
    assert ours.steps == ref.steps == 120
    for name in ref.tension:
        assert _rel(ours.tension[name], ref.tension[name]) < CODEGEN_RTOL
        assert _rel(ours.mean[name], ref.mean[name]) < CODEGEN_RTOL
    assert set(ours.gates) == set(ref.gates)
    for key in ref.gates:
        assert _rel(ours.gates[key], ref.gates[key]) < CODEGEN_RTOL


@pytest.mark.slow
def test_build_products_stay_in_build_dir(runs):
    assert any((runs["cython"][1] / "cython").rglob("*.so"))
    assert any((runs["cpp_standalone"][1] / "standalone").rglob("main*"))
    assert not list((runs["numpy"][1]).rglob("*.so"))
