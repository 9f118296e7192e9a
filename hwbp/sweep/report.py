"""A sweep's results: the CSV (one row per instance), the figures and the Markdown summary."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

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


def sweep_figure(rows: Sequence[dict[str, Any]], spec: SweepSpec):
    """Cosine (a) and (b) and accuracy against the first grid parameter; one line per
    value of the other parameters and backend (mean ± std over instances)."""
    from matplotlib.figure import Figure

    stats = group_stats(rows, spec)
    keys = [k for k, _ in spec.grid]
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    x_key = keys[0] if keys else None
    lines: dict[tuple, list[dict]] = {}
    for s in stats:
        label = tuple((k, s[k]) for k in keys[1:]) + (("backend", s["backend"]),)
        lines.setdefault(label, []).append(s)
    for label, ss in list(lines.items())[:10]:
        xs = np.arange(len(ss)) if x_key is None else np.array([_num(s[x_key]) for s in ss])
        name = ", ".join(f"{k}={v}" for k, v in label)
        for ax, m in zip(axes, ("cos_nominal", "cos_own", "acc_circuit")):
            ys = np.array([s[m] for s in ss])
            es = np.array([s[m + "_std"] for s in ss])
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
    titles = ("gradient cosine vs nominal backprop (a)", "gradient cosine vs own forward network (b)",
              "accuracy of the instance")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(x_key or "grid point")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig


def write_results(rows: Sequence[dict[str, Any]], spec: SweepSpec, out: str | Path, cols: Sequence[str]
                  ) -> list[Path]:
    """Write ``results.csv``, ``summary.md`` and ``summary.png`` into ``out`` (atomically)."""
    from hwbp.verify.plot import figure_png

    out = Path(out)
    paths = [out / "results.csv", out / "summary.md", out / "summary.png"]
    png = figure_png(sweep_figure(rows, spec))
    atomic_write_text(paths[0], csv_text(rows, cols))
    atomic_write_text(paths[1], summary_markdown(rows, spec))
    atomic_write_bytes(paths[2], png)
    return paths
