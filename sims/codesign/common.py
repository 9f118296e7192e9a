"""Shared helpers of the co-design studies (tables as CSV and Markdown, figures)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_table(name: str, rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> Path:
    """``HERE/name.csv`` (floats to 6 significant digits)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in cols])
    path = HERE / f"{name}.csv"
    path.write_text(buf.getvalue())
    return path


def markdown(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    """A Markdown table of ``rows``."""
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(out)


def save(fig, name: str) -> Path:
    """``HERE/name.png`` at 110 dpi."""
    path = HERE / f"{name}.png"
    fig.savefig(path, dpi=110)
    return path
