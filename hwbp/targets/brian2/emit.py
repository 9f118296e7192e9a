"""The ``brian2`` compile target: a stand-alone Brian2 script and its parameters.

``hwbp compile MODEL --target brian2 -o DIR`` writes

* ``DIR/<model>_brian2.py``: the network as Brian2 code a person can read and change
  (each population's equations as written by hand, each term's ``Synapses`` with its
  one weight variable); it needs only brian2 and numpy, runs the dynamics and prints
  the gradient table (``--out FILE.npz`` also saves the gradients);
* ``DIR/<model>_brian2.npz``: the parameters and a batch (``x/<input>``, ``y``): the
  one given with ``hwbp compile --batch FILE.npz``, or ``--samples`` random ones.

Both are deterministic: the same model and options give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hwbp.backend import Options, option
from hwbp.errors import ConfigError
from hwbp.io import npz_bytes
from hwbp.lower.system import DynamicsSystem
from hwbp.targets import Target
from hwbp.targets.brian2.model import Brian2Model, build_model
from hwbp.targets.brian2.runner import BRIAN2_SOLVERS, CODEGENS
from hwbp.targets.brian2.script import render_script

__all__ = ["Brian2TargetOptions", "Brian2Target", "npz_bytes", "write_brian2"]


@dataclass(frozen=True)
class Brian2TargetOptions(Options):
    """Options of the ``brian2`` target (the defaults written into the script)."""

    tau_s: float = option(1.0, "node time constant written into the script (default: 1)", unit="s", flag="--tau")
    codegen: str = option("numpy", "the script's default code generation", choices=CODEGENS)
    solver: str | None = option(None, "the script's default integration method (default: exponential_euler)",
                                choices=tuple(BRIAN2_SOLVERS))
    dt: float | None = option(None, "the script's default time step (default: 0.01)", unit="tau")
    duration: float | None = option(None, "the script's default duration (default: max(12L, 24))", unit="tau")
    samples: int = option(4, "samples in the random batch stored with the parameters when no --batch is given "
                              "(default: 4)")
    seed: int = option(0, "seed of that random batch (default: 0)", cli=False)

    def check(self) -> None:
        if not self.tau_s > 0:
            raise ConfigError(f"--tau must be a positive number of seconds, got {self.tau_s}")
        if self.dt is not None and not self.dt > 0:
            raise ConfigError(f"--dt must be > 0 (units of tau), got {self.dt}")
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(f"--duration must be > 0 (units of tau), got {self.duration}")
        if self.samples < 1:
            raise ConfigError(f"--samples must be >= 1, got {self.samples}")


class Brian2Target(Target):
    """A readable stand-alone Brian2 script (``.py``) and its parameters (``.npz``)."""

    name = "brian2"
    description = "a stand-alone Brian2 script (equations as written by hand) and an .npz of parameters"
    Options = Brian2TargetOptions

    def emit(self, system: DynamicsSystem, out_dir: str | Path, options: Options,
             info: Mapping[str, Any] | None = None) -> list[Path]:
        return write_brian2(system, out_dir, self.options(options), info)


def _batch_arrays(system: DynamicsSystem, samples: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {f"x/{p.name}": rng.standard_normal((samples, p.size)) for p in system.inputs}
    n_out = system.population(system.loss.population).size
    if system.loss.function == "ce":
        out["y"] = np.eye(n_out)[rng.integers(0, n_out, samples)]
    else:
        out["y"] = rng.standard_normal((samples, n_out))
    return out


def _reference(system: DynamicsSystem, arrays: Mapping[str, np.ndarray], info: Mapping[str, Any]
               ) -> dict[str, np.ndarray]:
    """The exact gradients of the network on the stored batch (``check/grad/...``), for
    the script's self-check (see :mod:`hwbp.targets.selfcheck`)."""
    from hwbp.ir.graph import Graph
    from hwbp.targets.selfcheck import reference_arrays
    from hwbp.types import Batch

    graph = info.get("graph")
    if not isinstance(graph, Graph):
        raise TypeError("the brian2 target needs the model's graph (info['graph']) for the script's self-check")
    batch = Batch({k[2:]: v for k, v in arrays.items() if k.startswith("x/")}, arrays["y"])
    ref = reference_arrays(graph.with_loss(system.loss.function), batch)
    return {k: v for k, v in ref.items() if k.startswith("check/grad/")}


def write_brian2(system: DynamicsSystem, out_dir: str | Path, options: Brian2TargetOptions,
                 info: Mapping[str, Any] | None = None) -> list[Path]:
    """Write the script and the parameter archive into ``out_dir``; return their paths."""
    from hwbp.io import atomic_write_all
    from hwbp.sim.simulate import default_duration

    system = system.with_options(tau_s=options.tau_s)
    model: Brian2Model = build_model(system)
    stem = ("".join(c if c.isalnum() or c in "-_" else "_" for c in system.name) or "model")[:100]
    out = Path(out_dir)
    script, npz = out / f"{stem}_brian2.py", out / f"{stem}_brian2.npz"
    defaults = {
        "codegen": options.codegen,
        "solver": BRIAN2_SOLVERS[options.solver or "exponential_euler"],
        "dt": 0.01 if options.dt is None else options.dt,
        "duration": default_duration(system.depth) if options.duration is None else options.duration,
    }
    text = render_script(model, npz.name, defaults, dict(info or {}))
    arrays = {f"param/{k}": np.asarray(v, dtype=np.float64) for k, v in system.parameters.items()}
    batch = (info or {}).get("batch")
    if batch is not None:  # hwbp compile --batch FILE.npz: the user's samples
        arrays.update({f"x/{k}": np.asarray(v, dtype=np.float64) for k, v in batch.x.items()})
        arrays["y"] = np.asarray(batch.y, dtype=np.float64)
    else:
        arrays.update(_batch_arrays(system, options.samples, options.seed))
    arrays.update(_reference(system, arrays, info or {}))
    return atomic_write_all({script: text.encode("utf-8"), npz: npz_bytes(arrays)}, "brian2 output")
