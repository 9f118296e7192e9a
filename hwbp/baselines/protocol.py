"""The PC-ALM protocol: the depth study run as the PC-ALM paper's reference code runs it.

``--protocol pc-alm`` (``sims/depth/run.py`` and ``hwbp train``) means:

- inputs standardized with the training set's pixel mean and standard deviation
  (:func:`standardize`), not scaled by 1/255;
- the full 60k/10k split (Fashion-MNIST or MNIST, ``--dataset fashion-mnist`` or
  ``idx:DIR``), batch 64, one epoch = ``n_train // 64`` steps (937 for 60k), the last
  partial batch dropped;
- the reference's model: bias-free layers (``--bias`` adds biases that start at 0), the
  training set visited in the reference's order (:func:`reference_order`);
- inference step ``η = 1/λ_max`` per cell, ``λ_max`` the largest eigenvalue of the PC
  energy's Gauss-Newton Hessian in the latent states at the cell's initial weights on
  its first training batch (:func:`protocol_eta`), instead of a fixed 0.2 (the
  reference code reads a frozen per-cell value from a table, the median over three
  seeds; ``eta=`` sets one);
- PC-ALM's multipliers read for the weight gradient before the last dual update
  (``pre_dual_energy``, :data:`hwbp.baselines.chain.TIMINGS`);
- the gradient cosine to backprop as the reference code takes it: once, at the weights
  the run ends with, on one fixed batch of 64 training images, flattened over all weights
  (and, separately, over the biases when there are any: with biases the depth-muP
  model's gradient norm is almost all in them, so a cosine over all parameters would
  mostly measure the bias gradient); beside it the mean over the training steps of the
  cosine on each training batch, and the cosine at initialization.

:func:`train_cell` trains one cell with one method on :class:`~hwbp.baselines.chain.ResChain`
and returns a row of the protocol table.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from hwbp.baselines.chain import TIMINGS, ResChain
from hwbp.errors import ConfigError

__all__ = ["BATCH", "METHODS", "standardize", "protocol_eta", "cosines", "reference_order", "train_cell",
           "gradient_of"]

BATCH = 64
#: backprop, the dyadic field (2L unit steps from the forward pass), PC, PC-ALM, and the
#: variants: fixed-prediction PC (η = 1, L − 1 steps), small-error PC (loss scaled by
#: 1e-3, T = 2L, η = 1/λ_max) and PC-ALM run to convergence (``pc-alm-conv``, T = 100L).
METHODS = ("backprop", "dyadic", "pc", "pc-alm", "fp-pc", "se-pc", "pc-alm-conv")
SMALL_ERROR = 1e-3


def standardize(data):
    """The dataset with inputs ``(x − m) / s``, ``m, s`` the mean and standard deviation
    of all training pixels (one scalar each, as torchvision's ``Normalize``)."""
    m, s = float(data.x_train.mean()), float(data.x_train.std())
    return replace(data, x_train=(data.x_train - m) / s, x_test=(data.x_test - m) / s)


def protocol_eta(chain: ResChain, x: np.ndarray, rho: float = 1.0) -> float:
    """``η = 1/λ_max`` of the cell (see the module docstring)."""
    lam = chain.lambda_max(x, rho=rho)
    if not (np.isfinite(lam) and lam > 0):
        raise ConfigError(f"the PC energy's Hessian has no positive largest eigenvalue (got {lam})")
    return 1.0 / lam


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0)
    if sa == 0 or sb == 0:
        return 1.0 if sa == sb else 0.0
    a, b = a / sa, b / sb
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def cosines(g: dict, ref: dict) -> tuple[float, float]:
    """Cosine to ``ref`` over the weights only and over the biases only (NaN without biases)."""
    flat = lambda d, ks: np.concatenate([np.ravel(d[k]) for k in ks])  # noqa: E731
    w = _cos(flat(g, ("w1", "wm", "wl")), flat(ref, ("w1", "wm", "wl")))
    bk = [k for k in ("b1", "bm", "bl") if k in ref]
    return w, (_cos(flat(g, bk), flat(ref, bk)) if bk else float("nan"))


def budget(method: str, depth: int, steps: int | None = None) -> int:
    """Inference steps T of ``method`` at depth ``L`` (``steps`` overrides; backprop 0)."""
    if method == "backprop":
        return 0
    if steps is not None:
        return steps
    return {"fp-pc": depth - 1, "pc-alm-conv": 100 * depth}.get(method, 2 * depth)


