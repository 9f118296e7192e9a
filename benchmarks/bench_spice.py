"""SPICE target figures, side by side in one run (a plain script; prints, asserts nothing).

1. Emission: build and write the 784-256-256-10 MLP's netlist; G elements per second.
2. ``.op`` of the 784-256-256-10 MLP (default realization): the first sample, and the
   rate of the following samples of a batch solved in the same ngspice process.
3. ``.tran`` of a 64-64-64-10 MLP for 12 L tau from a random state.
4. Both realizations at ~50k synapses (128-128-128-128-10), ``.op``, and their ratio.
5. End to end, ``verify`` (the API under ``hwbp verify --backend spice``) of one
   sample: 784-256-256-10, 256-256-256-256-10, a 64-wide MLP of depth 8.

Usage::

    .venv/bin/python benchmarks/bench_spice.py [--quick] [--batch 4]

``--quick`` skips the end-to-end section.  Times are wall clock on whatever else the
machine is doing; the load average is printed with them.
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
from hwbp.targets.spice.backend import SpiceBackend  # noqa: E402
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


def _run(sizes, batch_size: int = 1, **options) -> tuple[float, int, dict]:
    be = SpiceBackend()
    g = _net(sizes)
    art = be.compile(lower(g), be.options(options))
    t0 = time.perf_counter()
    res = be.run(art, _batch(g, batch_size), initial="random" if options.get("analysis") == "tran" else None)
    return time.perf_counter() - t0, art.data.synapse_count, res.settle


def emission() -> None:
    system = lower(_net(MNIST))
    t0 = time.perf_counter()
    c = build_circuit(system)
    t1 = time.perf_counter()
    text = NgspiceWriter().write(c)
    t2 = time.perf_counter()
    n_g = _g_elements(c)
    print(f"emission 784-256-256-10: {c.synapse_count:,} synapses, {n_g:,} G elements, {len(text) / 1e6:.1f} MB; "
          f"build {t1 - t0:.2f} s + write {t2 - t1:.2f} s -> {n_g / (t2 - t0) / 1e6:.2f} M G-elements/s")


def op_mnist(batch: int) -> None:
    t1, n, settle = _run(MNIST, analysis="op")
    tb, _, _ = _run(MNIST, batch, analysis="op")
    per = (tb - t1) / (batch - 1)
    print(f".op 784-256-256-10 ({DEFAULT_REALIZATION}, {n:,} synapses): first sample {t1:.2f} s; batch of {batch} in "
          f"one process {tb:.2f} s -> following samples {per:.2f} s each ({1 / max(per, 1e-9):.1f} samples/s); "
          f"{settle['ngspice_version']}")


def tran_64() -> None:
    t, n, settle = _run((64, 64, 64, 10), analysis="tran")
    print(f".tran 64-64-64-10 ({DEFAULT_REALIZATION}, {n:,} synapses) for {settle['duration_tau']:g} tau "
          f"(12 L): {t:.2f} s")


def realizations_50k() -> None:
    sizes = (128, 128, 128, 128, 10)
    td, n, _ = _run(sizes, analysis="op", realization="differential")
    tp, _, _ = _run(sizes, analysis="op", realization="pair")
    print(f".op {'-'.join(map(str, sizes))} ({n:,} synapses): differential {td:.2f} s, pair (pivrel 1e-6) {tp:.2f} s, "
          f"pair / differential = {tp / td:.1f}x")


def end_to_end() -> None:
    from hwbp.verify import verify

    for sizes, bound in ((MNIST, 12.0), ((256, 256, 256, 256, 10), 30.0), ((64,) * 8 + (10,), 5.0)):
        g = _net(sizes)
        t0 = time.perf_counter()
        v = verify(g, _batch(g), backend="spice", options={"analysis": "op"})
        t = time.perf_counter() - t0
        print(f"verify --backend spice {'-'.join(map(str, sizes))} (1 sample): {t:.2f} s (bound {bound:g} s, "
              f"{'met' if t < bound else 'NOT met'}); max rel err {v.comparison.max_rel_err:.1e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="skip the end-to-end section")
    p.add_argument("--batch", type=int, default=4, help="batch size for the following-sample rate (>= 2)")
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    emission()
    op_mnist(max(2, args.batch))
    tran_64()
    realizations_50k()
    if not args.quick:
        end_to_end()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
