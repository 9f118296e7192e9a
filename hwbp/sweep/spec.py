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
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hwbp.errors import ConfigError
from hwbp.hardware.model import Hardware, hardware_from_mapping

__all__ = ["SweepSpec", "Task", "load_spec", "spec_from_mapping", "MAX_TASKS"]

#: Most rows one sweep may have (grid points x backends x instances): a spec beyond it
#: is refused before anything is enumerated or written.
MAX_TASKS = 100_000


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


def _table(data: Mapping, key: str, source: str, default: Any) -> Any:
    """``data[key]`` that must be a TOML table (``[key]``)."""
    v = data.get(key, default)
    if not isinstance(v, Mapping):
        hint = "; a model file goes in sweep.model" if key == "model" else ""
        raise ConfigError(f"{source}: {key} must be a [{key}] table, got {v!r}{hint}")
    return v


def _check_mlp(mlp: Mapping, source: str) -> None:
    bad = sorted(set(mlp) - {"sizes", "activation", "seed", "gain"})
    if bad:
        raise ConfigError(f"{source}: [model] has no key {bad[0]!r}; valid: sizes, activation, seed, gain")
    sizes = mlp.get("sizes")
    if not isinstance(sizes, list) or len(sizes) < 2:
        raise ConfigError(f"{source}: [model] sizes must be a list of at least 2 layer widths")
    for v in sizes:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
            raise ConfigError(f"{source}: [model] sizes holds {v!r}; every width must be an integer 1..100000")
    where = f"{source}: [model]"
    _get(mlp, "activation", (str,), where, None)
    seed = _get(mlp, "seed", (int,), where, 0)
    if seed < 0:
        raise ConfigError(f"{where}: seed must be >= 0, got {seed}")
    gain = _get(mlp, "gain", (int, float), where, 1.0)
    if not math.isfinite(gain) or gain <= 0:
        raise ConfigError(f"{where}: gain must be a finite number > 0, got {gain!r}")


def spec_from_mapping(data: Mapping[str, Any], *, source: str = "(spec)", base: Path | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML-shaped mapping (paths relative to ``base``).

    The whole specification is checked here, before any row is enumerated or any
    file written: table shapes and types, the grid's size (at most :data:`MAX_TASKS`
    rows), every grid point's hardware model and every backend's options."""
    unknown = sorted(set(data) - {"sweep", "model", "hardware", "grid", "backends"})
    if unknown:
        raise ConfigError(f"{source}: unknown table [{unknown[0]}]; valid: sweep, model, hardware, grid, backends")
    sw = _table(data, "sweep", source, {})
    known = {"model", "batch", "random_batch", "loss", "beta", "instances", "seed"}
    bad = sorted(set(sw) - known)
    if bad:
        raise ConfigError(f"{source}: [sweep] has no key {bad[0]!r}; valid: {', '.join(sorted(known))}")
    base = base or Path(".")

    def path(v: str | None) -> str | None:
        return None if v is None else str((base / v).resolve())

    model = _get(sw, "model", (str,), source, None)
    mlp = None if "model" not in data else _table(data, "model", source, None)
    if (model is None) == (mlp is None):
        raise ConfigError(f"{source}: give exactly one of sweep.model (a file) or a [model] table")
    if mlp is not None:
        _check_mlp(mlp, source)
    instances = _get(sw, "instances", (int,), source, 1)
    if not 1 <= instances <= MAX_TASKS:
        raise ConfigError(f"{source}: sweep.instances must be 1..{MAX_TASKS}, got {instances}")
    seed = _get(sw, "seed", (int,), source, 0)
    if seed < 0:
        raise ConfigError(f"{source}: sweep.seed must be >= 0, got {seed}")
    beta = _get(sw, "beta", (int, float), source, 1.0)
    if not math.isfinite(beta) or beta <= 0:
        raise ConfigError(f"{source}: sweep.beta must be a finite number > 0 (the tension is beta times the "
                          f"gradient), got {beta!r}")
    loss = _get(sw, "loss", (str,), source, "mse")
    if loss not in ("mse", "ce"):
        raise ConfigError(f"{source}: sweep.loss must be 'mse' or 'ce', got {loss!r}")
    random_batch = _get(sw, "random_batch", (int,), source, 16)
    if not 1 <= random_batch <= 1_000_000:
        raise ConfigError(f"{source}: sweep.random_batch must be 1..1000000, got {random_batch}")
    grid_t = _table(data, "grid", source, {})
    grid = []
    for key, values in grid_t.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: [grid] {key} must be a non-empty list of values")
        grid.append((key, tuple(values)))
    backends = _table(data, "backends", source, {"reference": {}})
    if not backends:
        raise ConfigError(f"{source}: [backends] must name at least one backend table")
    for name, opts in backends.items():
        if not isinstance(opts, Mapping):
            raise ConfigError(f"{source}: backends.{name} must be a table of options ([backends.{name}]), "
                              f"got {opts!r}")
    n_tasks = math.prod(len(v) for _, v in grid) * len(backends) * instances
    if n_tasks > MAX_TASKS:
        raise ConfigError(f"{source}: the sweep has {n_tasks} rows (grid points x backends x instances); "
                          f"at most {MAX_TASKS}")
    spec = SweepSpec(
        source=source, model=path(model), mlp=None if mlp is None else dict(mlp),
        batch=path(_get(sw, "batch", (str,), source, None)),
        random_batch=random_batch, loss=loss,
        beta=float(beta), instances=instances, seed=seed,
        hardware=dict(_table(data, "hardware", source, {})), grid=tuple(grid),
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
