"""PyTorch in the loop: a torch training loop whose gradients come from an hwbp
backend follows the autograd loop step for step."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_torch
from hwbp.data import load_dataset


def _setup(hidden: int = 16, seed: int = 0):
    torch = require_torch()

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(64, hidden)
            self.fc2 = torch.nn.Linear(hidden, hidden)
            self.out = torch.nn.Linear(hidden, 10)

        def forward(self, x):
            h = torch.tanh(self.fc1(x))
            h = h + torch.relu(self.fc2(h))  # residual block
            return self.out(h)

    torch.manual_seed(seed)
    a = MLP().double()
    b = MLP().double()
    b.load_state_dict(a.state_dict())
    return torch, a, b


def _loops(backend: str, steps: int, batch: int, **kw):
    from hwbp.torch import physical_gradients

    torch, auto, phys = _setup()
    d = load_dataset("digits")
    x = torch.from_numpy(d.x_train)
    y = torch.from_numpy(d.y_train)
    opt_a = torch.optim.Adam(auto.parameters(), lr=0.01)
    opt_p = torch.optim.Adam(phys.parameters(), lr=0.01)
    pg = physical_gradients(phys, x[:2], backend=backend, loss="ce", **kw)
    la, lp = [], []
    for s in range(steps):
        xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
        opt_a.zero_grad()
        loss = torch.nn.functional.cross_entropy(auto(xb), yb)
        loss.backward()
        opt_a.step()
        opt_p.zero_grad()
        loss_p = pg(xb, yb)
        loss_p.backward()
        opt_p.step()
        la.append(loss.item())
        lp.append(loss_p.item())
    return auto, phys, np.array(la), np.array(lp)


@pytest.mark.slow
def test_reference_backend_follows_autograd_step_for_step() -> None:
    auto, phys, la, lp = _loops("reference", 12, 32)
    np.testing.assert_allclose(lp, la, rtol=1e-12)
    for (name, p), q in zip(auto.named_parameters(), phys.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.slow
def test_short_budget_does_not_follow_autograd() -> None:
    """Negative control: one unit step short of 2L from rest is not backprop."""
    auto, phys, la, lp = _loops("reference", 3, 32, options={"steps": 5})
    assert np.abs(lp[1:] - la[1:]).max() > 1e-6


def test_backward_accumulates_and_checks_targets() -> None:
    from hwbp.errors import ConfigError
    from hwbp.torch import physical_gradients

    torch, _, phys = _setup()
    x = torch.zeros(4, 64, dtype=torch.float64)
    pg = physical_gradients(phys, x, backend="oracle", loss="ce")
    y = torch.tensor([1, 2, 3, 4])
    pg(x, y).backward()
    first = phys.fc1.weight.grad.clone()
    pg(x, y).backward()
    np.testing.assert_allclose(phys.fc1.weight.grad.numpy(), 2 * first.numpy())
    with pytest.raises(ConfigError, match="class labels"):
        pg(x, torch.tensor([0, 1, 2, 10]))


@pytest.mark.slow
def test_spice_backend_follows_autograd_for_a_few_steps() -> None:
    from spice_helpers import require_ngspice

    require_ngspice()
    auto, phys, la, lp = _loops("spice", 3, 4, options={"analysis": "op"})
    np.testing.assert_allclose(lp, la, rtol=1e-8)
    for p, q in zip(auto.parameters(), phys.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-6, atol=1e-8)


def _bn_module():
    torch = require_torch()

    class BN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(4, 6)
            self.bn = torch.nn.BatchNorm1d(6)
            self.out = torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.out(torch.tanh(self.bn(self.fc1(x))))

    torch.manual_seed(0)
    m = BN().double()
    x = torch.randn(8, 4, dtype=torch.float64)
    m(x)  # training mode: the running statistics move away from (0, 1)
    return torch, m, x, torch.randint(0, 3, (8,))


def test_running_statistics_are_synced_and_training_mode_is_refused() -> None:
    from hwbp.errors import ConfigError
    from hwbp.torch import physical_gradients

    torch, m, x, y = _bn_module()
    with pytest.raises(ConfigError, match="training mode.*bn.*module.eval"):
        physical_gradients(m, x[:2], backend="oracle", loss="ce")
    m.eval()
    pg = physical_gradients(m, x[:2], backend="oracle", loss="ce")
    with torch.no_grad():  # statistics change after the export
        m.bn.running_mean.add_(0.5)
        m.bn.running_var.mul_(2.0)
    m.zero_grad()
    pg(x, y).backward()
    got = {k: p.grad.clone() for k, p in m.named_parameters()}
    m.zero_grad()
    torch.nn.functional.cross_entropy(m(x), y).backward()
    for k, p in m.named_parameters():
        assert float((got[k] - p.grad).norm() / p.grad.norm()) < 1e-12, k
    m.train()
    with pytest.raises(ConfigError, match="training mode"):
        pg(x, y)


def test_input_shape_is_checked() -> None:
    from hwbp.errors import ConfigError
    from hwbp.torch import physical_gradients

    torch, m, x, y = _bn_module()
    m.eval()
    pg = physical_gradients(m, x[:2], backend="oracle", loss="ce")
    with pytest.raises(ConfigError, match=r"shape \(8, 1, 2, 2\).*\(batch, 4\)"):
        pg(x.reshape(8, 1, 2, 2), y)
