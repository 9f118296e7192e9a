"""The ``spice`` compilation target: write the netlist and its cells into a directory.

``write_netlists(system, out_dir)`` writes ``<model>.cir`` (ngspice dialect, an
``.op`` analysis, inputs and targets at 0 V) and ``cells/*.cir`` (the subcircuits it
includes, copied from the shipped cells or the user's replacements).  Run it with
``cd out_dir && ngspice -b <model>.cir -r out.raw``.  Everything is built in memory
and every destination checked before the first file is written, so invalid input or
a blocked path leaves the directory untouched; each file is written atomically.
Same model and options give byte-identical files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hwbp.backend import Options, option
from hwbp.lower.system import DynamicsSystem
from hwbp.targets import Target
from hwbp.targets.spice.build import build_circuit
from hwbp.targets.spice.model import DEFAULT_REALIZATION, REALIZATIONS, SpiceOptions, cells_from_dir
from hwbp.targets.spice.names import sanitize
from hwbp.targets.spice.writer import get_writer

__all__ = ["SpiceTargetOptions", "SpiceTarget", "netlist_files", "write_netlists"]

#: Subdirectory of the output directory holding the cells.
CELLS_SUBDIR = "cells"


def netlist_files(system: DynamicsSystem, options: SpiceOptions = SpiceOptions(), *, dialect: str = "ngspice",
                  info: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Relative path -> text of every file of the netlist (nothing is written)."""
    circuit = build_circuit(system, options, info)
    writer = get_writer(dialect)
    files = {f"{sanitize(system.name, 'model')}.cir": writer.write(circuit, include_dir=CELLS_SUBDIR)}
    for cell in circuit.cells:
        files[f"{CELLS_SUBDIR}/{cell.filename}"] = cell.text
    return files


@dataclass(frozen=True)
class SpiceTargetOptions(Options):
    """Options of the ``spice`` target (physical values in SI units)."""

    r_ohm: float = option(1e3, "node resistance R (default: 1000)", unit="ohm")
    c_f: float = option(1e-9, "node capacitance C (default: 1e-9); tau = R*C", unit="F")
    cells: str | None = option(None, "directory of replacement cells (same file and subcircuit names as "
                                     "the shipped ones; missing ones come from hwbp)", flag="--cells")
    dialect: str = option("ngspice", "netlist dialect", choices=("ngspice", "spice3"))
    realization: str = option(DEFAULT_REALIZATION, "which nodes are the RC state nodes: differential (mean and "
                              "tension) or pair (x+ and x-)", choices=tuple(REALIZATIONS))


class SpiceTarget(Target):
    """Netlists of the analog RC realization (ngspice dialect by default)."""

    name = "spice"
    description = "analog RC netlist (<model>.cir) and its cells for ngspice"
    Options = SpiceTargetOptions

    def emit(self, system: DynamicsSystem, out_dir: str | Path, options: Options,
             info: Mapping[str, Any] | None = None) -> list[Path]:
        o: SpiceTargetOptions = self.options(options)  # type: ignore[assignment]
        cells = cells_from_dir(o.cells) if o.cells is not None else None
        return write_netlists(system, out_dir, model_file=(info or {}).get("model_file"), r_ohm=o.r_ohm,
                              c_f=o.c_f, cells=cells, dialect=o.dialect, realization=o.realization)


def write_netlists(system: DynamicsSystem, out_dir: str | Path, *, model_file: str | None = None,
                   r_ohm: float = 1e3, c_f: float = 1e-9, cells: Mapping[str, str] | None = None,
                   dialect: str = "ngspice", **options: Any) -> list[Path]:
    """Write the netlist of ``system`` and its cells into ``out_dir``; return the paths.

    Parameters
    ----------
    model_file : str, optional
        Model file the system came from (named, with its SHA-256, in the header).
    r_ohm, c_f : float
        Node resistance (ohm) and capacitance (F).
    cells : mapping, optional
        Cell role -> replacement subcircuit file.
    dialect : str
        Netlist dialect (``ngspice`` or ``spice3``).
    options :
        Further :class:`SpiceOptions` fields (tolerances, ``realization``, ``pivrel``);
        unknown keys are ignored.
    """
    from hwbp.io import atomic_write_text, check_writable

    info: dict[str, Any] = {}
    if model_file is not None:
        info["model_file"] = Path(model_file).name
        p = Path(model_file)
        if p.is_file():
            info["model_sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
    fields = {k: v for k, v in options.items() if k in ("reltol", "abstol_a", "vntol_v", "tran_reltol", "itl1",
                                                              "realization", "pivrel")}
    opts = SpiceOptions(r_ohm=r_ohm, c_f=c_f, cells=dict(cells or {}), **fields)
    files = netlist_files(system, opts, dialect=dialect, info=info)
    out = Path(out_dir)
    # every destination is checked before the first write, so a blocked path (a file
    # where ``cells/`` should be, a directory named like the netlist) writes nothing
    for rel in files:
        check_writable(out / rel, "spice output")
    written = []
    for rel, text in files.items():
        atomic_write_text(out / rel, text)
        written.append(out / rel)
    return written
