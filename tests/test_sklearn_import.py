"""scikit-learn MLPs exported by skl2onnx: forward pass against sklearn's own predict /
predict_proba, gradients of the dynamics against the oracle."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import skl2onnx  # in the test extra: a missing one fails the suite
from sklearn import neural_network as sklearn_nn

from hwbp.cli import main
from hwbp.errors import ModelError, ModelNote
from hwbp.io import load_model
from hwbp.oracle.backprop import forward
from hwbp.types import Batch
from hwbp.verify import verify
from hwbp.verify.compare import Tolerances

#: skl2onnx writes float32 weights and casts the input to float32; hwbp computes in float64.
FLOAT32_TOL = 2e-5
N_IN = 5


def _data(seed: int = 0) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((80, N_IN)), rng


def export(model, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = skl2onnx.to_onnx(model, np.zeros((1, N_IN), np.float32))
    path.write_bytes(proto.SerializeToString())
    return path


def fit(model, x: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        return model.fit(x, y)


def outputs(graph, x: np.ndarray) -> np.ndarray:
    return forward(graph, {graph.inputs[0].name: x})[graph.output]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def passes_oracle(graph, x: np.ndarray, y: np.ndarray, loss: str) -> None:
    g = graph.with_loss(loss)
    batch = Batch.for_model({g.inputs[0].name: N_IN}, g.size(g.output), x, y, loss=loss)
    v = verify(g, batch, tolerances=Tolerances(1e-12, 1 - 1e-12))
    assert v.passed, v.report["max_rel_err"]


@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic", "identity"])
def test_classifier_logits_match_predict_proba(tmp_path: Path, activation: str) -> None:
    x, rng = _data()
    clf = fit(sklearn_nn.MLPClassifier((8, 6), activation=activation, max_iter=60, random_state=0), x,
              rng.integers(0, 3, len(x)))
    path = export(clf, tmp_path / "clf.onnx")
    with pytest.warns(ModelNote, match=r"2 outputs \(output_label, output_probability\); using the logits"):
        graph = load_model(path)
    logits = outputs(graph, x)
    np.testing.assert_allclose(softmax(logits), clf.predict_proba(x), rtol=0, atol=FLOAT32_TOL)
    agree = np.mean(np.argmax(logits, axis=1) == clf.predict(x))
    assert agree >= 0.98  # ties within float32 round-off may flip a label
    passes_oracle(graph, x[:6], np.eye(3)[clf.predict(x[:6])], "ce")


def test_binary_classifier_probability(tmp_path: Path) -> None:
    x, rng = _data(1)
    clf = fit(sklearn_nn.MLPClassifier((4,), activation="relu", max_iter=60, random_state=0), x,
              rng.integers(0, 2, len(x)))
    with pytest.warns(ModelNote, match="using the probabilities"):
        graph = load_model(export(clf, tmp_path / "bin.onnx"))
    np.testing.assert_allclose(outputs(graph, x)[:, 0], clf.predict_proba(x)[:, 1], rtol=0, atol=FLOAT32_TOL)
    passes_oracle(graph, x[:6], clf.predict_proba(x[:6])[:, 1:], "mse")


def test_regressor_single_output(tmp_path: Path) -> None:
    x, rng = _data(2)
    reg = fit(sklearn_nn.MLPRegressor((7,), activation="logistic", max_iter=60, random_state=0), x,
              rng.standard_normal(len(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one output: no note
        graph = load_model(export(reg, tmp_path / "reg.onnx"))
    np.testing.assert_allclose(outputs(graph, x)[:, 0], reg.predict(x), rtol=0, atol=FLOAT32_TOL)
    passes_oracle(graph, x[:6], reg.predict(x[:6])[:, None] + 0.1, "mse")


def test_regressor_several_outputs_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """skl2onnx reshapes a 2-output regressor's result to [-1, 1] ((2*batch, 1)); hwbp
    refuses that and names the tensor to pick instead."""
    x, rng = _data(3)
    reg = fit(sklearn_nn.MLPRegressor((7,), activation="tanh", max_iter=60, random_state=0), x,
              rng.standard_normal((len(x), 2)))
    path = export(reg, tmp_path / "reg2.onnx")
    with pytest.raises(ModelError, match=r"--output add_result1"):
        load_model(path)
    graph = load_model(path, output="add_result1")
    np.testing.assert_allclose(outputs(graph, x), reg.predict(x), rtol=0, atol=FLOAT32_TOL)
    assert main(["verify", str(path), "--output", "add_result1"]) == 0


def test_cli_says_which_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, rng = _data()
    clf = fit(sklearn_nn.MLPClassifier((6,), max_iter=30, random_state=0), x, rng.integers(0, 4, len(x)))
    path = export(clf, tmp_path / "clf.onnx")
    assert main(["verify", str(path), "--loss", "ce"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwbp: note:") and "'add_result" in err[0]
    assert main(["verify", str(path), "--output", "label"]) == 2
    assert "unsupported op 'Softmax'" in capsys.readouterr().err  # the label path starts with the softmax
