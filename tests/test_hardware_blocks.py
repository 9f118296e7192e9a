"""The hardware model's loss-port gain error and the derived model's block-cell sections
(the synapse, node pair and loss port measurements of ``blocks.csv``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_batch
from hwbp.errors import ConfigError
from hwbp.hardware import Hardware, hardware_from_mapping, load_hardware
from hwbp.models import random_mlp
from hwbp.verify.run import verify

ROOT = Path(__file__).resolve().parent.parent
CHAR = ROOT / "sims" / "sky130" / "characterization"


def _net():
    g = random_mlp([5, 6, 3], activation="tanh", seed=1, gain=1.2).with_loss("mse")
    return g, make_batch(g, 4, seed=1)


def test_loss_gain_scales_every_gradient_and_keeps_its_direction() -> None:
    """A loss port at beta (1 + g): every read-out gradient is (1 + g) times the exact one;
    g = 0 (the default) is the ideal network bit for bit."""
    g, b = _net()
    opts = {"mode": "steady"}
    ideal = verify(g, b, options=opts)
    hw = verify(g, b, options=opts, hardware=hardware_from_mapping({"loss": {"beta_gain": 0.05}}), instance_seed=3)
    assert hw.report["hardware"]["features"] == ["loss"]
    for k, v in ideal.physical.parameters.items():
        np.testing.assert_allclose(hw.physical.parameters[k], 1.05 * v, rtol=1e-9, atol=1e-14)
        assert hw.report["parameters"][k]["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert not np.allclose(hw.physical.parameters[k], v, rtol=1e-3)  # negative control: it is not ignored
    zero = verify(g, b, options=opts, hardware=hardware_from_mapping({"loss": {"beta_gain": 0.0}}), instance_seed=3)
    assert hardware_from_mapping({"loss": {}}) == Hardware()
    for k, v in ideal.physical.parameters.items():
        assert np.array_equal(v, zero.physical.parameters[k])


def test_loss_gain_spread_is_drawn_per_instance() -> None:
    g, b = _net()
    hw = hardware_from_mapping({"loss": {"beta_gain_sigma": 0.1}})
    scales = []
    for seed in (0, 1):
        v = verify(g, b, options={"mode": "steady"}, hardware=hw, instance_seed=seed)
        ideal = verify(g, b, options={"mode": "steady"})
        w = "fc1.weight" if "fc1.weight" in ideal.physical.parameters else next(iter(ideal.physical.parameters))
        scales.append(float(np.sum(v.physical.parameters[w] * ideal.physical.parameters[w])
                            / np.sum(ideal.physical.parameters[w] ** 2)))
    assert scales[0] != pytest.approx(scales[1], abs=1e-4)
    assert all(0.5 < s < 1.5 for s in scales)


@pytest.mark.parametrize("text,word", [("[loss]\nbeta_gain = -1\n", "beta_gain"),
                                       ("[loss]\nbeta_gain_sigma = -0.1\n", "beta_gain_sigma"),
                                       ("[mismatch]\ncorrelation = 1.5\n", "correlation"),
                                       ("[synapses]\noffset_fwd_sigma = -0.1\n", "offset_fwd_sigma"),
                                       ("[synapses]\noffset_correlation = 2\n", "offset_correlation"),
                                       ("[synapses]\noffset = 0.1\n", "offset"),
                                       ("[loss]\noffset_sigma = -1\n", "offset_sigma")])
def test_loss_and_correlation_errors(tmp_path: Path, text: str, word: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=word) as info:
        load_hardware(p)
    assert "\n" not in str(info.value)


def _row(cell: str, seed, **kw):
    from hwbp.pdk.blocks import BLOCK_COLUMNS

    r = {c: "" for c in BLOCK_COLUMNS}
    r.update(cell=cell, corner="tt", temp_C=27.0, mc_seed=seed, vu_V=0.125, **kw)
    return r


def test_block_sections_equations() -> None:
    """sigma = pooled synapse gain spread, rho = 1 - fb^2 / (2 sigma^2), r_sigma =
    std(R+/R- - 1)/sqrt(2), c_sigma = relative spread of C, beta_gain from the nominal row."""
    from hwbp.pdk.derive import block_sections, synapse_area_um2

    rows = [_row("synapse", 1, syn_gain_sd=0.03, syn_fb_rms=0.02), _row("synapse", 2, syn_gain_sd=0.04,
                                                                         syn_fb_rms=0.03),
            _row("node", 1, node_R_mismatch=0.01, node_C_F=1.0e-12), _row("node", 2, node_R_mismatch=-0.01,
                                                                           node_C_F=1.1e-12),
            _row("loss", "", loss_beta_err=-0.002, loss_beta=0.2495), _row("loss", 1, loss_beta=0.25),
            _row("loss", 2, loss_beta=0.26), _row("synapse", 3, syn_gain_sd=9.0, syn_fb_rms=9.0)]
    rows[-1]["corner"] = "ss"  # another corner: not taken
    s = block_sections(rows)
    sg, fb = np.sqrt((0.03 ** 2 + 0.04 ** 2) / 2), np.sqrt((0.02 ** 2 + 0.03 ** 2) / 2)
    assert s["synapse"]["sigma"] == pytest.approx(sg)
    assert s["synapse"]["rho"] == pytest.approx(1 - fb ** 2 / (2 * sg ** 2))
    assert s["synapse"]["pelgrom_A_um"] == pytest.approx(sg * np.sqrt(synapse_area_um2()))
    assert s["node"]["r_sigma"] == pytest.approx(np.std([0.01, -0.01], ddof=1) / np.sqrt(2))
    assert s["node"]["c_sigma"] == pytest.approx(np.std([1.0, 1.1], ddof=1) / 1.05)
    assert s["loss"]["beta_gain"] == -0.002
    assert s["loss"]["beta_gain_sigma"] == pytest.approx(np.std([0.25, 0.26], ddof=1) / 0.255)


def test_synapse_area_is_the_cells_tail() -> None:
    """area_um2 comes from the synapse cell's sizing (the Gilbert tail wt*lt in its file)."""
    from hwbp.pdk.cells import BLOCKS
    from hwbp.pdk.derive import synapse_area_um2

    p = BLOCKS["synapse"].params
    assert synapse_area_um2() == p["wt"] * p["lt"]
    text = BLOCKS["synapse"].path.read_text()
    assert f"wt={p['wt']:g} lt={p['lt']:g}" in text


