"""The circuit object model: what an emitted netlist contains, independent of text.

A :class:`Circuit` holds global parameters, cell subcircuits (:class:`Cell`, loaded
from the circuit library's ``circuits/behavioral/``), and sections of elements.  Dense synapse layers are kept as one
:class:`SynapseArray` (a conductance matrix and its four node lists) rather than
hundreds of thousands of element objects, so building and writing stay fast; the
writer expands it into one cell instance per synapse.  Text writers live in
:mod:`hwbp.targets.spice.writer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from hwbp.errors import ConfigError
from hwbp.library import BEHAVIORAL_DIR
from hwbp.targets.spice.cellguard import top_subckts

__all__ = [
    "CELLS_DIR", "DEFAULT_CELLS", "REALIZATIONS", "DEFAULT_REALIZATION", "SpiceOptions", "Cell", "load_cell", "cells_from_dir", "Element", "SynapseArray",
    "Section", "Circuit",
]

#: Directory of the shipped behavioral cell subcircuits (``circuits/behavioral/`` of the
#: circuit library, see :mod:`hwbp.library`).
CELLS_DIR = BEHAVIORAL_DIR

#: Cell role -> file name in :data:`CELLS_DIR`.  Roles ``act_<f>`` exist per activation.
DEFAULT_CELLS: Mapping[str, str] = MappingProxyType(
    {
        "neuron": "hwbp_neuron_pair.cir",
        "neuron_diff": "hwbp_neuron_diff.cir",
        "synapse": "hwbp_synapse.cir",
        "input_synapse": "hwbp_synapse_fwd.cir",
        "loss_mse": "hwbp_loss_mse.cir",
        "loss_ce": "hwbp_loss_ce.cir",
        **{f"act_{f}": f"hwbp_act_{f}.cir"
           for f in ("identity", "tanh", "sigmoid", "relu", "leaky_relu", "softplus",
                     "gelu", "gelu_tanh", "elu", "silu", "softsign", "hardtanh", "relu6", "clip")},
    }
)

#: Ports each role's subcircuit must have (in this order).
CELL_PORTS: Mapping[str, int] = MappingProxyType(
    {"neuron": 6, "neuron_diff": 6, "synapse": 4, "input_synapse": 2, "loss_mse": 3, "loss_ce": 3,
     **{k: 4 for k in DEFAULT_CELLS if k.startswith("act_")}}
)


#: Realization -> (neuron cell role, its state nodes, ngspice options it runs with).
#:
#: ``pair``: x+ and x- are the RC nodes (the seed's doubled coordinates, the circuit a
#: designer draws); the mean and tension are derived.  That closes the structural loop
#: sd -> x+- -> xb -> a -> gate -> sd, so Sparse 1.3's reordering fills in.  A small
#: relative pivot threshold (``pivrel=1e-6``; ngspice's default 1e-3) lets it keep the
#: sparsest pivots, with the same solution: measured on W-W-W-10 MLPs, the CPU time of
#: one ``.op`` is ~2.2x lower from 20k synapses on (``sims/spice_scaling.md``).
#: ``differential``: the mean xb and the tension tn are the RC nodes, x+- derived by
#: linear sources that nothing reads back; the matrix is block triangular with zero
#: fill-in, the same DC solution (|dT| ~1e-16 V) and the same dynamics.  It keeps
#: ngspice's default pivot threshold: there is no fill-in for a smaller one to avoid.
REALIZATIONS: Mapping[str, Mapping[str, object]] = MappingProxyType({
    "pair": MappingProxyType({"cell": "neuron", "state": ("xp", "xm"), "options": MappingProxyType({"pivrel": 1e-6})}),
    "differential": MappingProxyType({"cell": "neuron_diff", "state": ("xb", "tn"),
                                      "options": MappingProxyType({})}),
})
#: The default realization, chosen by measurement (``benchmarks/bench_spice.py``,
#: ``sims/spice_scaling.md``): the same results; at 50k synapses one ``.op`` takes ~7x
#: less CPU time than the tuned pair (6.7x and 7.6x in two runs), and its ``.tran``
#: stays fast where the pair is stiff.
DEFAULT_REALIZATION = "differential"


@dataclass(frozen=True)
class SpiceOptions:
    """Physical and solver options of a SPICE realization.

    Attributes
    ----------
    r_ohm : float
        Node resistance R (ohm); also the summing-node resistance.  Default 1 kOhm.
    c_f : float
        Node capacitance C (F).  Default 1 nF, so tau = R*C = 1 us.
    reltol, abstol_a, vntol_v : float
        ngspice convergence tolerances: relative, absolute current (A), absolute
        voltage (V).  Tight by default so ``.op`` tensions meet a 1e-6 gradient bound.
    tran_reltol : float
        Relative tolerance used for ``.tran`` (the time-step control).
    itl1 : int
        DC iteration limit.
    cells : Mapping[str, str]
        Role -> subcircuit file replacing a shipped cell (see :data:`DEFAULT_CELLS`).
    realization : {"differential", "pair"}
        Which nodes are the RC state nodes (see :data:`REALIZATIONS`).
    pivrel : float, optional
        ngspice's relative pivot threshold (default: the realization's, see
        :data:`REALIZATIONS`).
    """

    r_ohm: float = 1e3
    c_f: float = 1e-9
    reltol: float = 1e-9
    abstol_a: float = 1e-15
    vntol_v: float = 1e-12
    tran_reltol: float = 1e-7
    itl1: int = 500
    cells: Mapping[str, str] = field(default_factory=dict)
    realization: str = DEFAULT_REALIZATION
    pivrel: float | None = None

    def __post_init__(self) -> None:
        if self.realization not in REALIZATIONS:
            raise ConfigError(f"unknown spice realization {self.realization!r}; valid: {', '.join(REALIZATIONS)}")
        if self.pivrel is not None and not (isinstance(self.pivrel, (int, float)) and 0 < self.pivrel <= 1):
            raise ConfigError(f"spice option pivrel must be in (0, 1], got {self.pivrel!r}")
        for label, v in (("r_ohm", self.r_ohm), ("c_f", self.c_f), ("reltol", self.reltol),
                         ("abstol_a", self.abstol_a), ("vntol_v", self.vntol_v),
                         ("tran_reltol", self.tran_reltol)):
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise ConfigError(f"spice option {label} must be a positive number, got {v!r}")
        if int(self.itl1) < 1:
            raise ConfigError(f"spice option itl1 must be >= 1, got {self.itl1!r}")
        unknown = set(self.cells) - set(DEFAULT_CELLS)
        if unknown:
            raise ConfigError(f"unknown cell role(s) {', '.join(sorted(unknown))}; valid: {', '.join(DEFAULT_CELLS)}")
        object.__setattr__(self, "cells", MappingProxyType(dict(self.cells)))

    @property
    def tau_s(self) -> float:
        """Node time constant R*C (s), rounded to 12 significant digits (so that
        1 kohm * 1 nF reads 1e-06, not 1.0000000000000002e-06)."""
        return float(f"{self.r_ohm * self.c_f:.12g}")

    @property
    def solver_options(self) -> dict[str, float]:
        """ngspice options this realization runs with (``pivrel`` when set or tuned)."""
        out = dict(REALIZATIONS[self.realization]["options"])  # type: ignore[arg-type]
        if self.pivrel is not None:
            out["pivrel"] = float(self.pivrel)
        return out


@dataclass(frozen=True)
class Cell:
    """A subcircuit file: its role, subcircuit name, port count, file name and text."""

    role: str
    name: str
    ports: int
    filename: str
    text: str


def load_cell(role: str, path: str | Path | None = None) -> Cell:
    """Read the cell of ``role`` from ``path`` (default: the shipped file) and check
    that it defines the expected subcircuit with the right number of ports.

    The file may hold only comments and ``.subckt ... .ends`` blocks (helper
    subcircuits included, in any order); ``+`` continuation lines are joined before
    a header is read.  Inside a subcircuit only elements and ``.param``, ``.func`` and
    ``.model`` are accepted: every other dot command, read as ngspice reads it
    (case-insensitive prefix, ``;``/``$`` comments cut), and ``*#`` lines are refused,
    so a cell cannot open a control section, run ``shell`` or read another file.
    """
    if role not in DEFAULT_CELLS:
        raise ConfigError(f"unknown cell role {role!r}; valid: {', '.join(DEFAULT_CELLS)}")
    p = Path(path) if path is not None else CELLS_DIR / DEFAULT_CELLS[role]
    if not p.is_file():
        raise ConfigError(f"cell file for {role!r} not found: {p}")
    try:
        text = p.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"cell file {p}: must be plain ASCII text") from None
    expected = Path(DEFAULT_CELLS[role]).stem
    subckts = top_subckts(p, text)
    if expected not in subckts:
        raise ConfigError(f"cell file {p}: must define '.subckt {expected} ...' for role {role!r}")
    ports = subckts[expected]
    if ports != CELL_PORTS[role]:
        raise ConfigError(f"cell file {p}: subckt {expected} has {ports} ports, role {role!r} needs {CELL_PORTS[role]}")
    return Cell(role, expected, ports, DEFAULT_CELLS[role], text if text.endswith("\n") else text + "\n")


def cells_from_dir(directory: str | Path) -> dict[str, str]:
    """Role -> file for every shipped cell file name found in ``directory`` (the same
    file and subcircuit names as the shipped cells); roles whose file is absent keep
    the shipped cell.  A directory holding none of them is an error listing the names."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfigError(f"--cells {d}: not a directory; give a directory of cell files named like "
                          f"the shipped ones ({', '.join(sorted(DEFAULT_CELLS.values()))})")
    found = {role: str(d / name) for role, name in DEFAULT_CELLS.items() if (d / name).is_file()}
    if not found:
        raise ConfigError(f"--cells {d}: holds none of the cell files {', '.join(sorted(DEFAULT_CELLS.values()))}")
    return found


