"""The hardware model: the non-idealities of one analog realization, read from TOML.

Every non-ideality defaults to *off*: ``Hardware()`` (an empty TOML file) is the ideal
network, and :func:`hwbp.hardware.realize` then returns the system unchanged.

The normalized system works in dimensionless node values; :attr:`Hardware.unit_V`
says how many volts one unit is, so voltage-valued parameters (noise rms, rails, ADC
range, cell offsets) are given in V and converted with it.

TOML layout (every key optional)::

    unit_V = 1.0
    [weights]   bits = 6, scale = "tensor", g_min_S = 0.0, g_max_S = 1e-4
    [mismatch]  sigma = 0.05, correlation = 0.0    (or pelgrom_A_um = 0.1, area_um2 = 4.0)
    [nodes]     r_sigma = 0.01, c_sigma = 0.05
    [synapses]  offset_fwd_sigma = 0.0, offset_bwd_sigma = 0.0, offset_correlation = 0.0
    [cells]     f_gain = 0.0, f_gain_sigma = 0.0, f_offset_V = 0.0, f_offset_sigma_V = 0.0,
                df_gain = 0.0, df_gain_sigma = 0.0, df_offset = 0.0, df_offset_sigma = 0.0,
                gate = "derivative" (or "pair"), pair_offset_sigma = 0.0, pair_slope_sigma = 0.0
    [curves.tanh]  a = [...], f = [...], gate_zero = [...]   (one table per activation)
    [loss]      beta_gain = 0.0, beta_gain_sigma = 0.0, offset = 0.0, offset_sigma = 0.0
    [noise]     temperature_K = 300.0, capacitance_F = 1e-13   (or rms_V = 1e-3)
    [rails]     v_V = 1.0
    [readout]   adc_bits = 8, adc_range_V = 1.0
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hwbp.errors import ConfigError
from hwbp.hardware.curves import GATE_MODES, Curve, curve_from_mapping
from hwbp.hardware.compare import instance_gradients, instance_report
from hwbp.hardware.realize import realize
from hwbp.hardware.sections import BOLTZMANN_J_PER_K, Noise, Rails, Readout
from hwbp.hardware.sections import check as _check

__all__ = ["Weights", "Mismatch", "Nodes", "Synapses", "Cells", "Loss", "Noise", "Rails", "Readout", "Hardware",
           "load_hardware", "hardware_from_mapping", "BOLTZMANN_J_PER_K"]

@dataclass(frozen=True)
class Weights:
    """Weight quantization onto conductance levels of a differential device pair.

    A weight ``w`` is realized as ``w = s (G+ - G-) / (g_max - g_min)`` with two devices
    ``G± in [g_min_S, g_max_S]`` (S); one of them sits at ``g_min`` and the other at
    ``g_min + |w| / s (g_max - g_min)``, rounded to one of ``2**bits`` uniform levels.
    ``s`` is the full-scale weight: ``max |W|`` of the tensor (``scale = "tensor"``) or of
    each output row, i.e. each crossbar column (``"column"``).  ``bits = None``: no
    quantization.  ``g_min_S > 0`` (a finite on/off ratio) matters only with mismatch:
    the off device's spread then perturbs even zero weights.  Biases are quantized the
    same way (one device pair to the bias rail).
    """

    bits: int | None = None
    scale: str = "tensor"
    g_min_S: float = 0.0
    g_max_S: float = 1e-4

    def __post_init__(self) -> None:
        _check(self.bits is None or (isinstance(self.bits, int) and 1 <= self.bits <= 32), "[weights] bits",
               f"must be an integer in 1..32, got {self.bits!r}")
        _check(self.scale in ("tensor", "column"), "[weights] scale",
               f"must be 'tensor' or 'column', got {self.scale!r}")
        _check(0 <= self.g_min_S < self.g_max_S, "[weights]", f"needs 0 <= g_min_S < g_max_S, got "
               f"{self.g_min_S}, {self.g_max_S}")


@dataclass(frozen=True)
class Mismatch:
    """Device-to-device conductance mismatch (lognormal, relative).

    Every device conductance is ``G · exp(sigma z)``, ``z ~ N(0, 1)``.  The forward and
    the backward device of one synapse are two devices: ``z_b = rho z_f + sqrt(1 - rho²) z'``
    with ``rho = correlation`` (0: independent, the weight-transport error; 1: matched
    pairs, forward and backward identical).

    Pelgrom area scaling: instead of ``sigma``, give ``pelgrom_A_um`` (the relative
    conductance spread of one device times the square root of its gate area, um) and the
    synapse device's area ``area_um2`` (W*L, um^2); then ``sigma = pelgrom_A_um /
    sqrt(area_um2)`` (:attr:`sigma_total`), so one fitted coefficient serves every sizing.
    """

    sigma: float = 0.0
    correlation: float = 0.0
    pelgrom_A_um: float = 0.0
    area_um2: float | None = None

    def __post_init__(self) -> None:
        _check(self.sigma >= 0, "[mismatch] sigma", f"must be >= 0, got {self.sigma}")
        _check(self.pelgrom_A_um >= 0, "[mismatch] pelgrom_A_um", f"must be >= 0, got {self.pelgrom_A_um}")
        _check(not (self.pelgrom_A_um > 0 and self.sigma > 0), "[mismatch]",
               "give sigma, or pelgrom_A_um with area_um2, not both")
        _check(self.pelgrom_A_um == 0 or (self.area_um2 is not None and self.area_um2 > 0), "[mismatch] area_um2",
               f"pelgrom_A_um needs the synapse device area area_um2 > 0 (um^2), got {self.area_um2}")

        _check(-1 <= self.correlation <= 1, "[mismatch] correlation", f"must lie in [-1, 1], got {self.correlation}")

    @property
    def sigma_total(self) -> float:
        """The relative device spread: ``sigma``, or ``pelgrom_A_um / sqrt(area_um2)``."""
        if self.pelgrom_A_um > 0:
            return float(self.pelgrom_A_um / np.sqrt(self.area_um2))
        return float(self.sigma)


@dataclass(frozen=True)
class Nodes:
    """Mismatch of each node's resistor R (gain) and capacitor C (time constant).

    Every node (``x+`` and ``x-`` of each neuron separately) has its resistor drawn as
    ``R · exp(r_sigma z)`` (ohm) and its capacitor as ``C · exp(c_sigma z)`` (F).  A node settles to ``r · drive``
    (``r = R_actual / R``) with time constant ``r c tau``.  Equal ``r`` of a pair scales
    the pair's tension and the local readout stays exact; unequal ``r`` leaks the forward
    drive into the tension (an offset ``(r+ - r-) F`` that is not divided by beta).
    """

    r_sigma: float = 0.0
    c_sigma: float = 0.0

    def __post_init__(self) -> None:
        _check(self.r_sigma >= 0 and self.c_sigma >= 0, "[nodes]",
               f"r_sigma and c_sigma must be >= 0, got {self.r_sigma}, {self.c_sigma}")


@dataclass(frozen=True)
class Synapses:
    """Output offsets of the synapses: each synapse (one per entry of a weight matrix;
    biases are current sources and have none) adds a current at zero input to its
    forward output (the post-synaptic pre-activation ``a``) and to its backward output
    (the pre-synaptic sensitivity sum), whatever its weight.

    Per synapse ``(i, j)``: the forward offset ``s o_f`` and the backward offset ``s o_b``
    (units of drive) with ``o_f ~ N(0, offset_fwd_sigma²)``, ``o_b = rho z_f
    offset_bwd_sigma + sqrt(1 - rho²) z' offset_bwd_sigma`` (``rho = offset_correlation``)
    and ``s`` the network's full-scale weight (the largest ``|g w|`` of every weighted
    term at the instance's draw: one weight range for the chip, as
    :mod:`hwbp.pdk.network` programs its synapse cells).  Both sigmas are therefore in
    units of the synapse's full-scale output, ``w x`` at ``w = s``, ``x = 1`` unit.  The
    neuron ``i`` then sees ``a_i + s sum_j o_f[i, j]`` and the source neuron ``j`` the
    sensitivity drive ``+ s sum_i o_b[i, j]``: an offset in the tension that the readout
    divides by ``beta`` with the gradient.

    ``offset_correlation = 0``: the two directions are two circuits with their own
    devices (the SKY130 synapse cell: two Gilbert multipliers that share only the stored
    weight voltage and the bias reference, so one draw does not serve both); 1: one
    offset source feeds both outputs.
    """

    offset_fwd_sigma: float = 0.0
    offset_bwd_sigma: float = 0.0
    offset_correlation: float = 0.0

    def __post_init__(self) -> None:
        _check(self.offset_fwd_sigma >= 0 and self.offset_bwd_sigma >= 0, "[synapses]",
               f"offset_fwd_sigma and offset_bwd_sigma must be >= 0, got {self.offset_fwd_sigma}, "
               f"{self.offset_bwd_sigma}")
        _check(-1 <= self.offset_correlation <= 1, "[synapses] offset_correlation",
               f"must lie in [-1, 1], got {self.offset_correlation}")

    @property
    def ideal(self) -> bool:
        """Whether the synapses have no offset."""
        return self.offset_fwd_sigma == 0 and self.offset_bwd_sigma == 0


@dataclass(frozen=True)
class Cells:
    """Gain and offset errors of the activation cell ``f`` and of its derivative cell ``f'``.

    Per neuron and term: ``f~(a) = (1 + g) f(a) + o`` with ``g ~ N(f_gain, f_gain_sigma²)``,
    ``o ~ N(f_offset_V, f_offset_sigma_V²) / unit_V``; independently
    ``f'~(a) = (1 + g') f'(a) + o'`` with ``g' ~ N(df_gain, df_gain_sigma²)``,
    ``o' ~ N(df_offset, df_offset_sigma²)`` (dimensionless: ``f'`` is a gain).  Identity
    terms are wires and have no cell.

    ``gate = "pair"`` makes the gate the same f cell at ``a +- T/2``:
    ``e = (1 + g') [f~(a + T/2) - f~(a - T/2)] + z(a) + p + q f(a)`` with ``p ~ N(0,
    pair_offset_sigma²)`` (units), ``q ~ N(0, pair_slope_sigma²)`` (the gain difference of
    the pair's two f copies: ``(1 + g + q/2) f(a + T/2) - (1 + g - q/2) f(a - T/2)``
    leaves ``q f(a)`` at any tension) and ``z`` the tabulated zero-tension gate
    (``df_offset`` applies to the derivative cell only).  A ``[curves.<activation>]`` table replaces the
    ideal f of that activation by the measured curve; ``f_gain``/``f_offset_V`` then act
    on the curve (:mod:`hwbp.hardware.curves`).
    """

    f_gain: float = 0.0
    f_gain_sigma: float = 0.0
    f_offset_V: float = 0.0
    f_offset_sigma_V: float = 0.0
    df_gain: float = 0.0
    df_gain_sigma: float = 0.0
    df_offset: float = 0.0
    df_offset_sigma: float = 0.0
    gate: str = "derivative"
    pair_offset_sigma: float = 0.0
    pair_slope_sigma: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.endswith("sigma") or f.name.endswith("sigma_V"):
                _check(getattr(self, f.name) >= 0, f"[cells] {f.name}", f"must be >= 0, got {getattr(self, f.name)}")
        _check(self.gate in GATE_MODES, "[cells] gate", f"must be one of {', '.join(GATE_MODES)}, got {self.gate!r}")
        _check(self.gate == "pair" or self.pair_offset_sigma == 0, "[cells] pair_offset_sigma",
               "applies to gate = 'pair'")
        _check(self.gate == "pair" or self.pair_slope_sigma == 0, "[cells] pair_slope_sigma",
               "applies to gate = 'pair'")
        _check(self.gate == "derivative" or (self.df_offset == 0 and self.df_offset_sigma == 0), "[cells] df_offset",
               "applies to gate = 'derivative' (the pair gate's offset is pair_offset_sigma)")

    @property
    def ideal(self) -> bool:
        """Whether every cell error is zero and the gate is the derivative cell."""
        return self.gate == "derivative" and all(getattr(self, f.name) == 0 for f in dataclasses.fields(self)
                                                 if f.name != "gate")


@dataclass(frozen=True)
class Loss:
    """Gain error and input offset of the loss port.

    The realized nudge strength is ``beta (1 + g)`` with ``g ~ N(beta_gain,
    beta_gain_sigma²)`` drawn once per instance (dimensionless), while the readout still
    divides the tensions by the nominal ``beta``.  The output tension is ``beta (1 + g)
    dl/dx``, so every gradient read out is scaled by ``1 + g``: its magnitude errs, its
    direction (cosine) does not.

    The port's input offset ``o ~ N(offset, offset_sigma²)`` is drawn per output neuron
    (units of the port's input ``x - y``, i.e. of the output value; input-referred, as a
    differential pair's offset is): the port computes ``dl/dx`` at ``x + o``, so for MSE
    the output tension is ``beta (1 + g) (x - y + o)``, a tension error that the
    readout cannot tell from a gradient."""

    beta_gain: float = 0.0
    beta_gain_sigma: float = 0.0
    offset: float = 0.0
    offset_sigma: float = 0.0

    def __post_init__(self) -> None:
        _check(self.beta_gain > -1.0, "[loss] beta_gain", f"must be > -1, got {self.beta_gain}")
        _check(self.beta_gain_sigma >= 0, "[loss] beta_gain_sigma", f"must be >= 0, got {self.beta_gain_sigma}")
        _check(self.offset_sigma >= 0, "[loss] offset_sigma", f"must be >= 0, got {self.offset_sigma}")


@dataclass(frozen=True)
class Hardware:
    """All non-idealities of one design (each defaults to off).

    Attributes
    ----------
    unit_V : float
        Volts per unit of the normalized node values.
    weights, mismatch, nodes, synapses, cells, loss, noise, rails, readout
        See each type.
    """

    unit_V: float = 1.0
    weights: Weights = field(default_factory=Weights)
    mismatch: Mismatch = field(default_factory=Mismatch)
    nodes: Nodes = field(default_factory=Nodes)
    synapses: Synapses = field(default_factory=Synapses)
    cells: Cells = field(default_factory=Cells)
    loss: Loss = field(default_factory=Loss)
    noise: Noise = field(default_factory=Noise)
    rails: Rails = field(default_factory=Rails)
    readout: Readout = field(default_factory=Readout)
    curves: dict[str, Curve] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.unit_V > 0, "unit_V", f"must be > 0, got {self.unit_V}")

    def features(self) -> tuple[str, ...]:
        """Names of the non-idealities that are on (empty: the ideal network)."""
        on = []
        if self.weights.bits is not None:
            on.append("weights")
        if self.mismatch.sigma_total > 0:
            on.append("mismatch")
        if self.nodes.r_sigma > 0 or self.nodes.c_sigma > 0:
            on.append("nodes")
        if not self.synapses.ideal:
            on.append("synapses")
        if not self.cells.ideal or self.curves:  # measured curves are cells too
            on.append("cells")
        lo = self.loss
        if lo.beta_gain != 0 or lo.beta_gain_sigma > 0 or lo.offset != 0 or lo.offset_sigma > 0:
            on.append("loss")
        if self.noise.sigma_V > 0:
            on.append("noise")
        if self.rails.v_V is not None:
            on.append("rails")
        if self.readout.adc_bits is not None:
            on.append("readout")
        return tuple(on)

    @property
    def ideal(self) -> bool:
        """Whether every non-ideality is off."""
        return not self.features()

    def replace(self, **dotted: Any) -> "Hardware":
        """A copy with values set by dotted names (``"mismatch.sigma": 0.1``)."""
        return hardware_from_mapping(_nest(self.as_dict(), dotted), where="(override)")

    def as_dict(self) -> dict[str, Any]:
        """The model as a nested, TOML-shaped dict."""
        return dataclasses.asdict(self)

    def draw_instance(self, system: Any, seed: int) -> Any:
        """``system`` as one device instance of this model, drawn from ``seed``
        (:func:`hwbp.hardware.realize`)."""
        return realize(system, self, seed)

    def instance_section(self, system: Any, physical: Any, nominal: Any, outputs: np.ndarray, batch: Any,
                         seed: int) -> dict[str, Any]:
        """The ``hardware`` section of a verification report: the instance's gradients
        (``physical``) against the nominal network's and its own forward network's
        (:func:`hwbp.hardware.compare.instance_report`), the features, seed and model."""
        section = instance_report(system, physical, nominal, instance_gradients(system, batch), outputs, batch)
        section.update(features=list(self.features()), seed=seed, model=self.as_dict())
        return section


_TYPES = {"weights": Weights, "mismatch": Mismatch, "nodes": Nodes, "synapses": Synapses, "cells": Cells,
          "loss": Loss, "noise": Noise, "rails": Rails, "readout": Readout}


def _nest(base: dict, dotted: Mapping[str, Any]) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in dotted.items():
        parts = key.split(".")
        if len(parts) == 1:
            out[key] = value
        elif len(parts) == 2 and isinstance(out.get(parts[0]), dict):
            out[parts[0]][parts[1]] = value
        else:
            raise ConfigError(f"hardware: unknown parameter {key!r}; valid sections: unit_V, {', '.join(_TYPES)}")
    return out


def _section(cls: type, values: Any, name: str, where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"hardware {where}: [{name}] must be a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"hardware {where}: [{name}] has no key {unknown[0]!r}; valid: {', '.join(known)}")
    clean = {}
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, str)) and v is not None:
            raise ConfigError(f"hardware {where}: [{name}] {k} must be a number or string, got {v!r}")
        if k in ("bits", "adc_bits"):
            if v is not None and not (isinstance(v, int) or isinstance(v, float) and float(v).is_integer()):
                raise ConfigError(f"hardware {where}: [{name}] {k} must be an integer, got {v!r}")
            v = None if v is None else int(v)
        elif k not in ("scale", "gate") and v is not None:
            if not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ConfigError(f"hardware {where}: [{name}] {k} must be a finite number, got {v!r}")
            v = float(v)
        clean[k] = v
    return cls(**clean)


def hardware_from_mapping(data: Mapping[str, Any], *, where: str = "") -> Hardware:
    """A :class:`Hardware` from a TOML-shaped mapping (unknown keys are errors)."""
    unknown = sorted(set(data) - set(_TYPES) - {"unit_V", "curves"})
    if unknown:
        raise ConfigError(f"hardware {where}: unknown section {unknown[0]!r}; valid: unit_V, "
                          f"{', '.join(_TYPES)}, curves")
    kw: dict[str, Any] = {name: _section(cls, data[name], name, where) for name, cls in _TYPES.items() if name in data}
    if "curves" in data:
        if not isinstance(data["curves"], Mapping):
            raise ConfigError(f"hardware {where}: [curves] must hold one table per activation ([curves.tanh])")
        kw["curves"] = {k: curve_from_mapping(k, dict(v) if isinstance(v, Mapping) else v, where)
                        for k, v in data["curves"].items()}
    if "unit_V" in data:
        u = data["unit_V"]
        if isinstance(u, bool) or not isinstance(u, (int, float)):
            raise ConfigError(f"hardware {where}: unit_V must be a number, got {u!r}")
        kw["unit_V"] = float(u)
    return Hardware(**kw)


def load_hardware(path: str | os.PathLike) -> Hardware:
    """Read a hardware model from a TOML file (an empty file is the ideal network)."""
    from hwbp.io import read_toml

    p = Path(path)
    data = read_toml(p, "hardware file")
    return hardware_from_mapping(data, where=str(p))
