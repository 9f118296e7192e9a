"""The network with transistor-level activation cells (``hwbp verify --backend spice --pdk
sky130``): the behavioral circuit of :mod:`hwbp.targets.spice` with every activation cell
(f and its gate f'(a)*T) replaced by its SKY130 twin from ``circuits/sky130/``.

Units and volts: the behavioral circuit works in units (1 V of a node = 1 unit, currents
1/R per unit).  Each transistor cell sits behind a linear adapter that states the scaling:
its inputs are ``V = vcm + vu * value`` (vu V per unit around vcm = 0.8 V), its f output
current is held at vcm and mirrored into the summing node as ``I / (I_unit * R)``, and its
gate voltage is read back as ``(V - vcm) / vu``.  The synapses, node pairs and the MSE loss
port are their SKY130 cells too (:mod:`hwbp.pdk.adapters`), as chosen by ``--pdk-cells``
(:data:`PDK_CELLS`; default :data:`PDK_DEFAULT`, all four, see there; for ``.tran``
:data:`PDK_DEFAULT_TRAN`, whose initial state a transistor node pair takes on its capacitor
nodes, :attr:`Circuit.ic_nodes`); the adapters are ideal controlled sources, the node pair's
drives limited to the supply rails.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from hwbp.errors import ConfigError
from hwbp.pdk.adapters import NODE_DRIVE_NOTE
from hwbp.pdk.cells import CELLS, get_block, get_cell, parse_act_params
from hwbp.pdk.sky130 import VCM_V, VDD_V, find_models, spiceinit
from hwbp.targets.spice.model import Cell, Circuit, Section, SpiceOptions, SynapseArray

__all__ = ["pdk_circuit", "pdk_spice_options", "adapter_text", "SUPPLIES", "PDK_CELLS", "PDK_DEFAULT",
           "PDK_DEFAULT_TRAN", "pdk_cell_set"]

#: What ``--pdk-cells`` may name: the activation cells (f and gate), the synapses (forward
#: and backward, and the input synapses), the node pairs, the MSE loss port.
PDK_CELLS = ("act", "syn", "node", "loss")
#: The default set for ``.op``: all four.  Each kind alone, act,syn,loss, act,node,loss and
#: all four meet cosine >= 0.99 on the 4-8-3 MLP (tests/test_pdk_blocks.py,
#: tests/test_pdk_network.py, docs/transistor-level.md).  The synapses bring ~23 devices
#: each, so a network's .op takes minutes of CPU with them: large networks are solved
#: partitioned (--pdk-solve auto, the default, above 200 synapses: :mod:`hwbp.pdk.partition`)
#: or name fewer kinds (--pdk-cells act,node,loss).
PDK_DEFAULT = PDK_CELLS
#: The default set for ``.tran``: all four, as for ``.op``.  On the 4-8-3 MLP (one sample) the
#: run with the transistor synapses converges, its settled tensions match the ``.op`` to
#: 1.3e-6 and it costs 102 s of CPU against 29 s for act,node,loss, 1.5 times its own ``.op``;
#: the synapses (10-90 % rise ~50 ns) lengthen the 1 % settling from 1.41 to 1.46 us
#: (sims/sky130/tran_cells/tran_cells.md).  A transistor node pair takes its initial state on its
#: capacitor nodes (tests/test_pdk_network.py, docs/transistor-level.md).
PDK_DEFAULT_TRAN = PDK_CELLS

#: Names of the supply sources the netlist adds: vdd (1.8 V) and vcm (0.8 V).
SUPPLIES = ("vsky130_vdd", "vsky130_vcm")
#: ngspice tolerances for BSIM4 circuits: a relative 1e-7 and 1 fA, 1 nV absolute (the
#: behavioral defaults, 1e-9 / 1e-15 A / 1e-12 V, are below what the device models resolve).
PDK_TOLERANCES = {"reltol": 1e-7, "abstol_a": 1e-15, "vntol_v": 1e-9}


def adapter_text(name: str, ib_A: float | None = None, params: str | Mapping[str, float] | None = None) -> str:
    """The file that replaces ``hwbp_act_<name>``: the SKY130 cell (its subcircuits renamed
    ``sky130_act_<name>...``) and a wrapper with the behavioral ports and the unit scaling;
    ``ib_A``: the cell's bias current (A; default the cell's, :meth:`CellSpec.at_bias`);
    ``params``: other cell parameters (``--act-param``, :meth:`CellSpec.with_params`)."""
    spec = get_cell(name).with_params(parse_act_params(params)).at_bias(ib_A)
    body = spec.path.read_text(encoding="ascii").replace(f"hwbp_act_{name}", f"sky130_act_{name}")
    vu, iu = spec.params["vu"], spec.unit_current(spec.params)
    params = " ".join(f"{k}={v!r}" for k, v in spec.params.items())
    wrapper = [
        f"* adapter: behavioral units <-> volts around vcm ({VCM_V} V), vu = {vu!r} V/unit, "
        f"unit current {iu!r} A",
        f".subckt hwbp_act_{name} a tn fd gate",
        f"Ea ax vcm a 0 {vu!r}",
        f"Et tx vcm tn 0 {vu!r}",
        "Vfx fx vcm 0",
        f"Ff 0 fd Vfx {{1/({iu!r}*hwbp_r)}}",
        f"Eg gate 0 gx vcm {1.0 / vu!r}",
        f"Xc ax tx fx gx sky130_act_{name} {params}",
        f".ends hwbp_act_{name}",
    ]
    return body + "\n".join(wrapper) + "\n"


def pdk_cell_set(text: str | None, analysis: str = "op") -> tuple[str, ...]:
    """The transistor-level cell kinds of ``--pdk-cells`` (comma-separated names of
    :data:`PDK_CELLS`; None: :data:`PDK_DEFAULT` for ``.op``, :data:`PDK_DEFAULT_TRAN` for ``.tran``)."""
    if text is None:
        return PDK_DEFAULT if analysis == "op" else PDK_DEFAULT_TRAN
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [t for t in items if t not in PDK_CELLS]
    if bad or not items:
        raise ConfigError(f"--pdk-cells {text!r}: {'unknown ' + ', '.join(bad) if bad else 'empty'}; "
                          f"valid: comma-separated {', '.join(PDK_CELLS)}")
    return tuple(k for k in PDK_CELLS if k in items)


def _swap_blocks(circuit: Circuit, kinds: tuple[str, ...], beta: float) -> tuple[list[Cell], list[Section], float]:
    """The synapse, node and loss cells of ``kinds`` as SKY130 cells behind their adapters,
    the sections with the synapse arrays as cell instances, and the full-scale weight."""
    from hwbp.pdk.adapters import input_synapse_text, loss_text, node_text, synapse_text

    cells: list[Cell] = []
    sections = list(circuit.sections)
    wmax = 0.0
    if "syn" in kinds:
        sections = []
        roles = set()
        for sec in circuit.sections:
            items = []
            for it in sec.items:
                if isinstance(it, SynapseArray):
                    if it.backward_s is not None:
                        raise ConfigError("--pdk-cells syn: a device instance's synapses are not transistor cells")
                    w = np.abs(it.conductance_s if it.mask is None else it.conductance_s[it.mask])
                    wmax = max(wmax, float(w.max(initial=0.0)) * circuit_r(circuit))
                    roles.add("synapse" if it.gate is not None else "input_synapse")
                    it = dataclasses.replace(it, flat=False)
                items.append(it)
            sections.append(dataclasses.replace(sec, items=tuple(items)))
        if "synapse" in roles:
            cells.append(Cell("synapse", "hwbp_synapse", 4, "hwbp_synapse.cir", synapse_text()))
        if "input_synapse" in roles:
            cells.append(Cell("input_synapse", "hwbp_synapse_fwd", 2, "hwbp_synapse_fwd.cir",
                              input_synapse_text(with_cell="synapse" not in roles)))
    if "node" in kinds:
        cells.append(Cell("neuron", "hwbp_neuron_pair", 6, "hwbp_neuron_pair.cir", node_text()))
    if "loss" in kinds and any(c.role == "loss_mse" for c in circuit.cells):
        cells.append(Cell("loss_mse", "hwbp_loss_mse", 3, "hwbp_loss_mse.cir", loss_text(beta)))
    return cells, sections, wmax


def _pair_ic_nodes(sections: list[Section]) -> dict[str, tuple[str, float, float]]:
    """``.tran``'s initial state on the transistor node pairs: each pair's x+ and x- port
    (units) -> its capacitor node inside the adapter (``<instance>.px``, ``.mx``) at
    ``vcm + vu * x``."""
    from hwbp.targets.spice.model import Element

    vu = get_block("node").params["vu"]
    out: dict[str, tuple[str, float, float]] = {}
    for sec in sections:
        for it in sec.items:
            if isinstance(it, Element) and it.value.split()[:1] == ["hwbp_neuron_pair"]:
                inst = it.name.lower()
                out[it.nodes[0]] = (f"{inst}.px", VCM_V, vu)
                out[it.nodes[1]] = (f"{inst}.mx", VCM_V, vu)
    return out


def circuit_r(circuit: Circuit) -> float:
    """The circuit's node resistance ``hwbp_r`` (ohm)."""
    return float(dict(circuit.params)["hwbp_r"])


