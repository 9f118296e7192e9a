"""``sims/sky130/tradeoff.py`` on the tiny 4-8-3 tanh MLP, one bias current, one ``.tran``
point, into a temporary directory: the table's columns and its physics (energy is power
times settling time, the measured ``.tran`` energy is the measured power times the
measured settling time, areas are positive and grow with C, the kT/C floor falls as 1/C)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sims" / "sky130" / "tradeoff.py"
COLUMNS = {"model", "ib_A", "c_F", "tau_rc_s", "tau_cell_s", "power_W", "power_src", "settling_time_s", "settling_src",
           "settling_ideal_s",
           "energy_J", "energy_src", "area_mm2", "area_cells_mm2", "area_caps_mm2", "one_minus_cos_static",
           "static_src", "one_minus_cos_ktc", "one_minus_cos", "energy_over_cpu", "energy_over_accelerator"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.long
def test_tradeoff_on_the_tiny_mlp(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    caps = [1e-13, 1e-11, 1e-9]
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny", "--ib", "1e-6", "--ib-grid", "1e-6",
                        "--caps", *map(str, caps), "--tran", "1e-6:1e-9", "--workers", "1", "--cpu-min-s", "0.02",
                        "-o", str(out)], capture_output=True, text=True, timeout=3600, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("tradeoff.csv", "tradeoff_check.csv", "tradeoff.md", "tradeoff.png", "tradeoff_pareto.png",
                 "tradeoff_check.png"):
        assert (out / name).is_file(), name
    rows = _rows(out / "tradeoff.csv")
    assert set(rows[0]) == COLUMNS
    assert [float(x["c_F"]) for x in rows] == caps
    for x in rows:
        f = {k: float(v) for k, v in x.items() if not k.endswith("src") and k != "model"}
        assert f["energy_J"] == pytest.approx(f["power_W"] * f["settling_time_s"], rel=1e-5)
        assert f["settling_time_s"] == pytest.approx(11.28 * (f["tau_rc_s"] + f["tau_cell_s"]), rel=0.05)
        assert f["area_mm2"] > 0 and f["area_cells_mm2"] > 0 and f["area_caps_mm2"] > 0
        assert f["area_mm2"] == pytest.approx(f["area_cells_mm2"] + f["area_caps_mm2"], rel=1e-5)
        assert 0 < f["one_minus_cos_static"] < 0.01  # the tiny MLP at 1 uA: cosine above 0.99 (measured)
        assert x["power_src"] == "measured" and x["static_src"] == "measured" and x["settling_src"] == "derived"
    floors = [float(x["one_minus_cos_ktc"]) for x in rows]
    assert floors[0] > floors[1] > floors[2] > 0
    # small SNR-floor regime: 1 - cos ~ kT/(C vu^2 T^2), so two decades of C are two decades of floor
    assert floors[0] / floors[1] == pytest.approx(100.0, rel=0.02)
    caps_area = [float(x["area_caps_mm2"]) for x in rows]
    assert caps_area[2] / caps_area[0] == pytest.approx(1e4, rel=1e-6)

    # the measured .tran point: energy is the measured power times the measured 1 % settling time
    tran = json.loads(next((out / "tradeoff_runs").glob("tiny_tran_*.json")).read_text())
    assert tran["energy_per_sample_J"] == pytest.approx(tran["supply_power_W"] * tran["settling_time_1pct_s"],
                                                        rel=1e-12)
    assert 1e-6 < tran["settling_time_1pct_s"] < 1e-4 and 0 < tran["supply_power_W"] < 1e-3
    check = _rows(out / "tradeoff_check.csv")
    settle = [c for c in check if c["quantity"] == "settling_time_s"]
    assert len(settle) == 1
    ratio = float(settle[0]["derived_over_measured"])
    assert math.isfinite(ratio) and 0.5 < ratio < 2.0
