"""The partitioned DC solve of a network with transistor synapses (``--pdk-solve partitioned``).

Every transistor synapse sits behind ideal adapters (:mod:`hwbp.pdk.adapters`): its inputs are
voltage-controlled sources reading the behavioral nodes ``pre`` and ``gate`` (no current drawn
from them), and its output currents are held at vcm and injected into the summing nodes
``post`` and ``sens`` by current-controlled sources (the same current at any node voltage).
So each synapse instance is a pure function of its two input voltages, isolated from every
other cell: the network's operating point is the fixed point of

- the *network deck*: the circuit with every synapse array replaced by held currents, one
  source per summing node (a voltage ``Vh_<node>`` in units read by ``Gh_<node>`` of
  gain 1/R: the held current in A is that voltage / R); the activation cells, node pairs and
  loss port stay as they are.  Parsed once and re-solved in one persistent ngspice
  (:class:`~hwbp.targets.spice.session.Session`): expanding the SKY130 subcircuits is most
  of a one-shot run's time;
- the *synapse decks*: ONE instance of the synapse cell (the same subcircuit; its two
  stored-weight sources read the swept nodes ``hwbp_vwp``, ``hwbp_vwm`` instead of the
  instance parameter) swept over an array's synapses as a ``.dc`` sweep: per point the
  synapse's inputs and weight as ``pwl`` sources of the sweep index, each point solved
  from the previous one, the summing nodes held by a resistor R to ground (the voltage is
  the injected current times R, in units, the value the network deck takes back); at most
  ``group`` points per ngspice process.  ngspice's subcircuit expansion grows about as the
  square of the instance count (measured: 25 synapses 15 s, 50 synapses 57 s, ~16 MB
  each), so one instance swept is what makes thousands of synapses affordable.  It is the
  same DC equations only for nominal devices: a Monte Carlo draw (``--mc-seed``) gives
  every instance its own, and is refused.

Gauss-Seidel by synapse array: a *sweep* visits the arrays in forward order, then backward
(the forward currents first, then the backward ones, as the network's signals flow), each
visit a network solve with the held currents (when they changed since the last one) and an
evaluation of the array at its new inputs (skipped when its inputs are bit for bit the ones it
was last evaluated at: the input synapses after their first visit).  The solve stops after
the first sweep in which no evaluation changed a held current by more than ``tol`` times the
largest held current (units); it then is the monolithic ``.op``'s fixed point to the solver's
tolerance (tests/test_pdk_partition.py compares the two).  Each evaluation's sweeps run as
tasks on the runner's pool (local threads or a Dask cluster, :mod:`hwbp.targets.spice.jobs`)
with a progress bar.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hwbp.errors import BackendError, ConfigError
from hwbp.pdk.sky130 import VCM_V, VDD_V
from hwbp.pdk.solve import PARTITION_GROUP, PARTITION_SWEEPS, PARTITION_TOL, SYNAPSE_CELLS, is_transistor_synapse
from hwbp.targets.spice.model import Circuit, Element, Section, SynapseArray

__all__ = ["Block", "Partition", "split_circuit", "partitioned_op"]

#: Gain (V/A) of the supply-current probes of a synapse deck.
_PROBE_V_PER_A = 1e3
_PROBES = (("hwbp_ivdd", "vsky130_vdd"), ("hwbp_ivcm", "vsky130_vcm"))


@dataclass(frozen=True)
class Block:
    """One transistor synapse array: its instances, the nodes it reads (``inputs``: pre and
    gate nodes) and the summing nodes it drives (``outputs``: post and sens nodes)."""

    array: SynapseArray
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def name(self) -> str:
        """The array's instance prefix without the ``Xs_`` (e.g. ``fc2_0``)."""
        return self.array.prefix[3:]


@dataclass(frozen=True)
class Partition:
    """A circuit cut at its synapses: the network deck with held currents, the synapse
    blocks, and every summing node (the held sources, in this order)."""

    network: Circuit
    blocks: tuple[Block, ...]
    held: tuple[str, ...]
    source: Circuit


