"""Studies under ``sims/`` never overwrite their committed results by default: a reduced
or changed run writes to a scratch directory unless ``-o`` is given (``sims/outdir.py``);
``sims/depth`` has its own rule."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIMS = ROOT / "sims"
sys.path.insert(0, str(SIMS))
from outdir import add_out_arg, output_dir, scratch_dir  # noqa: E402

SCRIPTS = sorted(p for p in [*SIMS.glob("*.py"), *(SIMS / "codesign").glob("*.py")]
                 if p.name not in ("outdir.py", "common.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(SIMS)))
def test_every_study_takes_o_and_writes_only_there(script: Path) -> None:
    text = script.read_text()
    assert "add_out_arg(" in text or "parse_args(" in text and "from common import" in text
    writes = [ln for ln in text.splitlines() if re.search(r"write_text|write_bytes|atomic_write|savefig", ln)]
    for ln in writes:
        assert not re.search(r"\b(HERE|DATA)\s*/|ROOT\s*/\s*\"sims\"", ln), ln


def test_output_dir_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    add_out_arg(ap)
    committed = tmp_path / "committed"
    assert output_dir(ap, ap.parse_args([]), committed, "x") == committed
    assert output_dir(ap, ap.parse_args(["--workers", "1"]), committed, "x", neutral=("workers",)) == committed
    quick = output_dir(ap, ap.parse_args(["--quick"]), committed, "x")
    assert quick == scratch_dir("x") and quick.is_dir() and committed not in quick.parents
    assert "a run with --quick writes to" in capsys.readouterr().out
    assert output_dir(ap, ap.parse_args(["--quick", "-o", str(tmp_path / "o")]), committed, "x") == tmp_path / "o"


@pytest.mark.slow
def test_a_reduced_run_keeps_the_committed_results(tmp_path: Path) -> None:
    committed = SIMS / "spice_samples.md"
    before = committed.read_bytes()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    r = subprocess.run([sys.executable, str(SIMS / "spice_samples.py"), "--samples", "2", "--sizes", "3-3-2"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert committed.read_bytes() == before
    assert (tmp_path / "hwbp-sims" / "spice_samples" / "spice_samples.md").is_file()
    r = subprocess.run([sys.executable, str(SIMS / "codesign" / "bits.py"), "--help"], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "-o DIR" in r.stdout
