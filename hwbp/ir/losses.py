"""Loss functions: per-sample value and gradient with respect to the network output.

Conventions (used everywhere in hwbp):

* ``mse``: ``l(x, y) = 1/2 * ||x - y||^2`` per sample; ``dl/dx = x - y``.
* ``ce``: softmax cross-entropy ``l(x, y) = -sum_k y_k log softmax(x)_k`` per sample,
  with ``y`` one-hot (or any probability vector); ``dl/dx = softmax(x) - y``.

A batch's loss is the mean of its samples' losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["LossFn", "LOSSES", "get_loss", "softmax"]

Array = np.ndarray


def softmax(x: Array) -> Array:
    """Row-wise softmax of a ``(batch, n)`` array, shifted for numerical stability."""
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _ce_value(x: Array, y: Array) -> Array:
    z = x - x.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -(y * logp).sum(axis=-1)


@dataclass(frozen=True)
class LossFn:
    """A loss ``l(x, y)`` per sample, with its gradient ``dl/dx``.

    Attributes
    ----------
    name : str
        Registry key (``"mse"`` or ``"ce"``).
    value : callable
        ``value(x, y) -> (batch,)`` per-sample losses.
    grad : callable
        ``grad(x, y) -> (batch, n)`` per-sample gradients ``dl_i/dx_i``.
    equation : str
        Human-readable definition.
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]
    equation: str


LOSSES: Mapping[str, LossFn] = MappingProxyType(
    {
        "mse": LossFn(
            "mse",
            lambda x, y: 0.5 * ((x - y) ** 2).sum(axis=-1),
            lambda x, y: x - y,
            "l = 1/2 ||x - y||^2",
        ),
        "ce": LossFn(
            "ce", _ce_value, lambda x, y: softmax(x) - y, "l = -sum_k y_k log softmax(x)_k"
        ),
    }
)


def get_loss(name: str) -> LossFn:
    """Look up a loss by name; the error lists the valid names."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; valid: {', '.join(sorted(LOSSES))}") from None
