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

from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem, dense_term_matrix
from hwbp.targets.spice.model import REALIZATIONS, Element, Section, SpiceOptions, SynapseArray
from hwbp.targets.spice.names import comment_text
from hwbp.targets.spice.writer import spice_number

__all__ = ["BuildContext", "stimulus_section", "neuron_sections", "device_neurons", "source_activation_sections",
           "synapse_items", "activation_items", "term_section", "loss_section", "CE_DENSE_MAX", "source_key"]

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
    phi : dict
        :func:`source_key` -> ``(φ nodes, backward summing nodes)`` of a source-side
        activation (:func:`source_activation_sections`).
    """

    system: DynamicsSystem
    options: SpiceOptions
    tags: Mapping[str, str]
    inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: dict[str, list[str]] = field(default_factory=dict)
    pair: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    state: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    gates: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    phi: dict[tuple[str, str, float], tuple[list[str], list[str]]] = field(default_factory=dict)

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
    """One neuron cell per neuron (the realization's cell), one section per population.

    A device instance (:mod:`hwbp.hardware`) with per-node R and C or rails has each
    neuron written out in primitive elements (:func:`~hwbp.targets.spice.instance.instance_neurons`,
    x+ and x- as the RC nodes); :func:`~hwbp.targets.spice.build.build_circuit` then
    builds with the ``pair`` realization."""
    real = REALIZATIONS[ctx.options.realization]
    cell = "hwbp_neuron_pair" if real["cell"] == "neuron" else "hwbp_neuron_diff"
    a, b = real["state"]  # type: ignore[misc]
    device = ctx.system.instance
    out = []
    for pop in ctx.system.populations:
        t = ctx.tags[pop.name]
        node = {k: ctx.node(pop.name, k) for k in NEURON_PORTS}
        ctx.pair[pop.name] = (tuple(node["xp"]), tuple(node["xm"]))
        ctx.state[pop.name] = (tuple(node[a]), tuple(node[b]))
        ctx.source[pop.name] = node["xb"]
        if device_neurons(ctx.system):
            from hwbp.targets.spice.instance import instance_neurons  # a device instance: own R, C; rails

            items = tuple(instance_neurons(t, node, None if device.nodes is None else device.nodes[pop.name],
                                           ctx.options.r_ohm, ctx.options.c_f, device.rail))
        else:
            items = tuple(Element(f"Xn_{t}_{j}", tuple(node[k][j] for k in NEURON_PORTS), cell)
                          for j in range(pop.size))
        out.append(Section(f"population {comment_text(pop.name)} ({pop.size} pairs, level {pop.level})", items))
    return out


def device_neurons(system: DynamicsSystem) -> bool:
    """Whether ``system`` is a device instance whose neurons need primitive elements
    (per-node R and C, or rails)."""
    real = system.instance
    return real is not None and (real.nodes is not None or real.rail is not None)


def source_key(term) -> tuple[str, str, float]:
    """``(source, φ, alpha)``: terms with the same key share one source-side cell per neuron."""
    return term.source, term.source_activation, float(term.source_alpha)


def _act_model(activation: str, alpha: float, high: float | None) -> str:
    """The instance model of an ``hwbp_act_<f>`` cell with its parameters."""
    if activation in ("leaky_relu", "elu"):
        return f"hwbp_act_{activation} alpha={spice_number(alpha)}"
    if activation == "clip" and high is not None:
        return f"hwbp_act_{activation} lo={spice_number(alpha)} hi={spice_number(high)}"
    return f"hwbp_act_{activation}"


def source_activation_sections(ctx: BuildContext) -> list[Section]:
    """Source-side activations ``φ`` (terms ``f(g W φ(u) + b)``, the pre-activation layers
    of the depth studies): per source and ``φ``, one ``hwbp_act_<φ>`` cell per source
    neuron, the same cell as a term's.  It reads the mean ``xb`` (the clamped voltage of
    an input) and drives ``φ(xb)/R`` into ``<v>_u<i>_<j>`` (R to ground: the node holds
    ``φ(xb)``, which the terms' synapses read).  The synapses return their backward
    currents into ``<v>_ub<i>_<j>`` (R to ground: ``g Wᵀ e``); the cell's gate
    ``φ'(xb) * V(ub)`` on ``<v>_ug<i>_<j>`` is injected into the source's sensitivity
    node by one G element (``1/R``): the sensitivity drive ``φ'(ū) ⊙ g Wᵀ e``."""
    system, r = ctx.system, ctx.options.r_ohm
    keys: list[tuple[str, str, float]] = []
    for pop in system.populations:
        keys += [source_key(t) for t in pop.terms if t.source_activation != "identity" and source_key(t) not in keys]
    out = []
    for key in keys:
        source, act, alpha = key
        t, i = ctx.tags[source], sum(1 for other in ctx.phi if other[0] == source)
        n = len(ctx.source[source])
        phi, back, gate = ([f"{t}_{kind}{i}_{j}" for j in range(n)] for kind in ("u", "ub", "ug"))
        ctx.phi[key] = (phi, back)
        from_pop = system.is_population(source)
        model = _act_model(act, alpha, None)
        items: list[Element] = []
        for j in range(n):
            # a clamped input has no sensitivity: its cell reads a tension of 0 V
            items += [Element(f"Xu_{t}_{i}_{j}", (ctx.source[source][j], back[j] if from_pop else "0", phi[j],
                                                   gate[j]), model),
                      Element(f"Ru_{t}_{i}_{j}", (phi[j], "0"), spice_number(r))]
            if from_pop:
                items += [Element(f"Rub_{t}_{i}_{j}", (back[j], "0"), spice_number(r)),
                          Element(f"Gu_{t}_{i}_{j}", ("0", ctx.node(source, "sd")[j], gate[j], "0"),
                                  spice_number(1.0 / r))]
        out.append(Section(f"source-side {act} of {comment_text(source)} ({n} cells: phi(xb) for the synapses, "
                           "phi'(xb) gating their backward sum)", tuple(items)))
    return out


def synapse_items(ctx: BuildContext, population: str, k: int) -> tuple[list[Element | SynapseArray], list[str]]:
    """Term ``k`` of ``population``: its pre-activation nodes and what drives them.

    A term with a matrix (a weight, or a structured layout such as a convolution or a
    fixed pooling map) gets pre-activation nodes ``<tag>_a<k>_<j>`` (R to ground, bias
    current ``b/R``) fed by one synapse per structural entry of the dense matrix of
    :func:`~hwbp.lower.system.dense_term_matrix` (``hwbp_synapse`` from a population,
    carrying the gate back; ``hwbp_synapse_fwd`` from an input): the shipped cells are
    written inline as G elements (``SynapseArray.flat``), a user's cell is instantiated.
    Every use of a tied parameter takes its conductance from the one value; the fixed
    gain multiplies each conductance; a device instance of a hardware model has its own
    forward and backward devices (``SynapseArray.backward_s``).  A skip term reads its
    source's means directly and returns its gate into the source's sensitivity node
    through one G element per neuron.
    """
    system, r = ctx.system, ctx.options.r_ohm
    pop = system.population(population)
    term = pop.terms[k]
    t, n = ctx.tags[population], pop.size
    from_pop = system.is_population(term.source)
    pre = ctx.source[term.source]
    sens_nodes = ctx.node(term.source, "sd") if from_pop else None
    if term.source_activation != "identity":  # the synapses read φ(xb), return into the source-side cell
        pre, back = ctx.phi[source_key(term)]
        sens_nodes = back if from_pop else None
    gate = [f"{t}_g{k}_{j}" for j in range(n)]
    items: list[Element | SynapseArray] = []
    if not term.weighted:
        if from_pop:
            sd = ctx.node(term.source, "sd")
            items += [Element(f"Gk_{t}_{k}_{j}", ("0", sd[j], gate[j], "0"), spice_number(1.0 / r)) for j in range(n)]
        return items, list(pre)
    if term.weight is not None:
        ctx.gates[(population, k)] = tuple(gate)
    a = [f"{t}_a{k}_{j}" for j in range(n)]
    items += [Element(f"Ra_{t}_{k}_{j}", (a[j], "0"), spice_number(r)) for j in range(n)]
    w, b = dense_term_matrix(system.parameters, term)  # one synapse element per entry
    wb = None
    if system.instance is not None and term.weight is not None:  # a device instance
        w, wb, b = system.instance.device_weights((population, k), w, b)
    if term.gain != 1.0:  # the fixed gain g is part of each synapse's conductance
        w = term.gain * w
        wb = None if wb is None else term.gain * wb
    if b is not None:
        items += [Element(f"Ib_{t}_{k}_{j}", ("0", a[j]), f"DC {spice_number(b[j] / r)}") for j in range(n)]
    sens = tuple(sens_nodes) if sens_nodes is not None else None
    role = "synapse" if from_pop else "input_synapse"
    items.append(SynapseArray(f"Xs_{t}_{k}", "hwbp_synapse" if from_pop else "hwbp_synapse_fwd", tuple(pre),
                              tuple(a), tuple(gate) if from_pop else None, sens,
                              np.asarray(w, dtype=np.float64) / r,
                              mask=None if term.layout is None else term.layout.mask(),
                              backward_s=None if wb is None else wb / r, flat=role not in ctx.options.cells))
    return items, a


def activation_items(ctx: BuildContext, population: str, k: int, a: list[str]) -> list[Element]:
    """One ``hwbp_act_<f>`` cell per neuron: ``f(a)/R`` into the forward summing node,
    ``f'(a) * T`` on the gate node (``alpha=`` for leaky_relu and elu, ``lo= hi=`` for
    clip).  A device instance's cell errors wrap each cell
    (:func:`~hwbp.targets.spice.instance.instance_act`)."""
    system, r = ctx.system, ctx.options.r_ohm
    pop = system.population(population)
    term = pop.terms[k]
    t = ctx.tags[population]
    model = _act_model(term.activation, term.alpha, term.high)
    gate = [f"{t}_g{k}_{j}" for j in range(pop.size)]
    cell = None
    if system.instance is not None and term.weight is not None:
        cell = system.instance.cell((population, k))
        if getattr(system.instance, "curve", None) and system.instance.curve((population, k), None, None) is not None:
            raise ConfigError("the spice backend realizes [cells] as a gain and an offset; tabulated [curves] and "
                              "gate = 'pair' run on the reference backend (the transistor cells: --pdk sky130)")
    if cell is not None:  # a device instance: the cell's gain and offset errors around the shipped cell
        from hwbp.targets.spice.instance import instance_act

        return instance_act(f"{t}_{k}", a, f"{t}_tn", f"{t}_fd", gate, model, cell, r)
    return [Element(f"Xa_{t}_{k}_{j}", (a[j], f"{t}_tn_{j}", f"{t}_fd_{j}", gate[j]), model)
            for j in range(pop.size)]


def term_section(ctx: BuildContext, population: str, k: int) -> Section:
    """Term ``k`` of ``population``: synapses (or skip path) and activation cells."""
    term = ctx.system.population(population).terms[k]
    items, a = synapse_items(ctx, population, k)
    items += activation_items(ctx, population, k, a)
    label = term.weight or ("fixed map" if term.layout is not None else f"skip from {term.source}")
    shared = ""
    if term.layout is not None and term.weight is not None:
        shared = (f"; structured: {term.layout.rows.size} synapses take their g from the "
                  f"{ctx.system.parameters[term.weight].size} entries of the one parameter")
    return Section(f"{comment_text(population)} term {k}: {term.activation}({comment_text(label)}) "
                   f"from {comment_text(term.source)}{comment_text(shared)}", tuple(items))


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
