"""Text writers: :class:`~hwbp.targets.spice.model.Circuit` -> netlist text.

:class:`SpiceWriter` writes generic SPICE3 syntax; a dialect is a subclass that
overrides only what differs (:class:`NgspiceWriter` adds ``.control`` blocks and
ngspice's option names).  Output is deterministic: the same circuit and arguments
give the same text, byte for byte.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from hwbp.errors import ConfigError
from hwbp.targets.spice.model import Circuit, Element, SynapseArray

__all__ = ["SpiceWriter", "NgspiceWriter", "DIALECTS", "get_writer"]


def spice_number(v: float) -> str:
    """A float as the shortest text that reads back to the same double."""
    return repr(float(v))


class SpiceWriter:
    """Generic SPICE3 netlist writer."""

    dialect = "spice3"
    #: Names per ``.save`` line.
    save_chunk = 16

    # ------------------------------------------------------------ pieces
    def title(self, circuit: Circuit) -> list[str]:
        return [f"* {circuit.title}"]

    def header(self, circuit: Circuit) -> list[str]:
        return [f"* {line}" for line in circuit.header] + [f"* dialect: {self.dialect}"]

    def params(self, circuit: Circuit) -> list[str]:
        return [".param " + " ".join(f"{k}={v}" for k, v in circuit.params)]

    def cells(self, circuit: Circuit, include_dir: str | None) -> list[str]:
        if include_dir is not None:
            return [f".include {include_dir}/{c.filename}" for c in circuit.cells]
        out: list[str] = []
        for c in circuit.cells:
            out += c.text.rstrip("\n").split("\n")
        return out

    def element(self, e: Element, stimulus: Mapping[str, float]) -> str:
        value = f"DC {spice_number(stimulus[e.name])}" if e.name in stimulus else e.value
        return f"{e.name} {' '.join(e.nodes)} {value}"

    def synapses(self, s: SynapseArray) -> list[str]:
        # hot path (hundreds of thousands of lines): per-column and per-row pieces
        # are formatted once, each line is one concatenation
        p, cell = s.prefix, s.cell
        if s.mask is not None:
            return self._sparse_synapses(s)
        out: list[str] = []
        if s.gate is None:
            cols = [f"{i} {u} " for i, u in enumerate(s.pre)]
            for j, (post, row) in enumerate(zip(s.post, s.conductance_s.tolist())):
                head, tail = f"{p}_{j}_", f" {cell} g="
                out += [f"{head}{c}{post}{tail}{v}" for c, v in zip(cols, map(repr, row))]
        else:
            cols = [f"{i} {u} " for i, u in enumerate(s.pre)]
            ends = [f" {d} {cell} g=" for d in s.sens]
            for j, (post, gate, row) in enumerate(zip(s.post, s.gate, s.conductance_s.tolist())):
                head, mid = f"{p}_{j}_", f"{post} {gate}"
                out += [f"{head}{c}{mid}{e}{v}" for c, e, v in zip(cols, ends, map(repr, row))]
        return out

    def _sparse_synapses(self, s: SynapseArray) -> list[str]:
        """Instances of a masked array, row by row (only where ``mask`` is true)."""
        out: list[str] = []
        rows, cols = np.nonzero(s.mask)
        values = s.conductance_s[rows, cols].tolist()
        for j, i, v in zip(rows.tolist(), cols.tolist(), values):
            back = "" if s.gate is None else f" {s.gate[j]} {s.sens[i]}"
            out.append(f"{s.prefix}_{j}_{i} {s.pre[i]} {s.post[j]}{back} {s.cell} g={v!r}")
        return out

    def body(self, circuit: Circuit, stimulus: Mapping[str, float]) -> list[str]:
        out: list[str] = []
        for section in circuit.sections:
            out.append(f"* --- {section.title}")
            for item in section.items:
                if isinstance(item, SynapseArray):
                    out += self.synapses(item)
                else:
                    out.append(self.element(item, stimulus))
        return out

    def options(self, circuit: Circuit, extra: Mapping[str, str] | None = None) -> list[str]:
        opts = {**circuit.options, **(extra or {})}
        return [".options " + " ".join(k if v == "" else f"{k}={v}" for k, v in opts.items())]

    def saves(self, nodes: Sequence[str]) -> list[str]:
        k = self.save_chunk
        return [".save " + " ".join(f"v({n})" for n in nodes[i:i + k]) for i in range(0, len(nodes), k)]

    def initial(self, values: Mapping[str, float]) -> list[str]:
        items = [f"v({n})={spice_number(v)}" for n, v in values.items()]
        return [".ic " + " ".join(items[i:i + 8]) for i in range(0, len(items), 8)]

    def control(self, commands: Sequence[str]) -> list[str]:
        raise ConfigError(f"dialect {self.dialect!r} has no .control blocks; use 'ngspice'")

    # ------------------------------------------------------------ whole deck
    def write(
        self,
        circuit: Circuit,
        *,
        stimulus: Mapping[str, float] | None = None,
        analyses: Iterable[str] = (".op",),
        include_dir: str | None = None,
        save: Sequence[str] | None = None,
        initial: Mapping[str, float] | None = None,
        extra_options: Mapping[str, str] | None = None,
        control: Sequence[str] | None = None,
    ) -> str:
        """The netlist text.

        Parameters
        ----------
        stimulus : mapping, optional
            Source name -> DC value (V) for inputs and targets (default 0 V).
        analyses : iterable of str
            Analysis lines (``.op``, ``.tran ...``).
        include_dir : str, optional
            ``.include`` cells from this (relative) directory instead of inlining them.
        save : sequence of str, optional
            Nodes to save (default: every x+ and x- node).
        initial : mapping, optional
            ``.ic`` node voltages (V).
        control : sequence of str, optional
            Commands of a ``.control`` block (dialects that have one).
        """
        lines = self.title(circuit) + self.header(circuit) + self.params(circuit)
        lines += self.cells(circuit, include_dir)
        lines += self.body(circuit, stimulus or {})
        lines += self.options(circuit, extra_options)
        lines += self.saves(circuit.saved_nodes() if save is None else save)
        if initial:
            lines += self.initial(initial)
        lines += list(analyses)
        if control is not None:
            lines += self.control(control)
        lines.append(".end")
        return "\n".join(lines) + "\n"


class NgspiceWriter(SpiceWriter):
    """ngspice dialect: adds ``.control`` blocks; otherwise SPICE3 syntax."""

    dialect = "ngspice"

    def control(self, commands: Sequence[str]) -> list[str]:
        return [".control", *commands, ".endc"]


#: Dialect name -> writer class.
DIALECTS = {"spice3": SpiceWriter, "ngspice": NgspiceWriter}


def get_writer(dialect: str = "ngspice") -> SpiceWriter:
    """A writer of ``dialect``; the error lists the valid names."""
    try:
        return DIALECTS[dialect]()
    except KeyError:
        raise ConfigError(f"unknown netlist dialect {dialect!r}; valid: {', '.join(DIALECTS)}") from None
