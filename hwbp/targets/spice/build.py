"""Build the circuit object model of a :class:`~hwbp.lower.DynamicsSystem`.

Realization (normalized units: 1 V of node voltage is one unit of activation or
sensitivity; a weight ``w`` is the conductance ``g = w / R`` in S):

* each neuron of population ``v`` is one ``hwbp_neuron_pair`` cell with nodes
  ``<v>_xp_<j>``, ``<v>_xm_<j>`` (the conjugate pair), ``<v>_xb_<j>`` (mean),
  ``<v>_tn_<j>`` (tension) and the summing nodes ``<v>_fd_<j>``, ``<v>_sd_<j>``;
* term ``k`` of ``v`` with a weight has a pre-activation node ``<v>_a<k>_<j>`` (R to
  ground, bias current ``b/R``) fed by one ``hwbp_synapse`` instance per weight;
  an ``hwbp_act_<f>`` cell turns it into the forward current ``f(a)/R`` and the
  gate voltage ``f'(a) * T`` on ``<v>_g<k>_<j>``, which the same synapse instances
  carry back to the source population's sensitivity nodes;
* the loss port drives the output population's sensitivity nodes: ``hwbp_loss_mse``
  (a transconductance to the target source) or ``hwbp_loss_ce`` (the same, from a
  softmax node ``hwbp_p_<j>`` per output: up to :data:`CE_DENSE_MAX` outputs each
  node writes the max-shifted softmax out in full, which Newton solves robustly even
  for large logits; wider outputs divide by one shared node ``hwbp_rs`` holding
  ``1 / sum_k exp(x_k)``, which keeps the netlist O(n) in the output width);
* inputs and targets are clamped voltage sources whose values a runner sets per sample.

The batch is applied sample by sample to this one circuit (the stimulus sources are
re-valued and the circuit re-solved), so every weight exists exactly once.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from hwbp.errors import ConfigError, ModelError
from hwbp.ir.activations import ACTIVATIONS
from hwbp.lower.system import DynamicsSystem, term_matrix
from hwbp.targets.spice.model import (
    Cell, Circuit, Element, Section, SpiceOptions, SynapseArray, load_cell,
)
from hwbp.targets.spice.names import comment_text, unique_tags
from hwbp.targets.spice.writer import spice_number

__all__ = ["build_circuit", "check_system", "CE_DENSE_MAX"]

#: Widest softmax-CE output written out in full per output node (O(n^2) text, robust
#: for large logits); wider outputs share one normalizer node (O(n) text).  Measured
#: (1 sample, .op): 10 outputs 0.06 s either way; 256 outputs 13.5 s in full against
#: 0.4 s shared; but with logits of tens of volts the shared form stalled Newton at
#: 64 outputs (> 60 s) where the full form took 0.5 s.
CE_DENSE_MAX = 32


def _max_tree(terms: list[str]) -> str:
    """``max`` of the expressions as a balanced tree of two-argument calls."""
    while len(terms) > 1:
        pairs = [f"max({a},{b})" for a, b in zip(terms[0::2], terms[1::2])]
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def check_system(system: DynamicsSystem) -> None:
    """Reject what no circuit can realize: empty populations, non-finite parameters,
    unknown activations or losses (one-line errors naming the culprit)."""
    for port in system.inputs:
        if int(port.size) < 1:
            raise ModelError(f"spice: input {port.name!r} has {port.size} components; need >= 1")
    for pop in system.populations:
        if int(pop.size) < 1:
            raise ModelError(f"spice: population {pop.name!r} has width {pop.size}; need >= 1")
        for term in pop.terms:
            if term.activation not in ACTIVATIONS:
                raise ModelError(f"spice: population {pop.name!r}: unknown activation {term.activation!r}; "
                                 f"valid: {', '.join(sorted(ACTIVATIONS))}")
            if not (np.isfinite(term.alpha) and (term.high is None or np.isfinite(term.high))):
                raise ModelError(f"spice: population {pop.name!r}: non-finite alpha or high ({term.alpha}, "
                                 f"{term.high})")
            if term.source_activation != "identity":
                raise ModelError(f"spice: population {pop.name!r}: a source-side nonlinearity "
                                 f"({term.source_activation} before the weights of {term.weight}) has no circuit "
                                 "cell yet; use the reference backend for pre-activation layers")
    for name, value in system.parameters.items():
        if not np.all(np.isfinite(value)):
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            raise ModelError(f"spice: parameter {name!r} has {bad} non-finite value(s) (NaN or Inf)")
    if system.loss.function not in ("mse", "ce"):
        raise ModelError(f"spice: unsupported loss {system.loss.function!r}; valid: ce, mse")
    if not np.isfinite(system.beta):
        raise ModelError(f"spice: beta must be finite, got {system.beta}")


def build_circuit(system: DynamicsSystem, options: SpiceOptions = SpiceOptions(),
                  info: Mapping[str, Any] | None = None) -> Circuit:
    """The :class:`Circuit` realizing ``system`` with ``options``; ``info`` adds
    header facts (e.g. ``model_file``, ``model_sha256``)."""
    check_system(system)
    r = options.r_ohm
    tags = unique_tags([p.name for p in system.inputs] + [p.name for p in system.populations], "p")
    acts = sorted({t.activation for p in system.populations for t in p.terms})
    roles = ["neuron", "synapse", "input_synapse", f"loss_{system.loss.function}"] + [f"act_{a}" for a in acts]
    cells: tuple[Cell, ...] = tuple(load_cell(role, options.cells.get(role)) for role in roles)

    inputs: dict[str, tuple[str, ...]] = {}
    src_nodes: dict[str, list[str]] = {}
    stim: list[Element] = []
    for port in system.inputs:
        t = tags[port.name]
        nodes = [f"{t}_v_{i}" for i in range(port.size)]
        src_nodes[port.name] = nodes
        names = tuple(f"Vx_{t}_{i}" for i in range(port.size))
        inputs[port.name] = names
        stim += [Element(n, (node, "0"), "DC 0") for n, node in zip(names, nodes)]
    sections = [Section("clamped inputs (V, one source per component)", tuple(stim))]

    pop_nodes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    gate_nodes: dict[tuple[str, int], tuple[str, ...]] = {}
    for pop in system.populations:
        t = tags[pop.name]
        n = pop.size
        node = {k: [f"{t}_{k}_{j}" for j in range(n)] for k in ("xp", "xm", "xb", "tn", "fd", "sd")}
        pop_nodes[pop.name] = (tuple(node["xp"]), tuple(node["xm"]))
        src_nodes[pop.name] = node["xb"]
        items: list[Element | SynapseArray] = [
            Element(f"Xn_{t}_{j}", tuple(node[k][j] for k in ("xp", "xm", "xb", "tn", "fd", "sd")),
                    "hwbp_neuron_pair")
            for j in range(n)
        ]
        real = system.realization
        if real is not None and (real.nodes is not None or real.rail is not None):
            from hwbp.targets.spice.instance import instance_neurons  # a device instance: own R, C; rails

            items = instance_neurons(t, node, None if real.nodes is None else real.nodes[pop.name], r, options.c_f,
                                     real.rail)
        sections.append(Section(f"population {comment_text(pop.name)} ({n} pairs, level {pop.level})",
                                tuple(items)))
    for pop in system.populations:
        t = tags[pop.name]
        n = pop.size
        for k, term in enumerate(pop.terms):
            items = []
            from_pop = system.is_population(term.source)
            pre = src_nodes[term.source]
            gate = [f"{t}_g{k}_{j}" for j in range(n)]
            if term.weighted:
                if term.weight is not None:
                    gate_nodes[(pop.name, k)] = tuple(gate)
                a = [f"{t}_a{k}_{j}" for j in range(n)]
                items += [Element(f"Ra_{t}_{k}_{j}", (a[j], "0"), spice_number(r)) for j in range(n)]
                # every use of a tied parameter (each position of a convolution kernel,
                # each application of a shared layer) takes its conductance from the one value
                w, b = term_matrix(system.parameters, term)
                wb = None
                if system.realization is not None and term.weight is not None:  # a device instance
                    w, wb, b = system.realization.device_weights((pop.name, k), w, b)
                if term.gain != 1.0:  # the fixed gain g is part of each synapse's conductance
                    w = term.gain * w
                    wb = None if wb is None else term.gain * wb
                if wb is not None:
                    wb = wb / r
                if b is not None:
                    items += [Element(f"Ib_{t}_{k}_{j}", ("0", a[j]), f"DC {spice_number(b[j] / r)}")
                              for j in range(n)]
                sens = src_nodes_sd(src_nodes, tags, term.source) if from_pop else None
                items.append(SynapseArray(
                    f"Xs_{t}_{k}", "hwbp_synapse" if from_pop else "hwbp_synapse_fwd", tuple(pre), tuple(a),
                    tuple(gate) if from_pop else None, tuple(sens) if sens else None,
                    np.asarray(w, dtype=np.float64) / r, mask=None if term.layout is None else term.layout.mask(),
                    backward_s=wb,
                ))
            else:
                a = pre
                if from_pop:
                    sd = src_nodes_sd(src_nodes, tags, term.source)
                    items += [Element(f"Gk_{t}_{k}_{j}", ("0", sd[j], gate[j], "0"), spice_number(1.0 / r))
                              for j in range(n)]
            extra = f" alpha={spice_number(term.alpha)}" if term.activation in ("leaky_relu", "elu") else ""
            if term.activation == "clip" and term.high is not None:
                extra = f" lo={spice_number(term.alpha)} hi={spice_number(term.high)}"
            cell = None
            if system.realization is not None and term.weight is not None:
                cell = system.realization.cell((pop.name, k))
            if cell is None:
                items += [Element(f"Xa_{t}_{k}_{j}", (a[j], f"{t}_tn_{j}", f"{t}_fd_{j}", gate[j]),
                                  f"hwbp_act_{term.activation}{extra}") for j in range(n)]
            else:  # a device instance: the cell's gain and offset errors around the shipped cell
                from hwbp.targets.spice.instance import instance_act

                items += instance_act(f"{t}_{k}", a, f"{t}_tn", f"{t}_fd", gate,
                                      f"hwbp_act_{term.activation}{extra}", cell, r)
            label = term.weight or ("fixed map" if term.layout is not None else f"skip from {term.source}")
            shared = ""
            if term.layout is not None and term.weight is not None:
                shared = (f"; structured: {term.layout.rows.size} synapses take their g from the "
                          f"{system.parameters[term.weight].size} entries of the one parameter")
            sections.append(Section(
                f"{comment_text(pop.name)} term {k}: {term.activation}({comment_text(label)}) "
                f"from {comment_text(term.source)}{comment_text(shared)}", tuple(items)))

    out = system.population(system.loss.population)
    t = tags[out.name]
    targets = tuple(f"Vy_{j}" for j in range(out.size))
    ynodes = [f"hwbp_y_{j}" for j in range(out.size)]
    items = [Element(targets[j], (ynodes[j], "0"), "DC 0") for j in range(out.size)]
    if system.loss.function == "mse":
        items += [Element(f"Xl_{j}", (f"{t}_xb_{j}", ynodes[j], f"{t}_sd_{j}"), "hwbp_loss_mse")
                  for j in range(out.size)]
    else:
        xb = [f"V({t}_xb_{j})" for j in range(out.size)]
        if out.size <= CE_DENSE_MAX:
            # softmax written out per output (not through a log-sum-exp node, whose Newton
            # linearization converges poorly); the max shift keeps every exp() <= 1 at rest
            mx = "hwbp_mx"
            denominator = "(" + "+".join(f"exp({x}-V({mx}))" for x in xb) + ")"
            items.append(Element("Bmx", (mx, "0"), f"V={_max_tree(xb)}"))
            items += [Element(f"Bp_{j}", (f"hwbp_p_{j}", "0"), f"V=exp({xb[j]}-V({mx}))/{denominator}")
                      for j in range(out.size)]
        else:
            # softmax as exp(x_j) * (1 / sum_k exp(x_k)) with the reciprocal of the sum on
            # one shared node.  No max shift: a shift held on its own node cancels only at
            # the solution, not in the Newton steps, and stalls them.  The sum is > 0 at
            # any iterate; exp() overflows only for outputs above about 700 V.
            rs = "hwbp_rs"
            items.append(Element("Brs", (rs, "0"), "V=1/(" + "+".join(f"exp({x})" for x in xb) + ")"))
            items += [Element(f"Bp_{j}", (f"hwbp_p_{j}", "0"), f"V=exp({xb[j]})*V({rs})")
                      for j in range(out.size)]
        items += [Element(f"Xl_{j}", (f"hwbp_p_{j}", ynodes[j], f"{t}_sd_{j}"), "hwbp_loss_ce")
                  for j in range(out.size)]
    sections.append(Section(f"loss port {system.loss.function} on {comment_text(out.name)} "
                            f"(targets in V)", tuple(items)))

    facts = dict(info or {})
    header = (
        f"realizes: hwbp DynamicsSystem {comment_text(system.name)!s}"
        + (f" from model file {comment_text(facts['model_file'])}" if "model_file" in facts else ""),
        *( [f"model sha256: {comment_text(facts['model_sha256'])}"] if "model_sha256" in facts else []),
        f"loss: {system.loss.function} on {comment_text(out.name)}; depth L = {system.depth}",
        f"beta = {spice_number(system.beta)} V of tension per unit of gradient (tension x+ - x- = beta * dl/dx at rest)",
        f"R = {spice_number(r)} ohm, C = {spice_number(options.c_f)} F, tau = R*C = {spice_number(options.tau_s)} s",
        "units: node voltages in V (1 V = 1 unit of activation), conductances in S (g = weight / R),"
        " currents in A, time in s",
        "each synapse is one hwbp_synapse instance whose single parameter g drives both its forward"
        " and its backward element",
        "populations: " + ", ".join(f"{comment_text(p.name)} -> {tags[p.name]} ({p.size})"
                                    for p in system.populations),
        "inputs: " + ", ".join(f"{comment_text(p.name)} -> {tags[p.name]} ({p.size})" for p in system.inputs),
    )
    params = (("hwbp_r", spice_number(r)), ("hwbp_c", spice_number(options.c_f)), ("hwbp_beta", spice_number(system.beta)))
    opts = {"reltol": spice_number(options.reltol), "abstol": spice_number(options.abstol_a),
            "vntol": spice_number(options.vntol_v), "itl1": str(int(options.itl1))}
    return Circuit(
        title=f"hwbp netlist of {comment_text(system.name)}",
        header=header,
        params=params,
        cells=cells,
        sections=tuple(sections),
        inputs=MappingProxyType(inputs),
        targets=targets,
        nodes=MappingProxyType(pop_nodes),
        options=MappingProxyType(opts),
        gates=MappingProxyType(gate_nodes),
    )


def src_nodes_sd(src_nodes: Mapping[str, list[str]], tags: Mapping[str, str], population: str) -> list[str]:
    """Sensitivity summing nodes of ``population`` (same order as its mean nodes)."""
    t = tags[population]
    return [f"{t}_sd_{j}" for j in range(len(src_nodes[population]))]


def stimulus(circuit: Circuit, x: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """Source name -> DC value (V) for one sample: inputs ``x[name]`` (``(n,)``) and targets ``y``."""
    out: dict[str, float] = {}
    for name, sources in circuit.inputs.items():
        v = np.asarray(x[name], dtype=np.float64).reshape(-1)
        if v.shape[0] != len(sources):
            raise ConfigError(f"spice: input {name!r} has {v.shape[0]} values, circuit has {len(sources)} sources")
        out.update(zip(sources, map(float, v)))
    yv = np.asarray(y, dtype=np.float64).reshape(-1)
    out.update(zip(circuit.targets, map(float, yv)))
    return out
