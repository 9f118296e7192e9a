"""Reader of SPICE raw files (``ngspice -r`` / ``write``), binary and ASCII.

A file holds one or more plots, each a header (``Plotname``, ``Flags``,
``No. Variables``, ``No. Points``, ``Variables:``) followed by ``Binary:`` (float64,
point-major) or ``Values:`` (text) data.  Only real data are supported (the
analyses hwbp runs, ``.op`` and ``.tran``, produce real data).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from hwbp.errors import BackendError

__all__ = ["RawPlot", "read_raw", "parse_raw"]


@dataclass(frozen=True, eq=False)
class RawPlot:
    """One plot: its name and ``vectors`` (variable name, lower case and without
    ``v(...)``, -> float64 array of the points)."""

    name: str
    vectors: Mapping[str, np.ndarray]


def _name(raw: str) -> str:
    n = raw.strip().lower()
    if n.startswith("v(") and n.endswith(")"):
        n = n[2:-1]
    return n


def parse_raw(data: bytes, where: str = "raw file") -> list[RawPlot]:
    """Every plot in the bytes of a raw file."""
    plots: list[RawPlot] = []
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] in (b"\n", b"\r", b" "):
            pos += 1
            continue
        header: dict[str, str] = {}
        names: list[str] = []
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                raise BackendError(f"{where}: truncated header at byte {pos}")
            line = data[pos:end].decode("ascii", "replace").rstrip("\r")
            pos = end + 1
            if line.startswith("Variables:"):
                n = int(header.get("no. variables", "-1"))
                if n < 1:
                    raise BackendError(f"{where}: plot {header.get('plotname', '?')!r} has no variable count")
                for _ in range(n):
                    end = data.find(b"\n", pos)
                    parts = data[pos:end].decode("ascii", "replace").split()
                    pos = end + 1
                    if len(parts) < 2:
                        raise BackendError(f"{where}: malformed variable line {parts}")
                    names.append(_name(parts[1]))
                continue
            if line in ("Binary:", "Values:"):
                break
            key, _, value = line.partition(":")
            header[key.strip().lower()] = value.strip()
        if "complex" in header.get("flags", "").lower():
            raise BackendError(f"{where}: complex data (plot {header.get('plotname')!r}) is not supported")
        n_pts = int(header.get("no. points", "0"))
        nvar = len(names)
        if line == "Binary:":
            size = 8 * nvar * n_pts
            if pos + size > len(data):
                raise BackendError(f"{where}: binary data of plot {header.get('plotname')!r} is truncated")
            arr = np.frombuffer(data, dtype="<f8", count=nvar * n_pts, offset=pos).reshape(n_pts, nvar)
            pos += size
        else:
            tokens = []
            need = (nvar + 1) * n_pts
            while len(tokens) < need:
                end = data.find(b"\n", pos)
                end = len(data) if end < 0 else end
                if end == pos and pos >= len(data):
                    raise BackendError(f"{where}: ASCII data of plot {header.get('plotname')!r} is truncated")
                tokens += data[pos:end].split()
                pos = end + 1
            arr = np.array(tokens[:need], dtype=np.float64).reshape(n_pts, nvar + 1)[:, 1:]
        plots.append(RawPlot(header.get("plotname", ""), {n: arr[:, i].copy() for i, n in enumerate(names)}))
    return plots


def read_raw(path: str | Path) -> list[RawPlot]:
    """Every plot in the raw file at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise BackendError(f"raw file not found: {p}")
    return parse_raw(p.read_bytes(), str(p))
