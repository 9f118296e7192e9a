"""Where a Lava run's CPU goes: the CPU time per run of the Python process and of each
of Lava's processes (the runtime service and the process models), on a kept runtime
(a plain script; prints a Markdown table, asserts nothing).

Work: the digits MLP (examples/mlp_digits.onnx, L = 3), batch 32, 2L unit steps from
zeros, float64.  Variants, each on its own runtime, in this one run:

* ``process per population``: one process model per input, population and term
  (Loihi protocol: a phase command and a reply per model and step), one host message
  per process (``network.build_network(host_io=True)``);
* ``one process, Loihi protocol``: the whole network as one ``NetworkProcess`` whose
  model is driven step by step by the runtime service (defined here for the comparison);
* ``one process, AsyncProtocol``: the model the backend uses
  (``lavaproc/fused.py``): it takes the run's steps in its own loop.

The reference simulator's CPU per run on the same work is printed alongside.  CPU per
process comes from ``psutil`` (``/proc``); the Python process's includes its channel
threads.

Usage::

    .venv/bin/python benchmarks/profile_lava.py [--runs N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from measure import children_alive, load_average, thread_note  # noqa: E402

from hwbp.backend import get_backend  # noqa: E402
from hwbp.initial import initial_state  # noqa: E402
from hwbp.io import load_batch, load_model  # noqa: E402
from hwbp.lower import lower  # noqa: E402


def _cpu() -> tuple[float, dict[int, float]]:
    """CPU seconds of this process, and of each live descendant by pid."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = children_alive()
    return me.ru_utime + me.ru_stime, kids


def _loihi_network_model():
    """The one-process network's float model driven by the Loihi protocol."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.model import PyLoihiProcessModel
    from lava.magma.core.model.py.ports import PyInPort, PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

    from hwbp.targets.lava.lavaproc.fused import NetworkProcess, PyNetworkFloat, _NetworkModel

    @implements(proc=NetworkProcess, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("floating_pt")
    class PyNetworkFloatLoihi(_NetworkModel, PyLoihiProcessModel):
        host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
        host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
        _step = PyNetworkFloat._step

        def run_spk(self) -> None:
            self._tick()

    return {NetworkProcess: PyNetworkFloatLoihi}


def _runtime(system, spec, variant: str):
    """``(run, stop)`` of a started runtime of ``variant``."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from hwbp.targets.lava.lavaproc.fused import FUSED_FLOAT_MODELS
    from hwbp.targets.lava.lavaproc.host import recv_block, recv_network, send_block, send_network
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS
    from hwbp.targets.lava.network import build_network
    from hwbp.targets.lava.session import fused_network
    from hwbp.targets.lava.topology import term_table

    steps = RunSteps(num_steps=int(next(iter(spec.pop_params.values()))["n_steps"]) + 1)
    values = (spec.inputs, spec.mean, spec.tension, spec.target, spec.weight, spec.bias)
    if variant == "process per population":
        net = build_network(term_table(system), spec, host_io=True)
        proc = net.any_process()
        proc.create_runtime(run_cfg=Loihi2SimCfg(select_tag="floating_pt", exception_proc_model_map=FLOAT_MODELS))

        def run():
            send_block(net.inputs, net.populations, net.terms, *values)
            proc.run(condition=steps)
            return recv_block(net.populations, net.terms)
    else:
        proc, layout = fused_network(term_table(system), spec)
        models = FUSED_FLOAT_MODELS if variant.endswith("AsyncProtocol") else _loihi_network_model()
        proc.create_runtime(run_cfg=Loihi2SimCfg(select_tag="floating_pt", exception_proc_model_map=models))

        def run():
            send_network(proc, layout, *values)
            proc.run(condition=steps)
            return recv_network(proc, layout)

    return run, proc.stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100, help="runs measured per variant")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Cannot import module", category=UserWarning)
    from hwbp.targets.lava.compat import import_lava
    from hwbp.targets.lava.run_float import float_spec

    import_lava()
    graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    digits = load_batch(ROOT / "examples" / "digits_batch.npz", graph, loss="ce")
    system = lower(graph)
    spec = float_spec(system, digits, initial_state(system, digits, "zeros"), 2 * system.depth, 1.0)
    n = args.runs

    ref = get_backend("reference")
    art = ref.compile(system, ref.options({"mode": "unit-step", "skip_unchanged": False}))
    t0 = time.process_time()
    for _ in range(n):
        ref.run(art, digits)
    ref_ms = 1e3 * (time.process_time() - t0) / n

    print(f"**CPU per run by process: digits MLP (L={system.depth}), batch {digits.size}, "
          f"{2 * system.depth + 1} Lava steps, {n} runs**\n")
    print("| variant | Python process | Lava's processes (largest first) | total | vs reference |")
    print("|---|---|---|---|---|")
    results = {}
    for variant in ("process per population", "one process, Loihi protocol", "one process, AsyncProtocol"):
        run, stop = _runtime(system, spec, variant)
        try:
            run()
            own0, kids0 = _cpu()
            for _ in range(n):
                out = run()
            own1, kids1 = _cpu()
        finally:
            stop()
        results[variant] = out
        own = 1e3 * (own1 - own0) / n
        kids = sorted((1e3 * (v - kids0.get(pid, 0.0)) / n for pid, v in kids1.items()), reverse=True)
        kids = [k for k in kids if k >= 0.005]
        total = own + sum(kids)
        print(f"| {variant} | {own:.2f} ms | {len(kids)}: {', '.join(f'{k:.2f}' for k in kids)} ms | "
              f"{total:.2f} ms | {total / ref_ms:.1f}× |")
    base = results["process per population"]
    same = all(all(np.array_equal(a[k], b[k]) for k in a) for r in results.values() for a, b in zip(base, r))
    print(f"\nreference simulator: {ref_ms:.2f} ms CPU per run; results of the three variants "
          f"{'identical' if same else 'DIFFERENT'}; load average {load_average():.1f}; {thread_note()}")


if __name__ == "__main__":
    main()
