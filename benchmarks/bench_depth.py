"""Cost of one gradient of the depth-study model, side by side in one run: backprop,
the dyadic dynamics (2L unit steps from the forward pass; and from rest), PC and
PC-ALM (T = 2L), for batch 64, width 32, 784 inputs.

    python benchmarks/bench_depth.py [--depths 8 32 128] [--repeat 3]

Prints, per depth, a Markdown table: median wall and CPU time per gradient, the load
average and the ratio to backprop (``benchmarks/measure.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Table, measure, thread_note  # noqa: E402

from hwbp.baselines import pc_alm_relax, pc_gradients, pc_relax  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.models import depth_resmlp  # noqa: E402
from hwbp.oracle import exact_gradients  # noqa: E402
from hwbp.sim import simulate  # noqa: E402
from hwbp.types import Batch  # noqa: E402
from hwbp.verify.readout import read_gradients  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", nargs="+", type=int, default=[8, 32, 128])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"depth-study model, batch 64, width 32, 784 inputs; {thread_note()}\n")
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
        table = Table(f"L = {L}: one gradient (medians of {args.repeat})", unit="gradient")
        for name, fn in cases.items():
            table.add(name, measure(fn, args.repeat), None if name == "backprop" else "backprop")
        table.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