def _block_nodes(a: SynapseArray) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The input and output nodes of a synapse array, each once, in array order."""
    inputs = list(a.pre) + list(a.gate or ())
    outputs = list(a.post) + list(a.sens or ())
    return tuple(dict.fromkeys(inputs)), tuple(dict.fromkeys(outputs))


def split_circuit(circuit: Circuit) -> Partition:
    """Cut ``circuit`` (a :func:`hwbp.pdk.network.pdk_circuit` with ``syn``) at its synapse
    arrays; raise :class:`ConfigError` if it has no transistor synapses."""
    blocks: list[Block] = []
    sections = []
    for sec in circuit.sections:
        kept = []
        for it in sec.items:
            if is_transistor_synapse(it):
                inputs, outputs = _block_nodes(it)
                if set(inputs) & set(outputs):
                    raise BackendError(f"--pdk-solve partitioned: synapse array {it.prefix} reads a node it drives")
                blocks.append(Block(it, inputs, outputs))
            else:
                kept.append(it)
        sections.append(dataclasses.replace(sec, items=tuple(kept)))
    if not blocks:
        raise ConfigError("--pdk-solve partitioned: the circuit has no transistor synapses; give --pdk-cells "
                          "with syn (e.g. act,syn,node,loss) or --pdk-solve monolithic")
    held = tuple(dict.fromkeys(n for b in blocks for n in b.outputs))
    g = 1.0 / float(dict(circuit.params)["hwbp_r"])
    items: list[Element] = []
    for n in held:
        items += [Element(f"Vh_{n}", (f"hwbp_h_{n}", "0"), "DC 0"), Element(f"Gh_{n}", ("0", n, f"hwbp_h_{n}", "0"),
                                                                           repr(g))]
    items += [Element(f"H{node[5:]}", (node, "0"), f"{src} {_PROBE_V_PER_A!r}") for node, src in _PROBES]
    sections.append(Section("held synapse currents (V(hwbp_h_<node>) units, injected as that / hwbp_r A); supply "
                            "probes", tuple(items)))
    network = dataclasses.replace(
        circuit, sections=tuple(sections), cells=tuple(c for c in circuit.cells if c.name not in SYNAPSE_CELLS),
        header=circuit.header + ("partitioned solve: the network deck, every synapse array replaced by its held "
                                 "currents",))
    return Partition(network, tuple(blocks), held, circuit)


def _swept_cells(p: Partition) -> tuple:
    """The synapse cells with the stored weight on global nodes: the cell's weight sources
    ``Vwp wp 0 {vwc+vw/2}``, ``Vwm wm 0 {vwc-vw/2}`` become unit-gain copies of
    ``hwbp_vwp``, ``hwbp_vwm`` (the same ideal source, its value swept per synapse)."""
    cells, found = [], 0
    for c in p.source.cells:
        if c.name in SYNAPSE_CELLS:  # the cell's body is in one of the two files
            text = c.text
            for a, b in (("Vwp wp 0 {vwc+vw/2}", "Ewp wp 0 hwbp_vwp 0 1"),
                         ("Vwm wm 0 {vwc-vw/2}", "Ewm wm 0 hwbp_vwm 0 1")):
                found += text.count(a)
                text = text.replace(a, b)
            cells.append(dataclasses.replace(c, text=text))
    if found != 4:  # the full synapse's and the forward half's two weight sources
        raise BackendError(f"--pdk-solve partitioned: the synapse cell's weight sources (Vwp wp 0 {{vwc+vw/2}}, Vwm "
                           f"wm 0 {{vwc-vw/2}} in sky130_synapse and sky130_synapse_fwd) found {found} times, not 4")
    return tuple(cells)


def _instances(block: Block) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of ``block``'s synapse instances (row-major)."""
    a = block.array
    mask = np.ones(a.conductance_s.shape, bool) if a.mask is None else np.asarray(a.mask, bool)
    return np.nonzero(mask)


def _sweep_deck(p: Partition, block: Block) -> Circuit:
    """The synapse deck of ``block``'s cell: one instance, its inputs and stored weight as
    sources swept over the synapses (a ``.dc`` sweep, each point solved from the previous
    one), its summing nodes held by ``hwbp_r`` to ground, the supplies probed."""
    full = block.array.gate is not None
    ports = ("pre", "post", "gate", "sens") if full else ("pre", "post")
    items: list[Element] = [Element(f"Vi_{n}", (n, "0"), "DC 0") for n in (("pre", "gate") if full else ("pre",))]
    items += [Element("Vw_p", ("hwbp_vwp", "0"), "DC 0"), Element("Vw_m", ("hwbp_vwm", "0"), "DC 0")]
    items += [Element(f"Rh_{n}", (n, "0"), "{hwbp_r}") for n in (("post", "sens") if full else ("post",))]
    items += [Element(f"H{node[5:]}", (node, "0"), f"{src} {_PROBE_V_PER_A!r}") for node, src in _PROBES]
    items.append(Element("Xsyn", ports, f"{block.array.cell} g=0"))
    return dataclasses.replace(
        p.source, title=f"{p.source.title} synapses {block.name}", sections=(Section("one synapse", tuple(items)),),
        cells=_swept_cells(p), preamble=p.source.preamble + (".global hwbp_vwp hwbp_vwm",), inputs={}, targets=(),
        nodes={}, gates={}, state={}, ic_nodes={},
        header=p.source.header + ("partitioned solve: one synapse swept over the array's synapses (inputs and stored "
                                  "weight as sources), summing nodes held by hwbp_r to ground (V = current * hwbp_r)",))


