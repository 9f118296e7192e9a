"""One device instance: the random draws of a :class:`~hwbp.hardware.Hardware` model,
attached to a :class:`~hwbp.lower.DynamicsSystem` as its ``instance``.

The instance keeps the *draws* (device multipliers ``exp(sigma z)``, cell errors, node
R and C factors), not realized weights: :meth:`DeviceInstance.device_weights` maps the
trained (nominal) parameter onto the forward and the backward device of each use, so
the parameter stays one and training on the instance (circuit in the loop) sees the
same devices at every step.  The ideal system (``instance is None``) stays exactly
tied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from hwbp.errors import ConfigError
from hwbp.hardware.curves import CellModel
from hwbp.hardware.dynamics import InstanceDevices, quantize_readout
from hwbp.lower.system import DynamicsSystem, as_dense

if TYPE_CHECKING:  # the model draws its instances with realize() (hwbp.hardware.model imports this module)
    from hwbp.hardware.model import Hardware

__all__ = ["DeviceInstance", "TermDraws", "NodeDraws", "realize", "quantize_readout", "readout_result"]

Key = tuple[str, int]


@dataclass(frozen=True, eq=False)
class TermDraws:
    """Draws of one weighted term ``(population, term index)``.

    ``fwd_plus``/``fwd_minus`` and ``bwd_plus``/``bwd_minus``: conductance multipliers
    ``exp(sigma z)`` of the two devices of each forward and backward synapse, shape of W;
    ``bias_plus``/``bias_minus``: of the bias devices; ``f_gain``, ``f_offset``,
    ``df_gain``, ``df_offset``: per-neuron cell errors (``(1 + gain) f + offset``), or None
    for an identity term (a wire); ``activation``: the term's activation name;
    ``pair_offset``: the pair gate's offset per neuron (units), or None; ``pair_slope``: the
    gain difference of the pair gate's two f copies per neuron, or None; ``offset_fwd``,
    ``offset_bwd``: each synapse's forward and backward output offset in units of the
    network's full-scale weight (shape of W, zero where a structured term has no
    synapse), or None when the synapses have no offset."""

    fwd_plus: np.ndarray
    fwd_minus: np.ndarray
    bwd_plus: np.ndarray
    bwd_minus: np.ndarray
    bias_plus: np.ndarray | None
    bias_minus: np.ndarray | None
    f_gain: np.ndarray | None
    f_offset: np.ndarray | None
    df_gain: np.ndarray | None
    df_offset: np.ndarray | None
    activation: str = ""
    pair_offset: np.ndarray | None = None
    pair_slope: np.ndarray | None = None
    offset_fwd: np.ndarray | None = None
    offset_bwd: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class NodeDraws:
    """Per-neuron resistor factors ``r±`` (node gain ``R_actual / R``) and capacitor
    factors ``c±`` of the ``x+`` and ``x-`` node of each neuron of a population."""

    r_plus: np.ndarray
    r_minus: np.ndarray
    c_plus: np.ndarray
    c_minus: np.ndarray


def _split(w: np.ndarray, scale: np.ndarray, hw: Hardware) -> tuple[np.ndarray, np.ndarray, float]:
    """Device conductances ``(G+, G-)`` (S) of weights ``w`` and the conductance span."""
    q = np.abs(w) / scale
    bits = hw.weights.bits
    if bits is not None:
        levels = 2 ** bits - 1
        q = np.round(np.minimum(q, 1.0) * levels) / levels
    g0, g1 = hw.weights.g_min_S, hw.weights.g_max_S
    on = g0 + q * (g1 - g0)
    pos = w >= 0
    return np.where(pos, on, g0), np.where(pos, g0, on), g1 - g0


def _full_scale(w: np.ndarray, mode: str) -> np.ndarray:
    if w.ndim == 2 and mode == "column":
        s = np.max(np.abs(w), axis=1, keepdims=True)
    else:
        s = np.asarray(np.max(np.abs(w))) if w.size else np.asarray(1.0)
    return np.where(s > 0, s, 1.0)


@dataclass(frozen=True, eq=False)
class DeviceInstance:
    """The non-idealities of one device instance, in normalized units.

    Attributes
    ----------
    hardware : Hardware
    seed : int
        The instance's seed (its draws and its noise).
    terms : Mapping[(str, int), TermDraws]
    nodes : Mapping[str, NodeDraws] or None
        None when node R and C are ideal.
    noise_rms : float
        Stationary rms of every node, in units (``sigma_V / unit_V``).
    rail : float or None
        Node clipping level in units (``v_V / unit_V``).
    adc_lsb, adc_range : float or None
        Readout quantum and full scale in units.
    loss_beta_gain : float
        The loss port's drawn gain error ``g`` (the nudge is ``beta (1 + g)``; 0: exact).
    loss_offset : numpy.ndarray or None
        The loss port's input offset per output neuron (units of ``x - y``), or None.
    synapse_scale : float
        The network's full-scale weight ``s`` (the largest ``|g w|`` of every weighted
        term when the instance was drawn), the unit of the synapse offsets.
    """

    hardware: Hardware
    seed: int
    terms: Mapping[Key, TermDraws]
    nodes: Mapping[str, NodeDraws] | None
    noise_rms: float
    rail: float | None
    adc_lsb: float | None
    adc_range: float | None
    loss_beta_gain: float = 0.0
    loss_offset: np.ndarray | None = None
    synapse_scale: float = 1.0

    def offsets(self, key: Key) -> tuple[np.ndarray, np.ndarray] | None:
        """``(forward, backward)`` offset drive of term ``key`` in units: per post-synaptic
        neuron ``s sum_j o_f[i, j]`` (out,) and per pre-synaptic neuron ``s sum_i o_b[i, j]``
        (in,), or None when its synapses have no offset."""
        d = self.terms[key]
        if d.offset_fwd is None:
            return None
        s = self.synapse_scale
        return s * d.offset_fwd.sum(axis=1), s * d.offset_bwd.sum(axis=0)

    def device_weights(self, key: Key, w: np.ndarray, b: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(W_forward, W_backward, b)`` as the devices of term ``key`` realize the
        nominal ``w`` (out, in) and ``b``: quantized, then each device's mismatch."""
        d = self.terms[key]
        hw = self.hardware
        w = as_dense(w)  # one device per entry of a structured term's matrix
        s = _full_scale(w, hw.weights.scale)
        gp, gm, span = _split(w, s, hw)
        wf = s * (gp * d.fwd_plus - gm * d.fwd_minus) / span
        wb = s * (gp * d.bwd_plus - gm * d.bwd_minus) / span
        bf = None
        if b is not None:
            sb = _full_scale(b, "tensor")
            bp, bm, _ = _split(b, sb, hw)
            bf = sb * (bp * d.bias_plus - bm * d.bias_minus) / span
        return wf, wb, bf

    def devices(self, names: list[str]) -> InstanceDevices:
        """The device part of the reference simulator's driver for this instance
        (populations ``names`` in the simulator's order)."""
        return InstanceDevices(self, names)

    def _measured(self, d: TermDraws) -> bool:
        """Whether a term's cells are a :class:`~hwbp.hardware.curves.CellModel` (a tabulated
        curve for its activation, or the pair gate) rather than a gain and an offset."""
        return d.f_gain is not None and (self.hardware.cells.gate == "pair" or d.activation in self.hardware.curves)

    def cell(self, key: Key) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``(1 + f_gain, f_offset, 1 + df_gain, df_offset)`` of term ``key``, or None
        (ideal cells, an identity term, or a term with a :meth:`curve`)."""
        d = self.terms[key]
        if d.f_gain is None or self.hardware.cells.ideal or self._measured(d):
            return None
        return 1.0 + d.f_gain, d.f_offset, 1.0 + d.df_gain, d.df_offset

    def curve(self, key: Key, fn: Any, param: Any) -> CellModel | None:
        """The cells of term ``key`` as a :class:`~hwbp.hardware.curves.CellModel` (its
        activation ``fn`` with parameter ``param`` where no curve is tabulated), or None
        when they are a gain and an offset (:meth:`cell`) or ideal."""
        d = self.terms[key]
        if not self._measured(d):
            return None
        return CellModel(curve=self.hardware.curves.get(d.activation), fn=fn, param=param, gain=1.0 + d.f_gain,
                         offset=d.f_offset, dgain=1.0 + d.df_gain, doffset=d.df_offset,
                         pair=self.hardware.cells.gate == "pair", pair_offset=d.pair_offset,
                         pair_slope=d.pair_slope)


def _network_scale(system: DynamicsSystem) -> float:
    """The largest ``|g w|`` over every weighted term (1.0 for a network without weights
    or with all weights zero): the full-scale weight of the chip's one weight range."""
    s = 0.0
    for pop in system.populations:
        for term in pop.terms:
            if term.weight is not None and system.parameters[term.weight].size:
                s = max(s, abs(float(term.gain)) * float(np.max(np.abs(system.parameters[term.weight]))))
    return s if s > 0 else 1.0


