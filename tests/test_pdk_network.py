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
    # the .tran default --pdk-cells act,node,loss
    v = verify(graph, batch, backend="spice", options={"pdk": "sky130", "analysis": "tran"})
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
