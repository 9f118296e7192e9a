"""Sweep throughput: device instances per second on the reference backend with 1 and 2
Dask workers, side by side in one run, and the scaling ratio.

The sweep is the shipped digits MLP (64-32-32-10, batch 32, cross-entropy, steady mode)
under 8-bit weights and conductance mismatch, ``--instances`` instances at each of two
mismatch levels.  Each worker count gets its own ``LocalCluster`` of single-threaded
worker processes, started (and warmed up with one task) before the clock starts, so the
figure is the steady throughput; the cluster start-up is printed separately.  Rounds
alternate 1 and 2 workers; medians over rounds.

Run: ``python benchmarks/bench_sweep.py [--instances N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

from hwbp.sweep import run_sweep, spec_from_mapping

ROOT = Path(__file__).resolve().parent.parent


def _spec(instances: int, seed: int):
    return spec_from_mapping({
        "sweep": {"model": "examples/mlp_digits.onnx", "batch": "examples/digits_batch.npz", "loss": "ce",
                  "instances": instances, "seed": seed},
        "hardware": {"weights": {"bits": 8}},
        "grid": {"mismatch.sigma": [0.05, 0.1]},
        "backends": {"reference": {"mode": "steady"}},
    }, source="bench", base=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=100, help="instances per grid point (2 points)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    clusters = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        with tempfile.TemporaryDirectory() as d:  # warm-up: imports and the model in every worker
            run_sweep(_spec(n, 10_000), d, scheduler=cluster.scheduler_address, progress=False)
        clusters[n] = (cluster, client, time.perf_counter() - t0)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.rounds):
        for n in (1, 2):
            cluster = clusters[n][0]
            spec = _spec(args.instances, 1000 * (r + 1))
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                rows = run_sweep(spec, d, scheduler=cluster.scheduler_address, progress=False)
                dt = time.perf_counter() - t0
            assert not any(row["error"] for row in rows), [row["error"] for row in rows if row["error"]][:1]
            rates[n].append(len(rows) / dt)
    for cluster, client, _ in clusters.values():
        client.close()
        cluster.close()
    tasks = 2 * args.instances
    print(f"sweep: {tasks} instances per round (digits MLP, steady mode), {args.rounds} rounds, medians")
    for n in (1, 2):
        print(f"  {n} worker(s): {median(rates[n]):8.1f} instances/s   (cluster start-up + warm-up "
              f"{clusters[n][2]:.1f} s)")
    print(f"scaling 2 workers / 1 worker: {median(rates[2]) / median(rates[1]):.2f}x")


if __name__ == "__main__":
    main()
