"""Energy, area, time and gradient error of the SKY130 network as functions of the cells'
bias current and the node capacitance, with the kT/C noise floor and a digital reference.

For a model (default the digits MLP 64-32-32-10, cross-entropy, one random sample, beta 1,
tt, 27 C) it writes ``tradeoff.csv`` (one row per bias current x node capacitance; each
quantity with its source, ``measured`` at transistor level or what it is derived from),
``tradeoff_check.csv`` (every transistor-level measurement beside what the derivation
predicts for it), ``tradeoff.md`` and the figures ``tradeoff.png``, ``tradeoff_pareto.png``,
``tradeoff_check.png`` and ``tradeoff_settle.png``.

Measured at transistor level on the model itself (``hwbp verify --backend spice --pdk
sky130 --pdk-cells act``, one JSON per point in ``tradeoff_runs/``, reused on a later run):

* its ``.op`` at each ``--ib``: supply power of its tanh cells (W) and the cosine of every
  gradient tensor against exact backprop (static: no noise);
* its ``.tran`` at each ``--tran`` point (bias current : node capacitance), from the random
  initial state: 1 % settling time (s), power and energy per sample (J), and a summary of
  the waveforms (:func:`tradeoff_settle.trace_summary`); each run's duration and output step
  from :func:`tradeoff_settle.tran_plan` (the step a twentieth of the run's smallest time
  constant, or the duration over :data:`tradeoff_settle.MAX_STEPS`), its end residual from
  :func:`tradeoff_settle.end_residual`;
* the tanh cell's testbench at each bias current: its power (W), area (um^2) and time
  constant tau_cell (s, from its -3 dB bandwidth);
* with ``--tiny-ib``, the tiny 4-8-3 tanh MLP's ``.op``, whose ratios stand in for the
  model's static error at a bias current where the model's ``.op`` is not measured.

Derived (stated in the table and figures as such):

* power = N_cells * P_cell(ib) where the model's ``.op`` did not run (the cell testbench;
  checked against the model's ``.op``);
* settling time, where no ``.tran`` ran: n_1% * (R*C + tau_net(ib)), with n_1% the 1 %
  settling time in units of tau of the ideal network (hwbp's reference simulator,
  continuous mode, the same random initial state as ``.tran``) and tau_net the cells'
  delay in the network, fitted to the ``.tran`` run of smallest C at each measured bias
  current and checked on the others (:mod:`tradeoff_settle`); ``settling_series_s`` is the
  earlier model with the testbench's tau_cell, ``settling_ideal_s`` = n_1% * R*C the node
  alone;
* energy per sample-gradient = power * settling time;
* area = N_cells * A_cell + 2 * N_nodes * C / (2 fF/um^2, SKY130's MIM density) (in the
  grid the synapses and node leaks are behavioral and not counted, nor is their power; the
  section on the whole network at transistor level, :mod:`tradeoff_full`, counts every cell
  of the digits MLP at 1 uA and the node pair's own 1 pF, from the committed
  ``digits_tt_syn*.json`` reports);
* the kT/C floor: each node capacitor holds kT/C of thermal noise (V^2), the tension
  x+ - x- twice that; in units of the cell scale vu (0.125 V per unit) its variance is
  2kT/(C vu^2).  A layer's gradient (bias: the tension; weight: its outer product with the
  layer's input) then has SNR = T_rms^2 C vu^2 / (2kT) (T_rms: the layer's rms tension at
  beta, from the ideal network) and expected cosine 1/sqrt(1 + 1/SNR); the floor is the
  worst layer's 1 - cosine (one snapshot of the nodes; averaging the readout lowers it);
* 1 - cosine at (ib, C) = the measured static 1 - cos (log-interpolated between the
  measured bias currents where one is missing) + the kT/C floor (small angles add in
  quadrature).

Usage::

    nice -n 15 .venv/bin/python sims/sky130/tradeoff.py            # committed, into sims/sky130/
    .venv/bin/python sims/sky130/tradeoff.py --model tiny --ib 1e-6 --ib-grid 1e-6 \\
        --caps 1e-12 1e-9 --tran 1e-6:1e-12 1e-6:1e-9 -o /tmp/out     # a small check
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

from outdir import add_out_arg, output_dir  # noqa: E402
from tradeoff_digital import CPU_SOURCE, MAC_SOURCE, digital_reference  # noqa: E402
from tradeoff_points import cached, cell_point, model_and_batch, op_from_report, point_name, run_point  # noqa: E402
from tradeoff_report import write_csv, write_figures, write_md  # noqa: E402
from tradeoff_settle import MAX_STEPS, STEP_FRACTION, end_residual, fit_model, fit_points, settling_model, tau_net, tran_plan  # noqa: E402

#: Boltzmann's constant (J/K) and the temperature of the study (K, 27 C).
K_B = 1.380649e-23
TEMP_K = 300.15
#: Volts per unit at the cells' inputs (``vu`` of the tanh cell).
VU_V = 0.125
#: Node resistance of the study (ohm): the behavioral default, so tau = R*C.
R_OHM = 1e3
#: SKY130 MIM capacitor density (F/um^2), as :data:`hwbp.pdk.cells.CAP_DENSITY_F_PER_UM2`.
from hwbp.pdk.cells import CAP_DENSITY_F_PER_UM2  # noqa: E402
from hwbp.provenance import machine  # noqa: E402


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("digits", "tiny"), default="digits", help="the network (default: digits)")
    p.add_argument("--beta", type=float, default=1.0, help="nudge beta (default: 1)")
    p.add_argument("--ib", type=float, nargs="+", default=[1e-7, 1e-6, 1e-5], metavar="A",
                   help="bias currents (A) of the model's transistor-level .op (default: 1e-7 1e-6 1e-5)")
    p.add_argument("--tiny-ib", type=float, nargs="*", default=[], metavar="A",
                   help="bias currents (A) of the tiny MLP's transistor-level .op, whose ratios stand in for the "
                        "model's static error at a bias current of --ib-grid where the model's .op is not measured "
                        "(default: none)")
    p.add_argument("--ib-grid", type=float, nargs="+", default=[1e-7, 1e-6, 1e-5], metavar="A",
                   help="bias currents (A) of the table and curves (default: 1e-7 1e-6 1e-5)")
    p.add_argument("--caps", type=float, nargs="+", default=[1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9],
                   metavar="F", help="node capacitances (F; default: 1 fF to 1 nF by decades)")
    p.add_argument("--tran", nargs="*", default=["1e-7:1e-12", "1e-6:1e-12", "1e-6:1e-11"],
                   metavar="IB:C", help="the model's transistor-level .tran points, bias current (A) : node "
                                        "capacitance (F); the one of smallest C at each bias current fits the "
                                        "cells' delay in the network, the others check the settling model")
    p.add_argument("--op-report", nargs="*", default=["1e-6=sims/sky130/digits_tt.json"], metavar="IB=REPORT",
                   help="digits .op points read from an existing verify report (the same command; default: the "
                        "committed 1 uA one)")
    p.add_argument("--no-full", action="store_true",
                   help="leave out the section on the digits MLP with every cell at transistor level (read from "
                        "the committed digits_tt_syn*.json reports, tradeoff_full.py)")
    p.add_argument("--workers", type=int, default=4, help="Dask LocalCluster workers for the ngspice points")
    p.add_argument("--cpu-min-s", type=float, default=0.5, help="CPU seconds per timing round of the digital reference")
    add_out_arg(p)
    return p, p.parse_args(argv)


def network_counts(graph: Any) -> dict[str, int]:
    """``cells`` (activation cells at transistor level: one per neuron whose term has a
    non-identity activation) and ``nodes`` (node pairs: every neuron of the dynamics)."""
    from hwbp.lower import lower

    system = lower(graph)
    cells = sum(p.size for p in system.populations for t in p.terms if t.activation != "identity")
    return {"cells": int(cells), "nodes": int(sum(p.size for p in system.populations))}


def ideal_settling(graph: Any, batch: Any, beta: float) -> tuple[float, dict[str, float]]:
    """The ideal network's 1 % settling time (units of tau) from ``.tran``'s random initial
    state (reference simulator, continuous mode) and each layer's rms tension at rest."""
    from hwbp.lower import lower
    from hwbp.sim import simulate
    from hwbp.targets.spice.nodes import settling_time

    system = lower(graph).with_options(beta=beta)
    duration = 4.0 * max(12.0 * system.depth, 24.0)
    res = simulate(system, batch, mode="continuous", duration=duration, dt=0.01, initial="random", seed=0,
                   trace=True)
    tr = res.trace
    n1 = settling_time(tr.t, tr.tension, 0.01)
    rms = {k: float(np.sqrt(np.mean(v[-1] ** 2))) for k, v in tr.tension.items()}
    return n1, rms


