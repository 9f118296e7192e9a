"""The digital reference of the trade-off study: the same gradient computed on this CPU
(torch autograd and hwbp's reference simulator, CPU time measured here) priced at a cited
per-core power, and the multiply-accumulates of the gradient priced at a published
accelerator energy per operation.

Cited figures (numbers, not measurements):

* ``CPU_W_PER_CORE``: this machine reports an AMD EPYC of family 25, model 1 (Zen 3,
  "Milan", the EPYC 7003 series); the virtual machine does not name the part, so the
  series' top part stands for it: AMD EPYC 7763, 64 cores, default TDP 280 W
  (AMD's product page, https://www.amd.com/en/products/cpu/amd-epyc-7763),
  280 / 64 = 4.375 W per core.
* ``FMUL_J``, ``FADD_J``: M. Horowitz, "Computing's energy problem (and what we can do
  about it)", ISSCC 2014, pp. 10-14, doi:10.1109/ISSCC.2014.6757323, 45 nm, 0.9 V:
  32-bit float multiply 3.7 pJ, add 0.9 pJ (arithmetic alone; an 8 kB SRAM read of 32 bits
  is 10 pJ there, so memory traffic comes on top).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

#: W per core: AMD EPYC 7763, 280 W TDP / 64 cores (see the module docstring).
CPU_W_PER_CORE = 280.0 / 64
CPU_SOURCE = "AMD EPYC 7763 (Zen 3, the series this CPU reports): 280 W TDP / 64 cores (AMD product page)"
#: J per 32-bit float multiply and add, 45 nm (Horowitz, ISSCC 2014).
FMUL_J = 3.7e-12
FADD_J = 0.9e-12
MAC_SOURCE = "Horowitz, ISSCC 2014, 45 nm: fp32 multiply 3.7 pJ + add 0.9 pJ per MAC"


def gradient_macs(graph: Any) -> int:
    """Multiply-accumulates of one sample's gradient of an MLP ``graph``: the forward pass,
    every layer's weight gradient (an outer product) and the backward pass through every
    layer but the first (its input needs no gradient)."""
    shapes = [np.shape(v) for k, v in graph.parameters().items() if k.endswith("weight")]
    fwd = sum(int(np.prod(s)) for s in shapes)
    back = sum(int(np.prod(s)) for s in shapes[1:])
    return 2 * fwd + back


def _cpu_per_call(fn: Any, min_s: float = 0.5, repeat: int = 3) -> float:
    """Least over ``repeat`` rounds of CPU seconds per call of ``fn`` (each round at least
    ``min_s`` CPU seconds; the least round drops time lost to other work on the machine)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < min_s:
            fn()
            n += 1
        best = min(best, (time.process_time() - t0) / n)
    return best


def digital_reference(graph: Any, batch: Any, loss_name: str, min_s: float = 0.5) -> dict[str, Any]:
    """CPU seconds per sample of the gradient of ``batch`` (torch float32 autograd on one thread, and hwbp's
    reference simulator in steady mode; ``loss_name`` ``ce`` or ``mse``), their energy at
    :data:`CPU_W_PER_CORE`, and the gradient's MACs at the Horowitz energy."""
    import torch

    from hwbp.lower import lower
    from hwbp.sim import simulate

    params = graph.parameters()
    names = [k for k in params if k.endswith("weight")]
    ws = [torch.tensor(np.asarray(params[k]), dtype=torch.float32, requires_grad=True) for k in names]
    bs = [torch.tensor(np.asarray(params[k[:-6] + "bias"]), dtype=torch.float32, requires_grad=True) for k in names]
    x = torch.tensor(np.asarray(next(iter(batch.x.values()))), dtype=torch.float32)
    y = torch.tensor(np.asarray(batch.y), dtype=torch.float32)

    def step() -> None:
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w.T + b
            if i < len(ws) - 1:
                h = torch.tanh(h)
        if loss_name == "ce":
            loss = torch.nn.functional.cross_entropy(h, y)
        else:
            loss = 0.5 * ((h - y) ** 2).sum()
        grads = torch.autograd.grad(loss, ws + bs)
        del grads

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t_torch = _cpu_per_call(step, min_s)
    finally:
        torch.set_num_threads(threads)
    system = lower(graph)
    t_ref = _cpu_per_call(lambda: simulate(system, batch, mode="steady"), min_s)
    macs = gradient_macs(graph)
    t_torch, t_ref = t_torch / batch.size, t_ref / batch.size
    return {"batch": batch.size, "torch_cpu_s": t_torch, "reference_cpu_s": t_ref, "cpu_w_per_core": CPU_W_PER_CORE,
            "torch_J": t_torch * CPU_W_PER_CORE, "reference_J": t_ref * CPU_W_PER_CORE,
            "gradient_macs": macs, "accelerator_J": macs * (FMUL_J + FADD_J)}
