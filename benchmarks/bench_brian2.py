"""Brian2 (numpy, cython, cpp_standalone) against the reference simulator on the same
continuous-time run, side by side in one process (a plain script; prints Markdown
tables, asserts nothing).

The run: the digits MLP (``examples/mlp_digits.onnx``, 64-32-32-10, cross-entropy) on
8 digits, exponential Euler (``--solver``: also euler, or rk4, which Brian2 runs as four
stage ticks per step) with dt = 0.01 tau for 12 L tau = 36 tau (3600 steps), from rest.
Every row is one whole call of ``simulate`` (objects, code generation, compilation
where it happens, the time stepping, reading back), timed in wall and CPU seconds,
the CPU of child processes included (the C compiler, the standalone binary):

* ``first run``: with an empty build directory and Cython cache (what the first run
  of a model costs);
* ``repeat run``: the same call again (Cython: the compiled extensions are loaded from
  the cache; cpp_standalone: the project is regenerated and ``make`` rebuilds only
  what changed): what every later run costs; its CPU ratio to the reference is the
  figure to quote, and ``steps per CPU s`` is the steps over its CPU time.  Cython
  also has a ``second run`` row: the second run in one process still builds two
  extension modules (measured: 9 after the first run, 11 after the second, 11 after
  the third); a new process with the cache of an earlier one builds none;
* ``loop only``: the stepping alone as Brian2 clocks it (``stats["run_s"]``, wall),
  for reference.

Usage::

    .venv/bin/python benchmarks/bench_brian2.py [--quick] [--batch N] [--solver rk4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import Table, measure, thread_note  # noqa: E402

from hwbp.io import load_batch, load_model  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.sim.simulate import simulate  # noqa: E402
from hwbp.targets.brian2.backend import Brian2Backend  # noqa: E402
from hwbp.types import Batch  # noqa: E402

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
    got = {}

    def ref_run() -> None:
        got["ref"] = simulate(system, batch, mode="continuous", solver=REFERENCE_SOLVER[args.solver], dt=dt,
                              duration=duration)

    ref_run()  # warm-up
    ref = measure(ref_run, 3)
    steps = got["ref"].settle["steps"]
    table = Table(f"digits MLP, batch {batch.size}, {steps} steps of {dt} tau ({args.solver}), one process: "
                  f"one whole simulate call", unit="run", extra=("steps per CPU s", "loop only, steps/s",
                                                                  "max abs dT vs reference"))
    table.add("reference (numpy)", ref, None, f"{steps / ref.cpu_s:.0f}", "", "")
    for codegen in ("numpy", "cython", "cpp_standalone"):
        with tempfile.TemporaryDirectory(prefix="hwbp-bench-brian2-") as build:
            opts = {"codegen": codegen, "solver": args.solver, "dt": dt, "duration": duration, "build_dir": build}

            def run() -> None:
                got[codegen] = Brian2Backend().simulate(system, batch, opts)

            first = measure(run, 1)
            table.add(f"brian2 {codegen}, first run", first, "reference (numpy)", "", "", "")
            if codegen == "cython":  # the second run of a process still builds two extensions; later ones none
                table.add("brian2 cython, second run", measure(run, 1), "reference (numpy)", "", "", "")
            again = measure(run, 1)
        res = got[codegen]
        diff = max(float(np.abs(res.state.tension[n] - got["ref"].state.tension[n]).max())
                   for n in got["ref"].state.tension)
        table.add(f"brian2 {codegen}, repeat run", again, "reference (numpy)", f"{steps / again.cpu_s:.0f}",
                  f"{steps / res.stats['run_s']:.0f}", f"{diff:.1e}")
    table.print()
    print(f"first run: with an empty build directory and Cython cache; {thread_note()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
