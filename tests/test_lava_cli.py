"""The lava backend and target on the command line (the README's lines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hwbp.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODEL, BATCH = str(EXAMPLES / "mlp_digits.onnx"), str(EXAMPLES / "digits_batch.npz")


def test_simulate_and_verify(tmp_path: Path) -> None:
    small = str(tmp_path / "b.npz")
    with np.load(BATCH) as z:
        np.savez(small, x=z["x"][:6], y=z["y"][:6])
    assert main(["simulate", MODEL, "--backend", "lava", "--precision", "float", "--steps", "6", "--batch", small,
                 "-o", str(tmp_path / "sim")]) == 0
    with np.load(tmp_path / "sim" / "state.npz") as z:
        assert z["grad/fc1.weight"].shape == (32, 64)  # (out, in)
    rep = tmp_path / "fixed.json"
    assert main(["verify", MODEL, "--backend", "lava", "--precision", "fixed", "--weight-bits", "8", "--loss", "ce",
                 "--batch", small, "--min-cosine", "0.999", "--rtol", "0.1", "--report", str(rep)]) == 0
    r = json.loads(rep.read_text())
    assert r["backend"] == "lava" and r["backend_options"]["weight_bits"] == 8
    assert r["settle"]["steps"] == 6 and r["settle"]["lava_steps"] == 7
    assert set(r["readout"].values()) == {"gate"}  # the processes' own e


def test_bad_flags_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["verify", MODEL, "--backend", "lava", "--dt", "2"]) == 2
    assert main(["simulate", MODEL, "--backend", "lava", "--on-chip", "-o", str(tmp_path / "x")]) == 2
    assert main(["verify", MODEL, "--backend", "reference", "--weight-bits", "8"]) == 2
    err = capsys.readouterr().err
    assert "--dt" in err and "--on-chip" in err and "--weight-bits" in err
