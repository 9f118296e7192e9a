"""Loss functions: per-sample value and gradient with respect to the network output.

Conventions (used everywhere in hwbp):

* ``mse``: ``l(x, y) = 1/2 * ||x - y||^2`` per sample; ``dl/dx = x - y``.
* ``ce``: softmax cross-entropy ``l(x, y) = -sum_k y_k log softmax(x)_k`` per sample,
  with ``y`` one-hot (or any probability vector); ``dl/dx = softmax(x) - y``.  It is
  computed as ``logsumexp(x) - y.x``, equal for probability rows and, for any other
  ``y`` (a target source clamped at 0 V), the loss whose gradient is ``softmax(x) - y``.

A batch's loss is the mean of its samples' losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from hwbp.errors import ModelError

__all__ = ["LossFn", "LOSSES", "get_loss", "softmax"]

Array = np.ndarray


def softmax(x: Array) -> Array:
    """Row-wise softmax of a ``(batch, n)`` array, shifted for numerical stability."""
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _ce_value(x: Array, y: Array) -> Array:
    m = x.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
    return lse[..., 0] - (y * x).sum(axis=-1)


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


def get_loss(name: str, *, where: str = "") -> LossFn:
    """Look up a loss by name.

    Raises
    ------
    ModelError
        If ``name`` is unknown; the message lists the valid names.  The same class as
        :func:`hwbp.ir.activations.get_activation` raises: both name the function of a
        node of a model (its loss port, an activation node), and the graph's own
        validation reports an unknown one as a :class:`ModelError` too.
    """
    try:
        return LOSSES[name]
    except KeyError:
        at = f" in {where}" if where else ""
        raise ModelError(f"unknown loss {name!r}{at}; valid: {', '.join(sorted(LOSSES))}") from None
