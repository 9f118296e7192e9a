"""Lava processes of the conjugate-pair dynamics, and their floating-point models.

This module imports only ``numpy`` and ``lava`` (``hwbp compile --target lava`` copies
it next to the emitted program) and has no side effects at import, because Lava's
model discovery imports every module in a Process's directory.  Import it after
:func:`hwbp.targets.lava.compat.install` on Python 3.11.

Processes (one per population, one per term, one per input; every array is
``(batch, n)``: each row is an independent copy of the network, one sample)

``InputProcess``
    holds the clamped input ``x`` and sends it every step on ``x_out``.
``PopulationProcess``
    the somata of one population: the conjugate pair as its mean ``mean`` and tension
    ``tension`` (``x± = mean ± tension/2``).  Sends ``mean`` on ``x_out`` (forward
    messages, activations) and ``tension`` on ``t_out``; receives on ``fwd_in`` the sum
    of its terms' ``f(W u + b)`` and on ``bwd_in`` the sum of ``Wᵀ e`` of the terms that
    read it; the loss population adds ``beta * grad l(mean)`` (target in ``target``).
``TermProcess``
    the synapses and dendritic gate of one term ``f(g W φ(u) + b)`` (``g`` a fixed gain,
    ``φ`` a source-side activation; 1 and the identity unless the term says otherwise):
    ONE weight variable ``weight`` serves the forward product ``g W φ(u)`` and the
    backward product ``φ'(u) ⊙ (g Wᵀ e)``, where ``e = f'(a) ⊙ T`` is the gated
    sensitivity (kept in ``e``: the gate signal).  The term receives the source's mean
    ``u`` and computes ``φ(u)`` and ``φ'(u)`` itself, so the source-side gate is applied
    where the synapses are.

One Lava time step is one unit step of the dynamics: every process sends before it
receives, all sends of a step depend only on the state at its start, so the
messages of one step flow ``mean -> a -> f(a)`` and ``T -> e -> Wᵀ e`` without a cycle.
After ``n_steps`` steps the populations hold their state; one more step lets the
terms compute ``e`` of the final state (so a run of ``N`` unit steps is ``N + 1``
Lava steps).  Update of each population with ``dt`` in units of tau::

    mean    <- mean    + dt * (sum_k f(a_k) - mean)            (dt == 1: mean <- drive)
    tension <- tension + dt * (sum Wᵀ e + beta grad l - tension)

On-chip learning (process parameter ``period = n_steps + 1``): the run is a sequence
of blocks of ``period`` Lava steps, one mini-batch each.  Inputs and targets then hold
one ``(batch, n)`` slice per block (``(blocks, batch, n)`` variables); populations reset
to zero at the start of every block; at the last step of a block each term with
``learn`` set applies ``W <- W - eta g e φ(u)ᵀ`` and ``b <- b - eta sum_rows e`` (``eta`` per
row: the learning rate over the batch size) with the ``e`` and ``u`` of that step.

Host I/O (process parameter ``host_io``, with ``period = n_steps + 1``): one runtime
serves many runs of ``period`` Lava steps each.  Every process then has ports to and
from the host (Lava's external pipes; whole arrays per message, see
:mod:`.host`): at the first step of a block an input receives its ``x``, a population
its ``[mean, tension, target]``, a weighted term its ``[W | b]``; at the last step a
population sends ``[mean, tension]`` and a weighted term its gate ``e`` to the host.
Without ``host_io`` these ports stay unconnected and unused.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

__all__ = ["ACTIVATION_CODES", "LOSS_CODES", "HOST_BUFFER", "block_of", "host_flags", "activation", "loss_grad", "term_forward",
           "term_backward", "population_loss", "population_update", "InputProcess", "PopulationProcess",
           "TermProcess", "PyInputFloat", "PyPopulationFloat", "PyTermFloat", "FLOAT_MODELS"]

#: Activation names in the order of their integer codes (process parameter ``act``).
ACTIVATION_CODES = ("identity", "tanh", "sigmoid", "relu", "leaky_relu", "softplus")
#: Loss names by code (process parameter ``loss``; "none" for a population without loss).
LOSS_CODES = ("none", "mse", "ce")


#: Messages a host pipe holds (one block's worth: the host sends, runs, receives).
HOST_BUFFER = 2


def host_flags(p: dict, time_step: int) -> tuple[bool, bool]:
    """``(first, last)``: whether ``time_step`` opens or closes a block of a process in
    host I/O mode (both False without ``host_io``)."""
    if not p.get("host_io"):
        return False, False
    local = block_of(time_step, p["period"])[1]
    return local == 0, local == p["period"] - 1


def block_of(time_step: int, period: int) -> tuple[int, int]:
    """``(block, step within the block)`` of a Lava time step (both from 0)."""
    return (time_step - 1) // period, (time_step - 1) % period


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def activation(name: str, a: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(f(a), f'(a))`` of activation ``name`` (float64; relu'(0) = 0, leaky_relu'(0) = alpha)."""
    if name == "identity":
        return a, np.ones_like(a)
    if name == "tanh":
        y = np.tanh(a)
        return y, 1.0 - y * y
    if name == "sigmoid":
        y = _sigmoid(a)
        return y, y * (1.0 - y)
    if name == "relu":
        return np.maximum(a, 0.0), (a > 0).astype(a.dtype)
    if name == "leaky_relu":
        return np.where(a > 0, a, alpha * a), np.where(a > 0, 1.0, alpha).astype(a.dtype)
    if name == "softplus":
        return np.logaddexp(0.0, a), _sigmoid(a)
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATION_CODES)}")


