"""Figure of a SPICE ``.tran`` verification: each population's tension settling
toward the exact levels ``beta * dl/dx`` (dashed), plus the gradient error curve."""

from __future__ import annotations

import numpy as np

__all__ = ["tension_figure"]


def tension_figure(v, batch, *, neurons: int = 6, sample: int = 0) -> "matplotlib.figure.Figure":  # noqa: F821
    """One panel per population (up to ``neurons`` traces of sample ``sample``) and a
    panel of the largest ``rel_err`` against time (units of tau)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from hwbp.style import context
    from hwbp.verify.plot import error_panel

    with context():
        return _tension_figure(plt, error_panel, v, batch, neurons, sample)


def _tension_figure(plt, error_panel, v, batch, neurons: int, sample: int):
    tr = v.result.trace
    pops = list(tr.tension)
    fig, axes = plt.subplots(1, len(pops) + 1, figsize=(3.4 * (len(pops) + 1), 3.0), squeeze=False)
    beta = v.system.beta
    for ax, name in zip(axes[0], pops):
        exact = beta * np.asarray(v.exact.activations[name])[sample]
        for j in range(min(neurons, exact.shape[0])):
            line, = ax.plot(tr.t, tr.tension[name][:, sample, j], lw=1)
            ax.axhline(exact[j], color=line.get_color(), ls="--", lw=0.8)
        ax.set_title(f"tension of {name}")
        ax.set_xlabel("time (tau)")
        ax.set_ylabel("x+ - x- (V)")
    error_panel(axes[0, -1], v, batch, xlabel="time (tau)")
    fig.suptitle(f"{v.report['model']}: ngspice .tran, dashed = exact beta*dl/dx", fontsize=9)
    fig.tight_layout()
    return fig
