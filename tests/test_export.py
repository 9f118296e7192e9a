"""ONNX export: round trips through the importer; names never collide; bad cases refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwbp.cli import main
from hwbp.errors import ModelError
from hwbp.exporters.onnx import graph_to_onnx_bytes
from hwbp.importers import load_onnx_bytes
from hwbp.io import save_model
from hwbp.ir import Activation, Add, Dense, Graph, Input
from hwbp.models import random_mlp
from hwbp.oracle import forward


def _round_trip(g: Graph) -> None:
    back = load_onnx_bytes(graph_to_onnx_bytes(g, dtype="float64"))
    x = np.random.default_rng(0).standard_normal((3, g.inputs[0].size))
    np.testing.assert_array_equal(forward(back, {back.inputs[0].name: x})[back.output],
                                  forward(g, {g.inputs[0].name: x})[g.output])


def test_three_way_add_and_colliding_names_round_trip() -> None:
    rng = np.random.default_rng(1)
    nodes = (
        Input("output", size=3),  # collides with the default output tensor name
        Dense("d1", source="output", weight=rng.standard_normal((3, 3)), bias=rng.standard_normal(3)),
        Activation("d1_output", source="d1", function="leaky_relu", alpha=0.2),  # collides with d1's tensor
        Add("s", sources=("output", "d1", "d1_output")),
    )
    _round_trip(Graph(nodes, "s"))


def test_every_activation_round_trips() -> None:
    for act in ("tanh", "sigmoid", "relu", "leaky_relu", "softplus", "identity"):
        _round_trip(random_mlp([4, 5, 2], activation=act, seed=2))


def test_multi_input_models_are_refused() -> None:
    g = Graph((Input("a", size=2), Input("b", size=2), Add("s", sources=("a", "b"))), "s")
    with pytest.raises(ModelError, match="supports one input"):
        graph_to_onnx_bytes(g)


@pytest.mark.parametrize("args,fragment", [
    (["--lr", "nan"], "learning rate must be a positive finite number"),
    (["--lr", "-1"], "learning rate must be a positive finite number"),
    (["--epochs", "0"], "epochs and batch_size must be >= 1"),
])
def test_train_refuses_bad_options_before_training(tmp_path: Path, args, fragment, capsys) -> None:
    model = tmp_path / "m.hwbp"
    save_model(random_mlp([64, 8, 10], seed=0), model)
    assert main(["train", str(model), "--backend", "oracle", *args, "-o", str(tmp_path / "t.onnx")]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "t.onnx").exists()


def test_train_checks_both_outputs_first(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.hwbp"
    save_model(random_mlp([64, 8, 10], seed=0), model)
    (tmp_path / "t.hwbp").mkdir()
    assert main(["train", str(model), "--backend", "oracle", "-o", str(tmp_path / "t.onnx")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not (tmp_path / "t.onnx").exists()
