"""Figures of the EP comparison: ``snr_vs_beta.png`` (gradient SNR against β, one panel per
node capacitance, no mismatch, plus one panel with 1 % mismatch at 100 fF) and
``bias_vs_beta.png`` (noise-free relative error against β: EP's finite-β bias and the
mismatch bias)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_figures"]

COLORS = {"dyadic": "tab:blue", "ep-one-sided": "tab:red", "ep-symmetric": "tab:orange"}
LABELS = {"dyadic": "dyadic pair (1 phase)", "ep-one-sided": "EP, one-sided (2 phases)",
          "ep-symmetric": "EP, symmetric (3 phases)"}
MARKERS = {"dyadic": "o", "ep-one-sided": "s", "ep-symmetric": "^"}
FLOOR = 1e-16


def snr_vs_beta(rows: list[dict]):
    """SNR (dB) against β per capacitance (and with mismatch)."""
    import matplotlib.pyplot as plt

    panels = [(c, 0.0) for c in sorted({r["C_F"] for r in rows if r["mismatch"] == 0})]
    panels += [(c, m) for c, m in sorted({(r["C_F"], r["mismatch"]) for r in rows if r["mismatch"] > 0})]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False, sharey=True)
    for ax, (c, mm) in zip(axes[0], panels):
        for m in COLORS:
            sel = sorted((r["beta"], r["snr_db"]) for r in rows if r["method"] == m and r["C_F"] == c
                         and r["mismatch"] == mm)
            if sel:
                b, s = np.array(sel).T
                ax.semilogx(b, s, marker=MARKERS[m], color=COLORS[m], label=LABELS[m],
                            ls="--" if m == "ep-symmetric" else "-")
        ax.set_xlabel("β (tension per unit gradient, units of 0.1 V)")
        ax.set_title(f"C = {c * 1e15:g} fF, mismatch {100 * mm:g} %", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("gradient SNR (dB)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("kT/C noise at 300 K on every node, rails ±1 V, one read per phase", fontsize=9)
    fig.tight_layout()
    return fig


def bias_vs_beta(rows: list[dict]):
    """Noise-free relative error against β (no noise; without and with mismatch)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, mm in zip(axes, sorted({r["mismatch"] for r in rows})[:2]):
        c0 = sorted({r["C_F"] for r in rows if r["mismatch"] == mm})[0]
        for m in COLORS:
            sel = sorted((r["beta"], max(r["bias_rel_err"], FLOOR)) for r in rows if r["method"] == m
                         and r["mismatch"] == mm and r["C_F"] == c0)
            if sel:
                b, e = np.array(sel).T
                ax.loglog(b, e, marker=MARKERS[m], color=COLORS[m], label=LABELS[m],
                          ls="--" if m == "ep-symmetric" else "-")
        ax.set_xlabel("β (tension per unit gradient, units of 0.1 V)")
        ax.set_title(f"no noise, mismatch {100 * mm:g} %", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("relative error of the gradient (bias)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_figures(directory: str | Path, rows: list[dict]) -> list[Path]:
    """Both PNGs into ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwbp.io import atomic_write_bytes
    from hwbp.verify.plot import figure_png

    d = Path(directory)
    out = []
    for name, fig in (("snr_vs_beta.png", snr_vs_beta(rows)), ("bias_vs_beta.png", bias_vs_beta(rows))):
        atomic_write_bytes(d / name, figure_png(fig))
        plt.close(fig)
        out.append(d / name)
    return out
