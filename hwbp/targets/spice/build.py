"""Build the circuit object model of a :class:`~hwbp.lower.DynamicsSystem`.

Realization (normalized units: 1 V of node voltage is one unit of activation or
sensitivity; a weight ``w`` is the conductance ``g = w / R`` in S):

* each neuron of population ``v`` is one neuron cell with nodes
  ``<v>_xp_<j>``, ``<v>_xm_<j>`` (the conjugate pair), ``<v>_xb_<j>`` (mean),
  ``<v>_tn_<j>`` (tension) and the summing nodes ``<v>_fd_<j>``, ``<v>_sd_<j>``:
  ``hwbp_neuron_diff`` (realization ``differential``, the default: xb and tn are the
  RC nodes, x+- derived) or ``hwbp_neuron_pair`` (``pair``: x+ and x- are the RC
  nodes, xb and tn derived); both have the same DC solution and dynamics;
* term ``k`` of ``v`` with a matrix (a weight, or a structured layout: convolution,
  pooling, batch normalization) has a pre-activation node ``<v>_a<k>_<j>`` (R to
  ground, bias current ``b/R``) fed by one synapse per structural entry (the ``hwbp_synapse``
  cell's two G elements written inline, or an instance of a replacement cell);
  an ``hwbp_act_<f>`` cell turns it into the forward current ``f(a)/R`` and the
  gate voltage ``f'(a) * T`` on ``<v>_g<k>_<j>``, which the same synapse instances
  carry back to the source population's sensitivity nodes;
* a source-side activation ``φ`` (a term ``f(g W φ(u) + b)``) is one more
  ``hwbp_act_<φ>`` cell per source neuron: its synapses read ``φ(xb)`` and their
  backward sum is gated by ``φ'(xb)`` before it reaches the source's sensitivity node
  (:func:`~hwbp.targets.spice.builders.source_activation_sections`);
* the loss port drives the output population's sensitivity nodes (``hwbp_loss_mse``
  or ``hwbp_loss_ce``, see :func:`~hwbp.targets.spice.builders.loss_section`);
* inputs and targets are clamped voltage sources whose values a runner sets per sample.

The batch is applied sample by sample to this one circuit (the stimulus sources are
re-valued and the circuit re-solved), so every weight exists exactly once.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from hwbp.errors import ConfigError, ModelError
from hwbp.ir.activations import ACTIVATIONS
from hwbp.lower.system import DynamicsSystem
from hwbp.targets.spice.builders import (
    CE_DENSE_MAX, BuildContext, device_neurons, loss_section, neuron_sections, source_activation_sections,
    stimulus_section, term_section,
)
from hwbp.targets.spice.model import REALIZATIONS, Cell, Circuit, SpiceOptions, load_cell
from hwbp.targets.spice.names import comment_text, unique_tags
from hwbp.targets.spice.writer import spice_number

__all__ = ["build_circuit", "check_system", "stimulus", "CE_DENSE_MAX"]

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
            if term.source_activation not in ACTIVATIONS or term.source_activation == "clip":
                raise ModelError(f"spice: population {pop.name!r}: source-side activation "
                                 f"{term.source_activation!r} has no cell; valid: "
                                 f"{', '.join(sorted(set(ACTIVATIONS) - {'clip'}))}")
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
    header facts (e.g. ``model_file``, ``model_sha256``).  The sections come from the
    per-element builders of :mod:`hwbp.targets.spice.builders`, in netlist order.  A
    device instance with per-node R and C or rails is always built with the ``pair``
    realization (its x+ and x- nodes each have their own R and C)."""
    check_system(system)
    if device_neurons(system) and options.realization != "pair":
        # per-node R and C of x+ and x- (or rails on them) need x+ and x- as the RC nodes
        options = replace(options, realization="pair")
    tags = unique_tags([p.name for p in system.inputs] + [p.name for p in system.populations], "p")
    ctx = BuildContext(system, options, tags)
    sections = stimulus_section(ctx) + neuron_sections(ctx) + source_activation_sections(ctx)
    sections += [term_section(ctx, pop.name, k) for pop in system.populations for k in range(len(pop.terms))]
    loss, targets = loss_section(ctx)
    sections.append(loss)
    return Circuit(
        title=f"hwbp netlist of {comment_text(system.name)}",
        header=_header(system, options, tags, info),
        params=(("hwbp_r", spice_number(options.r_ohm)), ("hwbp_c", spice_number(options.c_f)),
                ("hwbp_beta", spice_number(system.beta))),
        cells=_cells(system, options),
        sections=tuple(sections),
        inputs=MappingProxyType(ctx.inputs),
        targets=targets,
        nodes=MappingProxyType(ctx.pair),
        options=MappingProxyType(_solver_options(options)),
        gates=MappingProxyType(ctx.gates),
        realization=options.realization,
        state=MappingProxyType(ctx.state),
    )


