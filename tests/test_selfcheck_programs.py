"""The stand-alone programs check themselves: ``run_lava.py`` and the Brian2 script
compare their gradients with the exact ones stored at compile time (hwbp's oracle),
print the table of ``hwbp verify`` and PASSED, run with hwbp blocked and print no
warning; with one weight altered in their parameter file they print FAILED and exit 1."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from hwbp.cli import main
from hwbp.io import npz_bytes, save_model
from hwbp.models import random_resmlp
from hwbp.targets.selfcheck import _metrics, check
from hwbp.verify.compare import metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "mlp_digits.onnx"
BLOCK_HWBP = ("import sys, runpy; sys.modules['hwbp'] = None; sys.argv = [{prog!r}]; "
              "runpy.run_path({prog!r}, run_name='__main__')")


def _alter(npz: pathlib.Path, key: str) -> None:
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    w = arrays[key].copy()
    w.flat[0] += 0.5
    arrays[key] = w
    npz.write_bytes(npz_bytes(arrays))


def _run(prog: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_HWBP.format(prog=prog.name)], cwd=prog.parent,
                          capture_output=True, text=True, timeout=300)


def test_check_metrics_are_verify_metrics() -> None:
    rng = np.random.default_rng(0)
    for a, b in [(rng.normal(size=(3, 4)), rng.normal(size=(3, 4))), (np.zeros(3), np.zeros(3)),
                 (np.zeros(3), np.ones(3)), (np.ones(2), np.ones(2))]:
        m = metrics(a, b)
        assert _metrics(a, b) == (m.rel_err, m.cosine, m.max_abs_err)
    text, ok = check({"w": np.ones(3)}, {"w": np.ones(3), "b": np.ones(1)}, 1e-6, 1 - 1e-6)
    assert not ok and "missing" in text and text.splitlines()[-1].startswith("FAILED")


@pytest.mark.slow
def test_lava_program_passes_then_fails_on_an_altered_weight(tmp_path) -> None:
    out = tmp_path / "prog"
    assert main(["compile", str(MODEL), "--target", "lava", "-o", str(out)]) == 0
    r = _run(out / "run_lava.py")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == ""  # no warnings on a clean run
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["tensor", "shape", "rel_err", "cosine", "max_abs_err"]
    rows = {ln.split()[0]: ln.split() for ln in lines[3:] if ln.strip() and not ln.startswith("PASSED")}
    assert {"fc1.weight", "fc3.bias", "dl/d[act1]"} <= set(rows)
    assert max(float(r[2]) for r in rows.values()) < 1e-12  # float Lava, unit steps: backprop to round-off
    assert lines[-1].startswith("PASSED")
    _alter(out / "params.npz", "term/act1/0/weight")
    r = _run(out / "run_lava.py")
    assert r.returncode == 1 and r.stdout.splitlines()[-1].startswith("FAILED"), r.stdout[-2000:]


@pytest.mark.slow
def test_brian2_script_passes_then_fails_on_an_altered_weight(tmp_path) -> None:
    graph = random_resmlp(3, 4, 3, 1, activation="tanh", seed=6, name="res")
    save_model(graph, tmp_path / "res.hwbp")
    out = tmp_path / "out"
    assert main(["compile", str(tmp_path / "res.hwbp"), "--loss", "ce", "--target", "brian2", "-o", str(out),
                 "--samples", "3", "--dt", "0.05"]) == 0
    r = _run(out / "res_brian2.py")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["tensor", "shape", "rel_err", "cosine", "max_abs_err"]
    assert lines[-1].startswith("PASSED")
    names = {ln.split()[0] for ln in lines[3:-2]}
    assert set(graph.parameters()) | {"dl/d[stem_act]"} <= names
    _alter(out / "res_brian2.npz", "param/stem.weight")
    r = _run(out / "res_brian2.py")
    assert r.returncode == 1 and r.stdout.splitlines()[-1].startswith("FAILED"), r.stdout[-2000:]


def test_reference_is_stored_and_deterministic(tmp_path) -> None:
    for d in ("a", "b"):
        assert main(["compile", str(MODEL), "--target", "lava", "-o", str(tmp_path / d)]) == 0
    assert (tmp_path / "a" / "params.npz").read_bytes() == (tmp_path / "b" / "params.npz").read_bytes()
    with zipfile.ZipFile(io.BytesIO((tmp_path / "a" / "params.npz").read_bytes())) as z:
        names = z.namelist()
    assert "check/grad/fc1.weight.npy" in names and "check/y.npy" in names
