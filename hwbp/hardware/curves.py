"""Measured activation cells: a tabulated transfer curve and the pair gate.

A characterized cell is known by its measured DC sweep ``f_k = f(a_k)`` (units) on a grid
of pre-activations ``a_0 < ... < a_N`` (units), not by a gain and an offset.
:class:`Curve` interpolates it with a cubic spline (not-a-knot), so that

.. math::

    \\tilde f(a_k) = f_k, \\qquad \\tilde f'(a) = \\frac{d}{da}\\,\\mathrm{spline}(a),

continued linearly with the end slope beyond the grid (``f~(a) = f_N + f~'(a_N)(a - a_N)``
above it, likewise below).  An optional second table ``gate_zero`` is the measured gate
output at zero tension, ``z(a)`` (units): the offset of the gate's two cells.

:class:`CellModel` is one term's cells in a device instance, per neuron ``j``::

    f~_j(a)  = (1 + g_j) phi(a) + o_j                       phi: the curve, or the ideal f

and the gated sensitivity ``e`` that the gate cell hands the synapses, either

- ``gate = "derivative"`` (a derivative cell):
  ``e = ((1 + g'_j) phi'(a) + o'_j) T``, or
- ``gate = "pair"`` (the same f cell at ``a +- T/2``, as the SKY130 cells compute it)::

      e = (1 + g'_j) [f~_j(a + T/2) - f~_j(a - T/2)] + z(a) + p_j

  which is ``f~'(a) T + f~'''(a) T^3 / 24 + ...``: the finite-difference error O(T^3)
  and, through ``z`` and the pair offset ``p_j``, an error that does not scale with T.

The gain and offset draws (``g, o, g', o', p``) come from :class:`~hwbp.hardware.Cells`
(:func:`hwbp.hardware.realize`).  The instance's *own* network (what exact backprop of
the forward circuit would give) has the exact derivative ``(1 + g_j) phi'(a)``
(:meth:`CellModel.own`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["Curve", "CellModel", "curve_from_mapping", "GATE_MODES"]

#: The gate realizations ``[cells] gate`` selects.
GATE_MODES = ("derivative", "pair")


@dataclass(frozen=True, eq=False)
class Curve:
    """A tabulated transfer curve ``f(a)`` (units) on the grid ``a`` (units), and the
    optional gate output at zero tension ``gate_zero`` (units, same grid)."""

    a: tuple[float, ...]
    f: tuple[float, ...]
    gate_zero: tuple[float, ...] | None = None

    @cached_property
    def _spline(self) -> Any:
        from scipy.interpolate import CubicSpline

        return CubicSpline(np.asarray(self.a), np.asarray(self.f), bc_type="not-a-knot", extrapolate=False)

    @cached_property
    def _ends(self) -> tuple[float, float, float, float, float, float]:
        lo, hi = self.a[0], self.a[-1]
        d = self._spline.derivative()
        return lo, hi, self.f[0], self.f[-1], float(d(lo)), float(d(hi))

    def value(self, a: np.ndarray) -> np.ndarray:
        """``f~(a)``: the spline on the grid, the end tangents beyond it."""
        a = np.asarray(a, dtype=np.float64)
        lo, hi, flo, fhi, slo, shi = self._ends
        y = self._spline(np.clip(a, lo, hi))
        return np.where(a < lo, flo + slo * (a - lo), np.where(a > hi, fhi + shi * (a - hi), y))

    def slope(self, a: np.ndarray) -> np.ndarray:
        """``f~'(a)``: the spline's derivative on the grid, the end slopes beyond it."""
        a = np.asarray(a, dtype=np.float64)
        lo, hi, _, _, slo, shi = self._ends
        d = self._spline.derivative()(np.clip(a, lo, hi))
        return np.where(a < lo, slo, np.where(a > hi, shi, d))

    def zero(self, a: np.ndarray) -> np.ndarray | float:
        """``z(a)``: the tabulated gate output at zero tension (0 without a table)."""
        if self.gate_zero is None:
            return 0.0
        return np.interp(a, self.a, self.gate_zero)


def _floats(value: Any, where: str) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"hardware {where} must be a list of numbers, got {value!r}")
    try:
        out = tuple(float(v) for v in value if not isinstance(v, bool))
    except (TypeError, ValueError):
        raise ConfigError(f"hardware {where} must be a list of numbers") from None
    if len(out) != len(value) or not all(np.isfinite(out)):
        raise ConfigError(f"hardware {where} must be a list of finite numbers")
    return out


def curve_from_mapping(name: str, values: Any, where: str = "") -> Curve:
    """A :class:`Curve` from the TOML table ``[curves.<name>]`` (keys ``a``, ``f`` and
    optionally ``gate_zero``); :class:`ConfigError` for a malformed table."""
    from hwbp.ir.activations import ACTIVATIONS

    at = f"{where}: [curves.{name}]"
    if name not in ACTIVATIONS or name == "identity":
        raise ConfigError(f"hardware {at}: no activation {name!r}; valid: "
                          f"{', '.join(sorted(k for k in ACTIVATIONS if k != 'identity'))}")
    if not isinstance(values, dict):
        raise ConfigError(f"hardware {at} must be a table")
    unknown = sorted(set(values) - {"a", "f", "gate_zero"})
    if unknown or "a" not in values or "f" not in values:
        raise ConfigError(f"hardware {at} needs keys a and f (optional gate_zero), got {sorted(values)}")
    a = _floats(values["a"], f"{at} a")
    f = _floats(values["f"], f"{at} f")
    z = None if values.get("gate_zero") is None else _floats(values["gate_zero"], f"{at} gate_zero")
    if len(a) < 4 or len(f) != len(a) or (z is not None and len(z) != len(a)):
        raise ConfigError(f"hardware {at}: a, f (and gate_zero) need the same length >= 4, got "
                          f"{len(a)}, {len(f)}" + ("" if z is None else f", {len(z)}"))
    if not all(x < y for x, y in zip(a, a[1:])):
        raise ConfigError(f"hardware {at}: a must increase strictly")
    return Curve(a, f, z)


@dataclass(frozen=True, eq=False)
class CellModel:
    """One term's activation and gate cells in a device instance (module docstring).

    Attributes
    ----------
    curve : Curve or None
        The tabulated f; None: the ideal ``fn`` with parameter ``param``.
    fn, param
        The term's ideal activation (:class:`~hwbp.ir.activations.ActivationFn`) and parameter.
    gain, offset : numpy.ndarray
        ``1 + g_j`` and ``o_j`` (units) per neuron.
    dgain, doffset : numpy.ndarray
        ``1 + g'_j`` and ``o'_j`` (``o'`` only in derivative mode) per neuron.
    pair : bool
        The pair gate (else the derivative cell).
    pair_offset : numpy.ndarray or None
        ``p_j`` (units) per neuron, pair mode.
    pair_slope : numpy.ndarray or None
        ``q_j`` (dimensionless) per neuron, pair mode: the gain difference of the pair's two
        f copies, which adds ``q_j phi(a)`` to the gate at any tension.
    """

    curve: Curve | None
    fn: Any
    param: Any
    gain: np.ndarray
    offset: np.ndarray
    dgain: np.ndarray
    doffset: np.ndarray
    pair: bool
    pair_offset: np.ndarray | None = None
    pair_slope: np.ndarray | None = None

    def _phi(self, a: np.ndarray) -> np.ndarray:
        return self.fn.f(a, self.param) if self.curve is None else self.curve.value(a)

    def _dphi(self, a: np.ndarray, phi: np.ndarray) -> np.ndarray:
        return self.fn.df(a, phi, self.param) if self.curve is None else self.curve.slope(a)

    def f(self, a: np.ndarray) -> np.ndarray:
        """``f~(a) = (1 + g) phi(a) + o`` per neuron."""
        return self.gain * self._phi(a) + self.offset

    def activate(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(f~(a), gate)``; the gate is ``(1 + g') phi'(a) + o'`` (derivative mode) or
        ``(1 + g') f~'(a)``, the small-tension slope of the pair (pair mode)."""
        phi = self._phi(a)
        d = self._dphi(a, phi)
        gate = self.dgain * self.gain * d if self.pair else self.dgain * d + self.doffset
        return self.gain * phi + self.offset, gate

    def gated(self, a: np.ndarray, gate: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The gated sensitivity ``e`` at pre-activation ``a`` and tension ``t``: ``gate * t``
        (derivative mode), or ``(1 + g') [f~(a + t/2) - f~(a - t/2)] + z(a) + p + q phi(a)``
        (the pair's copies at gains ``1 + g +- q/2``: ``(1 + g + q/2) f(a + t/2) - (1 + g - q/2)
        f(a - t/2) = (1 + g) [f(a + t/2) - f(a - t/2)] + q f(a) + O(q t^2)``)."""
        if not self.pair:
            return gate * t
        e = self.dgain * (self.f(a + 0.5 * t) - self.f(a - 0.5 * t))
        if self.curve is not None and self.curve.gate_zero is not None:
            e = e + self.curve.zero(a)
        if self.pair_offset is not None:
            e = e + self.pair_offset
        if self.pair_slope is not None:
            e = e + self.pair_slope * self._phi(a)
        return e

    def own(self) -> "CellModel":
        """The same f with its exact derivative as the gate (the instance's own network)."""
        return replace(self, dgain=self.gain, doffset=np.zeros_like(self.offset), pair=False, pair_offset=None,
                       pair_slope=None)
