"""The hardware model's offset terms: each synapse's forward and backward output offset
(``[synapses]``) and the loss port's input offset (``[loss] offset``, ``offset_sigma``),
drawn per instance; zero spreads are the ideal network bit for bit."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import make_batch
from hwbp.errors import ConfigError
from hwbp.hardware import Hardware, hardware_from_mapping
from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.verify.run import verify

STEADY = {"mode": "steady"}


def _net():
    g = random_mlp([5, 6, 3], activation="tanh", seed=1, gain=1.2).with_loss("mse")
    return g, make_batch(g, 4, seed=1)


def _system(g):
    return lower(g)


def _draws(hw: Hardware, seeds: range):
    system = _system(_net()[0])
    fwd, bwd = [], []
    for s in seeds:
        real = hw.draw_instance(system, s).instance
        for d in real.terms.values():
            fwd.append(d.offset_fwd.ravel())
            bwd.append(d.offset_bwd.ravel())
    return np.concatenate(fwd), np.concatenate(bwd), real


def test_synapse_offsets_have_the_stated_spread_and_independent_directions() -> None:
    """Per synapse o_f ~ N(0, offset_fwd_sigma²), o_b ~ N(0, offset_bwd_sigma²), independent
    at the default offset_correlation = 0 (the SKY130 cell's two separate halves)."""
    hw = hardware_from_mapping({"synapses": {"offset_fwd_sigma": 0.2, "offset_bwd_sigma": 0.3}})
    f, b, _ = _draws(hw, range(200))
    assert f.size == 200 * (6 * 5 + 3 * 6)
    assert f.std() == pytest.approx(0.2, rel=0.03)  # 9600 draws: 1 % standard error
    assert b.std() == pytest.approx(0.3, rel=0.03)
    assert abs(f.mean()) < 0.01 and abs(b.mean()) < 0.015
    assert abs(np.corrcoef(f, b)[0, 1]) < 0.04


def test_synapse_offset_correlation_one_is_one_draw_for_both_directions() -> None:
    hw = hardware_from_mapping({"synapses": {"offset_fwd_sigma": 0.2, "offset_bwd_sigma": 0.1,
                                             "offset_correlation": 1.0}})
    f, b, _ = _draws(hw, range(3))
    np.testing.assert_allclose(b, 0.5 * f, rtol=1e-12, atol=0)


def test_synapse_offset_scale_is_the_networks_full_scale_weight() -> None:
    g, _ = _net()
    system = _system(g)
    real = hardware_from_mapping({"synapses": {"offset_fwd_sigma": 0.1}}).draw_instance(system, 0).instance
    s = max(float(np.abs(system.parameters[k]).max()) for k in ("fc1.weight", "fc2.weight"))
    assert real.synapse_scale == pytest.approx(s, rel=1e-12)
    fwd, bwd = real.offsets(("fc2", 0))
    d = real.terms[("fc2", 0)]
    np.testing.assert_allclose(fwd, s * d.offset_fwd.sum(axis=1))
    np.testing.assert_array_equal(bwd, np.zeros(6))  # offset_bwd_sigma = 0


def test_synapse_offsets_enter_the_forward_and_the_sensitivity_sums() -> None:
    """At the steady state the instance's means are the nominal network with each neuron's
    bias moved by s sum_j o_f[i, j], and the hidden tension is W2ᵀ T2 + s sum_i o_b[i, :]
    (computed here in numpy from the draws)."""
    g, b = _net()
    hw = hardware_from_mapping({"synapses": {"offset_fwd_sigma": 0.05, "offset_bwd_sigma": 0.08}})
    v = verify(g, b, options=STEADY, hardware=hw, instance_seed=4)
    assert v.report["hardware"]["features"] == ["synapses"]
    system = _system(g)
    real = hw.draw_instance(system, 4).instance
    p = system.parameters
    o1f, _ = real.offsets(("act1", 0))
    o2f, o2b = real.offsets(("fc2", 0))
    x = np.asarray(b.x["x"])
    h = np.tanh(x @ p["fc1.weight"].T + p["fc1.bias"] + o1f)
    out = h @ p["fc2.weight"].T + p["fc2.bias"] + o2f
    st = v.result.state
    np.testing.assert_allclose(st.mean["act1"], h, atol=1e-8)
    np.testing.assert_allclose(st.mean["fc2"], out, atol=1e-8)
    t_out = st.tension["fc2"]
    np.testing.assert_allclose(t_out, system.beta * (out - np.asarray(b.y)), atol=1e-8)
    np.testing.assert_allclose(st.tension["act1"], t_out @ p["fc2.weight"] + o2b, atol=1e-8)
    assert np.abs(o2b).max() > 1e-3  # negative control: the offsets are not negligible here
    ideal = verify(g, b, options=STEADY)
    assert not np.allclose(st.tension["act1"], ideal.result.state.tension["act1"], atol=1e-4)


def test_synapse_offsets_event_messaging_agrees_with_the_kernel() -> None:
    """The event rule holds the backward offsets once (not once per event): at theta -> 0
    it settles where the kernel does."""
    g, b = _net()
    hw = hardware_from_mapping({"synapses": {"offset_fwd_sigma": 0.05, "offset_bwd_sigma": 0.08}})
    ref = verify(g, b, options=STEADY, hardware=hw, instance_seed=1).result.state
    ev = verify(g, b, options={"mode": "continuous", "duration": 40.0, "dt": 0.05, "event_threshold": 1e-9},
                hardware=hw, instance_seed=1).result.state
    for k in ref.tension:
        np.testing.assert_allclose(ev.tension[k], ref.tension[k], atol=1e-6)
        np.testing.assert_allclose(ev.mean[k], ref.mean[k], atol=1e-6)


def test_zero_offset_spreads_are_the_ideal_network_bit_for_bit() -> None:
    g, b = _net()
    zero = hardware_from_mapping({"synapses": {"offset_fwd_sigma": 0.0, "offset_bwd_sigma": 0.0},
                                  "loss": {"offset": 0.0, "offset_sigma": 0.0}})
    assert zero == Hardware() and zero.ideal
    ideal = verify(g, b, options=STEADY)
    z = verify(g, b, options=STEADY, hardware=zero, instance_seed=5)
    for k, v in ideal.physical.parameters.items():
        assert np.array_equal(v, z.physical.parameters[k])


def test_offsets_draw_from_their_own_streams() -> None:
    """Turning the offsets on leaves the other draws of a seed as they were (common random
    numbers): the mismatch devices and the loss gain are the same arrays."""
    system = _system(_net()[0])
    base = {"mismatch": {"sigma": 0.05}, "loss": {"beta_gain_sigma": 0.02}}
    a = hardware_from_mapping(base).draw_instance(system, 7).instance
    on = hardware_from_mapping({**base, "synapses": {"offset_fwd_sigma": 0.1},
                                "loss": {"beta_gain_sigma": 0.02, "offset_sigma": 0.1}}).draw_instance(system, 7).instance
    for key, d in a.terms.items():
        np.testing.assert_array_equal(d.fwd_plus, on.terms[key].fwd_plus)
        np.testing.assert_array_equal(d.bwd_minus, on.terms[key].bwd_minus)
        assert d.offset_fwd is None and on.terms[key].offset_fwd is not None
    assert a.loss_beta_gain == on.loss_beta_gain
    assert a.loss_offset is None and on.loss_offset.shape == (3,)


def test_loss_offset_shifts_the_ports_input() -> None:
    """MSE port with input offset o: the output tension is beta (x - y + o), o drawn per
    output neuron with the stated mean and spread."""
    g, b = _net()
    hw = hardware_from_mapping({"loss": {"offset": 0.1, "offset_sigma": 0.3}})
    system = _system(g)
    o = np.concatenate([hw.draw_instance(system, s).instance.loss_offset for s in range(3000)])
    assert o.mean() == pytest.approx(0.1, abs=0.012) and o.std() == pytest.approx(0.3, rel=0.03)
    v = verify(g, b, options=STEADY, hardware=hw, instance_seed=2)
    assert v.report["hardware"]["features"] == ["loss"]
    st = v.result.state
    off = hw.draw_instance(system, 2).instance.loss_offset
    np.testing.assert_allclose(st.tension["fc2"], system.beta * (st.mean["fc2"] - np.asarray(b.y) + off), atol=1e-9)
    ideal = verify(g, b, options=STEADY)
    np.testing.assert_allclose(st.mean["fc2"], ideal.result.state.mean["fc2"], atol=1e-12)  # forward untouched
    assert v.report["parameters"]["fc2.bias"]["cosine"] < 0.999  # negative control: it reaches the gradient


def test_spice_backend_refuses_synapse_offsets() -> None:
    """Negative control: a backend that does not realize the offsets says so in one line
    instead of dropping them."""
    g, b = _net()
    hw = hardware_from_mapping({"synapses": {"offset_fwd_sigma": 0.1}})
    with pytest.raises(ConfigError, match="synapses") as info:
        verify(g, b, backend="spice", hardware=hw, instance_seed=0)
    assert "\n" not in str(info.value)
