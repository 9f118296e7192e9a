"""Shared helpers of the co-design studies (tables as CSV and Markdown, figures)."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for _p in (ROOT, HERE.parent):  # hwbp, and sims/outdir.py
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from outdir import add_out_arg, output_dir  # noqa: E402

#: Where the tables and figures go (set by :func:`parse_args`; default beside the scripts).
OUT = HERE


def parse_args(study: str, doc: str | None, argv: list[str] | None = None) -> Path:
    """Parse the study's command line (``-o DIR``) and set :data:`OUT`."""
    global OUT
    ap = argparse.ArgumentParser(description=(doc or study).splitlines()[0])
    add_out_arg(ap)
    args = ap.parse_args(argv)
    OUT = output_dir(ap, args, HERE, study)
    return OUT


def write_table(name: str, rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> Path:
    """``OUT/name.csv`` (floats to 6 significant digits)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in cols])
    path = OUT / f"{name}.csv"
    path.write_text(buf.getvalue())
    return path


def markdown(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    """A Markdown table of ``rows``."""
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(out)


def save(fig, name: str) -> Path:
    """``OUT/name.png`` at 110 dpi."""
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110)
    return path
