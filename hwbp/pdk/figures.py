"""Figures of ``hwbp characterize``: ``transfer.png`` (f per cell and its deviation from the
nominal tt, 27 C curve, so corners and temperatures that lie within a line width of each
other stay distinguishable) and ``gate.png`` (the gate's error against the derivative of
the measured f, and against the pair's finite difference)."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from hwbp.pdk.derive import Measured

__all__ = ["figures"]

_COLORS = {"tt": "tab:blue", "ss": "tab:red", "ff": "tab:green", "sf": "tab:purple", "fs": "tab:orange"}
_STYLES = ["-", "--", ":", "-."]


def _style(row: dict[str, Any], temps: list[float]) -> dict[str, Any]:
    if row["mc_seed"] != "":
        return dict(lw=0.6, alpha=0.6, color="0.55")
    t = float(row["temp_C"])
    order = sorted(temps, key=lambda x: (x != 27.0, x))  # 27 C solid, then by temperature
    return dict(lw=1.3, color=_COLORS.get(row["corner"], "k"), ls=_STYLES[order.index(t) % len(_STYLES)])


def _reference(rows: Sequence[dict[str, Any]], cell: str) -> int:
    nom = [i for i, r in enumerate(rows) if r["cell"] == cell and r["mc_seed"] == ""]
    return next((i for i in nom if rows[i]["corner"] == "tt" and float(rows[i]["temp_C"]) == 27.0), nom[0])


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _panels(rows, curves, cells, temps, top, bottom, ylabels, title, ideal=False) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(cells), figsize=(max(8.0, 5.6 * len(cells)), 7.6), squeeze=False, sharex="col")
    for j, cell in enumerate(cells):
        ref = curves[_reference(rows, cell)]
        mc_labelled = False
        for r, m in zip(rows, curves):
            if r["cell"] != cell:
                continue
            mc = r["mc_seed"] != ""
            label = None
            if mc and not mc_labelled:
                label, mc_labelled = "Monte Carlo draws (mismatch models <corner>_mm)", True
            elif not mc:
                label = f"{r['corner']}, {float(r['temp_C']):g} C"
            st = _style(r, temps)
            z = 1 if mc else 2
            axes[0, j].plot(m.a, top(m, cell), label=label, zorder=z, **st)
            axes[1, j].plot(m.a, bottom(m, ref), zorder=z, **st)
        if ideal:
            from hwbp.pdk.cells import get_cell

            axes[0, j].plot(ref.a, get_cell(cell).ideal(ref.a), "k--", lw=1.0, label="ideal", zorder=3)
        for i in (0, 1):
            ax = axes[i, j]
            ax.set_ylabel(ylabels[i])
            ax.ticklabel_format(useOffset=False)
            ax.grid(alpha=0.3)
        axes[1, j].set_xlabel("pre-activation a (units of vu)")
        axes[0, j].set_title(f"{cell} (SKY130): {title}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    # corners and temperatures below the figure, a column per corner (entries come corner by
    # corner); the Monte Carlo draws and the ideal curve in the top panel
    apart = [i for i, lb in enumerate(labels) if lb == "ideal" or lb.startswith("Monte Carlo")]
    if apart:
        axes[0, 0].legend([handles[i] for i in apart], [labels[i] for i in apart], fontsize=7, loc="upper left")
    keep = [i for i in range(len(labels)) if i not in apart]
    ncol = max(1, len({labels[i].split(",")[0] for i in keep}))
    fig.legend([handles[i] for i in keep], [labels[i] for i in keep], loc="lower center", ncol=ncol, fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.03 + 0.022 * ((len(keep) + ncol - 1) // ncol), 1, 1))
    return _png(fig)


def figures(rows: Sequence[dict[str, Any]], curves: Sequence[Measured]) -> dict[str, bytes]:
    """``transfer.png``: f(a) per cell (the ideal dashed black) above, ``f - f_tt,27C``
    below; ``gate.png``: ``gate - f'_measured(a) T`` at T = 0.5 above, ``gate - [f(a+T/2) -
    f(a-T/2)]`` below.  Nominal corners in colour (temperatures by line style), Monte Carlo
    draws grey (one legend entry)."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    temps = sorted({float(r["temp_C"]) for r in rows})

    def k_of(m: Measured) -> int:
        return int(np.argmin(np.abs(m.T - 0.5)))

    def transfer(m: Measured, cell: str) -> np.ndarray:
        return m.f

    def gate_vs_derivative(m: Measured, cell: str) -> np.ndarray:
        k = k_of(m)
        return m.gate[k] - np.gradient(m.f, m.a) * m.T[k]

    out = {"transfer.png": _panels(rows, curves, cells, temps, transfer, lambda m, ref: m.f - ref.f,
                                   ("f (units of the unit current)", "f - f(tt, 27 C) (units)"), "transfer curve",
                                   ideal=True)}
    fig_bytes = _panels(rows, curves, cells, temps, gate_vs_derivative,
                        lambda m, ref: m.gate[k_of(m)] - (np.interp(m.a + m.T[k_of(m)] / 2, m.a, m.f)
                                                          - np.interp(m.a - m.T[k_of(m)] / 2, m.a, m.f)),
                        ("gate - f'_measured(a) T at T = 0.5 (units)", "gate - [f(a+T/2) - f(a-T/2)] (units)"),
                        "gate at T = 0.5")
    out["gate.png"] = fig_bytes
    return out