def ktc_floor(c_F: float, t_rms: dict[str, float]) -> float:
    """Worst layer's expected 1 - cosine from the kT/C noise of the node pair (see the
    module docstring): 1 - 1/sqrt(1 + 2kT/(C vu^2 T_rms^2))."""
    worst = 0.0
    for t in t_rms.values():
        inv_snr = 2.0 * K_B * TEMP_K / (c_F * VU_V ** 2 * max(t, 1e-300) ** 2)
        worst = max(worst, 1.0 - 1.0 / math.sqrt(1.0 + inv_snr))
    return worst


def static_errors(op: dict[float, dict], tiny_op: dict[float, dict]) -> dict[float, tuple[float, str]]:
    """The model's static 1 - cosine (worst tensor) by bias current: measured where its
    ``.op`` ran; at a bias current where only the tiny MLP's ``.op`` ran, the model's
    value at the nearest measured bias current times the tiny MLP's measured ratio between
    the two (``derived (tiny ratio)``)."""
    out = {ib: (1.0 - r["min_cosine"], "measured") for ib, r in op.items()}
    for ib, r in tiny_op.items():
        if ib in out:
            continue
        ref = min((k for k in op if k in tiny_op), key=lambda k: abs(math.log(k / ib)), default=None)
        if ref is not None:
            ratio = (1.0 - r["min_cosine"]) / max(1.0 - tiny_op[ref]["min_cosine"], 1e-16)
            out[ib] = (out[ref][0] * ratio, "derived (tiny ratio)")
    return out


