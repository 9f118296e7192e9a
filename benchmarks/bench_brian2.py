"""Brian2 (numpy, cython, cpp_standalone) against the reference simulator on the same
continuous-time run, side by side in one process (a plain script; prints a table,
asserts nothing).

The run: the digits MLP (``examples/mlp_digits.onnx``, 64-32-32-10, cross-entropy) on
8 digits, exponential Euler (``--solver``: also euler, or rk4, which Brian2 runs as four
stage ticks per step) with dt = 0.01 tau for 12 L tau = 36 tau (3600 steps), from rest.
Per backend: steps/s of the time stepping alone, the ratio to the
reference, and separately the one-off cost before the first step (code generation and
compilation: Cython with an empty cache, the C++ project for cpp_standalone), and the
largest tension difference from the reference (all run the same scheme).

Usage::

    .venv/bin/python benchmarks/bench_brian2.py [--quick] [--batch N] [--solver rk4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbp.io import load_batch, load_model  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.sim.simulate import simulate  # noqa: E402
from hwbp.targets.brian2.backend import Brian2Backend  # noqa: E402
from hwbp.types import Batch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: Brian2 solver -> the reference simulator's name of the same scheme.
REFERENCE_SOLVER = {"exponential_euler": "exponential", "euler": "euler", "rk4": "rk4"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="6 tau instead of 36 tau")
    p.add_argument("--batch", type=int, default=8, help="digits in the batch (default 8)")
    p.add_argument("--solver", choices=tuple(REFERENCE_SOLVER), default="exponential_euler",
                   help="the scheme both run (default exponential_euler)")
    args = p.parse_args(argv)
    graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    full = load_batch(ROOT / "examples" / "digits_batch.npz", graph, loss="ce")
    batch = Batch({"x": np.asarray(full.x["x"][:args.batch])}, np.asarray(full.y[:args.batch]))
    system = lower(graph)
    duration, dt = (6.0 if args.quick else 12.0 * system.depth), 0.01
    t0 = time.perf_counter()
    ref = simulate(system, batch, mode="continuous", solver=REFERENCE_SOLVER[args.solver], dt=dt, duration=duration)
    ref_s = time.perf_counter() - t0
    steps = ref.settle["steps"]
    rows = [("reference (numpy)", steps / ref_s, 0.0, 0.0)]
    for codegen in ("numpy", "cython", "cpp_standalone"):
        with tempfile.TemporaryDirectory(prefix="hwbp-bench-brian2-") as build:
            opts = {"codegen": codegen, "solver": args.solver, "dt": dt, "duration": duration,
                    "build_dir": build}
            first = Brian2Backend().simulate(system, batch, opts)
            # cython: a second run reuses the compiled extensions (what a repeated run costs)
            res = Brian2Backend().simulate(system, batch, opts) if codegen == "cython" else first
        diff = max(float(np.abs(res.state.tension[n] - ref.state.tension[n]).max()) for n in ref.state.tension)
        rows.append((f"brian2 {codegen}", steps / res.stats["run_s"], first.stats["build_s"], diff))
    print(f"digits MLP, batch {batch.size}, {steps} steps of {dt} tau ({args.solver}), one process")
    print(f"{'backend':<24} {'steps/s':>12} {'vs reference':>13} {'one-off build (s)':>18} {'max |dT| vs ref':>16}")
    for name, rate, build_s, diff in rows:
        print(f"{name:<24} {rate:12.0f} {rate / rows[0][1]:12.2f}x {build_s:18.2f} {diff:16.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
