"""The ``lava`` compilation target: a self-contained Lava program of the system.

``hwbp compile --target lava -o DIR`` writes::

    DIR/run_lava.py          the program (hwbp/targets/lava/program.py, verbatim)
    DIR/selfcheck.py         its comparison with the exact gradients (hwbp/targets/selfcheck.py)
    DIR/params.npz           topology (JSON text), every parameter array, the default batch
                             and the exact gradients on it (the oracle's), no pickle
    DIR/lavaproc/            the processes and ProcessModels (copies of hwbp's)
    DIR/lava_compat.py       Python 3.11 support for lava-nc 0.10.0 (copy of hwbp's)

It runs with only numpy and lava-nc: ``python DIR/run_lava.py [--batch B.npz]``, and
prints the verification table and PASSED or FAILED (exit 1).  Everything is built in memory and every destination
checked before the first file is written; the same model and options give
byte-identical files (the ``.npz`` has fixed member order and timestamps).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hwbp.backend import Options
from hwbp.io import npz_bytes
from hwbp.lower.system import DynamicsSystem
from hwbp.targets import Target
from hwbp.targets.lava.backend import LavaOptions

__all__ = ["LavaTarget", "program_files", "npz_bytes"]

_HERE = Path(__file__).resolve().parent
_COMPAT_IMPORT = "from hwbp.errors import BackendError\n"


#: Default batch of the program when ``hwbp compile`` gets none: samples and seed.
DEFAULT_SAMPLES, DEFAULT_SEED = 4, 0


def _tolerances(o: LavaOptions) -> tuple[float, float]:
    """(max rel_err, min cosine) the program checks with: ``hwbp verify``'s defaults for
    float models, :data:`~hwbp.targets.lava.backend.FIXED_RTOL` for fixed point (a
    rel_err r bounds 1 - cosine by r**2 / 2)."""
    from hwbp.targets.lava.backend import FIXED_RTOL
    from hwbp.verify.compare import Tolerances

    if o.precision == "fixed":
        return FIXED_RTOL, 1.0 - FIXED_RTOL ** 2 / 2
    t = Tolerances()
    return t.max_rel_err, t.min_cosine


def _check_arrays(system: DynamicsSystem, info: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The default batch and the exact gradients on it (see :mod:`hwbp.targets.selfcheck`)."""
    from hwbp.io import random_batch
    from hwbp.ir.graph import Graph
    from hwbp.targets.selfcheck import reference_arrays

    graph = info.get("graph")
    if not isinstance(graph, Graph):
        raise TypeError("the lava target needs the model's graph (info['graph']) for the program's self-check")
    graph = graph.with_loss(system.loss.function)
    batch = info.get("batch") or random_batch(graph, DEFAULT_SAMPLES, seed=DEFAULT_SEED, loss=system.loss.function)
    return reference_arrays(graph, batch)


