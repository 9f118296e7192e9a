"""The SKY130 cell set: which file realizes which behavioral role, its default parameters,
its unit current and ideal function, and its device area from the netlist and the PDK's
densities."""

from __future__ import annotations

import math
import re
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from hwbp.errors import ConfigError
from hwbp.pdk.sky130 import cells_dir

__all__ = ["CellSpec", "CELLS", "get_cell", "cell_area_um2", "RSHEET_OHM_PER_SQ", "RES_WIDTH_UM",
           "CAP_DENSITY_F_PER_UM2", "spice_number", "BlockSpec", "BLOCKS", "get_block",
           "parse_act_params", "check_act_param_names"]

#: Sheet resistance (ohm/square) of SKY130's xhigh_po poly resistor (``rsheet`` in
#: ``sky130_fd_pr__res_xhigh_po__base``), the resistor every cell resistor is drawn in.
RSHEET_OHM_PER_SQ = 2000.0
#: Its narrowest drawn width (um), ``sky130_fd_pr__res_xhigh_po_0p35``.
RES_WIDTH_UM = 0.35
#: MIM capacitor density (F/um^2), ``camimc`` of the typical corner (``res_typical__cap_typical__lin``).
CAP_DENSITY_F_PER_UM2 = 2.0e-15


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


class _CellFiles:
    """The cell file and its testbench, from the subcircuit name ``subckt``."""

    subckt: str

    @property
    def path(self) -> Path:
        """The cell file."""
        return cells_dir() / f"{self.subckt}.cir"

    @property
    def testbench(self) -> Path:
        """The cell's testbench, next to it."""
        return cells_dir() / f"tb_{self.subckt}.cir"


