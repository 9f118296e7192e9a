"""Does the system model predict the circuit?  For the tanh MLP 4-8-3 (seed 0, MSE, a random
batch of 2) on SKY130 corners tt, ss and ff at 27 C:

1. characterize the tanh cell on the corner (``hwbp characterize``'s code: the testbench in
   ngspice, nominal models) and derive its ``hardware.toml`` (:mod:`hwbp.pdk.derive`: the
   measured transfer curve, the pair gate f~(a + T/2) - f~(a - T/2) and its zero-tension
   offset);
2. run the reference backend with that hardware model (the prediction), and with the
   earlier gain-and-offset model of the same cell (for comparison);
3. run the network with transistor-level activation cells (``--backend spice --pdk sky130``,
   the circuit);
4. compare 1 - cosine per parameter tensor against exact backprop of the nominal network.

Writes ``predict.{csv,md}`` (beta = 1) or ``predict_beta<BETA>.{csv,md}`` and one
``hardware_<corner>.toml`` per corner into ``-o DIR`` (default: this directory; a reduced
or trial run writes to a scratch directory).

``--mc-seeds S,S,...`` runs the Monte Carlo comparison instead (:func:`run_mc`): the
circuit at ``--mc-seed S`` (tt_mm, 27 C, the cell kinds ``--mc-cells`` at transistor
level, default every kind) against the distribution of 1 - cosine over ``--instances``
device instances that the reference backend draws from the derived model's spreads
(``sims/sky130/characterization/hardware.toml``, the sections those cells realize);
writes ``predict_mc.{csv,md}`` (``predict_mc_act.{csv,md}`` with ``--mc-cells act``).
The circuit runs are cached as JSON, so a rerun computes only the model.

Usage::

    .venv/bin/python sims/sky130/predict.py [BETA ...] [-o DIR]
    .venv/bin/python sims/sky130/predict.py --mc-seeds 1,2,3,4 [--instances 400] [--mc-cells act,syn,node,loss] [-o DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from hwbp.hardware import hardware_from_mapping  # noqa: E402
from hwbp.io import random_batch  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.pdk.characterize import plan, run_all  # noqa: E402
from hwbp.pdk.derive import hardware_toml, pair_gain  # noqa: E402
from hwbp.pdk.report import measured  # noqa: E402
from hwbp.verify.run import verify  # noqa: E402

CORNERS = ("tt", "ss", "ff")
FACTOR = 3.0


def _one_minus_cos(v) -> dict[str, float]:
    return {k: 1.0 - m["cosine"] for k, m in v.report["parameters"].items()}


def run(beta: float, out: Path, cells: list) -> None:
    """One table: every corner at ``beta`` (``cells``: (row, Measured) of the tanh cell per corner)."""
    stem = "predict" if beta == 1.0 else f"predict_beta{beta:g}"
    graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    batch = random_batch(graph, 2, seed=0)
    rows = []
    for corner, (cell_row, m) in zip(CORNERS, cells):
        text = hardware_toml([cell_row], [m])
        (out / f"hardware_{corner}.toml").write_text(text)
        pred = verify(graph, batch, backend="reference", hardware=hardware_from_mapping(tomllib.loads(text)),
                      instance_seed=0, beta=beta)
        old = verify(graph, batch, backend="reference", instance_seed=0, beta=beta,
                     hardware=hardware_from_mapping(tomllib.loads(hardware_toml([cell_row]))))
        circ = verify(graph, batch, backend="spice", beta=beta,
                      options={"pdk": "sky130", "corner": corner, "pdk_cells": "act",
                               "timeout_s": 3000.0})
        t_max = float(max(abs(x).max() for k, x in circ.result.state.tension.items() if k != graph.output))
        c_all, p_all, o_all = _one_minus_cos(circ), _one_minus_cos(pred), _one_minus_cos(old)
        for name, c in c_all.items():
            p = p_all[name]
            ratio = p / c if c > 0 else float("inf")
            rows.append({"corner": corner, "tensor": name, "one_minus_cos_circuit": c, "one_minus_cos_predicted": p,
                         "ratio_predicted_over_circuit": ratio, "within_3x": 1 / FACTOR <= ratio <= FACTOR,
                         "one_minus_cos_gain_offset_model": o_all[name],
                         "ratio_gain_offset_model": o_all[name] / c if c > 0 else float("inf"),
                         "f_gain": cell_row["f_gain"], "pair_gate_gain": pair_gain(m),
                         "f_shape_rms": cell_row["f_shape_rms"], "gate_zero_T": cell_row["gate_zero_T"],
                         "supply_power_W": circ.report["settle"]["supply_power_W"], "hidden_T_max": t_max,
                         "fd_gate_err_at_T_max": 1.0 - 2.0 * math.tanh(t_max / 2.0) / t_max})
        print(corner, beta, "done", flush=True)
    keys = list(rows[0])
    with (out / f"{stem}.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, keys, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    n_ok = sum(r["within_3x"] for r in rows)
    md = ["# SKY130: the reference backend with the derived hardware model vs the transistor-level network", "",
          f"Produced by `.venv/bin/python sims/sky130/predict.py{'' if beta == 1.0 else f' {beta:g}'}` (tanh MLP "
          f"4-8-3, seed 0, MSE, random batch of 2, beta {beta:g}, 27 C; activation cells at transistor level, "
          "nominal corner models).  Prediction: the reference backend with the derived `hardware_<corner>.toml` "
          "(the measured tanh curve, the pair gate and its zero-tension offset); for comparison the earlier "
          "model of the same cell as a gain and an offset of f and of a derivative gate.", "",
          f"**{n_ok} of {len(rows)} tensors within 3x.**", "",
          "| corner | tensor | 1-cos circuit | 1-cos predicted | predicted/circuit | within 3x | "
          "gain/offset model: 1-cos | its ratio |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['corner']} | {r['tensor']} | {r['one_minus_cos_circuit']:.3g} | "
                  f"{r['one_minus_cos_predicted']:.3g} | {r['ratio_predicted_over_circuit']:.3g} | "
                  f"{'yes' if r['within_3x'] else 'no'} | {r['one_minus_cos_gain_offset_model']:.3g} | "
                  f"{r['ratio_gain_offset_model']:.3g} |")
    md += ["", "| corner | f gain | pair gate gain | f shape rms | gate at T=0 (rms) | supply power (W) | "
           "hidden max abs T | 1 - 2 tanh(T/2)/T at that T |", "|---|---|---|---|---|---|---|---|"]
    for corner in CORNERS:
        r = next(x for x in rows if x["corner"] == corner)
        md.append(f"| {corner} | {r['f_gain']:.4f} | {r['pair_gate_gain']:.4f} | {r['f_shape_rms']:.4f} | "
                  f"{r['gate_zero_T']:.4f} | {r['supply_power_W']:.3g} | {r['hidden_T_max']:.3g} | "
                  f"{r['fd_gate_err_at_T_max']:.3g} |")
    md += ["", "The transistor gate is f(a + T/2) - f(a - T/2) of the same differential pair, the derivative of "
           "the realized f only up to O(T^3) (the last column: that error of tanh at a = 0 for the largest hidden "
           "tension, T = beta * dl/dx), and it has an offset at T = 0 (the gate's two pairs sit at different "
           "input common modes).  The gain-and-offset model misses both; the derived model tabulates f and the "
           "zero-tension gate and computes the gate as the pair does."]
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print((out / f"{stem}.md").read_text())


#: The derived model the Monte Carlo comparison draws from.
MC_TOML = HERE / "characterization" / "hardware.toml"
#: The sections of it that the circuit realizes with each cell kind at transistor level
#: (a kind left behavioral is ideal in the circuit, so its spreads are left out).
MC_SECTIONS = {"act": ("unit_V", "cells", "curves"), "syn": ("mismatch", "synapses"), "node": ("nodes",),
               "loss": ("loss",)}
#: The model without one term at a time (its median is listed beside the full model's).
MC_ABLATIONS = {"act": {"without pair slope": {"cells.pair_slope_sigma": 0.0}},
                "syn": {"without synapse offsets": {"synapses.offset_fwd_sigma": 0.0,
                                                    "synapses.offset_bwd_sigma": 0.0}},
                "loss": {"without loss offset": {"loss.offset": 0.0, "loss.offset_sigma": 0.0}}}


def _pct(v, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(v, dtype=float), q))


def _instances(graph, batch, hw, instances: int, desc: str = "reference instances") -> dict[str, list[float]]:
    from tqdm import tqdm

    model: dict[str, list[float]] = {}
    for s in tqdm(range(instances), desc=desc, unit="instance"):
        v = verify(graph, batch, backend="reference", hardware=hw, instance_seed=s)
        for k, x in _one_minus_cos(v).items():
            model.setdefault(k, []).append(x)
    return model


def _circuit(graph, batch, corner: str, seed: int | None, cache: Path, cells: str = "act") -> dict[str, float]:
    """1 - cosine per tensor of the circuit (the cell kinds ``cells`` at transistor level) at
    Monte Carlo ``seed`` (None: nominal models), kept in ``cache`` (JSON) for a later run,
    with the run's CPU time (this process and its ngspice children, s) under ``cpu_s``."""
    import json
    import resource
    import time

    key = f"{corner}/{'nominal' if seed is None else seed}"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in done:
        opts = {"pdk": "sky130", "corner": corner, "pdk_cells": cells, "timeout_s": 3000.0}
        if seed is not None:
            opts["mc_seed"] = seed
        ch0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
        done[key] = _one_minus_cos(verify(graph, batch, backend="spice", options=opts))
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - t0 + (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime)
        done.setdefault("cpu_s", {})[key] = round(cpu, 1)
        cache.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
    return done[key]