def _arrays(system: DynamicsSystem, o: LavaOptions) -> dict[str, np.ndarray]:
    from hwbp.targets.lava.compat import import_lava

    import_lava()
    from hwbp.targets.lava.topology import check_realizable
    from hwbp.targets.lava.lavaproc.processes import LOSS_CODES
    from hwbp.targets.lava.run_float import float_term_params

    check_realizable(system)
    sizes = {i.name: i.size for i in system.inputs} | {p.name: p.size for p in system.populations}
    arrays: dict[str, Any] = {}
    fmt = None
    if o.precision == "fixed":
        from hwbp.targets.lava.fixed import FixedFormat

        fmt = FixedFormat.for_system(system, o)
        arrays.update({"input/shift": fmt.shift, "input/payload_bits": fmt.payload_bits})
    top: dict[str, Any] = {
        "model": system.name, "precision": o.precision, "steps": o.unit_steps(system.depth), "beta": system.beta,
        "loss": system.loss.function, "loss_population": system.loss.population,
        "output_size": system.population(system.loss.population).size,
        "inputs": [{"name": i.name, "size": i.size} for i in system.inputs], "populations": [],
        "S": fmt.S if fmt else 0, "state_bits": o.state_bits}
    top["rtol"], top["min_cosine"] = _tolerances(o)
    for p in system.populations:
        is_loss = p.name == system.loss.population
        pop = fmt.pop_params[p.name] if fmt else {"loss": LOSS_CODES.index(system.loss.function) if is_loss else 0,
                                                  "beta": system.beta, "dt": o.step}
        arrays.update({f"pop/{p.name}/{k}": v for k, v in pop.items()})
        terms = []
        for k, t in enumerate(p.terms):
            key, prefix = (p.name, k), f"term/{p.name}/{k}/"
            if fmt:
                prm = dict(fmt.term_params[key])
                w, b = fmt.weight[key], fmt.bias[key]
            else:
                prm = float_term_params(t)
                w = None if t.weight is None else system.parameters[t.weight]
                b = None if t.bias is None else system.parameters[t.bias]
            prm.update({n: v for n, v in (("weight", w), ("bias", b)) if v is not None})
            arrays.update({prefix + n: v for n, v in prm.items()})
            terms.append({"source": t.source, "n_in": sizes[t.source], "weight": t.weight, "bias": t.bias,
                          "gain": float(t.gain), "source_activation": t.source_activation,
                          "source_alpha": float(t.source_alpha)})
        top["populations"].append({"name": p.name, "size": p.size, "terms": terms})
    out = {k: np.asarray(v) for k, v in arrays.items()}
    out["topology"] = np.asarray(json.dumps(top, sort_keys=True))
    return out


def program_files(system: DynamicsSystem, options: LavaOptions, info: Mapping[str, Any]) -> dict[str, bytes]:
    """Relative path -> bytes of every file of the program (nothing is written);
    ``info["graph"]`` is the model (the oracle's input), ``info["batch"]`` the default
    batch (else :data:`DEFAULT_SAMPLES` random samples of seed :data:`DEFAULT_SEED`)."""
    compat = (_HERE / "compat.py").read_text()
    if _COMPAT_IMPORT not in compat:
        raise RuntimeError("hwbp/targets/lava/compat.py no longer imports BackendError as expected")
    compat = compat.replace(_COMPAT_IMPORT, "BackendError = RuntimeError  # stand-alone copy\n")
    compat = compat.replace("hwbp.targets.lava.compat", "lava_compat")
    return {
        "run_lava.py": (_HERE / "program.py").read_bytes(),
        "params.npz": npz_bytes({**_arrays(system, options), **_check_arrays(system, info)}),
        "selfcheck.py": (_HERE.parent / "selfcheck.py").read_bytes(),
        "lava_compat.py": compat.encode(),
        "lavaproc/__init__.py": (_HERE / "lavaproc" / "__init__.py").read_bytes(),
        "lavaproc/processes.py": (_HERE / "lavaproc" / "processes.py").read_bytes(),
        "lavaproc/fixed_models.py": (_HERE / "lavaproc" / "fixed_models.py").read_bytes(),
        "lavaproc/host.py": (_HERE / "lavaproc" / "host.py").read_bytes(),
        "lavaproc/fused.py": (_HERE / "lavaproc" / "fused.py").read_bytes(),
    }


class LavaTarget(Target):
    """A self-contained Lava program (module, parameters, processes) of the system."""

    name = "lava"
    description = "Lava program (run_lava.py + params.npz + process models) that prints the gradient table"
    Options = LavaOptions

    def emit(self, system: DynamicsSystem, out_dir: str | Path, options: Options,
             info: Mapping[str, Any] | None = None) -> list[Path]:
        from hwbp.io import atomic_write_all

        files = program_files(system, self.options(options), info or {})  # type: ignore[arg-type]
        return atomic_write_all({Path(out_dir) / rel: data for rel, data in files.items()}, "lava output")
