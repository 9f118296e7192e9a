"""The ngspice runners' failure handling: wall-clock limits (and the shared library
staying usable after one), DC fallbacks reported as errors, temp paths with spaces,
and input checks of :func:`run_spice` (real ngspice; nothing is mocked)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from hwbp.errors import BackendError, BatchError, ConfigError
from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.state import State
from hwbp.targets.spice.backend import run_spice
from hwbp.targets.spice.build import build_circuit, stimulus
from hwbp.targets.spice.model import SpiceOptions
from hwbp.targets.spice.ngspice import BatchRunner, classify, get_runner
from hwbp.targets.spice.shared import SharedRunner
from hwbp.types import Batch

from spice_helpers import require_ngspice

#: A user tanh cell with a capacitor on an internal node that has no DC path to ground.
FLOATING_TANH = """.subckt hwbp_act_tanh a tn fd gate
Bf 0 fd I=(tanh(V(a)))/{hwbp_r}
Bg gate 0 V=(1-tanh(V(a))*tanh(V(a)))*V(tn)
Cfloat nfl 0 1p
.ends
"""


@pytest.fixture(autouse=True)
def _ngspice() -> None:
    require_ngspice()


def _small():
    g = random_mlp([3, 4, 2], activation="tanh", seed=1).with_loss("mse")
    rng = np.random.default_rng(0)
    return lower(g), Batch({"x": rng.standard_normal((2, 3))}, rng.standard_normal((2, 2)))


def _stiff():
    """A ReLU net with huge weights: in the pair realization its `.tran` takes minutes of
    tiny time steps (the differential realization settles it in ~0.1 s)."""
    g = random_mlp([4, 8, 8, 3], activation="relu", seed=1, gain=1e3).with_loss("ce")
    rng = np.random.default_rng(5)
    return lower(g), Batch({"x": rng.standard_normal((1, 4))}, np.eye(3)[[0]])


# ------------------------------------------------------------------ time limits
def test_shared_runner_times_out_and_stays_usable() -> None:
    system, batch = _stiff()
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"^ngspice \.tran of .* timed out after 1 s; raise --timeout"):
        run_spice(system, batch, analysis="tran", runner="shared", timeout_s=1.0, realization="pair")
    assert time.monotonic() - t0 < 15
    small, sb = _small()
    shared = run_spice(small, sb, analysis="op", runner="shared")
    batch_ = run_spice(small, sb, analysis="op", runner="batch")
    for name in shared.state.tension:
        np.testing.assert_allclose(shared.state.tension[name], batch_.state.tension[name], rtol=0, atol=1e-9)
    tran = run_spice(small, sb, analysis="tran", runner="shared", duration=2.0)
    assert np.all(np.isfinite(tran.trace.tension["fc2"]))


def test_batch_runner_timeout_names_the_cli_flag() -> None:
    system, batch = _stiff()
    with pytest.raises(BackendError, match=r"timed out after 1 s; raise --timeout"):
        run_spice(system, batch, analysis="tran", runner="batch", timeout_s=1.0, realization="pair")


@pytest.mark.parametrize("mode", ["batch", "shared"])
@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_timeout_must_be_positive(mode: str, bad: float) -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        get_runner(mode, timeout_s=bad)


def test_shared_runner_takes_a_timeout() -> None:
    assert get_runner("shared", timeout_s=7).timeout_s == 7.0
    assert SharedRunner().timeout_s == 600.0
    with pytest.raises(ConfigError, match="no option 'raw_format'"):
        get_runner("shared", raw_format="ascii")


# ------------------------------------------------------------ DC fallbacks
@pytest.mark.parametrize("mode", ["batch", "shared"])
def test_op_with_floating_node_is_an_error(tmp_path: Path, mode: str) -> None:
    cell = tmp_path / "floating.cir"
    cell.write_text(FLOATING_TANH, encoding="ascii")
    system, batch = _small()
    with pytest.raises(BackendError, match=r"^ngspice \.op of .*: singular matrix: a node has no DC path to "
                                           r"ground \(check node \S*nfl\); check custom cells"):
        run_spice(system, batch, analysis="op", runner=mode, cell_files={"act_tanh": str(cell)})


def test_classify_rejects_cell_node_fallback_only_for_op() -> None:
    text = ("Warning: singular matrix:  check node x1.n\nWarning: source stepping failed\n"
            "Note: Transient op started\nNote: Transient op finished successfully\n")
    with pytest.raises(BackendError, match="singular matrix: a node has no DC path to ground"):
        classify(text, ".op", "c")
    classify(text, ".tran", "c")  # the initial point of a transient may come from it
    classify("Warning: singular matrix:  check node x1.n\nNote: One successful gmin step\n", ".op", "c")


# ------------------------------------------------------------ temp dirs
def test_batch_op_in_temp_dir_with_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spaced = tmp_path / "with space"
    spaced.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spaced))
    system, batch = _small()
    c = build_circuit(system, SpiceOptions())
    stims = [stimulus(c, {"x": batch.x["x"][i]}, batch.y[i]) for i in range(batch.size)]
    v = BatchRunner().op(c, stims, c.saved_nodes())
    assert v.shape == (2, len(c.saved_nodes())) and np.all(np.isfinite(v))
    t, tv = BatchRunner().tran(c, stims[0], {}, 1e-7, 1e-6, c.saved_nodes(), 1e-6)
    assert t[-1] == pytest.approx(1e-6) and np.all(np.isfinite(tv))


# ------------------------------------------------------------ input checks
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mode", ["batch", "shared"])
def test_non_finite_batch_is_rejected(bad: float, mode: str) -> None:
    system, _ = _small()
    x = np.zeros((2, 3))
    x[1, 0] = bad
    with pytest.raises(BatchError, match=r"^spice \.op: input 'x' has NaN or Inf values in sample\(s\) 1; "):
        run_spice(system, Batch({"x": x}, np.zeros((2, 2))), analysis="op", runner=mode)
    y = np.zeros((2, 2))
    y[0, 1] = bad
    with pytest.raises(BatchError, match=r"^spice \.op: the targets have NaN or Inf values in sample\(s\) 0; "):
        run_spice(system, Batch({"x": np.zeros((2, 3))}, y), analysis="op", runner=mode)


def _state(system, batch_size: int, skip: str | None = None) -> State:
    pops = [p for p in system.populations if p.name != skip]
    return State({p.name: np.zeros((batch_size, p.size)) for p in pops},
                 {p.name: np.zeros((batch_size, p.size)) for p in pops})


def test_initial_state_missing_population() -> None:
    system, batch = _small()
    with pytest.raises(ConfigError, match=r"^initial state lacks the activation of population 'fc2'"):
        run_spice(system, batch, analysis="tran", initial=_state(system, 2, skip="fc2"))


def test_initial_state_of_another_batch_size() -> None:
    system, batch = _small()
    with pytest.raises(ConfigError, match=r"expected shape \(2, 4\) \(batch x neurons\), got \(3, 4\)"):
        run_spice(system, batch, analysis="tran", initial=_state(system, 3))


def test_initial_state_given_is_used() -> None:
    system, batch = _small()
    res = run_spice(system, batch, analysis="tran", initial=_state(system, 2), duration=1.0)
    assert res.settle["initial"] == "given"
    for name, t in res.trace.tension.items():
        np.testing.assert_allclose(t[0], 0.0, atol=1e-9)
