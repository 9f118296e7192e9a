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

``--quick`` skips the end-to-end section.  Times are wall clock on whatever else the
machine is doing, with the CPU time (this process and ngspice) beside them and the
load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


class Clock:
    """Wall time and CPU time (this process and its finished children, i.e. ngspice)
    of a block: on a shared machine the CPU time is what the work itself costs."""

    def __enter__(self) -> "Clock":
        self.t0, self.c0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.t0, _cpu() - self.c0

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall ({self.cpu:.2f} s CPU)"


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _run(sizes, batch_size: int = 1, **options) -> tuple[Clock, int, dict]:
    be = SpiceBackend()
    g = _net(sizes)
    art = be.compile(lower(g), be.options(options))
    with Clock() as c:
        res = be.run(art, _batch(g, batch_size), initial="random" if options.get("analysis") == "tran" else None)
    return c, art.data.synapse_count, res.settle


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
    rates = {}
    for label, writer in (("per-element", PerElementWriter()), ("vectorized", NgspiceWriter())):
        with Clock() as k:
            c = build_circuit(system)
            text = writer.write(c)
        rates[label] = (k, text)
    n_g = _g_elements(c)
    (k0, t0), (k1, t1) = rates["per-element"], rates["vectorized"]
    print(f"emission 784-256-256-10: {c.synapse_count:,} synapses, {n_g:,} G elements, {len(t1) / 1e6:.1f} MB; "
          f"build + write {k1} -> {n_g / k1.wall / 1e6:.2f} M G-elements/s wall, {n_g / k1.cpu / 1e6:.2f} per CPU s; "
          f"per-element formatting {k0} -> {n_g / k0.wall / 1e6:.2f} M/s wall ({k0.cpu / k1.cpu:.1f}x the CPU); "
          f"texts identical: {t0 == t1}")


def op_mnist(batch: int) -> None:
    t1, n, settle = _run(MNIST, analysis="op")
    tb, _, _ = _run(MNIST, batch, analysis="op")
    per_cpu = (tb.cpu - t1.cpu) / (batch - 1)
    # the per-sample wall difference is only meaningful on an idle machine: print it raw
    print(f".op 784-256-256-10 ({DEFAULT_REALIZATION}, {n:,} synapses): first sample {t1}; batch of {batch} in "
          f"one process {tb} -> following samples {per_cpu:.2f} s CPU each "
          f"({(tb.wall - t1.wall) / (batch - 1):+.2f} s wall each); {settle['ngspice_version']}")


def tran_64() -> None:
    t, n, settle = _run((64, 64, 64, 10), analysis="tran")
    print(f".tran 64-64-64-10 ({DEFAULT_REALIZATION}, {n:,} synapses) for {settle['duration_tau']:g} tau "
          f"(12 L): {t}")


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
    with Clock() as whole:
        res = be.run(art, batch, initial=start)
    same = True
    with Clock() as alone:
        for b in range(size):
            one = be.run(art, Batch({k: v[b:b + 1] for k, v in batch.x.items()}, batch.y[b:b + 1]),
                         initial=State({k: v[b:b + 1] for k, v in start.mean.items()},
                                       {k: v[b:b + 1] for k, v in start.tension.items()}))
            same &= all(np.array_equal(res.trace.tension[k][:, b:b + 1], one.trace.tension[k])
                        for k in one.trace.tension)
    print(f".tran {'-'.join(map(str, sizes))} batch of {size}: one ngspice process {whole}; one process per sample "
          f"{alone}; per sample {whole.cpu / size:.2f} vs {alone.cpu / size:.2f} s CPU "
          f"({alone.cpu / whole.cpu:.2f}x); identical traces: {same}")


def realizations_50k() -> None:
    sizes = (128, 128, 128, 128, 10)
    td, n, _ = _run(sizes, analysis="op", realization="differential")
    tp, _, _ = _run(sizes, analysis="op", realization="pair")
    print(f".op {'-'.join(map(str, sizes))} ({n:,} synapses): differential {td}, pair (pivrel 1e-6) {tp}; "
          f"pair / differential = {tp.wall / td.wall:.1f}x wall, {tp.cpu / td.cpu:.1f}x CPU")


def end_to_end() -> None:
    from hwbp.verify import verify

    for sizes, bound in ((MNIST, 12.0), ((256, 256, 256, 256, 10), 30.0), ((64,) * 8 + (10,), 5.0)):
        g = _net(sizes)
        with Clock() as t:
            v = verify(g, _batch(g), backend="spice", options={"analysis": "op"})
        print(f"verify --backend spice {'-'.join(map(str, sizes))} (1 sample): {t} (bound {bound:g} s: "
              f"wall {'met' if t.wall < bound else 'NOT met'}, CPU {'met' if t.cpu < bound else 'NOT met'}); "
              f"max rel err {v.comparison.max_rel_err:.1e}")


def cnn_digits() -> None:
    from hwbp.importers import load_onnx

    examples = Path(__file__).resolve().parent.parent / "examples"
    g = load_onnx(examples / "cnn_digits.onnx").with_loss("ce")
    system = lower(g)
    data = np.load(examples / "digits_batch.npz")
    t0 = time.perf_counter()
    c = build_circuit(system)
    text = NgspiceWriter().write(c)
    t1 = time.perf_counter()
    print("\n== examples/cnn_digits.onnx: Conv(1->4, 3x3) -> ReLU -> AvgPool(2) -> Linear(64->10) ==")
    print("populations: " + ", ".join(f"{p.name} ({p.size})" for p in system.populations))
    print(f"synapse instances {c.synapse_count:,}; G elements {_g_elements(c):,}; "
          f"all top-level elements {c.element_count:,}; {len(text) / 1e3:.0f} kB")
    print(f"{'row':<28}{'emission (s)':>14}{'.op (s)':>10}")
    for n in (1, 32):
        batch = Batch({"x": data["x"][:n]}, data["y"][:n])
        t2 = time.perf_counter()
        run_spice(system, batch, analysis="op")
        t3 = time.perf_counter()
        print(f"{f'cnn_digits, {n} sample(s)':<28}{t1 - t0:>14.3f}{t3 - t2:>10.2f}")



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="skip the end-to-end section")
    p.add_argument("--batch", type=int, default=4, help="batch size for the following-sample rate (>= 2)")
    p.add_argument("--tran-batch", type=int, default=4, help="samples of the one-process .tran batch (>= 1)")
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    emission()
    op_mnist(max(2, args.batch))
    tran_64()
    tran_batch(max(1, args.tran_batch))
    realizations_50k()
    cnn_digits()
    if not args.quick:
        end_to_end()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