@dataclass(frozen=True)
class Element:
    """One netlist element: ``name`` (its first letter is the SPICE kind), ``nodes``,
    and the rest of the line ``value`` (a number, a cell name, an expression)."""

    name: str
    nodes: tuple[str, ...]
    value: str


@dataclass(frozen=True, eq=False)
class SynapseArray:
    """A dense layer of synapse cell instances.

    Instance ``(j, i)`` is named ``{prefix}_{j}_{i}`` and connects ``pre[i]`` to
    ``post[j]`` (forward) and, when ``gate`` is given, ``gate[j]`` to ``sens[i]``
    (backward), both with the one conductance ``conductance_s[j, i]`` (S).  With a
    ``mask`` (structured layers: convolutions, pooling, batch normalization) only the
    instances where ``mask[j, i]`` is true exist.

    ``flat``: the shipped synapse cell written inline, as its G elements
    ``Gsf_<tag>_<k>_{j}_{i}`` (forward) and ``Gsb_<tag>_<k>_{j}_{i}`` (backward) with
    the same conductance, instead of one subcircuit instance.  ngspice expands a
    subcircuit instance with a parameter ~10x slower than it reads a G element
    (measured: 34k instances 3.0 s of expansion, more than the ``.op`` itself).

    ``backward_s`` (S), given only for a device instance of a hardware model
    (:mod:`hwbp.hardware`), is the conductance of each physically distinct backward
    device; ``conductance_s`` is then the forward device's.  Such an array is written as
    primitive G elements, one per device (``G{prefix}f_j_i``, ``G{prefix}b_j_i``),
    whatever ``flat`` says.
    """

    prefix: str
    cell: str
    pre: tuple[str, ...]
    post: tuple[str, ...]
    gate: tuple[str, ...] | None
    sens: tuple[str, ...] | None
    conductance_s: np.ndarray
    mask: np.ndarray | None = None
    backward_s: np.ndarray | None = None
    flat: bool = False

    @property
    def count(self) -> int:
        """Number of synapse instances."""
        return int(self.conductance_s.size if self.mask is None else np.count_nonzero(self.mask))


