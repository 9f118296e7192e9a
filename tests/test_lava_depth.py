"""The lava backend on the depth studies' model (:func:`hwbp.models.depth_resmlp`):
fixed gains and source-side activations realized by the term processes, in float
(exact backprop after 2L unit steps) and in fixed point (bit-exact against the numpy
model), on-chip learning with them, negative controls that drop a gain or a ``φ``,
and one-line refusals of what the processes do not realize."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest

from hwbp.backend import get_backend
from hwbp.initial import initial_state
from hwbp.cli import main
from hwbp.errors import ConfigError
from hwbp.io import save_model
from hwbp.lower import lower
from hwbp.lower.system import DynamicsSystem
from hwbp.models import depth_resmlp, random_mlp
from hwbp.oracle import exact_gradients
from hwbp.targets.lava.backend import FIXED_RTOL, FLOAT_UNIT_STEP_RTOL
from hwbp.targets.lava.fixed import numpy_model, run_fixed
from hwbp.verify import compare, read_gradients

from conftest import make_batch
from lava_helpers import replay_fixed_on_chip

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: A dropped gain (1/sqrt(N L) = 1/4 here) or a dropped φ leaves gradients far off: the
#: controls must exceed this by far (measured rel_err 1.3 without the gain, 0.12 without φ).
WRONG = 0.05


def _case(act: str, depth: int = 4, loss: str = "mse", size: int = 3, seed: int = 1):
    g = depth_resmlp(5, 4, 3, depth, activation=act, seed=seed).with_loss(loss)
    return g, lower(g), make_batch(g, size=size, seed=seed + 10, loss=loss)


def _rel_err(graph, system, batch, state) -> float:
    return compare(read_gradients(system, state, batch), exact_gradients(graph, batch)).max_rel_err


def _modified(system: DynamicsSystem, pop: str, k: int, **changes) -> DynamicsSystem:
    """``system`` with term ``k`` of population ``pop`` changed (the readout sees the same
    change, so only what the processes compute differs from the oracle's graph)."""
    pops = tuple(dataclasses.replace(p, terms=tuple(dataclasses.replace(t, **changes) if (p.name, i) == (pop, k)
                                                    else t for i, t in enumerate(p.terms)))
                 if p.name == pop else p for p in system.populations)
    return dataclasses.replace(system, populations=pops)


@pytest.mark.parametrize("act,loss", [("tanh", "mse"), ("relu", "ce")])
def test_float_depth_model_is_exact_backprop(act: str, loss: str) -> None:
    g, system, batch = _case(act, loss=loss)
    r = get_backend("lava").simulate(system, batch, {"precision": "float"}, initial="random", seed=2)
    assert _rel_err(g, system, batch, r.state) <= FLOAT_UNIT_STEP_RTOL
    # the same state the reference simulator reaches, step for step
    ref = get_backend("reference").simulate(system, batch, {}, initial="random", seed=2).state
    for name in ref.mean:
        np.testing.assert_allclose(r.state.tension[name], ref.tension[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("change", [{"gain": 1.0}, {"source_activation": "identity"}])
def test_dropping_a_gain_or_phi_fails_verification(change: dict) -> None:
    """Negative controls: the processes run a system whose middle term lost its gain
    (or its φ) while the readout and the oracle keep the model's; the gradients must
    then be wrong, so the exact result above is not the readout's doing."""
    g, system, batch = _case("tanh")
    mid = system.populations[1]
    k = next(i for i, t in enumerate(mid.terms) if t.weight is not None)
    assert mid.terms[k].gain != 1.0 and mid.terms[k].source_activation == "tanh"
    wrong = _modified(system, mid.name, k, **change)
    lava = get_backend("lava")
    state = lava.run(lava.compile(wrong, lava.options({})), batch).state
    assert _rel_err(g, system, batch, state) > WRONG


@pytest.mark.parametrize("act,opts", [
    ("tanh", {}),
    ("relu", {"weight_bits": 6, "payload_bits": 12}),
    ("leaky_relu", {"state_bits": 20, "dt": 0.5, "steps": 9}),
])
def test_fixed_depth_model_is_bit_exact_with_numpy(act: str, opts: dict) -> None:
    g, system, batch = _case(act, depth=3, size=2, seed=4)
    lava = get_backend("lava")
    o = lava.options({"precision": "fixed", **opts})
    art = lava.compile(system, o)
    start = initial_state(system, batch, "random", seed=3)
    steps = o.unit_steps(system.depth)
    got = run_fixed(art.data, system, batch, start, steps, o.step, 120.0, raw=True)
    want = numpy_model(art.data, system, batch, start, steps)
    for a, b in zip(got, want):
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    # negative control: the numpy model without the source-side activation differs
    mid = system.populations[-1]
    plain = _modified(system, mid.name, 0, source_activation="identity")
    other = numpy_model(lava.compile(plain, o).data, plain, batch, start, steps)
    assert not all(np.array_equal(other[2][k], got[2][k]) for k in got[2])


def test_fixed_depth_model_gradients_within_the_profile_bound() -> None:
    g, system, batch = _case("tanh", size=3, seed=6)
    lava = get_backend("lava")
    o = lava.options({"precision": "fixed", "weight_bits": 16})
    art = lava.compile(system, o)
    # the gain is folded into the quantized weight: W_int 2**exp ~ g W
    key = (system.populations[1].name, 1)
    t = system.populations[1].terms[1]
    np.testing.assert_allclose(art.data.weight[key] * 2.0 ** art.data.exp[key], t.gain * system.parameters[t.weight],
                               rtol=0, atol=2.0 ** art.data.exp[key])
    m, tens, gates = numpy_model(art.data, system, batch, initial_state(system, batch, "zeros"), 2 * system.depth)
    f = art.data.to_float
    from hwbp.state import State

    state = State({k: f(v) for k, v in m.items()}, {k: f(v) for k, v in tens.items()}, 0, 0,
                  {k: f(v) for k, v in gates.items()})
    assert _rel_err(g, system, batch, state) <= FIXED_RTOL


@pytest.mark.slow
def test_float_on_chip_with_gains_equals_host_sgd() -> None:
    from hwbp.train import TrainConfig, get_source, train

    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    graph = depth_resmlp(5, 4, 3, 3, activation="tanh", seed=2).with_loss("ce")
    cfg = TrainConfig(epochs=1, batch_size=4, optimizer="sgd", lr=0.5, seed=5)
    res = train(graph, x, labels, get_source("lava", options={"on_chip": True}), cfg, progress=False)
    host = train(graph, x, labels, get_source("oracle"), cfg, progress=False)
    start = graph.parameters()
    for k, v in host.graph.parameters().items():
        assert not np.allclose(v, start[k])
        np.testing.assert_allclose(res.graph.parameters()[k], v, rtol=0, atol=1e-10)


@pytest.mark.slow
def test_fixed_on_chip_with_gains_equals_numpy_replay() -> None:
    """The folded gain: ``W_int`` holds ``g W``, so its update is ``lr g**2 e φ(u)ᵀ`` (rate
    at ``eta_bits = 24 + 2 ceil(-log2 g)``), the bias's ``lr e``; the host reads ``W`` back
    as ``W_int 2**exp / g``."""
    from hwbp.targets.lava.fixed import FixedFormat
    from hwbp.targets.lava.onchip import train_on_chip
    from hwbp.train import TrainConfig

    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    g = depth_resmlp(5, 4, 3, 2, activation="tanh", seed=3).with_loss("ce")
    opts = get_backend("lava").options({"precision": "fixed", "on_chip": True, "weight_bits": 10})
    cfg = TrainConfig(epochs=1, batch_size=4, optimizer="sgd", lr=0.5, seed=3)
    res = train_on_chip(g, x, labels, cfg, opts, progress=False)
    system, fmt, keys = replay_fixed_on_chip(g, x, labels, cfg, opts)
    terms = {key: system.population(key[0]).terms[key[1]] for key in keys}
    assert {terms[k].gain for k in keys} == {1 / np.sqrt(5), 1 / 4}
    q0 = FixedFormat.for_system(system, opts).weight
    for key in keys:
        t = terms[key]
        assert not np.array_equal(fmt.weight[key], q0[key])  # the weights moved
        assert np.array_equal(res.graph.parameters()[t.weight], fmt.weight[key] * 2.0 ** fmt.exp[key] / t.gain)
        assert np.array_equal(res.graph.parameters()[t.bias], fmt.to_float(fmt.bias[key]))


#: 16-bit fixed on-chip updates against host SGD with exact gradients, one epoch of two
#: mini-batches: stochastic rounding at the weight LSB (measured rel 0.005-0.007).
FIXED_UPDATE_RTOL = 0.03


@pytest.mark.slow
def test_fixed_on_chip_updates_follow_host_sgd() -> None:
    """The update the chip applies to the folded ``g W`` is, read back, the SGD step of
    ``W`` (a missing or doubled gain would be off by ``1/g`` = 2.2 .. 4)."""
    from hwbp.targets.lava.fixed import FixedFormat
    from hwbp.targets.lava.onchip import train_on_chip
    from hwbp.train import TrainConfig, get_source, train

    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    g = depth_resmlp(5, 4, 3, 3, activation="tanh", seed=3).with_loss("ce")
    cfg = TrainConfig(epochs=1, batch_size=4, optimizer="sgd", lr=0.5, seed=3)
    host = train(g, x, labels, get_source("oracle"), cfg, progress=False).graph.parameters()
    opts = get_backend("lava").options({"precision": "fixed", "on_chip": True, "weight_bits": 16})
    chip = train_on_chip(g, x, labels, cfg, opts, progress=False).graph.parameters()
    system = lower(g)
    fmt = FixedFormat.for_system(system, opts)
    for p in system.populations:
        for k, t in enumerate(p.terms):
            if t.weight is not None:
                start = fmt.weight[(p.name, k)] * 2.0 ** fmt.exp[(p.name, k)] / t.gain
                want = host[t.weight] - g.parameters()[t.weight]
                got = chip[t.weight] - start
                assert np.linalg.norm(got - want) <= FIXED_UPDATE_RTOL * np.linalg.norm(want), t.weight


def test_on_chip_refuses_tied_weights() -> None:
    from hwbp.ir import Dense, Graph, Input
    from hwbp.train import TrainConfig, get_source, train

    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3))
    graph = Graph((Input("x", size=3), Dense("a", source="x", weight=w, bias=np.zeros(3), weight_param="w"),
                   Dense("b", source="a", weight=w, bias=np.zeros(3), weight_param="w")), "b", "tied")
    with pytest.raises(ConfigError, match="tied weights"):
        train(graph.with_loss("mse"), rng.standard_normal((4, 3)), rng.integers(0, 3, 4),
              get_source("lava", options={"on_chip": True}), TrainConfig(batch_size=4, optimizer="sgd"),
              progress=False)


# ----------------------------------------------------------------- refusals
@pytest.mark.parametrize("build,match", [
    (lambda: random_mlp([3, 4, 2], activation="gelu", seed=0), "does not realize the activation gelu"),
    (lambda: random_mlp([3, 4, 2], activation="elu", seed=0), "the activation elu"),
    (lambda: random_mlp([3, 4, 2], activation="silu", seed=0), "the activation silu"),
    (lambda: random_mlp([3, 4, 2], activation="clip", seed=0), "the activation clip"),
    (lambda: depth_resmlp(3, 4, 2, 3, activation="gelu"), "the source-side activation gelu"),
])
@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_unrealized_terms_are_one_line_errors(build, match: str, precision: str) -> None:
    system = lower(build().with_loss("mse"))
    with pytest.raises(ConfigError, match=match) as err:
        get_backend("lava").compile(system, get_backend("lava").options({"precision": precision}))
    assert "\n" not in str(err.value) and "activations identity, leaky_relu, relu, sigmoid, softplus, tanh;" in str(
        err.value)


def test_structured_and_unrealized_models_exit_2(tmp_path, capsys) -> None:
    cnn = str(ROOT / "examples" / "cnn_digits.onnx")
    save_model(random_mlp([3, 4, 2], activation="gelu", seed=0), tmp_path / "gelu.hwbp")
    for model, why in ((cnn, "the feature conv"), (str(tmp_path / "gelu.hwbp"), "the activation gelu")):
        capsys.readouterr()
        assert main(["verify", model, "--loss", "mse", "--backend", "lava"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "backend 'lava' does not realize" in err and why in err
        assert main(["compile", model, "--loss", "mse", "--target", "lava", "-o", str(tmp_path / "out")]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------- stand-alone program
RUN = ("import sys, runpy; sys.modules['hwbp'] = None; sys.argv = ['run_lava.py', '--batch', {batch!r}]; "
       "runpy.run_path('run_lava.py', run_name='__main__')")


@pytest.mark.parametrize("precision", ["float", pytest.param("fixed", marks=pytest.mark.slow)])
def test_program_prints_the_depth_models_gradients(tmp_path, precision: str, capsys) -> None:
    """``hwbp compile --target lava`` of depth_resmlp: the program (hwbp blocked) prints
    ``g mean e φ(u)ᵀ`` per parameter, the gradients hwbp reads from the same models
    (float: backprop's)."""
    import subprocess
    import sys

    from hwbp.io import load_batch

    g = depth_resmlp(5, 4, 3, 3, activation="tanh", seed=2, name="deep")
    save_model(g, tmp_path / "deep.hwbp")
    batch = make_batch(g.with_loss("mse"), size=3, seed=4)
    np.savez(tmp_path / "b.npz", x=batch.x["x"], y=batch.y)
    out = tmp_path / "prog"
    assert main(["compile", str(tmp_path / "deep.hwbp"), "--loss", "mse", "--target", "lava", "-o", str(out),
                 "--precision", precision]) == 0
    capsys.readouterr()
    r = subprocess.run([sys.executable, "-c", RUN.format(batch=str(tmp_path / "b.npz"))], cwd=out,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    printed = {row[0]: float(row[2]) for row in (line.split() for line in r.stdout.splitlines()[2:] if line.strip())}
    graph = g.with_loss("mse")
    system, batch = lower(graph), load_batch(tmp_path / "b.npz", graph)
    if precision == "float":
        want = exact_gradients(graph, batch).parameters
    else:
        res = get_backend("lava").simulate(system, batch, {"precision": "fixed"})
        want = read_gradients(system, res.state, batch).parameters
    assert set(printed) == set(want)
    for name, value in want.items():
        assert printed[name] == pytest.approx(float(np.linalg.norm(value)), rel=1e-6), name
