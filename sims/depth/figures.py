"""Figures of the depth benchmark, drawn from its CSV files (also used by
``notebooks/depth_benchmark.ipynb``), in the shared style (:mod:`hwbp.style`).

``accuracy_vs_depth.png``  test accuracy (mean, min-max over seeds) against depth, only for
                           cells where backprop is clearly above chance (:data:`ABOVE_CHANCE`);
``cosine_vs_depth.png``    1 - cosine to backprop (log axis) against depth; the exact methods
                           (backprop, dyadic) at a floor line, the range set by PC and PC-ALM;
``cosine_vs_budget.png``   1 - cosine against the inference budget T / L, one panel per method;
``credit_arrival.png``     step at which each layer's gradient gets credit, one panel per method;
``layer_credit.png``       per-layer relative error at T = L/2 .. 2L, one panel per method.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["read_csv", "write_figures", "shown_cells", "FIGURES", "CHANCE", "ABOVE_CHANCE"]

FIGURES = ("accuracy_vs_depth.png", "cosine_vs_depth.png", "cosine_vs_budget.png", "credit_arrival.png",
           "layer_credit.png")
COLORS = {"bp": "black", "dyadic": "tab:blue", "dyadic-rest": "tab:cyan", "pc": "tab:red", "pc-alm": "tab:orange"}
LABELS = {"bp": "backprop", "dyadic": "dyadic (from forward pass)", "dyadic-rest": "dyadic (from rest)",
          "pc": "PC", "pc-alm": "PC-ALM"}
MARKERS = {"bp": "o", "dyadic": "s", "dyadic-rest": "D", "pc": "v", "pc-alm": "^"}
#: chance accuracy of the 10-class data sets (digits, MNIST)
CHANCE = 0.10
#: an accuracy panel is drawn only where backprop's mean accuracy exceeds chance by this much at every depth
ABOVE_CHANCE = 0.10
#: 1 - cosine below this is float64 round-off (an exact method)
ROUND_OFF = 1e-12
#: what is drawn in each of several depths (darker: deeper)
DEPTH_CMAP = "viridis"


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


def _panels(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted({(r["dataset"], r["activation"]) for r in rows})


def _sel(rows: list[dict], **kw) -> list[dict]:
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def _depth_colors(depths):
    from matplotlib import colormaps

    cmap = colormaps[DEPTH_CMAP]
    return {d: cmap(0.85 * (1 - i / max(1, len(depths) - 1))) for i, d in enumerate(depths)}


def shown_cells(rows: list[dict]) -> list[tuple[str, str]]:
    """The (dataset, activation) cells whose backprop mean test accuracy over seeds exceeds
    ``CHANCE + ABOVE_CHANCE`` at every depth."""
    out = []
    for ds, act in _panels(rows):
        bp = _sel(rows, dataset=ds, activation=act, method="bp")
        depths = sorted({r["depth"] for r in bp})
        if depths and all(np.mean([r["test_acc"] for r in bp if r["depth"] == d]) > CHANCE + ABOVE_CHANCE
                          for d in depths):
            out.append((ds, act))
    return out


def _mean_range(sel: list[dict], col: str, f):
    depths = sorted({r["depth"] for r in sel})
    vals = [np.array([f(r[col]) for r in sel if r["depth"] == d]) for d in depths]
    mean = np.array([v.mean() for v in vals])
    return np.array(depths), mean, np.array([v.min() for v in vals]), np.array([v.max() for v in vals])


def accuracy_vs_depth(rows: list[dict], metric: str = "test_acc"):
    """Test accuracy (mean, bars min-max over seeds) against depth, one panel per cell
    where backprop is clearly above chance (:func:`shown_cells`); ``metric="grad_cosine"``
    draws :func:`cosine_vs_depth` instead."""
    from hwbp.style import context, figure, legend_below

    if metric == "grad_cosine":
        return cosine_vs_depth(rows)

    shown = shown_cells(rows)
    dropped = [c for c in _panels(rows) if c not in shown]
    rule = (f"panels only where backprop's mean accuracy > chance ({100 * CHANCE:.0f} %) + "
            f"{100 * ABOVE_CHANCE:.0f} points at every depth")
    with context():
        fig, axes = figure(1, max(1, len(shown)), panel=(4.6, 3.4))
        axes = axes[0]
        for ax, (ds, act) in zip(axes, shown):
            for i, m in enumerate(("bp", "dyadic", "pc", "pc-alm")):
                sel = _sel(rows, dataset=ds, activation=act, method=m)
                if not sel:
                    continue
                d, mean, lo, hi = _mean_range(sel, "test_acc", lambda x: 100 * x)
                ax.errorbar(d * (1 + 0.05 * (i - 1.5)), mean, yerr=[mean - lo, hi - mean], marker=MARKERS[m],
                            ms=8 if m == "dyadic" else 5, mfc="none" if m == "dyadic" else None, capsize=3,
                            color=COLORS[m], label=LABELS[m] + (" (= backprop: hollow)" if m == "dyadic" else ""))
            ax.axhline(100 * CHANCE, color="gray", lw=0.8, ls=":", label="chance (10 classes)")
            ax.set_xscale("log", base=2)
            ax.set_ylim(0, None)
            ax.set_xlabel("depth L (weight layers)")
            ax.set_ylabel("test accuracy after one short epoch (%)")
            ax.set_title(f"{ds}, {act}, width 32")
        if not shown:
            axes[0].text(0.5, 0.5, "every cell at chance:\nno accuracy panel", ha="center", va="center",
                         transform=axes[0].transAxes)
            axes[0].set(xlabel="depth L (weight layers)", ylabel="test accuracy (%)")
        note = rule + ("; left out (at chance): " + ", ".join(f"{a} {b}" for a, b in dropped) if dropped else "")
        fig.suptitle(note + "\nmean over seeds, bars min-max", fontsize=8)
        legend_below(fig, axes)
    return fig


def _floor_below(values) -> float:
    """A floor line half a decade below the smallest inexact value."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > ROUND_OFF])
    return 10 ** (np.floor(np.log10(v.min()) * 2) / 2 - 0.5) if len(v) else 1e-3


