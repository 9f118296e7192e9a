"""Lowering: fusion, couplings, tied parameters, purity."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.errors import ModelError
from hwbp.ir import Activation, Add, Dense, Graph, Input
from hwbp.ir.serialize import graph_to_bytes
from hwbp.lower import Lowerer, lower
from hwbp.models import random_mlp, random_resmlp


def test_mlp_fuses_dense_and_activation() -> None:
    s = lower(random_mlp([4, 5, 5, 2], seed=0).with_loss("mse"), tau_s=1e-6, beta=0.5)
    assert [p.name for p in s.populations] == ["act1", "act2", "fc3"]
    assert [p.level for p in s.populations] == [1, 2, 3] and s.depth == 3
    assert s.populations[0].terms[0].activation == "tanh"
    assert s.populations[0].terms[0].weight == "fc1.weight"
    assert s.tau_s == 1e-6 and s.beta == 0.5


def test_residual_block_is_one_population() -> None:
    s = lower(random_resmlp(3, 4, 2, blocks=3, seed=0).with_loss("mse"))
    assert s.depth == 5
    block = s.population("block2")
    assert [(t.source, t.activation, t.weight) for t in block.terms] == [
        ("block1", "identity", None), ("block1", "tanh", "block2.fc.weight")]


def test_every_weight_serves_one_forward_and_one_sensitivity_coupling() -> None:
    s = lower(random_resmlp(3, 4, 2, blocks=3, seed=0).with_loss("ce"))
    weights = {k for k in s.parameters if k.endswith(".weight")}
    assert {t.name for t in s.tied} == weights
    for tied in s.tied:
        fwd = s.couplings[tied.forward]
        assert fwd.kind == "forward" and fwd.parameter == tied.name
        uses = [c for c in s.couplings if c.parameter == tied.name]
        if s.is_population(fwd.pre):
            sens = s.couplings[tied.sensitivity]
            assert sens.kind == "sensitivity" and (sens.pre, sens.post) == (fwd.post, fwd.pre)
            assert len(uses) == 2
        else:  # first layer: inputs are clamped and carry no sensitivity
            assert tied.sensitivity is None and len(uses) == 1


def test_lowering_is_pure() -> None:
    g = random_resmlp(3, 4, 2, blocks=2, seed=0).with_loss("mse")
    before = graph_to_bytes(g)
    s = lower(g)
    assert graph_to_bytes(g) == before
    with pytest.raises(ValueError):
        s.parameters["head.weight"][0, 0] = 1.0


def test_activation_after_add_and_shared_dense_become_populations() -> None:
    nodes = (
        Input("x", size=3),
        Dense("d", source="x", weight=np.eye(3), bias=np.zeros(3)),
        Activation("r", source="d", function="relu"),
        Activation("t", source="d", function="tanh"),
        Add("s", sources=("r", "t")),
        Activation("out", source="s", function="sigmoid"),
    )
    s = lower(Graph(nodes, "out").with_loss("mse"))
    assert [p.name for p in s.populations] == ["d", "s", "out"]
    assert [t.activation for t in s.population("s").terms] == ["relu", "tanh"]
    assert s.depth == 3


def test_missing_loss_and_custom_rules() -> None:
    g = random_mlp([2, 2], seed=0)
    with pytest.raises(ModelError, match="no loss port"):
        lower(g)
    lowerer = Lowerer()
    lowerer.register(Dense, lambda ctx, node: (_ for _ in ()).throw(ModelError("custom rule used")))
    with pytest.raises(ModelError, match="custom rule used"):
        lowerer.lower(g.with_loss("mse"))
    assert lower(g.with_loss("mse")).depth == 1  # registration is scoped to that lowerer
