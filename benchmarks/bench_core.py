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

Run: ``python benchmarks/bench_core.py [--rounds N] [--depths 8 64]``.
"""

from __future__ import annotations

import argparse
import time
from statistics import median
from typing import Callable

import numpy as np

from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.oracle import exact_gradients
from hwbp.sim import simulate
from hwbp.types import Batch
from hwbp.verify import read_gradients

BATCH = 256
WIDTH = 256


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(depth: int, rounds: int) -> dict[str, float]:
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
    times: dict[str, list[float]] = {k: [] for k in cases}
    for name, fn in cases.items():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(_timed(fn))
    med = {k: median(v) for k, v in times.items()}
    med["faithful_gflops"] = flops["faithful"] / med["faithful"] / 1e9
    med["matmul_gflops"] = flops["faithful"] / med["matmul"] / 1e9
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--width", type=int, default=WIDTH)
    args = parser.parse_args()
    globals()["WIDTH"] = args.width
    print(f"batch {BATCH}, width {WIDTH}, tanh MLP; medians of {args.rounds} interleaved rounds\n")
    head = f"{'depth':>5}  {'oracle ms':>9}  {'steady':>13}  {'manifold':>13}  {'faithful':>13}  {'matmul share':>17}"
    print(head)
    print("-" * len(head))
    verdicts = []
    for depth in args.depths:
        m = bench(depth, args.rounds)
        o = m["oracle"]
        share = m["matmul"] / m["faithful"]
        print(f"{depth:>5}  {o * 1e3:>9.1f}  {m['steady'] / o:>12.2f}x  {m['manifold'] / o:>12.2f}x  "
              f"{m['faithful'] / o:>12.1f}x  {share:>6.0%} ({m['faithful_gflops']:.0f}/{m['matmul_gflops']:.0f} GF/s)")
        verdicts += [
            (f"depth {depth}: steady <= 1.5x oracle", m["steady"] / o <= 1.5),
            (f"depth {depth}: manifold unit-step <= 2x oracle", m["manifold"] / o <= 2.0),
            (f"depth {depth}: faithful unit-step >= 50% of matmul throughput", share >= 0.5),
        ]
    print()
    for text, ok in verdicts:
        print(f"  {'met ' if ok else 'MISSED'}  {text}")


if __name__ == "__main__":
    main()