def cosine_vs_depth(rows: list[dict]):
    """1 - cosine to backprop (mean, bars min-max over seeds) against depth, one panel per
    cell; backprop and dyadic (exact to round-off) are drawn at a floor line."""
    from hwbp.style import context, figure, legend_below

    panels = _panels(rows)
    floor = _floor_below([1 - r["grad_cosine"] for r in rows])
    exact_max = max([1 - r["grad_cosine"] for r in rows if r["method"] in ("bp", "dyadic")] or [0.0])
    with context():
        ncols = min(2, len(panels))
        fig, grid = figure((len(panels) + ncols - 1) // ncols, ncols, panel=(4.2, 3.0))
        axes = grid.ravel()
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        for ax, (ds, act) in zip(axes, panels):
            for i, m in enumerate(("bp", "dyadic", "pc", "pc-alm")):
                sel = _sel(rows, dataset=ds, activation=act, method=m)
                if not sel:
                    continue
                d, mean, lo, hi = _mean_range(sel, "grad_cosine", lambda x: 1 - x)
                x = d * (1 + 0.06 * (i - 1.5))  # side by side, none hidden
                if m in ("bp", "dyadic"):
                    ax.plot(x, np.full(len(x), floor), marker=MARKERS[m], ls="none", ms=7 if m == "dyadic" else 4,
                            mfc="none" if m == "dyadic" else None, color=COLORS[m], label=LABELS[m] + " (exact)")
                    continue
                ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker=MARKERS[m], capsize=3, color=COLORS[m],
                            label=LABELS[m])
            ax.axhline(floor, color="gray", lw=0.6, ls=":")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_ylim(floor / 2, 1.5)
            ax.set_xlabel("depth L (weight layers)")
            ax.set_ylabel("1 − cosine to backprop (relative)")
            ax.set_title(f"{ds}, {act}")
        exact = "= 0 at the CSV's 9 digits (exact to round-off)" if exact_max == 0 else f"≤ {exact_max:.0e} (round-off)"
        fig.suptitle("whole-network gradient at T = 2L, trained weights, 64 test samples; mean over seeds, bars "
                     f"min-max\nbackprop = dyadic: 1 − cosine {exact}, drawn at the dotted floor {floor:.0e}",
                     fontsize=8)
        legend_below(fig, axes)
    return fig


