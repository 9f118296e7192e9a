"""The ``equations`` target: the lowered system as readable equations (Markdown) and
as a machine-readable description (JSON).  Deterministic output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hwbp.backend import Options, option
from hwbp.ir.activations import get_activation
from hwbp.ir.losses import get_loss
from hwbp.lower.system import DynamicsSystem, Term
from hwbp.targets import Target

__all__ = ["FORMAT", "EquationsOptions", "EquationsTarget", "equations_markdown", "equations_json",
           "write_equations"]

#: Format tag of the JSON description.
FORMAT = "hwbp.equations/1"


def _matrix(term: Term) -> str | None:
    """How the term's matrix is written: its weight, or ``M(weight)`` for a structured
    layout (convolution, batch normalization; ``M(fixed)`` for pooling)."""
    if term.layout is None:
        return term.weight
    return f"M({term.weight or 'fixed'})"


def _pre(term: Term) -> str:
    u = f"xbar[{term.source}]"
    if not term.weighted:
        return u
    if term.source_activation != "identity":
        u = f"{term.source_activation}({u})"
    g = "" if term.gain == 1.0 else f"{term.gain:.17g} · "
    b = f" + {term.bias}" if term.bias else ""
    return f"{g}{_matrix(term)} · {u}{b}"


def _fname(term: Term) -> str:
    if term.activation == "clip":
        return f"clip[{term.alpha:g}, {term.high:g}]"
    return f"{term.activation}[alpha={term.alpha:g}]" if term.activation in ("leaky_relu", "elu") else term.activation


def _drive(term: Term) -> str:
    inner = _pre(term)
    return inner if term.activation == "identity" else f"{_fname(term)}({inner})"


def _gate(term: Term, post: str) -> str:
    t = f"T[{post}]"
    e = t if term.activation == "identity" else f"{_fname(term)}'({_pre(term)}) ⊙ {t}"
    if not term.weighted:
        return e
    g = "" if term.gain == 1.0 else f"{term.gain:.17g} · "
    back = f"{g}{_matrix(term)}ᵀ · ({e})"
    if term.source_activation != "identity":
        back = f"{term.source_activation}'(xbar[{term.source}]) ⊙ {back}"
    return back


def equations_markdown(system: DynamicsSystem) -> str:
    """One Markdown block per population with its forward and sensitivity equations."""
    lines = [
        f"# Dynamics of `{system.name}`",
        "",
        f"- time constant tau = {system.tau_s:g} s; loss perturbation beta = {system.beta:g};"
        f" depth L = {system.depth} (exact after 2L = {2 * system.depth} unit steps)",
        "- each neuron is a conjugate pair x± = xbar ± T/2; T = x+ − x− is the tension (= beta · dl/dx at rest)",
        f"- inputs: {', '.join(f'`{p.name}` ({p.size})' for p in system.inputs)}",
        "",
    ]
    for pop in system.populations:
        lines += [f"## `{pop.name}` — {pop.size} pairs, level {pop.level}", "", "```"]
        lines.append(f"tau dxbar[{pop.name}]/dt = -xbar[{pop.name}] + " + " + ".join(_drive(t) for t in pop.terms))
        sens = [_gate(system.population(p).terms[k], p) for p, k in system.successors[pop.name]]
        if system.loss.population == pop.name:
            sens.append(f"beta · ∇{system.loss.function}(xbar[{pop.name}])")
        lines.append(f"tau dT[{pop.name}]/dt = -T[{pop.name}]" + "".join(f" + {s}" for s in sens))
        lines += ["```", ""]
    loss = get_loss(system.loss.function)
    lines += [f"Loss `{loss.name}`: {loss.equation} (per sample; a batch's loss is the mean).", ""]
    acts = sorted({t.activation for p in system.populations for t in p.terms})
    lines += ["Activations:", ""] + [f"- `{a}`: {get_activation(a).equation}" for a in acts] + [""]
    return "\n".join(lines)


def equations_json(system: DynamicsSystem) -> dict[str, Any]:
    """JSON-ready description of populations, couplings, tied parameters and options."""
    return {
        "format": FORMAT,
        "name": system.name,
        "tau_s": system.tau_s,
        "beta": system.beta,
        "depth": system.depth,
        "inputs": [{"name": p.name, "size": p.size} for p in system.inputs],
        "populations": [
            {
                "name": p.name,
                "size": p.size,
                "level": p.level,
                "terms": [
                    {"source": t.source, "activation": t.activation, "alpha": t.alpha,
                     "weight": t.weight, "bias": t.bias,
                     **({"structured": True} if t.layout is not None else {}),
                     **({} if t.gain == 1.0 else {"gain": t.gain}),
                     **({} if t.source_activation == "identity" else
                        {"source_activation": t.source_activation, "source_alpha": t.source_alpha})}
                    for t in p.terms
                ],
            }
            for p in system.populations
        ],
        "couplings": [
            {"kind": c.kind, "pre": c.pre, "post": c.post, "term": c.term, "parameter": c.parameter}
            for c in system.couplings
        ],
        "tied": [{"parameter": t.name, "forward": t.forward, "sensitivity": t.sensitivity} for t in system.tied],
        "parameters": {k: list(v.shape) for k, v in system.parameters.items()},
        "loss": {"population": system.loss.population, "function": system.loss.function},
    }


@dataclass(frozen=True)
class EquationsOptions(Options):
    """Options of the ``equations`` target."""

    tau_s: float = option(1.0, "node time constant written into the equations (default: 1)", unit="s",
                          flag="--tau")


class EquationsTarget(Target):
    """The lowered system as readable equations (Markdown) and JSON."""

    name = "equations"
    description = "the lowered dynamics as equations.md and equations.json"
    Options = EquationsOptions

    def emit(self, system: DynamicsSystem, out_dir: str | Path, options: Options,
             info: Mapping[str, Any] | None = None) -> list[Path]:
        opts = self.options(options)
        return write_equations(system.with_options(tau_s=opts.tau_s), out_dir)


def write_equations(system: DynamicsSystem, out_dir: str | Path, **options: Any) -> list[Path]:
    """Write ``equations.md`` and ``equations.json`` into ``out_dir``; return their paths."""
    from hwbp.io import atomic_write_all

    out = Path(out_dir)
    text = json.dumps(equations_json(system), indent=1, sort_keys=True) + "\n"
    return atomic_write_all({out / "equations.md": equations_markdown(system).encode("utf-8"),
                             out / "equations.json": text.encode("utf-8")}, "equations output")
