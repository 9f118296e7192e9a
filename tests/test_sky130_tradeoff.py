"""``sims/sky130/tradeoff.py`` on the tiny 4-8-3 tanh MLP, one bias current, two ``.tran``
points, into a temporary directory: the table's columns and its physics (energy is power
times settling time, the measured ``.tran`` energy is the measured power times the
measured settling time, areas are positive and grow with C, the kT/C floor falls as 1/C),
the ``.tran`` step rule, and the settling model fitted at 1 pF against the run at 1 nF.
The sizing and model arithmetic of ``tradeoff_settle.py`` are checked without ngspice."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sims" / "sky130" / "tradeoff.py"
sys.path.insert(0, str(ROOT / "sims" / "sky130"))
COLUMNS = {"model", "ib_A", "c_F", "tau_rc_s", "tau_cell_s", "tau_net_s", "power_W", "power_src", "settling_time_s",
           "settling_src", "settling_precision_s", "settling_late_s", "settling_ideal_s", "settling_series_s",
           "energy_J", "energy_src", "area_mm2", "area_cells_mm2", "area_caps_mm2", "one_minus_cos_static",
           "static_src", "one_minus_cos_ktc", "one_minus_cos", "energy_over_cpu", "energy_over_accelerator"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_tran_plan_steps_a_fraction_of_the_smallest_time_constant() -> None:
    from tradeoff_settle import MAX_STEPS, STEP_FRACTION, tran_plan

    p = tran_plan(1e3, 1e-12, 5.0, 5e-9)  # R*C = 1 ns < 5 ns: the step is R*C / 20
    assert p["tau_min_s"] == pytest.approx(1e-9) and p["step_s"] == pytest.approx(STEP_FRACTION * 1e-9)
    assert p["duration_tau"] * 1e-9 == pytest.approx(4.0 * 5.0 * 6e-9)
    assert p["step_capped"] == 0.0 and p["step_tau"] == pytest.approx(0.05)
    p = tran_plan(1e3, 1e-9, 10.0, 5e-9)  # R*C = 1 us: 5 ns / 20 would be 160,000 steps, so the cap sets it
    assert p["step_capped"] == 1.0 and p["duration_tau"] / p["step_tau"] == pytest.approx(MAX_STEPS)
    assert p["step_s"] / p["tau_min_s"] > STEP_FRACTION


def test_settling_model_fits_tau_net_at_the_smallest_c_and_interpolates_in_ib() -> None:
    from tradeoff_settle import fit_model, fit_points, settling_model, tau_net

    runs = [{"ib_A": 1e-6, "c_F": 1e-12, "r_ohm": 1e3, "settling_time_1pct_s": 10.0 * (1e-9 + 4e-9)},
            {"ib_A": 1e-6, "c_F": 1e-9, "r_ohm": 1e3, "settling_time_1pct_s": 1.1e-5},
            {"ib_A": 1e-5, "c_F": 1e-12, "r_ohm": 1e3, "settling_time_1pct_s": 10.0 * (1e-9 + 1e-9)}]
    fitted = fit_model(runs, 10.0)
    assert fitted == pytest.approx({1e-6: 4e-9, 1e-5: 1e-9})
    assert fit_points(runs) == {(1e-6, 1e-12), (1e-5, 1e-12)}
    tau_cell = {1e-7: 8e-9, 1e-6: 2e-9, 10 ** -5.5: 3e-9, 1e-5: 1e-9}  # ratios tau_net/tau_cell: 2 and 1
    assert tau_net(1e-6, fitted, tau_cell) == (pytest.approx(4e-9), "measured")
    v, src = tau_net(10 ** -5.5, fitted, tau_cell)  # halfway in log ib: ratio sqrt(2), times tau_cell there
    assert src == "interpolated" and v == pytest.approx(3e-9 * 2 ** 0.5)
    assert tau_net(1e-7, fitted, tau_cell) == (pytest.approx(2 * 8e-9), "extrapolated")
    assert settling_model(1e-6, 1e-9, 1e3, 10.0, fitted, tau_cell) == pytest.approx(10.0 * (1e-6 + 4e-9))


def test_gate_delay_finds_a_first_order_lag() -> None:
    import numpy as np

    from tradeoff_settle import gate_delay

    t = np.arange(0, 400e-9, 50e-12)
    rng = np.random.default_rng(0)
    s = t[:, None] / 10e-9
    tension = (rng.normal(size=5) + rng.normal(size=5) * s + rng.normal(size=5) * s ** 2) * np.exp(-s) + 1
    mean = (rng.normal(size=5) + rng.normal(size=5) * s) * np.exp(-s) + 0.5
    u = 2 * tension + 0.3 * mean
    dt = t[1] - t[0]
    for tau in (1e-9, 3e-9):
        g = np.empty_like(u)
        g[0] = u[0]
        for k in range(1, len(t)):
            g[k] = g[k - 1] + dt / tau * (0.5 * (u[k - 1] + u[k]) - g[k - 1])
        assert gate_delay(t, g, mean, tension) == pytest.approx(tau, rel=0.05)
    # no lag at all: the gate is its inputs' combination
    assert gate_delay(t, u, mean, tension) < 0.1 * dt * 10


@pytest.mark.slow
@pytest.mark.long
def test_tradeoff_on_the_tiny_mlp(tmp_path: Path) -> None:
    from tradeoff_settle import MAX_STEPS

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    caps = [1e-13, 1e-11, 1e-9]
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny", "--ib", "1e-6", "--ib-grid", "1e-6",
                        "--caps", *map(str, caps), "--tran", "1e-6:1e-12", "1e-6:1e-9", "--workers", "1", "--cpu-min-s", "0.02",
                        "-o", str(out)], capture_output=True, text=True, timeout=3600, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("tradeoff.csv", "tradeoff_check.csv", "tradeoff.md", "tradeoff.png", "tradeoff_pareto.png",
                 "tradeoff_check.png", "tradeoff_settle.png"):
        assert (out / name).is_file(), name
    rows = _rows(out / "tradeoff.csv")
    assert set(rows[0]) == COLUMNS
    assert [float(x["c_F"]) for x in rows] == caps
    for x in rows:
        f = {k: float(v) for k, v in x.items() if not k.endswith("src") and k != "model"}
        assert f["energy_J"] == pytest.approx(f["power_W"] * f["settling_time_s"], rel=1e-5)
        if x["settling_src"] != "measured":  # the model, tau_net fitted to the 1 pF run
            assert x["settling_src"] == "model (tau_net measured)"
            assert f["settling_time_s"] == pytest.approx(11.28 * (f["tau_rc_s"] + f["tau_net_s"]), rel=0.01)
        assert 0 < f["tau_net_s"] < f["tau_cell_s"]  # the cell is faster in the network than in its testbench
        assert f["area_mm2"] > 0 and f["area_cells_mm2"] > 0 and f["area_caps_mm2"] > 0
        assert f["area_mm2"] == pytest.approx(f["area_cells_mm2"] + f["area_caps_mm2"], rel=1e-5)
        assert 0 < f["one_minus_cos_static"] < 0.01  # the tiny MLP at 1 uA: cosine above 0.99 (measured)
        assert x["power_src"] == "measured" and x["static_src"] == "measured"
    assert [x["settling_src"] for x in rows] == ["model (tau_net measured)"] * 2 + ["measured"]
    floors = [float(x["one_minus_cos_ktc"]) for x in rows]
    assert floors[0] > floors[1] > floors[2] > 0
    # small SNR-floor regime: 1 - cos ~ kT/(C vu^2 T^2), so two decades of C are two decades of floor
    assert floors[0] / floors[1] == pytest.approx(100.0, rel=0.02)
    caps_area = [float(x["area_caps_mm2"]) for x in rows]
    assert caps_area[2] / caps_area[0] == pytest.approx(1e4, rel=1e-6)

    # the measured .tran points: energy is the measured power times the measured 1 % settling time, the
    # step a twentieth of the smallest time constant (or the cap's), the waveforms summarized
    trans = {round(json.loads(p.read_text())["c_F"], 15): json.loads(p.read_text())
             for p in (out / "tradeoff_runs").glob("tiny_tran_*.json")}
    assert set(trans) == {1e-12, 1e-9}
    for c, tran in trans.items():
        assert tran["energy_per_sample_J"] == pytest.approx(tran["supply_power_W"] * tran["settling_time_1pct_s"],
                                                            rel=1e-12)
        assert 0 < tran["supply_power_W"] < 1e-3
        # a twentieth of the smaller of R*C and the testbench's tau_cell (16.7 ns), or the step cap's
        assert (tran["step_s"] <= 1e3 * c / 20 * (1 + 1e-9)
                or tran["duration_s"] / tran["step_s"] == pytest.approx(MAX_STEPS))
        assert tran["step_s"] < 0.01 * tran["settling_time_1pct_s"] < tran["duration_s"] / 2
        assert all(g["delay_s"] > 0 for g in tran["trace"]["gates"].values())
    assert 1e-6 < trans[1e-9]["settling_time_1pct_s"] < 1e-4
    assert trans[1e-12]["settling_time_1pct_s"] < 1e-6
    check = _rows(out / "tradeoff_check.csv")
    settle = {round(float(c["c_F"]), 15): c for c in check if c["quantity"] == "settling_time_s"}
    assert settle[1e-12]["role"] == "fit" and float(settle[1e-12]["derived_over_measured"]) == pytest.approx(1.0)
    # the model fitted at 1 pF predicts the run at 1 nF (measured 0.99)
    assert settle[1e-9]["role"] == "check" and 0.95 < float(settle[1e-9]["derived_over_measured"]) < 1.05


def test_end_residual_recovers_the_true_crossing_of_an_exponential_tail() -> None:
    import numpy as np

    from tradeoff_settle import end_residual

    tau, duration = 100e-9, 500e-9
    t = np.linspace(0.0, duration, 5001)[1:]
    e_meas = np.exp(-t / tau) - np.exp(-duration / tau)  # measured against the unsettled last point
    t1 = float(t[np.nonzero(e_meas > 0.01)[0][-1] + 1])
    out = end_residual(t, e_meas, t1, duration)
    assert out["tail_tau_s"] == pytest.approx(tau, rel=0.05)
    assert t1 + out["t1_late_s"] == pytest.approx(tau * np.log(100.0), rel=0.01)
    assert out["t1_late_s"] > 0


def test_whole_network_section_follows_from_the_committed_reports() -> None:
    """The section *The whole network at transistor level* of the committed ``tradeoff.md``:
    its power is the committed reports' ``supply_power_W``, its cosine their ``min_cosine``,
    its energy that power times the stated time, its area N x the registered cell areas (no
    ngspice)."""
    from tradeoff_full import ACT_ONLY_REPORT, FULL_REPORTS, SYN_ONLY_REPORT, TINY_TRAN, synapse_counts, whole_network
    from tradeoff_points import model_and_batch
    from tradeoff_report import _si

    from hwbp.pdk.cells import get_block

    graph, _ = model_and_batch("digits")
    syn = synapse_counts(graph)
    assert syn == {"input": 64 * 32, "full": 32 * 32 + 32 * 10}
    tran = json.loads((ROOT / "sims" / "sky130" / "tradeoff_runs" / "digits_tran_ib1e-06_C1e-12_beta1.json").read_text())
    digital = {"torch_J": 1e-3, "accelerator_J": 4e-8}
    full = whole_network({"cells": 64, "nodes": 74}, syn, tran, 10.08, digital)
    load = lambda p: json.loads(p.read_text())  # noqa: E731
    tiny = load(TINY_TRAN["with"])["settling_time_1pct_s"] - load(TINY_TRAN["without"])["settling_time_1pct_s"]
    md = (ROOT / "sims" / "sky130" / "tradeoff.md").read_text()
    section = md.split("## The whole network at transistor level", 1)[1]
    assert len(full["rows"]) == len(FULL_REPORTS) == 2
    for r, path in zip(full["rows"], FULL_REPORTS.values()):
        rep = load(path)
        assert r["power_W"] == rep["settle"]["supply_power_W"] and r["min_cosine"] == rep["min_cosine"]
        assert r["power_syn_only_W"] == load(SYN_ONLY_REPORT)["settle"]["supply_power_W"]
        assert r["power_act_only_W"] == load(ACT_ONLY_REPORT)["settle"]["supply_power_W"]
        assert r["power_rest_W"] == pytest.approx(r["power_W"] - r["power_syn_only_W"] - r["power_act_only_W"])
        assert r["t_tiny_s"] == pytest.approx(tran["settling_time_1pct_s"] + tiny)
        assert r["t_series_s"] == pytest.approx(tran["settling_time_1pct_s"] + 10.08 * full["tau_syn_s"])
        for k in ("tiny", "series"):
            assert r[f"energy_{k}_J"] == pytest.approx(r["power_W"] * r[f"t_{k}_s"])
            assert r[f"energy_{k}_over_cpu"] == pytest.approx(r[f"energy_{k}_J"] / 1e-3)
        area = (64 * r["area_tanh_um2"] + 3392 * get_block("synapse").area_um2 + 74 * get_block("node").area_um2) * 1e-6
        assert r["area_mm2"] == pytest.approx(area)
        row = next(line for line in section.splitlines() if line.startswith(f"| {r['sizing']} |"))
        cols = [c.strip() for c in row.strip("|").split("|")]
        assert cols[2] == _si(r["power_W"], "W") and cols[8] == f"{r['min_cosine']:.5f}"
        assert cols[6] == f"{r['area_mm2']:.3g}"
        assert (cols[9], cols[10]) == (_si(r["t_tiny_s"], "s"), _si(r["energy_tiny_J"], "J"))
        assert (cols[11], cols[12]) == (_si(r["t_series_s"], "s"), _si(r["energy_series_J"], "J"))
    assert "the synapses alone" in section and "default sizing" in section
