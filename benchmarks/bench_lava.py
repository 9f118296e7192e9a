"""Lava backend speed next to the reference simulator on the same work (a plain
script; prints a table, asserts nothing).

Work: the digits MLP (examples/mlp_digits.onnx, cross-entropy) on the 32 samples of
examples/digits_batch.npz, unit steps from zeros.

* steps/s: unit steps of the dynamics per second for the whole batch, from the
  difference of a long and a short run (start-up excluded; in Lava one unit step is
  one Lava time step);
* samples/s: samples whose gradients are settled (2L unit steps, plus Lava's readout
  step) per second, start-up included (what ``hwbp verify`` costs);
* the ratio reference / Lava of each, measured in this one run.

Usage::

    .venv/bin/python benchmarks/bench_lava.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbp.backend import get_backend  # noqa: E402
from hwbp.io import load_batch, load_model  # noqa: E402
from hwbp.lower import lower  # noqa: E402


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = ap.parse_args()
    graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    batch = load_batch(ROOT / "examples" / "digits_batch.npz", graph, loss="ce")
    system = lower(graph)
    L = system.depth
    short, long_ = 2 * L, (150 if args.quick else 400)
    repeat = 2 if args.quick else 3
    rows = []
    for label, name, opts in [("reference", "reference", {"mode": "unit-step", "skip_unchanged": False}),
                              ("lava float", "lava", {"precision": "float"}),
                              ("lava fixed", "lava", {"precision": "fixed"})]:
        be = get_backend(name)

        def run(steps: int) -> None:
            be.simulate(system, batch, {**opts, "steps": steps})

        run(short)  # warm-up: imports, Lava's first compilation
        t_short = _best(lambda: run(short), repeat)
        t_long = _best(lambda: run(long_), repeat)
        steps_s = (long_ - short) / max(t_long - t_short, 1e-12)
        rows.append((label, steps_s, batch.size / t_short, t_short))
    ref = rows[0]
    print(f"digits MLP, L={L}, batch {batch.size}; steps/s from {long_} vs {short} steps; samples/s at 2L steps "
          f"with start-up (best of {repeat})")
    print(f"{'backend':<12}{'steps/s':>12}{'samples/s':>12}{'2L run s':>10}{'ref/x steps':>13}{'ref/x samples':>15}")
    for label, steps_s, samples_s, t in rows:
        print(f"{label:<12}{steps_s:>12.1f}{samples_s:>12.1f}{t:>10.3f}{ref[1] / steps_s:>13.1f}"
              f"{ref[2] / samples_s:>15.1f}")


if __name__ == "__main__":
    main()
