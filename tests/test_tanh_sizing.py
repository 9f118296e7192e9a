"""The tanh sizing study (sims/sky130/tanh_sizing.py): its committed report is what its
command writes from its committed runs (no ngspice: every measurement comes from the run
cache), and the table of docs/transistor-level.md is that report's."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIMS = ROOT / "sims" / "sky130"
ARGS = ["--seeds", "0-9", "--few-seeds", "0-4", "--all-cells", "2", "--mc", "8", "--mc-seeds", "1-5"]


def _study():
    spec = importlib.util.spec_from_file_location("tanh_sizing_study", SIMS / "tanh_sizing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_committed_report_is_what_the_command_writes_from_its_runs(tmp_path, monkeypatch):
    study = _study()

    def no_measurement(*_a, **_k):
        raise AssertionError("a measurement that the committed run cache should hold")

    for name in ("network", "characterize_cell", "decompose", "monte_carlo"):
        monkeypatch.setattr(study, name, no_measurement)
    shutil.copy(SIMS / "tanh_sizing_runs.json", tmp_path / "tanh_sizing_runs.json")
    monkeypatch.setattr(sys, "argv", ["tanh_sizing.py", *ARGS])
    assert study.main([*ARGS, "-o", str(tmp_path)]) == 0
    assert (tmp_path / "tanh_sizing.csv").read_text() == (SIMS / "tanh_sizing.csv").read_text()
    assert (tmp_path / "tanh_sizing.md").read_text() == (SIMS / "tanh_sizing.md").read_text()
    assert (tmp_path / "tanh_sizing.png").stat().st_size > 10_000


def test_the_recommended_sizing_meets_the_bound_on_every_seed_and_the_default_does_not():
    rows = [r for r in _rows(SIMS / "tanh_sizing.csv") if r["pdk_cells"] == "act"]
    study = _study()
    rec = [float(r["min_cosine"]) for r in rows if r["sizing"] == study.RECOMMENDED]
    default = {int(r["seed"]): float(r["min_cosine"]) for r in rows if r["sizing"] == "default"}
    assert len(rec) == 10 and min(rec) >= study.MIN_COSINE
    assert sorted(default) == list(range(10)) and default[2] < study.MIN_COSINE
    assert dict((s[0], s[1]) for s in study.SIZINGS)[study.RECOMMENDED] == "rt=4,vu=0.104167"


DOC_ROWS = {  # the docs table's rows -> the study's sizing labels
    "default (w/l": "default", "input pair 4×": "w=40", "tail current ÷ 4": "ib=0.25u",
    "vu matched": "vu=trim", "**tension scale rt = 4**": "rt=4", "tension scale rt = 8": "rt=8",
    "default cell at β": "beta=0.25",
}


def _e(x: float) -> str:
    return f"{x:.2e}".replace("e-0", "e-")


def test_the_docs_table_is_the_committed_study():
    rows = [r for r in _rows(SIMS / "tanh_sizing.csv") if r["pdk_cells"] == "act"]
    lines = [ln for ln in (ROOT / "docs" / "transistor-level.md").read_text(encoding="utf-8").splitlines()
             if ln.startswith("| ") and ln.count("|") == 9]
    seen = set()
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        label = next((v for k, v in DOC_ROWS.items() if cells[0].startswith(k)), None)
        if label is None:
            continue
        seen.add(label)
        mine = [r for r in rows if r["sizing"] == label]
        worst = max(float(r["worst_one_minus_cos"]) for r in mine)
        seed2 = next(float(r["worst_one_minus_cos"]) for r in mine if r["seed"] == "2")
        ok = sum(float(r["min_cosine"]) >= 0.99 for r in mine)
        assert cells[3] == _e(seed2) and cells[4] == _e(worst), line
        assert cells[5] == f"{1 - worst:.5f}" and cells[6] == f"{ok} of {len(mine)}", line
    assert seen == set(DOC_ROWS.values())


@pytest.mark.parametrize("figure", ["0.98907", "0.98959", "0.99867", "0.99848", "| 0.0499 |", "| 0.0989 |",
                                    "| 7.52e-03 | 0.98835 |", "| 7.74e-03 | 0.98762 |"])
def test_quoted_cosines_are_in_the_report(figure):
    assert figure in (SIMS / "tanh_sizing.md").read_text()


def test_the_quoted_digits_figures_are_the_committed_reports():
    """docs/transistor-level.md quotes the digits MLP at rt = 4 (sims/sky130/digits_tt_rt4.json)
    against the default sizing (sims/sky130/digits_tt.json), same sample."""
    import json

    text = " ".join((ROOT / "docs" / "transistor-level.md").read_text(encoding="utf-8").split())
    rt4 = {k: m["cosine"] for k, m in json.loads((SIMS / "digits_tt_rt4.json").read_text())["parameters"].items()}
    old = {k: m["cosine"] for k, m in json.loads((SIMS / "digits_tt.json").read_text())["parameters"].items()}
    quoted = (f"min cosine {min(rt4.values()):.5f} ({min(rt4, key=rt4.get)}), fc1.weight "
              f"{rt4['fc1.weight']:.5f} against {old['fc1.weight']:.5f} at the default sizing")
    assert quoted in text
    assert min(rt4.values()) >= 0.99 and min(rt4.values()) > min(old.values())
