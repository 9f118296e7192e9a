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
        if loss == "ce" and t.ndim == 1 and t.shape[0] == b and t.dtype.kind in "iu":
            if t.min(initial=0) < 0 or t.max(initial=0) >= output_size:
                raise BatchError(f"{where}: class labels in y must lie in [0, {output_size})")
            t = np.eye(output_size)[t]
        if t.shape != (b, output_size):
            raise BatchError(f"{where}: y must have shape ({b}, {output_size}), got {t.shape}")
        for name, a in list(arrays.items()) + [("y", t)]:
            if not np.all(np.isfinite(a)):
                raise BatchError(f"{where}: {name} contains NaN or Inf")
        return cls(arrays, t.astype(np.float64))


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
