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
                                       ("[mismatch]\ncorrelation = 1.5\n", "correlation")])
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
