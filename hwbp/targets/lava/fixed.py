"""Fixed-point precision: quantization of a system into the integers of the
``fixed_pt`` ProcessModels, and a plain numpy model of the same integer arithmetic.

The arithmetic (every rounding rule) is documented in
:mod:`hwbp.targets.lava.lavaproc.fixed_models`; :func:`numpy_model` runs the whole
network synchronously in numpy with those integer operations, one unit step after the
other, and must equal what the Lava processes compute, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwbp.ir.activations import get_activation
from hwbp.lower.system import DynamicsSystem
from hwbp.state import State
from hwbp.targets.lava.compat import import_lava
from hwbp.types import Batch

__all__ = ["FixedFormat", "quantize_weight", "fixed_spec", "numpy_model", "run_fixed"]


def quantize_weight(w: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """``(W_int, exp)`` with ``W ~ W_int * 2**exp``: the smallest exponent whose
    ``bits``-bit range holds ``max |W|``; ``W_int = rint(W / 2**exp)`` (nearest, ties to
    even), saturated."""
    top = (1 << (bits - 1)) - 1
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    exp = int(np.ceil(np.log2(peak / top))) if peak > 0 else 0
    q = np.clip(np.rint(np.asarray(w, dtype=np.float64) * 2.0 ** -exp), -top - 1, top).astype(np.int64)
    return q, exp


def _table(fn, S: int, lo: float, hi: float) -> np.ndarray:
    from hwbp.targets.lava.lavaproc.fixed_models import LUT_FRAC

    x = np.arange(int(round(lo * 2 ** LUT_FRAC)), int(round(hi * 2 ** LUT_FRAC)) + 1) / 2.0 ** LUT_FRAC
    return np.rint(fn(x) * 2.0 ** S).astype(np.int64)


@dataclass
class FixedFormat:
    """The integer format of one system: bit widths, scales, quantized parameters.

    Attributes
    ----------
    state_bits, payload_bits, weight_bits : int
        Widths (sign included).
    S : int
        Fraction bits of state values (``state_bits - 8``).
    shift : int
        Low bits a payload drops (``state_bits - payload_bits``).
    dt_int, beta_int : int
        ``rint(dt 4096)``, ``rint(beta 4096)``.
    weight, bias, exp : dict
        Per term ``(population, k)``: ``W_int``, bias integers, weight exponent
        (``W_int * 2**exp ~ g W``: the term's fixed gain folded in).
    term_params, pop_params : dict
        Process parameters of the fixed-point models (tables included).
    """

    state_bits: int
    payload_bits: int
    weight_bits: int
    S: int
    shift: int
    dt_int: int
    beta_int: int
    weight: dict = field(default_factory=dict)
    bias: dict = field(default_factory=dict)
    exp: dict = field(default_factory=dict)
    term_params: dict = field(default_factory=dict)
    pop_params: dict = field(default_factory=dict)

    @classmethod
    def for_system(cls, system: DynamicsSystem, opts: Any) -> "FixedFormat":
        """Quantize ``system`` with ``opts`` (``state_bits``, ``payload_bits``,
        ``weight_bits``, ``step``)."""
        import_lava()
        from hwbp.targets.lava.lavaproc.fixed_models import DECAY_BITS, LUT_RANGE
        from hwbp.targets.lava.lavaproc.processes import ACTIVATION_CODES, LOSS_CODES

        S = opts.state_bits - 8
        payload = opts.state_bits if opts.payload_bits is None else opts.payload_bits
        fmt = cls(opts.state_bits, payload, opts.weight_bits, S, opts.state_bits - payload,
                  int(np.rint(opts.step * 2 ** DECAY_BITS)), int(np.rint(system.beta * 2 ** DECAY_BITS)))
        common = {"S": S, "state_bits": fmt.state_bits, "payload_bits": fmt.payload_bits, "shift": fmt.shift}
        lut_exp = _table(np.exp, S, -LUT_RANGE, 0)  # the same table for every population
        for p in system.populations:
            is_loss = p.name == system.loss.population
            fmt.pop_params[p.name] = {**common, "loss": LOSS_CODES.index(system.loss.function) if is_loss else 0,
                                      "dt_int": fmt.dt_int, "beta_int": fmt.beta_int,
                                      "lut_exp": lut_exp}
            for k, t in enumerate(p.terms):
                key = (p.name, k)
                if t.weight is not None:  # the fixed gain is folded into the weight (rule 3)
                    w = np.asarray(system.parameters[t.weight], dtype=np.float64)
                    fmt.weight[key], fmt.exp[key] = quantize_weight(w if t.gain == 1.0 else t.gain * w,
                                                                    opts.weight_bits)
                else:
                    fmt.weight[key], fmt.exp[key] = None, 0
                fmt.bias[key] = None if t.bias is None else fmt.to_int(system.parameters[t.bias])
                fn = get_activation(t.activation)
                fmt.term_params[key] = {
                    **common, "act": ACTIVATION_CODES.index(t.activation), "k": -(fmt.exp[key] + fmt.shift),
                    "alpha_int": int(np.rint(t.alpha * 2 ** S)),
                    "lut_f": _table(lambda x: fn.f(x, t.alpha), S, -LUT_RANGE, LUT_RANGE),
                    "lut_d": _table(lambda x: fn.df(x, fn.f(x, t.alpha), t.alpha), S, -LUT_RANGE, LUT_RANGE)}
                if t.source_activation != "identity":  # rule 9
                    phi, sa = get_activation(t.source_activation), t.source_alpha
                    fmt.term_params[key].update({
                        "src_act": ACTIVATION_CODES.index(t.source_activation),
                        "src_alpha_int": int(np.rint(sa * 2 ** S)),
                        "lut_sf": _table(lambda x: phi.f(x, sa), S, -LUT_RANGE, LUT_RANGE),
                        "lut_sd": _table(lambda x: phi.df(x, phi.f(x, sa), sa), S, -LUT_RANGE, LUT_RANGE)})
        return fmt

    def to_int(self, x: np.ndarray) -> np.ndarray:
        """State integers of float values (nearest, ties to even; saturated)."""
        top = (1 << (self.state_bits - 1)) - 1
        return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 2.0 ** self.S), -top - 1, top).astype(np.int64)

    def to_float(self, q: np.ndarray) -> np.ndarray:
        """Float values of state integers."""
        return np.asarray(q, dtype=np.float64) * 2.0 ** -self.S


def fixed_spec(fmt: FixedFormat, system: DynamicsSystem, batch: Batch, start: State, steps: int):
    """The integer values of every process (a :class:`~hwbp.targets.lava.network.NetworkSpec`)."""
    from hwbp.targets.lava.network import NetworkSpec

    spec = NetworkSpec(inputs={i.name: fmt.to_int(batch.x[i.name]) for i in system.inputs},
                       input_params={"shift": fmt.shift, "payload_bits": fmt.payload_bits})
    for p in system.populations:
        spec.mean[p.name] = fmt.to_int(start.mean[p.name])
        spec.tension[p.name] = fmt.to_int(start.tension[p.name])
        is_loss = p.name == system.loss.population
        spec.target[p.name] = fmt.to_int(batch.y) if is_loss else np.zeros_like(spec.mean[p.name])
        spec.pop_params[p.name] = {**fmt.pop_params[p.name], "n_steps": steps}
        for k in range(len(p.terms)):
            key = (p.name, k)
            spec.weight[key], spec.bias[key] = fmt.weight[key], fmt.bias[key]
            spec.term_params[key] = fmt.term_params[key]
    return spec


def numpy_model(fmt: FixedFormat, system: DynamicsSystem, batch: Batch, start: State, steps: int
                ) -> tuple[dict, dict, dict]:
    """The integer dynamics in plain numpy, synchronously: ``steps`` unit steps, then the
    gate signals of the final state.  Returns integer ``(means, tensions, gates)``."""
    import_lava()
    from hwbp.targets.lava.lavaproc.fixed_models import (act_fixed, from_payload, gate, leak, loss_fixed,
                                                         saturate, source_fixed, source_gate, synapse, to_payload)

    spec = fixed_spec(fmt, system, batch, start, steps)
    sb, sh, pb, S = fmt.state_bits, fmt.shift, fmt.payload_bits, fmt.S
    mean, tens = dict(spec.mean), dict(spec.tension)
    gates: dict = {}
    for step in range(steps + 1):
        x_msg = {n: to_payload(v, sh, pb) for n, v in {**spec.inputs, **mean}.items()}
        t_msg = {n: to_payload(v, sh, pb) for n, v in tens.items()}
        fwd = {n: np.zeros_like(v) for n, v in mean.items()}
        bwd = {n: np.zeros_like(v) for n, v in mean.items()}
        for p in system.populations:
            for k, t in enumerate(p.terms):
                key, prm = (p.name, k), spec.term_params[(p.name, k)]
                W = spec.weight[key]
                u, dphi = source_fixed(x_msg[t.source], prm)
                a = synapse(u @ W.T, prm["k"], sb, spec.bias[key]) if W is not None else from_payload(u, sh, sb)
                y, d = act_fixed(prm["act"], a, prm)
                fwd[p.name] = fwd[p.name] + to_payload(y, sh, pb)
                e = gate(d, t_msg[p.name], S, sh, sb)
                if W is not None:
                    gates[key] = e
                e_msg = to_payload(e, sh, pb)
                if t.source in bwd:
                    bwd[t.source] = bwd[t.source] + (source_gate(synapse(e_msg @ W, prm["k"], sb), dphi, prm)
                                                     if W is not None else e_msg)
        if step == steps:
            break
        for p in system.populations:
            prm = spec.pop_params[p.name]
            drive, back = from_payload(fwd[p.name], sh, sb), from_payload(bwd[p.name], sh, sb)
            if prm["loss"]:
                back = saturate(back + loss_fixed(prm["loss"], mean[p.name], spec.target[p.name], prm), sb)
            mean[p.name] = leak(mean[p.name], drive, fmt.dt_int, sb)
            tens[p.name] = leak(tens[p.name], back, fmt.dt_int, sb)
    return mean, tens, gates


def run_fixed(fmt: FixedFormat, system: DynamicsSystem, batch: Batch, start: State, steps: int, dt: float,
              timeout_s: float, *, raw: bool = False) -> Any:
    """Run the fixed-point Lava models on the Lava runtime this job keeps
    (:mod:`hwbp.targets.lava.session`); a :class:`State` in float units (``raw``: the
    integer ``(means, tensions, gates)`` as read from the processes)."""
    import_lava()
    from hwbp.targets.lava.topology import term_table
    from hwbp.targets.lava.lavaproc.fused import FUSED_FIXED_MODELS
    from hwbp.targets.lava.session import run_session

    means, tens, gates = run_session(term_table(system), fixed_spec(fmt, system, batch, start, steps), "fixed_pt",
                                     FUSED_FIXED_MODELS, timeout_s)
    means = {n: np.asarray(v).astype(np.int64) for n, v in means.items()}
    tens = {n: np.asarray(v).astype(np.int64) for n, v in tens.items()}
    gates = {k: np.asarray(v).astype(np.int64) for k, v in gates.items()}
    if raw:
        return means, tens, gates
    f = fmt.to_float
    return State({n: f(v) for n, v in means.items()}, {n: f(v) for n, v in tens.items()}, steps * dt, steps,
                 {k: f(v) for k, v in gates.items()})
