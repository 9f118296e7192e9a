"""Lava backend cost per gradient next to the reference simulator on the same work
(a plain script; prints Markdown tables, asserts nothing).

Work: the digits MLP (examples/mlp_digits.onnx, 64-32-32-10, cross-entropy) on the
samples of examples/digits_batch.npz (tiled for batches above 32), 2L unit steps from
zeros: one gradient per run.  Rows, measured in this one run:

* ``reference``: the reference simulator, unit-step mode, every population every step;
* ``lava float`` / ``lava fixed``: ``LavaBackend.run`` on the runtime the job keeps
  (:mod:`hwbp.targets.lava.session`: inputs, targets, state and weights go in through
  the processes' host pipes, ``2L + 1`` Lava steps, the state comes back);
* ``... new runtime per run``: the former path, a Lava runtime created, run, read
  with ``Var.get`` and stopped for every gradient (``network.run_network``);
* ``... first run``: the one-off cost of a job's first run (compiling the processes,
  forking them, channels, shared memory).

CPU time includes Lava's processes (see ``benchmarks/measure.py``).  The batch sweep
fits ``wall = per-run + per-sample x batch`` on the kept runtime.

Usage::

    .venv/bin/python benchmarks/bench_lava.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import Table, measure, thread_note  # noqa: E402

from hwbp.backend import get_backend  # noqa: E402
from hwbp.initial import initial_state  # noqa: E402
from hwbp.io import load_batch, load_model  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.types import Batch  # noqa: E402


def _tiled(batch: Batch, size: int) -> Batch:
    idx = np.arange(size) % batch.size
    return Batch({k: np.asarray(v)[idx] for k, v in batch.x.items()}, np.asarray(batch.y)[idx])


def _fresh_runtime(system, batch, steps: int) -> None:
    """The former path: one Lava runtime created and stopped per gradient."""
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS
    from hwbp.targets.lava.network import build_network, run_network
    from hwbp.targets.lava.run_float import float_spec, read_state
    from hwbp.targets.lava.topology import term_table

    net = build_network(term_table(system), float_spec(system, batch, initial_state(system, batch, "zeros"), steps,
                                                        1.0))
    run_network(net, steps + 1, tag="floating_pt", models=FLOAT_MODELS, timeout_s=600.0,
                read=lambda n: read_state(system, n, steps, 1.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    from hwbp.targets.lava.session import close_session

    graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    digits = load_batch(ROOT / "examples" / "digits_batch.npz", graph, loss="ce")
    system = lower(graph)
    L = system.depth
    ref_be, lava = get_backend("reference"), get_backend("lava")
    ref_opts = ref_be.options({"mode": "unit-step", "skip_unchanged": False})
    reps, n_ref, n_lava = (3, 50, 5) if args.quick else (5, 200, 20)

    def ref_run(batch: Batch, n: int):
        art = ref_be.compile(system, ref_opts)
        return lambda: [ref_be.run(art, batch) for _ in range(n)]

    def lava_run(art, batch: Batch, n: int):
        return lambda: [lava.run(art, batch) for _ in range(n)]

    table = Table(f"digits MLP (L={L}), batch {digits.size}, 2L unit steps from zeros: cost of one gradient",
                  unit="gradient")
    table.add("reference", measure(ref_run(digits, n_ref), reps, per=n_ref))
    for prec in ("float", "fixed"):
        art = lava.compile(system, lava.options({"precision": prec}))
        close_session()
        table.add(f"lava {prec}, first run", measure(lambda: lava.run(art, digits), 1), "reference")
        table.add(f"lava {prec}", measure(lava_run(art, digits, n_lava), reps, per=n_lava), "reference")
        close_session()
    table.add("lava float, new runtime per run", measure(lambda: _fresh_runtime(system, digits, 2 * L),
                                                         2 if args.quick else 3), "lava float")
    table.print()

    sizes = (1, 8, 32, 128)
    sweep = Table("the same, per gradient against the batch size (lava float on the kept runtime)", unit="gradient",
                  extra=("batch",))
    art = lava.compile(system, lava.options({"precision": "float"}))
    walls = []
    for b in sizes:
        batch = _tiled(digits, b)
        sweep.add(f"reference, batch {b}", measure(ref_run(batch, n_ref), reps, per=n_ref), None, b)
        lava.run(art, batch)  # a new runtime for this batch size (the arrays' shapes are fixed in it)
        s = measure(lava_run(art, batch, n_lava), reps, per=n_lava)
        sweep.add(f"lava float, batch {b}", s, f"reference, batch {b}", b)
        walls.append(s.wall_s)
    close_session()
    slope, icpt = np.polyfit(np.array(sizes, float), np.array(walls), 1)
    sweep.print()
    print(f"lava float, kept runtime: wall per gradient = {icpt * 1e3:.1f} ms per run + {slope * 1e3:.3f} ms per "
          f"sample (least squares over batch {', '.join(map(str, sizes))}); {thread_note()}")


if __name__ == "__main__":
    main()
