"""Sweep throughput: device instances per second on the reference backend with 1 and 2
Dask workers, side by side in one run, and the scaling ratio.

The sweep is the shipped digits MLP (64-32-32-10, batch 32, cross-entropy, steady mode)
under 8-bit weights and conductance mismatch, ``--instances`` instances at each of two
mismatch levels.  Each worker count gets its own ``LocalCluster`` of single-threaded
worker processes, started (and warmed up with one task) before the clock starts, so the
figure is the steady throughput; the cluster start-up is printed separately.  Rounds
alternate 1 and 2 workers; medians over rounds.

Each row prints the median wall and CPU time of one round (CPU of this process and
of the worker processes: ``benchmarks/measure.py``), the load average and the ratio of
2 workers to 1 (the CPU ratio shows what the second worker adds in work; the wall ratio
the speed-up).

Run: ``python benchmarks/bench_sweep.py [--instances N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import Sample, Table, measure, thread_note  # noqa: E402

from hwbp.sweep import run_sweep, spec_from_mapping  # noqa: E402


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
    samples: dict[int, list[Sample]] = {1: [], 2: []}
    for r in range(args.rounds):
        for n in (1, 2):
            cluster = clusters[n][0]
            spec = _spec(args.instances, 1000 * (r + 1))
            with tempfile.TemporaryDirectory() as d:
                def one() -> None:
                    rows = run_sweep(spec, d, scheduler=cluster.scheduler_address, progress=False)
                    assert len(rows) == 2 * args.instances
                    assert not any(row["error"] for row in rows), [row["error"] for row in rows if row["error"]][:1]

                samples[n].append(measure(one))
    for cluster, client, _ in clusters.values():
        client.close()
        cluster.close()
    tasks = 2 * args.instances
    table = Table(f"sweep: {tasks} instances per round (digits MLP, steady mode), medians of {args.rounds} rounds",
                  unit="round", extra=("instances/s (wall)", "start-up + warm-up"))
    for n in (1, 2):
        s = Sample(median(x.wall_s for x in samples[n]), median(x.cpu_s for x in samples[n]), samples[n][-1].load,
                   args.rounds)
        table.add(f"{n} worker(s)", s, None if n == 1 else "1 worker(s)", f"{tasks / s.wall_s:.1f}",
                  f"{clusters[n][2]:.1f} s")
    table.print()
    print(f"scaling 2 workers / 1 worker (instances/s): {1 / table.ratio('2 worker(s)', cpu=False):.2f}x; "
          f"{thread_note()}")


if __name__ == "__main__":
    main()
