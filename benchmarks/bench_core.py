"""Core benchmark: the reference simulator against plain backprop, side by side.

Batch 256, width 256, tanh MLPs of depth 8 and 64.  For each depth, in one run and
interleaved round by round (medians over rounds), it times:

* ``oracle``    plain reverse-mode backprop (hwbp.oracle.exact_gradients);
* ``steady``    steady mode (fixed point directly) + gradient readout, streaming
                (hwbp.sim.steady_gradients: each layer's gradient read as its
                tension settles, the state dropped once read) — target <= 1.5x;
* ``steady state`` the same gradients through the full state the backend contract
                returns (simulate(mode="steady"), then read_gradients) — ratio printed;
* ``manifold``  unit-step from the forward manifold (forward sweep, then L steps with
                unchanged populations skipped) + readout                 — target <= 2x;
* ``faithful``  unit-step from a random state for 2L steps, every population
                evaluated every step (O(L^2))                            — ratio printed;
* ``matmul``    the same matrix products as ``faithful`` (same operands, same
                order) with nothing else: the simulator's achieved fraction of numpy
                matmul throughput                                        — target >= 50%.

Each row prints wall and CPU time (medians), the load average and the ratio to its
competitor (``oracle``; ``matmul`` against ``faithful``): CPU-time ratios are the ones
to quote on a shared machine (``benchmarks/measure.py``).

A second table sets ``steady`` (+ readout, streaming) against its outside competitor,
torch float64 forward + backward (parameter gradients of the same MLP and loss), by CPU
time with one BLAS / torch thread, at width 256 (depths 8, 32, 64) and width 1024
(depth 8), batch 256 — targets <= 1.1x at width 256, <= 1.2x at 1024 — with the full
state path beside it, and the peak memory of one gradient step at depth 64, torch's,
the streaming path's and the full state path's (each in a fresh child process, the
network and batch already built: the peak of the C heap in use, sampled every 0.2 ms
during the step, minus its value before; median of three) — target <= 1.5x torch's
for the streaming path.  The gradients of the two steady paths are bit-identical
(tests/test_steady_stream.py).

Run: ``python benchmarks/bench_core.py [--rounds N] [--depths 8 64] [--torch-rounds N] [--no-torch]``
(``--depths`` with no depth: the table against torch only).
The process sets ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` to 1 unless they are set.
"""

from __future__ import annotations

# ruff: noqa: E402  (the BLAS thread count must be set before numpy is imported)
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import ctypes
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import median
from typing import Callable

import numpy as np

from hwbp.lower import lower
from hwbp.models import random_mlp
from hwbp.oracle import exact_gradients
from hwbp.sim import simulate, steady_gradients
from hwbp.types import Batch
from hwbp.verify import read_gradients

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import Sample, Table, measure, thread_note  # noqa: E402

BATCH = 256
WIDTH = 256


def bench(depth: int, rounds: int) -> dict:
    graph = random_mlp([WIDTH] * (depth + 1), activation="tanh", seed=0).with_loss("mse")
    rng = np.random.default_rng(0)
    batch = Batch.for_model({"x": WIDTH}, WIDTH, rng.standard_normal((BATCH, WIDTH)),
                            rng.standard_normal((BATCH, WIDTH)))
    system = lower(graph)
    weights = [system.parameters[f"fc{i}.weight"] for i in range(1, depth + 1)]
    acts = [rng.standard_normal((BATCH, WIDTH)) for _ in range(depth)]
    flops = {}

    def steady() -> None:
        steady_gradients(system, batch)

    def steady_state() -> None:
        read_gradients(system, simulate(system, batch, mode="steady").state, batch)

    def manifold() -> None:
        res = simulate(system, batch, mode="unit-step", steps=depth, initial="forward-manifold")
        read_gradients(system, res.state, batch)

    def faithful() -> None:
        res = simulate(system, batch, mode="unit-step", steps=2 * depth, initial="random", skip_unchanged=False)
        flops["faithful"] = res.stats["flops"]

    def matmul() -> None:
        for _ in range(2 * depth):
            for i, w in enumerate(weights):
                acts[i] @ w.T
                if i:  # the first layer has no sensitivity product (inputs are clamped)
                    acts[i] @ w

    cases = {"oracle": lambda: exact_gradients(graph, batch), "steady": steady, "steady state": steady_state,
             "manifold": manifold, "faithful": faithful, "matmul": matmul}
    samples: dict[str, list[Sample]] = {k: [] for k in cases}
    for name, fn in cases.items():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(measure(fn))
    med: dict = {k: Sample(median(s.wall_s for s in v), median(s.cpu_s for s in v), v[-1].load, len(v))
                 for k, v in samples.items()}
    med["faithful_gflops"] = flops["faithful"] / med["faithful"].wall_s / 1e9
    med["matmul_gflops"] = flops["faithful"] / med["matmul"].wall_s / 1e9
    return med


