"""Transistor-level points of the trade-off study (``tradeoff.py``): one ``hwbp verify
--backend spice --pdk sky130`` run of a model at one bias current and one node capacitance,
and the activation cells' own testbench at that bias current.

The bias current is the cells' ``ib`` parameter (A; the tail current of each differential
pair, :meth:`hwbp.pdk.cells.CellSpec.at_bias`), the spice backend's ``act_bias_A``
(``--act-bias``) and ``plan(..., ib_A=)`` of the characterization; the node
capacitance is the spice backend's ``c_f`` (F; node resistance ``r_ohm`` fixed at its
default 1 kOhm, so tau = R*C).  Each point is written to its own JSON file and reused on a
later run (the transistor-level digits MLP costs minutes of CPU per point).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
if str(Path(__file__).resolve().parent) not in sys.path:  # tradeoff_settle, in a Dask worker too
    sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The models of the study: the digits MLP (cross-entropy, one random sample) and the tiny
#: 4-8-3 tanh MLP (MSE, one random sample) that tests and the settling check use.
MODELS = ("digits", "tiny")
#: Bias current of the shipped cells (A): the point every other scaling is relative to.
IB0_A = 1e-6
#: ngspice reltol of the study's ``.tran`` runs: a 1 % settling time needs far less than the
#: backend's default 1e-7 (kept for the 1e-6 conformance of the final state), and the BSIM
#: cells make every time step costly.
TRAN_RELTOL = 1e-4


def model_and_batch(model: str) -> tuple[Any, Any]:
    """The graph (with its loss) and the one-sample batch of ``model`` (:data:`MODELS`)."""
    from hwbp.io import load_model, random_batch
    from hwbp.models import random_mlp

    if model == "digits":
        graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    elif model == "tiny":
        graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    else:
        raise ValueError(f"model {model!r}: valid {MODELS}")
    return graph, random_batch(graph, 1, seed=0)


def point_name(model: str, analysis: str, ib_A: float, c_F: float, beta: float) -> str:
    """File stem of one point."""
    return f"{model}_{analysis}_ib{ib_A:.3g}_C{c_F:.3g}_beta{beta:g}"


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_point(model: str, analysis: str, ib_A: float, c_F: float, beta: float, duration_tau: float | None,
              step_tau: float | None = None, tran_reltol: float = TRAN_RELTOL,
              timeout_s: float = 5400.0) -> dict[str, Any]:
    """One transistor-level verify run: the graph of ``model`` at bias ``ib_A`` (A) and node
    capacitance ``c_F`` (F), ``.op`` or ``.tran`` (over ``duration_tau`` units of tau = R*C,
    output every ``step_tau``),
    tt, 27 C, at ``beta``.  Returns the cosine and rel_err per tensor, the power (W), the 1 %
    settling time (s) and energy (J) of ``.tran``, and the CPU seconds spent (hwbp and
    ngspice).  ``.tran`` runs at ngspice reltol ``tran_reltol`` and also returns its output step and
    duration (s) and the summary of its waveforms (:func:`tradeoff_settle.trace_summary`)."""
    from hwbp.verify.run import verify

    graph, batch = model_and_batch(model)
    # the activation cells at transistor level (the .tran path runs on the behavioral node pair)
    opts = {"pdk": "sky130", "pdk_cells": "act", "analysis": analysis, "c_f": c_F, "timeout_s": timeout_s}
    if duration_tau is not None:
        opts["duration"] = duration_tau
    if analysis == "tran":
        opts["tran_reltol"] = tran_reltol
    if step_tau is not None:
        opts["step"] = step_tau
    c0, s0, w0 = _children_cpu_s(), _self_cpu_s(), time.time()
    res = verify(graph, batch, backend="spice", options={**opts, "act_bias_A": ib_A}, beta=beta)
    settle = res.report["settle"]
    tensors = {k: {"cosine": float(m["cosine"]), "rel_err": float(m["rel_err"])}
               for k, m in res.report["parameters"].items()}
    out = {"model": model, "analysis": analysis, "ib_A": ib_A, "c_F": c_F, "r_ohm": settle["r_ohm"],
           "tau_s": settle["tau_s"], "beta": beta, "tran_reltol": tran_reltol if analysis == "tran" else None, "duration_tau": settle.get("duration_tau"), "step_tau": settle.get("dt_tau"),
           "tensors": tensors, "min_cosine": min(t["cosine"] for t in tensors.values()),
           "supply_power_W": settle["supply_power_W"], "supply_current_A": settle["supply_current_A"],
           "settling_time_1pct_s": settle.get("settling_time_1pct_s"),
           "energy_per_sample_J": settle.get("energy_per_sample_J"),
           "ngspice_cpu_s": _children_cpu_s() - c0, "hwbp_cpu_s": _self_cpu_s() - s0, "wall_s": time.time() - w0}
    out["tension_rms"] = {k: float((v ** 2).mean() ** 0.5) for k, v in res.result.state.tension.items()}
    if analysis == "tran":
        from tradeoff_settle import trace_summary

        out["step_s"] = settle["dt_tau"] * settle["tau_s"]
        out["duration_s"] = settle["duration_tau"] * settle["tau_s"]
        out["trace"] = trace_summary(res.result.trace, settle["tau_s"])
    return out


def op_from_report(path: Path, ib_A: float) -> dict[str, Any]:
    """A model ``.op`` point read from a ``hwbp verify --report`` JSON of the same run
    (``--backend spice --pdk sky130``, tt, 27 C, cells at ``ib_A``)."""
    d = json.loads(Path(path).read_text())
    settle = d["settle"]
    tensors = {k: {"cosine": float(m["cosine"]), "rel_err": float(m["rel_err"])} for k, m in d["parameters"].items()}
    return {"model": d["model"], "analysis": settle["mode"], "ib_A": ib_A, "c_F": settle["c_f"], "beta": d["beta"],
            "tensors": tensors, "min_cosine": min(t["cosine"] for t in tensors.values()),
            "supply_power_W": settle["supply_power_W"], "supply_current_A": settle["supply_current_A"],
            "source": str(Path(path).name), "reused": True}


def cell_point(ib_A: float) -> dict[str, Any]:
    """The tanh cell's testbench at bias ``ib_A`` (A), tt, 27 C (``hwbp characterize``'s
    code): its power (W), area (um^2), time constant (s) and f/gate gains."""
    from hwbp.pdk.characterize import plan, run_all

    (row, _), = run_all(plan(["tanh"], ["tt"], [27.0], 0, ib_A=ib_A), workers=1, progress=False)
    return {"ib_A": ib_A, **{k: (float(v) if isinstance(v, (int, float)) else v) for k, v in row.items()}}


def cached(path: Path, fn: Any, *args: Any) -> dict[str, Any]:
    """``fn(*args)``, read from ``path`` when it exists, else computed and written there
    (with ``"reused": False``; a read one carries ``"reused": True``)."""
    if path.is_file():
        data = json.loads(path.read_text())
        data["reused"] = True
        return data
    data = fn(*args)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    data["reused"] = False
    return data
