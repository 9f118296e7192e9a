"""The lowered system as Brian2 model descriptions: equation strings and connectivity.

Pure Python (no Brian2 import): the runner (:mod:`hwbp.targets.brian2.runner`) and the
script emitter (:mod:`hwbp.targets.brian2.emit`) both build from the same
:class:`Brian2Model`, so the script a person reads is the model that runs.

Each population ``v`` is a ``NeuronGroup`` of ``batch * n`` neurons (one copy of the
network per sample, neuron ``b * n + j``) with the conjugate pair in its mean/tension
coordinates (``x± = xbar ± T/2``)::

    dxbar/dt = (-xbar + y0 + y1 + ...) / tau       : 1   (forward)
    dT/dt    = (-T + s0 + s1 + ... [+ loss]) / tau  : 1   (sensitivity)
    z0 = a0 + b0 : 1            pre-activation of term 0 (a0 summed by its synapses)
    y0 = tanh(z0) : 1           its activation
    gate0 = (1 - y0**2) * T : 1 gated sensitivity e = f'(z0) ⊙ T

Each term is a ``Synapses`` object from the source group with ONE weight variable
``w`` that feeds both the forward pre-activation (``a0_post = w * xbar_pre``, summed)
and, on the presynaptic side, the backward sum (``s0_pre = w * gate0_post``, summed).
A fixed gain ``g`` of a term multiplies ``w`` in both sums.  A source-side activation
``φ`` (the pre-activation layers of the depth studies, ``f(g W φ(u) + b)``) is computed
by the source group (``phi0 = tanh(xbar) : 1`` and its derivative ``dphi0``): the
forward sum reads ``phi0_pre`` and the backward sum is gated on the source side
(``s0_pre = g * w * gate0_post * dphi0_pre``).
A skip term (no weight) is a one-to-one ``Synapses`` without ``w``.  The loss port is
part of the output population's equations (``beta * (xbar - target)`` for mse;
``beta * (1/Z - target)`` for ce, with ``Z = sum_k exp(xbar_k - xbar_j)`` summed by a
``softmax`` ``Synapses`` inside each sample, so ``1/Z`` is the softmax).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem, Term

__all__ = ["GroupSpec", "SynapseSpec", "Brian2Model", "build_model", "ACTIVATION_EQUATIONS", "connectivity",
           "source_outputs", "presynaptic_variable"]

#: Per activation: (output y from pre-activation z, derivative f'(z) from z and y).  The
#: same closed forms as :mod:`hwbp.ir.activations` (sigmoid through tanh, relu'(0) = 0);
#: gelu calls ``hwbp_erfc`` (:mod:`hwbp.targets.brian2.functions`; Brian2 has no erf).
ACTIVATION_EQUATIONS: dict[str, tuple[str, str]] = {
    "identity": ("{z}", "1"),
    "tanh": ("tanh({z})", "(1 - {y}**2)"),
    "sigmoid": ("0.5 * (1 + tanh(0.5 * {z}))", "{y} * (1 - {y})"),
    "relu": ("clip({z}, 0, inf)", "int({z} > 0)"),
    "leaky_relu": ("{z} * int({z} > 0) + {alpha} * {z} * int({z} <= 0)", "(int({z} > 0) + {alpha} * int({z} <= 0))"),
    "softplus": ("clip({z}, 0, inf) + log1p(exp(-abs({z})))", "0.5 * (1 + tanh(0.5 * {z}))"),
    "elu": ("{z} * int({z} > 0) + {alpha} * expm1(clip({z}, -inf, 0))",
            "(int({z} > 0) + {alpha} * exp(clip({z}, -inf, 0)) * int({z} <= 0))"),
    "silu": ("{z} * 0.5 * (1 + tanh(0.5 * {z}))",
             "0.5 * (1 + tanh(0.5 * {z})) * (1 + {z} * (1 - 0.5 * (1 + tanh(0.5 * {z}))))"),
    "softsign": ("{z} / (1 + abs({z}))", "1 / (1 + abs({z}))**2"),
    "hardtanh": ("clip({z}, -1, 1)", "int({z} > -1) * int({z} < 1)"),
    "relu6": ("clip({z}, 0, 6)", "int({z} > 0) * int({z} < 6)"),
    "clip": ("clip({z}, {alpha}, {high})", "int({z} > {alpha}) * int({z} < {high})"),
    "gelu": ("0.5 * {z} * hwbp_erfc(-0.7071067811865476 * {z})",
             "(0.5 * hwbp_erfc(-0.7071067811865476 * {z}) + 0.3989422804014327 * {z} * exp(-0.5 * {z}**2))"),
    "gelu_tanh": ("0.5 * {z} * (1 + tanh(0.7978845608028654 * ({z} + 0.044715 * {z}**3)))",
                  "(0.5 * (1 + tanh(0.7978845608028654 * ({z} + 0.044715 * {z}**3))) + 0.5 * {z} * "
                  "(1 - tanh(0.7978845608028654 * ({z} + 0.044715 * {z}**3))**2) * 0.7978845608028654 * "
                  "(1 + 0.134145 * {z}**2))"),
}


def _ident(name: str, taken: set[str]) -> str:
    """A Brian2 object name for hwbp name ``name`` (letters, digits, underscores; unique)."""
    base = re.sub(r"\W", "_", name).strip("_") or "group"
    if base[0].isdigit():
        base = "p_" + base
    base = base.lower()
    out, i = base, 1
    while out in taken or out.startswith("brian") or out.startswith("_"):
        i += 1
        out = f"{base}_{i}"
    taken.add(out)
    return out


@dataclass(frozen=True)
class GroupSpec:
    """One ``NeuronGroup``: a population (or a clamped input port).

    Attributes
    ----------
    name : str
        Brian2 object name (an identifier).
    source : str
        The hwbp population or input port it realizes.
    size : int
        Neurons per sample.
    equations : str
        Brian2 model equations (units: ``tau`` in seconds, everything else ``1``).
    is_input : bool
        A clamped input (variable ``x``, no dynamics).
    biases : tuple of (str, str)
        ``(variable, parameter name)`` of each bias constant.
    gates : tuple of (int, str)
        ``(term index, variable)`` of the gate signal of each weighted term.
    events : tuple of (str, str, str)
        Event-driven mode: ``(event, condition, code run on the event)``; the forward
        event ``send`` and one backward event ``send_e<k>`` per term that reads a
        population (their counters are ``n_send`` and ``n_send_e<k>``).
    """

    name: str
    source: str
    size: int
    equations: str
    is_input: bool = False
    biases: tuple[tuple[str, str], ...] = ()
    gates: tuple[tuple[int, str], ...] = ()
    events: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class SynapseSpec:
    """One ``Synapses`` object: a term (dense or one-to-one), or the softmax normalizer.

    ``forward_var``/``backward_var`` are the summed targets (the backward one on the
    presynaptic group, ``None`` when the source is an input).  In event-driven mode the
    sums are accumulated on events instead: ``on_pre`` runs on the presynaptic ``send``
    event, ``on_post`` on the postsynaptic event ``post_event``.
    """

    name: str
    pre: str
    post: str
    kind: Literal["dense", "one_to_one", "softmax"]
    model: str
    weight: str | None = None
    forward_var: str | None = None
    backward_var: str | None = None
    on_pre: str | None = None
    on_post: str | None = None
    post_event: str | None = None


@dataclass(frozen=True)
class Brian2Model:
    """Groups (inputs first, then populations in topological order) and synapses."""

    system: DynamicsSystem
    groups: tuple[GroupSpec, ...]
    synapses: tuple[SynapseSpec, ...]
    loss_group: str
    events: bool = False

    @property
    def functions(self) -> tuple[str, ...]:
        """The functions of :mod:`hwbp.targets.brian2.functions` the equations call."""
        from hwbp.targets.brian2.functions import FUNCTION_NAMES

        return tuple(f for f in FUNCTION_NAMES if any(f"{f}(" in g.equations for g in self.groups))

    def group(self, source: str) -> GroupSpec:
        """The group realizing hwbp population or input ``source``."""
        for g in self.groups:
            if g.source == source:
                return g
        raise ConfigError(f"no Brian2 group realizes {source!r}")


def _term_lines(k: int, term: Term) -> list[str]:
    y_expr, df_expr = ACTIVATION_EQUATIONS[term.activation]
    alpha = repr(float(term.alpha))
    high = repr(float(term.high)) if term.high is not None else "inf"
    z = f"z{k}"
    pre = f"a{k} + b{k}" if term.bias is not None else f"a{k}"
    lines = [f"{z} = {pre} : 1"]
    lines.append(f"y{k} = {y_expr.format(z=z, alpha=alpha, high=high)} : 1")
    gate = "T" if term.activation == "identity" else f"{df_expr.format(z=z, y=f'y{k}', alpha=alpha, high=high)} * T"
    lines.append(f"gate{k} = {gate} : 1")
    lines.append(f"a{k} : 1")
    if term.bias is not None:
        lines.append(f"b{k} : 1 (constant)")
    return lines


def _check_term(pop: str, k: int, term: Term, events: bool) -> None:
    """Refuse, in one line, the term features the Brian2 realization does not have."""
    if term.layout is not None:
        raise ConfigError(f"population {pop!r}, term {k}: structured weights (convolution, pooling, batch norm) "
                          "are not realized by the brian2 backend; use dense layers or --backend reference")
    for what, act in (("activation", term.activation), ("source-side activation", term.source_activation)):
        if act not in ACTIVATION_EQUATIONS:
            raise ConfigError(f"population {pop!r}, term {k}: {what} {act!r} has no Brian2 equation; "
                              f"valid: {', '.join(sorted(ACTIVATION_EQUATIONS))}")
    if term.source_activation == "clip":
        raise ConfigError(f"population {pop!r}, term {k}: a source-side clip has no upper bound to realize")
    if events and term.source_activation != "identity":
        raise ConfigError(f"population {pop!r}, term {k}: event-driven messaging sends the mean itself; a "
                          f"source-side activation ({term.source_activation}) is not realized with --event-threshold")


def source_outputs(system: DynamicsSystem) -> dict[tuple[str, str, float], int]:
    """``(source, φ, alpha) -> j`` for every source-side activation a term reads: the
    source group computes ``phi<j> = φ(xbar)`` (``φ(x)`` for an input) and its
    derivative ``dphi<j>``, numbered per source in order of first use."""
    out: dict[tuple[str, str, float], int] = {}
    count: dict[str, int] = {}
    for pop in system.populations:
        for term in pop.terms:
            key = (term.source, term.source_activation, float(term.source_alpha))
            if term.source_activation != "identity" and key not in out:
                out[key] = count.get(term.source, 0)
                count[term.source] = out[key] + 1
    return out


def _source_lines(source: str, var: str, phis: dict[tuple[str, str, float], int]) -> list[str]:
    """The ``phi<j>``/``dphi<j>`` subexpressions of group ``source`` (state variable ``var``)."""
    lines = []
    for (src, act, alpha), j in phis.items():
        if src == source:
            y_expr, df_expr = ACTIVATION_EQUATIONS[act]
            lines += [f"phi{j} = {y_expr.format(z=var, alpha=repr(alpha))} : 1  # source-side {act}",
                      f"dphi{j} = {df_expr.format(z=var, y=f'phi{j}', alpha=repr(alpha))} : 1"]
    return lines


def presynaptic_variable(term: Term, phis: dict[tuple[str, str, float], int], source_is_population: bool) -> str:
    """The variable of the source group a term's synapses read: ``xbar`` (``x`` for an
    input), or ``phi<j>`` under a source-side activation."""
    if term.source_activation == "identity":
        return "xbar" if source_is_population else "x"
    return f"phi{phis[(term.source, term.source_activation, float(term.source_alpha))]}"


def build_model(system: DynamicsSystem, *, events: bool = False) -> Brian2Model:
    """The Brian2 description of ``system`` (deterministic: same system, same text).

    ``events``: sigma-delta messaging (:mod:`hwbp.sim.events`): each group keeps the
    mean it last sent (``xs``) and each term the gate it last sent (``es<k>``); a
    value is sent when it moved by more than ``theta``, and the synapses accumulate
    the change (``a0_post += w * (xbar_pre - xs_pre)`` on ``send``) instead of summing
    continuously."""
    taken: set[str] = {"softmax"}
    names: dict[str, str] = {}
    groups: list[GroupSpec] = []
    for pop in system.populations:
        for k, term in enumerate(pop.terms):
            _check_term(pop.name, k, term, events)
    phis = source_outputs(system)
    for port in system.inputs:
        names[port.name] = _ident(port.name, taken)
        if any(src == port.name for src, _, _ in phis):
            groups.append(GroupSpec(names[port.name], port.name, port.size,
                                    "\n".join(["x : 1 (constant)"] + _source_lines(port.name, "x", phis)),
                                    is_input=True))
        elif events:
            groups.append(GroupSpec(names[port.name], port.name, port.size,
                                    "x : 1 (constant)\nxs : 1  # value last sent\nn_send : 1  # events sent",
                                    is_input=True, events=(("send", "abs(x - xs) > theta", "xs = x\nn_send += 1"),)))
        else:
            groups.append(GroupSpec(names[port.name], port.name, port.size, "x : 1 (constant)", is_input=True))
    for pop in system.populations:
        names[pop.name] = _ident(pop.name, taken)
    syn_taken: set[str] = set(taken)
    synapses: list[SynapseSpec] = []
    # backward sums: per source population, one variable per successor term
    back_index: dict[tuple[str, int], str] = {}
    for pop in system.populations:
        for j, succ in enumerate(system.successors[pop.name]):
            back_index[succ] = f"s{j}"
    loss = system.loss
    for pop in system.populations:
        ys = " + ".join(f"y{k}" for k in range(len(pop.terms)))
        sens = [back_index[s] for s in system.successors[pop.name]]
        sens_vars = list(sens)
        if loss.population == pop.name:
            grad = "xbar - target" if loss.function == "mse" else "1/Z - target"
            sens.append(f"beta * ({grad})")
        drive_t = "".join(f" + {s}" for s in sens)
        lines = [f"dxbar/dt = (-xbar + {ys}) / tau : 1", f"dT/dt = (-T{drive_t}) / tau : 1"]
        biases, gates = [], []
        for k, term in enumerate(pop.terms):
            lines += _term_lines(k, term)
            if term.bias is not None:
                biases.append((f"b{k}", term.bias))
            if term.weight is not None:
                gates.append((k, f"gate{k}"))
        lines += [f"{s} : 1" for s in sens_vars]
        if loss.population == pop.name:
            lines.append("target : 1 (constant)")
            if loss.function == "ce":
                lines.append("Z : 1")
        lines += _source_lines(pop.name, "xbar", phis)
        lines += ["xp = xbar + T / 2 : 1", "xm = xbar - T / 2 : 1"]
        group_events = []
        if events:
            lines += ["xs : 1  # mean last sent", "n_send : 1  # forward events sent"]
            group_events.append(("send", "abs(xbar - xs) > theta", "xs = xbar\nn_send += 1"))
            for k, term in enumerate(pop.terms):
                if system.is_population(term.source):
                    lines += [f"es{k} : 1  # gate{k} last sent", f"n_send_e{k} : 1  # backward events sent"]
                    group_events.append((f"send_e{k}", f"abs(gate{k} - es{k}) > theta",
                                         f"es{k} = gate{k}\nn_send_e{k} += 1"))
        groups.append(GroupSpec(names[pop.name], pop.name, pop.size, "\n".join(lines),
                                biases=tuple(biases), gates=tuple(gates), events=tuple(group_events)))
        for k, term in enumerate(pop.terms):
            src_is_pop = system.is_population(term.source)
            pre_var = presynaptic_variable(term, phis, src_is_pop)
            # under a source-side φ the backward sum is gated on the source side: φ'(xbar) ⊙ g Wᵀ e
            src_gate = "" if term.source_activation == "identity" else f" * d{pre_var}_pre"
            gain = float(getattr(term, "gain", 1.0))
            w = ("" if gain == 1.0 else f"{gain!r} * ") + ("w * " if term.weight is not None else "")
            model = ["w : 1 (constant)"] if term.weight is not None else []
            back = back_index[(pop.name, k)] if src_is_pop else None
            on_pre = on_post = post_event = None
            if events:
                on_pre = f"a{k}_post += {w}({pre_var}_pre - xs_pre)"
                if back is not None:
                    on_post, post_event = f"{back}_pre += {w}(gate{k}_post - es{k}_post)", f"send_e{k}"
            else:
                model.append(f"a{k}_post = {w}{pre_var}_pre : 1 (summed)")
                if back is not None:
                    model.append(f"{back}_pre = {w}gate{k}_post{src_gate} : 1 (summed)")
            synapses.append(SynapseSpec(
                _ident(f"{names[pop.name]}_term{k}", syn_taken), names[term.source], names[pop.name],
                "dense" if term.weight is not None else "one_to_one", "\n".join(model), term.weight,
                f"a{k}", back, on_pre, on_post, post_event))
    if loss.function == "ce":
        out = names[loss.population]
        synapses.append(SynapseSpec("softmax", out, out, "softmax", "Z_post = exp(xbar_pre - xbar_post) : 1 (summed)",
                                    forward_var="Z"))
    elif loss.function != "mse":
        raise ConfigError(f"the brian2 target has no loss {loss.function!r}; valid: mse, ce")
    return Brian2Model(system, tuple(groups), tuple(synapses), names[loss.population], events)


def connectivity(spec: SynapseSpec, n_pre: int, n_post: int, batch: int, weight: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Presynaptic and postsynaptic neuron indices and weights of ``spec`` for ``batch``
    copies of the network (sample ``b`` uses neurons ``b * n + j``): dense terms connect
    every input to every output (``w = W[post, pre]``), one-to-one terms neuron ``j`` to
    ``j``, the softmax every output to every output of the same sample."""
    if spec.kind == "one_to_one":
        if n_pre != n_post:
            raise ConfigError(f"skip term {spec.name}: sizes {n_pre} and {n_post} differ")
        idx = np.arange(batch * n_pre, dtype=np.int32)
        return idx, idx.copy(), None
    post, pre = np.meshgrid(np.arange(n_post), np.arange(n_pre), indexing="ij")  # (n_post, n_pre)
    offs = np.arange(batch)[:, None, None]
    i = (offs * n_pre + pre[None]).ravel().astype(np.int32)
    j = (offs * n_post + post[None]).ravel().astype(np.int32)
    if spec.kind == "softmax":
        return i, j, None
    if weight is None or weight.shape != (n_post, n_pre):
        raise ConfigError(f"synapses {spec.name}: weight shape {None if weight is None else weight.shape} "
                          f"!= ({n_post}, {n_pre})")
    w = np.broadcast_to(weight[None], (batch, n_post, n_pre)).ravel().astype(np.float64)
    return i, j, w
