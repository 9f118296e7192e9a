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
circuit at ``--mc-seed S`` (tt_mm, 27 C, transistor-level activation cells) against the
distribution of 1 - cosine over ``--instances`` device instances that the reference backend
draws from the derived model's spreads (``sims/sky130/characterization/hardware.toml``);
writes ``predict_mc.{csv,md}``.

Usage::

    .venv/bin/python sims/sky130/predict.py [BETA ...] [-o DIR]
    .venv/bin/python sims/sky130/predict.py --mc-seeds 1,2,3,4 [--instances 400] [-o DIR]
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


#: The derived model the Monte Carlo comparison draws from, and the sections of it that the
#: circuit with transistor-level activation cells realizes (synapses, nodes and the loss port
#: stay behavioral there, so their spreads are left out).
MC_TOML = HERE / "characterization" / "hardware.toml"
MC_SECTIONS = ("unit_V", "cells", "curves")


def _pct(v, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(v, dtype=float), q))


def _instances(graph, batch, hw, instances: int) -> dict[str, list[float]]:
    from tqdm import tqdm

    model: dict[str, list[float]] = {}
    for s in tqdm(range(instances), desc="reference instances", unit="instance"):
        v = verify(graph, batch, backend="reference", hardware=hw, instance_seed=s)
        for k, x in _one_minus_cos(v).items():
            model.setdefault(k, []).append(x)
    return model


def _circuit(graph, batch, corner: str, seed: int | None, cache: Path) -> dict[str, float]:
    """1 - cosine per tensor of the circuit (transistor-level activation cells) at Monte
    Carlo ``seed`` (None: nominal models), kept in ``cache`` (JSON) for a later run."""
    import json

    key = f"{corner}/{'nominal' if seed is None else seed}"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in done:
        opts = {"pdk": "sky130", "corner": corner, "pdk_cells": "act", "timeout_s": 3000.0}
        if seed is not None:
            opts["mc_seed"] = seed
        done[key] = _one_minus_cos(verify(graph, batch, backend="spice", options=opts))
        cache.write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
    return done[key]


def run_mc(seeds: list[int], instances: int, out: Path, corner: str = "tt", model_toml: Path = MC_TOML) -> None:
    """The circuit at ``--mc-seed S`` for each of ``seeds`` against the model's distribution
    of 1 - cosine over ``instances`` instance seeds; ``predict_mc.{csv,md}`` in ``out`` (the
    circuit's values cached in ``predict_mc_circuit.json`` there).  The model's median
    without the pair gate's slope term (``pair_slope_sigma = 0``) is listed beside it.
    ``model_toml``: another derived model (its directory's name then suffixes the files:
    ``predict_mc_<dir>.{csv,md}``)."""
    import numpy as np

    graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    batch = random_batch(graph, 2, seed=0)
    full = tomllib.loads(model_toml.read_text())
    stem = "predict_mc" if model_toml == MC_TOML else f"predict_mc_{model_toml.parent.name}"
    hw = hardware_from_mapping({k: full[k] for k in MC_SECTIONS if k in full})
    model = _instances(graph, batch, hw, instances)
    no_slope = _instances(graph, batch, hw.replace(**{"cells.pair_slope_sigma": 0.0}), instances)
    cache = out / "predict_mc_circuit.json"
    nominal = _circuit(graph, batch, corner, None, cache)
    rows = []
    for seed in seeds:
        for name, c in _circuit(graph, batch, corner, seed, cache).items():
            m = model[name]
            p5, p50, p95 = _pct(m, 5), _pct(m, 50), _pct(m, 95)
            rank = float(np.mean(np.asarray(m) <= c))
            rows.append({"mc_seed": seed, "tensor": name, "one_minus_cos_circuit": c,
                         "one_minus_cos_circuit_nominal": nominal[name], "model_p5": p5, "model_median": p50,
                         "model_p95": p95, "circuit_percentile": 100.0 * rank, "within_p5_p95": p5 <= c <= p95,
                         "median_within_3x": p50 / FACTOR <= c <= p50 * FACTOR,
                         "model_median_without_pair_slope": _pct(no_slope[name], 50),
                         "model_p95_without_pair_slope": _pct(no_slope[name], 95)})
        print("mc seed", seed, "done", flush=True)
    with (out / f"{stem}.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    n_in = sum(r["within_p5_p95"] for r in rows)
    n_3x = sum(r["median_within_3x"] for r in rows)
    md = ["# SKY130 Monte Carlo: the circuit at `--mc-seed S` against the model's instance distribution", "",
          f"Produced by `.venv/bin/python sims/sky130/predict.py --mc-seeds {','.join(map(str, seeds))} "
          f"--instances {instances}"
          + ("" if model_toml == MC_TOML else f" --mc-model {model_toml.relative_to(ROOT)}") + f"` (tanh MLP 4-8-3, seed 0, MSE, random batch of 2, beta 1, {corner}, 27 C).  "
          f"Circuit: activation cells at transistor level on the `{corner}_mm` models with ngspice's Monte Carlo "
          "seed S (synapses, nodes and the loss port behavioral).  Model: the reference backend with the derived "
          f"`{model_toml.relative_to(HERE)}` (sections {', '.join(MC_SECTIONS)}: the measured tanh curve, the pair "
          "gate and the cell spreads from its Monte Carlo draws; the synapse and node spreads are left out, "
          f"as the circuit's synapses and nodes are ideal), {instances} instance seeds.  1 - cosine per tensor "
          "against exact backprop of the nominal network.", "",
          f"**{n_in} of {len(rows)} circuit values inside the model's 5th-95th percentiles; {n_3x} of {len(rows)} "
          "within 3x of the model's median.**", "",
          "| mc seed | tensor | 1-cos circuit | circuit, nominal models | model p5 | model median | model p95 | "
          "circuit's percentile | in p5-p95 | median within 3x | without pair slope: median | its p95 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['mc_seed']} | {r['tensor']} | {r['one_minus_cos_circuit']:.3g} | "
                  f"{r['one_minus_cos_circuit_nominal']:.3g} | {r['model_p5']:.3g} | {r['model_median']:.3g} | "
                  f"{r['model_p95']:.3g} | {r['circuit_percentile']:.0f} | {'yes' if r['within_p5_p95'] else 'no'} | "
                  f"{'yes' if r['median_within_3x'] else 'no'} | {r['model_median_without_pair_slope']:.3g} | "
                  f"{r['model_p95_without_pair_slope']:.3g} |")
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
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mc_seeds:
        run_mc([int(s) for s in args.mc_seeds.split(",")], args.instances, args.out,
               model_toml=args.mc_model.resolve())
        return
    done = run_all(plan(["tanh"], CORNERS, [27.0], 0), workers=2)
    cells = list(zip([r for r, _ in done], measured([r for r, _ in done], [c for _, c in done])))
    for beta in args.beta:
        run(beta, args.out, cells)


if __name__ == "__main__":
    main()
