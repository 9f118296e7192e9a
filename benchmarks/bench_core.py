"""Core benchmark: the reference simulator against plain backprop, side by side.

Batch 256, width 256, tanh MLPs of depth 8 and 64.  For each depth, in one run and
interleaved round by round (medians over rounds), it times:

* ``oracle``    plain reverse-mode backprop (hwbp.oracle.exact_gradients);
* ``steady``    steady mode (fixed point directly) + gradient readout  — target <= 1.5x;
* ``manifold``  unit-step from the forward manifold (forward sweep, then L steps with
                unchanged populations skipped) + readout                 — target <= 2x;
* ``faithful``  unit-step from a random state for 2L steps, every population
                evaluated every step (O(L^2))                            — ratio printed;
* ``matmul``    the same matrix products as ``faithful`` (same operands, same
                order) with nothing else: the simulator's achieved fraction of numpy
                matmul throughput                                        — target >= 50%.

Each row prints wall and CPU time (medians), the load average and the ratio to its
competitor (``oracle``; ``matmul`` against ``faithful``): CPU-time ratios are the ones
to quote on a shared machine (``benchmarks/measure.py``).

Run: ``python benchmarks/bench_core.py [--rounds N] [--depths 8 64]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import median

import numpy as np

from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.oracle import exact_gradients
from hwbp.sim import simulate
from hwbp.types import Batch
from hwbp.verify import read_gradients

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import Sample, Table, measure, thread_note  # noqa: E402

BATCH = 256
WIDTH = 256


def bench(depth: int, rounds: int) -> dict:
    graph = random_mlp([WIDTH] * (depth + 1), activation="tanh", seed=0).with_loss("mse")
    rng = np.random.default_rng(0)
    batch = Batch.for_model({"x": WIDTH}, WIDTH, rng.standard_normal((BATCH, WIDTH)),
                            rng.standard_normal((BATCH, WIDTH)))
    system = lower(graph)
    weights = [system.parameters[f"fc{i}.weight"] for i in range(1, depth + 1)]
    acts = [rng.standard_normal((BATCH, WIDTH)) for _ in range(depth)]
    flops = {}

    def steady() -> None:
        read_gradients(system, simulate(system, batch, mode="steady").state, batch)

    def manifold() -> None:
        res = simulate(system, batch, mode="unit-step", steps=depth, initial="forward-manifold")
        read_gradients(system, res.state, batch)

    def faithful() -> None:
        res = simulate(system, batch, mode="unit-step", steps=2 * depth, initial="random", skip_unchanged=False)
        flops["faithful"] = res.stats["flops"]

    def matmul() -> None:
        for _ in range(2 * depth):
            for i, w in enumerate(weights):
                acts[i] @ w.T
                if i:  # the first layer has no sensitivity product (inputs are clamped)
                    acts[i] @ w

    cases = {"oracle": lambda: exact_gradients(graph, batch), "steady": steady, "manifold": manifold,
             "faithful": faithful, "matmul": matmul}
    samples: dict[str, list[Sample]] = {k: [] for k in cases}
    for name, fn in cases.items():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(measure(fn))
    med: dict = {k: Sample(median(s.wall_s for s in v), median(s.cpu_s for s in v), v[-1].load, len(v))
                 for k, v in samples.items()}
    med["faithful_gflops"] = flops["faithful"] / med["faithful"].wall_s / 1e9
    med["matmul_gflops"] = flops["faithful"] / med["matmul"].wall_s / 1e9
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--width", type=int, default=WIDTH)
    args = parser.parse_args()
    globals()["WIDTH"] = args.width
    print(f"batch {BATCH}, width {WIDTH}, tanh MLP; medians of {args.rounds} interleaved rounds; {thread_note()}\n")
    verdicts = []
    for depth in args.depths:
        m = bench(depth, args.rounds)
        table = Table(f"depth {depth}: one gradient (batch {BATCH}, width {WIDTH})", unit="gradient",
                      extra=("target",))
        table.add("oracle", m["oracle"], None, "")
        table.add("steady", m["steady"], "oracle", "<= 1.5x")
        table.add("manifold", m["manifold"], "oracle", "<= 2x")
        table.add("faithful", m["faithful"], "oracle", "")
        table.add("matmul", m["matmul"], "faithful", ">= 50% of faithful's throughput")
        table.print()
        share = m["matmul"].cpu_s / m["faithful"].cpu_s
        print(f"faithful: {m['faithful_gflops']:.0f} GF/s, matmul alone {m['matmul_gflops']:.0f} GF/s (wall)\n")
        verdicts += [
            (f"depth {depth}: steady <= 1.5x oracle (CPU)", table.ratio("steady") <= 1.5),
            (f"depth {depth}: manifold unit-step <= 2x oracle (CPU)", table.ratio("manifold") <= 2.0),
            (f"depth {depth}: faithful unit-step >= 50% of matmul throughput (CPU)", share >= 0.5),
        ]
    for text, ok in verdicts:
        print(f"  {'met ' if ok else 'MISSED'}  {text}")


if __name__ == "__main__":
    main()