def _cells(system: DynamicsSystem, options: SpiceOptions) -> tuple[Cell, ...]:
    """The cells the circuit instantiates (neuron of the realization, synapses, loss,
    one per activation used)."""
    terms = [t for p in system.populations for t in p.terms]
    acts = sorted({t.activation for t in terms} | ({t.source_activation for t in terms} - {"identity"}))
    # the shipped synapse cells are written inline (G elements); a user's is instantiated
    syn = [r for r in ("synapse", "input_synapse") if r in options.cells]
    roles = [str(REALIZATIONS[options.realization]["cell"]), *syn,
             f"loss_{system.loss.function}"] + [f"act_{a}" for a in acts]
    return tuple(load_cell(role, options.cells.get(role)) for role in roles)


def _solver_options(options: SpiceOptions) -> dict[str, str]:
    """``.options`` entries: tolerances, iteration limit, the realization's tuning."""
    opts = {"reltol": spice_number(options.reltol), "abstol": spice_number(options.abstol_a),
            "vntol": spice_number(options.vntol_v), "itl1": str(int(options.itl1))}
    opts.update((k, spice_number(v)) for k, v in options.solver_options.items())
    return opts


def _header(system: DynamicsSystem, options: SpiceOptions, tags: Mapping[str, str],
            info: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Comment lines saying what the netlist realizes, with units."""
    facts = dict(info or {})
    out = system.population(system.loss.population)
    state = "x+ and x- are the RC nodes" if options.realization == "pair" else \
        "mean xb and tension tn are the RC nodes, x+ = xb + tn/2 and x- = xb - tn/2 derived"
    return (
        f"realizes: hwbp DynamicsSystem {comment_text(system.name)!s}"
        + (f" from model file {comment_text(facts['model_file'])}" if "model_file" in facts else ""),
        *([f"model sha256: {comment_text(facts['model_sha256'])}"] if "model_sha256" in facts else []),
        f"loss: {system.loss.function} on {comment_text(out.name)}; depth L = {system.depth}",
        f"beta = {spice_number(system.beta)} V of tension per unit of gradient "
        "(tension x+ - x- = beta * dl/dx at rest)",
        f"R = {spice_number(options.r_ohm)} ohm, C = {spice_number(options.c_f)} F, "
        f"tau = R*C = {spice_number(options.tau_s)} s",
        f"realization: {options.realization} ({state})",
        "units: node voltages in V (1 V = 1 unit of activation), conductances in S (g = weight / R),"
        " currents in A, time in s",
        "each synapse's one conductance g (S) drives its forward element Gsf_* and its backward element"
        " Gsb_* (the hwbp_synapse cell written inline; a replacement cell is one instance Xs_* per synapse)",
        "populations: " + ", ".join(f"{comment_text(p.name)} -> {tags[p.name]} ({p.size})"
                                    for p in system.populations),
        "inputs: " + ", ".join(f"{comment_text(p.name)} -> {tags[p.name]} ({p.size})" for p in system.inputs),
    )


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