#: (width, depth, target ratio) of the steady-vs-torch rows.
TORCH_ROWS = ((256, 8, 1.1), (256, 32, 1.1), (256, 64, 1.1), (1024, 8, 1.2))
#: (width, depth) of the memory row, and its target ratio.
MEMORY_ROW, MEMORY_TARGET = (256, 64), 1.5


def _mlp_case(width: int, depth: int):
    graph = random_mlp([width] * (depth + 1), activation="tanh", seed=0).with_loss("mse")
    rng = np.random.default_rng(0)
    batch = Batch.for_model({"x": width}, width, rng.standard_normal((BATCH, width)),
                            rng.standard_normal((BATCH, width)))
    return graph, batch


def _torch_step(graph, batch):
    """Torch float64 forward + backward of ``graph`` (Dense and Activation nodes, mse)."""
    import torch

    from hwbp.ir import Activation, Dense

    torch.set_num_threads(1)
    params, layers = {}, []
    for node in graph.nodes:
        if isinstance(node, Dense):
            w = torch.tensor(np.array(node.weight), requires_grad=True)
            b = torch.tensor(np.array(node.bias), requires_grad=True)
            params[node.weight_name], params[node.bias_name] = w, b
            layers.append((w, b, node.gain))
        elif isinstance(node, Activation):
            assert node.function == "tanh"
            layers.append(None)
    x, y = torch.tensor(batch.x["x"]), torch.tensor(batch.y)
    names, tensors = list(params), list(params.values())

    def step() -> dict:
        h = x
        for layer in layers:
            if layer is None:
                h = torch.tanh(h)
            else:
                w, b, g = layer
                h = torch.nn.functional.linear(h, w if g == 1.0 else g * w, b)
        loss = (0.5 * ((h - y) ** 2).sum(dim=1)).mean()
        return dict(zip(names, torch.autograd.grad(loss, tensors)))

    return step


def _steady_step(graph, batch):
    """Steady mode + readout, streaming (``hwbp.sim.steady_gradients``): the gradients
    only, each layer's read as its tension settles."""
    system = lower(graph)
    return lambda: steady_gradients(system, batch)


def _full_step(graph, batch):
    """Steady mode + readout through the full state (``simulate`` then ``read_gradients``)."""
    system = lower(graph)
    return lambda: read_gradients(system, simulate(system, batch, mode="steady").state, batch)


STEPS = {"torch": _torch_step, "steady": _steady_step, "full": _full_step}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