def pdk_spice_options(spice: SpiceOptions, opts: Any) -> SpiceOptions:
    """``spice`` with the tolerances for device models (unless the user set them) and the
    ``pair`` realization."""
    kw = {k: v for k, v in PDK_TOLERANCES.items() if getattr(opts, k, None) is None}
    # a circuit meant to be built realizes the conjugate pair (x+ and x- as the RC nodes)
    return dataclasses.replace(spice, realization="pair", **kw)


def pdk_circuit(circuit: Circuit, opts: Any) -> Circuit:
    """``circuit`` with its activation cells, synapses, node pairs and MSE loss port at
    transistor level, as ``--pdk-cells`` chooses (``opts``: the backend's ``pdk``,
    ``pdk_root``, ``corner``, ``temp_c``, ``mc_seed``, ``pdk_cells``, ``act_bias_A``, ``act_params``,
    ``analysis``)."""
    if opts.pdk != "sky130":
        raise ConfigError(f"--pdk {opts.pdk!r}: unknown PDK; valid: sky130")
    lib = find_models(opts.pdk_root)
    section = opts.corner if opts.mc_seed is None else f"{opts.corner}_mm"
    kinds = pdk_cell_set(getattr(opts, "pdk_cells", None), getattr(opts, "analysis", "op"))
    beta = float(dict(circuit.params).get("hwbp_beta", "1"))
    swapped, sections, wmax = _swap_blocks(circuit, kinds, beta)
    replaced = {c.role for c in swapped}
    cells = []
    for c in circuit.cells:
        act = c.role[4:] if c.role.startswith("act_") else None
        if c.role in replaced:
            continue
        if act is None or act == "identity" or "act" not in kinds:
            cells.append(c)
        elif act in CELLS:
            cells.append(Cell(c.role, c.name, c.ports, c.filename, adapter_text(act, getattr(opts, "act_bias_A", None),
                                                                         getattr(opts, "act_params", None))))
        else:
            raise ConfigError(f"--pdk sky130: no transistor-level cell for activation {act!r} "
                              f"(cells: {', '.join(CELLS)})")
    cells += swapped
    header = circuit.header + (
        f"transistor level: {', '.join(kinds)} cells from circuits/sky130/ on SKY130 {section}, {opts.temp_c:g} C"
        + ("" if opts.mc_seed is None else f", Monte Carlo seed {opts.mc_seed}"),
        f"units and volts: cell inputs vcm + vu*value (vcm = {VCM_V} V, vu per cell), f currents in the "
        f"cell's unit current, gates (V - vcm)/vu; supply {VDD_V} V",
    ) + ((f"synapses: the weight w = g*hwbp_r programmed as the cell's stored vw = vtw*atanh(tw*w/wmax), "
          f"full scale wmax = {wmax:.6g} (the largest |w|)",) if "syn" in kinds else ()) + (
        ("node pairs: " + " ".join(NODE_DRIVE_NOTE),) if "node" in kinds else ())
    params = circuit.params + ((("hwbp_wmax", repr(max(wmax, 1e-6))),) if "syn" in kinds else ())
    preamble = (() if opts.mc_seed is None else (f".option seed={int(opts.mc_seed)}",)) + (f'.lib "{lib}" {section}', f".temp {opts.temp_c:g}", ".global vdd vcm",
                f"{SUPPLIES[0]} vdd 0 {VDD_V}", f"{SUPPLIES[1]} vcm 0 {VCM_V}")
    return dataclasses.replace(circuit, header=header, cells=tuple(cells), preamble=preamble, params=params,
                               sections=tuple(sections), ic_nodes=_pair_ic_nodes(sections) if "node" in kinds else {},
                               run_files=MappingProxyType({".spiceinit": spiceinit(opts.mc_seed)}))


