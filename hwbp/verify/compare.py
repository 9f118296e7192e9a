"""Comparison metrics between physical and exact gradients."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

from hwbp.errors import ConfigError
from hwbp.types import Gradients

__all__ = ["Tolerances", "Metrics", "Comparison", "metrics", "compare", "json_number"]


def json_number(v: float) -> float | None:
    """``v`` as a JSON number, or ``None`` when it is NaN or infinite."""
    return float(v) if np.isfinite(v) else None


@dataclass(frozen=True)
class Tolerances:
    """Pass criteria: every tensor's ``rel_err <= max_rel_err`` and ``cosine >= min_cosine``."""

    max_rel_err: float = 1e-6
    min_cosine: float = 1.0 - 1e-6

    def __post_init__(self) -> None:
        if not (self.max_rel_err >= 0 and -1 <= self.min_cosine <= 1):
            raise ConfigError(
                f"tolerances need max_rel_err >= 0 and -1 <= min_cosine <= 1, got {self.max_rel_err}, "
                f"{self.min_cosine}"
            )


@dataclass(frozen=True)
class Metrics:
    """Errors of one tensor ``g`` against the exact ``g*``.

    ``rel_err = ||g - g*||_2 / ||g*||_2`` (0 when both are zero, inf when only ``g*`` is);
    ``cosine`` = cosine similarity, clipped to [-1, 1] (1 when ``g == g*``, 0 when only
    one of them is zero).
    """

    shape: tuple[int, ...]
    max_abs_err: float
    rel_err: float
    cosine: float

    def as_dict(self) -> dict:
        """JSON-ready dict (non-finite numbers become ``None``)."""
        return {
            "shape": list(self.shape),
            "max_abs_err": json_number(self.max_abs_err),
            "rel_err": json_number(self.rel_err),
            "cosine": json_number(self.cosine),
        }


def metrics(g: np.ndarray, g_ref: np.ndarray) -> Metrics:
    """Metrics of ``g`` against the reference ``g_ref`` (same shape)."""
    g = np.asarray(g, dtype=np.float64)
    g_ref = np.asarray(g_ref, dtype=np.float64)
    if g.shape != g_ref.shape:
        raise ConfigError(f"cannot compare shapes {g.shape} and {g_ref.shape}")
    diff = g - g_ref
    n_ref, n_g = float(np.linalg.norm(g_ref)), float(np.linalg.norm(g))
    n_diff = float(np.linalg.norm(diff))
    if n_ref > 0:
        rel = n_diff / n_ref
    else:
        rel = 0.0 if n_g == 0 else float("inf")
    if n_diff == 0:
        cos = 1.0
    elif n_ref > 0 and n_g > 0:
        cos = float(np.clip(np.vdot(g, g_ref) / (n_g * n_ref), -1.0, 1.0))
    else:
        cos = 1.0 if n_ref == n_g == 0 else 0.0
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    if not np.all(np.isfinite(g)):
        rel, cos, max_abs = float("inf"), float("nan"), float("inf")
    return Metrics(tuple(g.shape), max_abs, rel, cos)


@dataclass(frozen=True, eq=False)
class Comparison:
    """Per-tensor metrics and the overall verdict."""

    parameters: Mapping[str, Metrics]
    populations: Mapping[str, Metrics]
    tolerances: Tolerances

    @property
    def max_rel_err(self) -> float:
        """Largest ``rel_err`` over every parameter and population."""
        vals = [m.rel_err for m in (*self.parameters.values(), *self.populations.values())]
        return max(vals) if vals else 0.0

    @property
    def min_cosine(self) -> float:
        """Smallest cosine over every parameter and population; NaN when any is NaN
        (never reported as a number; a NaN verdict fails)."""
        vals = [m.cosine for m in (*self.parameters.values(), *self.populations.values())]
        if any(np.isnan(v) for v in vals):
            return float("nan")
        return min(vals) if vals else 1.0

    @property
    def passed(self) -> bool:
        """Whether every tensor meets the tolerances."""
        return bool(self.max_rel_err <= self.tolerances.max_rel_err and self.min_cosine >= self.tolerances.min_cosine)


def compare(physical: Gradients, exact: Gradients, tolerances: Tolerances = Tolerances()) -> Comparison:
    """Compare every parameter of ``exact`` and every population of ``physical``."""
    missing = set(exact.parameters) - set(physical.parameters)
    if missing:
        raise ConfigError(f"physical gradients lack parameter(s) {', '.join(sorted(missing))}")
    params = {k: metrics(physical.parameters[k], v) for k, v in exact.parameters.items()}
    pops = {k: metrics(v, exact.activations[k]) for k, v in physical.activations.items()}
    return Comparison(MappingProxyType(params), MappingProxyType(pops), tolerances)
