"""Figure of a SPICE ``.tran`` verification: each population's tension settling
toward the exact levels ``beta * dl/dx`` (dashed), plus the gradient error curve."""

from __future__ import annotations

import numpy as np

__all__ = ["tension_figure"]


def tension_figure(v, batch, *, neurons: int = 6, sample: int = 0) -> "matplotlib.figure.Figure":  # noqa: F821
    """One panel per population (up to ``neurons`` traces of sample ``sample``) and a
    panel of the max parameter ``rel_err`` against time (units of tau)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from hwbp.verify.run import error_curve

    tr = v.result.trace
    pops = list(tr.tension)
    fig, axes = plt.subplots(1, len(pops) + 1, figsize=(3.4 * (len(pops) + 1), 3.0), squeeze=False)
    beta = v.system.beta
    for ax, name in zip(axes[0], pops):
        exact = beta * np.asarray(v.exact.activations[name])[sample]
        for j in range(min(neurons, exact.shape[0])):
            line, = ax.plot(tr.t, tr.tension[name][:, sample, j], lw=1)
            ax.axhline(exact[j], color=line.get_color(), ls="--", lw=0.8)
        ax.set_title(f"tension of {name}", fontsize=8)
        ax.set_xlabel("t / tau", fontsize=8)
        ax.set_ylabel("x+ - x- (V)", fontsize=8)
        ax.tick_params(labelsize=7)
    ax = axes[0, -1]
    t, err = error_curve(v.system, tr, batch, v.exact)
    ax.semilogy(t, np.maximum(err, 1e-17))
    ax.axvline(2 * v.system.depth, color="C3", ls="--", lw=1, label="2L")
    ax.set_xlabel("t / tau", fontsize=8)
    ax.set_ylabel("max rel_err of dL/dW", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("gradient error", fontsize=8)
    fig.suptitle(f"{v.report['model']}: ngspice .tran, dashed = exact beta*dl/dx", fontsize=9)
    fig.tight_layout()
    return fig
