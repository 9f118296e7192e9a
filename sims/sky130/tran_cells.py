"""``.tran`` of the tiny 4-8-3 tanh MLP at transistor level by ``--pdk-cells`` set: does it
converge, what it costs (CPU seconds of hwbp and ngspice), its 1 % settling time, and whether
the settled tensions match the ``.op`` of the same cells on the same sample.

    nice -n 15 .venv/bin/python sims/sky130/tran_cells.py [--cells SET ...] [-o DIR]

Each run is the spice backend of ``hwbp verify MODEL --backend spice --pdk sky130
--pdk-cells SET --analysis tran|op --random-batch 1`` (tt, 27 C, beta = 1, random initial
state seed 0; the backend's defaults otherwise: duration max(12L, 24) node pair R*C =
3 us, output step 1/20 of the pair's R*C, ngspice reltol 1e-7)
and is kept as JSON in ``DIR/runs/`` (reused on a later run; delete a file to redo it).
Writes ``DIR/tran_cells.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

#: The cell sets compared: the node pairs alone, the .tran default without synapses, every cell.
SETS = ("node", "act,node,loss", "act,syn,node,loss")


def _cpu() -> tuple[float, float]:
    c, s = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return c.ru_utime + c.ru_stime, s.ru_utime + s.ru_stime


def run(cells: str, analysis: str) -> dict[str, Any]:
    """One verify run of the tiny MLP (one sample) with ``cells`` at transistor level."""
    from hwbp.io import random_batch
    from hwbp.models import random_mlp
    from hwbp.verify.run import verify

    graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    batch = random_batch(graph, 1, seed=0)
    (c0, s0), w0 = _cpu(), time.time()
    v = verify(graph, batch, backend="spice", options={"pdk": "sky130", "pdk_cells": cells, "analysis": analysis,
                                                       "timeout_s": 7200.0})
    (c1, s1), w1 = _cpu(), time.time()
    st = v.report["settle"]
    out = {"cells": cells, "analysis": analysis, "ngspice_cpu_s": c1 - c0, "hwbp_cpu_s": s1 - s0, "wall_s": w1 - w0,
           "cosine": {k: float(m["cosine"]) for k, m in v.report["parameters"].items()},
           "supply_power_W": st.get("supply_power_W"), "tau_s": st.get("tau_s"),
           "tension": {k: np.asarray(t).ravel().tolist() for k, t in v.result.state.tension.items()}}
    if analysis == "tran":
        out.update(dt_tau=st["dt_tau"], duration_tau=st["duration_tau"], settling_time_1pct_s=st["settling_time_1pct_s"],
                   energy_per_sample_J=st["energy_per_sample_J"])
    return out


def cached(out_dir: Path, cells: str, analysis: str) -> dict[str, Any]:
    """:func:`run`, kept as ``out_dir/runs/<analysis>_<cells>.json``."""
    path = out_dir / "runs" / f"{analysis}_{cells.replace(',', '-')}.json"
    if path.is_file():
        return json.loads(path.read_text())
    print(f"running {analysis} {cells} ...", file=sys.stderr, flush=True)
    res = run(cells, analysis)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    return res


def tension_match(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest |tension difference| between two runs over every node, relative to the
    largest |tension| of ``b``."""
    diff = max(max(abs(x - y) for x, y in zip(a["tension"][k], b["tension"][k])) for k in b["tension"])
    scale = max(max(abs(y) for y in t) for t in b["tension"].values())
    return diff / scale


def _watts(p: float) -> str:
    """Supply power (W); a passive set's rounding residue (below 1 pW) reads 0."""
    return "0" if abs(p) < 1e-12 else f"{p:.3g}"


def markdown(rows: list[tuple[dict[str, Any], dict[str, Any]]], command: str) -> str:
    """The table of (tran, op) pairs."""
    from hwbp.provenance import machine

    out = ["# `.tran` of the tiny MLP at transistor level, by cell set", "", f"Produced by `{command}`.", "",
           f"Machine: {machine()} (shared with other jobs: CPU seconds, not wall time, compare).", "",
           "Tanh MLP 4-8-3 (random_mlp seed 0), MSE, one random sample (seed 0), beta = 1, tt, 27 C, random initial "
           "state (seed 0).  CPU: hwbp and its ngspice children, user + system.  Settled vs .op: the largest "
           "|tension difference| between the end of the `.tran` and the `.op` of the same cells, relative to the "
           "largest |tension|.", "",
           "| `--pdk-cells` | output step (s) | 1 % settling (s) | min cosine `.tran` | min cosine `.op` | "
           "settled vs `.op` | CPU `.tran` (s) | CPU `.op` (s) | P (W) |", "|" + "---|" * 9]
    for tr, op in rows:
        cpu_t = tr["ngspice_cpu_s"] + tr["hwbp_cpu_s"]
        cpu_o = op["ngspice_cpu_s"] + op["hwbp_cpu_s"]
        out.append(f"| `{tr['cells']}` | {tr['dt_tau'] * tr['tau_s']:.3g} | {tr['settling_time_1pct_s']:.4g} | "
                   f"{min(tr['cosine'].values()):.5f} | {min(op['cosine'].values()):.5f} | "
                   f"{tension_match(tr, op):.2e} | {cpu_t:.0f} | {cpu_o:.0f} | {_watts(tr['supply_power_W'])} |")
    base = {tr["cells"]: tr for tr, _ in rows}
    if "act,node,loss" in base and "act,syn,node,loss" in base:
        a, b = base["act,node,loss"], base["act,syn,node,loss"]
        dt = b["settling_time_1pct_s"] - a["settling_time_1pct_s"]
        ratio = (b["ngspice_cpu_s"] + b["hwbp_cpu_s"]) / (a["ngspice_cpu_s"] + a["hwbp_cpu_s"])
        out += ["", f"The transistor synapses lengthen the 1 % settling by {dt:.3g} s "
                f"({dt / b['dt_tau'] / b['tau_s']:.0f} output steps) and cost {ratio:.1f} times the CPU of "
                "`act,node,loss`.  The `.tran` CPU includes its supply `.op` (the power at the first sample)."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=list(SETS), metavar="SET", help="--pdk-cells sets to run")
    ap.add_argument("-o", "--out", default=str(ROOT / "sims" / "sky130" / "tran_cells"), metavar="DIR")
    a = ap.parse_args(argv)
    out = Path(a.out)
    rows = [(cached(out, c, "tran"), cached(out, c, "op")) for c in a.cells]
    cmd = "nice -n 15 .venv/bin/python sims/sky130/tran_cells.py" + (
        "" if a.cells == list(SETS) else " --cells " + " ".join(a.cells))
    (out / "tran_cells.md").write_text(markdown(rows, cmd))
    print(f"wrote {out / 'tran_cells.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
