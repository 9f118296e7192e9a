"""The ``spice`` compilation target: write the netlist and its cells into a directory.

``write_netlists(system, out_dir)`` writes ``<model>.cir`` and ``cells/*.cir`` (the
subcircuits it includes, copied from the shipped cells or the user's replacements).
The input and target sources carry one sample of a batch (``hwbp compile --batch
F.npz --sample K``), or are placeholders at 0 V, as the header says.  In the ngspice
dialect a ``.control`` block solves ``.op`` and prints, per population, the conjugate
node voltages and the tension of every neuron, each after a comment giving the
expected ``beta * dl/dx`` (from the oracle, when the graph is known), so
``cd out_dir && ngspice -b <model>.cir`` runs on its own; the ``spice3`` dialect keeps
a plain ``.op`` line.  Everything is built in memory
and every destination checked before the first file is written, so invalid input or
a blocked path leaves the directory untouched; each file is written atomically.
Same model and options give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hwbp.backend import Options, option
from hwbp.errors import ConfigError
from hwbp.ir.graph import Graph
from hwbp.lower.system import DynamicsSystem
from hwbp.targets import Target
from hwbp.targets.spice.build import build_circuit, stimulus
from hwbp.targets.spice.model import DEFAULT_REALIZATION, REALIZATIONS, Circuit, SpiceOptions, cells_from_dir
from hwbp.targets.spice.names import comment_text, sanitize
from hwbp.targets.spice.writer import get_writer, spice_number
from hwbp.types import Batch

__all__ = ["SpiceTargetOptions", "SpiceTarget", "Sample", "sample_from_batch", "netlist_files", "write_netlists"]

#: Subdirectory of the output directory holding the cells.
CELLS_SUBDIR = "cells"


def netlist_files(system: DynamicsSystem, options: SpiceOptions = SpiceOptions(), *, dialect: str = "ngspice",
                  info: Mapping[str, Any] | None = None, sample: Sample | None = None) -> dict[str, str]:
    """Relative path -> text of every file of the netlist (nothing is written).

    ``sample`` (see :class:`Sample`) sets the input and target sources and the expected
    tensions of the ``.control`` block; without it the sources are 0 V placeholders."""
    circuit = build_circuit(system, options, info)
    writer = get_writer(dialect)
    if sample is None or sample.origin is None:
        notes = ("sources: placeholders at 0 V (inputs and targets); emit with --batch F.npz --sample K to apply a "
                 "sample, or re-value them with alter",)
        stim: dict[str, float] = {}
    else:
        notes = (f"sources: sample {sample.index} of {comment_text(sample.origin)} (inputs and targets in V)",)
        stim = stimulus(circuit, sample.x, sample.y)
    circuit = dataclasses.replace(circuit, header=circuit.header + notes)
    if writer.dialect == "ngspice":
        # the control block prints x+ and x-: derived nodes in the differential realization
        saved = circuit.saved_nodes()
        known = set(saved)
        saved += [n for xp, xm in circuit.nodes.values() for n in (*xp, *xm) if n not in known]
        text = writer.write(circuit, include_dir=CELLS_SUBDIR, stimulus=stim, analyses=(), save=saved,
                            control=_control(system, circuit, None if sample is None else sample.expected))
    else:
        text = writer.write(circuit, include_dir=CELLS_SUBDIR, stimulus=stim)
    files = {f"{sanitize(system.name, 'model')}.cir": text}
    for cell in circuit.cells:
        files[f"{CELLS_SUBDIR}/{cell.filename}"] = cell.text
    return files


@dataclass(frozen=True, eq=False)
class Sample:
    """One sample applied to an emitted netlist.

    Attributes
    ----------
    x : Mapping[str, numpy.ndarray]
        Per input name, the sample's input vector ``(n,)`` (V).
    y : numpy.ndarray
        Its target vector ``(n_out,)`` (V; one-hot or probabilities for ce).
    index : int
        Position of the sample in its batch (for the header).
    origin : str or None
        Where the batch came from (for the header); ``None``: the 0 V placeholders.
    expected : Mapping[str, numpy.ndarray], optional
        Per population, the expected tension ``beta * dl/dx`` (V) of this sample.
    """

    x: Mapping[str, np.ndarray]
    y: np.ndarray
    index: int = 0
    origin: str | None = "batch"
    expected: Mapping[str, np.ndarray] | None = None


def _control(system: DynamicsSystem, circuit: Circuit, expected: Mapping[str, np.ndarray] | None) -> list[str]:
    """``.control`` commands: solve ``.op``, then print per population each neuron's
    ``x+``, ``x-`` and tension ``x+ - x-`` (V) after a comment with the expected value."""
    lines = ["set numdgt=15", "op"]  # print 15 significant digits
    for pop in system.populations:
        xp, xm = circuit.nodes[pop.name]
        label = _echo_text(pop.name)
        lines.append(f"echo population {label} with {pop.size} pairs: v(x+) v(x-) and the tension v(x+)-v(x-) "
                     f"in V")
        want = None if expected is None else expected.get(pop.name)
        for j, (p, m) in enumerate(zip(xp, xm)):
            note = "not computed (no graph)" if want is None else f"{spice_number(float(want[j]))} V"
            lines.append(f"* {comment_text(pop.name)}[{j}]: expected tension beta*dl/dx = {note}")
            lines.append(f"echo {label}[{j}] expected tension beta*dl/dx = {note}")
            lines.append(f"print v({p}) v({m}) v({p})-v({m})")
    return lines + ["quit 0"]  # batch mode: the analysis ran here, not as a dot line


def _echo_text(text: str) -> str:
    """``text`` safe inside an ngspice ``echo`` (no separators, quotes or expansions)."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in text)


