"""One unit of work of the depth benchmark each: a training run, or a credit study.

Training run (:func:`train_run`): the depth-scaled residual MLP
(:func:`hwbp.models.depth_resmlp`, width N, depth L, ReLU or tanh) trained for one
epoch, batch 64, Adam with ``lr = 1e-3 sqrt(N/L)``, MSE to one-hot targets, with
gradients from one method:

``bp``      exact backprop (the oracle);
``dyadic``  the reference dynamics, 2L unit steps started from the forward pass
            (as PC starts from its feed-forward init; exact after L of them);
``pc``      predictive coding, T = 2L inference steps (rho = 1, eta = 0.2);
``pc-alm``  PC-ALM, T = 2L (rho = alpha = 1, eta = 0.2).

Then the test accuracy, and the cosine between the method's gradient and backprop's
on a held-out batch (the first 64 test samples) at the trained weights.

Credit study (:func:`credit_run`): at the initial weights (seed 0) on the held-out
batch, every method's per-layer weight-gradient cosine to backprop after each
inference step ``t = 0 .. 3L``: the dyadic dynamics from rest (all nodes 0; exact at
2L) and from the forward pass (exact at L), PC and PC-ALM.
"""

from __future__ import annotations

import time

import numpy as np

from hwbp.baselines import pc_alm_relax, pc_relax
from hwbp.data import load_dataset
from hwbp.lower import lower
from hwbp.models import depth_resmlp
from hwbp.oracle import exact_gradients
from hwbp.sim import simulate
from hwbp.state import State
from hwbp.train import TrainConfig, get_source, gradient_cosine, train
from hwbp.types import Batch
from hwbp.verify.readout import read_gradients

__all__ = ["METHODS", "CREDIT_METHODS", "train_run", "credit_run", "heldout_batch", "source_for"]

METHODS = ("bp", "dyadic", "pc", "pc-alm")
CREDIT_METHODS = ("dyadic-rest", "dyadic", "pc", "pc-alm")
WIDTH = 32
BATCH = 64


def heldout_batch(data, n_out: int = 10) -> Batch:
    """The first 64 test samples with one-hot targets."""
    x, y = data.x_test[:BATCH], data.y_test[:BATCH]
    return Batch({"x": x}, np.eye(n_out)[y])


def source_for(method: str, depth: int):
    """The gradient source of ``method`` with budget ``T = 2L``."""
    if method == "bp":
        return get_source("oracle")
    if method == "dyadic":
        return get_source("reference", options={"steps": 2 * depth}, initial="forward-manifold")
    if method in ("pc", "pc-alm"):
        return get_source(method, options={"steps": 2 * depth})
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def train_run(dataset: str, activation: str, depth: int, method: str, seed: int, *, width: int = WIDTH,
              epochs: int = 1) -> dict:
    """One training run; returns a row of ``results.csv``."""
    t0 = time.perf_counter()
    data = load_dataset(dataset)
    graph = depth_resmlp(data.n_features, width, data.n_classes, depth, activation=activation, seed=seed)
    graph = graph.with_loss("mse")
    config = TrainConfig(epochs, BATCH, "adam", 1e-3 * float(np.sqrt(width / depth)), seed)
    source = source_for(method, depth)
    result = train(graph, data.x_train, data.y_train, source, config, x_test=data.x_test, y_test=data.y_test,
                   progress=False)
    held = heldout_batch(data, data.n_classes)
    exact = exact_gradients(result.graph, held).parameters
    cos = gradient_cosine(source(result.graph, held).parameters, exact)
    return {"dataset": dataset, "activation": activation, "depth": depth, "width": width, "method": method,
            "seed": seed, "T": 0 if method == "bp" else 2 * depth, "test_acc": result.test_accuracy[-1],
            "grad_cosine": cos, "wall_s": time.perf_counter() - t0}


def _layer_cosines(grads, exact, depth: int) -> list[float]:
    return [gradient_cosine({k: grads[k]}, {k: exact[k]}) for k in (f"layer{l}.weight" for l in range(1, depth + 1))]


def _layer_errors(grads, exact, depth: int) -> list[float]:
    """``‖g_l − g*_l‖ / ‖g*_l‖`` of every layer's weight gradient (1: no credit at all)."""
    out = []
    for k in (f"layer{l}.weight" for l in range(1, depth + 1)):
        scale = np.abs(exact[k]).max()
        out.append(float(np.linalg.norm((grads[k] - exact[k]) / scale) / np.linalg.norm(exact[k] / scale)))
    return out


#: a layer "has credit" once its weight gradient is within this relative error of
#: backprop's (direction and size; a cosine alone would count a gradient 1e-100 too small)
ARRIVAL_REL_ERR = 0.1


def credit_run(dataset: str, activation: str, depth: int, *, width: int = WIDTH, seed: int = 0
               ) -> dict[str, list[dict]]:
    """The credit study of one configuration (module docstring).  Returns rows of
    ``budget.csv`` (whole-network cosine after every step ``T = 0 .. 3L``),
    ``layers.csv`` (per-layer cosine and relative error at ``T = L/2, L, 3L/2, 2L, 3L``)
    and ``arrival.csv`` (first step at which each layer's relative error is at most
    :data:`ARRIVAL_REL_ERR`; empty when it is not within 3L)."""
    data = load_dataset(dataset)
    graph = depth_resmlp(data.n_features, width, data.n_classes, depth, activation=activation, seed=seed)
    graph = graph.with_loss("mse")
    batch = heldout_batch(data, data.n_classes)
    system = lower(graph)
    exact = exact_gradients(graph, batch).parameters
    horizon = 3 * depth
    snapshots = sorted({max(1, depth // 2), depth, (3 * depth) // 2, 2 * depth, 3 * depth})
    key = {"dataset": dataset, "activation": activation, "depth": depth}
    out: dict[str, list[dict]] = {"budget": [], "layers": [], "arrival": []}
    arrival: dict[str, list] = {}

    def add(method: str, step: int, grads) -> None:
        errors = _layer_errors(grads, exact, depth)
        out["budget"].append({**key, "method": method, "T": step, "grad_cosine": gradient_cosine(grads, exact)})
        if step in snapshots:
            out["layers"] += [{**key, "method": method, "T": step, "layer": l, "cosine": c, "rel_err": e}
                              for l, (c, e) in enumerate(zip(_layer_cosines(grads, exact, depth), errors), start=1)]
        first = arrival.setdefault(method, [None] * depth)
        for l, e in enumerate(errors):
            if first[l] is None and e <= ARRIVAL_REL_ERR:
                first[l] = step

    for method, initial in (("dyadic-rest", "zeros"), ("dyadic", "forward-manifold")):
        tr = simulate(system, batch, steps=horizon, initial=initial, trace=True).trace
        for k in range(len(tr)):
            add(method, int(round(tr.t[k])), read_gradients(system, tr.state(k), batch).parameters)

    for method, relax in (("pc", pc_relax), ("pc-alm", pc_alm_relax)):
        def record(step: int, state: State, method: str = method) -> None:
            add(method, step, read_gradients(system, state, batch).parameters)

        relax(system, batch, steps=horizon, record=record)
    for method, first in arrival.items():
        out["arrival"] += [{**key, "method": method, "layer": l, "arrival": "" if t is None else t}
                           for l, t in enumerate(first, start=1)]
    return out
