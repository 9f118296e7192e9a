"""Elementwise activation functions and their derivatives.

Each activation is a :class:`ActivationFn` in the read-only table :data:`ACTIVATIONS`.
The derivative takes both the pre-activation ``a`` and the output ``y = f(a)`` so that
functions like tanh can reuse the output (``1 - y**2``).  sigmoid's derivative is
``sigmoid(a) sigmoid(-a)``, not ``y (1 - y)``: where sigmoid saturates, ``1 - y`` keeps
few correct digits (measured: a 62-block residual sigmoid net's last-block gradient off
by 4e-10 relative).

Conventions at kinks follow PyTorch: ``relu'(0) = 0``, ``leaky_relu'(0) = alpha``,
``elu'(0) = alpha``, and ``hardtanh`` / ``relu6`` have derivative 0 at both kinks
(PyTorch's ``hardtanh_backward`` passes the gradient only strictly inside the bounds).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from hwbp.errors import ModelError

__all__ = ["ActivationFn", "ACTIVATIONS", "get_activation", "sigmoid", "activation_parameter"]

Array = np.ndarray


def sigmoid(a: Array) -> Array:
    """Logistic function ``1 / (1 + exp(-a))``, computed without overflow and to full
    relative precision in both tails."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class ActivationFn:
    """An elementwise nonlinearity ``y = f(a; alpha)`` with derivative ``f'(a)``.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"tanh"``.
    f : callable
        ``f(a, alpha) -> y``.
    df : callable
        ``df(a, y, alpha) -> f'(a)``; ``y`` is ``f(a)`` (passed to avoid recomputation).
    equation : str
        Human-readable definition, used in documentation and emitted equations.
    output_only : bool
        ``df`` reads only ``y``: ``df(None, y, alpha)`` gives ``f'(a)`` from the output
        alone, the same numbers (a simulator then need not keep ``f'(a)`` beside ``y``).
    """

    name: str
    f: Callable[[Array, float], Array]
    df: Callable[[Array, Array, float], Array]
    equation: str
    output_only: bool = False


def _softplus(a: Array, alpha: float) -> Array:
    return np.logaddexp(0.0, a)


_GELU_C = np.sqrt(2.0 / np.pi)


def _gelu(a: Array, p: float) -> Array:
    # 1 + erf(x) written as erfc(-x): no cancellation in the tail a << 0
    from scipy.special import erfc

    return 0.5 * a * erfc(-a / np.sqrt(2.0))


def _dgelu(a: Array, y: Array, p: float) -> Array:
    from scipy.special import erfc

    return 0.5 * erfc(-a / np.sqrt(2.0)) + a * np.exp(-0.5 * a * a) / np.sqrt(2.0 * np.pi)


def _gelu_inner(a: Array) -> Array:
    """``sqrt(2/pi) (a + 0.044715 a^3)``, in the operation order of the SPICE cell."""
    return _GELU_C * (a + 0.044715 * (a * a * a))


def _gelu_tanh(a: Array, p: float) -> Array:
    return 0.5 * a * (1.0 + np.tanh(_gelu_inner(a)))


def _dgelu_tanh(a: Array, y: Array, p: float) -> Array:
    t = np.tanh(_gelu_inner(a))
    return 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * _GELU_C * (1.0 + 0.134145 * (a * a))


def _dtanh(a: Array, y: Array, p: float) -> Array:
    """``1 - y^2``, the square's buffer reused for the result (the same numbers)."""
    g = y * y
    if not isinstance(g, np.ndarray):  # a scalar
        return 1.0 - g
    np.subtract(1.0, g, out=g)
    return g


def _inside(a: Array, lo: float, hi: float) -> Array:
    return ((a > lo) & (a < hi)).astype(np.float64)