def _circuit_cpu(cache: Path, keys: list[str]) -> float | None:
    """The cached CPU seconds of the circuit runs ``keys`` (None where one was not timed)."""
    import json

    cpu = json.loads(cache.read_text()).get("cpu_s", {})
    return sum(cpu[k] for k in keys) if all(k in cpu for k in keys) else None


def run_mc(seeds: list[int], instances: int, out: Path, corner: str = "tt", model_toml: Path = MC_TOML,
           cells: str = "act,syn,node,loss") -> None:
    """The circuit (the cell kinds ``cells`` at transistor level) at ``--mc-seed S`` for each
    of ``seeds`` against the model's distribution of 1 - cosine over ``instances`` instance
    seeds, the model holding the sections those cells realize (:data:`MC_SECTIONS`).  Every
    cell kind: ``predict_mc.{csv,md}``, circuit values cached in ``predict_mc_all_circuit.json``;
    another set of kinds: ``predict_mc_<kinds>`` (``act``: cache ``predict_mc_circuit.json``).
    The model's median without each of its terms that ``cells`` realize
    (:data:`MC_ABLATIONS`) is listed beside it.  ``model_toml``: another derived model (its
    directory's name then suffixes the files)."""
    import time

    import numpy as np

    kinds = [k.strip() for k in cells.split(",")]
    if not set(kinds) <= set(MC_SECTIONS) or "act" not in kinds:
        raise SystemExit(f"--mc-cells {cells!r}: act and any of syn, node, loss")
    graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    batch = random_batch(graph, 2, seed=0)
    full = tomllib.loads(model_toml.read_text())
    every = set(kinds) == set(MC_SECTIONS)
    tag = "" if every else "_" + "_".join(kinds)
    stem = f"predict_mc{tag}" if model_toml == MC_TOML else f"predict_mc{tag}_{model_toml.parent.name}"
    cache = out / ("predict_mc_all_circuit.json" if every else f"predict_mc{'' if kinds == ['act'] else tag}_circuit.json")
    sections = [sec for k in kinds for sec in MC_SECTIONS[k]]
    hw = hardware_from_mapping({k: full[k] for k in sections if k in full})
    nominal = _circuit(graph, batch, corner, None, cache, cells)
    circuit = {seed: _circuit(graph, batch, corner, seed, cache, cells) for seed in seeds}
    cpu_circuit = _circuit_cpu(cache, [f"{corner}/{s}" for s in ["nominal", *seeds]])
    t0 = time.process_time()
    model = _instances(graph, batch, hw, instances)
    ablations = {name: _instances(graph, batch, hw.replace(**over), instances, desc=name)
                 for k in kinds for name, over in MC_ABLATIONS.get(k, {}).items()
                 if all(key.split(".")[0] in full for key in over)}
    cpu_model = time.process_time() - t0
    rows = []
    for seed in seeds:
        for name, c in circuit[seed].items():
            m = model[name]
            p5, p50, p95 = _pct(m, 5), _pct(m, 50), _pct(m, 95)
            rank = float(np.mean(np.asarray(m) <= c))
            row = {"mc_seed": seed, "tensor": name, "one_minus_cos_circuit": c,
                   "one_minus_cos_circuit_nominal": nominal[name], "model_p5": p5, "model_median": p50,
                   "model_p95": p95, "circuit_percentile": 100.0 * rank, "within_p5_p95": p5 <= c <= p95,
                   "median_within_3x": p50 / FACTOR <= c <= p50 * FACTOR}
            for a, vals in ablations.items():
                row[f"model_median_{a.replace(' ', '_')}"] = _pct(vals[name], 50)
                row[f"model_p95_{a.replace(' ', '_')}"] = _pct(vals[name], 95)
            rows.append(row)
    with (out / f"{stem}.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    n_in = sum(r["within_p5_p95"] for r in rows)
    n_3x = sum(r["median_within_3x"] for r in rows)
    behavioral = [k for k in MC_SECTIONS if k not in kinds]
    cmd = (f".venv/bin/python sims/sky130/predict.py --mc-seeds {','.join(map(str, seeds))} --instances {instances}"
           + ("" if every else f" --mc-cells {cells}")
           + ("" if model_toml == MC_TOML else f" --mc-model {model_toml.relative_to(ROOT)}"))
    cpu = ("CPU time: circuit " + ("not timed (cached before the cache kept it)" if cpu_circuit is None else
                                   f"{cpu_circuit:.0f} s for the nominal run and {len(seeds)} draws (ngspice "
                                   f"included, kept in `{cache.name}`)")
           + f"; model {cpu_model:.0f} s for {instances * (1 + len(ablations))} reference instances.")
    md = ["# SKY130 Monte Carlo: the circuit at `--mc-seed S` against the model's instance distribution", "",
          f"Produced by `{cmd}` (tanh MLP 4-8-3, seed 0, MSE, random batch of 2, beta 1, {corner}, 27 C).  "
          f"Circuit: `--pdk-cells {','.join(kinds)}` at transistor level on the `{corner}_mm` models with ngspice's "
          "Monte Carlo seed S" + (f" ({', '.join(behavioral)} behavioral)" if behavioral else "") + ".  Model: the "
          f"reference backend with the derived `{model_toml.relative_to(HERE)}` (sections {', '.join(sections)}"
          + ("; the other cells' spreads are left out, as they are ideal in this circuit" if behavioral else "")
          + f"), {instances} instance seeds.  1 - cosine per tensor against exact backprop of the nominal "
          f"network.  {cpu}", "",
          f"**{n_in} of {len(rows)} circuit values inside the model's 5th-95th percentiles; {n_3x} of {len(rows)} "
          "within 3x of the model's median.**", ""]
    head = ["mc seed", "tensor", "1-cos circuit", "circuit, nominal models", "model p5", "model median",
            "model p95", "circuit's percentile", "in p5-p95", "median within 3x"]
    for a in ablations:
        head += [f"{a}: median", "its p95"]
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cols = [str(r["mc_seed"]), r["tensor"], f"{r['one_minus_cos_circuit']:.3g}",
                f"{r['one_minus_cos_circuit_nominal']:.3g}", f"{r['model_p5']:.3g}", f"{r['model_median']:.3g}",
                f"{r['model_p95']:.3g}", f"{r['circuit_percentile']:.0f}", "yes" if r["within_p5_p95"] else "no",
                "yes" if r["median_within_3x"] else "no"]
        for a in ablations:
            cols += [f"{r['model_median_' + a.replace(' ', '_')]:.3g}", f"{r['model_p95_' + a.replace(' ', '_')]:.3g}"]
        md.append("| " + " | ".join(cols) + " |")
    md += ["", "Per tensor over the draws:", "",
           "| tensor | circuit min | circuit median | circuit max | model p5 | model median | model p95 | "
           "draws inside p5-p95 | circuit median / model median |", "|---|---|---|---|---|---|---|---|---|"]
    for name in model:
        cs = np.array([circuit[s][name] for s in seeds])
        inside = sum(r["within_p5_p95"] for r in rows if r["tensor"] == name)
        md.append(f"| {name} | {cs.min():.3g} | {np.median(cs):.3g} | {cs.max():.3g} | {_pct(model[name], 5):.3g} | "
                  f"{_pct(model[name], 50):.3g} | {_pct(model[name], 95):.3g} | {inside} of {len(seeds)} | "
                  f"{np.median(cs) / _pct(model[name], 50):.3g} |")
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print((out / f"{stem}.md").read_text())


def main(argv: list[str] | None = None) -> None:
    """Characterize the tanh cell per corner once, then one table per beta."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("beta", nargs="*", type=float, default=[1.0], help="beta values (default 1)")
    ap.add_argument("-o", "--out", type=Path, default=HERE, help="output directory (default: sims/sky130)")
    ap.add_argument("--mc-seeds", metavar="S,S,...", help="Monte Carlo comparison at these ngspice seeds")
    ap.add_argument("--instances", type=int, default=400, help="model instance seeds (--mc-seeds; default 400)")
    ap.add_argument("--mc-model", type=Path, default=MC_TOML, help="the derived model (--mc-seeds; default "
                    "characterization/hardware.toml)")
    ap.add_argument("--mc-cells", default="act,syn,node,loss", help="the cell kinds at transistor level "
                    "(--mc-seeds; default every kind: act,syn,node,loss)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mc_seeds:
        run_mc([int(s) for s in args.mc_seeds.split(",")], args.instances, args.out,
               model_toml=args.mc_model.resolve(), cells=args.mc_cells)
        return
    done = run_all(plan(["tanh"], CORNERS, [27.0], 0), workers=2)
    cells = list(zip([r for r, _ in done], measured([r for r, _ in done], [c for _, c in done])))
    for beta in args.beta:
        run(beta, args.out, cells)


if __name__ == "__main__":
    main()
