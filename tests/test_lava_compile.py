"""``hwbp compile --target lava``: a deterministic, self-contained program that runs
with numpy and lava-nc only (hwbp blocked) and prints the gradients hwbp reads from
the same Lava models."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from hwbp.backend import get_backend
from hwbp.cli import main
from hwbp.io import load_batch, load_model
from hwbp.lower import lower
from hwbp.verify import read_gradients

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "mlp_digits.onnx"
BATCH = ROOT / "examples" / "digits_batch.npz"
#: The program prints 7 significant digits.
PRINTED_RTOL = 1e-6

RUN = ("import sys, runpy; sys.modules['hwbp'] = None; sys.argv = ['run_lava.py', '--batch', {batch!r}]; "
       "runpy.run_path('run_lava.py', run_name='__main__')")


def _norms(stdout: str) -> dict[str, float]:
    rows = [line.split() for line in stdout.splitlines()[2:] if line.strip()]
    return {r[0]: float(r[2]) for r in rows}


@pytest.mark.parametrize("flags,options", [
    ([], {}),
    pytest.param(["--precision", "fixed", "--weight-bits", "8"], {"precision": "fixed", "weight_bits": 8},
                 marks=pytest.mark.slow),
])
def test_program_runs_without_hwbp_and_prints_the_gradients(tmp_path, flags, options, capsys) -> None:
    out = tmp_path / "prog"
    small = tmp_path / "batch.npz"
    with np.load(BATCH) as z:
        np.savez(small, x=z["x"][:4], y=z["y"][:4])
    assert main(["compile", str(MODEL), "--target", "lava", "-o", str(out), *flags]) == 0
    capsys.readouterr()
    r = subprocess.run([sys.executable, "-c", RUN.format(batch=str(small))], cwd=out, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    printed = _norms(r.stdout)
    g = load_model(MODEL).with_loss("mse")
    system, batch = lower(g), load_batch(small, g)
    res = get_backend("lava").simulate(system, batch, options)
    grads = read_gradients(system, res.state, batch).parameters
    assert set(printed) == set(grads)
    for name, value in grads.items():
        assert printed[name] == pytest.approx(float(np.linalg.norm(value)), rel=PRINTED_RTOL)


def test_emitted_files_are_deterministic(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        main(["compile", str(MODEL), "--target", "lava", "-o", str(d), "--precision", "fixed"])
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert pathlib.Path("params.npz") in files and pathlib.Path("run_lava.py") in files
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    with np.load(a / "params.npz", allow_pickle=False) as z:
        assert "topology" in z.files
