"""SPICE target figures (a plain script; prints tables, asserts nothing).

1. Netlist emission for a 784-256-256-10 MLP: synapse instances, G elements
   (2 per synapse between populations, 1 per input synapse), build and write
   time, elements/s.
2. ``.op`` (one sample) and ``.tran`` (12 L tau) wall time against network size.
3. Routes to put new weights into a loaded circuit (shared ngspice library):
   re-parse the netlist vs ``alter`` every synapse element.
4. The convolutional example ``examples/cnn_digits.onnx``: netlist size, emission
   time and ``.op`` time (one sample, and the 32 samples of ``digits_batch.npz``).

Usage::

    .venv/bin/python benchmarks/bench_spice.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbp.lower import lower  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.targets.spice.backend import run_spice  # noqa: E402
from hwbp.targets.spice.build import build_circuit, stimulus  # noqa: E402
from hwbp.targets.spice.model import SynapseArray  # noqa: E402
from hwbp.targets.spice.shared import SharedRunner  # noqa: E402
from hwbp.targets.spice.writer import NgspiceWriter  # noqa: E402
from hwbp.types import Batch  # noqa: E402


def _g_elements(circuit) -> int:
    return sum(item.count * (2 if item.gate is not None else 1)
               for s in circuit.sections for item in s.items if isinstance(item, SynapseArray))


def _batch(g, n: int = 1) -> Batch:
    rng = np.random.default_rng(0)
    n_out = g.size(g.output)
    return Batch({"x": rng.standard_normal((n, g.inputs[0].size))}, np.eye(n_out)[rng.integers(0, n_out, n)])


def emission() -> None:
    g = random_mlp((784, 256, 256, 10), activation="tanh", seed=0).with_loss("ce")
    system = lower(g)
    t0 = time.perf_counter()
    c = build_circuit(system)
    t1 = time.perf_counter()
    text = NgspiceWriter().write(c)
    t2 = time.perf_counter()
    n_g = _g_elements(c)
    print("== emission: 784-256-256-10 MLP ==")
    print(f"synapse instances {c.synapse_count:,}; G elements {n_g:,}; all top-level elements {c.element_count:,}")
    print(f"build {t1 - t0:.2f} s, write {t2 - t1:.2f} s, total {t2 - t0:.2f} s, {len(text) / 1e6:.1f} MB")
    print(f"rate: {n_g / (t2 - t0) / 1e6:.2f} M G-elements/s, {c.synapse_count / (t2 - t0) / 1e6:.2f} M synapses/s")


def analyses(quick: bool) -> None:
    sizes = [(16, 16, 10), (32, 32, 32, 10), (64, 64, 64, 10)] + ([] if quick else [(128, 128, 128, 10)])
    print("\n== .op and .tran wall time (batch runner, 1 sample; .tran for 12 L tau) ==")
    print(f"{'network':<20}{'synapses':>10}{'.op (s)':>10}{'.tran (s)':>11}")
    for sizes_ in sizes:
        g = random_mlp(sizes_, activation="tanh", seed=0).with_loss("ce")
        system, batch = lower(g), _batch(g)
        t0 = time.perf_counter()
        run_spice(system, batch, analysis="op")
        t1 = time.perf_counter()
        run_spice(system, batch, analysis="tran", initial="random", trace=False)
        t2 = time.perf_counter()
        n = build_circuit(system).synapse_count
        print(f"{'-'.join(map(str, sizes_)):<20}{n:>10,}{t1 - t0:>10.2f}{t2 - t1:>11.2f}")


def routes() -> None:
    g = random_mlp((64, 64, 64, 10), activation="tanh", seed=0).with_loss("ce")
    system, batch = lower(g), _batch(g)
    c = build_circuit(system)
    runner = SharedRunner()
    stim = stimulus(c, {"x": batch.x["x"][0]}, batch.y[0])
    nodes = c.saved_nodes()
    new = system.with_parameters({k: v * 1.01 for k, v in system.parameters.items() if k.endswith(".weight")})
    print("\n== weight update routes, 64-64-64-10 (shared library, then one .op) ==")
    t0 = time.perf_counter()
    deck = runner.writer.write(build_circuit(new), stimulus=stim, analyses=(), save=nodes)
    a = runner.op(c, [stim], nodes, deck=deck)
    t1 = time.perf_counter()
    print(f"re-parse: write + load + .op {t1 - t0:.3f} s (used by hwbp train)")
    runner.load(runner.writer.write(c, stimulus=stim, analyses=(), save=nodes), ".op", "bench")
    cmds = []
    for s in new_arrays(build_circuit(new)):
        for j in range(s.conductance_s.shape[0]):
            for i in range(s.conductance_s.shape[1]):
                inst = f"{s.prefix}_{j}_{i}".lower()
                val = s.conductance_s[j, i]
                cmds.append(f"alter @g.{inst}.gf[gain] = {val!r}")
                if s.gate is not None:
                    cmds.append(f"alter @g.{inst}.gb[gain] = {val!r}")
    t2 = time.perf_counter()
    try:
        for cmd in cmds:
            runner.command(cmd, "alter", "bench")
        runner.command("op", ".op", "bench")
        b = runner.vectors(nodes, ".op", "bench")[0]
        t3 = time.perf_counter()
        print(f"alter: {len(cmds):,} alter commands + .op {t3 - t2:.3f} s; "
              f"max |dV| vs re-parse {np.max(np.abs(a[0] - b)):.1e} V")
    except Exception as exc:  # report, do not stop the benchmark
        print(f"alter: failed ({exc})")
    finally:
        runner.reset()


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


def new_arrays(circuit):
    return [i for s in circuit.sections for i in s.items if isinstance(i, SynapseArray)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="skip the largest network")
    args = p.parse_args(argv)
    emission()
    analyses(args.quick)
    routes()
    cnn_digits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
