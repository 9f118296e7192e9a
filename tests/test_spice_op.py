"""DESIGN.md theorem 3 on ngspice: the `.op` tensions are beta * dl/dx, so the
gradients read from the circuit match the oracle to solver tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.io import load_batch, load_model
from hwbp.lower import lower
from hwbp.targets.spice.backend import run_spice
from hwbp.verify import verify
from hwbp.cli import EXAMPLE_MODEL

from conftest import make_batch
from spice_helpers import mlp, require_ngspice

#: Issue bound for `.op` gradients (the default tolerances give ~1e-13).
OP_TOL = 1e-6
#: Batch and shared runners solve the same circuit with the same solver.
MODE_TOL = 1e-9


@pytest.fixture(autouse=True)
def _ngspice() -> None:
    require_ngspice()


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_op_gradients_match_oracle(act: str, loss: str, depth: int) -> None:
    g = mlp(depth, 7, act, seed=depth).with_loss(loss)
    batch = make_batch(g, size=3, seed=depth + 10, loss=loss)
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    assert v.comparison.max_rel_err <= OP_TOL, v.report["parameters"]


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_op_width_64(act: str) -> None:
    g = mlp(4, 64, act, seed=3, n_in=16, n_out=10).with_loss("ce")
    batch = make_batch(g, size=4, seed=5, loss="ce")
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    assert v.comparison.max_rel_err <= OP_TOL


def test_op_example_model_both_runners_agree() -> None:
    g = load_model(EXAMPLE_MODEL).with_loss("ce")
    batch = load_batch(EXAMPLE_MODEL.with_name("digits_batch.npz"), g)
    system = lower(g)
    a = run_spice(system, batch, analysis="op", runner="batch")
    b = run_spice(system, batch, analysis="op", runner="shared")
    for name in a.state.mean:
        for xa, xb in ((a.state.plus(name), b.state.plus(name)), (a.state.minus(name), b.state.minus(name))):
            assert np.max(np.abs(xa - xb)) <= MODE_TOL
    v = verify(g, batch, backend="spice", options={"analysis": "op", "runner": "shared"})
    assert v.comparison.max_rel_err <= OP_TOL


def test_ascii_raw_files_give_the_same_voltages() -> None:
    from hwbp.targets.spice.build import build_circuit, stimulus
    from hwbp.targets.spice.ngspice import BatchRunner

    g = mlp(2, 5, "tanh", seed=1).with_loss("mse")
    batch = make_batch(g, size=2, seed=1)
    c = build_circuit(lower(g))
    stims = [stimulus(c, {"x": batch.x["x"][i]}, batch.y[i]) for i in range(2)]
    binary = BatchRunner(raw_format="binary").op(c, stims, c.saved_nodes())
    ascii_ = BatchRunner(raw_format="ascii").op(c, stims, c.saved_nodes())
    # ASCII raw files print 15 significant digits
    np.testing.assert_allclose(ascii_, binary, rtol=1e-12, atol=1e-14)
