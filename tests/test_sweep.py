"""Sweeps on a real dask.distributed LocalCluster: same numbers whatever the workers,
failed tasks as rows, resuming after a kill without redoing rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwbp.errors import ConfigError
from hwbp.sweep import columns, load_spec, run_sweep, run_task, spec_from_mapping
from hwbp.sweep.report import csv_text, summary_markdown, write_results

ROOT = Path(__file__).resolve().parent.parent

SPEC = """
[sweep]
random_batch = 6
loss = "mse"
beta = 0.5
instances = {instances}
seed = 2

[model]
sizes = [4, 6, 6, 3]
activation = "tanh"

[hardware]
weights = {{ bits = 6 }}

[grid]
"mismatch.sigma" = [0.05, 0.2]
"mismatch.correlation" = [0.0, 1.0]

[backends.reference]
mode = "{mode}"
"""


def _spec(tmp_path: Path, instances: int = 3, mode: str = "steady", extra: str = ""):
    p = tmp_path / "spec.toml"
    p.write_text(SPEC.format(instances=instances, mode=mode) + extra)
    return load_spec(p)


def test_tasks_and_rows_are_pure(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    tasks = spec.tasks()
    assert len(tasks) == 4 * 3 and [t.id for t in tasks] == list(range(12))
    r1, r2 = run_task(spec, tasks[5]), run_task(spec, tasks[5])
    r1.pop("_seconds"), r2.pop("_seconds")
    assert r1 == r2 and r1["error"] == ""
    # correlation 1: exact credit for the own network; the nominal one differs
    exact = [run_task(spec, t) for t in tasks if dict(t.values)["mismatch.correlation"] == 1.0]
    assert all(r["rel_err_own"] <= 1e-9 and r["rel_err_nominal"] > 1e-3 for r in exact)
    cols = columns(spec)
    assert "cos_own[" + "fc1.weight]" in cols and cols[-1] == "error"


def test_failed_task_is_a_row(tmp_path: Path) -> None:
    spec = spec_from_mapping({"sweep": {"model": "missing.onnx", "instances": 1}}, base=tmp_path)
    row = run_task(spec, spec.tasks()[0])
    assert "not found" in row["error"] and "\n" not in row["error"]
    text = summary_markdown([row], spec)
    assert "Failed rows (1)" in text


def test_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        spec_from_mapping({"sweep": {}})
    with pytest.raises(ConfigError, match="sigma"):
        spec_from_mapping({"model": {"sizes": [2, 2]}, "grid": {"mismatch.sigma": [-1.0]}})
    with pytest.raises(ConfigError, match="does not realize"):
        spec_from_mapping({"model": {"sizes": [2, 2]}, "grid": {"noise.rms_V": [1e-3]},
                           "backends": {"spice": {}}})
    with pytest.raises(ConfigError, match="no option"):
        spec_from_mapping({"model": {"sizes": [2, 2]}, "backends": {"reference": {"bogus": 1}}})


@pytest.mark.slow
def test_two_workers_same_csv_as_one(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    one = run_sweep(spec, tmp_path / "one", workers=1)
    two = run_sweep(spec, tmp_path / "two", workers=2)
    cols = columns(spec)
    assert csv_text(one, cols) == csv_text(two, cols)
    assert len(one) == 12 and not any(r["error"] for r in one)
    paths = write_results(two, spec, tmp_path / "two", cols)
    assert all(p.stat().st_size > 0 for p in paths)
    # running again on a finished directory does nothing and gives the same rows
    again = run_sweep(spec, tmp_path / "one", workers=1)
    assert csv_text(again, cols) == csv_text(one, cols)


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_rows(tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(SPEC.format(instances=3, mode="continuous") + 'dt = 0.05\nduration = 10.0\n')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hwbp", "sweep", str(spec_path), "-o", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    rows = out / "rows.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if rows.is_file() and len(rows.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its local workers
    proc.wait()
    before = {json.loads(line)["id"]: line for line in rows.read_text().splitlines() if line.endswith("}")}
    assert 2 <= len(before) < 12, len(before)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {len(before)} of 12 rows" in r.stdout
    assert f"({12 - len(before)} run now" in r.stdout
    lines = rows.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == list(range(12))  # every row once: none redone
    for i, line in before.items():
        assert line in lines  # the rows of the killed run are kept as they were
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 13


def test_changed_spec_refuses_the_directory(tmp_path: Path) -> None:
    spec = _spec(tmp_path, instances=1)
    from hwbp.sweep.run import _prepare

    _prepare(spec, tmp_path / "o")
    other = _spec(tmp_path, instances=2)
    with pytest.raises(ConfigError, match="different sweep"):
        _prepare(other, tmp_path / "o")


def test_cli_sweep_bad_input_is_exit_2(tmp_path: Path) -> None:
    from hwbp.cli import main

    assert main(["sweep", str(tmp_path / "missing.toml"), "-o", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nsizes = [2, 2]\n[grid]\n"mismatch.sigmaa" = [0.1]\n')
    assert main(["sweep", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert main(["sweep", str(bad), "-o", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://x:1"]) == 2


def test_spice_rows_match_reference_rows(tmp_path: Path) -> None:
    """The same instance on both backends gives the same row (ngspice .op to 1e-9)."""
    from spice_helpers import require_ngspice

    require_ngspice()
    spec = _spec(tmp_path, instances=1, extra='\n[backends.spice]\nanalysis = "op"\n')
    tasks = {(t.point, t.backend): t for t in spec.tasks()}
    for point in (0, 3):
        ref, sp = run_task(spec, tasks[(point, "reference")]), run_task(spec, tasks[(point, "spice")])
        assert sp["error"] == "" and ref["seed"] == sp["seed"]
        for col in ("cos_nominal", "cos_own", "rel_err_own", "loss_circuit"):
            assert sp[col] == pytest.approx(ref[col], rel=1e-9, abs=1e-12), col


_BAD_SPECS = [
    ("sweep = 5\n", "sweep must be a \\[sweep\\] table"),
    ('hardware = 5\n[model]\nsizes = [2, 2]\n', "hardware must be a \\[hardware\\] table"),
    ('[model]\nsizes = [2, 2]\n[backends]\nreference = 5\n', "backends.reference must be a table"),
    ('model = "x.onnx"\n', "model must be a \\[model\\] table.*sweep.model"),
    ('[model]\nsizes = [8, "a", 4]\n', "sizes holds 'a'"),
    ('[model]\nsizes = [8, 2.5, 4]\n', "sizes holds 2.5"),
    ('[model]\nsizes = [2, 2]\ngain = "x"\n', "gain has the wrong type"),
    ('[model]\nsizes = [2, 2]\nseed = "x"\n', "seed has the wrong type"),
    ('[sweep]\nbeta = 0\n[model]\nsizes = [2, 2]\n', "beta must be a finite number > 0"),
    ('[sweep]\ninstances = 100000000\n[model]\nsizes = [2, 2]\n', "instances must be 1..100000"),
    ('[model]\nsizes = [2, 2]\n[grid]\n' + "".join(f'"mismatch.sigma{"" if i == 0 else i}" = '
                                                  f'[{", ".join(str(0.01 * j) for j in range(10))}]\n'
                                                  for i in range(8)), "the sweep has 100000000 rows"),
    ('[sweep]\nmodel = "missing.onnx"\n', "not found"),
]


@pytest.mark.parametrize("k", range(len(_BAD_SPECS)))
def test_bad_specs_are_one_line_exit_2_and_write_nothing(k: int, tmp_path: Path, capsys) -> None:
    from hwbp.cli import main

    text, match = _BAD_SPECS[k]
    p = tmp_path / "s.toml"
    p.write_text(text)
    t0 = time.monotonic()
    assert main(["sweep", str(p), "-o", str(tmp_path / "o")]) == 2
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(match, err[0]), err
    assert not (tmp_path / "o").exists()


def test_bad_scheduler_is_one_line(tmp_path: Path, capsys) -> None:
    from hwbp.cli import main

    p = tmp_path / "s.toml"
    p.write_text('[model]\nsizes = [2, 2]\n')
    assert main(["sweep", str(p), "-o", str(tmp_path / "o"), "--scheduler", "%%%"]) == 2
    assert "not a Dask scheduler address" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_start_that_failed_leaves_nothing_to_resume(tmp_path: Path, capsys) -> None:
    from hwbp.cli import main
    from hwbp.io import save_model
    from hwbp.models import random_mlp

    p = tmp_path / "s.toml"
    p.write_text('[sweep]\nmodel = "m.hwbp"\nrandom_batch = 2\n')
    assert main(["sweep", str(p), "-o", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    save_model(random_mlp([3, 4, 2], seed=0), tmp_path / "m.hwbp")
    assert main(["sweep", str(p), "-o", str(tmp_path / "o"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "resuming" not in out and "1 rows (1 run now, 0 failed)" in out


@pytest.mark.slow
def test_failed_rows_are_retried_and_exit_1(tmp_path: Path, capsys) -> None:
    import shutil

    from hwbp.cli import main

    exe = tmp_path / "bin" / "ngspice"  # absent on the first run: a worker without ngspice
    spec = tmp_path / "s.toml"
    spec.write_text(f'[sweep]\nrandom_batch = 2\ninstances = 2\n[model]\nsizes = [3, 4, 2]\n'
                    f'[backends.spice]\nngspice = "{exe}"\n')
    cmd = ["sweep", str(spec), "-o", str(tmp_path / "o"), "--workers", "1"]
    assert main(cmd) == 1
    r = capsys.readouterr()
    assert "2 of 2 rows failed" in r.err and r.err.count("not found or not executable") == 1, r.err
    assert "2 rows (0, 1): BackendError" in r.err
    assert main(cmd + ["--no-retry"]) == 1
    r = capsys.readouterr()
    assert "keeping the 2 that failed (--no-retry)" in r.out
    assert "(0 run now, 2 failed)" in r.out
    exe.parent.mkdir()
    exe.symlink_to(shutil.which("ngspice"))  # the worker is fixed
    assert main(cmd) == 0, capsys.readouterr().err
    r = capsys.readouterr()
    assert "retrying the 2 that failed" in r.out and "(2 run now, 0 failed)" in r.out
    rows = [json.loads(line) for line in (tmp_path / "o" / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and not any(row["error"] for row in rows)