_TABLE = {
    fn.name: fn
    for fn in (
        ActivationFn("identity", lambda a, p: a, lambda a, y, p: np.ones_like(a), "f(a) = a"),
        ActivationFn("tanh", lambda a, p: np.tanh(a), _dtanh, "f(a) = tanh(a)", output_only=True),
        ActivationFn(
            "sigmoid", lambda a, p: sigmoid(a), lambda a, y, p: sigmoid(a) * sigmoid(-a), "f(a) = 1/(1+exp(-a))"
        ),
        ActivationFn(
            "relu",
            lambda a, p: np.maximum(a, 0.0),
            lambda a, y, p: (y > 0).astype(y.dtype),  # y > 0 exactly where a > 0 (NaN and -0 included)
            "f(a) = max(a, 0)",
            output_only=True,
        ),
        ActivationFn(
            "leaky_relu",
            lambda a, p: np.where(a > 0, a, p * a),
            lambda a, y, p: np.where(a > 0, 1.0, p).astype(a.dtype),
            "f(a) = a if a > 0 else alpha*a",
        ),
        ActivationFn("softplus", _softplus, lambda a, y, p: sigmoid(a), "f(a) = log(1+exp(a))"),
        ActivationFn("gelu", _gelu, _dgelu, "f(a) = a/2 (1 + erf(a/sqrt(2)))"),
        ActivationFn("gelu_tanh", _gelu_tanh, _dgelu_tanh,
                     "f(a) = a/2 (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))"),
        ActivationFn(
            "elu",
            lambda a, p: np.where(a > 0, a, p * np.expm1(np.minimum(a, 0.0))),
            lambda a, y, p: np.where(a > 0, 1.0, p * np.exp(np.minimum(a, 0.0))),
            "f(a) = a if a > 0 else alpha*(exp(a)-1)",
        ),
        ActivationFn("silu", lambda a, p: a * sigmoid(a),
                     lambda a, y, p: sigmoid(a) * (1.0 + a * (1.0 - sigmoid(a))), "f(a) = a/(1+exp(-a))"),
        ActivationFn("softsign", lambda a, p: a / (1.0 + np.abs(a)),
                     lambda a, y, p: 1.0 / (1.0 + np.abs(a)) ** 2, "f(a) = a/(1+|a|)"),
        ActivationFn("hardtanh", lambda a, p: np.clip(a, -1.0, 1.0), lambda a, y, p: _inside(a, -1.0, 1.0),
                     "f(a) = min(max(a, -1), 1)"),
        ActivationFn("relu6", lambda a, p: np.clip(a, 0.0, 6.0), lambda a, y, p: _inside(a, 0.0, 6.0),
                     "f(a) = min(max(a, 0), 6)"),
        ActivationFn("clip", lambda a, p: np.clip(a, p[0], p[1]), lambda a, y, p: _inside(a, p[0], p[1]),
                     "f(a) = min(max(a, alpha), high)"),
    )
}

#: Read-only table of every supported activation, by name.
ACTIVATIONS: Mapping[str, ActivationFn] = MappingProxyType(_TABLE)


def activation_parameter(function: str, alpha: float, high: float | None = None) -> float | tuple[float, float]:
    """The parameter ``p`` that ``f(a, p)`` / ``df(a, y, p)`` of ``function`` take:
    ``(alpha, high)`` (the bounds) for ``clip``, else ``alpha``."""
    if function != "clip":
        return alpha
    if high is None:
        raise ModelError(f"clip needs an upper bound (high); got only alpha={alpha}")
    return (float(alpha), float(high))


def get_activation(name: str, *, where: str = "") -> ActivationFn:
    """Look up an activation by name.

    Raises
    ------
    ModelError
        If ``name`` is unknown; the message lists the valid names.
    """
    try:
        return ACTIVATIONS[name]
    except KeyError:
        at = f" in {where}" if where else ""
        raise ModelError(
            f"unknown activation {name!r}{at}; valid: {', '.join(sorted(ACTIVATIONS))}"
        ) from None
