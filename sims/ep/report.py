"""``results.md`` of the EP comparison: the table and what it measures."""

from __future__ import annotations

import os

__all__ = ["report"]


def _best(rows: list[dict], method: str, c: float, mm: float = 0.0) -> dict:
    sel = [r for r in rows if r["method"] == method and r["C_F"] == c and r["mismatch"] == mm]
    return max(sel, key=lambda r: r["snr_db"])


def report(rows: list[dict], train: list[dict], command: str, wall_s: float) -> str:
    """Markdown: header (command, machine, settings), best SNR per method and C, the full
    table, and the training accuracies."""
    import platform

    load = os.getloadavg()
    lines = [
        "# Equilibrium propagation and the dyadic pair under one noise model",
        "",
        (f"- commands: `python sims/ep/run.py` (the gradient study, `results.csv`; stopped during its "
         f"training part), then `{command}` (training, this table and the figures)" if "--train-only" in command
         else f"- command: `{command}`"),
        f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} (shared); wall time {wall_s / 60:.1f} min",
        "- one simulator (Euler-Maruyama, dt = 0.05 τ), kT/C noise at 300 K on every node, rails ±1 V "
        "(unit 0.1 V), each phase 40 τ, one read at the end of each phase; mismatch: one draw per device "
        "(EP: one symmetric device per synapse; dyadic pair: a forward and a backward device)",
        "- networks: EP's energy-based 64-32-10 tanh network (Scellier & Bengio 2017) and the feed-forward "
        "64-32-10 network with the same weights as the dyadic pair; each method's error is measured against "
        "the exact gradient of its own network (torch; implicit differentiation for EP)",
        "",
        "## Best SNR per method (over β)",
        "",
        "| C | mismatch | method | phases | time per gradient (τ) | settling (τ, noise-free) | best SNR (dB) "
        "| at β | bias there |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mm in sorted({r["mismatch"] for r in rows}):
        for c in sorted({r["C_F"] for r in rows if r["mismatch"] == mm}):
            for m in ("dyadic", "ep-one-sided", "ep-symmetric"):
                b = _best(rows, m, c, mm)
                lines.append(f"| {c * 1e15:g} fF | {100 * mm:g} % | {m} | {b['phases']} | {b['time_tau']:g} | "
                             f"{b['settle_tau']:g} | {b['snr_db']:.1f} | {b['beta']:g} | {b['bias_rel_err']:.2g} |")
    lines += ["", "## All points", "",
              "| method | C | mismatch | β | swing | SNR (dB) | bias (noise-free rel. err) | rms rel. err |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['C_F'] * 1e15:g} fF | {100 * r['mismatch']:g} % | {r['beta']:g} | "
                     f"{r['swing']:g} | {r['snr_db']:.1f} | {r['bias_rel_err']:.2g} | {r['rel_err_rms']:.2g} |")
    if train:
        lines += ["", "## Training (digits, 64-32-10, SGD lr 0.2, batch 16, kT/C noise of 100 fF)", "",
                  "| method | epochs | β | test accuracy (%) | wall s |", "|---|---:|---:|---:|---:|"]
        for t in train:
            lines.append(f"| {t['method']} | {t['epochs']} | {t['beta']:g} | {100 * t['test_acc']:.1f} | "
                         f"{t['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"
