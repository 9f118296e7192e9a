"""The digits MLP with every cell at transistor level, for the trade-off study
(``tradeoff.py``): supply power, area, a derived settling time and energy per
sample-gradient, and the gradient cosine, from committed reports only (no ngspice).

Measured (committed ``hwbp verify ... --pdk-cells act,syn,node,loss --pdk-solve
partitioned`` reports, ``.op`` at the cells' default 1 uA tails): the whole network's supply
power and its cosine per tensor, with the default tanh sizing (``digits_tt_syn.json``) and
with ``--act-param rt=4,vu=0.104167`` (``digits_tt_syn_rt4.json``); the synapses alone
(``--pdk-cells syn``, ``digits_tt_syn_only.json``); the tanh cells alone (``digits_tt.json``).
The synapse cell's time constant is its testbench's (``sims/sky130/blocks/blocks.csv``), the
lengthening of the 1 % settling by the transistor synapses is the tiny MLP's ``.tran``
(``sims/sky130/tran_cells/runs``).

Derived: area = N per kind x the registered cell area (``hwbp.pdk.cells``; the node pair's
own 1 pF capacitors as drawn are in its area); the settling time = the act-only digits
``.tran`` at (1 uA, 1 pF) plus the synapses' delay, two ways (the tiny MLP's measured
lengthening; n_1% x tau_syn, the synapse as one more lag in series); energy = whole-network
power x that time.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SKY = ROOT / "sims" / "sky130"
#: The whole-network reports by tanh sizing, and the act-only and syn-only ones.
FULL_REPORTS = {"default": SKY / "digits_tt_syn.json", "rt=4,vu=0.104167": SKY / "digits_tt_syn_rt4.json"}
SYN_ONLY_REPORT = SKY / "digits_tt_syn_only.json"
ACT_ONLY_REPORT = SKY / "digits_tt.json"
BLOCKS_CSV = SKY / "blocks" / "blocks.csv"
TINY_TRAN = {"with": SKY / "tran_cells" / "runs" / "tran_act-syn-node-loss.json",
             "without": SKY / "tran_cells" / "runs" / "tran_act-node-loss.json"}


def synapse_counts(graph: Any) -> dict[str, int]:
    """Synapse cells of the network by kind: ``input`` (the first layer's, the cell's forward
    half, ``hwbp_synapse_fwd``) and ``full`` (the hidden and output layers', four ports)."""
    import numpy as np

    from hwbp.lower import lower
    from hwbp.targets.spice.build import build_circuit
    from hwbp.targets.spice.model import SynapseArray

    out = {"input": 0, "full": 0}
    for sec in build_circuit(lower(graph)).sections:
        for it in sec.items:
            if isinstance(it, SynapseArray):
                n = int(it.conductance_s.size if it.mask is None else np.sum(it.mask))
                out["full" if it.gate is not None else "input"] += n
    return out


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def whole_network(counts: dict[str, int], syn: dict[str, int], tran: dict[str, Any], n1: float,
                  digital: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the section from the committed files. ``counts``: ``cells`` (tanh) and
    ``nodes`` (node pairs); ``syn``: :func:`synapse_counts`; ``tran``: the act-only digits
    ``.tran`` run at (1 uA, 1 pF) (``tradeoff_runs``); ``n1``: the ideal network's 1 %
    settling time in units of tau; ``digital``: the study's batch-1 digital reference."""
    from hwbp.pdk.cells import cell_area_um2, get_block, get_cell, parse_act_params

    syn_only, act_only = _json(SYN_ONLY_REPORT), _json(ACT_ONLY_REPORT)
    with BLOCKS_CSV.open() as fh:
        blocks = {r["cell"]: r for r in csv.DictReader(fh)}
    tau_syn = float(blocks["synapse"]["tau_s"])
    tiny = {k: _json(p)["settling_time_1pct_s"] for k, p in TINY_TRAN.items()}
    tiny_extra = tiny["with"] - tiny["without"]
    t_act = tran["settling_time_1pct_s"]
    times = {"tiny": (t_act + tiny_extra, "derived: act-only digits `.tran` t₁% + the tiny MLP's measured lengthening"),
             "series": (t_act + n1 * tau_syn, "derived: act-only digits `.tran` t₁% + n₁%·τ_syn (one more lag)")}
    a_syn, a_node = get_block("synapse").area_um2, get_block("node").area_um2
    n_syn = syn["input"] + syn["full"]
    rows = []
    for sizing, path in FULL_REPORTS.items():
        rep = _json(path)
        opts = rep["backend_options"]
        tanh = get_cell("tanh").with_params(parse_act_params(opts.get("act_params"))).at_bias(1e-6)
        a_tanh = cell_area_um2(tanh.path, tanh.subckt, tanh.params)["total"]
        area = {"act": counts["cells"] * a_tanh, "syn": n_syn * a_syn, "node": counts["nodes"] * a_node}
        p = rep["settle"]["supply_power_W"]
        p_syn, p_act = syn_only["settle"]["supply_power_W"], act_only["settle"]["supply_power_W"]
        row = {"sizing": sizing, "report": path.name, "pdk_cells": opts["pdk_cells"], "node_C_F": get_block("node").params["c"],
               "power_W": p, "power_syn_only_W": p_syn, "power_act_only_W": p_act,
               "power_rest_W": p - p_syn - p_act, "area_tanh_um2": a_tanh, "area_syn_um2": a_syn,
               "area_node_um2": a_node, "area_mm2": sum(area.values()) * 1e-6,
               **{f"area_{k}_mm2": v * 1e-6 for k, v in area.items()},
               "min_cosine": rep["min_cosine"], "passed": rep["passed"],
               "act_only_min_cosine": act_only["min_cosine"], "t_act_only_s": t_act}
        for k, (t, src) in times.items():
            row[f"t_{k}_s"], row[f"t_{k}_src"] = t, src
            row[f"energy_{k}_J"] = p * t
            row[f"energy_{k}_over_cpu"] = p * t / digital["torch_J"]
            row[f"energy_{k}_over_accelerator"] = p * t / digital["accelerator_J"]
        rows.append(row)
    return {"rows": rows, "synapses": syn, "tau_syn_s": tau_syn, "tiny_extra_s": tiny_extra, "n1": n1,
            "tran_ib_A": tran["ib_A"], "tran_c_F": tran["c_F"]}
