"""The ``lava`` compilation target: a self-contained Lava program of the system.

``hwbp compile --target lava -o DIR`` writes::

    DIR/run_lava.py          the program (hwbp/targets/lava/program.py, verbatim)
    DIR/params.npz           topology (JSON text) and every parameter array, no pickle
    DIR/lavaproc/            the processes and ProcessModels (copies of hwbp's)
    DIR/lava_compat.py       Python 3.11 support for lava-nc 0.10.0 (copy of hwbp's)

It runs with only numpy and lava-nc: ``python DIR/run_lava.py [--batch B.npz]``, and
prints the gradient table.  Everything is built in memory and every destination
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


def program_files(system: DynamicsSystem, options: LavaOptions) -> dict[str, bytes]:
    """Relative path -> bytes of every file of the program (nothing is written)."""
    compat = (_HERE / "compat.py").read_text()
    if _COMPAT_IMPORT not in compat:
        raise RuntimeError("hwbp/targets/lava/compat.py no longer imports BackendError as expected")
    compat = compat.replace(_COMPAT_IMPORT, "BackendError = RuntimeError  # stand-alone copy\n")
    compat = compat.replace("hwbp.targets.lava.compat", "lava_compat")
    return {
        "run_lava.py": (_HERE / "program.py").read_bytes(),
        "params.npz": npz_bytes(_arrays(system, options)),
        "lava_compat.py": compat.encode(),
        "lavaproc/__init__.py": (_HERE / "lavaproc" / "__init__.py").read_bytes(),
        "lavaproc/processes.py": (_HERE / "lavaproc" / "processes.py").read_bytes(),
        "lavaproc/fixed_models.py": (_HERE / "lavaproc" / "fixed_models.py").read_bytes(),
        "lavaproc/host.py": (_HERE / "lavaproc" / "host.py").read_bytes(),
    }


class LavaTarget(Target):
    """A self-contained Lava program (module, parameters, processes) of the system."""

    name = "lava"
    description = "Lava program (run_lava.py + params.npz + process models) that prints the gradient table"
    Options = LavaOptions

    def emit(self, system: DynamicsSystem, out_dir: str | Path, options: Options,
             info: Mapping[str, Any] | None = None) -> list[Path]:
        from hwbp.io import atomic_write_all

        files = program_files(system, self.options(options))  # type: ignore[arg-type]
        return atomic_write_all({Path(out_dir) / rel: data for rel, data in files.items()}, "lava output")