def _heap_in_use() -> Callable[[], int]:
    """Bytes the C heap has handed out (small blocks + mmapped blocks): numpy's and
    torch's arrays both live there."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2

    def in_use() -> int:
        m = libc.mallinfo2()
        return int(m.uordblks + m.hblkhd)

    return in_use


def _memory_child(case: str, width: int, depth: int) -> None:
    """Print the peak heap memory one ``case`` step adds (bytes), in this fresh process:
    a thread samples the heap in use every 0.2 ms while the step runs."""
    make = STEPS[case]
    make(*_mlp_case(16, 2))()  # load the code paths (libraries, thread pools) on a tiny network first
    graph, batch = _mlp_case(width, depth)
    step = make(graph, batch)
    in_use = _heap_in_use()
    before = in_use()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], in_use())
            time.sleep(0.0002)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        result = step()
    finally:
        done.set()
        thread.join()
    peak[0] = max(peak[0], in_use())
    print(json.dumps({"added": peak[0] - before, "n": len(getattr(result, "parameters", result))}))


def _memory(case: str, width: int, depth: int, tries: int = 3) -> dict:
    """The median of ``tries`` fresh-process measurements."""
    runs = []
    for _ in range(tries):
        out = subprocess.run([sys.executable, __file__, "--memory-child", case, str(width), str(depth)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return sorted(runs, key=lambda r: r["added"])[len(runs) // 2]


def bench_ops(width: int = 256, reps: int = 50) -> None:
    """CPU time of one layer's operations, numpy (what the steady path runs) beside torch
    (what its step runs), float64, one thread: the three matrix products and tanh."""
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    u, w, e = (rng.standard_normal((BATCH if k != 1 else width, width)) for k in range(3))
    tu, tw, te = (torch.tensor(a) for a in (u, w, e))
    bias = rng.standard_normal(width)
    tb = torch.tensor(bias)

    def linear() -> np.ndarray:
        a = u @ w.T
        a += bias
        return a

    pairs = {"forward product u Wᵀ + b": (linear, lambda: torch.nn.functional.linear(tu, tw, tb)),
             "sensitivity product e W": (lambda: e @ w, lambda: te @ tw),
             "weight gradient eᵀ u": (lambda: e.T @ u, lambda: te.T @ tu),
             "tanh": (lambda: np.tanh(u), lambda: torch.tanh(tu))}
    print(f"\none layer's operations, {BATCH} x {width} float64, CPU time per call (median of {reps}, "
          f"interleaved), 1 thread\n")
    head = f"{'operation':<32}  {'numpy ms':>8}  {'torch ms':>8}  {'numpy/torch':>11}"
    print(head)
    print("-" * len(head))
    for name, fns in pairs.items():
        times: list[list[float]] = [[], []]
        for _ in range(reps):
            for k, fn in enumerate(fns):
                t0 = time.process_time()
                fn()
                times[k].append(time.process_time() - t0)
        a, b = median(times[0]), median(times[1])
        print(f"{name:<32}  {a * 1e3:>8.3f}  {b * 1e3:>8.3f}  {a / b:>10.2f}x")


def bench_torch(rounds: int) -> list[tuple[str, bool]]:
    """Steady + readout against torch float64 forward + backward (CPU time, side by side)."""
    import torch

    print(f"\nsteady + readout against torch {torch.__version__} float64 forward + backward; batch {BATCH}, tanh "
          f"MLP, CPU time, 1 thread, medians of {rounds} interleaved rounds\n")
    head = (f"{'width':>5}  {'depth':>5}  {'torch ms':>9}  {'steady ms':>9}  {'steady/torch':>12}  {'target':>6}  "
            f"{'state ms':>9}  {'state/torch':>11}")
    print("steady: streaming gradients (hwbp.sim.steady_gradients); state: simulate(mode=\"steady\") + "
          "read_gradients (the full state)\n")
    print(head)
    print("-" * len(head))
    verdicts = []
    ratios: dict[tuple[int, int], float] = {}
    for width, depth, target in TORCH_ROWS:
        graph, batch = _mlp_case(width, depth)
        cases = {name: make(graph, batch) for name, make in STEPS.items()}
        want, got, full = cases["torch"](), cases["steady"](), cases["full"]()  # warm-up, and they agree
        worst = max(float(np.linalg.norm(got.parameters[k] - w.numpy()) / np.linalg.norm(w.numpy()))
                    for k, w in want.items())
        same = all(np.array_equal(got.parameters[k], g) for k, g in full.parameters.items())
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(rounds):
            for name, fn in cases.items():
                t0 = time.process_time()
                fn()
                times[name].append(time.process_time() - t0)
        t, st, ft = median(times["torch"]), median(times["steady"]), median(times["full"])
        ratios[(width, depth)] = st / t
        print(f"{width:>5}  {depth:>5}  {t * 1e3:>9.1f}  {st * 1e3:>9.1f}  {st / t:>11.2f}x  {target:>5.1f}x  "
              f"{ft * 1e3:>9.1f}  {ft / t:>10.2f}x")
        verdicts += [(f"width {width} depth {depth}: steady + readout <= {target}x torch forward+backward",
                      st / t <= target), (f"width {width} depth {depth}: gradients agree with torch (rel "
                                          f"{worst:.0e} <= 1e-10)", worst <= 1e-10),
                     (f"width {width} depth {depth}: streaming and full-state gradients bit-identical", same)]
    width, depth = MEMORY_ROW
    mem = {name: _memory(name, width, depth)["added"] for name in STEPS}
    ratio = mem["steady"] / mem["torch"]
    print(f"\npeak heap memory added by one gradient step, width {width} depth {depth} (fresh processes, "
          f"median of 3):\n  torch {mem['torch'] / 2**20:.1f} MiB; steady + readout, streaming "
          f"{mem['steady'] / 2**20:.1f} MiB ({ratio:.2f}x torch's, target <= {MEMORY_TARGET}x); full state "
          f"{mem['full'] / 2**20:.1f} MiB ({mem['full'] / mem['torch']:.2f}x)")
    bench_ops()
    at = ratios[(width, depth)]
    print(f"\nwidth {width} depth {depth}, steady + readout (streaming) against torch, side by side: CPU time "
          f"{at:.2f}x, peak memory {ratio:.2f}x")
    verdicts.append((f"width {width} depth {depth}: steady peak memory <= {MEMORY_TARGET}x torch's",
                     ratio <= MEMORY_TARGET))
    return verdicts


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--memory-child":
        _memory_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depths", type=int, nargs="*", default=[8, 64], help="depths of the tables against the "
                        "oracle (none: only the table against torch)")
    parser.add_argument("--torch-rounds", type=int, default=9, help="rounds of the table against torch (its rows "
                        "take well under a second: more rounds, a steadier median on a busy machine)")
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--no-torch", action="store_true", help="skip the rows against torch")
    args = parser.parse_args()
    globals()["WIDTH"] = args.width
    print(f"batch {BATCH}, width {WIDTH}, tanh MLP; medians of {args.rounds} interleaved rounds; {thread_note()}\n")
    verdicts = []
    for depth in args.depths:
        m = bench(depth, args.rounds)
        table = Table(f"depth {depth}: one gradient (batch {BATCH}, width {WIDTH})", unit="gradient",
                      extra=("target",))
        table.add("oracle", m["oracle"], None, "")
        table.add("steady", m["steady"], "oracle", "<= 1.5x")
        table.add("steady state", m["steady state"], "oracle", "")
        table.add("manifold", m["manifold"], "oracle", "<= 2x")
        table.add("faithful", m["faithful"], "oracle", "")
        table.add("matmul", m["matmul"], "faithful", ">= 50% of faithful's throughput")
        table.print()
        share = m["matmul"].cpu_s / m["faithful"].cpu_s
        print(f"faithful: {m['faithful_gflops']:.0f} GF/s, matmul alone {m['matmul_gflops']:.0f} GF/s (wall)\n")
        verdicts += [
            (f"depth {depth}: steady <= 1.5x oracle (CPU)", table.ratio("steady") <= 1.5),
            (f"depth {depth}: manifold unit-step <= 2x oracle (CPU)", table.ratio("manifold") <= 2.0),
            (f"depth {depth}: faithful unit-step >= 50% of matmul throughput (CPU)", share >= 0.5),
        ]
    if not args.no_torch:
        verdicts += bench_torch(args.torch_rounds)
    print()
    for text, ok in verdicts:
        print(f"  {'met ' if ok else 'MISSED'}  {text}")


if __name__ == "__main__":
    main()