def realize(system: DynamicsSystem, hardware: Hardware, seed: int) -> DynamicsSystem:
    """``system`` as one device instance (drawn from ``seed``) computes it.

    An ideal ``hardware`` (every non-ideality off) returns ``system`` itself, so the
    result is bit for bit the ideal one.  Every instance draws the same standard
    normals for a given ``seed`` whatever the spreads, so a sweep over a spread varies
    one instance smoothly (common random numbers).

    Parameters
    ----------
    system : DynamicsSystem
        The lowered (nominal) system.
    hardware : Hardware
    seed : int
        Instance seed (>= 0).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"instance seed must be an integer >= 0, got {seed!r}")
    if hardware.ideal:
        return system
    rng = np.random.default_rng([int(seed), 0x4857])
    # draws added to the model later come from their own stream, so the draws above stay
    # those of earlier versions for the same seed
    rng_pair = np.random.default_rng([int(seed), 0x5041])
    rng_slope = np.random.default_rng([int(seed), 0x5053])
    rng_off = np.random.default_rng([int(seed), 0x534F])
    mm, cells, rho = hardware.mismatch, hardware.cells, hardware.mismatch.correlation
    syn = hardware.synapses
    sigma = mm.sigma_total
    terms: dict[Key, TermDraws] = {}
    for pop in system.populations:
        for k, term in enumerate(pop.terms):
            if term.weight is None:
                continue
            # one device per synapse: a structured term (a convolution) has one at every
            # position where its matrix has an entry, each drawn on its own
            shape = system.parameters[term.weight].shape if term.layout is None else term.layout.shape
            zf = rng.standard_normal((2, *shape))
            zb = rho * zf + np.sqrt(max(0.0, 1.0 - rho * rho)) * rng.standard_normal((2, *shape))
            zbias = rng.standard_normal((2, pop.size))
            zc = rng.standard_normal((4, pop.size))
            has_cell = term.activation != "identity"
            zp = rng_pair.standard_normal(pop.size)
            zq = rng_slope.standard_normal(pop.size)
            zo = rng_off.standard_normal((2, *shape))
            off_f = off_b = None
            if not syn.ideal:
                mask = 1.0 if term.layout is None else term.layout.mask().astype(np.float64)
                ro = syn.offset_correlation
                off_f = syn.offset_fwd_sigma * zo[0] * mask
                off_b = syn.offset_bwd_sigma * (ro * zo[0] + np.sqrt(max(0.0, 1.0 - ro * ro)) * zo[1]) * mask
            u = hardware.unit_V
            terms[(pop.name, k)] = TermDraws(
                fwd_plus=np.exp(sigma * zf[0]), fwd_minus=np.exp(sigma * zf[1]),
                bwd_plus=np.exp(sigma * zb[0]), bwd_minus=np.exp(sigma * zb[1]),
                bias_plus=np.exp(sigma * zbias[0]) if term.bias else None,
                bias_minus=np.exp(sigma * zbias[1]) if term.bias else None,
                f_gain=cells.f_gain + cells.f_gain_sigma * zc[0] if has_cell else None,
                f_offset=(cells.f_offset_V + cells.f_offset_sigma_V * zc[1]) / u if has_cell else None,
                df_gain=cells.df_gain + cells.df_gain_sigma * zc[2] if has_cell else None,
                df_offset=cells.df_offset + cells.df_offset_sigma * zc[3] if has_cell else None,
                activation=term.activation,
                pair_offset=cells.pair_offset_sigma * zp if has_cell and cells.pair_offset_sigma > 0 else None,
                pair_slope=cells.pair_slope_sigma * zq if has_cell and cells.pair_slope_sigma > 0 else None,
                offset_fwd=off_f, offset_bwd=off_b,
            )
    nodes = None
    nd = hardware.nodes
    draws = {p.name: rng.standard_normal((4, p.size)) for p in system.populations}
    if nd.r_sigma > 0 or nd.c_sigma > 0:
        nodes = {name: NodeDraws(np.exp(nd.r_sigma * z[0]), np.exp(nd.r_sigma * z[1]),
                                 np.exp(nd.c_sigma * z[2]), np.exp(nd.c_sigma * z[3])) for name, z in draws.items()}
    lo = hardware.loss
    # the loss port's gain: one draw per instance, from its own stream (earlier draws unchanged)
    loss_gain = lo.beta_gain + lo.beta_gain_sigma * float(np.random.default_rng([int(seed), 0x4C53]).standard_normal())
    loss_offset = None
    if lo.offset != 0 or lo.offset_sigma > 0:  # per output neuron, from its own stream
        n_out = system.population(system.loss.population).size
        loss_offset = lo.offset + lo.offset_sigma * np.random.default_rng([int(seed), 0x4C4F]).standard_normal(n_out)
    ro = hardware.readout
    rail = None if hardware.rails.v_V is None else hardware.rails.v_V / hardware.unit_V
    adc_range = ro.adc_range_V / hardware.unit_V
    real = DeviceInstance(
        hardware=hardware, seed=int(seed), terms=MappingProxyType(terms),
        nodes=None if nodes is None else MappingProxyType(nodes),
        noise_rms=hardware.noise.sigma_V / hardware.unit_V, rail=rail,
        adc_lsb=None if ro.adc_bits is None else 2 * adc_range / 2 ** ro.adc_bits,
        adc_range=None if ro.adc_bits is None else adc_range, loss_beta_gain=loss_gain, loss_offset=loss_offset,
        synapse_scale=_network_scale(system),
    )
    return replace(system, instance=real)


def readout_result(result, real: DeviceInstance):
    """A backend's :class:`~hwbp.state.SimulationResult` with its final tensions and
    gate signals as the instance's readout ADC reports them (the trace is kept raw)."""
    from dataclasses import replace as _replace

    st = result.state
    state = _replace(st, tension={k: quantize_readout(np.asarray(v), real) for k, v in st.tension.items()},
                     gates={k: quantize_readout(np.asarray(v), real) for k, v in st.gates.items()})
    return _replace(result, state=state)
