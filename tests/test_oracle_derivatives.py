"""The oracle's own activation derivatives and loss gradients: pinned to torch.autograd
and to central finite differences, independent of the dynamics' tables, and a
negative control (a corrupted dynamics table makes ``hwbp verify`` fail)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np
import pytest

import hwbp.ir.activations as dyn_act
import hwbp.ir.losses as dyn_loss
from hwbp.cli import main
from hwbp.io import save_model
from hwbp.models import random_mlp
from hwbp.oracle import exact_gradients
from hwbp.oracle.derivatives import (
    ORACLE_ACTIVATIONS, ORACLE_LOSSES, MissingOracleError, oracle_activation, oracle_loss,
)

from conftest import make_batch, require_torch

#: Kinks and saturation: 0 (relu/leaky_relu kink), tiny, moderate, and |a| up to 19.5
#: (torch's softplus switches to the identity above 20).
POINTS = np.array([0.0, -0.0, 1e-300, -1e-12, 0.3, -0.7, 1.0, -2.5, 4.0, -8.0, 12.0, -19.5, 19.5])
ALPHAS = (0.01, 0.2)

#: torch counterpart of every activation the IR accepts: an activation added to
#: hwbp.ir.activations needs one here and an OracleActivation in hwbp/oracle/derivatives.py.
TORCH_ACTIVATIONS = {
    "identity": lambda F, t, alpha: t * 1.0,
    "tanh": lambda F, t, alpha: t.tanh(),
    "sigmoid": lambda F, t, alpha: t.sigmoid(),
    "relu": lambda F, t, alpha: t.relu(),
    "leaky_relu": lambda F, t, alpha: F.leaky_relu(t, alpha),
    "softplus": lambda F, t, alpha: F.softplus(t),
    "gelu": lambda F, t, alpha: F.gelu(t),
    "gelu_tanh": lambda F, t, alpha: F.gelu(t, approximate="tanh"),
    "elu": lambda F, t, alpha: F.elu(t, alpha),
    "silu": lambda F, t, alpha: F.silu(t),
    "softsign": lambda F, t, alpha: F.softsign(t),
    "hardtanh": lambda F, t, alpha: F.hardtanh(t),
    "relu6": lambda F, t, alpha: F.relu6(t),
    "clip": lambda F, t, p: F.hardtanh(t, p[0], p[1]),  # nn.Hardtanh exports as Clip; slope 0 at the bounds
}

#: Central differences, step H in float64: truncation ~H^2 |f'''|, round-off ~1e-16/H.
H = 1e-6
FD_ATOL = 1e-8


def test_every_ir_activation_and_loss_has_an_oracle() -> None:
    assert set(ORACLE_ACTIVATIONS) == set(dyn_act.ACTIVATIONS), "add the missing OracleActivation"
    assert set(ORACLE_LOSSES) == set(dyn_loss.LOSSES), "add the missing OracleLoss"


def test_missing_oracle_derivative_is_a_clear_error(monkeypatch) -> None:
    with pytest.raises(MissingOracleError, match=r"'cube'.*hwbp/oracle/derivatives.py"):
        oracle_activation("cube")
    with pytest.raises(MissingOracleError, match=r"'hinge'.*hwbp/oracle/derivatives.py"):
        oracle_loss("hinge")
    # an activation the dynamics learn but the oracle does not: the oracle refuses it
    cube = dyn_act.ActivationFn("cube", lambda a, p: a**3, lambda a, y, p: 3 * a * a, "f(a) = a^3")
    monkeypatch.setitem(dyn_act._TABLE, "cube", cube)
    graph = random_mlp([2, 3, 1], activation="cube", seed=0).with_loss("mse")
    with pytest.raises(MissingOracleError, match="'cube'"):
        exact_gradients(graph, make_batch(graph, size=2))


@pytest.mark.parametrize("name", sorted(dyn_act.ACTIVATIONS))
def test_activation_matches_torch_autograd(name: str) -> None:
    torch = require_torch()
    if name not in TORCH_ACTIVATIONS:
        pytest.fail(f"no torch counterpart for activation {name!r}: add it to TORCH_ACTIVATIONS")
    fn = oracle_activation(name)
    for alpha in ALPHAS:
        if name == "clip":  # its parameter is the pair of bounds; 1.0 is a kink point
            alpha = (-2.5 + alpha, 1.0)
        t = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
        y = TORCH_ACTIVATIONS[name](torch.nn.functional, t, alpha)
        (g,) = torch.autograd.grad(y.sum(), t)
        np.testing.assert_allclose(fn.f(POINTS, alpha), y.detach().numpy(), rtol=1e-15, atol=1e-15, err_msg=name)
        np.testing.assert_allclose(fn.df(POINTS, alpha), g.numpy(), rtol=1e-13, atol=1e-15, err_msg=name)


def test_kink_conventions_are_torchs() -> None:
    zero = np.zeros(1)
    assert oracle_activation("relu").df(zero, 0.0)[0] == 0.0
    assert oracle_activation("leaky_relu").df(zero, 0.2)[0] == 0.2


@pytest.mark.parametrize("name", sorted(ORACLE_ACTIVATIONS))
def test_activation_derivative_matches_finite_differences(name: str) -> None:
    a = np.random.default_rng(3).uniform(-6.0, 6.0, 200)
    a = a[np.abs(a) > 1e-3]  # away from the kinks of relu and leaky_relu
    fn = oracle_activation(name)
    if name == "clip":  # its parameter is the pair of bounds; keep the points off them
        a = a[(np.abs(a + 2.0) > 1e-3) & (np.abs(a - 1.0) > 1e-3)]
    for alpha in ALPHAS:
        if name == "clip":
            alpha = (-2.0, 1.0)
        fd = (fn.f(a + H, alpha) - fn.f(a - H, alpha)) / (2 * H)
        np.testing.assert_allclose(fn.df(a, alpha), fd, rtol=0, atol=FD_ATOL, err_msg=name)


def test_activations_do_not_overflow_far_out() -> None:
    a = np.array([-800.0, -40.0, 40.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for name, fn in ORACLE_ACTIVATIONS.items():
            p = (-1.0, 1.0) if name == "clip" else 0.1  # clip's parameter is the pair of bounds
            assert np.all(np.isfinite(fn.f(a, p))) and np.all(np.isfinite(fn.df(a, p))), name


def _loss_inputs(name: str, *, probabilities: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 4)) * 3.0
    if name == "ce":  # probability rows, not only one-hot; or, off that domain, any rows
        y = rng.uniform(0.0, 1.0, (5, 4))
        y[:2] = np.eye(4)[[1, 3]]
        if not probabilities:
            y[2], y[3] = 0.0, -0.5  # e.g. a target source clamped at 0 V
            return x, y
        return x, y / y.sum(axis=1, keepdims=True)
    return x, rng.standard_normal((5, 4))


@pytest.mark.parametrize("name,probabilities", [("mse", True), ("ce", True), ("ce", False)])
def test_loss_matches_torch_autograd(name: str, probabilities: bool) -> None:
    torch = require_torch()
    F = torch.nn.functional
    x, y = _loss_inputs(name, probabilities=probabilities)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y)
    if name == "mse":
        per_sample = 0.5 * F.mse_loss(tx, ty, reduction="none").sum(dim=1)
    else:  # hwbp's ce: logsumexp(x) - y.x, which is torch's cross-entropy for probability rows
        per_sample = torch.logsumexp(tx, dim=1) - (ty * tx).sum(dim=1)
        if probabilities:
            torch_ce = F.cross_entropy(tx.detach(), ty, reduction="none").numpy()
            np.testing.assert_allclose(per_sample.detach().numpy(), torch_ce, rtol=1e-14, atol=1e-14)
    (g,) = torch.autograd.grad(per_sample.sum(), tx)
    fn = oracle_loss(name)
    np.testing.assert_allclose(fn.value(x, y), per_sample.detach().numpy(), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(fn.grad(x, y), g.numpy(), rtol=1e-13, atol=1e-15)
    assert set(ORACLE_LOSSES) == {"mse", "ce"}, "a new loss needs its torch counterpart here"


@pytest.mark.parametrize("name", sorted(ORACLE_LOSSES))
@pytest.mark.parametrize("probabilities", [True, False])
def test_loss_gradient_matches_finite_differences(name: str, probabilities: bool) -> None:
    x, y = _loss_inputs(name, probabilities=probabilities)
    fn = oracle_loss(name)
    fd = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += H
        xm[idx] -= H
        fd[idx] = (fn.value(xp, y)[idx[0]] - fn.value(xm, y)[idx[0]]) / (2 * H)
    np.testing.assert_allclose(fn.grad(x, y), fd, rtol=0, atol=FD_ATOL)


def _corrupt_tanh(monkeypatch) -> None:
    """Double tanh's derivative in the dynamics' table (what lowering, simulator and readout use)."""
    tanh = dyn_act.ACTIVATIONS["tanh"]
    monkeypatch.setitem(dyn_act._TABLE, "tanh", dataclasses.replace(tanh, df=lambda a, y, p: 2.0 * (1.0 - y * y)))


def test_oracle_ignores_the_dynamics_tables(monkeypatch) -> None:
    graph = random_mlp([3, 4, 4, 2], activation="tanh", seed=5).with_loss("ce")
    batch = make_batch(graph, size=3, seed=1, loss="ce")
    before = exact_gradients(graph, batch)
    _corrupt_tanh(monkeypatch)
    ce = dyn_loss.LOSSES["ce"]
    bad_losses = {**dyn_loss.LOSSES, "ce": dataclasses.replace(ce, grad=lambda x, y: 3.0 * ce.grad(x, y))}
    monkeypatch.setattr(dyn_loss, "LOSSES", MappingProxyType(bad_losses))
    assert dyn_act.get_activation("tanh").df(np.zeros(1), np.zeros(1), 0.0)[0] == 2.0  # the corruption took
    after = exact_gradients(graph, batch)
    for k, v in before.parameters.items():
        np.testing.assert_array_equal(after.parameters[k], v, err_msg=k)


@pytest.fixture
def tanh_model(tmp_path, monkeypatch):
    path = tmp_path / "tanh.hwbp"
    save_model(random_mlp([4, 6, 5, 3], activation="tanh", seed=2), path)
    monkeypatch.chdir(tmp_path)
    return str(path)


@pytest.mark.parametrize("mode", ["unit-step", "steady"])
def test_verify_passes_untouched(tanh_model, mode: str) -> None:
    assert main(["verify", tanh_model, "--mode", mode, "--report", "ok.json"]) == 0


@pytest.mark.parametrize("mode", ["unit-step", "steady"])
def test_verify_fails_with_a_corrupted_dynamics_derivative(tanh_model, mode: str, monkeypatch, capsys) -> None:
    _corrupt_tanh(monkeypatch)
    assert main(["verify", tanh_model, "--mode", mode, "--report", "bad.json"]) == 1
    assert "FAILED" in capsys.readouterr().out
