"""Between the system's state and the circuit's node voltages: the state read back from
the saved node voltages (either realization), the initial state written as ``.ic``
voltages, and the settling time read from a ``.tran`` trace.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from hwbp.initial import initial_state
from hwbp.lower.system import DynamicsSystem
from hwbp.state import State
from hwbp.targets.spice.model import Circuit
from hwbp.types import Batch

__all__ = ["split_nodes", "initial_nodes", "initial_conditions", "settling_time"]


def split_nodes(circuit: Circuit, values: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                                dict[tuple[str, int], np.ndarray]]:
    """Node voltages ``(..., len(saved_nodes))`` -> (means, tensions) per population and
    the gate signals per weighted term, each ``(..., n)``; the same state from either
    realization (pair: from x+ and x-; differential: read directly)."""
    means, tensions = {}, {}
    k = 0
    for name, (first, _) in circuit.state_nodes().items():
        n = len(first)
        va, vb = values[..., k:k + n], values[..., k + n:k + 2 * n]
        if circuit.realization == "differential":  # the mean and the tension are nodes
            means[name], tensions[name] = va, vb
        else:
            means[name], tensions[name] = 0.5 * (va + vb), va - vb
        k += 2 * n
    gates = {}
    for key, nodes in circuit.gates.items():
        gates[key] = values[..., k:k + len(nodes)]
        k += len(nodes)
    return means, tensions, gates


def initial_nodes(system: DynamicsSystem, batch: Batch, initial: str | State, seed: int
                  ) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per sample, the (mean, tension) of the initial state by population (V), from
    :func:`hwbp.initial.initial_state` (drawn exactly as every backend draws it);
    :meth:`Circuit.state_values` turns them into the realization's node voltages."""
    st = initial_state(system, batch, initial, seed)
    return [{p.name: (st.mean[p.name][b], st.tension[p.name][b]) for p in system.populations}
            for b in range(batch.size)]


def initial_conditions(circuit: Circuit, init: list[dict[str, tuple[np.ndarray, np.ndarray]]]
                       ) -> list[dict[str, float]]:
    """Per sample, the ``.ic`` voltage (V) of every state node of ``circuit`` for the
    initial states ``init`` of :func:`initial_nodes` (a state node of
    :attr:`Circuit.ic_nodes` has its ``.ic`` on the node named there, scaled)."""
    out = []
    for state in init:
        ic: dict[str, float] = {}
        for name, (na, nb) in circuit.state_nodes().items():
            va, vb = circuit.state_values(*state[name])
            ic.update(zip(na, map(float, va)))
            ic.update(zip(nb, map(float, vb)))
        for node, (target, offset_v, scale) in circuit.ic_nodes.items():
            if node in ic:
                ic[target] = offset_v + scale * ic.pop(node)
        out.append(ic)
    return out


def settling_time(t: np.ndarray, tension: Mapping[str, np.ndarray], tol: float) -> float:
    """First time after which every population's tension stays within ``tol`` (relative,
    2-norm over batch and neurons) of its final value; ``nan`` if it never does."""
    err = np.zeros(len(t))
    for arr in tension.values():
        final = arr[-1]
        scale = max(float(np.linalg.norm(final)), 1e-300)
        err = np.maximum(err, np.linalg.norm((arr - final).reshape(len(t), -1), axis=1) / scale)
    above = np.nonzero(err > tol)[0]
    if len(above) == 0:
        return float(t[0])
    k = above[-1] + 1
    return float(t[k]) if k < len(t) else float("nan")
