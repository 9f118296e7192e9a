"""A sweep's results: the CSV (one row per instance), the figures and the Markdown summary."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwbp.errors import HwbpError
from hwbp.io import atomic_write_bytes, atomic_write_text
from hwbp.sweep.spec import SweepSpec

__all__ = ["csv_text", "write_results", "summary_markdown", "group_stats", "sweep_figure"]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # round-trips exactly: same numbers -> same bytes
    return str(v)


def csv_text(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    """The CSV of ``rows`` (sorted by id) with columns ``cols``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in sorted(rows, key=lambda r: r["id"]):
        w.writerow([_cell(row.get(c)) for c in cols])
    return buf.getvalue()


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and v is not None else math.nan


def group_stats(rows: Sequence[dict[str, Any]], spec: SweepSpec) -> list[dict[str, Any]]:
    """Per grid point and backend: instances, failures, mean and std of the totals."""
    out = []
    keys = [k for k, _ in spec.grid]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["point"], row["backend"]), []).append(row)
    for (point, backend), rs in sorted(groups.items()):
        ok = [r for r in rs if not r.get("error")]
        st: dict[str, Any] = {"point": point, "backend": backend, **{k: rs[0].get(k) for k in keys},
                              "instances": len(rs), "failed": len(rs) - len(ok)}
        for m in ("cos_nominal", "cos_own", "rel_err_own", "acc_circuit", "acc_nominal"):
            vals = np.array([_num(r.get(m)) for r in ok])
            st[m] = float(np.nanmean(vals)) if vals.size and np.isfinite(vals).any() else math.nan
            st[m + "_std"] = float(np.nanstd(vals)) if vals.size and np.isfinite(vals).any() else math.nan
        out.append(st)
    return out


