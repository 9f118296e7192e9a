"""The lava backend and target on the command line (the README's lines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwbp.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODEL, BATCH = str(EXAMPLES / "mlp_digits.onnx"), str(EXAMPLES / "digits_batch.npz")


def test_simulate_and_verify(tmp_path: Path) -> None:
    assert main(["simulate", MODEL, "--backend", "lava", "--precision", "float", "--steps", "6", "--batch", BATCH,
                 "-o", str(tmp_path / "sim")]) == 0
    with np.load(tmp_path / "sim" / "state.npz") as z:
        assert z["grad/fc1.weight"].shape == (32, 64)
    rep = tmp_path / "fixed.json"
    assert main(["verify", MODEL, "--backend", "lava", "--precision", "fixed", "--weight-bits", "8", "--loss", "ce",
                 "--batch", BATCH, "--min-cosine", "0.999", "--rtol", "0.1", "--report", str(rep)]) == 0
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


@pytest.mark.slow
def test_train_on_chip(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.onnx"
    assert main(["train", MODEL, "--backend", "lava", "--precision", "fixed", "--on-chip", "--optimizer", "sgd",
                 "--lr", "0.1", "--epochs", "1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    acc = float(text.split("test accuracy ")[1].split()[0])
    assert out.exists() and acc > 0.9  # the shipped model is trained; on-chip SGD keeps it good
