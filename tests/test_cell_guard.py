"""Replacement cells (``--cells DIR``) cannot reach outside the circuit.

ngspice reads directives by case-insensitive prefix, cuts ``;``/``$`` comments and joins
``+`` continuation lines, and runs ``*#`` comment lines as control commands: the cell
guard reads a cell the same way and refuses anything but subcircuits, elements and
``.param``/``.func``/``.model``.  The end-to-end case runs the real ngspice on a cell
that would ``touch`` a file if the guard let it through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hwbp.cli import main
from hwbp.errors import ConfigError
from hwbp.io import save_model
from hwbp.models import random_mlp
from hwbp.targets.spice.model import CELLS_DIR, DEFAULT_CELLS, load_cell

_HEAD = ".subckt hwbp_act_tanh a tn fd gate\n"
_BODY = "Bf 0 fd I=(tanh(V(a)))/{hwbp_r}\nBg gate 0 V=(1-tanh(V(a))*tanh(V(a)))*V(tn)\n"


def _escapes(flag: Path) -> list[str]:
    return [
        f".control;x\nshell touch {flag}\n.endc;x\n",
        f".controlx\nshell touch {flag}\n.endcx\n",
        f".CONTROL\nshell touch {flag}\n.ENDC\n",
        f"  .Control $ comment\nshell touch {flag}\n.endc\n",
        f"*# shell touch {flag}\n",
        f"*#shell touch {flag}\n",
        f".incfoo {flag}\n",
        ".include /etc/passwd\n",
        ".lib /etc/passwd tt\n",
        ".options reltol=1\n",
        ".op\n",
        ".end\n",
        ".tran 1 1\n",
        f".meas tran x find v(a) at=0 ; {flag}\n",
    ]


@pytest.mark.parametrize("k", range(14))
def test_guard_refuses_side_effects_inside_a_subcircuit(k: int, tmp_path: Path) -> None:
    flag = tmp_path / "pwned"
    cell = tmp_path / "hwbp_act_tanh.cir"
    cell.write_text(_HEAD + _escapes(flag)[k] + _BODY + ".ends\n")
    with pytest.raises(ConfigError, match=r"not allowed in a cell") as e:
        load_cell("act_tanh", cell)
    assert "\n" not in str(e.value)


def test_continuation_cannot_hide_a_directive(tmp_path: Path) -> None:
    cell = tmp_path / "hwbp_act_tanh.cir"
    # a '+' line continues the element before it: it is that element's text, not a directive
    cell.write_text(_HEAD + "Bf 0 fd\n+ I=(tanh(V(a)))/{hwbp_r}\n" + _BODY.splitlines()[1] + "\n.ends\n")
    assert load_cell("act_tanh", cell).ports == 4
    cell.write_text("+ .control\n" + _HEAD + _BODY + ".ends\n")
    with pytest.raises(ConfigError, match="outside"):
        load_cell("act_tanh", cell)


def test_shipped_cells_pass_the_guard() -> None:
    assert {f.name for f in CELLS_DIR.glob("*.cir")} == set(DEFAULT_CELLS.values())
    for role, name in DEFAULT_CELLS.items():
        assert load_cell(role).filename == name


def test_verify_and_compile_refuse_a_shell_cell_and_run_nothing(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.hwbp"
    save_model(random_mlp([3, 4, 2], activation="tanh", seed=0), model)
    cells = tmp_path / "cells"
    cells.mkdir()
    flag = tmp_path / "pwned"
    text = (CELLS_DIR / "hwbp_act_tanh.cir").read_text()
    (cells / "hwbp_act_tanh.cir").write_text(text.replace("Bf 0", f".control;x\nshell touch {flag}\n.endc;x\nBf 0"))
    assert main(["verify", str(model), "--backend", "spice", "--random-batch", "2", "--cells", str(cells),
                 "--report", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "line 8: .control is not allowed" in err and len(err.strip().splitlines()) == 1
    assert main(["compile", str(model), "--target", "spice", "--cells", str(cells), "-o", str(tmp_path / "net")]) == 2
    assert not flag.exists() and not (tmp_path / "net").exists() and not (tmp_path / "r.json").exists()