def cosine_vs_budget(rows: list[dict]):
    """1 - cosine against T / L (from L/2 to 3L), one panel per activation and method,
    one line per depth; exact points (round-off) at a floor line."""
    from hwbp.style import context, figure, legend_below

    rows = [r for r in rows if r["T"] >= r["depth"] / 2]
    panels = _panels(rows)
    methods = [m for m in ("dyadic-rest", "dyadic", "pc", "pc-alm") if _sel(rows, method=m)]
    depths = sorted({r["depth"] for r in rows})
    colors = _depth_colors(depths)
    floor = _floor_below([1 - r["grad_cosine"] for r in rows])
    widths = {d: 1 + 2.5 * (1 - i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}  # coinciding: nested
    with context():
        fig, axes = figure(len(panels), len(methods), panel=(3.0, 2.6))
        for row, (ds, act) in zip(axes, panels):
            for ax, m in zip(row, methods):
                for d in depths:
                    sel = sorted((r["T"], r["grad_cosine"]) for r in _sel(rows, dataset=ds, activation=act, method=m,
                                                                         depth=d))
                    if not sel:
                        continue
                    t, c = np.array(sel).T
                    ax.plot(t / d, np.maximum(1 - c, floor), color=colors[d], lw=widths[d], label=f"L = {int(d)}")
                ax.axhline(floor, color="gray", lw=0.6, ls=":")
                ax.axvline(2, color="gray", lw=0.8, ls=":")
                ax.set_yscale("log")
                ax.set_ylim(floor / 2, 1.5)
                ax.set_xlabel("budget T / L (steps per layer)")
                ax.set_ylabel("1 − cosine to backprop (relative)")
                ax.set_title(f"{LABELS[m]}, {ds} {act}", fontsize=8)
        fig.suptitle(f"whole-network gradient against the budget, initial weights; exact (1 − cosine < "
                     f"{ROUND_OFF:.0e}) drawn at the dotted floor {floor:.0e}; dotted vertical: T = 2L;\n"
                     "coinciding depths are nested (wider line: smaller L)", fontsize=8)
        legend_below(fig, axes[0], ncol=len(depths))
    return fig


def credit_arrival(rows: list[dict]):
    """Arrival step of credit per layer (first step with relative error <= 0.1) against the
    layer's distance from the output, one panel per activation and method, one line per
    depth; ballistic credit (one layer per step) is a line of slope 1."""
    from hwbp.style import context, figure, legend_below

    panels = _panels(rows)
    methods = [m for m in ("dyadic-rest", "dyadic", "pc", "pc-alm") if _sel(rows, method=m)]
    depths = sorted({r["depth"] for r in rows})
    colors = _depth_colors(depths)
    widths = {d: 1 + 2.5 * (1 - i / max(1, len(depths) - 1)) for i, d in enumerate(depths)}
    with context():
        fig, axes = figure(len(panels), len(methods), panel=(3.0, 2.7))
        for row, (ds, act) in zip(axes, panels):
            for ax, m in zip(row, methods):
                n_in = n_all = 0
                top = [0.0, 0.0]
                for d in depths:  # widest (shallowest) first: deeper, thinner lines on top, none hidden
                    sel = sorted((r["layer"], r["arrival"]) for r in _sel(rows, dataset=ds, activation=act, method=m,
                                                                         depth=d))
                    if not sel:
                        continue
                    layer, t = np.array(sel).T
                    n_all += len(t)
                    n_in += int(np.isfinite(t).sum())
                    if np.isfinite(t).any():
                        top = [max(top[0], float(np.nanmax(np.where(np.isfinite(t), d - layer + 1, np.nan)))),
                               max(top[1], float(np.nanmax(t)))]
                    ax.plot(d - layer + 1, t, color=colors[d], marker=".", ms=3, lw=widths[d], label=f"L = {int(d)}")
                ax.set_xlim(0, max(8.0, 1.05 * top[0]))
                ax.set_ylim(-0.05 * max(16.0, top[1]), 1.08 * max(16.0, top[1]))
                if 0 < top[0] <= 1:
                    ax.text(0.5, 0.5, "credit only at the output layer\n(step 0, at the left edge)",
                            transform=ax.transAxes, ha="center", va="center", fontsize=8)
                ax.set_xlabel("distance from output L − l + 1 (layers)")
                ax.set_ylabel("credit arrival (steps)")
                ax.set_title(f"{LABELS[m]}, {ds} {act}\n{n_in} of {n_all} layers arrive within 3L", fontsize=8)
        fig.suptitle("first step with relative error ≤ 0.1 per layer; a missing point never arrives within 3L; "
                     "\ndyadic (from forward pass): every depth on one line, step = distance − 1 (wider line: smaller L)",
                     fontsize=8)
        legend_below(fig, axes[0], ncol=len(depths))
    return fig


def layer_credit(rows: list[dict]):
    """Per-layer relative error of the weight gradient at budgets L/2 <= T <= 2L, at the
    largest depth studied, one panel per activation and method, one line per budget:
    1 means no credit yet, round-off means exact."""
    from matplotlib import colormaps

    from hwbp.style import context, figure, legend_below

    panels = _panels(rows)
    methods = [m for m in ("dyadic-rest", "dyadic", "pc", "pc-alm") if _sel(rows, method=m)]
    d = max(r["depth"] for r in rows)
    budgets = sorted({r["T"] for r in rows if r["depth"] == d and r["T"] <= 2 * d})
    cmap = colormaps["plasma"]
    colors = {T: cmap(0.85 * i / max(1, len(budgets) - 1)) for i, T in enumerate(budgets)}
    widths = {T: 1 + 3 * (1 - i / max(1, len(budgets) - 1)) for i, T in enumerate(budgets)}  # coinciding: nested
    with context():
        fig, axes = figure(len(panels), len(methods), panel=(3.0, 2.6))
        for row, (ds, act) in zip(axes, panels):
            for ax, m in zip(row, methods):
                lo = 1.0
                for T in budgets:
                    sel = sorted((r["layer"], max(r["rel_err"], 1e-16)) for r in _sel(
                        rows, dataset=ds, activation=act, method=m, depth=d, T=T))
                    if not sel:
                        continue
                    layer, c = np.array(sel).T
                    lo = min(lo, c.min())
                    ax.plot(layer, c, color=colors[T], lw=widths[T], label=f"T = {int(T)} ({T / d:g} L)")
                ax.set_yscale("log")
                ax.set_ylim((3e-17, 10) if lo < 1e-6 else (10 ** np.floor(np.log10(lo)), 2))
                ax.set_xlabel("layer l (1 = input side)")
                ax.set_ylabel("layer gradient rel. error (1)")
                ax.set_title(f"{LABELS[m]}, {ds} {act}", fontsize=8)
        fig.suptitle(f"credit by layer at L = {int(d)}, initial weights: relative error 1 = no credit, 1e-16 = exact "
                     "(round-off); y range per method;\ncoinciding budgets are nested (wider line: smaller T)",
                     fontsize=8)
        legend_below(fig, axes[0], ncol=len(budgets))
    return fig


def write_figures(directory: str | Path) -> list[Path]:
    """Draw every figure from the CSVs in ``directory`` into PNGs there."""
    import matplotlib

    matplotlib.use("Agg")

    from hwbp.io import atomic_write_bytes
    from hwbp.verify.plot import figure_png

    d = Path(directory)
    results = read_csv(d / "results.csv")
    figs = {
        "accuracy_vs_depth.png": accuracy_vs_depth(results),
        "cosine_vs_depth.png": cosine_vs_depth(results),
        "cosine_vs_budget.png": cosine_vs_budget(read_csv(d / "budget.csv")),
        "credit_arrival.png": credit_arrival(read_csv(d / "arrival.csv")),
        "layer_credit.png": layer_credit(read_csv(d / "layers.csv")),
    }
    written = []
    for name, fig in figs.items():
        atomic_write_bytes(d / name, figure_png(fig))
        written.append(d / name)
    return written


if __name__ == "__main__":  # redraw from the committed CSVs: python figures.py [DIR]
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
    for p in write_figures(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent):
        print(p)
