"""The lava backend and target on the command line (the lines of docs/backends/lava.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hwbp.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODEL, BATCH = str(EXAMPLES / "mlp_digits.onnx"), str(EXAMPLES / "digits_batch.npz")


def test_bad_flags_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["verify", MODEL, "--backend", "lava", "--dt", "2"]) == 2
    assert main(["simulate", MODEL, "--backend", "lava", "--on-chip", "-o", str(tmp_path / "x")]) == 2
    assert main(["verify", MODEL, "--backend", "reference", "--weight-bits", "8"]) == 2
    err = capsys.readouterr().err
    assert "--dt" in err and "--on-chip" in err and "--weight-bits" in err


def test_readme_lava_lines_run(tmp_path: Path, monkeypatch) -> None:
    """The Lava page's first code block (all but train, which trains a full epoch), verbatim."""
    import re
    import shlex
    import shutil

    page = (Path(__file__).resolve().parents[1] / "docs" / "backends" / "lava.md").read_text()
    block = page.split("```")[1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("hwbp ")]
    assert len(lines) == 4
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for line in lines:
        if " train " in line:
            continue
        args = shlex.split(re.sub(r"\s+", " ", line))[1:]
        assert main(args) == 0, line
    assert (tmp_path / "sims" / "lava_mlp" / "run_lava.py").exists()
    r = json.loads((tmp_path / "out" / "lava_fixed.json").read_text())
    assert r["passed"] and r["backend"] == "lava" and r["backend_options"]["weight_bits"] == 8
    assert r["settle"]["steps"] == 6 and r["settle"]["lava_steps"] == 7
    assert set(r["readout"].values()) == {"gate"}  # the processes' own e
    with np.load(tmp_path / "out" / "lava" / "state.npz") as z:
        assert z["grad/fc1.weight"].shape == (32, 64)
