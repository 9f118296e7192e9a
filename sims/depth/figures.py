"""Figures of the depth benchmark, drawn from its CSV files (also used by
``notebooks/depth_benchmark.ipynb``).

``accuracy_vs_depth.png``  test accuracy (mean +- sd over seeds) against depth;
``cosine_vs_depth.png``    gradient cosine to backprop against depth (log scale of 1 - cos);
``cosine_vs_budget.png``   cosine against the inference budget T / L (from L/2 to 3L);
``credit_arrival.png``     step at which each layer's gradient gets credit, against depth;
``layer_credit.png``       per-layer cosine at T = L/2, L, 3L/2, 2L: which layers lack credit.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["read_csv", "write_figures", "FIGURES"]

FIGURES = ("accuracy_vs_depth.png", "cosine_vs_depth.png", "cosine_vs_budget.png", "credit_arrival.png",
           "layer_credit.png")
COLORS = {"bp": "black", "dyadic": "tab:blue", "dyadic-rest": "tab:cyan", "pc": "tab:red", "pc-alm": "tab:orange"}
LABELS = {"bp": "backprop", "dyadic": "dyadic (from forward pass)", "dyadic-rest": "dyadic (from rest)",
          "pc": "PC", "pc-alm": "PC-ALM"}


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a benchmark CSV, numbers converted (empty cells become NaN)."""
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out = {}
            for k, v in r.items():
                try:
                    out[k] = float(v) if v != "" else float("nan")
                except ValueError:
                    out[k] = v
            rows.append(out)
    return rows


def _grid(keys: list[tuple[str, str]]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8), squeeze=False)
    return fig, axes[0]


