"""One look for every figure hwbp draws (the CLI's, the sweep summary, the studies
under ``sims/`` and the notebooks).

* :data:`STYLE`: matplotlib settings: no offset tick labels (``+1e-4`` above an axis),
  light grids, readable font sizes, 110 dpi;
* :func:`apply`: put them into matplotlib's global settings (scripts, notebooks);
* :func:`context`: use them for the figures drawn inside a ``with`` block only (library
  code, which must not change a caller's settings);
* :func:`figure`: a constrained-layout figure of ``nrows x ncols`` panels;
* :func:`legend_below`: one legend for all panels, below them, so that it never covers
  a curve and fits however many series there are;
* :func:`axis_label`: ``name (unit)`` from a parameter name that carries its unit
  (``rms_V``, ``g_min_S``, ``weights.bits``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

__all__ = ["STYLE", "apply", "context", "figure", "legend_below", "axis_label", "UNITS"]

#: matplotlib rcParams of every hwbp figure.
STYLE: dict[str, Any] = {
    "axes.formatter.useoffset": False,  # no "+1e-4" offset above an axis: the ticks say what they are
    "axes.formatter.use_mathtext": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "lines.markersize": 4,
    "figure.dpi": 110,
    "savefig.dpi": 110,
}

#: Unit of a parameter name's suffix (hwbp names carry their units).
UNITS: dict[str, str] = {"_V": "V", "_S": "S", "_F": "F", "_ohm": "ohm", "_s": "s", "_A": "A", "_W": "W", "_J": "J",
                         "bits": "bits", "_tau": "tau"}


def apply() -> None:
    """Make :data:`STYLE` matplotlib's global settings."""
    import matplotlib

    matplotlib.rcParams.update(STYLE)


@contextlib.contextmanager
def context() -> Iterator[None]:
    """Draw with :data:`STYLE` inside the block; the caller's settings are restored after."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def figure(nrows: int = 1, ncols: int = 1, *, panel: tuple[float, float] = (4.0, 3.2)) -> tuple[Any, Any]:
    """A constrained-layout :class:`matplotlib.figure.Figure` (no pyplot state) of
    ``nrows x ncols`` panels of ``panel`` inches each, drawn with :data:`STYLE`; returns
    ``(fig, axes)`` with ``axes`` a 2-D array.  Call it inside :func:`context` (labels
    and legends read the settings when they are drawn)."""
    from matplotlib.figure import Figure

    with context():
        fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def legend_below(fig: Any, axes: Sequence[Any], *, ncol: int | None = None) -> None:
    """One legend of the labelled series of ``axes`` (each label once), below the
    panels, in as many columns as fit."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        n = ncol or max(1, min(len(seen), 4))
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=n)


def axis_label(name: str, unit: str | None = None) -> str:
    """``name (unit)``: ``unit`` when given, else the unit its suffix names, else
    ``(relative)`` for a dimensionless quantity."""
    if unit is None:
        unit = next((u for suffix, u in UNITS.items() if name.endswith(suffix)), "relative")
    return f"{name} ({unit})"
