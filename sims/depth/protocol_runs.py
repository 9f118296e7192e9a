"""The depth study under the PC-ALM protocol (``run.py --protocol pc-alm``).

Every row of ``protocol/results.csv`` is one training run of
:func:`hwbp.baselines.protocol.train_cell` (see that module for the protocol):
one epoch of 937 steps at batch 64 on standardized Fashion-MNIST (or the dataset
given), or the first ``steps`` of it where the header of ``results.md`` says so (the
deep cells, whose PC runs cost seconds per step).  The plan (:func:`plan`):

- the PC-ALM paper's cell (width 32, depth 32, ReLU, T = 2L) and the depth sweep
  ``L = 8, 16, 32`` over full epochs, ``L = 64, 128`` over the first
  ``--deep-steps`` steps: backprop, dyadic, PC, PC-ALM;
- the variants at L = 32 (their first ``--variant-steps`` training steps):
  fixed-prediction PC (η = 1, T = L − 1), small-error PC (loss × 1e-3, T = 2L), and
  the linear cell (identity activation): backprop, dyadic, PC-ALM at T = 2L; and (:func:`convergence_run`) PC-ALM on the linear cells
  at their initial weights, run far past 2L (to ``--conv-steps``): its gradient
  against T, which reaches backprop's only at equilibrium (``linear_convergence.csv``;
  its last point is the ``pc-alm-conv`` row of the table).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["COLUMNS", "plan", "run_task", "table", "ORDER"]

COLUMNS = ["dataset", "activation", "depth", "width", "method", "seed", "bias", "T", "eta", "steps",
           "cosine_weights", "cosine_bias", "cosine_weights_mean", "cosine_bias_mean", "cosine_weights_init",
           "test_acc", "wall_s"]
ORDER = ("backprop", "dyadic", "fp-pc", "pc", "se-pc", "pc-alm", "pc-alm-conv")
MAIN = ("backprop", "dyadic", "pc", "pc-alm")
#: backprop's test accuracy must exceed chance (10 %) by this much for accuracies to be shown
ABOVE_CHANCE = 0.2

_DATA: dict = {}


def _data(spec: str):
    from hwbp.baselines.protocol import standardize
    from hwbp.data import load_dataset

    if spec not in _DATA:
        _DATA.clear()
        _DATA[spec] = standardize(load_dataset(spec))
    return _DATA[spec]


def plan(dataset: str, depths: list[int], seeds: int, deep_steps: int | dict, *, variants: bool = True,
         deep_seeds: int = 1, variant_steps: int = 100, variant_seeds: int = 2, bias: bool = False,
         cell_pc_seeds: int | None = None) -> list[tuple]:
    """Tasks ``(dataset, activation, depth, method, seed, max_steps, bias)`` in priority order:
    the paper's cell (L = 32; PC-ALM first), the other full-epoch depths (<= 32), the
    variants (their first ``variant_steps`` steps), then the deep cells (their first
    ``deep_steps`` steps, or ``deep_steps[L]`` for a dict by depth).  A run that must stop
    early keeps the most important rows.
    ``cell_pc_seeds``: seeds of PC and dyadic on the L = 32 cell (default ``seeds``)."""
    first = [L for L in depths if L == 32] + sorted(L for L in depths if L < 32)
    order = ("pc-alm", "backprop", "pc", "dyadic")
    n = {m: seeds for m in order}

    def n_seeds(L: int, m: str) -> int:
        return cell_pc_seeds if (L == 32 and m in ("pc", "dyadic") and cell_pc_seeds) else n[m]

    tasks = [(dataset, "relu", L, m, s, None, bias) for L in first for m in order for s in range(n_seeds(L, m))]
    if variants:
        L = 32 if 32 in depths else max(depths)
        tasks += [(dataset, "relu", L, m, s, variant_steps, bias) for m in ("fp-pc", "se-pc")
                  for s in range(variant_seeds)]
        tasks += [(dataset, "identity", L, m, s, variant_steps, bias) for m in ("pc-alm", "backprop", "dyadic")
                  for s in range(variant_seeds)]
    steps = deep_steps if isinstance(deep_steps, dict) else dict.fromkeys(depths, deep_steps)
    tasks += [(dataset, "relu", L, m, s, steps[L], bias) for L in sorted(L for L in depths if L > 32)
              for m in order for s in range(deep_seeds)]
    return tasks


def run_task(dataset: str, activation: str, depth: int, method: str, seed: int, max_steps: int | None,
             bias: bool = False, timing: str = "pre_dual_energy", eta: float | None = None) -> dict:
    """One row of the table (the test accuracy is NaN for runs cut short of the epoch);
    ``eta`` overrides the computed ``1/λ_max``."""
    from hwbp.baselines.protocol import train_cell

    row = train_cell(_data(dataset), depth, 32, activation, method, seed, bias=bias, timing=timing,
                     max_steps=max_steps, eta=eta)
    if max_steps is not None:
        row["test_acc"] = float("nan")
    return row


CONV_COLUMNS = ["dataset", "depth", "seed", "T", "cosine_weights", "cosine_bias", "rel_err", "eta", "wall_s"]


def convergence_run(dataset: str, depth: int, t_max: int, seed: int = 0, bias: bool = False,
                    timing: str = "pre_dual_energy") -> dict:
    """PC-ALM on the linear cell (identity activation) at its initial weights on the first
    training batch: cosine and relative error ``‖g − g*‖ / ‖g*‖`` (all parameters) to
    backprop after ``T = 2L, 4L, 10L, ...`` steps up to ``t_max``."""
    import time

    from hwbp.baselines.chain import ResChain
    from hwbp.baselines.protocol import BATCH, cosines, protocol_eta
    from hwbp.models import depth_resmlp

    data = _data(dataset)
    t0 = time.perf_counter()
    chain = ResChain.from_graph(depth_resmlp(data.n_features, 32, data.n_classes, depth, activation="identity",
                                             seed=seed, bias=bias), bias=bias)
    x, y = data.x_train[:BATCH], np.eye(data.n_classes)[data.y_train[:BATCH]]
    eta = protocol_eta(chain, x)
    ref = chain.backprop(x, y)[0]
    marks = sorted({t for t in (2 * depth, 4 * depth, 10 * depth, 30 * depth, 100 * depth, 300 * depth, 1000 * depth,
                                3000 * depth) if t <= t_max} | {t_max})
    grads = chain.pc(x, y, t_max, eta, alpha=1.0, timing=timing, checkpoints=marks)
    flat = lambda d: np.concatenate([np.ravel(d[k]) for k in sorted(ref)])  # noqa: E731
    rows = []
    for T in marks:
        w, b = cosines(grads[T], ref)
        err = float(np.linalg.norm(flat(grads[T]) - flat(ref)) / np.linalg.norm(flat(ref)))
        rows.append({"dataset": data.name, "depth": depth, "seed": seed, "T": T, "cosine_weights": w,
                     "cosine_bias": b, "rel_err": err, "eta": eta, "wall_s": time.perf_counter() - t0})
    last = rows[-1]
    row = {"dataset": data.name, "activation": "identity", "depth": depth, "width": 32, "method": "pc-alm-conv",
           "seed": seed, "bias": int(bias), "T": t_max, "eta": eta, "steps": 0,
           "cosine_weights": last["cosine_weights"], "cosine_bias": last["cosine_bias"],
           "cosine_weights_mean": last["cosine_weights"], "cosine_bias_mean": last["cosine_bias"],
           "cosine_weights_init": last["cosine_weights"], "test_acc": float("nan"), "wall_s": last["wall_s"]}
    return {"convergence": rows, "row": row}


def _ci(v: np.ndarray) -> str:
    """mean ± 95 % half-width (Student t over seeds)."""
    from scipy.stats import t

    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "—"
    if len(v) == 1:
        return f"{v[0]:.4f} (1 seed)"
    h = t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return f"{v.mean():.4f} ± {h:.4f}"


def groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows by (dataset, activation, depth, method)."""
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["dataset"], r["activation"], int(r["depth"]), r["method"]), []).append(r)
    return out


