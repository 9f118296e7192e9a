"""Tables and figures of the trade-off study (``tradeoff.py``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``rows`` as CSV (floats to 6 significant digits)."""
    keys = list(rows[0]) if rows else []
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, keys, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _si(x: float, unit: str) -> str:
    if not np.isfinite(x):
        return "n/a"
    for f, p in ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")):
        if abs(x) < f * 999.5:
            return f"{x / f:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


def _colors(n: int) -> list:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    return [cmap(0.9 * k / max(n - 1, 1)) for k in range(n)]


def write_figures(out: Path, rows: Sequence[dict[str, Any]], check: Sequence[dict[str, Any]],
                  digital: Sequence[dict[str, Any]], meta: dict[str, Any]) -> None:
    """``tradeoff.png`` (energy, settling time, 1 - cosine with the kT/C floor, area against
    the node capacitance, one curve per bias current), ``tradeoff_pareto.png`` (energy
    against 1 - cosine), ``tradeoff_check.png`` (derived against measured) and
    ``tradeoff_settle.png`` (the measured ``.tran`` runs' settling)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ibs = sorted({r["ib_A"] for r in rows})
    colors = _colors(len(ibs))
    cpu_J, acc_J = digital[0]["torch_J"], digital[0]["accelerator_J"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), constrained_layout=True)
    (ax_e, ax_t), (ax_c, ax_a) = axes
    for ib, col in zip(ibs, colors):
        rs = [r for r in rows if r["ib_A"] == ib]
        c = [r["c_F"] for r in rs]
        meas_s = rs[0]["static_src"] == "measured"
        lab = f"ib = {_si(ib, 'A')}"
        ax_e.plot(c, [r["energy_J"] for r in rs], "--", color=col, lw=1, label=lab)
        for r in rs:
            filled = r["energy_src"] == "measured"
            ax_e.plot(r["c_F"], r["energy_J"], "o" if filled else "o", color=col, mfc=col if filled else "white",
                      ms=7 if filled else 5)
        ax_t.plot(c, [r["settling_time_s"] for r in rs], "--", color=col, lw=1, label=f"{lab}, τ_net {_si(rs[0]['tau_net_s'], 's')} "
                  f"({rs[0]['settling_src'].replace('model (tau_net ', '').rstrip(')') if rs[0]['settling_src'] != 'measured' else 'measured'})")
        for r in rs:
            filled = r["settling_src"] == "measured"
            ax_t.plot(r["c_F"], r["settling_time_s"], "o", color=col, mfc=col if filled else "white",
                      ms=7 if filled else 5)
            if filled and np.isfinite(r["settling_late_s"]):  # one step early, the end's residual late
                ax_t.errorbar(r["c_F"], r["settling_time_s"], yerr=[[r["settling_precision_s"]],
                                                                    [r["settling_late_s"]]], color=col, capsize=3)
        ax_c.plot(c, [r["one_minus_cos"] for r in rs], "--", color=col, marker="o",
                  mfc=col if meas_s else "white", label=f"{lab} (static {rs[0]['static_src']})")
    c_all = sorted({r["c_F"] for r in rows})
    ax_t.plot(c_all, [next(r["settling_ideal_s"] for r in rows if r["c_F"] == c) for c in c_all], "k:", lw=2,
              label="node alone, n₁%·R·C")
    ax_t.plot([], [], "o", color="0.3", ms=7, label="measured (.tran, transistor level)")
    ax_t.plot([], [], "o", color="0.3", mfc="white", ms=5, label="model n₁%·(R·C + τ_net(ib))")
    ax_e.plot([], [], "o", color="0.3", ms=7, label="measured (.op power × .tran t₁%)")
    ax_e.plot([], [], "o", color="0.3", mfc="white", ms=5, label="derived (model t₁%)")
    floor = [next(r["one_minus_cos_ktc"] for r in rows if r["c_F"] == c) for c in c_all]
    ax_c.plot(c_all, floor, "k-", lw=2.5, label="kT/C floor alone")
    ax_e.axhline(cpu_J, color="tab:red", lw=1.5, label=f"CPU (torch, measured time × 4.4 W/core): {_si(cpu_J, 'J')}")
    ax_e.axhline(acc_J, color="tab:orange", lw=1.5, label=f"fp32 MACs at 4.6 pJ (Horowitz 2014): {_si(acc_J, 'J')}")
    rs = [r for r in rows if r["ib_A"] == ibs[len(ibs) // 2]]
    ax_a.plot([r["c_F"] for r in rs], [r["area_mm2"] for r in rs], "k-o", mfc="white", label="total")
    ax_a.plot([r["c_F"] for r in rs], [r["area_caps_mm2"] for r in rs], ":", color="tab:blue", lw=2,
              label=f"node capacitors ({2 * meta['counts']['nodes']} MIM)")
    ax_a.plot([r["c_F"] for r in rs], [r["area_cells_mm2"] for r in rs], "-.", color="tab:green", lw=2,
              label=f"tanh cells ({meta['counts']['cells']}, ib = {_si(rs[0]['ib_A'], 'A')})")
    for ax, ylab, title in ((ax_e, "energy per sample-gradient (J)", "energy = power × 1 % settling time"),
                            (ax_t, "1 % settling time (s)", "settling: measured, and n₁%·(R·C + τ_net) between"),
                            (ax_c, "1 − cosine (worst tensor)", "gradient error: static (.op) + kT/C"),
                            (ax_a, "area (mm²)", "device area")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("node capacitance C (F)")
        ax.set_ylabel(ylab)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    ax_e.set_ylim(top=max(cpu_J, max(r["energy_J"] for r in rows)) * 1e3)
    ax_e.legend(fontsize=7, loc="upper left", ncol=2)
    ax_t.set_ylim(top=max(r["settling_time_s"] for r in rows) * 30)
    ax_t.legend(fontsize=7, loc="upper left")
    ax_c.legend(fontsize=7, loc="lower left")
    ax_a.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{meta['model']} MLP on SKY130 tt 27 °C, β = {meta['beta']:g}, R = {meta['r_ohm']:g} Ω: "
                 "filled markers are transistor-level measurements, open ones derived", fontsize=10)
    fig.savefig(out / "tradeoff.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9.5, 5.5), constrained_layout=True)
    for ib, col in zip(ibs, colors):
        rs = [r for r in rows if r["ib_A"] == ib]
        ax.plot([r["energy_J"] for r in rs], [r["one_minus_cos"] for r in rs], "-", color=col, lw=1,
                label=f"ib = {_si(ib, 'A')}")
        for r in rs:
            filled = r["energy_src"] == "measured"
            ax.plot(r["energy_J"], r["one_minus_cos"], "o", color=col, mfc=col if filled else "white",
                    ms=6 if filled else 4)
        for r in (rs[0], rs[-1]):
            ax.annotate(_si(r["c_F"], "F"), (r["energy_J"], r["one_minus_cos"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4), color=col)
    ax.plot([], [], "o", color="0.3", ms=6, label="energy measured")
    ax.plot([], [], "o", color="0.3", mfc="white", ms=4, label="energy derived")
    ax.axvline(cpu_J, color="tab:red", lw=1.5, label="CPU, measured time × 4.4 W/core")
    ax.axvline(acc_J, color="tab:orange", lw=1.5, label="fp32 MACs, Horowitz 2014")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("energy per sample-gradient (J)")
    ax.set_ylabel("1 − cosine (worst tensor, static + kT/C)")
    ax.set_title(f"{meta['model']} MLP: the trade-off (each curve: C from {_si(rows[0]['c_F'], 'F')} to "
                 f"{_si(rows[-1]['c_F'], 'F')}, labels at its ends)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.yaxis.set_minor_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False,
                                                                           minor_thresholds=(2, 0.4)))
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.savefig(out / "tradeoff_pareto.png", dpi=110)
    plt.close(fig)

    quantities = [q for q in ("power_W", "settling_time_s", "settling_series_s", "energy_J")
                  if any(r["quantity"] == q for r in check)]
    fig, axes = plt.subplots(1, len(quantities), figsize=(4.3 * len(quantities), 4.3), constrained_layout=True,
                             squeeze=False)
    units = {"power_W": ("power (W)", "power: N_cells · P_cell(ib)"),
             "settling_time_s": ("1 % settling time (s)", "t₁%: n₁%·(R·C + τ_net(ib))"),
             "settling_series_s": ("1 % settling time (s)", "t₁%: n₁%·(R·C + τ_cell), testbench τ_cell"),
             "energy_J": ("energy per sample (J)", "energy: power × model t₁%")}
    for ax, q in zip(axes[0], quantities):
        rs = [r for r in check if r["quantity"] == q and np.isfinite(r["measured"])]
        groups = sorted({(r["model"], r["analysis"], r["role"]) for r in rs})
        for k, ((model, analysis, role), mk) in enumerate(zip(groups, "sod^v")):
            sel = [r for r in rs if (r["model"], r["analysis"], r["role"]) == (model, analysis, role)]
            # later groups smaller and on top, so that a point measured twice shows both markers
            ax.scatter([r["measured"] for r in sel], [r["derived"] for r in sel], marker=mk, zorder=3 + k,
                       s=64 / (1 + 1.5 * k),
                       facecolors="white" if role == "fit" else None,
                       edgecolors="k" if role == "fit" else None,
                       label=f"{model} MLP, .{analysis}" + (" (fitted there)" if role == "fit" else ""))
        vals = [v for r in rs for v in (r["measured"], r["derived"]) if v > 0]
        if vals:
            lo, hi = min(vals) / 2, max(vals) * 2
            ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="derived = measured")
            ax.fill_between([lo, hi], [lo / 1.5, hi / 1.5], [lo * 1.5, hi * 1.5], color="0.85", label="within 1.5×",
                            zorder=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {units[q][0]}")
        ax.set_ylabel(f"derived {units[q][0]}")
        ax.set_title(units[q][1], fontsize=9)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle("derivations against the transistor-level measurements", fontsize=10)
    fig.savefig(out / "tradeoff_check.png", dpi=110)
    plt.close(fig)

    trans = meta.get("trans") or []
    if trans:
        fig, ax = plt.subplots(figsize=(8.5, 5), constrained_layout=True)
        for r in sorted(trans, key=lambda r: (r["ib_A"], r["c_F"])):
            col = colors[ibs.index(r["ib_A"])] if r["ib_A"] in ibs else "k"
            ls = {1e-9: "-", 1e-12: "--"}.get(r["c_F"], ":")
            ax.plot(r["trace"]["curve_t_s"], r["trace"]["curve_err"], ls, color=col, lw=1.5,
                    label=f"ib = {_si(r['ib_A'], 'A')}, C = {_si(r['c_F'], 'F')}: t₁% = "
                          f"{_si(r['settling_time_1pct_s'], 's')} (−{_si(r['step_s'], 's')} / "
                          f"+{_si(r.get('t1_late_s', float('nan')), 's')})")
            ax.plot(r["settling_time_1pct_s"], 0.01, "o", color=col, ms=5)
        ax.axhline(0.01, color="0.4", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-5, 10)
        ax.set_xlabel("time from the random initial state (s)")
        ax.set_ylabel("worst layer's relative tension error\n(against the run's last point)")
        ax.set_title(f"{meta['model']} MLP, transistor-level tanh cells: .tran settling (dot: the 1 % crossing)",
                     fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        fig.savefig(out / "tradeoff_settle.png", dpi=110)
        plt.close(fig)


def _tran_table(meta: dict[str, Any]) -> list[str]:
    """The measured ``.tran`` runs: sizing, precision, settling per layer, gate time constants."""
    trans = sorted(meta.get("trans") or [], key=lambda r: (r["ib_A"], r["c_F"]))
    if not trans:
        return []
    layers = list(trans[0]["trace"]["layers"])
    gates = list(trans[0]["trace"]["gates"])
    lines = ["", "The measured `.tran` runs (one random sample, from the random initial state; the output step is "
             "also ngspice's largest internal step, and t₁% is read on the output grid, so it is known to one step "
             "early; it is measured against the run's last point, which has not settled exactly either: τ_tail is "
             "the time constant of the error's tail, fitted where the error falls from 3 % to 0.3 %, and + end = "
             "−τ_tail·ln(1 − e^−(T − t₁%)/τ_tail), T the duration, is how much later the true crossing comes on "
             "that tail (a lower estimate: a mode slower than the run shows is not seen):",
             "", "| ib | C | R·C | duration | step | step / τ_min | t₁% | step / t₁% | t₁% / duration | τ_tail | + end | "
             + " | ".join(f"t₁% {k}" for k in layers) + " | "
             + " | ".join(f"τ_gate {k.split('/')[0]}" for k in gates) + " | power | energy | min cos | CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * (len(layers) + len(gates)) + "---|---|---|---|"]
    for r in trans:
        tau_min = min(r["r_ohm"] * r["c_F"], meta["cells"][r["ib_A"]]["tau_s"])
        lines.append(
            f"| {_si(r['ib_A'], 'A')} | {_si(r['c_F'], 'F')} | {_si(r['r_ohm'] * r['c_F'], 's')} | "
            f"{_si(r['duration_s'], 's')} | {_si(r['step_s'], 's')} | {r['step_s'] / tau_min:.3g} | "
            f"{_si(r['settling_time_1pct_s'], 's')} | {r['step_s'] / r['settling_time_1pct_s']:.2%} | "
            f"{r['settling_time_1pct_s'] / r['duration_s']:.2f} | {_si(r['tail_tau_s'], 's')} | "
            f"{_si(r['t1_late_s'], 's')} | "
            + " | ".join(_si(r["trace"]["layers"][k]["t1_tension_s"], "s") for k in layers) + " | "
            + " | ".join(_si(r["trace"]["gates"][k]["delay_s"], "s") for k in gates) + " | "
            f"{_si(r['supply_power_W'], 'W')} | {_si(r['energy_per_sample_J'], 'J')} | {r['min_cosine']:.5f} | "
            f"{r['ngspice_cpu_s'] + r['hwbp_cpu_s']:.0f} s |")
    return lines


def write_md(path: Path, rows: Sequence[dict[str, Any]], check: Sequence[dict[str, Any]],
             digital: Sequence[dict[str, Any]], meta: dict[str, Any]) -> None:
    """The study's page: command and machine, definitions, the trade-off table, the check
    of the derivation and the digital reference."""
    load = meta["load"]
    n = meta["counts"]
    reports = meta.get("reports") or {}
    rep = "".join(f"; the digits MLP's `.op` at {_si(ib, 'A')} is the committed `{Path(p).name}` of `hwbp verify "
                  "examples/mlp_digits.onnx --loss ce --backend spice --pdk sky130 --pdk-cells act --random-batch 1 "
                  f"--timeout 1500 --min-cosine 0.99 --rtol 1 --report sims/sky130/{Path(p).name}`"
                  for ib, p in sorted(reports.items()))
    tau_net = meta.get("tau_net") or {}
    tiny = meta.get("tiny_op") or {}
    fit_at = ", ".join(f"({_si(ib, 'A')}, {_si(c, 'F')})" for ib, c in meta.get("fit_at", []))
    lines = [
        "# SKY130: energy, area, settling time and gradient error against bias current and node capacitance",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"(1/5/15 min; shared with other jobs); wall time {meta['wall_s'] / 60:.1f} min, CPU {meta['cpu_s']:.0f} s "
        f"in this process and {meta['ngspice_cpu_s']:.0f} s in ngspice for the points run now; "
        f"{meta['reused']} of {meta['n_points']} transistor-level points read from `tradeoff_runs/` "
        f"(all points together: {meta['points_cpu_s']:.0f} s CPU, hwbp and ngspice, "
        f"{meta['points_wall_s'] / 60:.0f} min of wall time on this shared machine; each point's JSON holds its own; "
        f"made by earlier runs of the same command{rep})",
        f"- network: {meta['model']} MLP, {n['cells']} tanh cells at transistor level, {n['nodes']} node pairs "
        f"({2 * n['nodes']} node capacitors), β = {meta['beta']:g}, one random sample (seed 0), tt, 27 °C; node "
        f"resistance R = {meta['r_ohm']:g} Ω (the behavioral default), so τ = R·C",
        "",
        "## What is measured and what is derived",
        "",
        f"Measured at transistor level (ngspice, BSIM4 SKY130 models), on the {meta['model']} MLP itself: its `.op` "
        "at " + ", ".join(_si(ib, "A") for ib in sorted(meta["op"])) + " (supply power of the tanh cells, cosine of "
        "every gradient tensor against exact backprop); its `.tran` at "
        + ", ".join(f"({_si(r['ib_A'], 'A')}, {_si(r['c_F'], 'F')})" for r in sorted(
            meta.get("trans") or [], key=lambda r: (r["ib_A"], r["c_F"])))
        + " (1 % settling time from `.tran`'s random initial state, to one output step; the waveforms); the tanh "
        "cell's testbench at every bias current (power, area, τ_cell from its −3 dB bandwidth)"
        + (", and the tiny 4-8-3 MLP's `.op` at " + ", ".join(_si(ib, "A") for ib in sorted(tiny)) if tiny else "")
        + ". Derived, and marked so in `tradeoff.csv` (`*_src` columns) and with open markers in the figures:",
        "",
        f"- **settling time** t₁% = n₁% · (R·C + τ_net(ib)), n₁% = {meta['n1']:.2f} the ideal network's 1 % "
        "settling time in units of τ (reference simulator, continuous mode, from `.tran`'s random initial state): "
        "the node and the cells as lags in series, with τ_net(ib) the cells' delay *in the network*, fitted at each "
        f"measured bias current to the `.tran` run of smallest C there ({fit_at}: where the cells set the time) as "
        "t₁%/n₁% − R·C; τ_net = "
        + ", ".join(f"{_si(v, 's')} at {_si(ib, 'A')}" for ib, v in sorted(tau_net.items()))
        + "; at another bias current the testbench's τ_cell(ib) times the measured ratio τ_net/τ_cell, log-log "
        "interpolated in ib between the measured ones and held at the nearest outside them (`model (tau_net "
        "interpolated/extrapolated)`). Every other `.tran` run checks the model (table below). Where a grid point "
        "was measured, the table gives the measurement (`measured`). Beside it, the testbench's τ_cell (its −3 dB "
        "bandwidth) is " + ", ".join(f"{meta['cells'][ib]['tau_s'] / v:.2g}× τ_net at {_si(ib, 'A')}"
                                     for ib, v in sorted(tau_net.items()))
        + ": the earlier series model with τ_cell is in the check table as `settling_series_s`;",
        f"- **the `.tran` runs' step**: the output step, also ngspice's largest internal step, is "
        f"τ_min/{1 / meta['step_fraction']:.0f} with τ_min the smaller of R·C and the testbench's τ_cell(ib), unless "
        f"that makes more than {meta['max_steps']} steps over the run (then duration/{meta['max_steps']}, a larger "
        "fraction of τ_min, given per run below); a run lasts 4 n₁%·(R·C + τ_cell(ib)), 4× the series model's t₁%. "
        "t₁% is read on that grid, so it is known to ± one step: the precision column of the tables;",
        "- **energy per sample-gradient** E = P · t₁% (P: measured `.op` supply power where the bias current was "
        "measured, else N_cells · P_cell(ib) from the testbench); `measured` where both P and t₁% are;",
        "- **area** = N_cells · A_cell + 2 N_nodes · C / (2 fF/µm², the MIM density); in this table and its "
        "figures the synapses and the node leaks are behavioral and not counted, nor is their power (the section "
        "*The whole network at transistor level* below counts them, at one point);",
        "- **kT/C floor**: each node capacitor carries thermal noise of variance kT/C (V²), the tension x⁺ − x⁻ "
        "twice that, i.e. 2kT/(C·vu²) in units at the cells' scale vu = 0.125 V per unit. A layer's gradient "
        "(bias: its tension; weight: the tension's outer product with the layer input, whose norm cancels) then "
        "has SNR = T_rms² · C · vu² / (2kT), T_rms the layer's rms tension at β in the ideal network, and expected "
        "cosine 1/√(1 + 1/SNR); the floor is the worst layer's 1 − cosine, for one snapshot of the nodes "
        "(averaging the readout over a window longer than τ lowers it). T_rms here: "
        + ", ".join(f"{k} {v:.6g}" for k, v in meta["t_rms"].items()) + " (units);",
        "- **1 − cosine** at (ib, C) = the static 1 − cos (worst tensor) of the network's `.op` at that bias "
        "current (`measured`; at a bias current without it: log-interpolated between measured ones, `derived "
        "(interpolated)`, or the nearest measured value times the tiny MLP's ratio, `derived (tiny ratio)`) plus "
        "the kT/C floor (small angles add in quadrature).",
        "",
        "## The trade-off",
        "",
        "![trade-off](tradeoff.png)",
        "",
        "![energy against gradient error](tradeoff_pareto.png)",
        "",
        "| ib | C | power | P src | τ_net | t₁% | t₁% src | precision | energy | E src | area (mm²) | 1−cos static | src | "
        "kT/C floor | 1−cos | E / CPU | E / accel. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        prec = (f"−{_si(r['settling_precision_s'], 's')} / +{_si(r['settling_late_s'], 's')}"
                if np.isfinite(r["settling_precision_s"]) else "–")
        lines.append(f"| {_si(r['ib_A'], 'A')} | {_si(r['c_F'], 'F')} | {_si(r['power_W'], 'W')} | {r['power_src']} | "
                     f"{_si(r['tau_net_s'], 's')} | {_si(r['settling_time_s'], 's')} | {r['settling_src']} | {prec} | "
                     f"{_si(r['energy_J'], 'J')} | {r['energy_src']} | "
                     f"{r['area_mm2']:.3g} | {r['one_minus_cos_static']:.3g} | {r['static_src']} | "
                     f"{r['one_minus_cos_ktc']:.2g} | {r['one_minus_cos']:.3g} | {r['energy_over_cpu']:.2g} | "
                     f"{r['energy_over_accelerator']:.2g} |")
    lines += ["", "## The derivation against the measurements", "", "![check](tradeoff_check.png)", "",
              "![settling](tradeoff_settle.png)", "",
              "`settling_time_s` is the model above; `settling_series_s` the earlier model n₁%·(R·C + τ_cell) with "
              "the testbench's τ_cell, kept for comparison. Role `fit`: the run τ_net was fitted to (derived = "
              "measured there by construction); `check`: an independent run. Precision of a measured t₁%: − one "
              "output step (the grid), + the end's residual (the true crossing may come that much later, below).", "",
              "| model | analysis | ib | C | quantity | role | measured | precision | derived | derived / measured |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in check:
        c = "" if not np.isfinite(r["c_F"]) else _si(r["c_F"], "F")
        prec = f"−{r['precision']:.2g} / +{r['late']:.2g}" if np.isfinite(r["precision"]) else ""
        lines.append(f"| {r['model']} | {r['analysis']} | {_si(r['ib_A'], 'A')} | {c} | {r['quantity']} | {r['role']} | "
                     f"{r['measured']:.4g} | {prec} | {r['derived']:.4g} | {r['derived_over_measured']:.3g} |")
    ratios: dict[str, list[float]] = {}
    for r in check:
        if np.isfinite(r["derived_over_measured"]) and r["role"] == "check":
            ratios.setdefault(r["quantity"], []).append(r["derived_over_measured"])
    lines += ["", "Agreement on the `check` rows (derived / measured, range): "
              + "; ".join(f"{q} {min(v):.3g}–{max(v):.3g}" for q, v in sorted(ratios.items())) + "."]
    lines += _tran_table(meta)
    lines += ["", "τ_gate: each gate cell's time constant in the network, fitted to the waveforms (the gate node "
              "f′(a)·T as a first-order lag behind the node pair's mean and tension it reads, over the time the "
              "gate's error falls from 30 % to 0.1 %): a rough, independent look at the cells' speed in the network, "
              "not used by the model. The fits scatter between runs; a value at a tenth of the run's step is the "
              "search's floor (no lag resolved; the output layer's gate is behavioral, so its floor is expected)."]
    names = list(next(iter(meta["op"].values()))["tensors"])
    lines += ["", "Static gradient error measured at transistor level (`.op`, cosine per tensor):", "",
              "| model | ib | power | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for ib, r in sorted(meta["op"].items()):
        lines.append(f"| {meta['model']} | {_si(ib, 'A')} | {_si(r['supply_power_W'], 'W')} | "
                     + " | ".join(f"{r['tensors'][k]['cosine']:.5f}" for k in names) + " |")
    if tiny:
        tn = list(next(iter(tiny.values()))["tensors"])
        lines += ["", "The tiny 4-8-3 MLP's `.op` (its ratios stand in for the model's static error at a bias current "
                  "where the model's `.op` is not measured):", "",
                  "| model | ib | power | " + " | ".join(tn) + " |", "|---|---|---|" + "---|" * len(tn)]
        for ib, r in sorted(tiny.items()):
            lines.append(f"| tiny | {_si(ib, 'A')} | {_si(r['supply_power_W'], 'W')} | "
                         + " | ".join(f"{r['tensors'][k]['cosine']:.5f}" for k in tn) + " |")
    lines += ["", "Tanh cell testbench (tt, 27 °C) at each bias current:", "",
              "| ib | power | τ_cell | f gain | gate gain | area (µm²) |", "|---|---|---|---|---|---|"]
    for ib, c in sorted(meta["cells"].items()):
        lines.append(f"| {_si(ib, 'A')} | {_si(c['power_W'], 'W')} | {_si(c['tau_s'], 's')} | {c['f_gain']:.4f} | "
                     f"{c['gate_gain']:.4f} | {c['area_um2']:.1f} |")
    d1, d64 = digital[0], digital[1]
    lines += ["", "## Digital reference", "",
              "The same gradient (one sample; and per sample of a batch of 64) computed on this machine's CPU, one "
              "thread, CPU time measured in this run (least of 3 rounds), priced at "
              f"{d1['cpu_w_per_core']:.3g} W per core ({meta['cpu_source']}); and the gradient's "
              f"{d1['gradient_macs']} multiply-accumulates (forward, weight gradients, backward below the first "
              f"layer) priced at {meta['mac_source']} (arithmetic alone, no memory access).", "",
              "| reference | batch | CPU time per sample | energy per sample-gradient |", "|---|---|---|---|"]
    for d in (d1, d64):
        lines.append(f"| torch autograd, float32 | {d['batch']} | {_si(d['torch_cpu_s'], 's')} | "
                     f"{_si(d['torch_J'], 'J')} |")
        lines.append(f"| hwbp reference simulator (steady) | {d['batch']} | {_si(d['reference_cpu_s'], 's')} | "
                     f"{_si(d['reference_J'], 'J')} |")
    lines.append(f"| fp32 MACs at 4.6 pJ (Horowitz, 45 nm) | – | – | {_si(d1['accelerator_J'], 'J')} |")
    best = min(rows, key=lambda r: r["energy_J"])
    lines += ["", f"The columns E / CPU and E / accel. divide the analog energy by the torch batch-1 energy "
              f"({_si(d1['torch_J'], 'J')}) and by the Horowitz MAC energy ({_si(d1['accelerator_J'], 'J')}). "
              f"Lowest analog energy in the grid: {_si(best['energy_J'], 'J')} at ib = {_si(best['ib_A'], 'A')}, "
              f"C = {_si(best['c_F'], 'F')} ({best['energy_src']}; 1 − cos {best['one_minus_cos']:.3g}), "
              f"{best['energy_over_cpu']:.2g}× the CPU and {best['energy_over_accelerator']:.2g}× the MAC figure. "
              "The analog energy of the grid counts the tanh cells' supplies only: the behavioral synapses, node leaks "
              "and loss port (and any readout/ADC) are not in it, so it is a lower bound of a full chip's; the next "
              "section counts every cell at one point."]
    lines += _full_section(meta.get("full"), d1)
    path.write_text("\n".join(lines) + "\n")


def _full_section(full: dict[str, Any] | None, d1: dict[str, Any]) -> list[str]:
    """The section on the digits MLP with every cell at transistor level
    (:func:`tradeoff_full.whole_network`); nothing without it."""
    if not full:
        return []
    r0 = full["rows"][0]
    syn = full["synapses"]
    n_syn = syn["input"] + syn["full"]
    lines = ["", "## The whole network at transistor level", "",
             f"The digits MLP with every cell at transistor level (`--pdk-cells {r0['pdk_cells']} --pdk-solve "
             "partitioned`): its `.op` at the cells' default 1 µA tails, node pairs with their own "
             f"{_si(r0['node_C_F'], 'F')} capacitors as drawn (so the act-only `.tran` point to compare with is "
             f"({_si(full['tran_ib_A'], 'A')}, {_si(full['tran_c_F'], 'F')})). **Measured** (committed reports, no "
             "ngspice in this run): supply power and cosine. The power splits as: the synapses alone "
             f"(`--pdk-cells syn`, `digits_tt_syn_only.json`) {_si(r0['power_syn_only_W'], 'W')}, the tanh cells "
             f"alone (`digits_tt.json`, default sizing) {_si(r0['power_act_only_W'], 'W')}; the node pairs are "
             "passive (no supply) and the cross-entropy loss has no transistor cell (`loss` is the MSE port), so "
             "the rest, whole − synapses − tanh cells, is the cells' interaction only (column *rest*; with the rt = 4 sizing it also holds that sizing's change of the tanh cells' power). "
             f"**Derived**: area = N × the registered cell area per kind ({n_syn} synapses × "
             f"{r0['area_syn_um2']:.1f} µm², of which the {syn['input']} first-layer ones use only the cell's "
             f"forward half and are counted whole, an upper bound; 64 tanh cells; the node pairs × "
             f"{r0['area_node_um2']:.0f} µm², their {_si(r0['node_C_F'], 'F')} MIM capacitors included); the "
             "settling time, not measured with every cell: the act-only digits `.tran` t₁% at "
             f"({_si(full['tran_ib_A'], 'A')}, {_si(full['tran_c_F'], 'F')}), {_si(r0['t_act_only_s'], 's')} "
             "(measured), plus the synapses' delay, two ways: (a) the tiny 4-8-3 MLP's measured lengthening of "
             f"its 1 % settling by the transistor synapses ({_si(full['tiny_extra_s'], 's')}, "
             "`sims/sky130/tran_cells`), (b) the synapse as one more lag in series, n₁%·τ_syn with the synapse "
             f"testbench's τ_syn = {_si(full['tau_syn_s'], 's')} (`sims/sky130/blocks/blocks.csv`), n₁% = "
             f"{full['n1']:.2f}. Neither is measured on this network: (a) is likely low (the digits MLP has one "
             "synapse layer more than the tiny one), (b) is the study's series-lag model with one more lag; energy "
             "per sample-gradient = the measured whole-network power × that time.", "",
             "| tanh sizing | report | power (all cells) | synapses alone | tanh alone (default sizing) | rest | area (mm²) | "
             "area synapses / tanh / nodes (mm²) | min cosine | t₁% (a) | energy (a) | t₁% (b) | energy (b) | "
             "E (a) / CPU | E (a) / accel. | E (b) / CPU | E (b) / accel. |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in full["rows"]:
        lines.append(f"| {r['sizing']} | `{r['report']}` | {_si(r['power_W'], 'W')} | {_si(r['power_syn_only_W'], 'W')} | "
                     f"{_si(r['power_act_only_W'], 'W')} | {_si(r['power_rest_W'], 'W')} | {r['area_mm2']:.3g} | "
                     f"{r['area_syn_mm2']:.3g} / {r['area_act_mm2']:.3g} / {r['area_node_mm2']:.3g} | "
                     f"{r['min_cosine']:.5f} | {_si(r['t_tiny_s'], 's')} | {_si(r['energy_tiny_J'], 'J')} | "
                     f"{_si(r['t_series_s'], 's')} | {_si(r['energy_series_J'], 'J')} | "
                     f"{r['energy_tiny_over_cpu']:.2g} | {r['energy_tiny_over_accelerator']:.2g} | "
                     f"{r['energy_series_over_cpu']:.2g} | {r['energy_series_over_accelerator']:.2g} |")
    lines += ["", f"Sources: power, cosine measured; area, t₁% and energy derived (t₁% (a): {r0['t_tiny_src']}; "
              f"(b): {r0['t_series_src']}). The ratios divide by the digital references above (torch batch-1 "
              f"{_si(d1['torch_J'], 'J')}, fp32 MACs {_si(d1['accelerator_J'], 'J')}). Against the tanh cells alone "
              f"at the same point (act-only `.tran`, {_si(r0['power_act_only_W'], 'W')}, min cosine "
              f"{r0['act_only_min_cosine']:.5f}) the whole network draws "
              f"{r0['power_W'] / r0['power_act_only_W']:.1f}× the power, the synapses alone "
              f"{r0['power_syn_only_W'] / r0['power_W']:.0%} of it, and the synapses are "
              f"{r0['area_syn_mm2'] / r0['area_mm2']:.0%} of the area."]
    return lines
