"""Settling time of the ngspice `.tran` against depth (DESIGN.md theorem 2 on a circuit).

For depths L = 1, 2, 4, 8 (tanh MLPs of width 8, MSE loss, 2 samples) the circuit
starts from a random non-equilibrium state and runs for 12 L tau.  Reported per
depth: the settling time (every population's tension within --tol of its final
value, relative), the tension error against the oracle at 12 L tau, and wall time.
Writes ``sims/spice_settling.md`` (table) and ``sims/spice_settling.png`` (figure).

Usage::

    .venv/bin/python sims/spice_settling.py [--tol 1e-4] [--runner batch|shared]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from outdir import add_out_arg, output_dir  # noqa: E402
from hwbp.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from hwbp.verify.plot import figure_png  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.oracle import exact_gradients  # noqa: E402
from hwbp.targets.spice.backend import run_spice  # noqa: E402
from hwbp.targets.spice.nodes import settling_time  # noqa: E402
from hwbp.types import Batch  # noqa: E402

DEPTHS = (1, 2, 4, 8)
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tol", type=float, default=1e-4, help="relative settling tolerance (default 1e-4)")
    p.add_argument("--runner", choices=("batch", "shared"), default="batch")
    add_out_arg(p)
    args = p.parse_args(argv)
    out = output_dir(p, args, HERE, "spice_settling")
    rows, curves = [], {}
    for L in DEPTHS:
        g = random_mlp([6] + [8] * (L - 1) + [3], activation="tanh", seed=L, gain=1.2).with_loss("mse")
        rng = np.random.default_rng(100 + L)
        batch = Batch({"x": rng.standard_normal((2, 6))}, rng.standard_normal((2, 3)))
        system = lower(g)
        t0 = time.perf_counter()
        res = run_spice(system, batch, analysis="tran", runner=args.runner, initial="random", seed=L,
                        settle_tol=args.tol)
        wall = time.perf_counter() - t0
        exact = exact_gradients(g, batch)
        err = max(np.linalg.norm(res.state.tension[n] - system.beta * exact.activations[n])
                  / np.linalg.norm(system.beta * exact.activations[n]) for n in res.state.tension)
        tr = res.trace
        ts = settling_time(tr.t, tr.tension, args.tol)
        dev = np.zeros(len(tr.t))
        for n, arr in tr.tension.items():
            ref = system.beta * exact.activations[n]
            dev = np.maximum(dev, np.linalg.norm((arr - ref).reshape(len(tr.t), -1), axis=1) / np.linalg.norm(ref))
        curves[L] = (tr.t, dev)
        rows.append((L, ts, ts / L, err, wall))
        print(f"L={L}: settling {ts:.2f} tau ({ts / L:.2f} tau per layer), tension rel err at 12L tau {err:.1e}, "
              f"wall {wall:.1f} s", flush=True)
    Ls = np.array([r[0] for r in rows], dtype=float)
    ts = np.array([r[1] for r in rows])
    slope, icpt = np.polyfit(Ls, ts, 1)
    resid = float(np.max(np.abs(ts - (slope * Ls + icpt)) / ts))
    lines = [
        "# ngspice `.tran` settling time vs depth",
        "",
        f"tanh MLPs of width 8, MSE, 2 samples, random initial state; tolerance {args.tol:g} (relative to",
        f"the final tension); runner `{args.runner}`; R = 1 kOhm, C = 1 nF (tau = 1 us).  Made by",
        "`sims/spice_settling.py`.",
        "",
        "| L | settling time (tau) | per layer (tau) | tension rel err at 12 L tau | wall (s) |",
        "|---|---|---|---|---|",
        *[f"| {L} | {t:.2f} | {t / L:.2f} | {e:.1e} | {w:.1f} |" for L, t, _, e, w in rows],
        "",
        f"Linear fit: settling = {slope:.2f} tau * L + {icpt:.2f} tau (largest relative residual {resid:.1%}).",
        "",
    ]
    atomic_write_text(out / "spice_settling.md", "\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for L, (t, d) in curves.items():
        a1.semilogy(t / L, np.maximum(d, 1e-16), label=f"L={L}")
    a1.axhline(args.tol, color="0.5", ls=":", lw=1)
    a1.set_xlabel("t / (L tau)")
    a1.set_ylabel("tension rel. error vs oracle")
    a1.legend(fontsize=8)
    a2.plot(Ls, ts, "o-", label="measured")
    a2.plot(Ls, slope * Ls + icpt, "--", label=f"fit {slope:.2f} L + {icpt:.2f}")
    a2.set_xlabel("depth L")
    a2.set_ylabel(f"settling time to {args.tol:g} (tau)")
    a2.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(out / "spice_settling.png", figure_png(fig))
    print(f"wrote {out / 'spice_settling.md'} and {out / 'spice_settling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
