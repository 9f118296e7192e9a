"""The synapse offset budget study (sims/sky130/offset_budget.py): its committed report and
figure data are what its CSV gives, and a few of the CSV's points are what the hardware
model and the reference backend compute now."""

from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SIMS = ROOT / "sims" / "sky130"


def _study():
    spec = importlib.util.spec_from_file_location("offset_budget_study", SIMS / "offset_budget.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_report_is_what_its_csv_gives(tmp_path, monkeypatch):
    study = _study()
    monkeypatch.setattr(study, "sweep", lambda *_a, **_k: pytest.fail("--report must not recompute"))
    shutil.copy(SIMS / "offset_budget.csv", tmp_path / "offset_budget.csv")
    study.main(["--report", "-o", str(tmp_path)])
    assert (tmp_path / "offset_budget.md").read_text() == (SIMS / "offset_budget.md").read_text()
    assert (tmp_path / "offset_budget.png").stat().st_size > 10_000


@pytest.mark.parametrize("net, mode, sigma, seed", [
    ("mlp483", "offsets alone", 0.0278, 0),
    ("mlp483", "all terms", 0.0278, 3),
    ("digits", "offsets alone", 0.000527, 1),
])
def test_committed_points_are_what_the_model_computes(net, mode, sigma, seed):
    study = _study()
    _, rows = study.read_csv(SIMS / "offset_budget.csv")
    (row,) = [r for r in rows if (r["net"], r["mode"], r["sigma"], r["seed"]) == (net, mode, sigma, seed)]
    graph, batch = study.network(net)
    cos, worst = study.point(graph, batch, mode, sigma, seed)
    assert worst == row["worst_tensor"]
    assert cos == pytest.approx(row["min_cosine"], abs=1e-9)


def test_the_measured_cell_fails_and_the_offset_alone_error_grows_with_sigma():
    study = _study()
    _, rows = study.read_csv(SIMS / "offset_budget.csv")
    st = study.stats(rows)
    s = st["digits", "offsets alone"]
    meas = max(study.measured_sigma())
    assert np.all(np.diff(1.0 - s["p50"][1:8]) > 0)  # 1 - cos rises with sigma below saturation
    assert s["p50"][np.searchsorted(s["sigma"], meas) - 1] < 0.5
    assert s["p50"][0] == 1.0 or s["p50"][0] == pytest.approx(1.0, abs=1e-12)


def test_tolerated_sigma():
    study = _study()
    sig = np.array([0.0, 1e-3, 1e-2, 1e-1])
    g, x = study.tolerated(sig, np.array([1.0, 0.999, 0.995, 0.9]), 0.99)
    assert g == 1e-2 and 1e-2 < x < 1e-1
    assert x == pytest.approx(math.exp(math.log(1e-2) + (0.005 / 0.095) * math.log(10)))
    assert all(math.isnan(v) for v in study.tolerated(sig, np.array([0.98, 0.999, 0.995, 0.9]), 0.99))
    assert all(math.isnan(v) for v in study.tolerated(sig, np.array([1.0, 0.98, 0.995, 0.9]), 0.99))
    assert study.tolerated(sig, np.ones(4), 0.99) == (0.1, 0.1)


def test_area_scales_the_named_devices():
    study = _study()
    base = study.area(1.0, [])
    assert base == pytest.approx(373.125)
    assert study.area(4.0, [study.UPPER]) == pytest.approx(base + 3 * 8 * 8.0)
    assert study.area(4.0, [study.UPPER, study.LOADS]) == pytest.approx(base + 3 * (8 * 8.0 + 4 * 26.0))


def _sci(x: float, digits: int = 1) -> str:
    m, e = f"{x:.{digits}e}".split("e")
    return f"{m}e{int(e)}"


def test_the_docs_quote_the_committed_study():
    study = _study()
    _, rows = study.read_csv(SIMS / "offset_budget.csv")
    st = study.stats(rows)
    text = (ROOT / "docs" / "transistor-level.md").read_text()
    par = text[text.index("**How small the synapse offset must be.**"):]
    par = " ".join(par[:par.index("\n\n")].split())
    meas = max(study.measured_sigma())
    d50 = study.tolerated(st["digits", "offsets alone"]["sigma"], st["digits", "offsets alone"]["p50"])[1]
    d5 = study.tolerated(st["digits", "offsets alone"]["sigma"], st["digits", "offsets alone"]["p5"])[1]
    m50 = study.tolerated(st["mlp483", "offsets alone"]["sigma"], st["mlp483", "offsets alone"]["p50"])[1]
    m5 = study.tolerated(st["mlp483", "offsets alone"]["sigma"], st["mlp483", "offsets alone"]["p5"])[1]
    kd, km = (meas / d50) ** 2, (meas / m50) ** 2
    zero = {mode: np.median([r["min_cosine"] for r in rows if r["net"] == "digits" and r["mode"] == mode
                             and r["sigma"] == 0]) for mode in ("all terms", "all terms without [cells]")}
    quoted = [f"σ = {_sci(d50)}", f"percentile: {_sci(d5)}", f"{m50:.3f} on the 4-8-3", f"({m5:.3f})",
              f"about {round(meas / d50, -1):.0f}×", f"area factor of {_sci(kd)}",
              f"grows to {_sci(study.area(kd, [study.UPPER]))} µm²",
              f"too to {_sci(study.area(kd, [study.UPPER, study.LOADS]))} µm²", f"a factor {km:.0f} (",
              f"({_sci(study.area(km, [study.UPPER]))} µm²", f"or {_sci(study.area(km, [study.UPPER, study.LOADS]), 2)} µm²",
              f"cosine of {zero['all terms']:.3f}, {zero['all terms without [cells]']:.3f} without",
              f"over {len({r['seed'] for r in rows})} instance seeds"]
    missing = [q for q in quoted if q not in par]
    assert not missing, missing
