"""Sweep specifications: a grid of hardware parameters x instances x backends, from TOML.

Layout (paths are relative to the spec file)::

    [sweep]
    model = "../mlp_digits.onnx"        # or a [model] table (a random MLP, below)
    batch = "../digits_batch.npz"       # or random_batch = 16
    loss = "ce"
    beta = 1.0
    instances = 8                       # device instances per grid point
    seed = 0                            # instance k of every point has seed  seed + k

    [model]                             # instead of sweep.model: random_mlp(sizes, ...)
    sizes = [8, 16, 16, 4]
    activation = "tanh"
    seed = 0

    [hardware]                          # the base model (TOML sections of hwbp.hardware)
    mismatch = { correlation = 0.0 }

    [grid]                              # dotted hardware parameters -> values
    "mismatch.sigma" = [0.0, 0.02, 0.05]

    [backends.reference]                # one table per backend: its options
    mode = "steady"
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hwbp.errors import ConfigError
from hwbp.hardware.model import Hardware, hardware_from_mapping

__all__ = ["SweepSpec", "Task", "load_spec", "spec_from_mapping"]


@dataclass(frozen=True)
class Task:
    """One row of a sweep: grid point ``point`` (its values), backend, instance index."""

    id: int
    point: int
    values: tuple[tuple[str, Any], ...]
    backend: str
    instance: int
    seed: int


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep specification (see the module docstring)."""

    source: str
    model: str | None
    mlp: Mapping[str, Any] | None
    batch: str | None
    random_batch: int
    loss: str
    beta: float
    instances: int
    seed: int
    hardware: Mapping[str, Any]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    backends: Mapping[str, Mapping[str, Any]]

    def points(self) -> list[tuple[tuple[str, Any], ...]]:
        """Every grid point (the grid's cartesian product, first key slowest)."""
        keys = [k for k, _ in self.grid]
        return [tuple(zip(keys, combo)) for combo in itertools.product(*(v for _, v in self.grid))]

    def tasks(self) -> list[Task]:
        """Every task, in a fixed order (point, backend, instance)."""
        out = []
        for p, values in enumerate(self.points()):
            for backend in self.backends:
                for k in range(self.instances):
                    out.append(Task(len(out), p, values, backend, k, self.seed + k))
        return out

    def hardware_at(self, values: tuple[tuple[str, Any], ...]) -> Hardware:
        """The hardware model at one grid point."""
        base = hardware_from_mapping(self.hardware, where=f"{self.source} [hardware]")
        return base.replace(**dict(values)) if values else base

    def as_mapping(self) -> dict[str, Any]:
        """Plain data (picklable, for the workers)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _get(table: Mapping, key: str, types: tuple, where: str, default: Any) -> Any:
    v = table.get(key, default)
    if v is not default and (isinstance(v, bool) and bool not in types or not isinstance(v, types)):
        raise ConfigError(f"{where}: {key} has the wrong type ({v!r})")
    return v


def spec_from_mapping(data: Mapping[str, Any], *, source: str = "(spec)", base: Path | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML-shaped mapping (paths relative to ``base``)."""
    unknown = sorted(set(data) - {"sweep", "model", "hardware", "grid", "backends"})
    if unknown:
        raise ConfigError(f"{source}: unknown table [{unknown[0]}]; valid: sweep, model, hardware, grid, backends")
    sw = data.get("sweep", {})
    known = {"model", "batch", "random_batch", "loss", "beta", "instances", "seed"}
    bad = sorted(set(sw) - known)
    if bad:
        raise ConfigError(f"{source}: [sweep] has no key {bad[0]!r}; valid: {', '.join(sorted(known))}")
    base = base or Path(".")

    def path(v: str | None) -> str | None:
        return None if v is None else str((base / v).resolve())

    model = _get(sw, "model", (str,), source, None)
    mlp = data.get("model")
    if (model is None) == (mlp is None):
        raise ConfigError(f"{source}: give exactly one of sweep.model (a file) or a [model] table")
    if mlp is not None:
        if not isinstance(mlp.get("sizes"), list) or len(mlp["sizes"]) < 2:
            raise ConfigError(f"{source}: [model] sizes must be a list of at least 2 layer widths")
        bad = sorted(set(mlp) - {"sizes", "activation", "seed", "gain"})
        if bad:
            raise ConfigError(f"{source}: [model] has no key {bad[0]!r}; valid: sizes, activation, seed, gain")
    instances = _get(sw, "instances", (int,), source, 1)
    if instances < 1:
        raise ConfigError(f"{source}: sweep.instances must be >= 1, got {instances}")
    seed = _get(sw, "seed", (int,), source, 0)
    if seed < 0:
        raise ConfigError(f"{source}: sweep.seed must be >= 0, got {seed}")
    grid_t = data.get("grid", {})
    grid = []
    for key, values in grid_t.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: [grid] {key} must be a non-empty list of values")
        grid.append((key, tuple(values)))
    backends = data.get("backends", {"reference": {}})
    if not isinstance(backends, Mapping) or not backends:
        raise ConfigError(f"{source}: [backends] must name at least one backend table")
    spec = SweepSpec(
        source=source, model=path(model), mlp=None if mlp is None else dict(mlp),
        batch=path(_get(sw, "batch", (str,), source, None)),
        random_batch=_get(sw, "random_batch", (int,), source, 16), loss=_get(sw, "loss", (str,), source, "mse"),
        beta=float(_get(sw, "beta", (int, float), source, 1.0)), instances=instances, seed=seed,
        hardware=dict(data.get("hardware", {})), grid=tuple(grid),
        backends={k: dict(v) for k, v in backends.items()},
    )
    # every grid point must be a valid hardware model, every backend known with valid options
    for values in spec.points():
        spec.hardware_at(values)
    from hwbp.backend import check_hardware, get_backend

    for name, opts in spec.backends.items():
        be = get_backend(name)
        be.options(opts)
        for values in spec.points():
            check_hardware(be, spec.hardware_at(values))
    return spec


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep specification from a TOML file."""
    from hwbp.io import read_toml

    p = Path(path)
    data = read_toml(p, "sweep spec")
    return spec_from_mapping(data, source=str(p), base=p.parent)
