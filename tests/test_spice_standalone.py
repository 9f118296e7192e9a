"""`hwbp compile --target spice` netlists run on their own: `ngspice -b file.cir` solves
.op and prints each population's node voltages and tensions, next to the expected
beta * dl/dx, for the sample given with --batch/--sample (or 0 V placeholders)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwbp.cli import EXAMPLE_MODEL, main
from hwbp.io import load_batch, load_model
from hwbp.oracle.backprop import exact_gradients
from hwbp.types import Batch

from spice_helpers import require_ngspice

BATCH = EXAMPLE_MODEL.with_name("digits_batch.npz")
#: ngspice .op (reltol 1e-9, vntol 1e-12 V) printed with 15 digits.
TOL = 1e-9


def run_netlist(out: Path) -> tuple[str, str]:
    """``ngspice -b <model>.cir`` in ``out``: (netlist text, stdout)."""
    require_ngspice()
    (cir,) = out.glob("*.cir")
    proc = subprocess.run(["ngspice", "-b", cir.name], cwd=out, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return cir.read_text(), proc.stdout


def parse(text: str, stdout: str) -> tuple[dict[str, float], dict[str, float]]:
    """(printed tension, expected tension from the comments), keyed ``population[j]``."""
    expected = {k: float(v) for k, v in re.findall(r"^\* (\S+\[\d+\]): expected tension beta\*dl/dx = (\S+) V$",
                                                   text, flags=re.M)}
    printed = {}
    for key, value in re.findall(r"^(\S+\[\d+\]) expected tension.*\n.*\n.*\n.*= (\S+)$", stdout, flags=re.M):
        printed[key] = float(value)
    return printed, expected


def test_sample_applied_and_tensions_printed(tmp_path: Path) -> None:
    out = tmp_path / "net"
    assert main(["compile", str(EXAMPLE_MODEL), "--loss", "ce", "--beta", "0.5", "--target", "spice",
                 "--batch", str(BATCH), "--sample", "3", "-o", str(out)]) == 0
    text, stdout = run_netlist(out)
    assert "* sources: sample 3 of digits_batch.npz" in text
    graph = load_model(EXAMPLE_MODEL).with_loss("ce")
    batch = load_batch(BATCH, graph)
    x = batch.x["x"][3]
    assert re.search(rf"^Vx_\w+_5 \S+ 0 DC {x[5]!r}$", text, flags=re.M)
    printed, expected = parse(text, stdout)
    acts = exact_gradients(graph, Batch({"x": batch.x["x"][3:4]}, batch.y[3:4])).activations
    assert set(printed) == set(expected) and len(printed) == 32 + 32 + 10
    for pop in ("act1", "act2", "fc3"):
        want = 0.5 * acts[pop][0]
        got = np.array([printed[f"{pop}[{j}]"] for j in range(len(want))])
        note = np.array([expected[f"{pop}[{j}]"] for j in range(len(want))])
        np.testing.assert_allclose(note, want, rtol=0, atol=1e-15)  # the comments hold the oracle's values
        assert np.linalg.norm(got - want) <= TOL * np.linalg.norm(want), pop


def test_placeholders_said_in_header(tmp_path: Path) -> None:
    out = tmp_path / "net"
    assert main(["compile", str(EXAMPLE_MODEL), "--target", "spice", "-o", str(out)]) == 0
    text, stdout = run_netlist(out)
    assert "* sources: placeholders at 0 V" in text
    assert not re.search(r"^V[xy]_\S+ \S+ 0 DC (?!0$)", text, flags=re.M)
    printed, expected = parse(text, stdout)
    for key, want in expected.items():  # x = 0, y = 0: the oracle's tensions of that input
        assert abs(printed[key] - want) <= TOL * max(abs(want), 1e-3), key


@pytest.mark.parametrize("argv,match", [
    (["--sample", "0"], "--sample needs --batch"),
    (["--batch", str(BATCH), "--sample", "999"], "samples 0..31"),
])
def test_sample_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list, match: str) -> None:
    code = main(["compile", str(EXAMPLE_MODEL), "--target", "spice", "-o", str(tmp_path / "net"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and match in err[0], err
    assert not (tmp_path / "net").exists()
