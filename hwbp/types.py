"""Small frozen data types shared by several stages: a data batch and a set of gradients."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

from hwbp.errors import BatchError
from hwbp.ir.nodes import frozen_array

__all__ = ["Batch", "Gradients"]


@dataclass(frozen=True, eq=False)
class Batch:
    """Inputs and targets of a batch of ``size`` samples.

    Attributes
    ----------
    x : Mapping[str, numpy.ndarray]
        Per input name, a ``(batch, n_in)`` float64 array.
    y : numpy.ndarray
        Targets, ``(batch, n_out)``: regression targets for mse, one-hot (or
        probability) rows for ce.
    """

    x: Mapping[str, np.ndarray]
    y: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", MappingProxyType({k: frozen_array(v) for k, v in self.x.items()}))
        object.__setattr__(self, "y", frozen_array(self.y))

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.y.shape[0])

    @classmethod
    def for_model(
        cls,
        input_sizes: Mapping[str, int],
        output_size: int,
        x: object,
        y: object,
        *,
        loss: str = "mse",
        where: str = "batch",
    ) -> "Batch":
        """Validate ``x`` (an array for a single-input model, or a mapping by input
        name) and ``y`` against a model's sizes.  For ``loss="ce"`` a 1-D integer ``y``
        holds class labels and is one-hot encoded; for mse ``y`` is taken as given.

        Raises
        ------
        BatchError
            Naming the array, the expected and the received shape.
        """
        xs = x if isinstance(x, Mapping) else {next(iter(input_sizes)): x} if len(input_sizes) == 1 else None
        if xs is None:
            raise BatchError(f"{where}: model has inputs {sorted(input_sizes)}; pass x as a mapping by name")
        if set(xs) != set(input_sizes):
            raise BatchError(f"{where}: inputs {sorted(xs)} do not match the model's {sorted(input_sizes)}")
        arrays = {}
        for name, arr in xs.items():
            a = np.asarray(arr)
            if a.dtype.kind not in "fiub":
                raise BatchError(f"{where}: x[{name!r}] has non-numeric dtype {a.dtype}")
            if a.ndim != 2 or a.shape[1] != input_sizes[name]:
                raise BatchError(
                    f"{where}: x[{name!r}] must have shape (batch, {input_sizes[name]}), got {a.shape}"
                )
            arrays[name] = a.astype(np.float64)
        n = {a.shape[0] for a in arrays.values()}
        if len(n) != 1 or 0 in n:
            raise BatchError(f"{where}: inputs have inconsistent or zero batch sizes {sorted(n)}")
        b = n.pop()
        t = np.asarray(y)
        if t.dtype.kind not in "fiub":
            raise BatchError(f"{where}: y has non-numeric dtype {t.dtype}")
        if loss == "ce":
            t = _ce_targets(t, b, output_size, where)
        if t.shape != (b, output_size):
            raise BatchError(f"{where}: y must have shape ({b}, {output_size}), got {t.shape}")
        for name, a in list(arrays.items()) + [("y", t)]:
            if not np.all(np.isfinite(a)):
                raise BatchError(f"{where}: {name} contains NaN or Inf")
        if loss == "ce":
            _check_distributions(t, where)
        return cls(arrays, t.astype(np.float64))


def _ce_targets(t: np.ndarray, b: int, n_out: int, where: str) -> np.ndarray:
    """Cross-entropy targets as ``(b, n_out)`` rows: integer labels ``(b,)`` are one-hot
    encoded; labels of another type or layout get a message saying what to pass."""
    want = f"pass integer class labels of shape ({b},) or probability rows of shape ({b}, {n_out})"
    if t.ndim == 2 and t.shape == (b, 1) and n_out != 1:
        raise BatchError(f"{where}: y of shape {t.shape} (a column) for --loss ce; {want}, "
                         f"e.g. y.reshape(-1).astype(int)")
    if t.ndim == 1 and t.shape[0] == b:
        if t.dtype.kind not in "iu":
            raise BatchError(f"{where}: y holds {t.dtype} values of shape {t.shape} for --loss ce; class labels "
                             f"must be integers ({want}), e.g. y.astype(int)")
        if t.min(initial=0) < 0 or t.max(initial=0) >= n_out:
            raise BatchError(f"{where}: class labels in y must lie in [0, {n_out}), got "
                             f"[{t.min()}, {t.max()}]")
        return np.eye(n_out)[t]
    return t


def _check_distributions(t: np.ndarray, where: str) -> None:
    """Cross-entropy target rows must be probability distributions (>= 0, sum 1)."""
    neg = np.flatnonzero((t < 0).any(axis=1))
    if neg.size:
        raise BatchError(f"{where}: --loss ce targets must be probabilities; row {int(neg[0])} of y has a "
                         f"negative entry ({float(t[neg[0]].min()):g})")
    sums = t.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if off.size:
        raise BatchError(f"{where}: --loss ce targets must be probabilities; row {int(off[0])} of y sums to "
                         f"{float(sums[off[0]]):.9g}, not 1")


@dataclass(frozen=True, eq=False)
class Gradients:
    """A set of gradients of the batch loss.

    Attributes
    ----------
    parameters : Mapping[str, numpy.ndarray]
        ``dL/dθ`` of the batch-mean loss ``L``, by parameter name.
    activations : Mapping[str, numpy.ndarray]
        Per-sample ``dl_i/dx_i`` (shape ``(batch, n)``) by node/population name.
    loss : float
        Batch-mean loss value (NaN when the source does not compute it).
    """

    parameters: Mapping[str, np.ndarray]
    activations: Mapping[str, np.ndarray]
    loss: float = float("nan")

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))
        object.__setattr__(self, "activations", MappingProxyType(dict(self.activations)))