def test_pair_slope_adds_q_times_f_at_any_tension() -> None:
    """The pair gate's two f copies at gains 1 + g +- q/2 leave q f(a) in the gate; q = 0
    (None) is the pair gate without it, bit for bit."""
    from hwbp.hardware.curves import CellModel
    from hwbp.ir.activations import get_activation

    fn = get_activation("tanh")
    a = np.linspace(-2.0, 2.0, 9)
    one, zero = np.ones(9), np.zeros(9)
    base = CellModel(None, fn, None, one, zero, one, zero, pair=True)
    q = 0.07 * np.ones(9)
    sloped = CellModel(None, fn, None, one, zero, one, zero, pair=True, pair_slope=q)
    for t in (0.0, 0.3):
        e0 = base.gated(a, None, np.full(9, t))
        np.testing.assert_allclose(sloped.gated(a, None, np.full(9, t)) - e0, q * np.tanh(a), rtol=1e-12, atol=1e-15)
    # the gain-mismatched copies themselves: (1 + q/2) f(a + t/2) - (1 - q/2) f(a - t/2)
    t = 0.2
    copies = (1 + 0.035) * np.tanh(a + t / 2) - (1 - 0.035) * np.tanh(a - t / 2)
    np.testing.assert_allclose(sloped.gated(a, None, np.full(9, t)), copies, atol=0.035 * t ** 2)
    assert not np.allclose(base.gated(a, None, np.full(9, t)), copies, atol=0.035 * t ** 2)  # negative control


