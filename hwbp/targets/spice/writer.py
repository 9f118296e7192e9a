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
from hwbp.targets.spice.numfmt import g17_strings, layer_blocks

__all__ = ["SpiceWriter", "NgspiceWriter", "DIALECTS", "get_writer"]


#: Node whose voltage is the sample index in a batch swept by ``.dc`` (see ``sweep``).
SWEEP_NODE = "hwbp_k"


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

    def swept_source(self, e: Element, values: Sequence[float]) -> str:
        """A stimulus source taking ``values[k]`` (V) at sweep point ``k``: a B source
        ``pwl`` of the sweep node :data:`SWEEP_NODE` (exact at the integer points)."""
        pts = ", ".join(f"{k}, {spice_number(v)}" for k, v in enumerate(values))
        return f"B{e.name[1:]} {' '.join(e.nodes)} V=pwl(V({SWEEP_NODE}), {pts})"

    def synapses(self, s: SynapseArray) -> list[str]:
        """The instance lines of a synapse array (a dense array in a few text blocks).

        Hot path (hundreds of thousands of lines): a dense array is written by
        :func:`~hwbp.targets.spice.numfmt.layer_blocks`, the row and column name pieces
        and the conductances' text (17 significant digits, byte for byte ``'%.17g'``)
        broadcast into one character matrix, with no per-synapse Python code.  Node
        names are sanitized tags (ASCII, no NUL).
        """
        p, cell = s.prefix, s.cell
        if s.backward_s is not None:  # a device instance: distinct forward and backward devices
            return _device_synapses(s)
        if s.mask is not None:
            return self._sparse_synapses(s)
        if s.flat:
            return self._flat_synapses(s)
        rows, cols = s.conductance_s.shape
        head = [f"{p}_{j}_" for j in range(rows)]
        ins = [f"{i} {u} " for i, u in enumerate(s.pre)]
        if s.gate is None:
            mids = [f"{b} " for b in s.post]
            tails = [f"{cell} g="] * cols
        else:
            mids = [f"{b} {g} " for b, g in zip(s.post, s.gate)]
            tails = [f"{d} {cell} g=" for d in s.sens]
        line = (("r", 0), ("c", 0), ("r", 1), ("c", 1), ("v", 0))
        return layer_blocks((head, mids), (ins, tails), s.conductance_s, (line,))

    def _flat_synapses(self, s: SynapseArray) -> list[str]:
        """The shipped synapse cell inline: per synapse ``Gsf_<t>_<k>_<j>_<i>`` (``g * V(pre)`` into
        ``post``) and, with a backward path, ``Gsb_..`` (``g * V(gate)`` into ``sens``),
        the array in a few text blocks (see :meth:`synapses`)."""
        tag = s.prefix[2:]  # "Xs_<t>_<k>" -> "_<t>_<k>"
        rows = range(s.conductance_s.shape[0])
        fwd_rows = ([f"Gsf{tag}_{j}_" for j in rows], [f"{b} " for b in s.post])
        fwd_cols = ([f"{i} 0 " for i in range(len(s.pre))], [f"{u} 0 " for u in s.pre])
        fwd = (("r", 0), ("c", 0), ("r", 1), ("c", 1), ("v", 0))
        if s.gate is None:
            return layer_blocks(fwd_rows, fwd_cols, s.conductance_s, (fwd,))
        bwd_rows = ([f"Gsb{tag}_{j}_" for j in rows], [f"{g} 0 " for g in s.gate])
        bwd_cols = ([f"{i} 0 {d} " for i, d in enumerate(s.sens)],)
        bwd = (("r", 2), ("c", 2), ("r", 3), ("v", 0))
        return layer_blocks(fwd_rows + bwd_rows, fwd_cols + bwd_cols, s.conductance_s, (fwd, bwd))

    def _sparse_synapses(self, s: SynapseArray) -> list[str]:
        """Synapses of a masked array (structured layers), row by row, only where
        ``mask`` is true: the inline G elements of :meth:`_flat_synapses` when ``flat``,
        else one cell instance each (:meth:`synapses`' names and 17-digit conductances)."""
        out: list[str] = []
        rows, cols = np.nonzero(s.mask)
        values = g17_strings(s.conductance_s[rows, cols])
        tag = s.prefix[2:]
        for j, i, v in zip(rows.tolist(), cols.tolist(), values):
            if s.flat:
                out.append(f"Gsf{tag}_{j}_{i} 0 {s.post[j]} {s.pre[i]} 0 {v}")
                if s.gate is not None:
                    out.append(f"Gsb{tag}_{j}_{i} 0 {s.sens[i]} {s.gate[j]} 0 {v}")
            else:
                back = "" if s.gate is None else f" {s.gate[j]} {s.sens[i]}"
                out.append(f"{s.prefix}_{j}_{i} {s.pre[i]} {s.post[j]}{back} {s.cell} g={v}")
        return out

    def body(self, circuit: Circuit, stimulus: Mapping[str, float],
             sweep: Mapping[str, Sequence[float]] | None = None) -> list[str]:
        out: list[str] = []
        sweep = sweep or {}
        for section in circuit.sections:
            out.append(f"* --- {section.title}")
            for item in section.items:
                if isinstance(item, SynapseArray):
                    out += self.synapses(item)
                elif item.name in sweep:
                    out.append(self.swept_source(item, sweep[item.name]))
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
        sweep: Mapping[str, Sequence[float]] | None = None,
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
        sweep : mapping, optional
            Source name -> its value (V) at each point of a DC sweep of the source
            ``V{SWEEP_NODE}`` (0, 1, 2, ...): several samples in one ``.dc`` analysis.
        """
        lines = self.title(circuit) + self.header(circuit) + self.params(circuit)
        lines += list(circuit.preamble)
        lines += self.cells(circuit, include_dir)
        if sweep:
            lines.append(f"V{SWEEP_NODE} {SWEEP_NODE} 0 DC 0")
        lines += self.body(circuit, stimulus or {}, sweep)
        lines += self.options(circuit, extra_options)
        lines += self.saves(circuit.saved_nodes() if save is None else save)
        if initial:
            lines += self.initial(initial)
        lines += list(analyses)
        if control is not None:
            lines += self.control(control)
        lines.append(".end")
        lines.append("")  # the final newline, without copying the whole text again
        return "\n".join(lines)


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


def _device_synapses(s: SynapseArray) -> list[str]:
    """A device instance's synapses as primitive G elements: the forward device
    ``G{prefix}f_j_i`` (``conductance_s``) and the backward device ``G{prefix}b_j_i``
    (``backward_s``), each its own value (17 significant digits, as every conductance);
    a dense array in a few text blocks (:func:`~hwbp.targets.spice.numfmt.layer_blocks`)."""
    if s.mask is None:
        rows = range(s.conductance_s.shape[0])
        heads = ([f"G{s.prefix}f_{j}_" for j in rows], [f"{b} " for b in s.post])
        cols = ([f"{i} 0 " for i in range(len(s.pre))], [f"{u} 0 " for u in s.pre])
        fwd = (("r", 0), ("c", 0), ("r", 1), ("c", 1), ("v", 0))
        if s.gate is None:
            return layer_blocks(heads, cols, [s.conductance_s], (fwd,))
        heads += ([f"G{s.prefix}b_{j}_" for j in rows], [f"{g} 0 " for g in s.gate])
        cols += ([f"{i} 0 {d} " for i, d in enumerate(s.sens)],)
        bwd = (("r", 2), ("c", 2), ("r", 3), ("v", 1))
        return layer_blocks(heads, cols, [s.conductance_s, s.backward_s], (fwd, bwd))
    out: list[str] = []
    rows, cols = np.nonzero(s.mask)  # no device where a structured layer has no synapse
    fwd, bwd = g17_strings(s.conductance_s[rows, cols]), g17_strings(s.backward_s[rows, cols])
    for j, i, f, b in zip(rows.tolist(), cols.tolist(), fwd, bwd):
        out.append(f"G{s.prefix}f_{j}_{i} 0 {s.post[j]} {s.pre[i]} 0 {f}")
        if s.gate is not None:
            out.append(f"G{s.prefix}b_{j}_{i} 0 {s.sens[i]} {s.gate[j]} 0 {b}")
    return out
