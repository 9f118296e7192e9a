"""Loihi-like fixed-point ProcessModels (tag ``fixed_pt``) and their integer arithmetic.

Imports only numpy and lava; no side effects at import.  Every quantity is an integer
(int64 containers) with a fixed binary point:

* state (mean, tension, pre-activation ``a``, ``f(a)``, ``f'(a)``, gate ``e``):
  ``state_bits`` bits (sign included), value ``= int * 2**-S`` with ``S = state_bits - 8``
  fraction bits (7 integer bits: range about +-128);
* graded-spike payloads (every message): the state with its ``shift = state_bits -
  payload_bits`` lowest bits dropped, saturated to ``payload_bits`` bits;
* weights: ``weight_bits``-bit integers with one shared exponent per weight tensor,
  ``W ~ W_int * 2**exp``; biases are state integers.  A term's fixed gain ``g`` is
  folded into its weight before quantization (``W_int * 2**exp ~ g W``), so the
  synapses compute ``g W φ(u)`` and ``g Wᵀ e`` with no separate multiplication.

Rounding and saturation rules (all of them):

1. :func:`round_shift` ``(x, k)``: ``k > 0``: ``(x + 2**(k-1)) >> k`` (nearest, ties
   toward +inf, arithmetic shift); ``k <= 0``: ``x << -k`` (exact).
2. :func:`saturate` ``(x, bits)``: clip to ``[-2**(bits-1), 2**(bits-1) - 1]``; applied
   to every state value after each operation that produces one, and to every payload.
3. Synaptic sums ``sum_j W_int u_msg`` are exact in int64, then brought to state scale by
   ``round_shift(acc, -(exp + shift))``, the bias added, the result saturated.
4. ``f`` and ``f'`` (tanh, sigmoid, softplus): piecewise-linear tables on a grid of step
   ``2**-LUT_FRAC`` over ``[-LUT_RANGE, LUT_RANGE]`` (entries ``rint(f(x_i) 2**S)``), the
   segment's slope applied by ``round_shift((F[i+1]-F[i]) r, S - LUT_FRAC)``; ``a`` is
   clamped to the grid (softplus above it: ``f = a``, ``f' = 1``).  identity, relu,
   leaky_relu are exact integer maps (leaky slope ``rint(alpha 2**S)``, product rounded
   by rule 1); ``f'`` at a kink follows the float models (relu'(0) = 0).
5. Gate ``e = round_shift(fprime * T_msg, S - shift)`` (state scale, saturated).
6. Leak (decay): ``x += round_shift(dt_int (drive - x), 12)`` with ``dt_int =
   rint(dt 4096)``; ``dt = 1`` gives ``x = drive`` exactly.
7. Loss: mse ``round_shift(beta_int (mean - target), 12)`` with ``beta_int = rint(beta
   4096)``; ce: ``exp(z)`` for ``z = mean - max(mean) <= 0`` from a table over
   ``[-LUT_RANGE, 0]`` as in rule 4 (0 below), ``p = (E << S) // sum(E)`` (floor), then
   ``beta`` as for mse on ``p - target``.
8. On-chip learning (terms with ``learn``; at the last step of a block, see
   :mod:`.processes`): ``acc = sum_rows e ⊗ u_msg`` exact (``u_msg`` the payload of
   ``φ(u)``, rule 9), ``num = eta_int * round_shift(acc, S)`` with ``eta_int = rint(lr
   g**2 / batch * 2**eta_bits)`` (``g**2``: the gain is folded into ``W_int``, so its
   update is ``g`` times ``g e φ(u)ᵀ``; ``eta_bits = ETA_BITS`` for ``|g| >= 1``, and
   ``2 ceil(-log2 |g|)`` more below, keeping the rate's relative resolution), then
   ``dW_int = (num + r) >> K`` with ``K = eta_bits + S - shift + exp`` and ``r`` uniform
   in ``[0, 2**K)`` (stochastic rounding: unbiased, so updates far below one weight LSB
   still act on average) from ``numpy.random.default_rng(seed)`` of that term; ``W_int
   -= dW_int`` saturated to ``weight_bits``; the bias likewise with
   ``eta_int * sum_rows e`` and ``K = eta_bits`` (drawn after the weight's) with
   ``eta_int`` of ``lr / batch`` at ``eta_bits`` (the bias has no gain).
9. Source-side activation ``φ`` (process parameter ``src_act``, tables ``lut_sf``,
   ``lut_sd``, slope ``src_alpha_int``): the received payload ``u_msg`` is brought to
   state scale, ``φ(u)`` and ``φ'(u)`` evaluated as in rule 4, the synapses read the
   payload of ``φ(u)``; the backward sum (rule 3, state scale) is gated on the source
   side by ``round_shift(φ'(u) * back, S)`` (saturated) before it is sent.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from .processes import ACTIVATION_CODES, InputProcess, PopulationProcess, TermProcess, block_of, host_flags

__all__ = ["LUT_FRAC", "LUT_RANGE", "DECAY_BITS", "ETA_BITS", "stochastic_update", "learn_fixed", "round_shift",
           "saturate", "to_payload", "from_payload", "pwl", "act_fixed", "source_fixed", "source_gate", "synapse",
           "gate", "loss_fixed", "leak", "term_forward_fixed", "term_backward_fixed", "PyInputFixed", "PyPopulationFixed", "PyTermFixed", "FIXED_MODELS"]

# the clip ufunc itself: numpy.clip's wrapper costs several times the clipping of a
# small array (the same ufunc, the same integers)
_clip = np._core.umath.clip if int(np.__version__.split(".")[0]) >= 2 else np.core.umath.clip

#: Fraction bits of the grid of the piecewise-linear tables (step 1/32).
LUT_FRAC = 5
#: Half-width of the tables' domain (units of the argument).
LUT_RANGE = 16
#: Fraction bits of the decay ``dt`` and of ``beta``.
DECAY_BITS = 12
#: Fraction bits of the on-chip learning rate per sample.
ETA_BITS = 24


def stochastic_update(q: np.ndarray, num: np.ndarray, K: int, rng: np.random.Generator, bits: int) -> np.ndarray:
    """``q - floor((num + r) / 2**K)`` with ``r`` uniform in ``[0, 2**K)`` (rule 8), saturated."""
    if K <= 0:
        return saturate(q - (num << np.int64(-K)), bits)
    r = rng.integers(0, 1 << K, size=num.shape, dtype=np.int64)
    return saturate(q - ((num + r) >> np.int64(K)), bits)


def learn_fixed(weight: np.ndarray, bias: np.ndarray, e: np.ndarray, u_msg: np.ndarray, p: dict,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """New ``(W_int, b_int)`` after one on-chip update (rule 8)."""
    S, bits = p["S"], p.get("eta_bits", ETA_BITS)
    num_w = p["eta_int"] * round_shift(e.T @ u_msg, S)
    w = stochastic_update(weight, num_w, bits + S - p["shift"] + p["exp"], rng, p["weight_bits"])
    if not p["has_bias"]:
        return w, bias
    b = stochastic_update(bias, p.get("eta_bias_int", p["eta_int"]) * e.sum(axis=0), bits, rng, p["state_bits"])
    return w, b


def round_shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x * 2**-k`` rounded to nearest, ties toward +inf (``k <= 0``: exact left shift)."""
    x = np.asarray(x, dtype=np.int64)
    if k <= 0:
        return x << np.int64(-k)
    return (x + np.int64(1 << (k - 1))) >> np.int64(k)


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """Clip to the range of a signed ``bits``-bit integer."""
    hi = (1 << (bits - 1)) - 1
    return _clip(np.asarray(x, dtype=np.int64), -hi - 1, hi)


