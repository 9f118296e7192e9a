"""Host side of the processes' host I/O (see :mod:`.processes`): whole arrays through
Lava's external pipes, one message per process and block, instead of ``Var.get`` and
``Var.set`` (which move one number per message).

Imports only numpy (``hwbp compile --target lava`` copies it next to the emitted
program); no side effects at import.  Every function needs a created runtime (the
pipes exist from then on): ``create_runtime``, then :func:`send_block`, ``run`` one
block of ``n_steps + 1`` Lava steps, :func:`recv_block`; repeat.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["send_block", "recv_block", "send_network", "recv_network"]


def _send(port: Any, data: np.ndarray) -> None:
    port.external_pipe_csp_send_port.send(np.ascontiguousarray(data))


def send_block(inputs: Mapping[str, Any], pops: Mapping[str, Any], terms: Mapping[Any, Any],
               x: Mapping[str, np.ndarray], mean: Mapping[str, np.ndarray], tension: Mapping[str, np.ndarray],
               target: Mapping[str, np.ndarray], weight: Mapping[Any, np.ndarray | None],
               bias: Mapping[Any, np.ndarray | None]) -> None:
    """Send one block's values: ``x`` by input, ``[mean, tension, target]`` by
    population (``target`` zeros except at the loss), ``[W | b]`` by weighted term
    (``b`` zeros where the term has none).  Arrays are ``(batch, n)`` (``W``:
    ``(n_out, n_in)``), float64 or, for the fixed-point models, integers."""
    for name, proc in inputs.items():
        _send(proc.host_in, x[name])
    for name, proc in pops.items():
        _send(proc.host_in, np.stack([mean[name], tension[name], target[name]]))
    for key, proc in terms.items():
        if proc.proc_params["host_io"]:
            w = np.asarray(weight[key])
            b = bias.get(key)
            b = np.zeros(w.shape[0], dtype=w.dtype) if b is None else np.asarray(b)
            _send(proc.host_in, np.concatenate([w, b.reshape(-1, 1).astype(w.dtype)], axis=1))


def recv_block(pops: Mapping[str, Any], terms: Mapping[Any, Any]) -> tuple[dict, dict, dict]:
    """``(means, tensions, gates)`` at the end of a block: by population, and the gate
    ``e`` by weighted term key (as the models hold them)."""
    means, tens, gates = {}, {}, {}
    for name, proc in pops.items():
        means[name], tens[name] = proc.host_out.external_pipe_csp_recv_port.recv()
    for key, proc in terms.items():
        if proc.proc_params["host_io"]:
            gates[key] = proc.host_out.external_pipe_csp_recv_port.recv()
    return means, tens, gates


def send_network(proc: Any, layout: dict, x: Mapping[str, np.ndarray], mean: Mapping[str, np.ndarray],
                 tension: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray],
                 weight: Mapping[Any, np.ndarray | None], bias: Mapping[Any, np.ndarray | None]) -> None:
    """Send one block's values to a :class:`~.fused.NetworkProcess` in ONE message (the
    order of :mod:`.fused`; ``b`` zeros where a weighted term has none)."""
    parts = [x[i["name"]] for i in layout["inputs"]]
    for p in layout["pops"]:
        parts += [mean[p["name"]], tension[p["name"]], target[p["name"]]]
    for t in layout["terms"]:
        if t["weighted"]:
            w = np.asarray(weight[t["key"]])
            b = bias.get(t["key"])
            parts += [w, np.zeros(w.shape[0], dtype=w.dtype) if b is None else np.asarray(b).astype(w.dtype)]
    dtype = np.result_type(*parts)
    _send(proc.host_in, np.concatenate([np.ravel(np.asarray(a, dtype=dtype)) for a in parts]))


def recv_network(proc: Any, layout: dict) -> tuple[dict, dict, dict]:
    """``(means, tensions, gates)`` at the end of a block of a
    :class:`~.fused.NetworkProcess` (one message)."""
    flat = proc.host_out.external_pipe_csp_recv_port.recv()
    B, at = layout["batch"], 0

    def take(n: int) -> np.ndarray:
        nonlocal at
        out = flat[at:at + B * n].reshape(B, n)
        at += B * n
        return out

    means, tens, gates = {}, {}, {}
    for p in layout["pops"]:
        means[p["name"]] = take(p["n"])
        tens[p["name"]] = take(p["n"])
    for t in layout["terms"]:
        if t["weighted"]:
            gates[t["key"]] = take(t["n_out"])
    return means, tens, gates