@dataclass(frozen=True)
class CellSpec(_CellFiles):
    """One transistor-level activation cell.

    Attributes
    ----------
    name : str
        Short name (``tanh``), the behavioral role ``act_<name>``.
    params : Mapping[str, float]
        Default parameters passed to the subcircuit (V, A, ohm, um as in its header).
    unit_current : Callable[[Mapping[str, float]], float]
        Current (A) that is one unit of f, from the parameters.
    ideal : Callable[[np.ndarray], np.ndarray]
        The ideal function the cell approximates.
    """

    name: str
    params: Mapping[str, float]
    unit_current: Callable[[Mapping[str, float]], float]
    ideal: Callable[[np.ndarray], np.ndarray]

    @property
    def subckt(self) -> str:
        """Subcircuit name (the behavioral twin's)."""
        return f"hwbp_act_{self.name}"

    def at_bias(self, ib_A: float | None) -> "CellSpec":
        """The cell biased at ``ib_A`` (A) instead of its default ``ib``: ``ib`` (and a unit
        current ``iu`` where the cell has one) scaled by ``ib_A / ib``; sizes, dividers and
        ``vu`` stay (the gate's load ``vu/ib`` follows in the cell file, so the units are
        kept).  ``None``: the cell as it is."""
        if ib_A is None:
            return self
        if not (isinstance(ib_A, (int, float)) and 1e-9 <= ib_A <= 1e-4):
            raise ConfigError(f"--act-bias {ib_A!r}: the activation cells' bias must be 1e-9..1e-4 A")
        p = dict(self.params)
        scale = float(ib_A) / p["ib"]
        p["ib"] *= scale
        if "iu" in p:
            p["iu"] *= scale
        return dataclasses.replace(self, params=p)

    def with_params(self, values: Mapping[str, float] | None) -> "CellSpec":
        """The cell with some of its parameters set (``values``: name -> value in the
        parameter's unit, V, ohm, um or a ratio as in the cell file's header); the bias
        ``ib`` (and ``iu``) is :meth:`at_bias`'s.  ``None`` or empty: the cell as it is.  A
        name the cell does not have, or a value that is not a positive finite number, is a
        :class:`ConfigError` that lists the valid names."""
        if not values:
            return self
        valid = [k for k in self.params if k not in ("ib", "iu")]
        p = dict(self.params)
        for k, v in values.items():
            if k not in valid:
                hint = " (set the bias with --act-bias)" if k in ("ib", "iu") else ""
                raise ConfigError(f"--act-param {k}: not a parameter of the {self.name} cell{hint}; "
                                  f"valid: {', '.join(valid)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ConfigError(f"--act-param {k}={v!r}: the {self.name} cell's parameter must be a positive number")
            p[k] = float(v)
        return dataclasses.replace(self, params=p)


def parse_act_params(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """``--act-param`` (``name=value,...``, SPICE suffixes allowed: ``rdiv=400k``) as a dict;
    a mapping is taken as it is, ``None`` is empty.  A malformed item is a one-line
    :class:`ConfigError`."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return dict(text)
    out: dict[str, float] = {}
    for item in (t.strip() for t in str(text).split(",")):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not (eq and name and value):
            raise ConfigError(f"--act-param {text!r}: {item!r} is not name=value (e.g. --act-param rt=8,vu=0.09375)")
        m = _NUM.fullmatch(value)
        if m is None:
            raise ConfigError(f"--act-param {name}={value!r}: not a number")
        out[name] = float(m.group(1)) * _SUFFIX.get((m.group(2) or "").lower(), 1.0)
        if out[name] <= 0:
            raise ConfigError(f"--act-param {name}={value}: must be a positive number")
    return out


def check_act_param_names(values: Mapping[str, float]) -> None:
    """A :class:`ConfigError` (listing the valid names) for a ``--act-param`` name that no
    activation cell has; whether each cell used has it is checked when the netlist is built."""
    valid = list(dict.fromkeys(k for c in CELLS.values() for k in c.params if k not in ("ib", "iu")))
    for k in values:
        if k not in valid:
            hint = " (set the bias with --act-bias)" if k in ("ib", "iu") else ""
            raise ConfigError(f"--act-param {k}: not a parameter of any activation cell{hint}; valid: {', '.join(valid)}")


_DP = {"vu": 0.125, "ib": 1e-6, "rdiv": 200e3, "w": 10.0, "l": 1.0, "wt": 2.0, "lt": 2.0, "wp": 8.0, "lp": 2.0}
CELLS: Mapping[str, CellSpec] = {
    # rt: the gate dividers' ratio, the pair gate's tension scale (hwbp_act_tanh.cir header)
    "tanh": CellSpec("tanh", {**_DP, "rt": 2.0}, lambda p: p["ib"], np.tanh),
    "sigmoid": CellSpec("sigmoid", dict(_DP), lambda p: 2 * p["ib"], _sigmoid),
    "relu": CellSpec("relu", {**_DP, "ib": 2e-6, "rs": 120e3, "iu": 1e-6, "w": 4.0},
                     lambda p: p["iu"], lambda a: np.maximum(a, 0.0)),
}


def get_cell(name: str) -> CellSpec:
    """The cell ``name``; a :class:`ConfigError` that lists the valid ones, or says what is
    missing (the cell file or its testbench), otherwise."""
    if name not in CELLS:
        raise ConfigError(f"--cells {name!r}: unknown cell; valid: {', '.join(CELLS)}")
    spec = CELLS[name]
    for what, p in (("cell file", spec.path), ("testbench", spec.testbench)):
        if not p.is_file():
            raise ConfigError(f"--cells {name}: its {what} {p.name} is missing from {p.parent}")
    return spec


_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_NUM = re.compile(r"(?<![A-Za-z_])(\d+\.?\d*(?:e[-+]?\d+)?)(meg|t|g|k|m|u|n|p|f)?(?![A-Za-z_0-9])", re.I)


def spice_number(expr: str, env: Mapping[str, float]) -> float:
    """Value of a SPICE parameter expression (``200k``, ``{2*rdiv}``, ``{vu/ib}``) in ``env``."""
    body = expr.strip().strip("{}").strip("'")
    body = _NUM.sub(lambda m: repr(float(m.group(1)) * _SUFFIX.get((m.group(2) or "").lower(), 1.0)), body)
    try:
        return float(eval(body, {"__builtins__": {}, "sqrt": math.sqrt, "atanh": math.atanh}, dict(env)))  # noqa: S307 (arithmetic of shipped cells)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"cell parameter expression {expr!r}: {exc}") from None


def _subckts(text: str) -> dict[str, tuple[list[str], dict[str, str], list[str]]]:
    out, cur = {}, None
    for line in text.splitlines():
        toks = line.split()
        if not toks or toks[0].startswith("*"):
            continue
        if toks[0].lower() == ".subckt":
            head = line.split("params:")
            names = head[0].split()[1:]
            defaults = dict(kv.split("=") for kv in (head[1].split() if len(head) > 1 else []))
            cur = names[0]
            out[cur] = (names[1:], defaults, [])
        elif toks[0].lower().startswith(".ends"):
            cur = None
        elif cur is not None:
            out[cur][2].append(line)
    return out


def cell_area_um2(path: Path, subckt: str, params: Mapping[str, float]) -> dict[str, float]:
    """Device area (um^2) of one instance of ``subckt`` in ``path``: W*L of every
    transistor, resistors as xhigh_po strips (``R/RSHEET`` squares of ``RES_WIDTH_UM``),
    capacitors at the MIM density; PDK resistor and capacitor devices (``sky130_fd_pr__res_*``,
    ``__cap_*``) by their drawn W*L.  Returns ``{"mos": ..., "res": ..., "cap": ..., "total": ...}``."""
    defs = _subckts(path.read_text(encoding="ascii"))
    acc = {"mos": 0.0, "res": 0.0, "cap": 0.0}

    def walk(name: str, given: Mapping[str, str], env_outer: Mapping[str, float]) -> None:
        ports, defaults, lines = defs[name]
        env = {k: spice_number(v, env_outer) for k, v in defaults.items()}
        env.update({k: spice_number(v, env_outer) for k, v in given.items()})
        for line in lines:
            toks = line.split()
            kind = toks[0][0].lower()
            kv = dict(t.split("=", 1) for t in toks if "=" in t)
            plain = [t for t in toks if "=" not in t]
            if kind == "x" and plain[-1].startswith("sky130_fd_pr__"):
                part = "res" if "__res_" in plain[-1] else "cap" if "__cap_" in plain[-1] else "mos"
                acc[part] += spice_number(kv["W"], env) * spice_number(kv["L"], env)
            elif kind == "x":
                walk(plain[-1], kv, env)
            elif kind == "r":
                acc["res"] += spice_number(toks[3], env) / RSHEET_OHM_PER_SQ * RES_WIDTH_UM ** 2
            elif kind == "c":
                acc["cap"] += spice_number(toks[3], env) / CAP_DENSITY_F_PER_UM2

    walk(subckt, {k: repr(float(v)) for k, v in params.items()}, {})
    acc["total"] = acc["mos"] + acc["res"] + acc["cap"]
    return acc


@dataclass(frozen=True)
class BlockSpec(_CellFiles):
    """One transistor-level network cell other than an activation: the synapse, the node
    pair, the MSE loss port (``circuits/sky130/<subckt>.cir``, testbench ``tb_<subckt>.cir``).

    Attributes
    ----------
    name : str
        Short name (``synapse``, ``node``, ``loss``), as in ``--cells`` and ``--pdk-cells``.
    subckt : str
        Subcircuit name, the behavioral twin's.
    role : str
        The SPICE backend's cell role it replaces (``synapse``, ``neuron``, ``loss_mse``).
    params : Mapping[str, float]
        Default cell parameters (V, A, ohm, F, um as in the file's header).
    calib : Mapping[str, float]
        Constants the network's adapter programs the cell with, measured by its testbench
        on tt, 27 C (``hwbp characterize --pdk sky130 --cells NAME``): the synapse's weight
        map (``vtw`` V, ``tw``) and its current per unit of w*x at wmax = 1 (``iu_A``, A).
    quiescent_current_A : float
        Supply current at rest (A; vdd and, for the node pair, none), tt, 27 C, measured by
        the testbench (the test suite checks it against a fresh run).
    """

    name: str
    subckt: str
    role: str
    params: Mapping[str, float]
    calib: Mapping[str, float]
    quiescent_current_A: float


    @property
    def area_um2(self) -> float:
        """Device area of one instance at the default parameters (um^2, :func:`cell_area_um2`)."""
        return cell_area_um2(self.path, self.subckt, self.params)["total"]

    @property
    def quiescent_power_W(self) -> float:
        """Supply power at rest (W): vdd times :attr:`quiescent_current_A`."""
        from hwbp.pdk.sky130 import VDD_V

        return VDD_V * self.quiescent_current_A


#: The synapse, node pair and loss port (tt, 27 C figures from ``hwbp characterize --pdk sky130
#: --cells synapse,node,loss``; see each file's header for the design).
BLOCKS: Mapping[str, BlockSpec] = {
    "synapse": BlockSpec("synapse", "hwbp_synapse", "synapse",
                         {"vu": 0.125, "vwc": 0.6, "it": 1e-6, "kx": 0.08, "rdiv": 100e3, "w": 4.0, "l": 2.0,
                          "ww": 10.0, "lw": 1.0, "wt": 2.0, "lt": 2.0, "wp": 13.0, "lp": 2.0},
                         {"vtw": 0.1, "tw": 0.8, "iu_A": 8.286e-8}, 2.66e-6),
    "node": BlockSpec("node", "hwbp_neuron_pair", "neuron",
                      {"vu": 0.125, "r": 125e3, "c": 1e-12, "rw": 1.41}, {}, 0.0),
    "loss": BlockSpec("loss", "hwbp_loss_mse", "loss_mse",
                      {"vu": 0.125, "beta": 0.25, "iu": 1e-6, "ib": 1e-6, "kx": 0.75, "rdiv": 1e6, "rgm": 194e3,
                       "w": 4.0, "l": 2.0, "wt": 2.0, "lt": 2.0, "wp": 32.0, "lp": 2.0}, {}, 3.44e-6),
}


def get_block(name: str) -> BlockSpec:
    """The block ``name``; a :class:`ConfigError` that lists the valid ones, or says which of
    its files is missing, otherwise."""
    if name not in BLOCKS:
        raise ConfigError(f"--cells {name!r}: unknown cell; valid: {', '.join([*CELLS, *BLOCKS])}")
    spec = BLOCKS[name]
    for what, p in (("cell file", spec.path), ("testbench", spec.testbench)):
        if not p.is_file():
            raise ConfigError(f"--cells {name}: its {what} {p.name} is missing from {p.parent}")
    return spec
