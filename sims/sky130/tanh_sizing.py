"""Which sizing of the SKY130 tanh cell meets cosine >= 0.99 on every parameter tensor of
random tiny MLPs?  For the tanh MLP 4-8-3 (``random_mlp([4, 8, 3], seed=S)``, MSE, the random
batch of 2 of seed 0, as in tests/test_pdk_network.py) on tt, 27 C:

1. per sizing of the tanh cell (``--act-param`` / ``--act-bias``, :data:`SIZINGS`), its
   testbench on tt, 27 C (``hwbp characterize``'s code): f gain and slope at 0, f shape
   error, the gate's error against the derivative of the measured f at T = 0.25 and 1, its
   offset at T = 0, area and power;
2. per sizing and seed, the network with transistor-level activation cells (``--backend
   spice --pdk sky130 --pdk-cells act``): 1 - cosine per tensor against exact backprop of
   the nominal network, the largest hidden |a| and |T|;
3. for the default sizing, where the error comes from: the reference backend with the
   cell's measured curve and an exact derivative gate (the shape of f alone), and an ideal
   tanh computed as the pair gate f(a + T/rt) - f(a - T/rt) (the finite difference alone,
   which at tension scale rt is the rt = 2 gate at beta * 2 / rt);
4. with ``--all-cells S,...``: every cell at transistor level (``--pdk-cells
   act,syn,node,loss``) on those seeds, for the default and the recommended sizing;
5. with ``--mc N``: the default and the recommended cell's testbench on N Monte Carlo draws
   (tt_mm, 27 C): the spread of the gate's offset, which the tension scale raises; with
   ``--mc-seeds S,...`` the network of model seed 0 on those mismatch draws.

Writes ``tanh_sizing.{md,csv,png}`` and the run cache ``tanh_sizing_runs.json`` into ``-o DIR``
(default: this directory); a rerun takes cached runs from that file.

Usage::

    .venv/bin/python sims/sky130/tanh_sizing.py [--seeds 0-9] [--few-seeds 0-4] [--all-cells 2] [--mc 8] [--mc-seeds 1-5] [-o DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from hwbp.hardware import hardware_from_mapping  # noqa: E402
from hwbp.io import random_batch  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.pdk.cells import get_cell, parse_act_params  # noqa: E402
from hwbp.verify.run import verify  # noqa: E402

#: The 2*n*UT (V) the default cell is designed for: vu * 2/3 = 0.125 * 2/3.
PAIR_V = 0.125 * 2.0 / 3.0
#: (label, --act-param, --act-bias A, beta, what it tries).  ``vu=trim`` is set from the
#: default cell's measured slope at 0 (vu / f'(0)); rt rows keep vu * rt/(1+rt) = PAIR_V.
SIZINGS = (
    ("default", None, None, 1.0, "w=10 l=1 um, ib=1 uA, vu=0.125, rt=2"),
    ("w=40", "w=40", None, 1.0, "input pair W/L 4x (deeper weak inversion)"),
    ("ib=0.25u", None, 2.5e-7, 1.0, "tail current /4 (deeper weak inversion)"),
    ("vu=trim", "vu=trim", None, 1.0, "vu / f'(0): the measured 2 n UT matched"),
    ("rt=4", f"rt=4,vu={PAIR_V * 5 / 4:.6g}", None, 1.0, "tension scale 2/rt = 1/2"),
    ("rt=8", f"rt=8,vu={PAIR_V * 9 / 8:.6g}", None, 1.0, "tension scale 2/rt = 1/4"),
    ("beta=0.25", None, None, 0.25, "the default cell at beta 0.25 (not a sizing)"),
)
#: The sizings run on every seed of ``--seeds``; the others on ``--few-seeds``.
MAIN = ("default", "rt=4")
#: The sizing the study recommends (docs/transistor-level.md).
RECOMMENDED = "rt=4"
MIN_COSINE = 0.99
TENSORS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def tiny(seed: int):
    """The 4-8-3 tanh MLP of ``seed`` with its MSE loss and the batch of tests/test_pdk_network.py."""
    graph = random_mlp([4, 8, 3], activation="tanh", seed=seed).with_loss("mse")
    return graph, random_batch(graph, 2, seed=0)


def _cpu() -> float:
    own = time.process_time()
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + ch.ru_utime + ch.ru_stime


def _params(act: str | None, vu_trim: float | None) -> str | None:
    if act is None or "trim" not in act:
        return act
    return act.replace("vu=trim", f"vu={vu_trim:.6g}")


def characterize_cell(act: str | None, ib_A: float | None) -> tuple[dict, dict]:
    """The tanh cell's testbench on tt, 27 C at this sizing: its row and its curves."""
    from hwbp.pdk.characterize import plan, run_all
    from hwbp.pdk.measure import f_curve, gate_curves

    (run,) = plan(["tanh"], ["tt"], [27.0], 0, ib_A=ib_A, params=parse_act_params(act))
    ((row, res),) = run_all([run], workers=1, progress=False)
    spec, params = get_cell("tanh"), dict(run.bench.params)
    f, gate = f_curve(res, spec, params), gate_curves(res, params)
    k = int(np.argmin(np.abs(res.a)))
    row["f_slope_0"] = float((f[k + 1] - f[k - 1]) / (res.a[k + 1] - res.a[k - 1]))
    row["params"] = params
    return row, {"a": res.a.tolist(), "f": f.tolist(), "gate_zero": gate[0].tolist()}