def test_pair_slope_is_drawn_and_off_by_default() -> None:
    g, b = _net()
    cells = {"gate": "pair", "f_gain_sigma": 0.01}
    without = verify(g, b, options={"mode": "steady"}, hardware=hardware_from_mapping({"cells": cells}),
                     instance_seed=2)
    with_q = verify(g, b, options={"mode": "steady"}, instance_seed=2,
                    hardware=hardware_from_mapping({"cells": {**cells, "pair_slope_sigma": 0.05}}))
    same = verify(g, b, options={"mode": "steady"}, instance_seed=2,
                  hardware=hardware_from_mapping({"cells": {**cells, "pair_slope_sigma": 0.0}}))
    for k, v in without.physical.parameters.items():
        assert np.array_equal(v, same.physical.parameters[k])
    assert any(not np.allclose(v, with_q.physical.parameters[k]) for k, v in without.physical.parameters.items())
    with pytest.raises(ConfigError, match="pair_slope_sigma"):
        hardware_from_mapping({"cells": {"pair_slope_sigma": 0.05}})


def test_derived_pair_slope_recovers_a_known_slope() -> None:
    from hwbp.pdk.derive import Measured, pair_slope

    a = np.linspace(-4, 4, 81)
    T = np.array([0.0, 0.5])
    f = np.tanh(a)
    nom = Measured(a, T, f, np.stack([0.001 * np.ones_like(a), f]))
    draw = Measured(a, T, f, np.stack([0.001 + 0.02 - 0.05 * f, f]))
    assert pair_slope(draw, nom) == pytest.approx(-0.05, abs=1e-12)
    assert pair_slope(nom, nom) == pytest.approx(0.0, abs=1e-15)


def test_committed_model_carries_the_block_measurements() -> None:
    """sims/sky130/characterization/hardware.toml takes the synapse, node pair and loss port
    measurements of the blocks.csv beside it (read back here, no ngspice)."""
    from hwbp.pdk.blockchar import read_blocks_csv
    from hwbp.pdk.derive import synapse_area_um2

    rows = read_blocks_csv(CHAR / "blocks.csv")
    hw = load_hardware(CHAR / "hardware.toml")

    def mc(cell):
        return [r for r in rows if r["cell"] == cell and r["corner"] == "tt" and r["temp_C"] == 27
                and r["mc_seed"] != ""]

    syn = mc("synapse")
    assert len(syn) >= 4
    sg = float(np.sqrt(np.mean([r["syn_gain_sd"] ** 2 for r in syn])))
    fb = float(np.sqrt(np.mean([r["syn_fb_rms"] ** 2 for r in syn])))
    assert hw.mismatch.area_um2 == synapse_area_um2() == 4.0
    assert hw.mismatch.sigma_total == pytest.approx(sg, rel=1e-5)
    assert hw.mismatch.correlation == pytest.approx(max(-1.0, 1 - fb ** 2 / (2 * sg ** 2)), abs=1e-5)
    node = mc("node")
    assert len(node) >= 4
    assert hw.nodes.r_sigma == pytest.approx(np.std([r["node_R_mismatch"] for r in node], ddof=1) / np.sqrt(2),
                                             rel=1e-5)
    c = [r["node_C_F"] for r in node]
    assert hw.nodes.c_sigma == pytest.approx(np.std(c, ddof=1) / np.mean(c), rel=1e-5)
    loss_nom = next(r for r in rows if r["cell"] == "loss" and r["mc_seed"] == "" and r["corner"] == "tt")
    assert hw.loss.beta_gain == pytest.approx(loss_nom["loss_beta_err"], rel=1e-5)
    beta = [r["loss_beta"] for r in mc("loss")]
    assert hw.loss.beta_gain_sigma == pytest.approx(np.std(beta, ddof=1) / np.mean(beta), rel=1e-5)
    # the offsets: every instance's output at zero input, pooled; the loss port's input offset
    for key, got in (("syn_offset_fwd_rms", hw.synapses.offset_fwd_sigma),
                     ("syn_offset_bwd_rms", hw.synapses.offset_bwd_sigma)):
        assert got == pytest.approx(float(np.sqrt(np.mean([r[key] ** 2 for r in syn]))), rel=1e-5)
        assert 0.05 < got < 1.0  # measured ~0.2-0.3 of full scale under mismatch
    assert abs(hw.synapses.offset_correlation) < 0.5  # two halves, their own devices
    assert hw.loss.offset_sigma == pytest.approx(np.std([r["loss_offset"] for r in mc("loss")], ddof=1), rel=1e-5)
    assert hw.loss.offset == pytest.approx(loss_nom["loss_offset"], rel=1e-5)