@dataclass(frozen=True)
class Section:
    """A titled group of elements (a population, a layer of synapses, the loss port)."""

    title: str
    items: tuple[Element | SynapseArray, ...]


@dataclass(frozen=True, eq=False)
class Circuit:
    """A whole circuit, without its per-sample stimulus values.

    Attributes
    ----------
    title : str
        First line (safe text).
    header : tuple of str
        Comment lines describing what the circuit realizes.
    params : tuple of (str, str)
        Global ``.param`` definitions (name, value text).
    cells : tuple of Cell
    sections : tuple of Section
    inputs : Mapping[str, tuple of str]
        Input port -> names of its clamped voltage sources (one per component).
    targets : tuple of str
        Names of the target voltage sources (one per output).
    nodes : Mapping[str, tuple of (tuple of str, tuple of str)]
        Population -> (x+ node names, x- node names).
    options : Mapping[str, str]
        ``.options`` entries.
    gates : Mapping[tuple of (str, int), tuple of str]
        Weighted term ``(population, term index)`` -> its gate nodes (V = f'(a) * T),
        which runners read back as the hardware's own gated sensitivity.
    realization : str
        ``pair`` or ``differential`` (see :data:`REALIZATIONS`).
    state : Mapping[str, tuple of (tuple of str, tuple of str)]
        Population -> its two RC state node lists: (x+, x-) for ``pair``, (mean,
        tension) for ``differential``; what runners save, read and set initially.
    preamble : tuple of str
        Netlist lines after the ``.param`` lines (a PDK's ``.lib``, supplies, ``.temp``).
    run_files : Mapping[str, str]
        Extra files the run directory needs (a PDK's ``.spiceinit``).
    ic_nodes : Mapping[str, tuple of (str, float, float)]
        State node -> (the node its ``.ic`` is set on, offset V, V per V of the state
        node): for a state node read through a cell (a transistor node pair's capacitor
        node); state nodes not named here take their ``.ic`` themselves.
    """

    title: str
    header: tuple[str, ...]
    params: tuple[tuple[str, str], ...]
    cells: tuple[Cell, ...]
    sections: tuple[Section, ...]
    inputs: Mapping[str, tuple[str, ...]]
    targets: tuple[str, ...]
    nodes: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
    options: Mapping[str, str]
    gates: Mapping[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    realization: str = "pair"
    state: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    preamble: tuple[str, ...] = ()
    run_files: Mapping[str, str] = field(default_factory=dict)
    ic_nodes: Mapping[str, tuple[str, float, float]] = field(default_factory=dict)

    def state_nodes(self) -> Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Population -> its two RC state node lists (:attr:`state`, or the pair)."""
        return self.state or self.nodes

    def state_values(self, mean: np.ndarray, tension: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two state node voltages (V) holding ``mean`` and ``tension``."""
        if self.realization == "differential":
            return mean, tension
        return mean + 0.5 * tension, mean - 0.5 * tension

    @property
    def synapse_count(self) -> int:
        """Synapse cell instances in the circuit."""
        return sum(i.count for s in self.sections for i in s.items if isinstance(i, SynapseArray))

    @property
    def element_count(self) -> int:
        """Top-level elements and instances (each synapse counted once)."""
        return sum(i.count if isinstance(i, SynapseArray) else 1 for s in self.sections for i in s.items)

    def saved_nodes(self) -> list[str]:
        """The two state nodes of every neuron (x+ and x-, or mean and tension), in
        population order, then the gate nodes of every weighted term (what runners read)."""
        out: list[str] = []
        for xp, xm in self.state_nodes().values():
            out += list(xp) + list(xm)
        for g in self.gates.values():
            out += list(g)
        return out
