"""The SPICE cells of the activations against :mod:`hwbp.ir.activations`, pointwise,
at the kinks included: forward current ``f(a)/R`` and gate ``f'(a) * T`` solved by
ngspice ``.op`` for one cell instance per point."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwbp.ir.activations import ACTIVATIONS, get_activation
from hwbp.targets.spice.model import CELLS_DIR
from hwbp.targets.spice.raw import parse_raw

#: Pre-activations (V): the kinks of relu, relu6, hardtanh, clip (-1, 1.7), elu, leaky_relu, and
#: points on every branch of the piecewise erf of the gelu cell.
POINTS = (-9.0, -6.0, -2.3, -1.0, -0.4, 0.0, 1e-3, 0.5, 1.0, 1.7, 3.2, 6.0, 6.5, 8.49)
ALPHA = 0.7


def _deck(fn: str) -> str:
    cell = (CELLS_DIR / f"hwbp_act_{fn}.cir").read_text()
    extra = f" alpha={ALPHA!r}" if fn in ("leaky_relu", "elu") else " lo=-1 hi=1.7" if fn == "clip" else ""
    lines = ["* cell check", ".param hwbp_r=1000", cell, "Vt tn 0 DC 0.75"]
    for k, a in enumerate(POINTS):
        lines += [f"Va{k} a{k} 0 DC {a!r}", f"X{k} a{k} tn fd{k} g{k} hwbp_act_{fn}{extra}", f"Rf{k} fd{k} 0 1000"]
    lines += [".options reltol=1e-12 abstol=1e-18 vntol=1e-15", ".control", "set filetype=binary", "op",
              "write {raw} all", ".endc", ".end"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fn", sorted(ACTIVATIONS))
def test_cell_matches_activation_table(fn: str, tmp_path: Path) -> None:
    raw = tmp_path / "out.raw"
    deck = tmp_path / "deck.cir"
    deck.write_text(_deck(fn).replace("{raw}", str(raw)))
    proc = subprocess.run(["ngspice", "-b", str(deck)], capture_output=True, text=True, timeout=60)
    assert raw.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    vec = parse_raw(raw.read_bytes())[-1].vectors
    act = get_activation(fn)
    a = np.array(POINTS)
    p = (-1.0, 1.7) if fn == "clip" else ALPHA
    y = act.f(a, p)
    # the cell drives the current f(a)/R into fd, held by 1 kOhm: V(fd) = f(a)
    got_f = np.array([float(vec[f"fd{k}"][0]) for k in range(len(POINTS))])
    got_g = np.array([float(vec[f"g{k}"][0]) for k in range(len(POINTS))])
    np.testing.assert_allclose(got_f, y, rtol=1e-13, atol=1e-14, err_msg=f"{fn}: f")
    np.testing.assert_allclose(got_g, 0.75 * act.df(a, y, p), rtol=1e-13, atol=1e-14, err_msg=f"{fn}: f'")


def test_shipped_gelu_cells_are_the_generated_ones() -> None:
    from hwbp.targets.spice.gelu_cell import gelu_cell_text, gelu_tanh_cell_text

    assert (CELLS_DIR / "hwbp_act_gelu.cir").read_text() == gelu_cell_text()
    assert (CELLS_DIR / "hwbp_act_gelu_tanh.cir").read_text() == gelu_tanh_cell_text()


@pytest.mark.parametrize("value", [0.7978845608028654, 1e-3, -2.5, 1 / 3, 6.02214076e23, -1.2345678901234567e-9])
def test_spice_constant_reads_back_exactly(value: float) -> None:
    from hwbp.targets.spice.gelu_cell import spice_constant

    import re

    text = spice_constant(value)
    parts = re.findall(r"[-+]?[0-9.]+(?:e[-+]?[0-9]+)?", text)
    assert 1 <= len(parts) <= 2 and "".join(parts) == text.strip("()")
    assert all(len(p.lstrip("+-").split("e")[0].replace(".", "").lstrip("0")) <= 10 for p in parts)
    assert sum(float(p) for p in parts) == value
