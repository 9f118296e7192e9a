"""What one device instance is compared with.

(a) backprop of the *nominal* network (:func:`hwbp.oracle.backprop.exact_gradients`):
    how far the instance's gradient is from the one the designer trained for;
(b) backprop of the *instance's own forward network*
    (:func:`instance_gradients`): whether the hardware assigns credit correctly for the
    function it actually computes.  "The hardware computes a different function" shows in
    (a) only; "the hardware assigns credit wrongly" shows in (b).

The instance's forward network is, per population ``v``,
``x_v = r_v ⊙ sum_k [ (1 + g_k) ⊙ f_k(W_k^fwd u_k + b_k^fwd) + o_k ]`` with the forward
devices' weights, the activation cells' gain and offset and the mean node gain
``r_v = (r+ + r-)/2`` (the leak of the forward drive into the tension through
``r+ != r-`` is a readout error, not part of the function).  Its gradients are taken
with respect to the forward device values: what a local rule at each synapse should
read.  A parameter used by several terms sums its uses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from hwbp.dynamics.drive import term_backward, term_forward, term_input
from hwbp.dynamics.operands import TermOp, term_operands
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem
from hwbp.types import Batch, Gradients
from hwbp.verify.compare import Metrics, compare, json_number, metrics
from hwbp.verify.readout import local_gradients

__all__ = ["instance_gradients", "instance_forward", "own_operands", "total_metrics", "accuracy", "instance_report"]


def own_operands(system: DynamicsSystem, population: str, k: int) -> TermOp:
    """Term ``k`` of ``population`` as the instance's own forward network computes it:
    the forward devices (tied: the backward uses them too) and the activation cell
    ``y = (1 + g) f(a) + o``, whose exact derivative is ``(1 + g) f'(a)``."""
    op = term_operands(system, population, k)
    if op.cell is None and op.curve is None and op.weight_back is None:
        return op
    cell = None if op.cell is None else (op.cell[0], op.cell[1], op.cell[0], 0.0)
    return replace(op, weight_back=None, cell=cell, curve=None if op.curve is None else op.curve.own(),
                   back_offset=None)


def _node_gain(system: DynamicsSystem, population: str) -> float | np.ndarray:
    real = system.instance
    if real is None or real.nodes is None:
        return 1.0
    d = real.nodes[population]
    return 0.5 * (d.r_plus + d.r_minus)


def instance_forward(system: DynamicsSystem, batch: Batch) -> dict[str, Any]:
    """Forward pass of the instance's own network: values and per-term evaluations
    (``{"x": {...}, "terms": {(pop, k): (op, u, forward, r)}}``: the term's
    :func:`own_operands`, its source value, its :class:`~hwbp.dynamics.TermForward`
    and the population's node gain ``r``)."""
    x: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float64) for k, v in batch.x.items()}
    terms: dict = {}
    for pop in system.populations:
        r = _node_gain(system, pop.name)
        total = np.zeros((batch.size, pop.size))
        for k, t in enumerate(pop.terms):
            op = own_operands(system, pop.name, k)
            fw = term_forward(op, x[t.source])
            total = total + fw.y
            terms[(pop.name, k)] = (op, x[t.source], fw, r)
        x[pop.name] = r * total
    return {"x": x, "terms": terms}


def instance_gradients(system: DynamicsSystem, batch: Batch) -> Gradients:
    """Exact gradients of the batch-mean loss of the instance's own forward network
    (module docstring), with respect to its forward device values; on an ideal system
    (``instance is None``) plain backprop of the nominal network."""
    fw = instance_forward(system, batch)
    x = fw["x"]
    loss = get_loss(system.loss.function)
    out = x[system.loss.population]
    delta: dict[str, np.ndarray] = {system.loss.population: loss.grad(out, batch.y)}
    params: dict[str, np.ndarray] = {}
    n = batch.size
    for pop in reversed(system.populations):
        if pop.name not in delta:
            continue
        d = delta[pop.name]
        for k, t in enumerate(pop.terms):
            op, u, f, r = fw["terms"][(pop.name, k)]
            g = r * (d if f.gate is None else f.gate * d)
            if t.weight is not None:  # the same local rule as the readout, on these devices
                v = term_input(op, u)[0]
                for name, value in local_gradients(system, t, g, v, n).items():
                    params[name] = params.get(name, 0.0) + value
            back = term_backward(op, g, f.pre_gate)
            if system.is_population(t.source):
                delta[t.source] = delta[t.source] + back if t.source in delta else back
    acts = {p.name: delta.get(p.name, np.zeros((n, p.size))) for p in system.populations}
    return Gradients(parameters=params, activations=acts, loss=float(loss.value(out, batch.y).mean()))


def total_metrics(physical: Gradients, reference: Gradients) -> Metrics:
    """Metrics of every parameter gradient concatenated into one vector."""
    keys = sorted(reference.parameters)
    g = np.concatenate([np.ravel(physical.parameters[k]) for k in keys])
    r = np.concatenate([np.ravel(reference.parameters[k]) for k in keys])
    return metrics(g, r)


def accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose largest output is the target's largest component."""
    return float(np.mean(np.argmax(outputs, axis=1) == np.argmax(y, axis=1)))


def instance_report(system: DynamicsSystem, physical: Gradients, nominal: Gradients, own: Gradients,
                    outputs: np.ndarray, batch: Batch) -> dict[str, Any]:
    """JSON-ready comparison of an instance's gradients with (a) the nominal network's
    and (b) its own forward network's: per parameter (layer), per population and in
    total; loss and accuracy of each."""
    out: dict[str, Any] = {}
    for label, ref in (("nominal", nominal), ("own", own)):
        c = compare(physical, ref)
        tot = total_metrics(physical, ref)
        out[label] = {
            "parameters": {k: m.as_dict() for k, m in c.parameters.items()},
            "populations": {k: m.as_dict() for k, m in c.populations.items()},
            "total": tot.as_dict(),
            "max_rel_err": json_number(c.max_rel_err),
            "min_cosine": json_number(c.min_cosine),
            "loss": json_number(ref.loss),
        }
    nominal_out = _nominal_output(system, batch)
    out["loss"] = {"physical": json_number(physical.loss), "nominal": json_number(nominal.loss),
                   "own": json_number(own.loss)}
    out["accuracy"] = {"physical": accuracy(outputs, batch.y), "nominal": accuracy(nominal_out, batch.y)}
    return out


def _nominal_output(system: DynamicsSystem, batch: Batch) -> np.ndarray:
    return instance_forward(replace(system, instance=None), batch)["x"][system.loss.population]
