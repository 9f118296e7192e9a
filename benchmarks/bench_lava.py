"""Lava backend cost per gradient next to the reference simulator on the same work
(a plain script; prints Markdown tables, asserts nothing).

Work: the digits MLP (examples/mlp_digits.onnx, 64-32-32-10, cross-entropy) on the
samples of examples/digits_batch.npz (tiled for batches above 32), 2L unit steps from
zeros: one gradient per run.  Rows, measured in this one run:

* ``reference``: the reference simulator, unit-step mode, every population every step;
* ``lava float`` / ``lava fixed``: ``LavaBackend.run`` on the runtime the job keeps
  (:mod:`hwbp.targets.lava.session`): the whole network as ONE process model
  (``lavaproc/fused.py``), inputs, targets, state and weights in one host message,
  ``2L + 1`` Lava steps, the state back in one message;
* ``... kept runtime, process per population``: the same kept runtime with one process
  model per input, population and term (``network.build_network(host_io=True)``), one
  host message per process: the path before the fused model;
* ``... new runtime per run``: the first path, a Lava runtime created, run, read with
  ``Var.get`` and stopped for every gradient (``network.run_network``);
* ``... first run``: the one-off cost of a job's first run (compiling the processes,
  forking them, channels, shared memory).

CPU time includes Lava's processes (see ``benchmarks/measure.py``).  The batch sweep
(1, 8, 32, 128) fits ``CPU per gradient = per-run + per-sample x batch`` on the kept
runtime, for Lava and for the reference, and prints the per-run share at each batch.

Usage::

    .venv/bin/python benchmarks/bench_lava.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import warnings
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
    """The first path: one Lava runtime created and stopped per gradient."""
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS
    from hwbp.targets.lava.network import build_network, run_network
    from hwbp.targets.lava.run_float import float_spec, read_state
    from hwbp.targets.lava.topology import term_table

    net = build_network(term_table(system), float_spec(system, batch, initial_state(system, batch, "zeros"), steps,
                                                        1.0))
    run_network(net, steps + 1, tag="floating_pt", models=FLOAT_MODELS, timeout_s=600.0,
                read=lambda n: read_state(system, n, steps, 1.0))


def _per_population_runtime(system, batch, steps: int):
    """The kept runtime before the fused model: one process model per input, population
    and term, one host message per process.  Returns ``(stop, run)``."""
    from hwbp.targets.lava.compat import import_lava

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from hwbp.targets.lava.lavaproc.host import recv_block, send_block
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS
    from hwbp.targets.lava.network import build_network
    from hwbp.targets.lava.run_float import float_spec
    from hwbp.targets.lava.topology import term_table

    spec = float_spec(system, batch, initial_state(system, batch, "zeros"), steps, 1.0)
    net = build_network(term_table(system), spec, host_io=True)
    proc = net.any_process()
    proc.create_runtime(run_cfg=Loihi2SimCfg(select_tag="floating_pt", exception_proc_model_map=FLOAT_MODELS))

    def run():
        send_block(net.inputs, net.populations, net.terms, spec.inputs, spec.mean, spec.tension, spec.target,
                   spec.weight, spec.bias)
        proc.run(condition=RunSteps(num_steps=steps + 1))
        return recv_block(net.populations, net.terms)

    return proc.stop, run


def _fit(sizes, cpus) -> tuple[float, float]:
    """``(per-run s, per-sample s)``: least squares of CPU per gradient over the batch sizes."""
    slope, icpt = np.polyfit(np.array(sizes, float), np.array(cpus), 1)
    return icpt, slope


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Cannot import module", category=UserWarning)
    from hwbp.targets.lava.session import close_session

    graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    digits = load_batch(ROOT / "examples" / "digits_batch.npz", graph, loss="ce")
    system = lower(graph)
    L = system.depth
    ref_be, lava = get_backend("reference"), get_backend("lava")
    ref_opts = ref_be.options({"mode": "unit-step", "skip_unchanged": False})
    reps, n_ref, n_lava = (3, 50, 10) if args.quick else (5, 200, 40)

    def ref_run(batch: Batch, n: int):
        art = ref_be.compile(system, ref_opts)
        return lambda: [ref_be.run(art, batch) for _ in range(n)]

    def lava_run(art, batch: Batch, n: int):
        return lambda: [lava.run(art, batch) for _ in range(n)]

    table = Table(f"digits MLP (L={L}), batch {digits.size}, 2L unit steps from zeros: cost of one gradient",
                  unit="gradient")
    table.add("reference", measure(ref_run(digits, n_ref), reps, per=n_ref))
    fused = {}
    for prec in ("float", "fixed"):
        art = lava.compile(system, lava.options({"precision": prec}))
        close_session()
        table.add(f"lava {prec}, first run", measure(lambda: lava.run(art, digits), 1), "reference")
        table.add(f"lava {prec}", measure(lava_run(art, digits, n_lava), reps, per=n_lava), "reference")
        fused[prec] = lava.run(art, digits).state
        close_session()
    stop, run = _per_population_runtime(system, digits, 2 * L)
    try:
        run()
        table.add("lava float, kept runtime, process per population",
                  measure(lambda: [run() for _ in range(n_lava)], reps, per=n_lava), "lava float")
        means, tens, gates = run()
    finally:
        stop()
    same = all(np.array_equal(fused["float"].mean[n], means[n]) and np.array_equal(fused["float"].tension[n], tens[n])
               for n in means) and all(np.array_equal(fused["float"].gates[k], gates[k]) for k in gates)
    table.add("lava float, new runtime per run", measure(lambda: _fresh_runtime(system, digits, 2 * L),
                                                         2 if args.quick else 3), "lava float")
    table.print()
    print(f"one process model against a process per population: means, tensions and gates "
          f"{'identical' if same else 'DIFFERENT'}\n")

    sizes = (1, 8, 32, 128)
    sweep = Table("the same, per gradient against the batch size (kept runtime)", unit="gradient", extra=("batch",))
    cpus: dict[str, list[float]] = {"reference": [], "float": [], "fixed": []}
    arts = {prec: lava.compile(system, lava.options({"precision": prec})) for prec in ("float", "fixed")}
    for b in sizes:
        batch = _tiled(digits, b)
        s = measure(ref_run(batch, n_ref), reps, per=n_ref)
        sweep.add(f"reference, batch {b}", s, None, b)
        cpus["reference"].append(s.cpu_s)
        for prec, art in arts.items():
            lava.run(art, batch)  # a new runtime for this batch size and precision (shapes are fixed in it)
            s = measure(lava_run(art, batch, n_lava), reps, per=n_lava)
            sweep.add(f"lava {prec}, batch {b}", s, f"reference, batch {b}", b)
            cpus[prec].append(s.cpu_s)
    close_session()
    sweep.print()
    for name, label in (("reference", "reference"), ("float", "lava float"), ("fixed", "lava fixed")):
        run_s, sample_s = _fit(sizes, cpus[name])
        shares = ", ".join(f"{b}: {100 * run_s / (run_s + sample_s * b):.0f} %" for b in sizes)
        print(f"{label}: CPU per gradient = {run_s * 1e3:.2f} ms per run + {sample_s * 1e3:.4f} ms per sample "
              f"(least squares over batch {', '.join(map(str, sizes))}); per-run share by batch: {shares}")
    print(f"\n{thread_note()}")


if __name__ == "__main__":
    main()