def gradient_of(chain: ResChain, method: str, x: np.ndarray, y: np.ndarray, T: int, eta: float,
                timing: str = "pre_dual_energy") -> dict:
    """The weight (and bias) gradient of ``method`` on one batch."""
    if method == "backprop":
        return chain.backprop(x, y)[0]
    if method == "dyadic":
        return chain.dyadic(x, y, T)
    if method == "pc":
        return chain.pc(x, y, T, eta)
    if method in ("pc-alm", "pc-alm-conv"):
        return chain.pc(x, y, T, eta, alpha=1.0, timing=timing)
    if method == "fp-pc":
        return chain.fixed_prediction_pc(x, y, T, 1.0)
    if method == "se-pc":
        return chain.pc(x, y, T, eta, gamma=SMALL_ERROR)
    raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def reference_order(n: int, seed: int, epochs: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """The order in which the reference code visits the training set: the set shuffled
    once with ``seed``, then each epoch's batches of 64 drawn from that shuffled set by a
    permutation seeded ``seed + epoch``, the last partial batch dropped.  Returns the
    epochs' index arrays (into the unshuffled set) and the diagnostic batch: the first
    64 images of the shuffled set, on which the cosine is taken."""
    shuffled = np.arange(n)
    np.random.default_rng(seed).shuffle(shuffled)
    usable = (n // BATCH) * BATCH
    orders = [shuffled[np.random.default_rng(seed + e).permutation(n)[:usable]] for e in range(epochs)]
    return orders, shuffled[:BATCH]


def train_cell(data, depth: int, width: int, activation: str, method: str, seed: int, *, bias: bool = False,
               timing: str = "pre_dual_energy", steps: int | None = None, epochs: int = 1,
               max_steps: int | None = None, eta: float | None = None, progress: bool = False) -> dict:
    """Train one cell (``depth_resmlp``, bias-free unless ``bias``, MSE to one-hot targets,
    Adam with ``lr = 1e-3 sqrt(N/L)``, batch 64 in :func:`reference_order`) with
    ``method``'s gradients on ``data`` (already standardized), and return the protocol
    table's row.

    ``eta``: the PC / PC-ALM inference step (default ``1/λ_max`` of the cell at its
    initial weights on its first training batch, :func:`protocol_eta`).  The cosines:
    ``cosine_weights`` / ``cosine_bias``, the reference's definition: ``method``'s
    gradient against backprop's at the weights the run ends with, on the diagnostic
    batch of :func:`reference_order`, flattened over all weights (biases apart);
    ``cosine_weights_mean`` / ``cosine_bias_mean``: the mean over the training steps of
    the cosine on each training batch at the weights of that step;
    ``cosine_weights_init``: the first step's.  ``max_steps`` stops early (the final
    cosine is then taken at the weights after ``max_steps`` steps)."""
    from hwbp.models import depth_resmlp

    if timing not in TIMINGS:
        raise ConfigError(f"unknown multiplier timing {timing!r}; valid: {', '.join(TIMINGS)}")
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    t0 = time.perf_counter()
    graph = depth_resmlp(data.n_features, width, data.n_classes, depth, activation=activation, seed=seed,
                         bias=bias)
    chain = ResChain.from_graph(graph, bias=bias)
    eye = np.eye(data.n_classes)
    orders, diag = reference_order(data.x_train.shape[0], seed, epochs)
    if eta is None:
        eta = protocol_eta(chain, data.x_train[orders[0][:BATCH]])
    elif not (np.isfinite(eta) and eta > 0):
        raise ConfigError(f"eta must be a positive number, got {eta}")
    T = budget(method, depth, steps)
    lr = 1e-3 * float(np.sqrt(width / depth))
    n_steps = orders[0].shape[0] // BATCH
    cw, cb, adam, t = [], [], {}, 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs * n_steps if max_steps is None else max_steps, desc=f"{method} L={depth}",
                   leave=False)
    for order in orders:
        for i in range(n_steps):
            if max_steps is not None and t >= max_steps:
                break
            idx = order[i * BATCH:(i + 1) * BATCH]
            x, y = data.x_train[idx], eye[data.y_train[idx]]
            ref = chain.backprop(x, y)[0]
            g = ref if method == "backprop" else gradient_of(chain, method, x, y, T, eta, timing)
            w, b = cosines(g, ref)
            cw.append(w)
            cb.append(b)
            t += 1
            chain.step(g, adam, lr, t)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    x, y = data.x_train[diag], eye[data.y_train[diag]]
    ref = chain.backprop(x, y)[0]
    fw, fb = cosines(ref if method == "backprop" else gradient_of(chain, method, x, y, T, eta, timing), ref)
    _, yhat = chain.forward(data.x_test)
    acc = float((yhat.argmax(1) == data.y_test).mean())
    return {"dataset": data.name, "activation": activation, "depth": depth, "width": width, "method": method,
            "seed": seed, "bias": int(bias), "T": T, "eta": eta, "steps": t, "cosine_weights": fw,
            "cosine_bias": fb, "cosine_weights_mean": float(np.mean(cw)), "cosine_bias_mean": float(np.mean(cb)),
            "cosine_weights_init": cw[0], "test_acc": acc, "wall_s": time.perf_counter() - t0}
