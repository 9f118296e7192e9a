"""Many samples per ngspice process and across processes, the two realizations, and
which ngspice runs (real ngspice; nothing is mocked)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hwbp.errors import BackendError, ConfigError
from hwbp.lower import lower
from hwbp.targets.spice.backend import run_spice
from hwbp.targets.spice.ngspice import split_work

from conftest import make_batch
from spice_helpers import mlp, require_ngspice

#: Batch in one process vs one process per sample: ngspice re-solves each sample from
#: the previous operating point, which Newton leaves within its tolerance (vntol 1e-12 V).
BATCH_TOL = 1e-12
#: The two realizations solve different (equivalent) matrices: same fixed point to the
#: Newton tolerances (reltol 1e-9 of a ~1 V node, vntol 1e-12 V); measured ~1e-13 V.
REALIZATION_TOL = 1e-10


@pytest.fixture(autouse=True)
def _ngspice() -> None:
    require_ngspice()


def _case(size: int = 5):
    g = mlp(3, 6, "tanh", seed=2).with_loss("ce")
    return lower(g), make_batch(g, size=size, seed=4, loss="ce")


def _sample(batch, b):
    from hwbp.types import Batch

    return Batch({k: v[b:b + 1] for k, v in batch.x.items()}, batch.y[b:b + 1])


@pytest.mark.parametrize("realization", ["differential", "pair"])
def test_op_batch_in_one_process_equals_sample_by_sample(realization: str) -> None:
    system, batch = _case()
    whole = run_spice(system, batch, analysis="op", realization=realization)
    pooled = run_spice(system, batch, analysis="op", realization=realization, workers=2)
    for b in range(batch.size):
        one = run_spice(system, _sample(batch, b), analysis="op", realization=realization)
        for name in one.state.tension:
            for res in (whole, pooled):
                np.testing.assert_allclose(res.state.tension[name][b], one.state.tension[name][0], rtol=0,
                                           atol=BATCH_TOL)
                np.testing.assert_allclose(res.state.mean[name][b], one.state.mean[name][0], rtol=0, atol=BATCH_TOL)
        for key in one.state.gates:
            np.testing.assert_allclose(whole.state.gates[key][b], one.state.gates[key][0], rtol=0, atol=BATCH_TOL)


def test_tran_worker_pool_equals_one_process_at_a_time() -> None:
    system, batch = _case(size=3)
    serial = run_spice(system, batch, analysis="tran", duration=4.0)
    pooled = run_spice(system, batch, analysis="tran", duration=4.0, workers=3)
    for name in serial.trace.tension:
        np.testing.assert_array_equal(serial.trace.tension[name], pooled.trace.tension[name])
        np.testing.assert_array_equal(serial.trace.mean[name], pooled.trace.mean[name])


def test_realizations_read_back_into_the_same_state() -> None:
    system, batch = _case(size=2)
    a = run_spice(system, batch, analysis="op", realization="pair")
    b = run_spice(system, batch, analysis="op", realization="differential")
    assert a.settle["realization"] == "pair" and b.settle["realization"] == "differential"
    assert a.settle["solver_options"]["pivrel"] == "1e-06" and "pivrel" not in b.settle["solver_options"]
    for name in a.state.mean:
        np.testing.assert_allclose(a.state.mean[name], b.state.mean[name], rtol=0, atol=REALIZATION_TOL)
        np.testing.assert_allclose(a.state.tension[name], b.state.tension[name], rtol=0, atol=REALIZATION_TOL)
        np.testing.assert_allclose(a.state.plus(name), b.state.plus(name), rtol=0, atol=REALIZATION_TOL)
    assert set(a.state.gates) == set(b.state.gates) and a.state.gates
    for key in a.state.gates:
        np.testing.assert_allclose(a.state.gates[key], b.state.gates[key], rtol=0, atol=REALIZATION_TOL)


def test_split_work_is_contiguous_and_bounded() -> None:
    assert split_work(5, 2) == [range(0, 2), range(2, 5)] or split_work(5, 2) == [range(0, 3), range(3, 5)]
    assert split_work(2, 8) == [range(0, 1), range(1, 2)]
    assert sum(len(r) for r in split_work(17, 4)) == 17 and len(split_work(17, 4)) == 4


def test_another_ngspice_by_flag_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system, batch = _case(size=1)
    real = os.path.realpath(__import__("shutil").which("ngspice"))
    other = tmp_path / "my ngspice build" / "ngspice"
    other.parent.mkdir()
    other.symlink_to(real)
    res = run_spice(system, batch, analysis="op", ngspice=str(other))
    assert res.settle["ngspice"] == str(other) and res.settle["ngspice_version"].startswith("ngspice-")
    monkeypatch.setenv("HWBP_NGSPICE", str(other))
    assert run_spice(system, batch, analysis="op").settle["ngspice"] == str(other)
    monkeypatch.setenv("HWBP_NGSPICE", str(tmp_path / "nope"))
    with pytest.raises(BackendError, match=r"^HWBP_NGSPICE: ngspice executable .*nope' not found"):
        run_spice(system, batch, analysis="op")
    with pytest.raises(BackendError, match=r"^--ngspice: ngspice executable .*nope' not found"):
        run_spice(system, batch, analysis="op", ngspice=str(tmp_path / "nope"))


@pytest.mark.parametrize("bad", [{"workers": 0}, {"runner": "shared", "workers": 2},
                                 {"runner": "shared", "ngspice": "/usr/bin/ngspice"}, {"realization": "quad"}])
def test_bad_options_are_one_line_errors(bad: dict) -> None:
    system, batch = _case(size=1)
    with pytest.raises(ConfigError):
        run_spice(system, batch, analysis="op", **bad)


def test_replacement_synapse_cell_is_instantiated_and_agrees_with_inline_elements(tmp_path: Path) -> None:
    from hwbp.targets.spice.build import build_circuit
    from hwbp.targets.spice.model import CELLS_DIR, SpiceOptions
    from hwbp.targets.spice.writer import NgspiceWriter

    system, batch = _case(size=2)
    mine = tmp_path / "hwbp_synapse.cir"
    mine.write_text((CELLS_DIR / "hwbp_synapse.cir").read_text())
    text = NgspiceWriter().write(build_circuit(system, SpiceOptions(cells={"synapse": str(mine)})))
    assert "\nXs_" in text and "\nGsb_" not in text and "\nGsf_" in text  # input layer stays inline
    inline = run_spice(system, batch, analysis="op")
    cell = run_spice(system, batch, analysis="op", cell_files={"synapse": str(mine)})
    for name in inline.state.tension:
        np.testing.assert_allclose(cell.state.tension[name], inline.state.tension[name], rtol=0, atol=BATCH_TOL)


def test_written_conductances_read_back_to_the_same_doubles() -> None:
    from hwbp.targets.spice.build import build_circuit
    from hwbp.targets.spice.model import SynapseArray
    from hwbp.targets.spice.writer import NgspiceWriter

    system, _ = _case(size=1)
    c = build_circuit(system)
    text = NgspiceWriter().write(c)
    values = {ln.split()[0]: float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(("Gsf_", "Gsb_"))}
    arrays = [i for s in c.sections for i in s.items if isinstance(i, SynapseArray)]
    n = 0
    for a in arrays:
        for (j, i), g in np.ndenumerate(a.conductance_s):
            assert values[f"Gsf{a.prefix[2:]}_{j}_{i}"] == g
            if a.gate is not None:
                assert values[f"Gsb{a.prefix[2:]}_{j}_{i}"] == g
            n += 1
    assert n == c.synapse_count > 0