def _panels(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted({(r["dataset"], r["activation"]) for r in rows})


def accuracy_vs_depth(rows: list[dict], metric: str = "test_acc"):
    """Mean +- sd of ``metric`` over seeds against depth, one panel per dataset/activation."""
    panels = _panels(rows)
    fig, axes = _grid(panels)
    for ax, (ds, act) in zip(axes, panels):
        for m in ("bp", "dyadic", "pc", "pc-alm"):
            sel = [r for r in rows if r["dataset"] == ds and r["activation"] == act and r["method"] == m]
            depths = sorted({r["depth"] for r in sel})
            if not depths:
                continue
            vals = [[r[metric] for r in sel if r["depth"] == d] for d in depths]
            mean = np.array([np.mean(v) for v in vals])
            sd = np.array([np.std(v) for v in vals])
            if metric == "grad_cosine":
                mean, sd = np.maximum(1 - mean, 1e-17), sd
            else:
                mean, sd = 100 * mean, 100 * sd
            ax.errorbar(depths, mean, yerr=sd, marker="o", ms=4, capsize=3, color=COLORS[m], label=LABELS[m],
                        ls="--" if m == "dyadic" else "-")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("depth L")
        ax.set_title(f"{ds}, {act}")
        if metric == "grad_cosine":
            ax.set_yscale("log")
            ax.set_ylabel("1 - cosine to backprop")
        else:
            ax.set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def cosine_vs_budget(rows: list[dict]):
    """Whole-network cosine against T / L for every depth and method."""
    panels = _panels(rows)
    fig, axes = _grid(panels)
    for ax, (ds, act) in zip(axes, panels):
        depths = sorted({r["depth"] for r in rows})
        for m in ("dyadic-rest", "dyadic", "pc", "pc-alm"):
            for i, d in enumerate(depths):
                sel = sorted((r["T"], r["grad_cosine"]) for r in rows
                             if r["dataset"] == ds and r["activation"] == act and r["method"] == m and r["depth"] == d
                             and r["T"] >= d / 2)
                if not sel:
                    continue
                t, c = np.array(sel).T
                ax.plot(t / d, c, color=COLORS[m], alpha=0.35 + 0.65 * (i + 1) / len(depths),
                        label=LABELS[m] if i == len(depths) - 1 else None)
        ax.axvline(2, color="gray", lw=0.8, ls=":")
        ax.set_xlabel("inference budget T / L")
        ax.set_ylabel("gradient cosine to backprop")
        ax.set_ylim(-0.1, 1.05)
        ax.set_title(f"{ds}, {act} (darker: deeper, L = {', '.join(str(int(d)) for d in depths)})", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def credit_arrival(rows: list[dict]):
    """Arrival step of credit per layer (first step with relative error <= 0.1), against the
    layer's distance from the output, one curve per depth; ballistic credit (one layer
    per step) is a line of slope 1."""
    panels = sorted({(r["dataset"], r["activation"]) for r in rows})
    fig, axes = _grid(panels)
    for ax, (ds, act) in zip(axes, panels):
        depths = sorted({r["depth"] for r in rows})
        for m in ("dyadic-rest", "dyadic", "pc", "pc-alm"):
            for i, d in enumerate(depths):
                sel = sorted((r["layer"], r["arrival"]) for r in rows if r["dataset"] == ds
                             and r["activation"] == act and r["method"] == m and r["depth"] == d)
                if not sel:
                    continue
                layer, t = np.array(sel).T
                ax.plot(d - layer + 1, t, color=COLORS[m], marker=".", ms=3, lw=1,
                        alpha=0.35 + 0.65 * (i + 1) / len(depths), label=LABELS[m] if i == len(depths) - 1 else None)
        ax.set_xlabel("layer distance from the output (L - l + 1)")
        ax.set_ylabel("credit arrival step (rel. error <= 0.1)")
        ax.set_title(f"{ds}, {act}: missing points never arrive within 3L", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def layer_credit(rows: list[dict]):
    """Per-layer relative error of the weight gradient at several budgets T <= 2L, at the
    largest depth studied: 1 means no credit yet, round-off means exact."""
    panels = sorted({(r["dataset"], r["activation"]) for r in rows})
    fig, axes = _grid(panels)
    styles = {"dyadic-rest": "-", "dyadic": "--", "pc": "-", "pc-alm": "-"}
    for ax, (ds, act) in zip(axes, panels):
        d = max(r["depth"] for r in rows if r["dataset"] == ds and r["activation"] == act)
        budgets = sorted({r["T"] for r in rows if r["depth"] == d and r["T"] <= 2 * d})
        for m in ("dyadic-rest", "pc", "pc-alm"):
            for i, T in enumerate(budgets):
                sel = sorted((r["layer"], max(r["rel_err"], 1e-16)) for r in rows if r["dataset"] == ds
                             and r["activation"] == act and r["method"] == m and r["depth"] == d and r["T"] == T)
                if not sel:
                    continue
                layer, c = np.array(sel).T
                ax.plot(layer, c, color=COLORS[m], ls=styles[m], alpha=0.3 + 0.7 * (i + 1) / len(budgets),
                        label=f"{LABELS[m]}, T = {int(T)}")
        ax.set_xlabel("layer l")
        ax.set_ylabel("relative error of the layer's gradient")
        ax.set_yscale("log")
        ax.set_ylim(1e-16, 10)
        ax.set_title(f"{ds}, {act}, L = {int(d)}: credit by layer at T <= 2L (1 = none)", fontsize=9)
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def write_figures(directory: str | Path) -> list[Path]:
    """Draw every figure from the CSVs in ``directory`` into PNGs there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwbp.io import atomic_write_bytes
    from hwbp.verify.plot import figure_png

    d = Path(directory)
    results = read_csv(d / "results.csv")
    figs = {
        "accuracy_vs_depth.png": accuracy_vs_depth(results),
        "cosine_vs_depth.png": accuracy_vs_depth(results, "grad_cosine"),
        "cosine_vs_budget.png": cosine_vs_budget(read_csv(d / "budget.csv")),
        "credit_arrival.png": credit_arrival(read_csv(d / "arrival.csv")),
        "layer_credit.png": layer_credit(read_csv(d / "layers.csv")),
    }
    written = []
    for name, fig in figs.items():
        atomic_write_bytes(d / name, figure_png(fig))
        plt.close(fig)
        written.append(d / name)
    return written
