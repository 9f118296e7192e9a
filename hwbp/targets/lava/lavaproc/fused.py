"""The whole network as ONE Lava process, for runs on a kept runtime (host I/O).

Imports only numpy, lava and the sibling modules (``hwbp compile --target lava`` copies
it next to the emitted program); no side effects at import.

Lava's Loihi protocol synchronizes every process model at every time step: the
runtime service sends each model a phase command and waits for its answer, and every
message between models crosses a shared-memory channel with a semaphore and a
listener thread on each side.  With one process per input, population and term (see
:mod:`.processes`), a run of ``2L + 1`` steps exchanges hundreds of such messages
whose cost does not depend on the batch.  :class:`NetworkProcess` holds every
population and term of a network in one process: one model answers the runtime
service each step, the messages between populations and terms become arrays in one
address space, and a block's values travel in ONE host message each way (a flat
vector, :func:`host_sizes`; packed by :mod:`.host`).  The models follow Lava's
AsyncProtocol: a run of ``N`` steps (``RunSteps(N)``) is one command from the runtime
service, the model takes the ``N`` steps in its own loop and answers once; with one
model there is no other process to keep in step (under the Loihi protocol the service
exchanged a command and a reply with it at every step).

The models compute what the per-process models compute, value for value: each step
every population "sends" its mean and tension, every term (in the order of the layout,
the order in which the per-process network connects them) computes ``f(a)``, ``e`` and
its backward message from those, an input port's messages are summed from zeros in
that order as Lava's ``InPort.recv`` sums them, then every population takes its step.
:class:`PyNetworkFloat` (tag ``floating_pt``) uses the float functions of
:mod:`.processes`, :class:`PyNetworkFixed` (tag ``fixed_pt``) the integer rules of
:mod:`.fixed_models`.

Layout (process parameter ``layout``; :func:`network_layout` builds it)::

    {"batch": B, "period": n_steps + 1,
     "inputs": [{"name", "n", "params"}], "pops": [{"name", "n", "params"}],
     "terms": [{"key", "pop", "source": ("input" | "pop", index), "n_in", "n_out",
                "weighted", "params"}]}

Host message in (one per block): every input's ``x``, every population's ``mean``,
``tension``, ``target``, every weighted term's ``W`` and ``b``, raveled in that order.
Host message out (at the block's last step): every population's ``mean`` and
``tension``, every weighted term's gate ``e``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyAsyncProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.async_protocol import AsyncProtocol

from .fixed_models import from_payload, gate, leak, loss_fixed, saturate, term_backward_fixed, term_forward_fixed, \
    to_payload
from .processes import HOST_BUFFER, block_of, population_loss, population_update, term_backward, term_forward

__all__ = ["network_layout", "host_sizes", "NetworkProcess", "PyNetworkFloat", "PyNetworkFixed",
           "FUSED_FLOAT_MODELS", "FUSED_FIXED_MODELS"]


def network_layout(batch: int, n_steps: int, inputs: Sequence[tuple[str, int, dict]],
                   pops: Sequence[tuple[str, int, dict]], terms: Sequence[tuple[Any, str, int, int, bool, dict]]
                   ) -> dict:
    """The layout of :class:`NetworkProcess` (module docstring).

    Parameters
    ----------
    batch, n_steps : int
        Rows of every array; unit steps per block (a block is ``n_steps + 1`` Lava steps).
    inputs, pops : sequence of (name, width, process parameters)
        Input ports and populations.
    terms : sequence of (key, source name, n_in, n_out, weighted, process parameters)
        Every term; ``key[0]`` is its population.
    """
    names_in = [n for n, _, _ in inputs]
    names_pop = [n for n, _, _ in pops]
    out_terms = []
    for key, src, n_in, n_out, weighted, prm in terms:
        source = ("pop", names_pop.index(src)) if src in names_pop else ("input", names_in.index(src))
        out_terms.append({"key": key, "pop": names_pop.index(key[0]), "source": source, "n_in": int(n_in),
                          "n_out": int(n_out), "weighted": bool(weighted),
                          "params": {**prm, "has_weight": bool(weighted)}})
    return {"batch": int(batch), "period": int(n_steps) + 1,
            "inputs": [{"name": n, "n": int(w), "params": dict(p)} for n, w, p in inputs],
            "pops": [{"name": n, "n": int(w), "params": {**p, "n_steps": int(n_steps)}} for n, w, p in pops],
            "terms": out_terms}


def host_sizes(layout: dict) -> tuple[int, int]:
    """Lengths of the host messages ``(in, out)`` of a layout."""
    B = layout["batch"]
    weighted = [t for t in layout["terms"] if t["weighted"]]
    n_in = sum(B * i["n"] for i in layout["inputs"]) + sum(3 * B * p["n"] for p in layout["pops"]) \
        + sum(t["n_out"] * (t["n_in"] + 1) for t in weighted)
    n_out = sum(2 * B * p["n"] for p in layout["pops"]) + sum(B * t["n_out"] for t in weighted)
    return n_in, n_out


class NetworkProcess(AbstractProcess):
    """Every input, population and term of one network (module docstring).

    Parameters
    ----------
    layout : dict
        :func:`network_layout`.
    """

    def __init__(self, *, layout: dict, **kwargs) -> None:
        super().__init__(layout=layout, period=layout["period"], host_io=True, **kwargs)
        n_in, n_out = host_sizes(layout)
        self.host_in = InPort(shape=(n_in,))
        self.host_out = OutPort(shape=(n_out,))
        self.host_in.flag_external_pipe(buffer_size=HOST_BUFFER)
        self.host_out.flag_external_pipe(buffer_size=HOST_BUFFER)


class _NetworkModel:
    """The block loop shared by the float and integer models: receive the block's
    values at its first step, one step of every population and term, send the state at
    its last step."""

    host_in: Any
    host_out: Any
    proc_params: Any
    num_steps: int

    def _load(self, flat: np.ndarray) -> None:
        lay = self.proc_params["layout"]
        B, at = lay["batch"], 0

        def take(*shape: int) -> np.ndarray:
            nonlocal at
            size = int(np.prod(shape))
            out = flat[at:at + size].reshape(shape).copy()
            at += size
            return out

        self.x = [take(B, i["n"]) for i in lay["inputs"]]
        self.mean, self.tension, self.target = [], [], []
        for p in lay["pops"]:
            self.mean.append(take(B, p["n"]))
            self.tension.append(take(B, p["n"]))
            self.target.append(take(B, p["n"]))
        self.weight, self.bias = [], []
        for t in lay["terms"]:
            if t["weighted"]:
                self.weight.append(take(t["n_out"], t["n_in"]))
                self.bias.append(take(t["n_out"]))
            else:  # as the per-process model's unused variables
                self.weight.append(np.zeros((1, 1), dtype=flat.dtype))
                self.bias.append(np.zeros(t["n_out"], dtype=flat.dtype))

    def _step(self, local: int, last: bool) -> list[np.ndarray]:
        raise NotImplementedError

    def __init__(self, proc_params: Any = None) -> None:
        super().__init__(proc_params)  # type: ignore[call-arg]
        self.time_step = 0

    def run_async(self) -> None:
        """Lava's AsyncProtocol: take the ``num_steps`` steps of the run in this model's
        own loop (the runtime service exchanges one command and one reply per run)."""
        for _ in range(self.num_steps):
            self.time_step += 1
            self._tick()

    def _tick(self) -> None:
        """One time step (as one Lava step of the per-process network)."""
        local = block_of(self.time_step, self.proc_params["period"])[1]
        if local == 0:
            self._load(self.host_in.recv())
        out = self._step(local, local == self.proc_params["period"] - 1)
        if out:
            self.host_out.send(np.concatenate([np.ravel(a) for a in out]))


def _received(shape: tuple[int, ...], dtype: Any, messages: Sequence[np.ndarray]) -> np.ndarray:
    """What a Lava ``InPort.recv`` returns for these messages: their sum from zeros."""
    acc = np.zeros(shape, dtype)
    for m in messages:
        acc = acc + m
    return acc


@implements(proc=NetworkProcess, protocol=AsyncProtocol)
@requires(CPU)
@tag("floating_pt")
class PyNetworkFloat(_NetworkModel, PyAsyncProcessModel):
    """Float64 network: the float population and term steps of :mod:`.processes`."""

    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def _step(self, local: int, last: bool) -> list[np.ndarray]:
        lay = self.proc_params["layout"]
        sent = {"input": self.x, "pop": self.mean}
        fwd: list[list[np.ndarray]] = [[] for _ in lay["pops"]]
        bwd: list[list[np.ndarray]] = [[] for _ in lay["pops"]]
        gates = []
        for k, t in enumerate(lay["terms"]):
            p, j = t["params"], t["pop"]
            kind, i = t["source"]
            u = _received(sent[kind][i].shape, np.float64, [sent[kind][i]])
            y, gate_, _, dphi = term_forward(p, self.weight[k], self.bias[k], u)
            fwd[j].append(y)
            e = _received(self.tension[j].shape, np.float64, [self.tension[j]]) * gate_
            if last and t["weighted"]:
                gates.append(e)
            back = term_backward(p, self.weight[k], e, dphi)
            if kind == "pop":
                bwd[i].append(back)
        out = []
        for j, pop in enumerate(lay["pops"]):
            p, shape = pop["params"], self.mean[j].shape
            drive = _received(shape, np.float64, fwd[j])
            back = _received(shape, np.float64, bwd[j])
            if p["loss"]:
                back = population_loss(p, self.mean[j], self.target[j], back)
            if last:
                out += [self.mean[j], self.tension[j]]
            if local < p["n_steps"]:
                self.mean[j], self.tension[j] = population_update(p, self.mean[j], self.tension[j], drive, back)
        return out + gates if last else []


@implements(proc=NetworkProcess, protocol=AsyncProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyNetworkFixed(_NetworkModel, PyAsyncProcessModel):
    """Integer network: the payloads and rules of :mod:`.fixed_models`."""

    host_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    host_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)

    def _step(self, local: int, last: bool) -> list[np.ndarray]:
        lay = self.proc_params["layout"]
        i64 = np.int64
        x_msg = []
        for i, inp in enumerate(lay["inputs"]):
            q = inp["params"]
            x_msg.append(to_payload(self.x[i], q["shift"], q["payload_bits"]))
        m_msg, t_msg = [], []
        for j, pop in enumerate(lay["pops"]):
            q = pop["params"]
            m_msg.append(to_payload(self.mean[j], q["shift"], q["payload_bits"]))
            t_msg.append(to_payload(self.tension[j], q["shift"], q["payload_bits"]))
        sent = {"input": x_msg, "pop": m_msg}
        fwd: list[list[np.ndarray]] = [[] for _ in lay["pops"]]
        bwd: list[list[np.ndarray]] = [[] for _ in lay["pops"]]
        gates = []
        for k, t in enumerate(lay["terms"]):
            p, j = t["params"], t["pop"]
            kind, i = t["source"]
            u = _received(sent[kind][i].shape, i64, [sent[kind][i]])
            y_msg, d, _, dphi = term_forward_fixed(p, self.weight[k], self.bias[k], u)
            fwd[j].append(y_msg)
            e = gate(d, _received(t_msg[j].shape, i64, [t_msg[j]]), p["S"], p["shift"], p["state_bits"])
            if last and t["weighted"]:
                gates.append(e)
            g_msg = term_backward_fixed(p, self.weight[k], e, dphi)
            if kind == "pop":
                bwd[i].append(g_msg)
        out = []
        for j, pop in enumerate(lay["pops"]):
            p, shape = pop["params"], self.mean[j].shape
            sb, sh = p["state_bits"], p["shift"]
            drive = from_payload(_received(shape, i64, fwd[j]), sh, sb)
            back = from_payload(_received(shape, i64, bwd[j]), sh, sb)
            if p["loss"]:
                back = saturate(back + loss_fixed(p["loss"], self.mean[j], self.target[j], p), sb)
            if last:
                out += [self.mean[j], self.tension[j]]
            if local < p["n_steps"]:
                self.mean[j] = leak(self.mean[j], drive, p["dt_int"], sb)
                self.tension[j] = leak(self.tension[j], back, p["dt_int"], sb)
        return out + gates if last else []


#: Process -> fused float model, and fused fixed-point model.
FUSED_FLOAT_MODELS = {NetworkProcess: PyNetworkFloat}
FUSED_FIXED_MODELS = {NetworkProcess: PyNetworkFixed}