def to_payload(x: np.ndarray, shift: int, payload_bits: int) -> np.ndarray:
    """Graded-spike payload of a state value: ``shift`` low bits dropped (rule 1), saturated."""
    return saturate(round_shift(x, shift), payload_bits)


def from_payload(m: np.ndarray, shift: int, state_bits: int) -> np.ndarray:
    """State value of a (summed) payload."""
    return saturate(round_shift(m, -shift), state_bits)


def pwl(table: np.ndarray, x: np.ndarray, S: int) -> np.ndarray:
    """Piecewise-linear lookup (rule 4) of state-scale ``x`` in ``table`` over
    ``[-LUT_RANGE, LUT_RANGE]`` (``table`` has ``2 * LUT_RANGE * 2**LUT_FRAC + 1`` entries)."""
    step = S - LUT_FRAC
    lo = -LUT_RANGE << S
    last = len(table) - 1
    off = _clip(np.asarray(x, dtype=np.int64) - lo, 0, last << step)
    i = np.minimum(off >> step, last - 1)
    r = off - (i << step)
    return table[i] + round_shift((table[i + 1] - table[i]) * r, step)


def act_fixed(code: int, a: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(f(a), f'(a))`` in state integers (rule 4); ``p`` holds ``S``, ``state_bits``,
    ``alpha_int`` and the tables ``lut_f``, ``lut_d``."""
    S, one = p["S"], np.int64(1) << np.int64(p["S"])
    name = ACTIVATION_CODES[code]
    if name == "identity":
        return a, np.full_like(a, one)
    if name == "relu":
        return np.maximum(a, 0), np.where(a > 0, one, 0).astype(np.int64)
    if name == "leaky_relu":
        k = p["alpha_int"]
        return np.where(a > 0, a, round_shift(k * a, S)), np.where(a > 0, one, k).astype(np.int64)
    y, d = pwl(p["lut_f"], a, S), pwl(p["lut_d"], a, S)
    if name == "softplus":
        top = a >= (LUT_RANGE << S)
        y, d = np.where(top, a, y), np.where(top, one, d)
    return saturate(y, p["state_bits"]), saturate(d, p["state_bits"])


def source_fixed(u_msg: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """``(payload of φ(u), φ'(u))`` of a received payload ``u_msg`` (rule 9); without a
    source-side activation (``src_act`` 0) ``(u_msg, None)``."""
    code = p.get("src_act", 0)
    if not code:
        return u_msg, None
    sb, sh = p["state_bits"], p["shift"]
    q = {"S": p["S"], "state_bits": sb, "alpha_int": p["src_alpha_int"], "lut_f": p.get("lut_sf"),
         "lut_d": p.get("lut_sd")}
    phi, dphi = act_fixed(code, from_payload(u_msg, sh, sb), q)
    return to_payload(phi, sh, p["payload_bits"]), dphi


def source_gate(back: np.ndarray, dphi: np.ndarray | None, p: dict) -> np.ndarray:
    """The backward sum (state scale) gated by ``φ'(u)`` (rule 9), as a payload."""
    if dphi is not None:
        back = saturate(round_shift(dphi * back, p["S"]), p["state_bits"])
    return to_payload(back, p["shift"], p["payload_bits"])


def synapse(acc: np.ndarray, k: int, state_bits: int, bias: np.ndarray | None = None) -> np.ndarray:
    """An exact int64 synaptic sum brought to state scale (rule 3), plus ``bias``."""
    a = round_shift(acc, k)
    if bias is not None:
        a = a + bias
    return saturate(a, state_bits)


def gate(fprime: np.ndarray, t_msg: np.ndarray, S: int, shift: int, state_bits: int) -> np.ndarray:
    """Gated sensitivity ``e = f'(a) ⊙ T`` in state integers (rule 5)."""
    return saturate(round_shift(fprime * t_msg, S - shift), state_bits)


def loss_fixed(code: int, mean: np.ndarray, target: np.ndarray, p: dict) -> np.ndarray:
    """``beta * grad l(mean)`` in state integers (rule 7); ``code``: 1 mse, 2 ce."""
    if code == 1:
        diff = mean - target
    else:
        z = mean - mean.max(axis=-1, keepdims=True)
        E = np.where(z < -(LUT_RANGE << p["S"]), 0, pwl(p["lut_exp"], z, p["S"]))
        diff = (E << np.int64(p["S"])) // np.maximum(E.sum(axis=-1, keepdims=True), 1) - target
    return saturate(round_shift(p["beta_int"] * diff, DECAY_BITS), p["state_bits"])


def leak(x: np.ndarray, drive: np.ndarray, dt_int: int, state_bits: int) -> np.ndarray:
    """One step of the decay (rule 6)."""
    return saturate(x + round_shift(dt_int * (drive - x), DECAY_BITS), state_bits)


def term_forward_fixed(p: dict, weight: np.ndarray, bias: np.ndarray, u_msg: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Forward half of an integer term's step for the received payload ``u_msg``:
    ``(payload of f(a), f'(a), payload of φ(u), φ'(u))`` (rules 9, 3, 4)."""
    sb, sh = p["state_bits"], p["shift"]
    u, dphi = source_fixed(u_msg, p)
    if p["has_weight"]:
        a = synapse(u @ weight.T, p["k"], sb, bias)
    else:
        a = from_payload(u, sh, sb)
    y, d = act_fixed(p["act"], a, p)
    return to_payload(y, sh, p["payload_bits"]), d, u, dphi


def term_backward_fixed(p: dict, weight: np.ndarray, e: np.ndarray, dphi: np.ndarray | None) -> np.ndarray:
    """Backward half of an integer term's step: the payload of ``φ'(u) ⊙ W_intᵀ e``
    (rules 3, 9; the payload of ``e`` for an unweighted term)."""
    e_msg = to_payload(e, p["shift"], p["payload_bits"])
    if p["has_weight"]:
        return source_gate(synapse(e_msg @ weight, p["k"], p["state_bits"]), dphi, p)
    return e_msg


# ----------------------------------------------------------------- models
@implements(proc=InputProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyInputFixed(PyLoihiProcessModel):
    """Sends the clamped input (state integers) as payloads."""

    x: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)
    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)

    def run_spk(self) -> None:
        p = self.proc_params
        if host_flags(p, self.time_step)[0]:
            self.x[:] = self.host_in.recv()
        x = self.x if self.x.ndim == 2 else self.x[block_of(self.time_step, p["period"])[0]]
        self.x_out.send(to_payload(x, p["shift"], p["payload_bits"]))


@implements(proc=PopulationProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyPopulationFixed(PyLoihiProcessModel):
    """Integer population: payloads of mean and tension out, summed payloads in, loss
    (rule 7), decay (rule 6); holds the state after ``n_steps``."""

    mean: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    tension: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    target: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)
    t_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)
    fwd_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    bwd_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)

    def run_spk(self) -> None:
        p = self.proc_params
        sb, sh, pb = p["state_bits"], p["shift"], p["payload_bits"]
        block, local = block_of(self.time_step, p.get("period", p["n_steps"] + 1))
        first, last = host_flags(p, self.time_step)
        if first:  # host I/O: this block's start state and target
            self.mean[:], self.tension[:], self.target[:] = self.host_in.recv()
        elif local == 0 and block > 0:  # a new block (mini-batch): reset
            self.mean[:] = 0
            self.tension[:] = 0
        self.x_out.send(to_payload(self.mean, sh, pb))
        self.t_out.send(to_payload(self.tension, sh, pb))
        drive = from_payload(self.fwd_in.recv(), sh, sb)
        back = from_payload(self.bwd_in.recv(), sh, sb)
        if p["loss"]:
            target = self.target if self.target.ndim == 2 else self.target[block]
            back = saturate(back + loss_fixed(p["loss"], self.mean, target, p), sb)
        if last:
            self.host_out.send(np.stack([self.mean, self.tension]))
        if local >= p["n_steps"]:
            return
        self.mean[:] = leak(self.mean, drive, p["dt_int"], sb)
        self.tension[:] = leak(self.tension, back, p["dt_int"], sb)


@implements(proc=TermProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTermFixed(PyLoihiProcessModel):
    """Integer term: ``φ(u)`` (rule 9), ``a`` (rule 3), ``f(a)`` and ``f'(a)`` (rule 4),
    payload of ``f(a)`` out; gate ``e`` (rule 5); payload of ``φ'(u) ⊙ W_intᵀ e``
    (rules 3, 9) out."""

    weight: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    e: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    y_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)
    t_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    g_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)
    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)

    def run_spk(self) -> None:
        p = self.proc_params
        sb, sh, S = p["state_bits"], p["shift"], p["S"]
        first, last = host_flags(p, self.time_step)
        if first:  # host I/O: this block's [W_int | b]
            wb = self.host_in.recv()
            self.weight[:], self.bias[:] = wb[:, :-1], wb[:, -1]
        y_msg, d, u, dphi = term_forward_fixed(p, self.weight, self.bias, self.u_in.recv())
        self.y_out.send(y_msg)
        self.e[:] = gate(d, self.t_in.recv(), S, sh, sb)
        if last:
            self.host_out.send(self.e)
        self.g_out.send(term_backward_fixed(p, self.weight, self.e, dphi))
        if p.get("learn") and block_of(self.time_step, p["period"])[1] == p["period"] - 1:
            if not hasattr(self, "_rng"):
                self._rng = np.random.default_rng(p["seed"])
            self.weight[:], self.bias[:] = learn_fixed(self.weight, self.bias, self.e, u, p, self._rng)


#: Process -> fixed-point model (``exception_proc_model_map`` of the run configuration).
FIXED_MODELS = {InputProcess: PyInputFixed, PopulationProcess: PyPopulationFixed, TermProcess: PyTermFixed}
