"""Hardware model: TOML, device instances, the reference simulator's simulation of them,
and the comparisons (a) nominal / (b) the instance's own forward network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_batch
from hwbp.errors import ConfigError, HwbpError
from hwbp.hardware import Hardware, hardware_from_mapping, load_hardware, realize
from hwbp.hardware.compare import instance_gradients
from hwbp.lower.lowerer import lower
from hwbp.models import random_mlp, random_resmlp
from hwbp.oracle.backprop import exact_gradients
from hwbp.sim.simulate import simulate
from hwbp.verify.compare import compare
from hwbp.verify.readout import read_gradients
from hwbp.verify.run import verify
from hardware_helpers import assert_output_weight_gradient_is_central_difference

ROOT = Path(__file__).resolve().parent.parent


def _net(depth: int = 3, act: str = "tanh", seed: int = 1):
    g = random_mlp([5] + [6] * (depth - 1) + [3], activation=act, seed=seed, gain=1.2).with_loss("mse")
    return g, make_batch(g, 4, seed=seed)


def test_empty_toml_is_ideal(tmp_path: Path) -> None:
    p = tmp_path / "empty.toml"
    p.write_text("")
    hw = load_hardware(p)
    assert hw == Hardware() and hw.ideal and hw.features() == ()
    g, _ = _net()
    system = lower(g)
    assert realize(system, hw, 5) is system


@pytest.mark.parametrize("mode", ["unit-step", "steady", "continuous"])
def test_empty_model_bit_for_bit_reference(mode: str) -> None:
    g, b = _net(2)
    opts = {"mode": mode} if mode != "continuous" else {"mode": mode, "dt": 0.1, "duration": 10.0}
    ideal = verify(g, b, options=opts)
    hw = verify(g, b, options=opts, hardware=Hardware(), seed=7)
    for k, v in ideal.physical.parameters.items():
        assert np.array_equal(v, hw.physical.parameters[k])
    for k, v in ideal.result.state.tension.items():
        assert np.array_equal(v, hw.result.state.tension[k])
    assert hw.report["hardware"]["features"] == []


def test_toml_errors_are_one_line(tmp_path: Path) -> None:
    bad = {"[weights]\nbits = 0\n": "bits", "[mismatch]\nsigma = -1\n": "sigma", "[foo]\nx = 1\n": "foo",
           "[nodes]\nr_sigmaa = 0.1\n": "r_sigmaa", "[noise]\ntemperature_K = 300\n": "capacitance_F",
           "[mismatch\n": "TOML", "[rails]\nv_V = 'high'\n": "v_V"}
    for text, word in bad.items():
        p = tmp_path / "bad.toml"
        p.write_text(text)
        with pytest.raises(ConfigError, match=word) as info:
            load_hardware(p)
        assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_kt_over_c() -> None:
    n = hardware_from_mapping({"noise": {"temperature_K": 300.0, "capacitance_F": 1e-13}}).noise
    assert n.sigma_V == pytest.approx(np.sqrt(1.380649e-23 * 300 / 1e-13), rel=1e-12)
    assert n.sigma_V == pytest.approx(2.035e-4, rel=1e-3)


def test_correlated_devices_give_exact_gradients_of_own_network() -> None:
    """Correlation 1, ideal cells: the local rule is exact for the instance's own forward
    network (b) even though that network differs from the nominal one (a)."""
    g, b = _net(4)
    hw = hardware_from_mapping({"mismatch": {"sigma": 0.3, "correlation": 1.0},
                                "weights": {"bits": 4, "g_min_S": 2e-6}})
    for mode in ("steady", "unit-step"):
        v = verify(g, b, beta=0.7, options={"mode": mode}, hardware=hw, seed=11)
        own = v.report["hardware"]["own"]
        assert own["max_rel_err"] <= 1e-9, (mode, own["max_rel_err"])
        assert own["total"]["cosine"] >= 1 - 1e-12
        assert v.report["hardware"]["nominal"]["max_rel_err"] > 1e-2  # a different function


def test_independent_devices_assign_credit_wrongly() -> None:
    """Negative control: forward and backward devices drawn independently."""
    g, b = _net(4)
    hw = hardware_from_mapping({"mismatch": {"sigma": 0.3, "correlation": 0.0}})
    v = verify(g, b, options={"mode": "steady"}, hardware=hw, seed=11)
    assert v.report["hardware"]["own"]["max_rel_err"] > 1e-2
    # correlation between devices is what matters: partially correlated lies in between
    hw5 = hw.replace(**{"mismatch.correlation": 0.9})
    v5 = verify(g, b, options={"mode": "steady"}, hardware=hw5, seed=11)
    assert 1e-9 < v5.report["hardware"]["own"]["total"]["rel_err"] < v.report["hardware"]["own"]["total"]["rel_err"]


def test_same_seed_same_instance_and_draws_independent_of_spread() -> None:
    g, b = _net(3)
    s = lower(g)
    h1 = hardware_from_mapping({"mismatch": {"sigma": 0.1}})
    a, a2 = realize(s, h1, 4), realize(s, h1, 4)
    key = next(iter(a.instance.terms))
    w = s.parameters[s.population(key[0]).terms[key[1]].weight]
    assert np.array_equal(a.instance.device_weights(key, w, None)[0], a2.instance.device_weights(key, w, None)[0])
    other = realize(s, h1, 5).instance.device_weights(key, w, None)[0]
    assert not np.array_equal(other, a.instance.device_weights(key, w, None)[0])
    # common random numbers: log multipliers scale with sigma
    h2 = h1.replace(**{"mismatch.sigma": 0.2})
    z1 = np.log(a.instance.terms[key].fwd_plus)
    z2 = np.log(realize(s, h2, 4).instance.terms[key].fwd_plus)
    np.testing.assert_allclose(z2, 2 * z1, rtol=1e-12)


def test_quantization_levels() -> None:
    g, _ = _net(2)
    s = lower(g)
    real = realize(s, hardware_from_mapping({"weights": {"bits": 3}}), 0).instance
    key = next(iter(real.terms))
    w = s.parameters[s.population(key[0]).terms[key[1]].weight]
    wf, wb, _ = real.device_weights(key, w, None)
    assert np.array_equal(wf, wb)
    levels = np.abs(wf) / np.max(np.abs(w)) * 7
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-12)
    assert np.max(np.abs(wf - w)) <= np.max(np.abs(w)) / 14 + 1e-12


def test_instance_oracle_matches_finite_differences() -> None:
    """(b) with node gains and cell errors (device weights equal the nominal ones up to
    round-off when there is no mismatch or quantization): central differences."""
    g, b = _net(3, act="tanh", seed=2)
    hw = hardware_from_mapping({"nodes": {"r_sigma": 0.1}, "cells": {"f_gain_sigma": 0.1, "f_offset_sigma_V": 0.05}})
    s = lower(g)
    inst = realize(s, hw, 3)
    gr = instance_gradients(inst, b)
    assert compare(gr, exact_gradients(g, b)).max_rel_err > 1e-3  # a different network
    assert_output_weight_gradient_is_central_difference(inst, s, b, gr)


def test_ideal_instance_oracle_is_backprop() -> None:
    g = random_resmlp(5, 6, 3, depth=3, seed=0).with_loss("mse") if "depth" in random_resmlp.__code__.co_varnames \
        else _net(3)[0]
    b = make_batch(g, 4)
    c = compare(instance_gradients(lower(g), b), exact_gradients(g, b))
    assert c.max_rel_err <= 1e-12


def test_matched_node_gains_keep_weight_gradients_exact() -> None:
    """Nodes with R spread but equal within each pair scale the tension by r and leave the
    local weight gradient exact for the own network; unequal pairs do not."""
    g, b = _net(3)
    s = lower(g, beta=0.5)
    inst = realize(s, hardware_from_mapping({"nodes": {"r_sigma": 0.1}}), 2)
    nodes = {k: type(v)(v.r_plus, v.r_plus, v.c_plus, v.c_plus) for k, v in inst.instance.nodes.items()}
    from dataclasses import replace

    matched = replace(inst, instance=replace(inst.instance, nodes=nodes))
    own = instance_gradients(matched, b)
    phys = read_gradients(matched, simulate(matched, b, mode="steady").state, b)
    for k, v in own.parameters.items():
        np.testing.assert_allclose(phys.parameters[k], v, rtol=1e-9, atol=1e-14)
    phys2 = read_gradients(inst, simulate(inst, b, mode="steady").state, b)
    own2 = instance_gradients(inst, b)
    assert max(compare(phys2, own2).parameters[k].rel_err for k in own2.parameters) > 1e-3


def test_noise_is_seeded_and_has_kt_over_c_variance() -> None:
    """Euler-Maruyama: the first population's mean fluctuates with variance sigma²/2
    (two independent Ornstein-Uhlenbeck nodes), and the same seed repeats exactly."""
    g = random_mlp([4, 100, 2], seed=0).with_loss("mse")
    b = make_batch(g, 40, seed=0)
    s = lower(g)
    hw = hardware_from_mapping({"noise": {"rms_V": 0.05}})
    inst = realize(s, hw, 1)
    r1 = simulate(inst, b, mode="continuous", dt=0.02, duration=10.0)
    r2 = simulate(inst, b, mode="continuous", dt=0.02, duration=10.0)
    first = s.populations[0].name
    assert np.array_equal(r1.state.mean[first], r2.state.mean[first])
    clean = simulate(s, b, mode="steady")
    dev = r1.state.mean[first] - clean.state.mean[first]
    assert np.var(dev) == pytest.approx(0.05 ** 2 / 2, rel=0.1)
    with pytest.raises(ConfigError, match="continuous"):
        simulate(inst, b, mode="unit-step")


def test_rails_clip_nodes_and_adc_quantizes() -> None:
    g, b = _net(2)
    s = lower(g, beta=0.3)
    st = simulate(realize(s, hardware_from_mapping({"rails": {"v_V": 0.2}}), 0), b, mode="steady").state
    clipped = 0
    for name in st.mean:
        assert np.max(np.abs(st.plus(name))) <= 0.2 + 1e-15
        assert np.max(np.abs(st.minus(name))) <= 0.2 + 1e-15
        clipped += int(np.sum(np.abs(st.plus(name)) > 0.2 - 1e-12))
    assert clipped > 0  # the rails were reached
    st = simulate(realize(s, hardware_from_mapping({"readout": {"adc_bits": 6, "adc_range_V": 0.5}}), 0), b,
                  mode="steady").state
    lsb = 1.0 / 64
    for name in st.mean:
        np.testing.assert_allclose(st.tension[name] / lsb, np.round(st.tension[name] / lsb), atol=1e-9)
        assert np.max(np.abs(st.tension[name])) <= 0.5


def test_spice_refuses_non_idealities_in_one_line() -> None:
    g, b = _net(2)
    hw = hardware_from_mapping({"noise": {"rms_V": 1e-3}})
    with pytest.raises(HwbpError, match="spice.*noise") as info:
        verify(g, b, backend="spice", options={"analysis": "tran"}, hardware=hw)
    assert "\n" not in str(info.value)
    with pytest.raises(HwbpError, match="rails.*op only"):
        verify(g, b, backend="spice", options={"analysis": "tran"}, hardware=hardware_from_mapping({"rails": {"v_V": 1}}))


@pytest.mark.parametrize("analysis", ["op", "tran"])
def test_empty_model_bit_for_bit_spice(analysis: str) -> None:
    from spice_helpers import require_ngspice

    require_ngspice()
    g, b = _net(2)
    opts = {"analysis": analysis} if analysis == "op" else {"analysis": analysis, "duration": 8.0}
    ideal = verify(g, b, backend="spice", options=opts, seed=4)
    hw = verify(g, b, backend="spice", options=opts, hardware=Hardware(), seed=4)
    for k, v in ideal.result.state.tension.items():
        assert np.array_equal(v, hw.result.state.tension[k])
    for k, v in ideal.physical.parameters.items():
        assert np.array_equal(v, hw.physical.parameters[k])


@pytest.mark.slow
def test_cli_verify_hardware(tmp_path: Path, capsys) -> None:
    """``hwbp verify --hardware`` (in process: ``hwbp.cli.main``, what ``python -m hwbp`` calls)."""
    import json

    from hwbp.cli import main

    rep = tmp_path / "r.json"
    cmd = ["verify", str(ROOT / "examples/mlp_digits.onnx"), "--loss", "ce",
           "--batch", str(ROOT / "examples/digits_batch.npz"), "--hardware",
           str(ROOT / "examples/hardware/noisy.toml"), "--seed", "3", "--mode", "continuous", "--dt", "0.1",
           "--report", str(rep)]
    code = main(cmd)
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    assert "cos(b) own" in out.out and "total" in out.out
    h = json.loads(rep.read_text())["hardware"]
    assert set(h) >= {"nominal", "own", "loss", "accuracy", "features", "seed"}
    assert 0.9 < h["own"]["total"]["cosine"] <= 1
    # the design without noise runs in the default mode (unit-step), as the command
    code = main(["verify", str(ROOT / "examples/mlp_digits.onnx"), "--hardware",
                 str(ROOT / "examples/hardware/typical.toml"), "--seed", "3"])
    out = capsys.readouterr()
    assert code in (0, 1) and "cos(b) own" in out.out, out.err
    bad = tmp_path / "bad.toml"
    bad.write_text("[mismatch]\nsigma = -2\n")
    code = main(cmd[:-2] + ["--hardware", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "sigma" in err
    code = main(cmd[:-6] + ["--backend", "spice"])
    err = capsys.readouterr().err
    assert code == 2 and "does not realize hardware non-ideality noise" in err


@pytest.mark.parametrize("rho", [1.0, 0.0])
def test_spice_realizes_the_same_instance(rho: float) -> None:
    """Per-device forward/backward conductances in the netlist: ngspice .op and the
    reference agree on one instance to 1e-9, and with matched devices (correlation 1)
    the circuit's gradients are exact for the instance's own forward network."""
    from spice_helpers import require_ngspice

    require_ngspice()
    g, b = _net(3)
    hw = hardware_from_mapping({"mismatch": {"sigma": 0.3, "correlation": rho},
                                "weights": {"bits": 4, "g_min_S": 2e-6},
                                "readout": {"adc_bits": 12, "adc_range_V": 4.0}})
    hw_exact = hw.replace(**{"readout.adc_bits": None})
    # each node its own R and C, cell gain and offset errors: the same instance on both backends
    hw_nodes = hw_exact.replace(**{"nodes.r_sigma": 0.05, "nodes.c_sigma": 0.1, "cells.f_gain_sigma": 0.05,
                                   "cells.f_offset_sigma_V": 0.02, "cells.df_gain_sigma": 0.05,
                                   "cells.df_offset_sigma": 0.02})
    sp = verify(g, b, backend="spice", options={"analysis": "op"}, hardware=hw_nodes, seed=11, beta=0.7)
    ref = verify(g, b, options={"mode": "steady"}, hardware=hw_nodes, seed=11, beta=0.7)
    assert compare(sp.physical, ref.physical).max_rel_err <= 1e-9
    assert compare(ref.physical, instance_gradients(ref.system, b)).max_rel_err > 1e-3  # r+ != r-: a real effect
    # rails that clip some nodes: the same clipped fixed point
    hw_rails = hw_nodes.replace(**{"rails.v_V": 0.4})
    sp = verify(g, b, backend="spice", options={"analysis": "op"}, hardware=hw_rails, seed=11, beta=0.7)
    ref = verify(g, b, options={"mode": "steady"}, hardware=hw_rails, seed=11, beta=0.7)
    assert any(np.any(np.abs(ref.result.state.plus(k)) >= 0.4 - 1e-12) for k in ref.result.state.mean)
    assert compare(sp.physical, ref.physical).max_rel_err <= 1e-9
    sp = verify(g, b, backend="spice", options={"analysis": "op"}, hardware=hw_exact, seed=11, beta=0.7)
    ref = verify(g, b, options={"mode": "steady"}, hardware=hw_exact, seed=11, beta=0.7)
    assert compare(sp.physical, ref.physical).max_rel_err <= 1e-9
    own = sp.report["hardware"]["own"]["max_rel_err"]
    assert (own <= 1e-9) if rho == 1.0 else (own > 1e-2)
    # the readout ADC: the same codes from both backends
    sp = verify(g, b, backend="spice", options={"analysis": "op"}, hardware=hw, seed=11, beta=0.7)
    ref = verify(g, b, options={"mode": "steady"}, hardware=hw, seed=11, beta=0.7)
    for k, v in ref.result.state.tension.items():
        np.testing.assert_allclose(sp.result.state.tension[k], v, rtol=0, atol=1e-12)


def test_instance_trace_ends_at_the_state() -> None:
    g, b = _net(3)
    inst = realize(lower(g), hardware_from_mapping({"mismatch": {"sigma": 0.1}, "nodes": {"c_sigma": 0.2}}), 1)
    r = simulate(inst, b, mode="unit-step", steps=9, trace=True)
    assert len(r.trace.t) == 10 and r.trace.t[-1] == 9.0
    for name in r.state.mean:
        assert np.array_equal(r.trace.tension[name][-1], r.state.tension[name])
    with pytest.raises(ConfigError, match="steady"):
        simulate(inst, b, mode="steady", trace=True)


@pytest.mark.parametrize("backend", ["reference", "spice"])
def test_correlated_devices_exact_for_convolutions_and_gains(backend: str) -> None:
    """A device per synapse also where one parameter serves many synapses (every position
    of a convolution kernel) and where terms carry a fixed gain and a source-side
    nonlinearity: with matched forward/backward devices the gradients are those of the
    instance's own network."""
    from hwbp.io import load_batch, load_model
    from hwbp.models import depth_resmlp

    hw = hardware_from_mapping({"mismatch": {"sigma": 0.1, "correlation": 1.0}})
    cnn = load_model(ROOT / "examples" / "cnn_digits.onnx").with_loss("ce")
    batch = load_batch(ROOT / "examples" / "digits_batch.npz", cnn)
    batch = type(batch)({k: v[:4] for k, v in batch.x.items()}, batch.y[:4])
    v = verify(cnn, batch, backend=backend, beta=100.0, hardware=hw, seed=1)
    assert v.report["hardware"]["own"]["max_rel_err"] <= 1e-9
    assert v.report["hardware"]["nominal"]["max_rel_err"] > 1e-2
    if backend == "reference":
        g = depth_resmlp(6, 5, 3, 4, activation="tanh", seed=0).with_loss("mse")
        v = verify(g, make_batch(g, 4, seed=2), hardware=hw, seed=2)
        assert v.report["hardware"]["own"]["max_rel_err"] <= 1e-9
        assert v.report["hardware"]["nominal"]["max_rel_err"] > 1e-2


@pytest.mark.parametrize("bad,message", [({"mode": "continuous", "solver": "bogus"}, "unknown solver 'bogus'"),
                                         ({"mode": "unit-step", "steps": -1}, "steps must be >= 0"),
                                         ({"mode": "continuous", "dt": 0.0}, "dt must be > 0")])
def test_device_instance_runs_check_their_arguments(bad, message):
    """A device instance's run takes the same one-line argument errors as the ideal network's."""
    graph = random_mlp([3, 4, 2], seed=1).with_loss("mse")
    inst = realize(lower(graph), hardware_from_mapping({"mismatch": {"sigma": 0.05}}), seed=1)
    with pytest.raises(ConfigError, match=message):
        simulate(inst, make_batch(graph, 1, seed=0), **bad)
