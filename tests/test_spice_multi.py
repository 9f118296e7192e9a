"""Several ``.tran`` samples per ngspice process, and batch chunks on a Dask cluster:
the same results as one sample (or one chunk) at a time (real ngspice, a real
``distributed.LocalCluster``; nothing is mocked)."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.initial import initial_state
from hwbp.errors import ConfigError
from hwbp.lower import lower
from hwbp.state import State
from hwbp.targets.spice.backend import run_spice
from hwbp.types import Batch

from conftest import make_batch
from spice_helpers import mlp, require_ngspice

#: ``.op`` chunks solved as one sweep vs several: Newton stops within vntol (1e-12 V)
#: of the fixed point from a different starting point (as in test_spice_batch).
BATCH_TOL = 1e-12


@pytest.fixture(autouse=True)
def _ngspice() -> None:
    require_ngspice()


def _case(size: int):
    g = mlp(3, 6, "tanh", seed=2).with_loss("ce")
    return lower(g), make_batch(g, size=size, seed=4, loss="ce")


def _row(state: State, b: int) -> State:
    return State({k: v[b:b + 1] for k, v in state.mean.items()}, {k: v[b:b + 1] for k, v in state.tension.items()})


def _assert_same_run(a, b, rows=slice(None)) -> None:
    """Traces and final states (means, tensions, gates) bit for bit."""
    for part in ("mean", "tension", "gates"):
        for k, v in getattr(a.trace, part).items():
            np.testing.assert_array_equal(v[:, rows], getattr(b.trace, part)[k], err_msg=f"trace {part} {k}")
        for k, v in getattr(a.state, part).items():
            np.testing.assert_array_equal(v[rows], getattr(b.state, part)[k], err_msg=f"final {part} {k}")


@pytest.mark.parametrize("realization", ["differential", "pair"])
def test_tran_batch_in_one_process_equals_each_sample_alone(realization: str) -> None:
    system, batch = _case(size=3)
    start = initial_state(system, batch, "random", 5)
    whole = run_spice(system, batch, analysis="tran", duration=4.0, initial=start, realization=realization)
    assert whole.trace.tension[system.loss.population].shape[1] == 3
    for b in range(batch.size):
        one = run_spice(system, Batch({k: v[b:b + 1] for k, v in batch.x.items()}, batch.y[b:b + 1]),
                        analysis="tran", duration=4.0, initial=_row(start, b), realization=realization)
        _assert_same_run(whole, one, slice(b, b + 1))
    # a negative control: another sample's run is not this one's
    other = run_spice(system, Batch({k: v[1:2] for k, v in batch.x.items()}, batch.y[1:2]), analysis="tran",
                      duration=4.0, initial=_row(start, 1), realization=realization)
    with pytest.raises(AssertionError):
        _assert_same_run(whole, other, slice(0, 1))


@pytest.mark.slow
def test_dask_local_cluster_and_scheduler_address_equal_local_processes() -> None:
    from distributed import LocalCluster

    system, batch = _case(size=4)
    start = initial_state(system, batch, "random", 1)
    serial_op = run_spice(system, batch, analysis="op")
    threads_op = run_spice(system, batch, analysis="op", workers=2)
    dask_op = run_spice(system, batch, analysis="op", workers=2, scheduler="local")
    assert dask_op.settle["scheduler"] == "local"
    assert dask_op.settle["ngspice_ran"] and dask_op.settle["ngspice_ran"][0].count("ngspice-") >= 1
    for k in serial_op.state.tension:  # the same two chunks: bit for bit; one sweep vs two: to Newton's tolerance
        np.testing.assert_array_equal(dask_op.state.tension[k], threads_op.state.tension[k])
        np.testing.assert_allclose(dask_op.state.tension[k], serial_op.state.tension[k], rtol=0, atol=BATCH_TOL)
    serial_tran = run_spice(system, batch, analysis="tran", duration=3.0, initial=start)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = run_spice(system, batch, analysis="tran", duration=3.0, initial=start,
                           scheduler=cluster.scheduler_address)
    assert remote.settle["scheduler"] == cluster.scheduler_address
    _assert_same_run(serial_tran, remote)


@pytest.mark.parametrize("bad", [{"scheduler": ""}, {"runner": "shared", "scheduler": "local"}, {"scheduler": 3},
                                 {"scheduler": "bogus"}])
def test_bad_scheduler_options_are_one_line_errors(bad: dict) -> None:
    system, batch = _case(size=1)
    with pytest.raises(ConfigError, match="--spice-scheduler") as err:
        run_spice(system, batch, analysis="op", **bad)
    assert "\n" not in str(err.value)


def test_malformed_scheduler_address_exits_2(tmp_path, capsys) -> None:
    from hwbp.cli import main
    from hwbp.io import save_model
    from hwbp.models import random_mlp

    save_model(random_mlp([3, 4, 2], seed=1), tmp_path / "m.hwbp")
    assert main(["verify", str(tmp_path / "m.hwbp"), "--backend", "spice", "--random-batch", "2",
                 "--spice-scheduler", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a Dask scheduler address" in err[0]


def test_tran_sample_netlists_expand_to_each_samples_whole_netlist() -> None:
    """``s<b>.cir`` with its ``.include`` lines replaced by the files they name is, line
    for line, the netlist a process of its own would run for sample ``b``."""
    from hwbp.targets.spice.build import build_circuit
    from hwbp.targets.spice.diagnose import tran_options
    from hwbp.targets.spice.ngspice import BatchRunner

    system, batch = _case(size=3)
    c = build_circuit(system)
    stims = [stimulus_of(c, batch, b) for b in range(3)]
    ics = [{n: 0.1 * b + 0.01 * i for i, n in enumerate(c.saved_nodes()[:20])} for b in range(3)]
    runner, opts = BatchRunner(), tran_options(5e-8, 1e-7)
    files = runner._tran_files(c, stims, ics, ".tran 5e-08 4e-06 0 5e-08", c.saved_nodes(), opts, first=7)
    assert sorted(k for k in files if k.startswith("s")) == ["s7.cir", "s8.cir", "s9.cir"]
    for b in range(3):
        whole = runner.writer.write(c, stimulus=stims[b], analyses=(".tran 5e-08 4e-06 0 5e-08",),
                                    save=c.saved_nodes(), initial=ics[b], extra_options=opts)
        expanded = "".join(files[ln.split()[1]] if ln.startswith(".include ") else ln + "\n"
                           for ln in files[f"s{7 + b}.cir"].splitlines())
        assert expanded == whole
    assert files["s7.cir"] != files["s8.cir"]  # the samples' own lines do differ
    assert sum(len(t) for k, t in files.items() if k.startswith("s")) < sum(len(t) for t in files.values()) / 2


def stimulus_of(circuit, batch, b):
    from hwbp.targets.spice.build import stimulus

    return stimulus(circuit, {k: v[b] for k, v in batch.x.items()}, batch.y[b])


@pytest.mark.slow
def test_cli_verify_on_a_local_dask_cluster(tmp_path, capsys) -> None:
    import json

    from hwbp.cli import main
    from hwbp.io import save_model

    save_model(mlp(3, 6, "tanh", seed=2), tmp_path / "m.hwbp")
    report = tmp_path / "r.json"
    code = main(["verify", str(tmp_path / "m.hwbp"), "--backend", "spice", "--random-batch", "3",
                 "--spice-scheduler", "local", "--spice-workers", "2", "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    settle = json.loads(report.read_text())["settle"]
    assert settle["scheduler"] == "local" and settle["workers"] == 2
    assert any(s.startswith("/") and "ngspice-" in s for s in settle["ngspice_ran"])


def test_tran_samples_of_another_layout_are_an_error() -> None:
    """Every sample of a chunk must set the same sources and initial conditions (the
    shared lines are written once): a sample that does not is refused, never cut."""
    from hwbp.errors import BackendError
    from hwbp.targets.spice.build import build_circuit
    from hwbp.targets.spice.diagnose import tran_options
    from hwbp.targets.spice.ngspice import BatchRunner

    system, batch = _case(size=2)
    c = build_circuit(system)
    stims = [stimulus_of(c, batch, b) for b in range(2)]
    nodes = c.saved_nodes()
    ics = [{n: 0.1 for n in nodes[:20]}, {n: 0.1 for n in nodes[:19]}]
    with pytest.raises(BackendError, match="sample 1 sets other sources or initial conditions"):
        BatchRunner()._tran_files(c, stims, ics, ".tran 5e-08 4e-06 0 5e-08", nodes, tran_options(5e-8, 1e-7))