def _weights(p: Partition, block: Block, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored weight's gate voltages (V) of each instance: vwc +- vw/2, vw = vtw*atanh(tw*g*R/wmax)
    (the adapter's map, :func:`hwbp.pdk.adapters.synapse_text`)."""
    from hwbp.pdk.cells import get_block

    spec = get_block("synapse")
    params = dict(p.source.params)
    r, wmax = float(params["hwbp_r"]), float(params["hwbp_wmax"])
    vw = spec.calib["vtw"] * np.arctanh(spec.calib["tw"] * block.array.conductance_s[rows, cols] * r / wmax)
    return spec.params["vwc"] + vw / 2, spec.params["vwc"] - vw / 2


def _evaluate(p: Partition, b: Block, vin: np.ndarray, runner: Any, st: "_State", group: int, desc: str) -> np.ndarray:
    """Block ``b``'s output values (samples, outputs; units) at its input values ``vin``
    (samples, inputs; V), its synapses in groups of at most ``group`` sweep points per
    ngspice process, run as one pool of jobs; records its supply currents (A, sample 0)."""
    rows, cols = _instances(b)
    a, full = b.array, b.array.gate is not None
    vwp, vwm = _weights(p, b, rows, cols)
    idx = {n: k for k, n in enumerate(b.inputs)}
    pre = vin[:, [idx[a.pre[i]] for i in cols]]
    gate = vin[:, [idx[a.gate[j]] for j in rows]] if full else None
    n_s, n_syn = vin.shape[0], len(rows)
    points = [(s, k) for s in range(n_s) for k in range(n_syn)]
    deck = _sweep_deck(p, b)
    save = ["post"] + (["sens"] if full else []) + [node for node, _ in _PROBES]
    work = []
    for g0 in range(0, len(points), group):
        stims = []
        for s, k in points[g0:g0 + group]:
            st_k = {"Vi_pre": float(pre[s, k]), "Vw_p": float(vwp[k]), "Vw_m": float(vwm[k])}
            if full:
                st_k["Vi_gate"] = float(gate[s, k])
            stims.append(st_k)
        work.append((deck, stims, save))
    res = np.concatenate(runner.op_many(work, desc=desc), axis=0).reshape(n_s, n_syn, len(save))
    out_idx = {n: k for k, n in enumerate(b.outputs)}
    new = np.zeros((n_s, len(b.outputs)))
    for s in range(n_s):
        np.add.at(new[s], [out_idx[a.post[j]] for j in rows], res[s, :, 0])
        if full:
            np.add.at(new[s], [out_idx[a.sens[i]] for i in cols], res[s, :, 1])
    st.supply[b.name] = -res[0, :, -len(_PROBES):].sum(axis=0) / _PROBE_V_PER_A  # what each supply delivers (A)
    return new


@dataclass
class _State:
    """The iteration's state: per block its held output values (samples, outputs) in units,
    the inputs it was last evaluated at, and its last supply currents (A, sample 0)."""

    held: dict[str, np.ndarray]
    last_in: dict[str, np.ndarray | None]
    supply: dict[str, np.ndarray]


def partitioned_op(circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str], runner: Any, *,
                   tol: float = PARTITION_TOL, max_sweeps: int = PARTITION_SWEEPS, group: int = PARTITION_GROUP,
                   strict: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """The operating points of ``circuit`` (samples ``stimuli``), solved partitioned.

    Parameters
    ----------
    circuit : Circuit
        A transistor-level circuit with synapse cells (:func:`hwbp.pdk.network.pdk_circuit`).
    stimuli : sequence of mapping
        Per sample, the input and target source values (V).
    nodes : sequence of str
        The nodes to return (as :meth:`BatchRunner.op`).
    runner : BatchRunner
        Runs the synapse decks (its workers or Dask scheduler, timeout and ngspice); the
        network deck runs in one persistent ngspice process here
        (:class:`~hwbp.targets.spice.session.Session`).
    tol : float
        Convergence: the largest change of a held current in a sweep, relative to the
        largest held current.
    max_sweeps : int
        Most sweeps; more is a :class:`BackendError` (``strict``) or, with ``strict=False``,
        the state after them (a negative control).
    group : int
        Most synapse evaluations (sweep points) per ngspice process.

    Returns
    -------
    values : ndarray
        ``(len(stimuli), len(nodes))`` node voltages (V).
    facts : dict
        ``partition``: sweeps, synapse-array evaluations, network solves, the change per
        sweep and the final one, the tolerance, the group size and the wall time (s) of the
        network solves and of the synapse evaluations; ``supply_current_A`` and
        ``supply_power_W`` of sample 0 (the network deck's supplies plus every synapse's).
    """
    from hwbp.targets.spice.session import Session
    from hwbp.targets.spice.writer import get_writer

    if not (np.isfinite(tol) and tol > 0) or int(max_sweeps) < 1 or int(group) < 1:
        raise ConfigError(f"--pdk-solve partitioned: tolerance {tol!r} must be > 0, sweeps {max_sweeps!r} and group "
                          f"size {group!r} >= 1")
    p = split_circuit(circuit)
    n_s = len(stimuli)
    probes = [node for node, _ in _PROBES]
    save = list(dict.fromkeys(list(nodes) + [n for b in p.blocks for n in b.inputs] + probes))
    col = {n: k for k, n in enumerate(save)}
    st = _State({b.name: np.zeros((n_s, len(b.outputs))) for b in p.blocks}, {b.name: None for b in p.blocks},
                {b.name: np.zeros(2) for b in p.blocks})
    facts: dict[str, Any] = {"network_solves": 0, "evaluations": 0, "synapse_points": 0, "group_size": int(group),
                             "tol": tol, "changes": [], "network_wall_s": 0.0, "synapses_wall_s": 0.0}
    # noopiter: straight to gmin stepping, which these decks need anyway (the direct Newton
    # iteration fails after itl1 iterations, ~90 % of a re-solve's time on the digits MLP)
    deck = get_writer().write(p.network, stimulus=_network_stimuli(p, st, stimuli)[0], analyses=(), save=save,
                              extra_options={"noopiter": ""})
    with Session({**circuit.run_files, "net.cir": deck}, "net.cir", p.network.title, runner.timeout_s,
                 runner.executable) as net:

        def solve() -> np.ndarray:
            t0 = time.perf_counter()
            facts["network_solves"] += 1
            out = np.stack([net.op(s, save) for s in _network_stimuli(p, st, stimuli)])
            facts["network_wall_s"] += time.perf_counter() - t0
            return out

        values, stale, sweep, change = None, True, 0, np.inf
        order = list(p.blocks) + list(p.blocks)[::-1]
        while sweep < int(max_sweeps):
            sweep += 1
            worst = 0.0
            for b in order:
                if stale:
                    values, stale = solve(), False
                vin = values[:, [col[n] for n in b.inputs]]
                if st.last_in[b.name] is not None and np.array_equal(vin, st.last_in[b.name]):
                    continue
                t0 = time.perf_counter()
                new = _evaluate(p, b, vin, runner, st, int(group), f"sweep {sweep}: synapses {b.name}")
                facts["synapses_wall_s"] += time.perf_counter() - t0
                facts["evaluations"] += 1
                facts["synapse_points"] += b.array.count * n_s
                worst = max(worst, float(np.max(np.abs(new - st.held[b.name]), initial=0.0)))
                stale = stale or not np.array_equal(new, st.held[b.name])
                st.held[b.name], st.last_in[b.name] = new, vin
            scale = max(float(np.max(np.abs(h), initial=0.0)) for h in st.held.values())
            change = worst / max(scale, 1e-300)
            facts["changes"].append(change)
            if change <= tol:
                break
        else:
            if strict:
                raise BackendError(f"--pdk-solve partitioned: no convergence within {max_sweeps} sweeps (last change "
                                   f"{change:.3g} of the largest synapse current > tolerance {tol:g}); the circuit's "
                                   f"synapse loop does not settle")
        if stale:
            values = solve()
    facts.update(sweeps=sweep, final_change=change, converged=bool(change <= tol))
    net_supply = -values[0, [col[n] for n in probes]] / _PROBE_V_PER_A
    return values[:, [col[n] for n in nodes]], {"partition": facts, **_supply(net_supply, st)}


def _network_stimuli(p: Partition, st: _State, stimuli: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """Per sample, the network deck's sources: the stimulus and the held currents (units)."""
    total = {n: np.zeros(len(stimuli)) for n in p.held}
    for b in p.blocks:
        for k, n in enumerate(b.outputs):
            total[n] = total[n] + st.held[b.name][:, k]
    return [{**s, **{f"Vh_{n}": float(total[n][i]) for n in p.held}} for i, s in enumerate(stimuli)]


def _supply(net: np.ndarray, st: _State) -> dict[str, float]:
    """Supply current (vdd, A) and power (W) of sample 0: the network deck's (``net``: the
    current vdd and vcm deliver, A) at the final held currents plus every synapse's at its
    last inputs."""
    i_vdd = float(net[0]) + sum(float(s[0]) for s in st.supply.values())
    i_vcm = float(net[1]) + sum(float(s[1]) for s in st.supply.values())
    return {"supply_current_A": i_vdd, "supply_power_W": VDD_V * i_vdd + VCM_V * i_vcm}