def loss_grad(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dl/dx`` per sample of loss ``name`` ("mse": ``x - y``; "ce": ``softmax(x) - y``)."""
    if name == "mse":
        return x - y
    if name == "ce":
        z = np.exp(x - x.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True) - y
    return np.zeros_like(x)


def term_forward(p: dict, weight: np.ndarray, bias: np.ndarray, u: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Forward half of a float term's step: ``(f(a), f'(a), φ(u), φ'(u))`` with ``a = g W
    φ(u) + b`` for the received source mean ``u`` (``φ'(u)`` None without a source-side
    activation; ``W``, ``b`` unused for an unweighted term, ``a = u``)."""
    g, src = p.get("gain", 1.0), p.get("src_act", 0)
    dphi = None
    if src:  # the source-side activation, computed where the synapses are
        u, dphi = activation(ACTIVATION_CODES[src], u, p["src_alpha"])
    if p["has_weight"]:
        a = u @ weight.T
        if g != 1.0:
            a *= g
        a += bias
    else:
        a = u
    y, gate = activation(ACTIVATION_CODES[p["act"]], a, p["alpha"])
    return y, gate, u, dphi


def term_backward(p: dict, weight: np.ndarray, e: np.ndarray, dphi: np.ndarray | None) -> np.ndarray:
    """Backward half of a float term's step: ``φ'(u) ⊙ (g Wᵀ e)`` for the gate ``e``
    (``e`` itself for an unweighted term)."""
    if not p["has_weight"]:
        return e.copy()
    back = e @ weight
    g = p.get("gain", 1.0)
    if g != 1.0:
        back *= g
    if dphi is not None:
        back *= dphi
    return back


def population_loss(p: dict, mean: np.ndarray, target: np.ndarray, back: np.ndarray) -> np.ndarray:
    """The loss population's backward drive: ``beta * grad l(mean) + back``."""
    return p["beta"] * loss_grad(LOSS_CODES[p["loss"]], mean, target) + back


def population_update(p: dict, mean: np.ndarray, tension: np.ndarray, drive: np.ndarray, back: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One Euler step of size ``dt`` of a float population: new ``(mean, tension)``."""
    dt = p["dt"]
    if dt == 1.0:
        return drive, back
    return mean + dt * (drive - mean), tension + dt * (back - tension)


# ----------------------------------------------------------------- processes
class InputProcess(AbstractProcess):
    """A clamped input: sends ``x`` ``(batch, n)`` every step on ``x_out`` (``x`` of
    shape ``(blocks, batch, n)``: slice ``block`` in block ``block``; parameter ``period``)."""

    def __init__(self, *, x: np.ndarray, host_io: bool = False, **kwargs) -> None:
        super().__init__(host_io=bool(host_io), **kwargs)
        self.x = Var(shape=x.shape, init=x)
        self.x_out = OutPort(shape=x.shape[-2:])
        self.host_in = InPort(shape=x.shape[-2:])
        if host_io:
            self.host_in.flag_external_pipe(buffer_size=HOST_BUFFER)


class PopulationProcess(AbstractProcess):
    """One population of conjugate pairs (see the module docstring).

    Parameters
    ----------
    mean, tension : numpy.ndarray
        Initial state ``(batch, n)``.
    target : numpy.ndarray
        Targets ``(batch, n)``, or ``(blocks, batch, n)`` for on-chip learning (loss
        population; zeros otherwise).
    loss : int
        Index into :data:`LOSS_CODES`.
    beta : float
        Loss perturbation strength.
    dt : float
        Step in units of tau (1: unit-step Euler).
    n_steps : int
        Unit steps to take; later Lava steps hold the state (per block with ``period``).
    period : int, optional
        On-chip learning: Lava steps per block (``n_steps + 1``); the state resets to
        zero at the start of each block.
    host_io : bool, optional
        Host I/O (module docstring; with ``period``): the state and target of each block
        come from the host, the final state goes back to it.
    """

    def __init__(self, *, mean: np.ndarray, tension: np.ndarray, target: np.ndarray, loss: int = 0,
                 beta: float = 1.0, dt: float = 1.0, n_steps: int = 0, host_io: bool = False, **kwargs) -> None:
        super().__init__(loss=int(loss), beta=float(beta), dt=float(dt), n_steps=int(n_steps),
                         host_io=bool(host_io), **kwargs)
        shape = mean.shape
        self.mean = Var(shape=shape, init=mean)
        self.tension = Var(shape=shape, init=tension)
        self.target = Var(shape=target.shape, init=target)
        self.x_out = OutPort(shape=shape)
        self.t_out = OutPort(shape=shape)
        self.fwd_in = InPort(shape=shape)
        self.bwd_in = InPort(shape=shape)
        self.host_in = InPort(shape=(3, *shape))
        self.host_out = OutPort(shape=(2, *shape))
        if host_io:
            self.host_in.flag_external_pipe(buffer_size=HOST_BUFFER)
            self.host_out.flag_external_pipe(buffer_size=HOST_BUFFER)


class TermProcess(AbstractProcess):
    """One term ``f(g W φ(u) + b)`` of a population: synapses, dendritic gate, one weight.

    Parameters
    ----------
    batch, n_in, n_out : int
        Rows of every message, and the widths of ``u`` and of the population.
    weight : numpy.ndarray or None
        ``W`` ``(n_out, n_in)``; None for an unweighted term ``f(u)``.
    bias : numpy.ndarray or None
        ``b`` ``(n_out,)``.
    act : int
        Index into :data:`ACTIVATION_CODES`.
    alpha : float
        Slope of leaky_relu.
    gain : float
        Fixed gain ``g`` (float models; the fixed-point models fold it into ``W``).
    src_act : int
        Index into :data:`ACTIVATION_CODES` of the source-side activation ``φ``.
    src_alpha : float
        Slope of a leaky_relu ``φ``.
    learn : bool, optional
        On-chip learning (with ``period`` and ``eta``, the rate per sample): update the
        weight at the last step of every block.
    host_io : bool, optional
        Host I/O (module docstring; with ``period``): a weighted term receives ``[W | b]``
        at the start of each block and sends ``e`` at its end.
    """

    def __init__(self, *, batch: int, n_in: int, n_out: int, weight: np.ndarray | None = None,
                 bias: np.ndarray | None = None, act: int = 0, alpha: float = 0.01, gain: float = 1.0,
                 src_act: int = 0, src_alpha: float = 0.01, host_io: bool = False, **kwargs) -> None:
        has_w = weight is not None
        host_io = bool(host_io) and has_w
        super().__init__(act=int(act), alpha=float(alpha), gain=float(gain), src_act=int(src_act),
                         src_alpha=float(src_alpha), has_weight=has_w, host_io=host_io, **kwargs)
        self.weight = Var(shape=(n_out, n_in) if has_w else (1, 1), init=weight if has_w else np.zeros((1, 1)))
        self.bias = Var(shape=(n_out,), init=np.zeros(n_out) if bias is None else bias)
        self.e = Var(shape=(batch, n_out), init=np.zeros((batch, n_out)))
        self.u_in = InPort(shape=(batch, n_in))
        self.y_out = OutPort(shape=(batch, n_out))
        self.t_in = InPort(shape=(batch, n_out))
        self.g_out = OutPort(shape=(batch, n_in))
        self.host_in = InPort(shape=(n_out, n_in + 1))
        self.host_out = OutPort(shape=(batch, n_out))
        if host_io:
            self.host_in.flag_external_pipe(buffer_size=HOST_BUFFER)
            self.host_out.flag_external_pipe(buffer_size=HOST_BUFFER)


# ----------------------------------------------------------------- float models
@implements(proc=InputProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyInputFloat(PyLoihiProcessModel):
    """Sends the clamped input every step."""

    x: np.ndarray = LavaPyType(np.ndarray, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        if host_flags(self.proc_params, self.time_step)[0]:
            self.x[:] = self.host_in.recv()
        x = self.x
        if x.ndim == 3:
            x = x[block_of(self.time_step, self.proc_params["period"])[0]]
        self.x_out.send(x)


@implements(proc=PopulationProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPopulationFloat(PyLoihiProcessModel):
    """Float64 population: sends mean and tension, then receives the drives and
    takes one Euler step of size ``dt`` (the module docstring has the update)."""

    mean: np.ndarray = LavaPyType(np.ndarray, float)
    tension: np.ndarray = LavaPyType(np.ndarray, float)
    target: np.ndarray = LavaPyType(np.ndarray, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    t_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    fwd_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    bwd_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        p = self.proc_params
        block, local = block_of(self.time_step, p.get("period", p["n_steps"] + 1))
        first, last = host_flags(p, self.time_step)
        if first:  # host I/O: this block's start state and target
            self.mean[:], self.tension[:], self.target[:] = self.host_in.recv()
        elif local == 0 and block > 0:  # a new block (mini-batch): reset
            self.mean[:] = 0.0
            self.tension[:] = 0.0
        self.x_out.send(self.mean)
        self.t_out.send(self.tension)
        drive = self.fwd_in.recv()
        back = self.bwd_in.recv()
        if p["loss"]:
            back = population_loss(p, self.mean, self.target if self.target.ndim == 2 else self.target[block], back)
        if last:
            self.host_out.send(np.stack([self.mean, self.tension]))
        if local >= p["n_steps"]:
            return
        self.mean[:], self.tension[:] = population_update(p, self.mean, self.tension, drive, back)


@implements(proc=TermProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyTermFloat(PyLoihiProcessModel):
    """Float64 term: ``a = g W φ(u) + b``, sends ``f(a)``; receives ``T``, keeps
    ``e = f'(a) ⊙ T`` and sends ``φ'(u) ⊙ (g Wᵀ e)`` (the same ``weight`` both ways)."""

    weight: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    e: np.ndarray = LavaPyType(np.ndarray, float)
    u_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    y_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    t_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    g_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        p = self.proc_params
        first, last = host_flags(p, self.time_step)
        if first:  # host I/O: this block's [W | b]
            wb = self.host_in.recv()
            self.weight[:], self.bias[:] = wb[:, :-1], wb[:, -1]
        y, gate, u, dphi = term_forward(p, self.weight, self.bias, self.u_in.recv())
        self.y_out.send(y)
        t = self.t_in.recv()
        self.e[:] = t * gate
        if last:
            self.host_out.send(self.e)
        self.g_out.send(term_backward(p, self.weight, self.e, dphi))
        if p.get("learn") and block_of(self.time_step, p["period"])[1] == p["period"] - 1:
            g = p.get("gain", 1.0)
            self.weight[:] = self.weight - (p["eta"] * g) * (self.e.T @ u)
            if p["has_bias"]:
                self.bias[:] = self.bias - p["eta"] * self.e.sum(axis=0)


#: Process -> float model (``exception_proc_model_map`` of the run configuration).
FLOAT_MODELS = {InputProcess: PyInputFloat, PopulationProcess: PyPopulationFloat, TermProcess: PyTermFloat}
