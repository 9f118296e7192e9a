"""SPICE target figures, side by side in one run (a plain script; prints, asserts nothing).

1. Emission: build and write the 784-256-256-10 MLP's netlist; G elements per second,
   beside the same deck written with per-element Python float formatting (the
   previous writer, kept here as the reference; the two texts must be identical).
2. ``.op`` of the 784-256-256-10 MLP (default realization): the first sample, and the
   rate of the following samples of a batch solved in the same ngspice process.
3. ``.tran`` of a 64-64-64-10 MLP for 12 L tau from a random state; then a batch of
   ``--tran-batch`` samples in one ngspice process beside the same samples run one at
   a time (one process each), and whether the results are identical.
4. Both realizations at ~50k synapses (128-128-128-128-10), ``.op``, and their ratio.
5. End to end, ``verify`` (the API under ``hwbp verify --backend spice``) of one
   sample: 784-256-256-10, 256-256-256-256-10, a 64-wide MLP of depth 8.
6. The convolutional example ``examples/cnn_digits.onnx``: netlist size, emission
   time and ``.op`` time (one sample, and the 32 samples of ``digits_batch.npz``).

Usage::

    .venv/bin/python benchmarks/bench_spice.py [--quick] [--batch 4] [--tran-batch 4]

``--quick`` skips the end-to-end section.  Every table row gives wall and CPU time
(this process and ngspice: ``benchmarks/measure.py``), the load average and the ratio
to the row it is compared with; on a shared machine quote the CPU ratios.  The
end-to-end rows also split the CPU time into ngspice's (the child process) and
hwbp's (the rest: lowering, the oracle, emission, reading the raw file), next to the
same ``verify`` on the reference backend, and the start-up of a Python process that
imports hwbp's SPICE path (what the command line adds).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Sample, Table, load_average, measure, thread_note  # noqa: E402

from hwbp.lower import lower  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.targets.spice.backend import SpiceBackend, run_spice  # noqa: E402
from hwbp.targets.spice.build import build_circuit  # noqa: E402
from hwbp.targets.spice.model import DEFAULT_REALIZATION, SynapseArray  # noqa: E402
from hwbp.targets.spice.writer import NgspiceWriter  # noqa: E402
from hwbp.types import Batch  # noqa: E402

MNIST = (784, 256, 256, 10)


def _g_elements(circuit) -> int:
    return sum(item.count * (2 if item.gate is not None else 1)
               for s in circuit.sections for item in s.items if isinstance(item, SynapseArray))


def _batch(g, n: int = 1, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    n_out = g.size(g.output)
    return Batch({"x": rng.standard_normal((n, g.inputs[0].size))}, np.eye(n_out)[rng.integers(0, n_out, n)])


def _net(sizes):
    return random_mlp(sizes, activation="tanh", seed=0).with_loss("ce")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(sizes, batch_size: int = 1, **options) -> tuple[Sample, int, dict]:
    be = SpiceBackend()
    g = _net(sizes)
    art = be.compile(lower(g), be.options(options))
    out = {}

    def run() -> None:
        out["res"] = be.run(art, _batch(g, batch_size), initial="random" if options.get("analysis") == "tran"
                            else None)

    return measure(run), art.data.synapse_count, out["res"].settle


class PerElementWriter(NgspiceWriter):
    """The previous writer's dense synapse arrays: a row template per array and one
    ``'{:.17g}'.format`` call per conductance (the reference the emission rate is
    compared with)."""

    def _flat_synapses(self, s: SynapseArray) -> list[str]:
        g17 = "{:.17g}".format
        tag = s.prefix[2:]
        if s.gate is None:
            cols = [f"Gsf{tag}_\x01_{i} 0 \x02 {u} 0 {{{i}}}" for i, u in enumerate(s.pre)]
        else:
            cols = [f"Gsf{tag}_\x01_{i} 0 \x02 {u} 0 {{{i}}}\nGsb{tag}_\x01_{i} 0 {d} \x03 0 {{{i}}}"
                    for i, (u, d) in enumerate(zip(s.pre, s.sens))]
        template = "\n".join(cols)
        gates = s.gate if s.gate is not None else s.post
        return [template.replace("\x01", str(j)).replace("\x02", post).replace("\x03", gate).format(*map(g17, row))
                for j, (post, gate, row) in enumerate(zip(s.post, gates, s.conductance_s.tolist()))]


def emission() -> None:
    system = lower(_net(MNIST))
    out = {}
    table = Table("emission of the 784-256-256-10 MLP's netlist (build + write)", extra=("M G-elements / CPU s",))
    for label, writer in (("per-element formatting", PerElementWriter()), ("vectorized writer", NgspiceWriter())):
        def run() -> None:
            out["c"] = build_circuit(system)
            out[label] = writer.write(out["c"])

        k = measure(run, 3)
        n_g = _g_elements(out["c"])
        table.add(label, k, None if label.startswith("per") else "per-element formatting",
                  f"{n_g / k.cpu_s / 1e6:.2f}")
    table.print()
    print(f"{out['c'].synapse_count:,} synapses, {n_g:,} G elements, {len(out['vectorized writer']) / 1e6:.1f} MB; "
          f"texts identical: {out['per-element formatting'] == out['vectorized writer']}\n")


def op_mnist(batch: int) -> None:
    t1, n, settle = _run(MNIST, analysis="op")
    tb, _, _ = _run(MNIST, batch, analysis="op")
    table = Table(f".op 784-256-256-10 ({DEFAULT_REALIZATION}, {n:,} synapses), {settle['ngspice_version']}")
    table.add("1 sample", t1)
    per = Sample((tb.wall_s - t1.wall_s) / (batch - 1), (tb.cpu_s - t1.cpu_s) / (batch - 1), tb.load)
    table.add(f"batch of {batch}, one process", tb, "1 sample")
    table.add("each following sample (difference)", per, "1 sample")
    table.print()


def tran_64() -> None:
    t, n, settle = _run((64, 64, 64, 10), analysis="tran")
    table = Table(f".tran 64-64-64-10 ({DEFAULT_REALIZATION}, {n:,} synapses) for {settle['duration_tau']:g} tau "
                  f"(12 L), 1 sample")
    table.add(".tran", t)
    table.print()


def tran_batch(size: int) -> None:
    """``size`` samples' ``.tran`` in one ngspice process vs one process per sample."""
    from hwbp.initial import initial_state
    from hwbp.state import State

    sizes = (64, 64, 64, 10)
    be = SpiceBackend()
    g = _net(sizes)
    system = lower(g)
    art = be.compile(system, be.options({"analysis": "tran"}))
    batch = _batch(g, size)
    start = initial_state(system, batch, "random", 0)
    got: dict = {"same": True}

    def whole() -> None:
        got["res"] = be.run(art, batch, initial=start)

    def alone() -> None:
        for b in range(size):
            one = be.run(art, Batch({k: v[b:b + 1] for k, v in batch.x.items()}, batch.y[b:b + 1]),
                         initial=State({k: v[b:b + 1] for k, v in start.mean.items()},
                                       {k: v[b:b + 1] for k, v in start.tension.items()}))
            got["same"] &= all(np.array_equal(got["res"].trace.tension[k][:, b:b + 1], one.trace.tension[k])
                               for k in one.trace.tension)

    batched = measure(whole, per=size)  # first: the per-sample runs are compared with its traces
    table = Table(f".tran {'-'.join(map(str, sizes))}, {size} samples", unit="sample")
    table.add("one process per sample", measure(alone, per=size))
    table.add("one ngspice process for the batch", batched, "one process per sample")
    table.print()
    print(f"identical traces: {got['same']}\n")


