"""The network at transistor level (``--backend spice --pdk sky130``): a tanh MLP 4-8-3 whose
activation cells (f and the gate), synapses, node pairs and loss port are SKY130 circuits gives gradients with cosine
>= 0.99 per tensor against exact backprop of the nominal network on tt, 27 C, and reports its
supply power; a tanh cell whose gate is not the derivative of its f (the negative control in
tests/fixtures/sky130_broken/) fails that bound.  Two ngspice runs plus one supply run each."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hwbp.errors import ConfigError
from hwbp.io import random_batch
from hwbp.models import random_mlp
from hwbp.verify.run import verify
from spice_helpers import require_ngspice

ROOT = Path(__file__).resolve().parents[1]
MIN_COSINE = 0.99


def _tiny():
    graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    return graph, random_batch(graph, 2, seed=0)


def _cosines(v) -> dict[str, float]:
    return {k: m["cosine"] for k, m in v.report["parameters"].items()}


@pytest.mark.slow
@pytest.mark.long
def test_tiny_tanh_mlp_at_transistor_level_meets_the_cosine_bound():
    require_ngspice()
    graph, batch = _tiny()
    v = verify(graph, batch, backend="spice", options={"pdk": "sky130"})
    cos = _cosines(v)
    # default --pdk-cells act,syn,node,loss (every cell at transistor level; the synapses with the node pairs
    # converge since the pair's drives are limited to the rails); measured on tt, 27 C: fc1.weight 0.99459,
    # fc1.bias 0.99650, fc2.* > 0.9999
    assert min(cos.values()) >= MIN_COSINE, cos
    # the gradient is no longer exact: the transistor cells' shape and gain errors show
    assert max(v.report["parameters"][k]["rel_err"] for k in cos) > 1e-3
    settle = v.report["settle"]
    assert settle["pdk"] == "sky130" and settle["corner"] == "tt" and settle["realization"] == "pair"
    # 8 tanh cells of 3 pairs and 56 synapse halves at 1 uA tails (plus their mirrors) and 3 loss ports:
    # ~0.3 mW (measured 3.21e-4 W; without the synapses 1.04e-4 W)
    assert 1e-4 < settle["supply_power_W"] < 1e-3


@pytest.mark.slow
def test_a_gate_that_is_not_the_derivative_of_its_f_fails(tmp_path, monkeypatch):
    require_ngspice()
    import hwbp.pdk.cells as cells_mod

    shutil.copy(ROOT / "tests" / "fixtures" / "sky130_broken" / "hwbp_act_tanh.cir", tmp_path / "hwbp_act_tanh.cir")
    shutil.copy(ROOT / "circuits" / "sky130" / "tb_hwbp_act_tanh.cir", tmp_path / "tb_hwbp_act_tanh.cir")
    monkeypatch.setattr(cells_mod, "cells_dir", lambda: tmp_path)
    graph, batch = _tiny()
    v = verify(graph, batch, backend="spice", options={"pdk": "sky130", "pdk_cells": "act"})
    cos = _cosines(v)
    assert min(cos.values()) < MIN_COSINE, cos


@pytest.mark.slow
@pytest.mark.long
def test_tran_reports_settling_to_one_percent_and_energy_per_sample():
    """``.tran`` at transistor level (one sample): the 1 % settling time and the energy per
    sample are reported and positive, and the settling is what first-order nodes of the
    measured time constant allow: at least ln(100) tau (a node from a random start comes
    within 1 % no sooner) and within the run (24 tau for this depth)."""
    import math

    require_ngspice()
    graph, _ = _tiny()
    v = verify(graph, random_batch(graph, 1, seed=0), backend="spice", options={"pdk": "sky130", "pdk_cells": "act", "analysis": "tran"})
    s = v.report["settle"]
    tau, t1, e = s["tau_s"], s["settling_time_1pct_s"], s["energy_per_sample_J"]
    assert t1 > 0 and e > 0 and s["supply_power_W"] > 0
    assert e == pytest.approx(s["supply_power_W"] * t1, rel=1e-12)
    assert math.log(100.0) * tau <= t1 <= s["duration_tau"] * tau
    # the stricter settling tolerance (1e-4) is reached later, on the same trace
    assert s["settling_time_s"] >= t1


@pytest.mark.slow
def test_tran_with_transistor_node_pairs_starts_from_the_drawn_state_on_their_capacitors():
    """``.tran`` with the transistor node pair: the initial state is set on the pair's capacitor
    nodes (vcm + vu * x), so the first point of the trace is the drawn initial state; the run
    settles to the gradient, at the pair's own time constant R*C = 125 kohm * 1 pF = 125 ns
    (not the behavioral node's 1 us).  ~30 s."""
    import math

    import numpy as np

    from hwbp.initial import initial_state

    require_ngspice()
    graph, _ = _tiny()
    batch = random_batch(graph, 1, seed=0)
    # every cell but the synapses (the default adds them: test_tran_with_every_cell_at_transistor_level)
    v = verify(graph, batch, backend="spice", options={"pdk": "sky130", "pdk_cells": "act,node,loss",
                                                       "analysis": "tran"})
    assert min(_cosines(v).values()) >= MIN_COSINE  # measured 0.99926
    start = initial_state(v.system, batch, "random", 0)
    tr = v.result.trace
    for name, t0 in start.tension.items():
        assert np.allclose(tr.tension[name][0], t0, rtol=1e-6, atol=1e-6), name
        assert np.allclose(tr.mean[name][0], start.mean[name], rtol=1e-6, atol=1e-6), name
    s = v.report["settle"]
    tau_pair = 125e3 * 1e-12
    # measured 1.41e-6 s (11.3 pair time constants, output step 6.25 ns), against 1.1e-5 s with the behavioral 1 us nodes
    assert math.log(100.0) * tau_pair <= s["settling_time_1pct_s"] < math.log(100.0) * s["tau_s"]
    # the time grid counts the pair's R*C: 1/20 of it per output step, max(12L, 24) of it in all
    assert s["dt_tau"] * s["tau_s"] == pytest.approx(tau_pair / 20, rel=1e-9)
    assert s["duration_tau"] * s["tau_s"] == pytest.approx(24 * tau_pair, rel=1e-9)


@pytest.mark.slow
@pytest.mark.long
def test_tran_with_every_cell_at_transistor_level():
    """The ``.tran`` default, every cell at transistor level (synapses included; ~100 s of
    ngspice CPU): it converges from the drawn initial state, meets the cosine bound, and
    settles no sooner than the node pairs alone allow (the synapses' ~50 ns rise adds to the
    pair's R*C; sims/sky130/tran_cells/tran_cells.md: 1.46e-6 s against 1.41e-6 s without them)."""
    import math

    import numpy as np

    from hwbp.initial import initial_state
    from hwbp.pdk.network import PDK_CELLS, pdk_cell_set

    require_ngspice()
    assert pdk_cell_set(None, "tran") == PDK_CELLS
    graph, _ = _tiny()
    batch = random_batch(graph, 1, seed=0)
    v = verify(graph, batch, backend="spice", options={"pdk": "sky130", "analysis": "tran"})
    assert min(_cosines(v).values()) >= MIN_COSINE  # measured 0.99982
    start = initial_state(v.system, batch, "random", 0)
    for name, t0 in start.tension.items():
        assert np.allclose(v.result.trace.tension[name][0], t0, rtol=1e-6, atol=1e-6), name
    s = v.report["settle"]
    tau_pair = 125e3 * 1e-12
    assert math.log(100.0) * tau_pair <= s["settling_time_1pct_s"] < s["duration_tau"] * s["tau_s"]
    assert s["supply_power_W"] > 2e-4  # the synapses' supplies too (measured 3.19e-4 W; 1.02e-4 W without)


def test_pdk_options_need_the_pdk_and_unknown_activations_are_refused(tmp_path):
    from hwbp.targets.spice.backend import SpiceBackend

    be = SpiceBackend()
    with pytest.raises(ConfigError, match="apply to --pdk sky130"):
        be.options({"corner": "ss"}).check()
    with pytest.raises(ConfigError, match="corner"):
        be.options({"pdk": "sky130", "corner": "xx"})
    from hwbp.hardware import hardware_from_mapping

    tiny, tiny_batch = _tiny()
    with pytest.raises(ConfigError, match="do not combine it with --hardware"):
        verify(tiny, tiny_batch, backend="spice", options={"pdk": "sky130"},
               hardware=hardware_from_mapping({"cells": {"f_gain": 0.1}}), instance_seed=0)
    graph = random_mlp([3, 4, 2], activation="softsign", seed=0).with_loss("mse")
    with pytest.raises(ConfigError, match="no transistor-level cell for activation 'softsign'"):
        verify(graph, random_batch(graph, 1, seed=0), backend="spice", options={"pdk": "sky130"})


def test_act_bias_sets_the_activation_cells_bias_and_needs_the_pdk():
    """``--act-bias`` (``act_bias_A``): the netlist's activation cells and the
    characterization's testbenches at that tail current, the unit current following it;
    without --pdk, or out of range, a one-line error."""
    from hwbp.pdk.cells import get_cell
    from hwbp.pdk.characterize import plan
    from hwbp.pdk.network import adapter_text
    from hwbp.targets.spice.backend import SpiceBackend

    be = SpiceBackend()
    with pytest.raises(ConfigError, match="--act-bias apply to --pdk sky130"):
        be.options({"act_bias_A": 1e-7}).check()
    with pytest.raises(ConfigError, match="must be 1e-9..1e-4 A"):
        get_cell("tanh").at_bias(1.0)
    assert "ib=1e-07" in adapter_text("tanh", 1e-7) and "unit current 1e-07 A" in adapter_text("tanh", 1e-7)
    assert "ib=1e-06" in adapter_text("tanh") and get_cell("tanh").at_bias(None) is get_cell("tanh")
    relu = get_cell("relu").at_bias(1e-5)
    assert relu.params["ib"] == pytest.approx(1e-5) and relu.params["iu"] == pytest.approx(5e-6)
    (run,) = plan(["tanh"], ["tt"], [27.0], 0, ib_A=3e-6)
    assert dict(run.bench.params)["ib"] == pytest.approx(3e-6)


#: The tension scale that meets the bound on seeds 0-9 (sims/sky130/tanh_sizing.md): the gate's
#: dividers at ratio rt = 4 (the pairs see a +- T/4), vu = 0.125 * (2/3) * (5/4) V/unit.
RECOMMENDED_ACT_PARAM = "rt=4,vu=0.104167"


def test_act_param_sets_the_cell_parameters_and_refuses_what_the_cell_has_not():
    """``--act-param`` (``act_params``): the netlist's tanh cells take the named parameters; the
    default netlist states rt = 2 (the divider it always had); a name the cell lacks, the bias,
    a non-positive value or a malformed item is a one-line error listing the valid names."""
    from hwbp.pdk.cells import RES_WIDTH_UM, RSHEET_OHM_PER_SQ, cell_area_um2, get_cell, parse_act_params
    from hwbp.pdk.network import adapter_text
    from hwbp.targets.spice.backend import SpiceBackend

    assert parse_act_params("rt=4, vu=0.104167,rdiv=400k") == {"rt": 4.0, "vu": 0.104167, "rdiv": 400e3}
    assert parse_act_params(None) == {} and get_cell("tanh").with_params({}) is get_cell("tanh")
    text = adapter_text("tanh", params=RECOMMENDED_ACT_PARAM)
    assert "rt=4.0" in text and "vu = 0.104167 V/unit" in text and "Ea ax vcm a 0 0.104167" in text
    assert "rt=2.0" in adapter_text("tanh") and "vu = 0.125 V/unit" in adapter_text("tanh")
    # the three divider legs to tn and vcm are rt * rdiv and the gate load vu * rt / (2 ib): rt = 4
    # adds 3 * 2 * rdiv and vu / ib of xhigh_po
    tanh = get_cell("tanh")
    p = tanh.params
    a2 = cell_area_um2(tanh.path, tanh.subckt, p)["res"]
    a4 = cell_area_um2(tanh.path, tanh.subckt, tanh.with_params({"rt": 4.0}).params)["res"]
    added_ohm = 3 * 2 * p["rdiv"] + p["vu"] / p["ib"]
    assert a4 - a2 == pytest.approx(added_ohm / RSHEET_OHM_PER_SQ * RES_WIDTH_UM ** 2, rel=1e-12)
    for bad, msg in (({"xx": 1.0}, "not a parameter of the tanh cell; valid: vu, rdiv, w, l, wt, lt, wp, lp, rt"),
                     ({"ib": 1e-6}, "set the bias with --act-bias"), ({"w": -1.0}, "must be a positive number")):
        with pytest.raises(ConfigError, match=msg):
            tanh.with_params(bad)
    with pytest.raises(ConfigError, match="not a parameter of the sigmoid cell"):
        adapter_text("sigmoid", params="rt=4")
    with pytest.raises(ConfigError, match="is not name=value"):
        parse_act_params("rt=4,vu")
    with pytest.raises(ConfigError, match="not a number"):
        parse_act_params("rt=four")
    be = SpiceBackend()
    with pytest.raises(ConfigError, match="--act-param and --act-bias apply to --pdk sky130"):
        be.options({"act_params": "rt=4"}).check()
    with pytest.raises(ConfigError, match="not a parameter of any activation cell"):
        be.options({"pdk": "sky130", "act_params": "wx=3"})


def test_act_param_errors_are_one_line_exit_2(capsys):
    from hwbp.cli import main

    model = str(ROOT / "examples" / "mlp_digits.onnx")
    for args, what in ((["--act-param", "rt=4"], "apply to --pdk sky130"),
                       (["--pdk", "sky130", "--act-param", "lx=2"], "--act-param lx"),
                       (["--pdk", "sky130", "--act-param", "rt=0"], "--act-param rt=0: must be a positive")):
        assert main(["verify", model, "--backend", "spice", *args, "--random-batch", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0], err


@pytest.mark.slow
@pytest.mark.long
def test_the_tension_scaled_gate_is_the_pairs_finite_difference_over_t_by_rt():
    """The tanh cell at rt = 4 (testbench, tt, 27 C): its gate is (rt/2)(f(a + T/rt) - f(a - T/rt))
    of its own measured f plus the zero-tension offset, and its error against f'(a)*T at T = 1 is
    below the default cell's (the O(T^3) term shrinks by (2/rt)^2 = 1/4).  Two testbench runs."""
    import numpy as np

    from hwbp.pdk.cells import get_cell, parse_act_params
    from hwbp.pdk.characterize import plan, run_all
    from hwbp.pdk.measure import f_curve, gate_curves

    require_ngspice()
    runs = plan(["tanh"], ["tt"], [27.0], 0) + plan(["tanh"], ["tt"], [27.0], 0,
                                                    params=parse_act_params(RECOMMENDED_ACT_PARAM))
    (row2, _), (row4, res) = run_all(runs, workers=1, progress=False)
    params = dict(runs[1].bench.params)
    f, gate = f_curve(res, get_cell("tanh"), params), gate_curves(res, params)
    a, rt = res.a, params["rt"]
    inner = np.abs(a) < 3.0
    for k, T in enumerate(res.T[1:], start=1):
        fd = (rt / 2 * (np.interp(a + T / rt, a, f) - np.interp(a - T / rt, a, f)))[inner]
        g = (gate[k] - gate[0])[inner]
        gain = float(fd @ g / (fd @ fd))
        # measured: a gain of 0.973-0.976 (the gate's pairs sit at other input common modes than
        # the f pair) and a residual of 1.1-1.2 % of the largest difference
        assert 0.95 < gain < 1.0, (T, gain)
        assert np.abs(g - gain * fd).max() < 0.02 * np.abs(fd).max(), T
    assert row4["gate_err_T1"] < row2["gate_err_T1"]  # measured 0.048 against 0.067


@pytest.mark.slow
@pytest.mark.long
def test_tiny_tanh_mlp_seed_2_with_the_tension_scaled_gate_meets_the_cosine_bound():
    """The random 4-8-3 model of seed 2 (hidden tensions up to 2.8 units at beta = 1), every cell
    at transistor level, the tanh cell at ``--act-param rt=4,vu=0.104167``: cosine >= 0.99 on every
    tensor (sims/sky130/tanh_sizing.md).  Minutes of CPU (the synapses)."""
    require_ngspice()
    graph = random_mlp([4, 8, 3], activation="tanh", seed=2).with_loss("mse")
    v = verify(graph, random_batch(graph, 2, seed=0), backend="spice",
               options={"pdk": "sky130", "act_params": RECOMMENDED_ACT_PARAM})
    cos = _cosines(v)
    assert min(cos.values()) >= MIN_COSINE, cos


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.xfail(strict=True, reason="measured 0.98907 (fc1.weight, --pdk-cells act; 0.98959 with every cell): "
                   "the default pair gate's O(T^3) error at hidden tensions up to 2.8 units, "
                   "sims/sky130/tanh_sizing.md")
def test_tiny_tanh_mlp_seed_2_at_the_default_sizing_meets_the_cosine_bound():
    require_ngspice()
    graph = random_mlp([4, 8, 3], activation="tanh", seed=2).with_loss("mse")
    v = verify(graph, random_batch(graph, 2, seed=0), backend="spice", options={"pdk": "sky130", "pdk_cells": "act"})
    cos = _cosines(v)
    assert min(cos.values()) >= MIN_COSINE, cos