def supply_report(circuit: Circuit, stimulus: dict, timeout_s: float, executable: str | None = None,
                  settling_time_s: float | None = None) -> dict[str, Any]:
    """Supply power of the transistor cells at the operating point of one sample (an extra
    ``.op`` that saves every vector), and with a settling time (s) the energy per sample.

    Returns
    -------
    dict
        ``supply_power_W`` (vdd and vcm sources), ``supply_current_A`` (vdd), and, given
        ``settling_time_s``, ``settling_time_1pct_s`` and ``energy_per_sample_J`` = power *
        settling time.  The behavioral node and synapse resistors are not counted.
    """
    from hwbp.targets.spice.jobs import Job, run_job
    from hwbp.targets.spice.writer import get_writer

    commands = ["set noaskquit", "set filetype=binary", "op", "write @RAW@", "quit 0"]
    deck = get_writer().write(circuit, stimulus=stimulus, analyses=(), save=(), control=commands)
    res = run_job(Job({**circuit.run_files, "deck.cir": deck}, "deck.cir", ".op", circuit.title, False, timeout_s,
                      executable))
    vec = res.plots[0].vectors
    i_vdd = -float(vec[f"i({SUPPLIES[0]})"][0])
    i_vcm = -float(vec[f"i({SUPPLIES[1]})"][0])
    out: dict[str, Any] = {"supply_current_A": i_vdd, "supply_power_W": VDD_V * i_vdd + VCM_V * i_vcm}
    if settling_time_s is not None:
        out["settling_time_1pct_s"] = settling_time_s
        out["energy_per_sample_J"] = out["supply_power_W"] * settling_time_s
    return out
