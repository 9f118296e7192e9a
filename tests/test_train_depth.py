"""Training through one gradient-source interface: dyadic = backprop step by step at
depth, exact checkpoint resume, baselines as sources, the command line."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.cli import main
from hwbp.data import load_dataset
from hwbp.io import load_model
from hwbp.models import depth_resmlp
from hwbp.train import TrainConfig, get_source, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _run(graph, d, source, config, **kw):
    return train(graph, d.x_train, d.y_train, source, config, progress=False, **kw)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dyadic_training_curve_equals_backprop_at_depth_16(digits, activation: str) -> None:
    g = depth_resmlp(64, 32, 10, 16, activation=activation, seed=0).with_loss("mse")
    config = TrainConfig(1, 32, "adam", 1e-3 * np.sqrt(32 / 16), 0)
    bp = _run(g, digits, get_source("oracle"), config, max_steps=25)
    dy = _run(g, digits, get_source("reference"), config, max_steps=25, track_cosine=True)
    assert len(bp.loss) == len(dy.loss) == 25
    np.testing.assert_allclose(dy.loss, bp.loss, rtol=1e-12, atol=0)
    assert min(dy.cosine) > 1 - 1e-12
    for k, v in bp.graph.parameters().items():
        np.testing.assert_allclose(dy.graph.parameters()[k], v, rtol=1e-9, atol=1e-12)
    # negative control: one step short of 2L is not backprop
    short = _run(g, digits, get_source("reference", options={"steps": 31}), config, max_steps=3, track_cosine=True)
    assert max(short.cosine) < 0.999


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_checkpoint_resumes_exactly(tmp_path, digits, optimizer: str) -> None:
    g = depth_resmlp(64, 8, 10, 4, activation="tanh", seed=1).with_loss("mse")
    config = TrainConfig(2, 128, optimizer, 0.01, 3)
    straight = _run(g, digits, get_source("oracle"), config)
    ck = str(tmp_path / "ck.npz")
    _run(g, digits, get_source("oracle"), config, checkpoint=ck, checkpoint_every=2, max_steps=5)  # mid-epoch stop
    resumed = _run(g, digits, get_source("oracle"), config, checkpoint=ck, resume=ck)
    assert resumed.loss == straight.loss
    for k, v in straight.graph.parameters().items():
        np.testing.assert_array_equal(resumed.graph.parameters()[k], v)
    _run(g, digits, get_source("oracle"), config, checkpoint=ck, max_steps=12)  # stop at the epoch boundary
    again = _run(g, digits, get_source("oracle"), config, resume=ck)
    assert again.loss == straight.loss
    for k, v in straight.graph.parameters().items():
        np.testing.assert_array_equal(again.graph.parameters()[k], v)


def test_resume_with_other_options_is_an_error(tmp_path, digits) -> None:
    from hwbp.errors import ConfigError

    g = depth_resmlp(64, 8, 10, 3, seed=1).with_loss("mse")
    ck = str(tmp_path / "ck.npz")
    _run(g, digits, get_source("oracle"), TrainConfig(1, 256, "adam", 0.01, 0), checkpoint=ck, max_steps=1)
    with pytest.raises(ConfigError, match="other training options"):
        _run(g, digits, get_source("oracle"), TrainConfig(1, 256, "adam", 0.02, 0), resume=ck)


@pytest.mark.parametrize("name", ["pc", "pc-alm"])
def test_baselines_train_through_the_same_interface(digits, name: str) -> None:
    g = depth_resmlp(64, 16, 10, 4, activation="relu", seed=0).with_loss("mse")
    r = _run(g, digits, get_source(name, options={"steps": 8}), TrainConfig(1, 64, "adam", 0.01, 0),
             max_steps=10, track_cosine=True)
    assert len(r.cosine) == 10 and all(0 < c < 1 - 1e-9 for c in r.cosine)
    assert r.loss[-1] < r.loss[0]


@pytest.mark.slow
@pytest.mark.parametrize("backend,options", [("spice", {}), ("brian2", {"dt": 0.1}), ("lava", {})])
def test_every_backend_trains_the_depth_model(digits, backend: str, options: dict) -> None:
    """The depth studies' model (fixed gains, source-side activations) on every backend,
    through the same interface: three steps whose gradients are backprop's."""
    g = depth_resmlp(64, 6, 10, 3, activation="tanh", seed=1).with_loss("mse")
    r = _run(g, digits, get_source(backend, options=options), TrainConfig(1, 8, "sgd", 0.05, 0), max_steps=3,
             track_cosine=True)
    assert len(r.cosine) == 3 and min(r.cosine) > 1 - 1e-9, r.cosine


def test_cli_trains_depth_model_and_exports(tmp_path, capsys) -> None:
    out = tmp_path / "m.onnx"
    code = main(["train", "--depth", "4", "--width", "8", "--backend", "pc-alm", "--steps", "6", "--dual-step", "0.5",
                 "--batch-size", "256", "--track-cosine", "--checkpoint", str(tmp_path / "c.npz"), "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "gradient cosine to backprop" in text
    g = load_model(str(out.with_suffix(".hwbp")))
    assert g.node("layer2").gain == pytest.approx(1 / np.sqrt(32))
    assert load_model(str(out)).size(load_model(str(out)).output) == 10
    assert (tmp_path / "c.npz").is_file()


def test_cli_bad_inputs(tmp_path, capsys) -> None:
    assert main(["train", "--backend", "oracle", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "either MODEL or --depth" in capsys.readouterr().err
    assert main(["train", "--depth", "3", "--backend", "oracle", "--steps", "3", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "do not apply to --backend oracle" in capsys.readouterr().err
    assert main(["train", "--depth", "3", "--backend", "pc", "--dual-step", "1", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--dual-step does not apply" in capsys.readouterr().err


def test_gradient_cosine_of_tiny_gradients_does_not_underflow() -> None:
    from hwbp.train import gradient_cosine

    a = {"w": np.array([1e-200, 2e-200]), "b": np.array([0.0])}
    b = {"w": np.array([1.0, 2.0]), "b": np.array([0.0])}
    assert gradient_cosine(a, b) == pytest.approx(1.0)
    assert gradient_cosine({"w": -b["w"], "b": b["b"]}, b) == pytest.approx(-1.0)
    assert gradient_cosine({"w": np.zeros(2), "b": np.zeros(1)}, b) == 0.0