def realizations_50k() -> None:
    sizes = (128, 128, 128, 128, 10)
    td, n, _ = _run(sizes, analysis="op", realization="differential")
    tp, _, _ = _run(sizes, analysis="op", realization="pair")
    table = Table(f".op {'-'.join(map(str, sizes))} ({n:,} synapses), both realizations")
    table.add("differential", td)
    table.add("pair (pivrel 1e-6)", tp, "differential")
    table.print()


def startup() -> Sample:
    """A new Python process that imports the command line and the SPICE path."""
    code = "import hwbp.cli, hwbp.targets.spice.backend, hwbp.verify"
    return measure(lambda: subprocess.run([sys.executable, "-c", code], check=True), 3)


def end_to_end() -> None:
    from hwbp.verify import verify

    start = startup()
    table = Table("end to end: verify (1 sample, .op) against the reference backend's verify of the same model",
                  extra=("ngspice CPU", "hwbp CPU", "ngspice share"))
    table.add("python start-up (imports)", start, None, "", "", "")
    for sizes in (MNIST, (256, 256, 256, 256, 10), (64,) * 8 + (10,)):
        g = _net(sizes)
        batch = _batch(g)
        name = "-".join(map(str, sizes))
        table.add(f"reference {name}", measure(lambda: verify(g, batch, backend="reference"), 3), None, "", "", "")
        spent = {}

        def spice() -> None:
            c0 = _children_cpu()
            v = verify(g, batch, backend="spice", options={"analysis": "op"})
            spent["ngspice"], spent["err"] = _children_cpu() - c0, v.comparison.max_rel_err

        t = measure(spice)
        table.add(f"spice {name}", t, f"reference {name}", f"{spent['ngspice']:.2f} s",
                  f"{t.cpu_s - spent['ngspice']:.2f} s", f"{spent['ngspice'] / t.cpu_s:.0%}")
    table.print()


def cnn_digits() -> None:
    from hwbp.importers import load_onnx

    examples = Path(__file__).resolve().parent.parent / "examples"
    g = load_onnx(examples / "cnn_digits.onnx").with_loss("ce")
    system = lower(g)
    data = np.load(examples / "digits_batch.npz")
    out = {}

    def emit() -> None:
        out["c"] = build_circuit(system)
        out["text"] = NgspiceWriter().write(out["c"])

    table = Table("examples/cnn_digits.onnx: Conv(1->4, 3x3) -> ReLU -> AvgPool(2) -> Linear(64->10)")
    table.add("emission", measure(emit, 3))
    for n in (1, 32):
        batch = Batch({"x": data["x"][:n]}, data["y"][:n])
        table.add(f".op, {n} sample(s)", measure(lambda: run_spice(system, batch, analysis="op")),
                  None if n == 1 else ".op, 1 sample(s)")
    table.print()
    c = out["c"]
    print("populations: " + ", ".join(f"{p.name} ({p.size})" for p in system.populations))
    print(f"synapse instances {c.synapse_count:,}; G elements {_g_elements(c):,}; "
          f"all top-level elements {c.element_count:,}; {len(out['text']) / 1e3:.0f} kB\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="skip the end-to-end section")
    p.add_argument("--batch", type=int, default=4, help="batch size for the following-sample rate (>= 2)")
    p.add_argument("--tran-batch", type=int, default=4, help="samples of the one-process .tran batch (>= 1)")
    args = p.parse_args(argv)
    print(f"load average {load_average():.1f}; {thread_note()}\n")
    emission()
    op_mnist(max(2, args.batch))
    tran_64()
    tran_batch(max(1, args.tran_batch))
    realizations_50k()
    cnn_digits()
    if not args.quick:
        end_to_end()
    print(f"load average {load_average():.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