def monte_carlo(act: str | None, draws: int) -> list[dict]:
    """The tanh cell's testbench on ``draws`` Monte Carlo draws (tt_mm, 27 C, seeds 1..draws)
    at this sizing: each draw's row (gate offset, zero-tension gate, gains, gate errors)."""
    from hwbp.pdk.characterize import plan, run_all

    runs = [r for r in plan(["tanh"], ["tt"], [27.0], draws, params=parse_act_params(act)) if r.seed is not None]
    keys = ("f_gain", "f_offset", "gate_gain", "gate_offset", "gate_zero_T", "gate_err_T0.25", "gate_err_T1")
    return [{k: float(row[k]) for k in keys} for row, _ in run_all(runs, workers=1, progress=False)]


def network(seed: int, act: str | None, ib_A: float | None, beta: float, cells: str,
            mc_seed: int | None = None) -> dict:
    """One transistor-level verify of the tiny MLP of ``seed`` (``mc_seed``: on the mismatch
    models, ``--mc-seed``): 1 - cosine per tensor, power, the largest hidden |a| and |T|, CPU
    seconds."""
    graph, batch = tiny(seed)
    opts = {"pdk": "sky130", "pdk_cells": cells, "timeout_s": 3000.0, "mc_seed": mc_seed}
    if act:
        opts["act_params"] = act
    if ib_A is not None:
        opts["act_bias_A"] = ib_A
    cpu0 = _cpu()
    v = verify(graph, batch, backend="spice", beta=beta, options=opts)
    x = np.asarray(batch.x["x"], dtype=float)
    p = graph.parameters()
    a1 = x @ np.asarray(p["fc1.weight"], dtype=float).T + np.asarray(p["fc1.bias"], dtype=float)
    t_hid = max(float(np.abs(t).max()) for k, t in v.result.state.tension.items() if k != graph.output)
    return {"one_minus_cos": {k: 1.0 - m["cosine"] for k, m in v.report["parameters"].items()},
            "supply_power_W": v.report["settle"]["supply_power_W"], "a_max": float(np.abs(a1).max()),
            "T_max": t_hid, "cpu_s": _cpu() - cpu0}


