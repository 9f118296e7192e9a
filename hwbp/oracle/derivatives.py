"""The oracle's own elementwise functions: activations, their derivatives, losses and
their gradients.

The oracle shares no derivative code with the dynamics (``hwbp.ir.activations`` and
``hwbp.ir.losses``, which the lowering, the simulator, the readout and the emitted
circuits use): a wrong entry in those tables makes the dynamics' gradients disagree
with this module's instead of agreeing with itself.  The formulas here are written
differently on purpose (``tanh' = sech²``, not ``1 - tanh²``; ``sigmoid' =
e^{-|a|}/(1+e^{-|a|})²``, not ``y (1 - y)``) and are pinned in the tests to
``torch.autograd`` and to central finite differences.

Conventions at kinks follow PyTorch: ``relu'(0) = 0``, ``leaky_relu'(0) = alpha``.
``softplus`` is the exact function ``log(1 + e^a)`` (PyTorch switches to ``a`` above
``a = 20``, a difference below 2e-9).  ``ce`` is ``logsumexp(x) - yᵀx`` per sample:
``-Σ_k y_k log softmax(x)_k`` for probability rows ``y``, and for any ``y`` the loss
whose gradient ``softmax(x) - y`` a circuit's loss port realizes.

Adding an activation: add one :class:`OracleActivation` to the tuple in
``_ACTIVATIONS`` below, with its forward value and its derivative written from the
mathematics (not copied from ``hwbp.ir.activations``), and its torch counterpart to
``tests/test_oracle_derivatives.py``.  Until then every use of the oracle on that
activation raises :class:`MissingOracleError` naming this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

__all__ = [
    "OracleActivation", "OracleLoss", "ORACLE_ACTIVATIONS", "ORACLE_LOSSES", "MissingOracleError",
    "oracle_activation", "oracle_loss",
]

Array = np.ndarray


class MissingOracleError(NotImplementedError):
    """The oracle has no implementation of an activation or loss that the IR accepts.

    This is a defect of hwbp (the activation table grew without the oracle), never
    bad input; the message says where the missing entry goes.
    """


@dataclass(frozen=True)
class OracleActivation:
    """An elementwise activation as the oracle computes it.

    Attributes
    ----------
    name : str
        The activation's name in the IR (``Activation.function``).
    f : callable
        ``f(a, alpha) -> y``, the forward value.
    df : callable
        ``df(a, alpha) -> f'(a)``, the derivative, from ``a`` alone.
    """

    name: str
    f: Callable[[Array, float], Array]
    df: Callable[[Array, float], Array]


@dataclass(frozen=True)
class OracleLoss:
    """A per-sample loss as the oracle computes it.

    Attributes
    ----------
    name : str
        The loss's name in the IR (``Loss.function``).
    value : callable
        ``value(x, y) -> (batch,)`` per-sample losses.
    grad : callable
        ``grad(x, y) -> (batch, n)``, ``dl_i/dx_i`` per sample.
    """

    name: str
    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]


def _exp_neg_abs(a: Array) -> Array:
    """``e^{-|a|}``, in (0, 1]: the building block of the overflow-free forms below."""
    return np.exp(-np.abs(a))


def _sigmoid(a: Array, alpha: float = 0.0) -> Array:
    e = _exp_neg_abs(a)
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_prime(a: Array, alpha: float = 0.0) -> Array:
    e = _exp_neg_abs(a)  # symmetric in a: e^{-a}/(1+e^{-a})^2 = e^{-|a|}/(1+e^{-|a|})^2
    return e / (1.0 + e) ** 2


def _softplus(a: Array, alpha: float) -> Array:
    return np.maximum(a, 0.0) + np.log1p(_exp_neg_abs(a))


def _relu_prime(a: Array, alpha: float) -> Array:
    return np.where(a > 0, 1.0, 0.0)  # relu'(0) = 0, as torch


def _leaky_relu_prime(a: Array, alpha: float) -> Array:
    return np.where(a > 0, 1.0, alpha)  # leaky_relu'(0) = alpha, as torch


_SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2/pi)
_GELU_C = 0.044715


def _phi_cdf(a: Array) -> Array:
    """Standard normal CDF, ``erfc(-a/sqrt 2)/2`` (accurate in the lower tail)."""
    from scipy.special import erfc

    return 0.5 * erfc(-np.asarray(a) / np.sqrt(2.0))


def _gelu_prime(a: Array, alpha: float) -> Array:
    # d/da [a Phi(a)] = Phi(a) + a phi(a), phi the standard normal density
    return _phi_cdf(a) + a * np.exp(-0.5 * np.square(a)) / np.sqrt(2.0 * np.pi)


def _sech2(u: Array) -> Array:
    e = np.exp(-2.0 * np.abs(u))  # sech^2(u) = 4 e^{-2|u|} / (1 + e^{-2|u|})^2
    return 4.0 * e / (1.0 + e) ** 2


def _gelu_tanh(a: Array, alpha: float) -> Array:
    u = _SQRT_2_OVER_PI * (a + _GELU_C * a ** 3)
    return a * (1.0 - 1.0 / (1.0 + np.exp(np.clip(2.0 * u, -745.0, 709.0))))  # a (1 + tanh u)/2


def _gelu_tanh_prime(a: Array, alpha: float) -> Array:
    u = _SQRT_2_OVER_PI * (a + _GELU_C * a ** 3)
    half = 0.5 * (1.0 + np.tanh(u))
    return half + 0.5 * a * _sech2(u) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * a * a)


def _elu(a: Array, alpha: float) -> Array:
    return np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0.0)))


def _elu_prime(a: Array, alpha: float) -> Array:
    return np.where(a > 0, 1.0, _elu(a, alpha) + alpha)  # alpha e^a = alpha (e^a - 1) + alpha; elu'(0) = alpha


def _silu_prime(a: Array, alpha: float) -> Array:
    return _sigmoid(a) + a * _sigmoid(a) * _sigmoid(-a)


def _softsign_prime(a: Array, alpha: float) -> Array:
    return np.square(1.0 - np.abs(a / (1.0 + np.abs(a))))  # (1 - |f(a)|)^2


def _clip_prime(lo: float, hi: float) -> Callable[[Array, float], Array]:
    # torch: slope 1 strictly inside (lo, hi), 0 at and beyond the bounds
    return lambda a, alpha: np.where((a > lo) & (a < hi), 1.0, 0.0)


_ACTIVATIONS = (
    OracleActivation("identity", lambda a, alpha: a + 0.0, lambda a, alpha: np.ones(np.shape(a))),
    OracleActivation("tanh", lambda a, alpha: np.tanh(a), lambda a, alpha: _sech2(a)),
    OracleActivation("sigmoid", _sigmoid, _sigmoid_prime),
    OracleActivation("relu", lambda a, alpha: np.where(a > 0, a, 0.0), _relu_prime),
    OracleActivation("leaky_relu", lambda a, alpha: np.where(a > 0, a, alpha * a), _leaky_relu_prime),
    OracleActivation("softplus", _softplus, _sigmoid),
    OracleActivation("gelu", lambda a, alpha: a * _phi_cdf(a), _gelu_prime),
    OracleActivation("gelu_tanh", _gelu_tanh, _gelu_tanh_prime),
    OracleActivation("elu", _elu, _elu_prime),
    OracleActivation("silu", lambda a, alpha: a * _sigmoid(a), _silu_prime),
    OracleActivation("softsign", lambda a, alpha: a / (1.0 + np.abs(a)), _softsign_prime),
    OracleActivation("hardtanh", lambda a, alpha: np.minimum(np.maximum(a, -1.0), 1.0), _clip_prime(-1.0, 1.0)),
    OracleActivation("relu6", lambda a, alpha: np.minimum(np.maximum(a, 0.0), 6.0), _clip_prime(0.0, 6.0)),
    # clip's parameter is the pair of bounds (lo, hi)
    OracleActivation("clip", lambda a, p: np.minimum(np.maximum(a, p[0]), p[1]),
                     lambda a, p: _clip_prime(p[0], p[1])(a, p)),
)

#: The oracle's activations, by IR name (read-only).
ORACLE_ACTIVATIONS: Mapping[str, OracleActivation] = MappingProxyType({f.name: f for f in _ACTIVATIONS})


def _logsumexp(x: Array) -> Array:
    m = x.max(axis=-1)
    return m + np.log(np.exp(x - m[:, None]).sum(axis=-1))


def _ce_value(x: Array, y: Array) -> Array:
    # logsumexp(x) - y.x, which is -sum_k y_k log softmax(x)_k for probability rows y
    return _logsumexp(x) - np.einsum("bi,bi->b", y, x)


def _ce_grad(x: Array, y: Array) -> Array:
    return np.exp(x - _logsumexp(x)[:, None]) - y


_LOSSES = (
    OracleLoss("mse", lambda x, y: 0.5 * np.einsum("bi,bi->b", x - y, x - y), lambda x, y: x - y),
    OracleLoss("ce", _ce_value, _ce_grad),
)

#: The oracle's losses, by IR name (read-only).
ORACLE_LOSSES: Mapping[str, OracleLoss] = MappingProxyType({f.name: f for f in _LOSSES})


def _lookup(table: Mapping[str, Any], name: str, what: str, entry: str) -> Any:
    """``table[name]``, or a :class:`MissingOracleError` saying where to add ``entry``."""
    try:
        return table[name]
    except KeyError:
        raise MissingOracleError(
            f"the oracle has no {what} {name!r}: add an {entry} to "
            f"hwbp/oracle/derivatives.py (has: {', '.join(sorted(table))})"
        ) from None


def oracle_activation(name: str) -> OracleActivation:
    """The oracle's implementation of activation ``name``.

    Raises
    ------
    MissingOracleError
        If the oracle has none (a defect: the message says where to add it).
    """
    return _lookup(ORACLE_ACTIVATIONS, name, "derivative for activation", "OracleActivation")


def oracle_loss(name: str) -> OracleLoss:
    """The oracle's implementation of loss ``name``.

    Raises
    ------
    MissingOracleError
        If the oracle has none (a defect: the message says where to add it).
    """
    return _lookup(ORACLE_LOSSES, name, "gradient for loss", "OracleLoss")
