"""Cost of one gradient of the depth-study model, side by side in one run: backprop,
the dyadic dynamics (2L unit steps from the forward pass; and from rest), PC and
PC-ALM (T = 2L), for batch 64, width 32, 784 inputs.

    python benchmarks/bench_depth.py [--depths 8 32 128] [--repeat 3]

Prints the median wall time per gradient and its ratio to backprop.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbp.baselines import pc_alm_relax, pc_gradients, pc_relax  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.models import depth_resmlp  # noqa: E402
from hwbp.oracle import exact_gradients  # noqa: E402
from hwbp.sim import simulate  # noqa: E402
from hwbp.types import Batch  # noqa: E402
from hwbp.verify.readout import read_gradients  # noqa: E402


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", nargs="+", type=int, default=[8, 32, 128])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'L':>4s} {'method':>14s} {'s/gradient':>11s} {'x backprop':>11s}")
    for L in args.depths:
        g = depth_resmlp(784, 32, 10, L, activation="relu", seed=0).with_loss("mse")
        b = Batch({"x": rng.random((64, 784))}, np.eye(10)[rng.integers(0, 10, 64)])
        s = lower(g)
        cases = {
            "backprop": lambda: exact_gradients(g, b),
            "dyadic": lambda: read_gradients(s, simulate(s, b, steps=2 * L, initial="forward-manifold").state, b),
            "dyadic (rest)": lambda: read_gradients(s, simulate(s, b, steps=2 * L, initial="zeros").state, b),
            "pc": lambda: pc_gradients(s, b, pc_relax(s, b)),
            "pc-alm": lambda: pc_gradients(s, b, pc_alm_relax(s, b)),
        }
        base = None
        for name, fn in cases.items():
            t = _median(fn, args.repeat)
            base = base or t
            print(f"{L:4d} {name:>14s} {t:11.4f} {t / base:11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
