"""Verifier: metrics, report schema, failure detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwbp.errors import ConfigError
from hwbp.models import random_mlp
from hwbp.verify import SCHEMA, Tolerances, metrics, verify

from conftest import make_batch


def test_metrics_definitions() -> None:
    g_ref = np.array([3.0, 4.0])
    m = metrics(np.array([3.0, 4.5]), g_ref)
    assert m.rel_err == pytest.approx(0.5 / 5.0) and m.max_abs_err == pytest.approx(0.5)
    assert m.cosine == pytest.approx((9 + 18) / (5 * np.hypot(3, 4.5)))
    zero = metrics(np.zeros(2), np.zeros(2))
    assert (zero.rel_err, zero.cosine) == (0.0, 1.0)
    only_ref_zero = metrics(np.ones(2), np.zeros(2))
    assert only_ref_zero.rel_err == float("inf") and only_ref_zero.as_dict()["rel_err"] is None
    with pytest.raises(ConfigError, match="cannot compare shapes"):
        metrics(np.ones(2), np.ones(3))


def test_report_schema_and_pass_fail() -> None:
    g = random_mlp([4, 6, 3], seed=0).with_loss("ce")
    batch = make_batch(g, seed=1, loss="ce")
    ok = verify(g, batch, options={"mode": "unit-step"}, initial="random")
    rep = ok.report
    assert rep["schema"] == SCHEMA and rep["backend"] == "reference" and rep["loss"] == "ce"
    assert rep["settle"] == {"mode": "unit-step", "initial": "random", "depth": 2, "steps": 4}
    for key in ("max_rel_err", "min_cosine", "tolerances", "passed", "beta", "parameters", "populations"):
        assert key in rep
    assert set(rep["parameters"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert set(rep["parameters"]["fc1.weight"]) == {"shape", "max_abs_err", "rel_err", "cosine"}
    assert rep["passed"] is True and rep["max_rel_err"] < 1e-12
    json.dumps(rep, allow_nan=False)
    early = verify(g, batch, options={"mode": "unit-step", "steps": 3}, initial="random")
    assert early.report["passed"] is False
    loose = verify(g, batch, tolerances=Tolerances(max_rel_err=10.0, min_cosine=-1.0),
                   options={"mode": "unit-step", "steps": 3}, initial="random")
    assert loose.passed


def test_unknown_backend_lists_choices() -> None:
    g = random_mlp([2, 2], seed=0).with_loss("mse")
    with pytest.raises(ConfigError, match="unknown backend 'hspice'; valid: reference"):
        verify(g, make_batch(g), backend="hspice")
