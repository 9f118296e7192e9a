"""The report of ``sims/sky130/tanh_sizing.py``: ``tanh_sizing.csv`` (one row per sizing, seed
and cell set), ``tanh_sizing.md`` (the cell per sizing, the worst tensor per seed, where the
default cell's error comes from) and ``tanh_sizing.png`` (worst-tensor 1 - cosine against
the model seed, one series per sizing, log axis)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

TENSORS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def _worst(run: Mapping[str, Any]) -> float:
    return max(run["one_minus_cos"].values())


def write_csv(path: Path, sizings: Sequence[tuple], nets: Mapping[tuple, dict], decomp: Mapping[tuple, dict]) -> None:
    """One row per (sizing, seed, cell set)."""
    spec = {s[0]: s for s in sizings}
    keys = ["sizing", "act_param", "act_bias_A", "beta", "seed", "pdk_cells", *[f"one_minus_cos_{t}" for t in TENSORS],
            "worst_one_minus_cos", "min_cosine", "hidden_a_max", "hidden_T_max", "supply_power_W",
            "model_finite_difference_alone", "model_shape_alone"]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, keys, lineterminator="\n")
        w.writeheader()
        for (label, seed, cells), r in nets.items():
            if label not in spec:
                continue
            _, act, ib, beta, _ = spec[label]
            d = decomp.get((label, seed), {}) if cells == "act" else {}
            row = {"sizing": label, "act_param": act or "", "act_bias_A": "" if ib is None else ib, "beta": beta,
                   "seed": seed, "pdk_cells": cells, "worst_one_minus_cos": _worst(r),
                   "min_cosine": 1.0 - _worst(r), "hidden_a_max": r["a_max"], "hidden_T_max": r["T_max"],
                   "supply_power_W": r["supply_power_W"], "model_finite_difference_alone": d.get("finite_difference", ""),
                   "model_shape_alone": d.get("shape", "")}
            row.update({f"one_minus_cos_{t}": r["one_minus_cos"][t] for t in TENSORS})
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def write_figure(path: Path, sizings: Sequence[tuple], nets: Mapping[tuple, dict], seeds: Sequence[int],
                 min_cosine: float) -> None:
    """Worst-tensor 1 - cosine against the seed, one series per sizing (log axis, the bound dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 4.6))
    markers = "osD^vP*X"
    n = len(sizings)
    for i, (label, *_rest) in enumerate(sizings):
        xs = [s for s in seeds if (label, s, "act") in nets]
        ys = [_worst(nets[(label, s, "act")]) for s in xs]
        dx = (i - (n - 1) / 2) * 0.11  # side by side, so that no series hides another
        ax.semilogy(np.array(xs) + dx, ys, marker=markers[i % len(markers)], linestyle="none",
                    markersize=7, alpha=0.9, label=label)
    ax.axhline(1.0 - min_cosine, color="k", linestyle="--", linewidth=1.0, label=f"bound (cosine {min_cosine:g})")
    ax.set_xlabel("model seed of random_mlp([4, 8, 3]) (1)")
    ax.set_ylabel("worst tensor 1 - cosine (1)")
    ax.set_xticks(list(seeds))
    ax.set_title("SKY130 tanh cell sizings: tiny MLP, --pdk-cells act, tt, 27 C", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_report(out: Path, sizings: Sequence[tuple], cells: Mapping[str, dict], nets: Mapping[tuple, dict],
                 decomp: Mapping[tuple, dict], seeds: Sequence[int], vu_trim: float, cpu_s: float, recommended: str,
                 min_cosine: float, argv: str, where: str, mc: Mapping[str, list] | None = None,
                 mc_nets: Mapping[tuple, dict] | None = None) -> None:
    """Write the csv, the figure and the markdown report into ``out`` (``where``: the machine
    line of the measurements)."""
    write_csv(out / "tanh_sizing.csv", sizings, nets, decomp)
    write_figure(out / "tanh_sizing.png", sizings, nets, seeds, min_cosine)
    cmd = ".venv/bin/python sims/sky130/tanh_sizing.py" + (f" {argv}" if argv else "")
    md = ["# SKY130 tanh cell: which sizing meets cosine >= 0.99 on random tiny MLPs", "",
          f"Produced by `{cmd}` (tanh MLP 4-8-3 `random_mlp([4, 8, 3], seed=S)`, MSE, the random batch of 2 of "
          "seed 0, tt, 27 C; 1 - cosine per tensor against exact backprop of the nominal network).  CPU time of the "
          f"transistor-level runs (hwbp and ngspice, cached runs included): {cpu_s:.0f} s; {where}.  "
          "Figure: `tanh_sizing.png`; every run: `tanh_sizing.csv`.", "",
          "## The cell per sizing (testbench, tt, 27 C)", "",
          f"`vu=trim` is vu / f'(0) of the default cell = {vu_trim:.4g} V/unit.  Gate errors are relative rms errors "
          "against the derivative of the measured f times T (|a| < 3.5); the gate at T = 0 is its rms offset in units.",
          "", "| sizing | what | parameters | f'(0) | f gain | f shape rms | gate err T=0.25 | gate err T=1 | "
          "gate at T=0 | area (um^2) | power (W) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, act, ib, beta, what in sizings:
        c = cells[label]
        p = c["params"]
        par = f"w={p['w']:g} l={p['l']:g} ib={p['ib']:.3g} vu={p['vu']:.4g} rt={p['rt']:g}"
        md.append(f"| {label} | {what} | {par} | {c['f_slope_0']:.4f} | {c['f_gain']:.4f} | {c['f_shape_rms']:.4f} | "
                  f"{c['gate_err_T0.25']:.3f} | {c['gate_err_T1']:.3f} | {c['gate_zero_T']:.4f} | "
                  f"{c['area_um2']:.0f} | {c['power_W']:.3g} |")
    md += ["", "## Worst tensor per seed (`--pdk-cells act`)", "",
           "1 - cosine of the worst parameter tensor; the bound is 0.01 (cosine 0.99).  The default and the "
           "recommended sizing on every seed, the others on the first five (-: not run).", "",
           "| sizing | beta | " + " | ".join(f"seed {s}" for s in seeds) + " | min cosine | seeds >= 0.99 |",
           "|---|---|" + "---|" * len(seeds) + "---|---|"]
    for label, _act, _ib, beta, _ in sizings:
        w = {s: _worst(nets[(label, s, "act")]) for s in seeds if (label, s, "act") in nets}
        md.append(f"| {label} | {beta:g} | " + " | ".join(f"{w[s]:.2e}" if s in w else "-" for s in seeds) +
                  f" | {1 - max(w.values()):.5f} | {sum(x <= 1 - min_cosine for x in w.values())} of {len(w)} |")
    md += ["", "## Where the error comes from", "",
           "Per sizing and seed: the circuit's worst tensor, and the reference backend with (a) the sizing's "
           "measured f curve and an exact derivative gate (the shape of f alone) and (b) an ideal tanh computed as "
           "the pair gate (rt/2)(f(a + T/rt) - f(a - T/rt)) (the finite difference alone).  Hidden |a| and |T| are "
           "the largest over the batch.", "",
           "| sizing | seed | circuit | finite difference alone | shape alone | hidden max abs a | hidden max abs T |",
           "|---|---|---|---|---|---|---|"]
    for label, *_ in sizings:
        for s in [s for s in seeds if (label, s, "act") in nets]:
            r, d = nets[(label, s, "act")], decomp[(label, s)]
            md.append(f"| {label} | {s} | {_worst(r):.2e} | {d['finite_difference']:.2e} | {d['shape']:.2e} | "
                      f"{r['a_max']:.2f} | {r['T_max']:.2f} |")
    full = [(k, v) for k, v in nets.items() if k[2] != "act"]
    if full:
        md += ["", "## Every cell at transistor level (`--pdk-cells act,syn,node,loss`)", "",
               "| sizing | seed | " + " | ".join(TENSORS) + " | min cosine | supply power (W) |",
               "|---|---|" + "---|" * len(TENSORS) + "---|---|"]
        for (label, s, _), r in full:
            md.append(f"| {label} | {s} | " + " | ".join(f"{1 - r['one_minus_cos'][t]:.5f}" for t in TENSORS) +
                      f" | {1 - _worst(r):.5f} | {r['supply_power_W']:.3g} |")
    if mc:
        md += ["", "## Monte Carlo of the cell (testbench, tt_mm, 27 C)", "",
               "Spread over the draws (sample standard deviation) of the gate's offset (units, the intercept of "
               "gate/T against tanh') and of the f and gate gains; mean over the draws of the rms gate at T = 0 "
               "(units) and of the gate errors against the draw's own measured f' * T.", "",
               "| sizing | draws | f gain sigma | gate gain sigma | gate offset sigma | gate at T=0 (mean rms) | "
               "gate err T=0.25 (mean) | gate err T=1 (mean) |", "|---|---|---|---|---|---|---|---|"]
        for label, draws in mc.items():
            col = {k: np.array([d[k] for d in draws]) for k in draws[0]}
            md.append(f"| {label} | {len(draws)} | {col['f_gain'].std(ddof=1) / col['f_gain'].mean():.4f} | "
                      f"{col['gate_gain'].std(ddof=1):.4f} | {col['gate_offset'].std(ddof=1):.4f} | "
                      f"{col['gate_zero_T'].mean():.4f} | {col['gate_err_T0.25'].mean():.3f} | "
                      f"{col['gate_err_T1'].mean():.3f} |")
    if mc_nets:
        ms = sorted({k[1] for k in mc_nets})
        md += ["", "## The network on mismatch draws (model seed 0, `--pdk-cells act`, `--mc-seed S`, tt_mm, 27 C)", "",
               "Worst tensor 1 - cosine per draw.", "",
               "| sizing | " + " | ".join(f"mc seed {m}" for m in ms) + " | median | min cosine |",
               "|---|" + "---|" * len(ms) + "---|---|"]
        for label in dict.fromkeys(k[0] for k in mc_nets):
            w = [_worst(mc_nets[(label, m)]) for m in ms]
            md.append(f"| {label} | " + " | ".join(f"{x:.2e}" for x in w) +
                      f" | {float(np.median(w)):.2e} | {1 - max(w):.5f} |")
    md += ["", f"Recommended: `{recommended}` (`hwbp verify ... --pdk sky130 --act-param "
           f"{dict((s[0], s[1]) for s in sizings)[recommended]}`); see docs/transistor-level.md."]
    (out / "tanh_sizing.md").write_text("\n".join(md) + "\n")
