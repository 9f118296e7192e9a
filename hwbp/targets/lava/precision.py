"""Gradient error of the fixed-point Lava models against exact backprop, swept over
weight and state bits (the figures of ``sims/lava_precision.py``).

The sweep runs :func:`hwbp.targets.lava.fixed.numpy_model`, which equals the Lava
fixed-point processes bit for bit (tests/test_lava_fixed.py), so a sweep of many
settings costs seconds; :func:`sweep` can also run the Lava processes themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


from hwbp.backend import get_backend
from hwbp.errors import ConfigError
from hwbp.initial import initial_state
from hwbp.ir.graph import Graph
from hwbp.lower import lower
from hwbp.oracle import exact_gradients
from hwbp.state import State
from hwbp.types import Batch
from hwbp.verify import compare, read_gradients

__all__ = ["PrecisionPoint", "sweep", "to_csv", "from_csv", "to_markdown", "figure"]


@dataclass(frozen=True)
class PrecisionPoint:
    """One setting and its gradient errors (worst parameter tensor)."""

    weight_bits: int
    state_bits: int
    min_cosine: float
    max_rel_err: float


def sweep(graph: Graph, batch: Batch, weight_bits: Iterable[int], state_bits: Sequence[int], *,
          payload_bits: int | None = None, lava: bool = False) -> list[PrecisionPoint]:
    """Cosine and rel_err of the parameter gradients after ``2L`` unit steps from zeros,
    for every pair of ``weight_bits`` x ``state_bits`` (payloads: ``payload_bits``, default
    the state width)."""
    from hwbp.targets.lava.fixed import numpy_model, run_fixed

    backend = get_backend("lava")
    system = lower(graph)
    exact = exact_gradients(graph, batch)
    start = initial_state(system, batch, "zeros")
    out = []
    for sb in state_bits:
        for wb in weight_bits:
            o = backend.options({"precision": "fixed", "weight_bits": wb, "state_bits": sb,
                                 "payload_bits": sb if payload_bits is None else payload_bits})
            fmt = backend.compile(system, o).data
            steps = o.unit_steps(system.depth)
            if lava:
                state = run_fixed(fmt, system, batch, start, steps, 1.0, o.timeout_s)
            else:
                m, t, g = numpy_model(fmt, system, batch, start, steps)
                f = fmt.to_float
                state = State({k: f(v) for k, v in m.items()}, {k: f(v) for k, v in t.items()}, steps, steps,
                              {k: f(v) for k, v in g.items()})
            cmp = compare(read_gradients(system, state, batch), exact)
            out.append(PrecisionPoint(wb, sb, float(min(x.cosine for x in cmp.parameters.values())),
                                      float(max(x.rel_err for x in cmp.parameters.values()))))
    return out


def to_csv(points: Sequence[PrecisionPoint]) -> str:
    """CSV text: ``weight_bits,state_bits,min_cosine,max_rel_err``."""
    rows = ["weight_bits,state_bits,min_cosine,max_rel_err"]
    rows += [f"{p.weight_bits},{p.state_bits},{p.min_cosine:.9f},{p.max_rel_err:.6e}" for p in points]
    return "\n".join(rows) + "\n"


def to_markdown(points: Sequence[PrecisionPoint], title: str) -> str:
    """A markdown table: one row per weight width, cosine and rel_err per state width."""
    sbs = sorted({p.state_bits for p in points})
    wbs = sorted({p.weight_bits for p in points})
    at = {(p.weight_bits, p.state_bits): p for p in points}
    head = "| weight bits | " + " | ".join(f"cosine @{s}b state | rel_err @{s}b state" for s in sbs) + " |"
    lines = [f"# {title}", "", head, "|" + "---|" * (1 + 2 * len(sbs))]
    for w in wbs:
        cells = " | ".join(f"{at[w, s].min_cosine:.6f} | {at[w, s].max_rel_err:.2e}" for s in sbs)
        lines.append(f"| {w} | {cells} |")
    return "\n".join(lines) + "\n"


def from_csv(text: str) -> list[PrecisionPoint]:
    """The points of a CSV written by :func:`to_csv`."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != "weight_bits,state_bits,min_cosine,max_rel_err":
        raise ConfigError("not a precision CSV: the header must be weight_bits,state_bits,min_cosine,max_rel_err")
    out = []
    for n, ln in enumerate(lines[1:], start=2):
        try:
            wb, sb, cos, rel = ln.split(",")
            out.append(PrecisionPoint(int(wb), int(sb), float(cos), float(rel)))
        except ValueError as e:
            raise ConfigError(f"precision CSV line {n}: {ln!r}: {e}") from None
    return out


#: 1 - cosine below this is drawn at it (float64 round-off)
FLOOR = 1e-16


def figure(points: Sequence[PrecisionPoint], title: str):
    """Matplotlib figure (shared style, :mod:`hwbp.style`): ``1 - cosine`` and rel_err of the
    worst parameter tensor against weight bits, one line per state width; the lines are
    set side by side (offset along x) with their own markers, so that coinciding widths
    stay visible."""
    from hwbp.style import context, figure as styled, legend_below

    widths = sorted({p.state_bits for p in points})
    markers = "osD^v<>"
    with context():
        fig, axes = styled(1, 2, panel=(4.4, 3.3))
        ax1, ax2 = axes[0]
        for i, sb in enumerate(widths):
            pts = sorted((p for p in points if p.state_bits == sb), key=lambda p: p.weight_bits)
            w = [p.weight_bits + 0.12 * (i - (len(widths) - 1) / 2) for p in pts]
            style = dict(marker=markers[i % len(markers)], ms=5, mfc="none" if i % 2 else None, lw=1.2,
                         label=f"{sb}-bit state")
            ax1.semilogy(w, [max(1 - p.min_cosine, FLOOR) for p in pts], **style)
            ax2.semilogy(w, [p.max_rel_err for p in pts], **style)
        ax1.axhline(1e-3, color="grey", ls=":", lw=1)
        ax1.text(0.98, 1.2e-3, "1 − cosine = 1e-3", transform=ax1.get_yaxis_transform(), ha="right", va="bottom",
                 fontsize=7, color="grey")
        ax1.set(xlabel="weight resolution (bits)", ylabel="1 − min cosine to backprop (relative)",
                title="gradient direction (worst tensor)")
        ax2.set(xlabel="weight resolution (bits)", ylabel="max rel_err to backprop (relative)",
                title="gradient magnitude (worst tensor)")
        fig.suptitle(title + "\n(state widths set side by side: they coincide up to 9 weight bits)", fontsize=9)
        legend_below(fig, [ax1], ncol=len(widths))
    return fig
