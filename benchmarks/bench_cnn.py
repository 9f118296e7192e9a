"""CIFAR-sized CNN: ``hwbp verify`` on the reference backend against torch float64
forward+backward of the same model, side by side.

Model (exported from torch to ONNX, imported by hwbp): 3x32x32 input, Conv2d(3, 64, 3,
pad 1), ReLU, Conv2d(64, 64, 3, pad 1), ReLU, AvgPool2d(2), Flatten, Linear(16384, 10),
MSE loss; batch 32.  In one run, interleaved round by round (medians over rounds), it
measures CPU time (``time.process_time``: all threads of this process) of

* ``torch``    float64 forward + backward (``loss.backward()``), the competitor;
* ``steady``   ``verify`` in steady mode: simulation + readout + exact oracle + comparison;
* ``unit-step`` ``verify`` with the reference default (unit-step Euler, 2L steps from zeros);

and, in a child process that imports hwbp and numpy only, the peak resident memory of
one steady ``verify`` (``ru_maxrss``: the whole process, interpreter included) and the
bytes the structured operators hold against the dense matrices they stand for.  Last,
a convolution on a 1x1000x1000 input (8 channels, 3x3, stride 8, then Linear(125000, 2))
is verified at batch 1: its dense matrix would be 931 GiB.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_cnn.py [--rounds N]``.
Targets: steady verify <= 3x torch, peak memory < 2 GB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from statistics import median

import numpy as np

BATCH = 32
SHAPE = (3, 32, 32)


def _torch_model():
    import torch

    torch.manual_seed(0)
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1),
                                      nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64 * 16 * 16, 10))

        def forward(self, x):
            return self.body(x.reshape((-1,) + SHAPE))

    return Net().double()


def _onnx(model) -> bytes:
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, int(np.prod(SHAPE)), dtype=torch.float64),), buf, dynamo=False)
    return buf.getvalue()


def _data(n_out: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((BATCH, int(np.prod(SHAPE)))), rng.standard_normal((BATCH, n_out))


def _verify(onnx_bytes: bytes, mode: str | None):
    from hwbp.importers.onnx import load_onnx_bytes
    from hwbp.types import Batch
    from hwbp.verify.run import verify

    g = load_onnx_bytes(onnx_bytes, source="cnn.onnx").with_loss("mse")
    x, y = _data()
    opts = {} if mode is None else {"mode": mode}
    return verify(g, Batch({g.inputs[0].name: x}, y), backend="reference", options=opts)


def _child(path: str) -> None:
    """Peak memory of one steady verify (this process imports no torch)."""
    from hwbp.lower.system import term_matrix

    with open(path, "rb") as fh:
        v = _verify(fh.read(), "steady")
    system = v.system
    held = dense = 0
    for p in system.populations:
        for t in p.terms:
            if t.layout is not None:
                w, _ = term_matrix(system.parameters, t)
                held += getattr(w, "nbytes", 0) or w.data.nbytes + w.indices.nbytes + w.indptr.nbytes
                dense += 8 * w.shape[0] * w.shape[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"passed": v.passed, "max_rel_err": v.comparison.max_rel_err, "peak_rss": rss,
                      "operator_bytes": held, "dense_bytes": dense}))


def _large() -> tuple[bool, float, float]:
    """(passed, max_rel_err, CPU s) of the reference verify of the 1x1000x1000 convolution."""
    import torch

    from hwbp.importers.onnx import load_onnx_bytes
    from hwbp.types import Batch
    from hwbp.verify.run import verify

    torch.manual_seed(0)
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3, stride=8, padding=1), nn.ReLU(), nn.Flatten(),
                                      nn.Linear(125000, 2))

        def forward(self, x):
            return self.body(x.reshape(-1, 1, 1000, 1000))

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().double(), (torch.zeros(1, 10**6, dtype=torch.float64),), buf, dynamo=False)
    g = load_onnx_bytes(buf.getvalue(), source="large.onnx").with_loss("mse")
    rng = np.random.default_rng(0)
    batch = Batch({g.inputs[0].name: rng.standard_normal((1, 10**6))}, rng.standard_normal((1, 2)))
    t0 = time.process_time()
    v = verify(g, batch, backend="reference")
    return v.passed, v.comparison.max_rel_err, time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    import torch

    model = _torch_model()
    data = _onnx(model)
    x, y = _data()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step() -> None:
        model.zero_grad()
        loss = (0.5 * ((model(xt) - yt) ** 2).sum(dim=1)).mean()
        loss.backward()

    cases = {"torch": torch_step, "steady": lambda: _verify(data, "steady"),
             "unit-step": lambda: _verify(data, None)}
    for fn in cases.values():  # warm-up
        fn()
    v = _verify(data, "steady")
    ref = {k: p.grad.numpy() for k, p in model.named_parameters()}
    worst = max(float(np.linalg.norm(v.physical.parameters[k] - g) / np.linalg.norm(g)) for k, g in ref.items())
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    med = {k: median(t) for k, t in times.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cnn.onnx")
        with open(path, "wb") as fh:
            fh.write(data)
        out = subprocess.run([sys.executable, __file__, "--child", path], capture_output=True, text=True, check=True)
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"CIFAR-sized CNN 3x32x32 -> conv64 -> conv64 -> avgpool2 -> dense10, batch {BATCH}; "
          f"CPU time, medians of {args.rounds} interleaved rounds; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch thread(s)\n")
    head = f"{'case':>10}  {'CPU s':>7}  {'x torch':>8}"
    print(head)
    print("-" * len(head))
    for k, t in med.items():
        print(f"{k:>10}  {t:>7.3f}  {t / med['torch']:>7.2f}x")
    print(f"\nsteady verify: passed={v.passed}, max_rel_err vs oracle {v.comparison.max_rel_err:.1e}, "
          f"vs torch autograd {worst:.1e}")
    print(f"peak RSS of one steady verify (child process, interpreter included): {mem['peak_rss'] / 2**30:.2f} GiB")
    print(f"structured operators hold {mem['operator_bytes'] / 2**20:.2f} MiB for matrices of "
          f"{mem['dense_bytes'] / 2**30:.1f} GiB dense\n")
    passed, err, cpu = _large()
    print(f"1x1000x1000 convolution (dense matrix 931 GiB), batch 1, reference verify: passed={passed}, "
          f"max_rel_err {err:.1e}, {cpu:.2f} s CPU\n")
    for text, ok in [("steady verify <= 3x torch float64 forward+backward", med["steady"] / med["torch"] <= 3.0),
                     ("peak memory < 2 GB", mem["peak_rss"] < 2e9), ("gradients match torch (rel <= 1e-10)",
                                                                    worst <= 1e-10 and v.passed),
                     ("1x1000x1000 convolution verifies", passed)]:
        print(f"  {'met ' if ok else 'MISSED'}  {text}")


if __name__ == "__main__":
    main()
