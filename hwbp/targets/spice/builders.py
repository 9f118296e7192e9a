"""Per-element builders of the circuit object model, one per element kind.

Each builder takes the :class:`BuildContext` (the system, options, name tags and the
node names decided so far) and returns :class:`~hwbp.targets.spice.model.Section`
objects; :func:`hwbp.targets.spice.build.build_circuit` calls them in netlist order
(stimulus, neurons, per term: synapses and activation cells, loss port).  A new
element kind (another synapse layout, another activation cell, a per-element
non-ideality) is a new builder or a wrapper around one; the writer never changes.
Node names are those of the module docstring of :mod:`hwbp.targets.spice.build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from hwbp.lower.system import DynamicsSystem
from hwbp.targets.spice.model import REALIZATIONS, Element, Section, SpiceOptions, SynapseArray
from hwbp.targets.spice.names import comment_text
from hwbp.targets.spice.writer import spice_number

__all__ = ["BuildContext", "stimulus_section", "neuron_sections", "synapse_items", "activation_items",
           "term_section", "loss_section", "CE_DENSE_MAX"]

#: Widest softmax-CE output written out in full per output node (O(n^2) text, robust
#: for large logits); wider outputs share one normalizer node (O(n) text).  Measured
#: (1 sample, .op): 10 outputs 0.06 s either way; 256 outputs 13.5 s in full against
#: 0.4 s shared; but with logits of tens of volts the shared form stalled Newton at
#: 64 outputs (> 60 s) where the full form took 0.5 s.
CE_DENSE_MAX = 32

#: Neuron cell ports, in order.
NEURON_PORTS = ("xp", "xm", "xb", "tn", "fd", "sd")


@dataclass
class BuildContext:
    """What builders share: the system, the options, the name tag of every input and
    population, and the nodes decided so far.

    Attributes
    ----------
    inputs : dict
        Input port -> names of its clamped voltage sources.
    source : dict
        Input port or population -> the nodes its consumers read (input voltages or
        neuron means ``xb``).
    pair : dict
        Population -> (x+ nodes, x- nodes).
    state : dict
        Population -> its two RC state node lists (see :data:`REALIZATIONS`).
    gates : dict
        ``(population, term index)`` -> gate nodes of a weighted term.
    """

    system: DynamicsSystem
    options: SpiceOptions
    tags: Mapping[str, str]
    inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: dict[str, list[str]] = field(default_factory=dict)
    pair: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    state: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    gates: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)

    def node(self, population: str, kind: str) -> list[str]:
        """Nodes ``<tag>_<kind>_<j>`` of every neuron of ``population``."""
        t = self.tags[population]
        return [f"{t}_{kind}_{j}" for j in range(self.system.population(population).size)]


def stimulus_section(ctx: BuildContext) -> list[Section]:
    """One clamped voltage source per input component (``Vx_<tag>_<i>``, 0 V until a
    runner sets the sample's value)."""
    stim: list[Element] = []
    for port in ctx.system.inputs:
        t = ctx.tags[port.name]
        nodes = [f"{t}_v_{i}" for i in range(port.size)]
        names = tuple(f"Vx_{t}_{i}" for i in range(port.size))
        ctx.source[port.name] = nodes
        ctx.inputs[port.name] = names
        stim += [Element(n, (node, "0"), "DC 0") for n, node in zip(names, nodes)]
    return [Section("clamped inputs (V, one source per component)", tuple(stim))]


def neuron_sections(ctx: BuildContext) -> list[Section]:
    """One neuron cell per neuron (the realization's cell), one section per population."""
    real = REALIZATIONS[ctx.options.realization]
    cell = "hwbp_neuron_pair" if real["cell"] == "neuron" else "hwbp_neuron_diff"
    a, b = real["state"]  # type: ignore[misc]
    out = []
    for pop in ctx.system.populations:
        t = ctx.tags[pop.name]
        node = {k: ctx.node(pop.name, k) for k in NEURON_PORTS}
        ctx.pair[pop.name] = (tuple(node["xp"]), tuple(node["xm"]))
        ctx.state[pop.name] = (tuple(node[a]), tuple(node[b]))
        ctx.source[pop.name] = node["xb"]
        items = tuple(Element(f"Xn_{t}_{j}", tuple(node[k][j] for k in NEURON_PORTS), cell) for j in range(pop.size))
        out.append(Section(f"population {comment_text(pop.name)} ({pop.size} pairs, level {pop.level})", items))
    return out


def synapse_items(ctx: BuildContext, population: str, k: int) -> tuple[list[Element | SynapseArray], list[str]]:
    """Term ``k`` of ``population``: its pre-activation nodes and what drives them.

    A weighted term gets pre-activation nodes ``<tag>_a<k>_<j>`` (R to ground, bias
    current ``b/R``) fed by one synapse per weight (``hwbp_synapse`` from a population,
    carrying the gate back; ``hwbp_synapse_fwd`` from an input): the shipped cells are
    written inline as G elements (``SynapseArray.flat``), a user's cell is instantiated.
    A skip term reads its source's means directly and returns its gate into the
    source's sensitivity node through one G element per neuron.
    """
    system, r = ctx.system, ctx.options.r_ohm
    pop = system.population(population)
    term = pop.terms[k]
    t, n = ctx.tags[population], pop.size
    from_pop = system.is_population(term.source)
    pre = ctx.source[term.source]
    gate = [f"{t}_g{k}_{j}" for j in range(n)]
    items: list[Element | SynapseArray] = []
    if term.weight is None:
        if from_pop:
            sd = ctx.node(term.source, "sd")
            items += [Element(f"Gk_{t}_{k}_{j}", ("0", sd[j], gate[j], "0"), spice_number(1.0 / r)) for j in range(n)]
        return items, list(pre)
    ctx.gates[(population, k)] = tuple(gate)
    a = [f"{t}_a{k}_{j}" for j in range(n)]
    items += [Element(f"Ra_{t}_{k}_{j}", (a[j], "0"), spice_number(r)) for j in range(n)]
    if term.bias is not None:
        bias = system.parameters[term.bias]
        items += [Element(f"Ib_{t}_{k}_{j}", ("0", a[j]), f"DC {spice_number(bias[j] / r)}") for j in range(n)]
    w = np.asarray(system.parameters[term.weight], dtype=np.float64)
    sens = tuple(ctx.node(term.source, "sd")) if from_pop else None
    role = "synapse" if from_pop else "input_synapse"
    items.append(SynapseArray(f"Xs_{t}_{k}", "hwbp_synapse" if from_pop else "hwbp_synapse_fwd", tuple(pre),
                              tuple(a), tuple(gate) if from_pop else None, sens, w / r,
                              flat=role not in ctx.options.cells))
    return items, a


def activation_items(ctx: BuildContext, population: str, k: int, a: list[str]) -> list[Element]:
    """One ``hwbp_act_<f>`` cell per neuron: ``f(a)/R`` into the forward summing node,
    ``f'(a) * T`` on the gate node."""
    pop = ctx.system.population(population)
    term = pop.terms[k]
    t = ctx.tags[population]
    extra = f" alpha={spice_number(term.alpha)}" if term.activation == "leaky_relu" else ""
    return [Element(f"Xa_{t}_{k}_{j}", (a[j], f"{t}_tn_{j}", f"{t}_fd_{j}", f"{t}_g{k}_{j}"),
                    f"hwbp_act_{term.activation}{extra}") for j in range(pop.size)]


def term_section(ctx: BuildContext, population: str, k: int) -> Section:
    """Term ``k`` of ``population``: synapses (or skip path) and activation cells."""
    term = ctx.system.population(population).terms[k]
    items, a = synapse_items(ctx, population, k)
    items += activation_items(ctx, population, k, a)
    label = term.weight or f"skip from {term.source}"
    return Section(f"{comment_text(population)} term {k}: {term.activation}({comment_text(label)}) "
                   f"from {comment_text(term.source)}", tuple(items))


def _max_tree(terms: list[str]) -> str:
    """``max`` of the expressions as a balanced tree of two-argument calls."""
    while len(terms) > 1:
        pairs = [f"max({a},{b})" for a, b in zip(terms[0::2], terms[1::2])]
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def loss_section(ctx: BuildContext) -> tuple[Section, tuple[str, ...]]:
    """The loss port on the output population's sensitivity nodes, and the names of
    the target sources (one per output).

    ``hwbp_loss_mse`` is a transconductance to the target source; ``hwbp_loss_ce`` the
    same from a softmax node ``hwbp_p_<j>`` per output: up to :data:`CE_DENSE_MAX`
    outputs each node writes the max-shifted softmax out in full (Newton solves it
    robustly even for large logits); wider outputs divide by one shared node
    ``hwbp_rs`` holding ``1 / sum_k exp(x_k)`` (O(n) netlist text).
    """
    system = ctx.system
    out = system.population(system.loss.population)
    t = ctx.tags[out.name]
    targets = tuple(f"Vy_{j}" for j in range(out.size))
    ynodes = [f"hwbp_y_{j}" for j in range(out.size)]
    items: list[Element] = [Element(targets[j], (ynodes[j], "0"), "DC 0") for j in range(out.size)]
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
    title = f"loss port {system.loss.function} on {comment_text(out.name)} (targets in V)"
    return Section(title, tuple(items)), targets