def sample_from_batch(system: DynamicsSystem, batch: Batch, index: int, origin: str | None,
                      graph: Graph | None = None) -> Sample:
    """Sample ``index`` of ``batch`` (with its expected tensions when ``graph``, the
    model with its loss port, is given: ``beta`` times the oracle's ``dl/dx``);
    ``origin=None`` marks the 0 V placeholders."""
    if not 0 <= index < batch.size:
        raise ConfigError(f"--sample {index}: the batch {origin} has samples 0..{batch.size - 1}")
    x = {k: v[index:index + 1] for k, v in batch.x.items()}
    y = batch.y[index:index + 1]
    expected = None
    if graph is not None:
        from hwbp.oracle.backprop import exact_gradients

        acts = exact_gradients(graph, Batch(x, y)).activations
        expected = {p.name: system.beta * acts[p.name][0] for p in system.populations if p.name in acts}
    return Sample({k: v[0] for k, v in x.items()}, y[0], index, origin, expected)


@dataclass(frozen=True)
class SpiceTargetOptions(Options):
    """Options of the ``spice`` target (physical values in SI units)."""

    r_ohm: float = option(1e3, "node resistance R (default: 1000)", unit="ohm")
    c_f: float = option(1e-9, "node capacitance C (default: 1e-9); tau = R*C", unit="F")
    cells: str | None = option(None, "directory of replacement cells (same file and subcircuit names as "
                                     "the shipped ones; missing ones come from hwbp)", flag="--cells")
    dialect: str = option("ngspice", "netlist dialect", choices=("ngspice", "spice3"))
    sample: int | None = option(None, "with --batch: the sample whose inputs and targets the sources carry "
                                      "(default: 0)")
    realization: str = option(DEFAULT_REALIZATION, "which nodes are the RC state nodes: differential (mean and "
                              "tension) or pair (x+ and x-)", choices=tuple(REALIZATIONS))


class SpiceTarget(Target):
    """Netlists of the analog RC realization (ngspice dialect by default)."""

    name = "spice"
    description = "analog RC netlist (<model>.cir) and its cells for ngspice"
    Options = SpiceTargetOptions

    def emit(self, system: DynamicsSystem, out_dir: str | Path, options: Options,
             info: Mapping[str, Any] | None = None) -> list[Path]:
        """Write the netlist; ``info`` may carry ``batch`` (a :class:`~hwbp.types.Batch`),
        ``batch_file`` (its name) and ``graph`` (the model with its loss port, for the
        expected tensions) besides ``model_file``."""
        o: SpiceTargetOptions = self.options(options)  # type: ignore[assignment]
        facts = dict(info or {})
        cells = cells_from_dir(o.cells) if o.cells is not None else None
        sample = None
        if facts.get("batch") is not None:
            sample = sample_from_batch(system, facts["batch"], 0 if o.sample is None else o.sample,
                                       Path(str(facts.get("batch_file", "batch"))).name, facts.get("graph"))
        elif o.sample is not None:
            raise ConfigError("--sample needs --batch FILE.npz (the batch to take the sample from)")
        elif facts.get("graph") is not None:  # placeholders: expected tensions of x = 0, y = 0
            zeros = Batch({p.name: np.zeros((1, p.size)) for p in system.inputs},
                          np.zeros((1, system.population(system.loss.population).size)))
            sample = sample_from_batch(system, zeros, 0, None, facts["graph"])
        return write_netlists(system, out_dir, model_file=facts.get("model_file"), r_ohm=o.r_ohm,
                              c_f=o.c_f, cells=cells, dialect=o.dialect, sample=sample,
                              realization=o.realization)


def write_netlists(system: DynamicsSystem, out_dir: str | Path, *, model_file: str | None = None,
                   r_ohm: float = 1e3, c_f: float = 1e-9, cells: Mapping[str, str] | None = None,
                   dialect: str = "ngspice", sample: Sample | None = None, **options: Any) -> list[Path]:
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
    sample : Sample, optional
        The sample the sources carry (default: 0 V placeholders, said in the header).
    options :
        Further :class:`SpiceOptions` fields (tolerances, ``realization``, ``pivrel``);
        unknown keys are ignored.
    """
    from hwbp.io import atomic_write_all

    info: dict[str, Any] = {}
    if model_file is not None:
        info["model_file"] = Path(model_file).name
        p = Path(model_file)
        if p.is_file():
            info["model_sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
    fields = {k: v for k, v in options.items() if k in ("reltol", "abstol_a", "vntol_v", "tran_reltol", "itl1",
                                                              "realization", "pivrel")}
    opts = SpiceOptions(r_ohm=r_ohm, c_f=c_f, cells=dict(cells or {}), **fields)
    files = netlist_files(system, opts, dialect=dialect, info=info, sample=sample)
    out = Path(out_dir)
    # all or none: a blocked path (a file where ``cells/`` should be, a directory named
    # like the netlist) writes nothing
    return atomic_write_all({out / rel: text.encode("utf-8") for rel, text in files.items()}, "spice output")
