"""Negative controls: a SPICE derivative cell that is wrong must make verification FAIL.

For every activation f, a 2-layer net uses f only in its first layer (whose gate
feeds nothing downstream: input synapses carry no backward current), and the cell
``hwbp_act_<f>.cir`` is replaced, through ``--cells DIR``, by a copy whose gate
source doubles f'.  The tensions stay exact; only the first layer's weight gradient,
read from the gate nodes, is wrong: exactly what a readout that recomputed f' from
the means would miss.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hwbp.cli import main
from hwbp.io import save_model
from hwbp.ir.activations import ACTIVATIONS
from hwbp.models import random_mlp
from hwbp.targets.spice.model import CELLS_DIR

from spice_helpers import require_ngspice


def _model(tmp_path: Path, act: str) -> Path:
    out_act = "tanh" if act == "identity" else "identity"
    gain = {"sigmoid": 4.0, "relu": 1.4, "leaky_relu": 1.4}.get(act, 1.2)
    path = tmp_path / f"{act}.hwbp"
    save_model(random_mlp([4, 5, 3], activation=act, output_activation=out_act, gain=gain, seed=3), path)
    return path


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_a_wrong_derivative_cell_fails_verification(act: str, tmp_path: Path, capsys) -> None:
    require_ngspice()
    model = _model(tmp_path, act)
    text = (CELLS_DIR / f"hwbp_act_{act}.cir").read_text()
    assert text.count("Bg gate 0 V=(") == 1
    cells = tmp_path / "cells"
    cells.mkdir()
    (cells / f"hwbp_act_{act}.cir").write_text(text.replace("Bg gate 0 V=(", "Bg gate 0 V=2*("))
    args = ["verify", str(model), "--backend", "spice", "--random-batch", "4"]
    assert main(args) == 0, "the shipped cells must pass"
    assert main(args + ["--cells", str(cells)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "fc1.weight" in out


def test_cells_dir_must_hold_a_known_cell(tmp_path: Path, capsys) -> None:
    model = _model(tmp_path, "tanh")
    (tmp_path / "empty").mkdir()
    assert main(["verify", str(model), "--backend", "spice", "--cells", str(tmp_path / "empty")]) == 2
    assert "holds none of the cell files" in capsys.readouterr().err
