"""Figures of a verification: physical vs exact gradients per parameter tensor, and
the gradient error against time (when a trace was recorded)."""

from __future__ import annotations

import numpy as np

from hwbp.verify.run import Verification, error_curve

__all__ = ["verification_figure", "error_panel", "figure_png"]


def error_panel(ax: "matplotlib.axes.Axes", v: Verification, batch, *, xlabel: str) -> None:  # noqa: F821
    """Draw the largest ``rel_err`` over all tensors against the traced time on
    ``ax`` (log scale), with the 2L mark."""
    t, err = error_curve(v.system, v.result.trace, batch, v.exact)
    ax.semilogy(t, np.maximum(err, 1e-17), marker="." if len(t) < 60 else None)
    ax.axvline(2 * v.system.depth, color="C3", ls="--", lw=1, label="2L")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("max rel_err, all tensors (1)")
    ax.legend(loc="lower left")
    ax.set_title("gradient error vs time")


def verification_figure(v: Verification, batch) -> "matplotlib.figure.Figure":  # noqa: F821
    """A matplotlib figure: one scatter panel per weight tensor (physical against
    exact, with the identity line), plus the error curve if the result has a trace."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from hwbp.style import context

    with context():
        return _verification_figure(v, batch)


def _verification_figure(v: Verification, batch) -> "matplotlib.figure.Figure":  # noqa: F821
    import matplotlib.pyplot as plt

    names = [k for k in v.exact.parameters if k.endswith(".weight")] or list(v.exact.parameters)
    has_trace = v.result.trace is not None and len(v.result.trace) > 1
    per_row = max(1, min(4, len(names)))
    ncols = per_row + (1 if has_trace else 0)
    nrows = max(1, int(np.ceil(len(names) / per_row)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for i, name in enumerate(names):
        ax = axes[i // per_row, i % per_row]
        ax.set_visible(True)
        exact = v.exact.parameters[name].ravel()
        phys = v.physical.parameters[name].ravel()
        lim = float(np.max(np.abs(exact))) or 1.0
        ax.plot([-lim, lim], [-lim, lim], color="0.7", lw=1)
        ax.scatter(exact, phys, s=4, alpha=0.6)
        m = v.comparison.parameters[name]
        ax.set_title(f"{name}\nrel_err={m.rel_err:.1e}")
        ax.set_xlabel("exact dL/dW (loss per weight unit)")
        ax.set_ylabel(f"{v.report['backend']} dL/dW (loss per weight unit)")
    if not names and not has_trace:
        ax = axes[0, 0]
        ax.set_visible(True)
        ax.axis("off")
        ax.text(0.5, 0.5, "model has no parameters", ha="center", va="center")
    if has_trace:
        ax = axes[0, -1]
        ax.set_visible(True)
        unit_steps = v.result.settle.get("mode") == "unit-step"
        error_panel(ax, v, batch, xlabel="steps (1)" if unit_steps else "time (tau)")
    fig.suptitle(f"{v.report['model']}: {v.report['backend']} vs exact backprop", fontsize=10)
    fig.tight_layout()
    return fig


def figure_png(fig: "matplotlib.figure.Figure") -> bytes:  # noqa: F821
    """``fig`` as PNG bytes (110 dpi); the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
