"""The SKY130 synapse, node pair and MSE loss port (circuits/sky130/): the behavioral twins'
ports, area and quiescent current in the registry, the adapters' scaling, ``--pdk-cells``
input errors; each testbench in ngspice on tt, 27 C (slow: the models alone load in ~4 s of
CPU) against its stated figures, a synapse whose backward half has another gain than its
forward half caught by the forward/backward mismatch, and a node pair whose two leaks differ
failing network verification (tests/fixtures/sky130_broken/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hwbp.cli import main
from hwbp.errors import ConfigError
from hwbp.pdk.adapters import input_synapse_text, loss_iu_A, loss_text, node_text, synapse_text
from hwbp.pdk.cells import BLOCKS, cell_area_um2, get_block
from hwbp.pdk.network import PDK_CELLS, pdk_cell_set
from spice_helpers import require_ngspice

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "fixtures" / "sky130_broken"
PORTS = {"synapse": "pre post gate sens", "node": "xp xm xb tn fd sd", "loss": "xb y sd"}


def test_block_files_ports_area_and_quiescent_current():
    for name, spec in BLOCKS.items():
        get_block(name)
        behavioral = (ROOT / "circuits" / "behavioral" / f"{spec.subckt}.cir").read_text()
        assert f".subckt {spec.subckt} {PORTS[name]}" in behavioral
        assert f".subckt {spec.subckt} {PORTS[name]} params:" in spec.path.read_text()
        assert f'.include "{spec.subckt}.cir"' in spec.testbench.read_text()
        assert spec.area_um2 > 0 and spec.quiescent_current_A >= 0
    p = BLOCKS["synapse"].params
    # two Gilbert halves of 1 tail + 2 weight + 4 input + 2 load devices, plus the bias diode
    mos = 2 * (p["wt"] * p["lt"] + 2 * p["ww"] * p["lw"] + 4 * p["w"] * p["l"] + 2 * p["wp"] * p["lp"]) \
        + p["wt"] * p["lt"]
    assert cell_area_um2(BLOCKS["synapse"].path, "hwbp_synapse", p)["mos"] == pytest.approx(mos)
    node = cell_area_um2(BLOCKS["node"].path, "hwbp_neuron_pair", BLOCKS["node"].params)
    # two MIM plates of (sqrt(C/2 fF/um^2) - 0.15 um)^2, two leaks
    assert node["cap"] == pytest.approx(2 * ((1e-12 / 2e-15) ** 0.5 - 0.15) ** 2)
    assert node["mos"] == 0 and node["res"] > 0
    assert BLOCKS["node"].quiescent_current_A == 0.0  # passive devices, no supply


def test_adapters_state_the_scaling():
    syn = synapse_text()
    assert ".subckt hwbp_synapse pre post gate sens params: g=0" in syn and "sky130_synapse_gilbert" in syn
    assert "atanh" in syn and "hwbp_wmax" in syn
    assert ".subckt sky130_synapse " not in input_synapse_text(with_cell=False)
    assert ".subckt hwbp_synapse_fwd pre post params: g=0" in input_synapse_text()
    assert ".subckt hwbp_neuron_pair xp xm xb tn fd sd" in node_text()
    # the pair's drives are vcm + vu*value limited to the rails (0 to 1.8 V), the limit stated in the file
    assert "Bfd fx 0 V=max(0, min(1.8, V(vcm)+0.125*V(fd)))" in node_text()
    assert "Bsd sx 0 V=max(0, min(1.8, V(vcm)+0.125*V(sd)))" in node_text()
    assert "drive range -6.4 to 8 units" in node_text() and "singular matrix" in node_text()
    assert "beta=0.25 " in loss_text(0.25) and loss_iu_A(0.25) == 1e-6 and loss_iu_A(1.0) == 0.25e-6
    with pytest.raises(ConfigError, match="beta > 0"):
        loss_text(0.0)


def test_pdk_cells_choice_and_its_errors():
    assert pdk_cell_set(None) == PDK_CELLS == ("act", "syn", "node", "loss")
    assert pdk_cell_set(None, "tran") == PDK_CELLS  # the synapses' .tran: sims/sky130/tran_cells/tran_cells.md
    assert pdk_cell_set("loss,syn,node,act") == PDK_CELLS
    assert pdk_cell_set("loss, act") == ("act", "loss")
    with pytest.raises(ConfigError, match="unknown gates"):
        pdk_cell_set("act,gates")
    assert pdk_cell_set("node", "tran") == ("node",)  # .tran sets the pair's capacitor nodes


def test_pdk_cells_without_pdk_and_unknown_names_are_one_line_exit_2(capsys):
    model = str(ROOT / "examples" / "mlp_digits.onnx")
    assert main(["verify", model, "--backend", "spice", "--pdk-cells", "act", "--random-batch", "1"]) == 2
    assert "apply to --pdk sky130" in capsys.readouterr().err
    assert main(["verify", model, "--backend", "spice", "--pdk", "sky130", "--pdk-cells", "act,wires",
                 "--random-batch", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pdk-cells" in err[0] and "wires" in err[0]


def _measure(name: str, cell_text: str | None = None) -> dict:
    from hwbp.pdk.blocks import block_bench, measure_block, run_block
    from hwbp.pdk.sky130 import find_models

    bench = block_bench(get_block(name), str(find_models()), "tt", 27.0)
    if cell_text is not None:
        import dataclasses

        bench = dataclasses.replace(bench, cell_text=cell_text)
    return measure_block(name, run_block(bench))


@pytest.mark.slow
@pytest.mark.long
def test_synapse_testbench_one_weight_both_directions_and_a_mismatched_half_is_caught():
    require_ngspice()
    spec = BLOCKS["synapse"]
    row = _measure("synapse")
    # the stored weight sets both gains: forward and backward agree (nominal devices)
    assert row["syn_fb_mismatch"] < 1e-4 and row["syn_fb_rms"] < 1e-4
    assert row["syn_gain_sd"] < 0.01  # nominal instances differ only by the weight map's linearity
    assert row["syn_iu_A"] == pytest.approx(spec.calib["iu_A"], rel=0.02)  # the adapter's calibration
    assert row["syn_gain_lin_err"] < 0.01  # gain linear in the programmed weight (measured 0.0032)
    assert row["syn_offset_fwd"] < 0.01 and row["syn_offset_bwd"] < 0.01  # measured 0.0026
    assert row["syn_x_lin_err"] < 0.05  # tanh compression of the upper pairs at |x| = 3 (measured 0.033)
    assert row["supply_current_A"] == pytest.approx(spec.quiescent_current_A, rel=0.05)
    broken = _measure("synapse", (BROKEN / "hwbp_synapse.cir").read_text())
    assert broken["syn_fb_mismatch"] > 0.3 and broken["syn_fb_rms"] > 0.3  # backward tail twice as wide


def test_step_response_of_a_first_order_step():
    """10-90 % rise ln(9) tau and 1 % settling ln(100) tau on a sampled single pole, of either
    sign; a window that ends before the settling, or no step at all, reads NaN."""
    import math

    import numpy as np

    from hwbp.pdk.blocks import step_response

    tau, t0, t1 = 20e-9, 10e-9, 410e-9
    t = np.arange(0.0, t1 + 1e-12, 0.5e-9)
    for amp in (3e-8, -5e-8):
        y = 1e-9 + amp * (1.0 - np.exp(-np.clip(t - t0, 0.0, None) / tau))
        rise, settle = step_response(t, y, t0, t1)
        assert rise == pytest.approx(math.log(9.0) * tau, rel=0.01)
        assert settle == pytest.approx(math.log(100.0) * tau, rel=0.01)
    # a slow pole: the window's last quarter is reached before it settles
    y = 1.0 - np.exp(-np.clip(t - t0, 0.0, None) / 100e-9)
    rise, settle = step_response(t, y, t0, t1)
    assert math.isnan(settle) and rise > 0
    assert all(math.isnan(v) for v in step_response(t, np.full_like(t, 2e-9), t0, t1))
    with pytest.raises(ValueError, match="no samples before the step"):
        step_response(t, y, 0.0, t1)


@pytest.mark.slow
@pytest.mark.long
def test_synapse_step_response_and_a_slower_mirror_lengthens_it():
    """The synapse's forward and backward currents after a one-unit step of x and of e: the
    same devices give the same rise both ways, the 1 % settling is a few time constants, and a
    PMOS mirror drawn with twice its W and L (the same W/L, four times the gate capacitance
    its diode node charges) rises at least twice as slowly: the measurement sees the cell."""
    require_ngspice()

    from hwbp.pdk.blocks import block_bench, measure_block, run_block
    from hwbp.pdk.sky130 import find_models

    row = _measure("synapse")
    # measured tt, 27 C: 49.9 ns rise, 110 ns to 1 %, tau 22.7 ns (both directions)
    assert 5e-9 < row["syn_rise_fwd_s"] < 2e-7
    assert row["syn_rise_bwd_s"] == pytest.approx(row["syn_rise_fwd_s"], rel=0.05)
    assert row["syn_rise_fwd_s"] < row["syn_settle_fwd_s"] < 3e-7 and row["syn_settle_bwd_s"] < 3e-7
    assert row["tau_s"] == pytest.approx(max(row["syn_rise_fwd_s"], row["syn_rise_bwd_s"]) / 2.1972, rel=1e-3)
    spec = get_block("synapse")
    p = {**spec.params, "wp": 2 * spec.params["wp"], "lp": 2 * spec.params["lp"]}
    bench = block_bench(spec, str(find_models()), "tt", 27.0, params=p)
    slow = measure_block("synapse", run_block(bench), p)
    assert slow["syn_rise_fwd_s"] > 2 * row["syn_rise_fwd_s"]  # measured 164 ns against 49.9 ns
    assert not slow["syn_settle_fwd_s"] <= row["syn_settle_fwd_s"]  # longer, or past the window (NaN)


@pytest.mark.slow
def test_node_pair_testbench_r_c_tau():
    require_ngspice()
    p = BLOCKS["node"].params
    row = _measure("node")
    assert row["node_R_ohm"] == pytest.approx(p["r"], rel=0.01)  # measured +0.07 %
    assert row["node_C_F"] == pytest.approx(p["c"], rel=0.02)
    assert row["node_tau_s"] == pytest.approx(p["r"] * p["c"], rel=0.02)
    assert abs(row["node_R_mismatch"]) < 1e-9 and abs(row["node_tension_offset"]) < 1e-3
    broken = _measure("node", (BROKEN / "hwbp_neuron_pair.cir").read_text())
    assert broken["node_R_mismatch"] < -0.4  # R+/R- - 1 = -0.5


@pytest.mark.slow
def test_loss_port_testbench_realizes_beta():
    require_ngspice()
    row = _measure("loss")
    assert row["loss_beta"] == pytest.approx(BLOCKS["loss"].params["beta"], rel=0.01)  # measured -0.2 %
    assert abs(row["loss_offset"]) < 1e-3 and row["loss_lin_err"] < 0.02 and row["loss_cm_gain_err"] < 0.01
    assert row["supply_current_A"] == pytest.approx(BLOCKS["loss"].quiescent_current_A, rel=0.05)
    # its step response (measured 54 ns 10-90 %, 112 ns to 1 %)
    assert 5e-9 < row["loss_rise_s"] < row["loss_settle_s"] < 3e-7


def _tiny_verify(options: dict):
    from hwbp.io import random_batch
    from hwbp.models import random_mlp
    from hwbp.verify.run import verify

    graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    v = verify(graph, random_batch(graph, 2, seed=0), backend="spice", options={"pdk": "sky130", **options})
    return v, {k: m["cosine"] for k, m in v.report["parameters"].items()}


def test_the_netlist_header_states_the_node_pairs_drive_limit():
    from hwbp.lower.lowerer import lower
    from hwbp.models import random_mlp
    from hwbp.targets.spice.backend import SpiceBackend

    graph = random_mlp([2, 2, 1], activation="tanh", seed=0).with_loss("mse")
    be = SpiceBackend()
    circuit = be.compile(lower(graph), be.options({"pdk": "sky130"})).data
    header = " ".join(circuit.header)
    assert "act, syn, node, loss cells" in header
    assert "node pairs: the drives fd, sd present vcm + vu*value within the supply rails" in header
    circuit = be.compile(lower(graph), be.options({"pdk": "sky130", "pdk_cells": "act,syn"})).data
    assert "node pairs:" not in " ".join(circuit.header)


@pytest.mark.slow
@pytest.mark.long
def test_node_pairs_at_transistor_level_and_a_pair_whose_leaks_differ_fails(tmp_path, monkeypatch):
    require_ngspice()
    import hwbp.pdk.cells as cells_mod

    _, cos = _tiny_verify({"pdk_cells": "node"})
    assert min(cos.values()) > 0.9999, cos  # matched halves: measured 1.000000 (rel_err 0.2 %)
    lib = tmp_path / "sky130"
    shutil.copytree(ROOT / "circuits" / "sky130", lib)
    shutil.copy(BROKEN / "hwbp_neuron_pair.cir", lib / "hwbp_neuron_pair.cir")
    monkeypatch.setattr(cells_mod, "cells_dir", lambda: lib)
    _, cos = _tiny_verify({"pdk_cells": "node"})
    assert min(cos.values()) < 0.99, cos


@pytest.mark.slow
@pytest.mark.long
def test_synapses_at_transistor_level_meet_the_cosine_bound():
    require_ngspice()
    # ~1,000 BSIM4 devices: the .op and the supply .op take minutes of CPU each
    v, cos = _tiny_verify({"pdk_cells": "syn", "timeout_s": 3000.0})
    assert min(cos.values()) >= 0.99, cos  # measured: 0.99996 (fc1.bias) and above
    # 24 synapses and 32 forward halves at 1 uA tails: ~0.2 mW (measured 2.17e-4 W)
    assert 1e-4 < v.report["settle"]["supply_power_W"] < 5e-4


def test_seeded_deck_carries_the_seed_option():
    from hwbp.pdk.sky130 import seeded

    assert seeded("* title\nR1 a 0 1k\n", None) == "* title\nR1 a 0 1k\n"
    assert seeded("* title\nR1 a 0 1k\n", 7) == "* title\n.option seed=7\nR1 a 0 1k\n"


@pytest.mark.slow
def test_monte_carlo_seed_reproduces_the_draw():
    """The same seed gives the same mismatch draw in a fresh ngspice run, another seed
    another draw (ngspice 39 ignores ``set rndseed`` for the models' agauss)."""
    require_ngspice()
    from hwbp.pdk.blocks import block_bench, measure_block, run_block
    from hwbp.pdk.sky130 import find_models

    spec, lib = get_block("node"), str(find_models())
    r = [measure_block("node", run_block(block_bench(spec, lib, "tt_mm", 27.0, s)))["node_R_ohm"] for s in (3, 3, 4)]
    assert r[0] == r[1] and r[0] != r[2]


def test_block_table_carries_the_step_responses(tmp_path):
    """``blocks.csv`` round-trips the step-response columns, and ``blocks.md`` shows them (a
    settling past the window as nan); a file without them reads them as empty."""
    import math

    from hwbp.pdk.blockchar import blocks_csv, blocks_markdown, read_blocks_csv
    from hwbp.pdk.blocks import BLOCK_COLUMNS

    row = {c: "" for c in BLOCK_COLUMNS}
    row.update(cell="synapse", corner="tt", temp_C=27.0, mc_seed="", vu_V=0.125, syn_iu_A=8.3e-8,
               syn_gain_lin_err=0.003, syn_fb_mismatch=1e-10, syn_offset_fwd=0.002, syn_offset_bwd=0.002, syn_x_lin_err=0.03,
               syn_rise_fwd_s=4.99e-8, syn_rise_bwd_s=5.01e-8, syn_settle_fwd_s=1.1e-7,
               syn_settle_bwd_s=float("nan"), tau_s=5.01e-8 / math.log(9.0), supply_current_A=2.7e-6,
               power_W=4.8e-6, area_um2=373.0)
    path = tmp_path / "blocks.csv"
    path.write_text(blocks_csv([row]))
    back = read_blocks_csv(path)[0]
    assert back["syn_rise_bwd_s"] == 5.01e-8 and back["tau_s"] == pytest.approx(2.28e-8, rel=1e-3)
    assert math.isnan(back["syn_settle_bwd_s"])
    md = blocks_markdown([back], "hwbp characterize")
    assert "| t 10-90 fwd (s) | t 10-90 bwd (s) | t 1 % fwd (s) | t 1 % bwd (s) | tau (s) |" in md
    assert "| 4.99e-08 | 5.01e-08 | 1.1e-07 | nan | 2.28e-08 |" in md
    old = tmp_path / "old.csv"
    old.write_text("cell,corner,temp_C,mc_seed,vu_V,syn_iu_A\nsynapse,tt,27,,0.125,8.3e-08\n")
    assert read_blocks_csv(old)[0]["tau_s"] == ""