def shown_accuracy(rows: list[dict]) -> set[tuple]:
    """(dataset, activation, depth) whose backprop runs are full epochs clearly above chance."""
    ok = set()
    for (ds, act, L, m), g in groups(rows).items():
        acc = np.array([float(r["test_acc"]) for r in g], dtype=float)
        if m == "backprop" and np.all(np.isfinite(acc)) and acc.mean() > 0.1 + ABOVE_CHANCE:
            ok.add((ds, act, L))
    return ok


def table(rows: list[dict], header: list[str]) -> str:
    """Markdown: per cell and method, T, η, steps, cosines and accuracy (mean ± 95 % CI)."""
    lines = header + [
        "",
        "| dataset | activation | L | method | seeds | T | η | steps | cosine (weights), end | cosine (biases), end | "
        "cosine (weights), mean over steps | cosine at init (weights) | test acc (%) | wall s/run |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = {m: i for i, m in enumerate(ORDER)}
    show = shown_accuracy(rows)
    g = groups(rows)
    for key in sorted(g, key=lambda k: (k[0], k[1] != "relu", k[1], k[2], order[k[3]])):
        rs = g[key]
        arr = lambda c: np.array([float(r[c]) for r in rs], dtype=float)  # noqa: E731
        acc = _ci(100 * arr("test_acc")) if key[:3] in show else "—"
        eta = arr("eta")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(rs)} | {int(arr('T')[0])} | "
                     f"{eta.mean():.4f} | {int(arr('steps')[0])} | {_ci(arr('cosine_weights'))} | "
                     f"{_ci(arr('cosine_bias'))} | {_ci(arr('cosine_weights_mean'))} | "
                     f"{_ci(arr('cosine_weights_init'))} | {acc} | "
                     f"{arr('wall_s').mean():.0f} |")
    return "\n".join(lines) + "\n"
