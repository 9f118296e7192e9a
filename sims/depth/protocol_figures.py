"""Figures of the depth study under the PC-ALM protocol, from ``protocol/results.csv``.

``cosine_vs_depth.png``  1 − cosine to backprop (log axis) against depth over the weights:
                         at the end of training on the fixed batch (the reference code's
                         definition) and the mean over training steps (and over the biases
                         when the cells have them), mean and 95 % interval over seeds;
``accuracy.png``         test accuracy against depth, only for full-epoch cells whose
                         backprop accuracy is clearly above chance;
``variants.png``         the depth-32 cells: 1 − cosine (weights) against the inference
                         steps per gradient, every method and variant, ReLU and linear;
``linear_convergence.png`` PC-ALM on the linear cells: relative error of its gradient
                         against T (exact only at equilibrium, far beyond 2L).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_protocol_figures", "FIGURES"]

FIGURES = ("cosine_vs_depth.png", "accuracy.png", "variants.png", "linear_convergence.png")
COLORS = {"backprop": "black", "dyadic": "tab:blue", "fp-pc": "tab:cyan", "pc": "tab:red", "se-pc": "tab:purple",
          "pc-alm": "tab:orange", "pc-alm-conv": "tab:brown"}
LABELS = {"backprop": "backprop", "dyadic": "dyadic (T = 2L)", "fp-pc": "fixed-prediction PC (T = L - 1)",
          "pc": "PC (T = 2L)", "se-pc": "small-error PC (T = 2L)", "pc-alm": "PC-ALM (T = 2L)",
          "pc-alm-conv": "PC-ALM run long (initial weights)"}
MARKERS = {"backprop": "o", "dyadic": "s", "fp-pc": "D", "pc": "v", "se-pc": "<", "pc-alm": "^", "pc-alm-conv": "P"}
#: 1 - cosine below this is drawn at it (float64 round-off)
FLOOR = 1e-16


def _stat(v: list[float]) -> tuple[float, float]:
    from scipy.stats import t

    a = np.array([x for x in v if np.isfinite(x)])
    if len(a) < 2:
        return (float(a.mean()) if len(a) else float("nan")), 0.0
    return float(a.mean()), float(t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))


def _sel(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def _depth_axis(ax, depths) -> None:
    """A log2 depth axis over ``depths`` with a margin of a factor 1.5 each side, so that
    the side-by-side offsets stay small even when there is a single depth."""
    d = sorted({float(x) for x in depths})
    ax.set_xscale("log", base=2)
    ax.set_xlim(d[0] / 1.5, d[-1] * 1.5)
    ax.set_xticks(d, [f"{x:g}" for x in d])
    ax.minorticks_off()


def cosine_vs_depth(rows: list[dict]):
    """1 − cosine (weights; biases) against depth for the ReLU cells."""
    import matplotlib.pyplot as plt

    relu = _sel(rows, activation="relu")
    panels = [("cosine_weights", "weights", "at the end of training, on a fixed batch"),
              ("cosine_weights_mean", "weights", "mean over training steps")]
    if any(np.isfinite(float(r["cosine_bias"])) for r in relu):
        panels.append(("cosine_bias", "biases", "at the end of training, on a fixed batch"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2))
    for ax, (col, what, when) in zip(axes, panels):
        for i, m in enumerate(("dyadic", "pc", "pc-alm")):
            sel = _sel(relu, method=m)
            depths = sorted({r["depth"] for r in sel})
            if not depths:
                continue
            stats = [_stat([1 - r[col] for r in sel if r["depth"] == d]) for d in depths]
            mean = np.maximum([s[0] for s in stats], FLOOR)
            half = np.array([s[1] for s in stats])
            lo = np.minimum(half, mean - FLOOR * 0.5)
            x = np.array(depths) * (1 + 0.04 * (i - 1))  # side by side, none hidden
            ax.errorbar(x, mean, yerr=[lo, half], marker=MARKERS[m], ms=5, capsize=3, color=COLORS[m],
                        label=LABELS[m])
        _depth_axis(ax, [r["depth"] for r in relu])
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 3, 2)
        ax.set_xlabel("depth L (weight layers)")
        ax.set_ylabel(f"1 − cosine to backprop ({what})")
        ax.set_title(f"gradient of the {what},\n{when}", fontsize=9)
        ax.axhline(FLOOR, color="gray", lw=0.6, ls=":")
    axes[0].legend(fontsize=8, loc="center right")
    fig.suptitle("ReLU, width 32, T = 2L; mean and 95 % interval over seeds (dyadic: round-off, drawn at "
                 "1e-16); steps and seeds per depth in results.md", fontsize=9)
    fig.tight_layout()
    return fig


def accuracy(rows: list[dict], shown: set):
    """Test accuracy against depth (only cells in ``shown``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    relu = [r for r in rows if (r["dataset"], r["activation"], int(r["depth"])) in shown and r["activation"] == "relu"]
    for i, m in enumerate(("backprop", "dyadic", "pc", "pc-alm")):
        sel = _sel(relu, method=m)
        depths = sorted({r["depth"] for r in sel})
        if not depths:
            continue
        stats = [_stat([100 * r["test_acc"] for r in sel if r["depth"] == d]) for d in depths]
        x = np.array(depths) * (1 + 0.05 * (i - 1.5))
        ax.errorbar(x, [s[0] for s in stats], yerr=[s[1] for s in stats], marker=MARKERS[m], ms=6 if m != "dyadic"
                    else 9, mfc="none" if m == "dyadic" else None, capsize=3, color=COLORS[m], label=LABELS[m])
    _depth_axis(ax, [r["depth"] for r in relu])
    ax.set_xlabel("depth L (weight layers)")
    ax.set_ylabel("test accuracy after one epoch (%)")
    ax.set_title("ReLU, width 32, one epoch (937 steps); 95 % CI over seeds\n"
                 "(dyadic equals backprop to round-off: hollow squares)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def variants(rows: list[dict]):
    """1 − cosine (weights, at the end of the run) against inference steps per gradient."""
    import matplotlib.pyplot as plt

    depth = 32 if any(r["depth"] == 32 for r in rows) else max(r["depth"] for r in rows)
    acts = [a for a in ("relu", "identity") if _sel(rows, activation=a, depth=depth)]
    fig, axes = plt.subplots(1, len(acts), figsize=(5.5 * len(acts), 4.2), squeeze=False)
    for ax, act in zip(axes[0], acts):
        for k, m in enumerate(("dyadic", "fp-pc", "pc", "se-pc", "pc-alm", "pc-alm-conv")):
            sel = _sel(rows, activation=act, depth=depth, method=m)
            if not sel:
                continue
            mean, half = _stat([1 - r["cosine_weights"] for r in sel])
            mean = max(mean, FLOOR)
            x = sel[0]["T"] * (1 + 0.03 * (k - 2.5))  # side by side at equal T
            ax.errorbar([x], [mean], yerr=[[min(half, mean - FLOOR * 0.5)], [half]], marker=MARKERS[m], ms=8, capsize=3, color=COLORS[m], ls="none", label=LABELS[m])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 3, 2)
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("inference steps per gradient T (points at equal T set side by side)")
        ax.set_ylabel("1 − cosine to backprop (weights)")
        ax.set_title(f"{'linear (identity)' if act == 'identity' else act} cell, L = {depth}, width 32 "
                     "(round-off drawn at 1e-16)",
                     fontsize=9)
        ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def linear_convergence(rows: list[dict]):
    """Relative error and 1 − cosine of PC-ALM's gradient on the linear cells against T."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    depths = sorted({r["depth"] for r in rows})
    for i, d in enumerate(depths):
        sel = sorted((r["T"], r["rel_err"], max(1 - r["cosine_weights"], FLOOR)) for r in rows if r["depth"] == d)
        t, e, c = np.array(sel).T
        color = plt.cm.viridis(i / max(len(depths) - 1, 1) * 0.8)
        for ax, v in zip(axes, (e, c)):
            ax.plot(t, v, marker="o", ms=4, color=color, label=f"L = {int(d)}")
            ax.axvline(2 * d, color=color, lw=0.8, ls=":")
    for ax, what in zip(axes, ("relative error ‖g − g*‖ / ‖g*‖", "1 − cosine to backprop (weights)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("PC-ALM inference steps T (dotted: T = 2L)")
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    fig.suptitle("PC-ALM on linear cells (identity, width 32), initial weights, η = 1/λ_max", fontsize=9)
    fig.tight_layout()
    return fig


def write_protocol_figures(directory: str | Path) -> list[Path]:
    """Draw the figures from ``directory/results.csv`` into PNGs there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from figures import read_csv
    from protocol_runs import shown_accuracy

    from hwbp.io import atomic_write_bytes
    from hwbp.verify.plot import figure_png

    d = Path(directory)
    rows = read_csv(d / "results.csv")
    figs = {"cosine_vs_depth.png": cosine_vs_depth(rows), "variants.png": variants(rows)}
    if (d / "linear_convergence.csv").exists():
        figs["linear_convergence.png"] = linear_convergence(read_csv(d / "linear_convergence.csv"))
    shown = shown_accuracy(rows)
    if shown:
        figs["accuracy.png"] = accuracy(rows, shown)
    written = []
    for name, fig in figs.items():
        atomic_write_bytes(d / name, figure_png(fig))
        plt.close(fig)
        written.append(d / name)
    return written


if __name__ == "__main__":  # redraw from a (possibly partial) table: python protocol_figures.py DIR
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
    for p in write_protocol_figures(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "protocol"):
        print(p)