def decompose(seed: int, curve: dict, beta_eff: float) -> dict:
    """The default cell's error sources in the reference backend: the measured curve with an
    exact derivative gate (shape alone), and ideal tanh as a pair gate at ``beta_eff``
    (finite difference alone)."""
    graph, batch = tiny(seed)
    shape = hardware_from_mapping({"unit_V": 0.125, "cells": {"gate": "derivative"},
                                   "curves": {"tanh": {"a": curve["a"], "f": curve["f"]}}})
    pair = hardware_from_mapping({"unit_V": 0.125, "cells": {"gate": "pair"}})
    out = {}
    for name, hw, beta in (("shape", shape, 1.0), ("finite_difference", pair, beta_eff)):
        v = verify(graph, batch, backend="reference", hardware=hw, instance_seed=0, beta=beta)
        out[name] = max(1.0 - m["cosine"] for m in v.report["parameters"].values())
    return out


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run (or take from the cache) every measurement and write the report."""
    from tqdm import tqdm

    from tanh_sizing_report import write_report

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0-9", help="model seeds of the default and the recommended sizing, e.g. "
                    "0-9 or 0,2,4 (default 0-9)")
    ap.add_argument("--few-seeds", default="0-4", help="model seeds of the other sizings (default 0-4)")
    ap.add_argument("--all-cells", default="", metavar="SEEDS", help="seeds to run with every cell at transistor "
                    "level, default and recommended sizing (minutes each; default none)")
    ap.add_argument("--mc", type=int, default=0, metavar="N", help="Monte Carlo draws of the default and the "
                    "recommended cell's testbench (tt_mm, 27 C; default 0: none)")
    ap.add_argument("--mc-seeds", default="", metavar="SEEDS", help="--mc-seed draws of the network (model seed 0, "
                    "--pdk-cells act) for the default and the recommended sizing (default none)")
    ap.add_argument("--only", metavar="LABELS", help="run these sizings only (comma-separated labels)")
    ap.add_argument("-o", "--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / "tanh_sizing_runs.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}

    def cached(key: str, fn):
        if key not in cache:
            cache[key] = fn()
            cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
        return cache[key]

    seeds = _seeds(args.seeds)
    sizings = [s for s in SIZINGS if args.only is None or s[0] in args.only.split(",")]
    base_row, _ = cached("cell/default", lambda: characterize_cell(None, None))
    vu_trim = 0.125 / base_row["f_slope_0"]
    cells, curves = {}, {}
    for label, act, ib, _beta, _what in tqdm(sizings, desc="cell testbenches", unit="sizing"):
        key = "default" if act is None and ib is None else label
        cells[label], curves[label] = cached(f"cell/{key}", lambda: characterize_cell(_params(act, vu_trim), ib))
    few = _seeds(args.few_seeds)
    seeds_of = {label: seeds if label in MAIN else [s for s in few if s in seeds] for label, *_ in sizings}
    jobs = [(label, seed, "act") for seed in seeds for label, *_ in sizings if seed in seeds_of[label]]
    jobs += [(label, seed, "act,syn,node,loss") for label in ("default", RECOMMENDED)
             for seed in (_seeds(args.all_cells) if args.all_cells else [])]
    spec = {s[0]: s for s in SIZINGS}
    nets = {}
    for label, seed, kinds in tqdm(jobs, desc="transistor-level networks", unit="run"):
        _, act, ib, beta, _ = spec[label]
        act = _params(act, vu_trim)
        nets[(label, seed, kinds)] = cached(f"net/{label}/{seed}/{kinds}",
                                            lambda: network(seed, act, ib, beta, kinds))
    decomp = {}
    for label, _act, _ib, beta, _ in sizings:
        rt = float(cells[label]["params"]["rt"])
        for seed in seeds_of[label]:
            decomp[(label, seed)] = cached(f"decomp/{label}/{seed}",
                                           lambda: decompose(seed, curves[label], beta * 2.0 / rt))
    mc = {}
    for label in (("default", RECOMMENDED) if args.mc else ()):
        act = spec[label][1]
        mc[label] = cached(f"mc/{label}/{args.mc}", lambda: monte_carlo(act, args.mc))
    mc_nets = {}
    for label in (("default", RECOMMENDED) if args.mc_seeds else ()):
        act = spec[label][1]
        for ms in tqdm(_seeds(args.mc_seeds), desc=f"Monte Carlo networks ({label})", unit="run"):
            mc_nets[(label, ms)] = cached(f"mcnet/{label}/{ms}", lambda: network(0, act, None, 1.0, "act", ms))
    cpu_total = sum(v.get("cpu_s", 0.0) for k, v in cache.items() if k.startswith(("net/", "mcnet/")))
    from hwbp.provenance import machine

    where = cached("machine", machine)  # the machine of the measurements, kept with them
    write_report(args.out, sizings, cells, nets, decomp, seeds, vu_trim, cpu_total, RECOMMENDED, MIN_COSINE,
                 " ".join(sys.argv[1:]), where, mc, mc_nets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
