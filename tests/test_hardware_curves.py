"""Measured cells in the hardware model: a tabulated transfer curve (spline through the
measured samples, its derivative), the pair gate ``f~(a + T/2) - f~(a - T/2)`` the SKY130
cells compute, and synapse mismatch with Pelgrom area scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_batch
from hwbp.dynamics.drive import drive, forward_pass
from hwbp.errors import ConfigError
from hwbp.hardware import Hardware, hardware_from_mapping, load_hardware, realize
from hwbp.hardware.compare import instance_gradients
from hwbp.hardware.curves import Curve
from hwbp.lower.lowerer import lower
from hwbp.models import random_mlp
from hwbp.sim.simulate import simulate
from hwbp.verify.run import verify
from hardware_helpers import assert_output_weight_gradient_is_central_difference

ROOT = Path(__file__).resolve().parent.parent
GRID = np.round(np.arange(-4.0, 4.0001, 0.1), 10)


def _net(seed: int = 1):
    g = random_mlp([5, 6, 3], activation="tanh", seed=seed, gain=1.2).with_loss("mse")
    return g, make_batch(g, 4, seed=seed)


def _measured_like() -> dict:
    """A tanh-like cell with a gain error, an even-order bend and an offset: not tanh."""
    f = 0.96 * np.tanh(GRID) + 0.01 + 0.004 * np.tanh(GRID) ** 2
    z = -0.005 * np.exp(-GRID ** 2)
    return {"a": GRID.tolist(), "f": f.tolist(), "gate_zero": z.tolist()}


def test_tabulated_curve_reproduces_its_samples_and_their_derivative() -> None:
    table = _measured_like()
    c = Curve(tuple(table["a"]), tuple(table["f"]), tuple(table["gate_zero"]))
    np.testing.assert_allclose(c.value(GRID), table["f"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(c.zero(GRID), table["gate_zero"], rtol=0, atol=1e-15)
    # between the samples the spline follows the smooth curve, and so does its derivative
    mid = GRID[:-1] + 0.05
    exact = 0.96 * np.tanh(mid) + 0.01 + 0.004 * np.tanh(mid) ** 2
    dexact = (0.96 + 0.008 * np.tanh(mid)) / np.cosh(mid) ** 2
    assert np.max(np.abs(c.value(mid) - exact)) < 1e-4
    assert np.max(np.abs(c.slope(mid) - dexact)) < 2e-3
    # beyond the grid: the end tangent, continuous with the spline
    lo, hi = GRID[0], GRID[-1]
    assert c.value(np.array([hi + 1.0]))[0] == pytest.approx(c.value(np.array([hi]))[0] + c.slope(np.array([hi]))[0])
    assert c.slope(np.array([lo - 2.0]))[0] == pytest.approx(c.slope(np.array([lo]))[0])


def _settled(hw: Hardware, seed: int = 0):
    g, b = _net()
    inst = realize(lower(g), hw, seed)
    res = simulate(inst, b, mode="steady")
    return g, b, inst, res


@pytest.mark.parametrize("with_curve", [False, True])
def test_pair_gate_is_the_finite_difference_of_the_realized_f(with_curve: bool) -> None:
    data = {"cells": {"gate": "pair", "df_gain": -0.01}}
    if with_curve:
        data["curves"] = {"tanh": _measured_like()}
    g, b, inst, res = _settled(hardware_from_mapping(data))
    st = res.state
    c = Curve(tuple(GRID), tuple(_measured_like()["f"]), tuple(_measured_like()["gate_zero"])) if with_curve else None
    x = forward_pass(inst, b, instance=None)  # nominal weights: the instance has no device mismatch
    checked = 0
    for pop in inst.populations:
        term = pop.terms[0]
        if term.activation != "tanh":
            continue
        checked += 1
        w, bias = inst.parameters[term.weight], inst.parameters[term.bias]
        src = b.x[term.source] if term.source in b.x else st.mean[term.source]
        a = src @ w.T + bias
        t = st.tension[pop.name]
        if c is None:
            expect = 0.99 * (np.tanh(a + t / 2) - np.tanh(a - t / 2))
        else:
            expect = 0.99 * (c.value(a + t / 2) - c.value(a - t / 2)) + c.zero(a)
        np.testing.assert_allclose(st.gates[(pop.name, 0)], expect, rtol=1e-9, atol=1e-12)
        # the settled means are the forward pass of the realized f
        assert np.all(np.isfinite(x[pop.name]))
    assert checked >= 1
    # and the state is the fixed point of the one drive (hwbp.dynamics) with these cells
    d = drive(inst, b, st.mean, st.tension)
    for k, e in d.gates.items():
        np.testing.assert_allclose(e, st.gates[k], rtol=1e-9, atol=1e-12)


def test_pair_gate_error_is_third_order_in_the_tension() -> None:
    """With the ideal tanh the pair gate differs from the derivative gate by f'''(a) T^3 / 24."""
    hw_pair = hardware_from_mapping({"cells": {"gate": "pair"}})
    g, b = _net()
    s = lower(g)
    inst = realize(s, hw_pair, 0)
    mean = forward_pass(s, b, instance=None)
    errs = []
    for scale in (0.1, 0.2):
        tension = {p.name: scale * np.ones((b.size, p.size)) for p in s.populations}
        pair = drive(inst, b, mean, tension).gates
        ideal = drive(s, b, mean, tension).gates
        errs.append(max(float(np.max(np.abs(pair[k] - ideal[k]))) for k in ideal))
    assert errs[0] > 0
    assert errs[1] / errs[0] == pytest.approx(8.0, rel=0.02)  # O(T^3)


def test_curve_instance_oracle_is_the_exact_derivative_of_the_spline() -> None:
    g, b = _net(2)
    hw = hardware_from_mapping({"cells": {"gate": "pair", "f_gain_sigma": 0.05}, "curves": {"tanh": _measured_like()}})
    s = lower(g)
    inst = realize(s, hw, 3)
    gr = instance_gradients(inst, b)
    assert_output_weight_gradient_is_central_difference(inst, s, b, gr)


def test_curves_toml_round_trip_and_errors(tmp_path: Path) -> None:
    t = _measured_like()
    p = tmp_path / "hw.toml"
    p.write_text("unit_V = 0.125\n[cells]\ngate = \"pair\"\npair_offset_sigma = 0.002\n[curves.tanh]\n"
                 f"a = {t['a']}\nf = {t['f']}\n")
    hw = load_hardware(p)
    assert hw.features() == ("cells",) and hw.curves["tanh"].f == tuple(t["f"])
    again = hardware_from_mapping(hw.as_dict())
    assert again.curves["tanh"].a == hw.curves["tanh"].a and again.cells == hw.cells
    bad = {"[curves.tanh]\na = [0, 1, 2, 3]\n": "a and f", "[curves.nope]\na = [0]\nf = [0]\n": "nope",
           "[curves.tanh]\na = [0, 2, 1, 3]\nf = [0, 1, 2, 3]\n": "increase",
           "[cells]\ngate = \"twice\"\n": "gate", "[cells]\npair_offset_sigma = 0.1\n": "pair",
           "[mismatch]\npelgrom_A_um = 0.1\n": "area_um2",
           "[mismatch]\nsigma = 0.1\npelgrom_A_um = 0.1\narea_um2 = 1.0\n": "not both"}
    for text, word in bad.items():
        p.write_text(text)
        with pytest.raises(ConfigError, match=word) as exc:
            load_hardware(p)
        assert "\n" not in str(exc.value)


def test_pelgrom_mismatch_is_sigma_at_that_area_bit_for_bit() -> None:
    g, b = _net()
    a = hardware_from_mapping({"mismatch": {"pelgrom_A_um": 0.1, "area_um2": 4.0}})
    assert a.mismatch.sigma_total == pytest.approx(0.05)
    ra = verify(g, b, hardware=a, seed=3)
    rb = verify(g, b, hardware=hardware_from_mapping({"mismatch": {"sigma": 0.1 / np.sqrt(4.0)}}), seed=3)
    for k, v in ra.physical.parameters.items():
        assert np.array_equal(v, rb.physical.parameters[k])
    # four times the area: half the spread
    assert hardware_from_mapping({"mismatch": {"pelgrom_A_um": 0.1, "area_um2": 16.0}}).mismatch.sigma_total \
        == pytest.approx(0.025)


def test_pelgrom_fit_recovers_the_slope() -> None:
    from hwbp.pdk.mismatch import pelgrom_fit

    rows = [{"device": "nfet_01v8", "area_um2": a, "sigma_device": 0.012 / np.sqrt(a)} for a in (2.0, 8.0, 32.0)]
    assert pelgrom_fit(rows, "nfet_01v8") == pytest.approx((0.012, 0.0), abs=1e-12)


def test_cell_models_without_curves_keep_older_draws() -> None:
    """The pair gate's offsets come from their own stream: the mismatch and node draws
    of an instance do not change when the pair gate is switched on."""
    g, b = _net()
    s = lower(g)
    base = {"mismatch": {"sigma": 0.05}, "nodes": {"r_sigma": 0.02}}
    i1 = realize(s, hardware_from_mapping(base), 4).instance
    i2 = realize(s, hardware_from_mapping({**base, "cells": {"gate": "pair", "pair_offset_sigma": 0.01}}), 4).instance
    for key, d in i1.terms.items():
        assert np.array_equal(d.fwd_plus, i2.terms[key].fwd_plus)
    for name, d in i1.nodes.items():
        assert np.array_equal(d.r_plus, i2.nodes[name].r_plus)


def test_spice_refuses_tabulated_cells_in_one_line() -> None:
    g, b = _net()
    hw = hardware_from_mapping({"cells": {"gate": "pair"}})
    with pytest.raises(ConfigError, match="reference backend") as exc:
        verify(g, b, backend="spice", hardware=hw, seed=0)
    assert "\n" not in str(exc.value)
