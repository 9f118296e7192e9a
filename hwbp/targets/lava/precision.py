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
from hwbp.initial import initial_state
from hwbp.ir.graph import Graph
from hwbp.lower import lower
from hwbp.oracle import exact_gradients
from hwbp.state import State
from hwbp.types import Batch
from hwbp.verify import compare, read_gradients

__all__ = ["PrecisionPoint", "sweep", "to_csv", "to_markdown", "figure"]


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


def figure(points: Sequence[PrecisionPoint], title: str):
    """Matplotlib figure: ``1 - cosine`` and rel_err against weight bits, one line per state width."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for sb in sorted({p.state_bits for p in points}):
        pts = sorted((p for p in points if p.state_bits == sb), key=lambda p: p.weight_bits)
        w = [p.weight_bits for p in pts]
        axes[0].semilogy(w, [max(1 - p.min_cosine, 1e-16) for p in pts], "o-", label=f"{sb}-bit state")
        axes[1].semilogy(w, [p.max_rel_err for p in pts], "o-", label=f"{sb}-bit state")
    axes[0].axhline(1e-3, color="grey", ls=":", lw=1)
    axes[0].set(xlabel="weight bits", ylabel="1 - min cosine", title="gradient direction")
    axes[1].set(xlabel="weight bits", ylabel="max rel_err", title="gradient magnitude")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