def summary_markdown(rows: Sequence[dict[str, Any]], spec: SweepSpec) -> str:
    """A Markdown summary: the grid, one table line per point and backend, the failures."""
    keys = [k for k, _ in spec.grid]
    stats = group_stats(rows, spec)
    lines = [f"# Sweep summary: {Path(spec.source).name}", "",
             f"{len(rows)} rows: {len(stats)} (grid point, backend) groups x {spec.instances} instance(s); "
             f"loss {spec.loss}, beta {spec.beta:g}; instance k has seed {spec.seed} + k.", "",
             "cos(a): gradient cosine against backprop of the nominal network; cos(b): against backprop of the "
             "instance's own forward network; mean ± std over instances.", "",
             "| " + " | ".join([*keys, "backend", "n", "failed", "cos(a)", "cos(b)", "rel_err(b)", "acc circuit",
                                "acc nominal"]) + " |",
             "|" + "---|" * (len(keys) + 8)]
    for s in stats:
        cells = [_cell(s[k]) for k in keys] + [s["backend"], str(s["instances"]), str(s["failed"])]
        for m in ("cos_nominal", "cos_own"):
            cells.append(f"{s[m]:.6f} ± {s[m + '_std']:.1e}")
        cells.append(f"{s['rel_err_own']:.2e} ± {s['rel_err_own_std']:.1e}")
        cells += [f"{s['acc_circuit']:.4f}", f"{s['acc_nominal']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r.get("error")]
    if failed:
        lines += ["", f"## Failed rows ({len(failed)})", ""]
        lines += [f"- row {r['id']} ({r['backend']}, instance {r['instance']}): {r['error']}" for r in failed[:50]]
    return "\n".join(lines) + "\n"


#: Fewest samples an accuracy panel is drawn on (below, one sample moves it by > 1 %).
MIN_ACCURACY_SAMPLES = 100


def _accuracy_informative(rows: Sequence[dict[str, Any]], samples: int | None, n_classes: int | None,
                          loss: str) -> bool:
    """Whether the accuracies of ``rows`` say something: a classifier (ce), at least
    :data:`MIN_ACCURACY_SAMPLES` samples, and the nominal network clearly above chance
    (by 3 binomial standard deviations)."""
    if loss != "ce" or not samples or samples < MIN_ACCURACY_SAMPLES or not n_classes:
        return False
    acc = [_num(r.get("acc_nominal")) for r in rows if not r.get("error")]
    acc = [a for a in acc if math.isfinite(a)]
    chance = 1.0 / n_classes
    return bool(acc) and float(np.mean(acc)) > chance + 3 * math.sqrt(chance * (1 - chance) / samples)


def sweep_figure(rows: Sequence[dict[str, Any]], spec: SweepSpec, *, samples: int | None = None,
                 n_classes: int | None = None):
    """1 - cosine of the gradients against (a) the nominal network's and (b) the
    instance's own forward network's backprop, on log axes, against the first grid
    parameter: one series per value of the other parameters and backend (the median over
    instances, bars from the smallest to the largest).  An accuracy panel is added only
    when it is informative (:func:`_accuracy_informative`: ``samples`` in the batch,
    ``n_classes`` outputs).  One legend below the panels."""
    from hwbp.style import axis_label, context, figure, legend_below

    keys = [k for k, _ in spec.grid]
    x_key = keys[0] if keys else None
    groups: dict[tuple, dict[Any, list[dict[str, Any]]]] = {}
    for r in rows:
        if r.get("error"):
            continue
        label = tuple((k, r.get(k)) for k in keys[1:]) + (("backend", r["backend"]),)
        x = r.get(x_key) if x_key else r["point"]
        groups.setdefault(label, {}).setdefault(x, []).append(r)
    show_acc = _accuracy_informative(rows, samples, n_classes, spec.loss)
    metrics = [("cos_nominal", "1 - cosine vs nominal backprop (a)"), ("cos_own", "1 - cosine vs own network (b)")]
    if show_acc:
        metrics.append(("acc_circuit", "accuracy of the instance"))
    with context():
        fig, axes = figure(1, len(metrics), panel=(4.2, 3.4))
        axes = list(axes[0])
        xs_all: list[float] = []
        for i, (label, by_x) in enumerate(list(groups.items())[:10]):
            name = ", ".join(f"{k}={v}" for k, v in label)
            xs = sorted(by_x, key=_num)
            xv = np.array([_num(x) for x in xs])
            xs_all += list(xv)
            for ax, (m, _) in zip(axes, metrics):
                vals = [np.array([_num(r.get(m)) for r in by_x[x]]) for x in xs]
                if m.startswith("cos"):
                    vals = [np.maximum(1.0 - v, 1e-17) for v in vals]  # 1 - cosine, floored at round-off
                mid = np.array([np.nanmedian(v) for v in vals])
                lo = mid - np.array([np.nanmin(v) for v in vals])
                hi = np.array([np.nanmax(v) for v in vals]) - mid
                # markers differ per series so that coinciding series stay visible
                ax.errorbar(xv, mid, yerr=[lo, hi], marker="osD^v<>ph*"[i % 10], capsize=3, label=name,
                            alpha=0.85, markerfacecolor="none" if i % 2 else None)
        positive = [x for x in xs_all if x > 0 and math.isfinite(x)]
        for ax, (m, title) in zip(axes, metrics):
            ax.set_title(title)
            ax.set_xlabel(axis_label(x_key) if x_key else "grid point")
            if m.startswith("cos"):
                ax.set_yscale("log")
                ax.set_ylabel("1 - cosine (1)")
            else:
                ax.set_ylabel(f"accuracy on {samples} samples (1)")
            if positive and len(positive) == len(xs_all) and max(positive) / min(positive) >= 30:
                ax.set_xscale("log")
        legend_below(fig, axes)
    return fig


def write_results(rows: Sequence[dict[str, Any]], spec: SweepSpec, out: str | Path, cols: Sequence[str]
                  ) -> list[Path]:
    """Write ``results.csv``, ``summary.md`` and ``summary.png`` into ``out`` (atomically)."""
    from hwbp.verify.plot import figure_png

    from hwbp.sweep.run import _problem

    out = Path(out)
    paths = [out / "results.csv", out / "summary.md", out / "summary.png"]
    try:
        graph, batch = _problem(spec)
        samples, n_classes = batch.size, graph.size(graph.output)
    except (HwbpError, OSError):  # the model cannot be loaded (every row failed): no accuracy panel
        samples = n_classes = None
    png = figure_png(sweep_figure(rows, spec, samples=samples, n_classes=n_classes))
    atomic_write_text(paths[0], csv_text(rows, cols))
    atomic_write_text(paths[1], summary_markdown(rows, spec))
    atomic_write_bytes(paths[2], png)
    return paths
