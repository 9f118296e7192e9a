"""The oracle against central finite differences and (when installed) torch.autograd."""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.ir.activations import ACTIVATIONS
from hwbp.models import random_mlp, random_resmlp
from hwbp.oracle import exact_gradients, finite_difference_gradients

from conftest import make_batch, require_torch

#: Central differences with eps = 1e-6 in float64: truncation ~eps^2, round-off ~1e-16/eps.
FD_ATOL = 1e-8


def _graphs():
    for act in sorted(ACTIVATIONS):
        yield f"mlp-{act}", random_mlp([3, 4, 3, 2], activation=act, seed=1)
    yield "resmlp", random_resmlp(3, 4, 2, blocks=2, activation="tanh", seed=2)


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("name,graph", list(_graphs()), ids=[n for n, _ in _graphs()])
def test_oracle_matches_finite_differences(name, graph, loss) -> None:
    g = graph.with_loss(loss)
    batch = make_batch(g, size=3, seed=4, loss=loss)
    exact = exact_gradients(g, batch).parameters
    fd = finite_difference_gradients(g, batch)
    for k in exact:
        np.testing.assert_allclose(exact[k], fd[k], rtol=0, atol=FD_ATOL, err_msg=k)


TORCH = {"identity": lambda t, a: t, "tanh": lambda t, a: t.tanh(), "sigmoid": lambda t, a: t.sigmoid(),
         "relu": lambda t, a: t.relu(), "leaky_relu": lambda t, a: __import__("torch").nn.functional.leaky_relu(t, a),
         "softplus": lambda t, a: __import__("torch").nn.functional.softplus(t),
         "gelu": lambda t, a: __import__("torch").nn.functional.gelu(t),
         "gelu_tanh": lambda t, a: __import__("torch").nn.functional.gelu(t, approximate="tanh"),
         "elu": lambda t, a: __import__("torch").nn.functional.elu(t, a),
         "silu": lambda t, a: __import__("torch").nn.functional.silu(t),
         "softsign": lambda t, a: __import__("torch").nn.functional.softsign(t),
         "hardtanh": lambda t, a: __import__("torch").nn.functional.hardtanh(t),
         "relu6": lambda t, a: __import__("torch").nn.functional.relu6(t),
         "clip": lambda t, a: __import__("torch").nn.functional.hardtanh(t, -0.5, 1.5)}


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("name,graph", list(_graphs()), ids=[n for n, _ in _graphs()])
def test_oracle_matches_torch_autograd(name, graph, loss) -> None:
    torch = require_torch()
    from hwbp.ir import Activation, Add, Dense, Input

    g = graph.with_loss(loss)
    batch = make_batch(g, size=5, seed=7, loss=loss)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in g.parameters().items()}
    vals = {}
    for node in g.nodes:
        if isinstance(node, Input):
            vals[node.name] = torch.tensor(batch.x[node.name])
        elif isinstance(node, Dense):
            vals[node.name] = vals[node.source] @ params[node.weight_name].T + params[node.bias_name]
        elif isinstance(node, Activation):
            vals[node.name] = TORCH[node.function](vals[node.source], node.alpha)
        elif isinstance(node, Add):
            vals[node.name] = sum(vals[s] for s in node.sources)
    out, y = vals[g.output], torch.tensor(batch.y)
    if loss == "mse":
        value = 0.5 * ((out - y) ** 2).sum(dim=1).mean()
    else:
        value = -(y * torch.log_softmax(out, dim=1)).sum(dim=1).mean()
    value.backward()
    exact = exact_gradients(g, batch)
    assert exact.loss == pytest.approx(value.item(), rel=1e-13)
    for k, p in params.items():
        np.testing.assert_allclose(exact.parameters[k], p.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=k)