def _interp_static(ib: float, known: dict[float, tuple[float, str]]) -> tuple[float, str]:
    """1 - cos at ``ib``: a known value, else log-log interpolation between the known ones
    (clamped at the ends)."""
    for k, v in known.items():
        if math.isclose(k, ib, rel_tol=1e-9):
            return v
    xs = sorted(known)
    ly = np.log([max(known[x][0], 1e-16) for x in xs])
    return float(np.exp(np.interp(math.log(ib), np.log(xs), ly))), "derived (interpolated)"


def _parse_reports(items: list[str]) -> list[tuple[float, Path]]:
    out = []
    for s in items:
        ib, _, path = s.partition("=")
        out.append((float(ib), HERE.parent.parent / path))
    return out


def _run_points(jobs: list[tuple[Path, Any, tuple]], workers: int) -> list[dict[str, Any]]:
    """Each (path, fn, args) through :func:`cached`, the new ones as Dask tasks on a
    LocalCluster of ``workers`` processes, with a progress bar."""
    from tqdm import tqdm

    # the model's .op points take longest: they go first
    todo = sorted((k for k, (path, _, _) in enumerate(jobs) if not path.is_file()),
                  key=lambda k: (not jobs[k][0].name.startswith("digits_op"), k))
    out: list[Any] = [None] * len(jobs)
    for k, (path, fn, args) in enumerate(jobs):
        if k not in todo:
            out[k] = cached(path, fn, *args)
    if todo:
        from distributed import Client, LocalCluster, as_completed

        with LocalCluster(n_workers=min(workers, len(todo)), threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            futs = {client.submit(cached, jobs[k][0], jobs[k][1], *jobs[k][2], pure=False): k for k in todo}
            with tqdm(total=len(todo), desc="transistor-level points", unit="run") as bar:
                for fut in as_completed(list(futs)):
                    out[futs[fut]] = fut.result()
                    bar.update(1)
    return out


def plan_jobs(args: argparse.Namespace, runs_dir: Path, n1: float, tau_cell: dict[float, float] | None = None
              ) -> dict[str, list]:
    """The study's transistor-level points as (path, fn, args) jobs by kind: ``cell`` (the
    tanh cell's testbench at every bias current), ``op`` (the model's ``.op`` not read from
    a report), ``tiny_op`` (the tiny MLP's ``.op``, for the bias currents where the model's
    is not measured) and, given the testbench's ``tau_cell`` (s) by bias current, ``tran``
    (the model's ``.tran`` points, sized by :func:`tradeoff_settle.tran_plan` with the
    testbench's tau_cell as the cells' delay)."""
    tran = [tuple(float(v) for v in s.split(":")) for s in args.tran]
    tiny_ib = [] if args.model == "tiny" else [ib for ib in args.tiny_ib if ib not in args.ib]
    ib_all = sorted(set(args.ib_grid) | set(args.ib) | set(tiny_ib) | {ib for ib, _ in tran})
    reports = dict(_parse_reports(args.op_report)) if args.model == "digits" else {}
    jobs: dict[str, list] = {"cell": [(runs_dir / f"cell_tanh_ib{ib:.3g}.json", cell_point, (ib,)) for ib in ib_all]}
    jobs["op"] = [(runs_dir / f"{point_name(args.model, 'op', ib, 1e-9, args.beta)}.json", run_point,
                   (args.model, "op", ib, 1e-9, args.beta, None)) for ib in args.ib if ib not in reports]
    jobs["tiny_op"] = [(runs_dir / f"{point_name('tiny', 'op', ib, 1e-9, args.beta)}.json", run_point,
                        ("tiny", "op", ib, 1e-9, args.beta, None)) for ib in tiny_ib]
    jobs["tran"] = []
    for ib, c in tran if tau_cell is not None else ():
        plan = tran_plan(R_OHM, c, n1, tau_cell[ib])
        jobs["tran"].append((runs_dir / f"{point_name(args.model, 'tran', ib, c, args.beta)}.json", run_point,
                             (args.model, "tran", ib, c, args.beta, plan["duration_tau"], plan["step_tau"])))
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser, args = parse_args(argv)
    out = output_dir(parser, args, HERE, "sky130_tradeoff", neutral=("workers",))
    runs_dir = out / "tradeoff_runs"
    t_start, cpu0 = time.time(), time.process_time()
    graph, batch = model_and_batch(args.model)
    counts = network_counts(graph)
    tiny_graph, _ = model_and_batch("tiny")
    tiny_counts = network_counts(tiny_graph)

    # ideal settling and tensions (reference simulator)
    n1, t_rms = ideal_settling(graph, batch, args.beta)

    # every ngspice point as one Dask task (reused from tradeoff_runs/ when there)
    r_ohm = R_OHM
    cells_first = _run_points(plan_jobs(args, runs_dir, n1)["cell"], args.workers)  # they size the .tran runs
    jobs = plan_jobs(args, runs_dir, n1, {r["ib_A"]: r["tau_s"] for r in cells_first})
    kinds = list(jobs)
    points = _run_points([j for k in kinds for j in jobs[k]], args.workers)
    done: dict[str, list] = {}
    pos = 0
    for k in kinds:
        done[k] = points[pos:pos + len(jobs[k])]
        pos += len(jobs[k])
    cell = {r["ib_A"]: r for r in done["cell"]}
    reports = dict(_parse_reports(args.op_report)) if args.model == "digits" else {}
    op = {r["ib_A"]: r for r in done["op"]}
    op.update({ib: op_from_report(path, ib) for ib, path in reports.items()})
    tiny_op = {r["ib_A"]: r for r in done["tiny_op"]}
    trans = done["tran"]
    for r in trans:  # the end's own residual: how much later the true 1 % crossing may come
        r.update(end_residual(r["trace"]["curve_t_s"], r["trace"]["curve_err"], r["settling_time_1pct_s"],
                              r["duration_s"]))

    # the settling model: tau_net(ib) from the run with the smallest R*C at each measured ib
    fitted = fit_model(trans, n1) if trans else {}
    tau_cells = {ib: r["tau_s"] for ib, r in cell.items()}
    fit_at = fit_points(trans)
    measured_t = {(r["ib_A"], r["c_F"]): r for r in trans}

    static = static_errors(op, tiny_op)
    rows = []
    for ib in sorted(set(args.ib_grid) | set(args.ib)):
        c_row = cell[ib]
        p_der = counts["cells"] * c_row["power_W"]
        p, p_src = (op[ib]["supply_power_W"], "measured") if ib in op else (p_der, "derived")
        s_static, s_src = _interp_static(ib, static)
        tn, tn_src = tau_net(ib, fitted, tau_cells) if fitted else (c_row["tau_s"], "testbench")
        for c in args.caps:
            late = float("nan")
            if (ib, c) in measured_t:
                m = measured_t[(ib, c)]
                t, t_src, prec, late = m["settling_time_1pct_s"], "measured", m["step_s"], m["t1_late_s"]
            else:
                t, t_src, prec = n1 * (r_ohm * c + tn), f"model (tau_net {tn_src})", float("nan")
            floor = ktc_floor(c, t_rms)
            cap_mm2 = 2 * counts["nodes"] * c / CAP_DENSITY_F_PER_UM2 * 1e-6
            cells_mm2 = counts["cells"] * c_row["area_um2"] * 1e-6
            rows.append({"model": args.model, "ib_A": ib, "c_F": c, "tau_rc_s": r_ohm * c, "tau_cell_s": c_row["tau_s"],
                         "tau_net_s": tn, "power_W": p, "power_src": p_src, "settling_time_s": t, "settling_src": t_src,
                         "settling_precision_s": prec, "settling_late_s": late, "settling_ideal_s": n1 * r_ohm * c,
                         "settling_series_s": n1 * (r_ohm * c + c_row["tau_s"]),
                         "energy_J": p * t, "energy_src": "measured" if (t_src, p_src) == ("measured", "measured")
                         else "derived", "area_mm2": cells_mm2 + cap_mm2,
                         "area_cells_mm2": cells_mm2, "area_caps_mm2": cap_mm2, "one_minus_cos_static": s_static,
                         "static_src": s_src, "one_minus_cos_ktc": floor, "one_minus_cos": s_static + floor})
    check = []
    for ib, r in op.items():
        check.append({"model": args.model, "analysis": "op", "ib_A": ib, "c_F": float("nan"), "quantity": "power_W",
                      "measured": r["supply_power_W"], "derived": counts["cells"] * cell[ib]["power_W"],
                      "role": "check", "precision": float("nan"), "late": float("nan")})
    for ib, r in tiny_op.items():
        check.append({"model": "tiny", "analysis": "op", "ib_A": ib, "c_F": float("nan"), "quantity": "power_W",
                      "measured": r["supply_power_W"], "derived": tiny_counts["cells"] * cell[ib]["power_W"],
                      "role": "check", "precision": float("nan"), "late": float("nan")})
    for r in trans:
        ib, c = r["ib_A"], r["c_F"]
        p_der = counts["cells"] * cell[ib]["power_W"]
        role = "fit" if (ib, c) in fit_at else "check"
        t_der = settling_model(ib, c, r_ohm, n1, fitted, tau_cells)
        t_ser = n1 * (r_ohm * c + cell[ib]["tau_s"])
        nan = float("nan")
        for q, meas, der, prec, late in (("power_W", r["supply_power_W"], p_der, nan, nan),
                                         ("settling_time_s", r["settling_time_1pct_s"], t_der, r["step_s"], r["t1_late_s"]),
                                         ("settling_series_s", r["settling_time_1pct_s"], t_ser, r["step_s"], r["t1_late_s"]),
                                         ("energy_J", r["energy_per_sample_J"], p_der * t_der, nan, nan)):
            check.append({"model": args.model, "analysis": "tran", "ib_A": ib, "c_F": c, "quantity": q,
                          "measured": meas, "derived": der, "role": role if q in ("settling_time_s", "energy_J")
                          else "check", "precision": prec, "late": late})
    for row in check:
        m, d = row["measured"], row["derived"]
        row["derived_over_measured"] = d / m if m and np.isfinite(m) and m != 0 else float("nan")

    digital = [digital_reference(graph, batch, "ce" if args.model == "digits" else "mse", args.cpu_min_s)]
    from hwbp.io import random_batch
    digital.append(digital_reference(graph, random_batch(graph, 64, seed=0), "ce" if args.model == "digits" else "mse",
                                     args.cpu_min_s))
    for row in rows:
        row["energy_over_cpu"] = row["energy_J"] / digital[0]["torch_J"]
        row["energy_over_accelerator"] = row["energy_J"] / digital[0]["accelerator_J"]

    full = None
    if args.model == "digits" and not args.no_full and (1e-6, 1e-12) in measured_t:
        from tradeoff_full import synapse_counts, whole_network

        full = whole_network(counts, synapse_counts(graph), measured_t[(1e-6, 1e-12)], n1, digital[0])

    argv_s = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    command = f"nice -n 15 .venv/bin/python sims/sky130/tradeoff.py {argv_s}".strip()
    reused = sum(1 for r in points if r.get("reused")) + len(reports)
    meta = {"command": command, "machine": machine(), "wall_s": time.time() - t_start,
            "cpu_s": time.process_time() - cpu0,
            "ngspice_cpu_s": sum(r.get("ngspice_cpu_s", 0.0) for r in points if not r.get("reused")),
            "load": os.getloadavg(), "reused": reused,
            "points_cpu_s": sum(r.get("ngspice_cpu_s", 0.0) + r.get("hwbp_cpu_s", 0.0) for r in points),
            "points_wall_s": sum(r.get("wall_s", 0.0) for r in points), "n_points": len(points) + len(reports),
            "counts": counts, "tiny_counts": tiny_counts, "n1": n1, "t_rms": t_rms,
            "beta": args.beta, "model": args.model, "r_ohm": r_ohm, "vu": VU_V, "temp_K": TEMP_K,
            "cpu_source": CPU_SOURCE, "mac_source": MAC_SOURCE, "op": op, "trans": trans, "cells": cell,
            "tiny_op": tiny_op, "tau_net": fitted, "fit_at": sorted(fit_at), "reports": reports,
            "step_fraction": STEP_FRACTION, "max_steps": MAX_STEPS, "full": full}
    write_csv(out / "tradeoff.csv", rows)
    write_csv(out / "tradeoff_check.csv", check)
    write_figures(out, rows, check, digital, meta)
    write_md(out / "tradeoff.md", rows, check, digital, meta)
    print(f"wrote {out / 'tradeoff.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