def test_committed_pair_slope_is_the_draws_rms() -> None:
    from hwbp.pdk.derive import pair_slope
    from hwbp.pdk.report import load_curves, rows_from_csv

    rows = rows_from_csv(CHAR / "characterization.csv")
    curves = load_curves(CHAR / "curves.npz")
    sel = [k for k, r in enumerate(rows) if r["cell"] == "tanh" and r["corner"] == "tt" and r["temp_C"] == 27]
    nom = next(k for k in sel if rows[k]["mc_seed"] == "")
    q = [pair_slope(curves[k], curves[nom]) for k in sel if rows[k]["mc_seed"] != ""]
    assert len(q) >= 2
    assert load_hardware(CHAR / "hardware.toml").cells.pair_slope_sigma == pytest.approx(
        float(np.sqrt(np.mean(np.square(q)))), rel=1e-9)


def test_block_sections_offsets() -> None:
    """[synapses]: pooled rms of the per-draw offset rms, correlation = mean cov / (rms rms);
    [loss] offset: the nominal value and the standard deviation over the draws; rows
    without the offset columns give no offset terms (negative control)."""
    from hwbp.hardware import hardware_from_mapping
    from hwbp.pdk.derive import block_sections, hardware_toml

    syn = [_row("synapse", 1, syn_gain_sd=0.03, syn_fb_rms=0.02, syn_offset_fwd_rms=0.2, syn_offset_bwd_rms=0.3,
                syn_offset_fb_cov=0.01),
           _row("synapse", 2, syn_gain_sd=0.04, syn_fb_rms=0.03, syn_offset_fwd_rms=0.1, syn_offset_bwd_rms=0.2,
                syn_offset_fb_cov=-0.03)]
    loss = [_row("loss", "", loss_beta_err=-0.002, loss_beta=0.2495, loss_offset=1e-4),
            _row("loss", 1, loss_beta=0.25, loss_offset=0.1), _row("loss", 2, loss_beta=0.26, loss_offset=-0.2)]
    s = block_sections(syn + loss)
    sf, sb = np.sqrt((0.2 ** 2 + 0.1 ** 2) / 2), np.sqrt((0.3 ** 2 + 0.2 ** 2) / 2)
    o = s["synapse_offset"]
    assert o["fwd_sigma"] == pytest.approx(sf) and o["bwd_sigma"] == pytest.approx(sb)
    assert o["rho"] == pytest.approx(-0.01 / (sf * sb)) and o["instances"] == 10
    assert s["loss"]["offset"] == 1e-4 and s["loss"]["offset_sigma"] == pytest.approx(np.std([0.1, -0.2], ddof=1))
    # the derived TOML carries them, and the hardware model reads them back
    rows = [{"cell": "tanh", "corner": "tt", "temp_C": 27.0, "mc_seed": "", "vu_V": 0.125, "f_gain": 0.95,
             "f_offset": 0.0, "gate_gain": 0.97, "gate_offset": 0.0}]
    import tomllib

    hw = hardware_from_mapping(tomllib.loads(hardware_toml(rows, blocks=syn + loss)))
    assert hw.synapses.offset_fwd_sigma == pytest.approx(sf, rel=1e-5)
    assert hw.synapses.offset_correlation == pytest.approx(-0.01 / (sf * sb), rel=1e-5)
    assert hw.loss.offset_sigma == pytest.approx(np.std([0.1, -0.2], ddof=1), rel=1e-5)
    old = [{k: v for k, v in r.items() if "offset" not in k} for r in syn + loss]
    s_old = block_sections(old)
    assert "synapse_offset" not in s_old and "offset_sigma" not in s_old["loss"]
    assert "[synapses]" not in hardware_toml(rows, blocks=old)
