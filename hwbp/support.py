"""Declared support: what a backend realizes, as data.

A backend states in one :class:`Support` value which activations (on the target side
``f`` and on the source side ``φ`` of a term ``f(g W φ(u) + b)``), which term features
(a fixed gain, a source-side activation, tied weights, the structured layouts:
convolution, average pooling, batch normalization), which losses and which hardware
non-idealities it realizes.  From that one value come

* the refusal in ``compile`` (:func:`check_support`: one line naming what the system
  uses that the backend does not realize, and listing what it does),
* the skips of the conformance suite (:mod:`hwbp.testing`: a case whose system uses
  something undeclared is skipped with the same reason), and
* the matrix that ``hwbp backends`` prints (:func:`support_table`).

:func:`system_uses` reads off a :class:`~hwbp.lower.DynamicsSystem` what it uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from hwbp.errors import ConfigError
from hwbp.ir.activations import ACTIVATIONS
from hwbp.ir.losses import LOSSES
from hwbp.lower.system import DynamicsSystem

__all__ = ["FEATURES", "HARDWARE_FEATURES", "Support", "Uses", "system_uses", "check_support", "support_table"]

#: Term features a backend may realize, with what each means.
FEATURES: Mapping[str, str] = {
    "gain": "a fixed gain g != 1 on a term (g W φ(u) + b)",
    "source_activation": "an activation φ on the source side of a term's synapses",
    "tied": "one weight parameter used by several terms",
    "conv": "a convolution (a structured weight: one kernel at every position)",
    "pool": "average pooling (a fixed structured map without a parameter)",
    "batchnorm": "batch normalization (a diagonal structured weight with an input offset, the running mean)",
}
#: Hardware non-idealities (:meth:`hwbp.hardware.Hardware.features`).
HARDWARE_FEATURES = ("weights", "mismatch", "nodes", "synapses", "cells", "loss", "noise", "rails", "readout")


def _names(values: Iterable[str], valid: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(values, str):
        raise ConfigError(f"support: {what} must be a collection of names, got the string {values!r}")
    out = frozenset(values)
    unknown = sorted(out - set(valid))
    if unknown:
        raise ConfigError(f"support: unknown {what} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    return out


@dataclass(frozen=True)
class Support:
    """What a backend realizes (the default: every activation, term feature and loss of
    hwbp, no hardware non-ideality; a source-side ``clip`` has no upper bound in the IR,
    so no backend realizes it).

    Attributes
    ----------
    activations : frozenset of str
        Names of :data:`hwbp.ir.activations.ACTIVATIONS` realized as a term's ``f``.
    source_activations : frozenset of str
        Those realized as a term's source-side ``φ`` (used only with the
        ``source_activation`` feature).
    features : frozenset of str
        Term features (:data:`FEATURES`).
    losses : frozenset of str
        Loss ports (:data:`hwbp.ir.losses.LOSSES`).
    hardware : frozenset of str
        Hardware non-idealities realized for a device instance (:data:`HARDWARE_FEATURES`).
    """

    activations: frozenset[str] = field(default_factory=lambda: frozenset(ACTIVATIONS))
    source_activations: frozenset[str] = field(default_factory=lambda: frozenset(ACTIVATIONS) - {"clip"})
    features: frozenset[str] = field(default_factory=lambda: frozenset(FEATURES))
    losses: frozenset[str] = field(default_factory=lambda: frozenset(LOSSES))
    hardware: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name, valid in (("activations", ACTIVATIONS), ("source_activations", ACTIVATIONS),
                            ("features", FEATURES), ("losses", LOSSES), ("hardware", HARDWARE_FEATURES)):
            object.__setattr__(self, name, _names(getattr(self, name), tuple(valid), name.replace("_", "-")))

    def replace(self, **changes: Any) -> "Support":
        """A copy with some fields changed (``support.replace(features=...)``)."""
        return dataclasses.replace(self, **changes)

    def missing(self, uses: "Uses") -> list[str]:
        """What ``uses`` needs that is not declared, each as ``"what (where)"``."""
        out = []
        for kind, have, label in (("activations", self.activations, "activation"),
                                  ("source_activations", self.source_activations, "source-side activation"),
                                  ("features", self.features, "feature"), ("losses", self.losses, "loss")):
            for value, where in getattr(uses, kind).items():
                if value not in have:
                    out.append(f"{label} {value} ({where})")
        return out

    def describe(self) -> str:
        """One line listing what is realized."""
        def names(s: frozenset[str]) -> str:
            return ", ".join(sorted(s)) or "none"

        return (f"activations {names(self.activations)}; source-side {names(self.source_activations)}; "
                f"features {names(self.features)}; losses {names(self.losses)}; hardware {names(self.hardware)}")


@dataclass(frozen=True)
class Uses:
    """What a system uses: each activation, source-side activation, term feature and
    loss, mapped to the first place it occurs (``population 'p', term k``)."""

    activations: Mapping[str, str]
    source_activations: Mapping[str, str]
    features: Mapping[str, str]
    losses: Mapping[str, str]


def _layout_kind(term: Any) -> str:
    if term.weight is None:
        return "pool"
    return "batchnorm" if term.layout.offset is not None else "conv"


def system_uses(system: DynamicsSystem) -> Uses:
    """What ``system`` uses (:class:`Uses`)."""
    acts: dict[str, str] = {}
    phis: dict[str, str] = {}
    feats: dict[str, str] = {}
    users: dict[str, int] = {}
    for p in system.populations:
        for k, t in enumerate(p.terms):
            where = f"population {p.name!r}, term {k}"
            acts.setdefault(t.activation, where)
            if t.source_activation != "identity":
                phis.setdefault(t.source_activation, where)
                feats.setdefault("source_activation", where)
            if t.gain != 1.0:
                feats.setdefault("gain", where)
            if t.layout is not None:
                feats.setdefault(_layout_kind(t), where)
            if t.weight is not None:
                users[t.weight] = users.get(t.weight, 0) + 1
                if users[t.weight] == 2:
                    feats.setdefault("tied", f"parameter {t.weight!r}")
    return Uses(acts, phis, feats, {system.loss.function: f"population {system.loss.population!r}"})


def check_support(name: str, support: Support, system: DynamicsSystem) -> None:
    """Raise :class:`ConfigError` (one line) if ``system`` uses anything ``support``
    does not declare: it names the first such thing, where it is, and what backend
    ``name`` realizes."""
    missing = support.missing(system_uses(system))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(f"backend {name!r} does not realize the {missing[0]}{more}; it realizes: "
                          f"{support.describe()}")


def support_table(rows: Sequence[tuple[str, Support | str]]) -> str:
    """The support matrix of ``rows`` (backend name, its :class:`Support` or why it
    could not be loaded) as text: one column per backend, ``x`` where realized."""
    loaded = [(n, s) for n, s in rows if isinstance(s, Support)]
    names = [n for n, _ in loaded]
    lines: list[tuple[str, list[str]]] = []

    def section(title: str, values: Iterable[str], get) -> None:
        lines.append((title, []))
        for v in values:
            lines.append((f"  {v}", ["x" if v in get(s) else "-" for _, s in loaded]))

    section("activations", sorted(ACTIVATIONS), lambda s: s.activations)
    section("source-side activations", sorted(set(ACTIVATIONS) - {"identity"}), lambda s: s.source_activations)
    section("term features", list(FEATURES), lambda s: s.features)
    section("losses", sorted(LOSSES), lambda s: s.losses)
    section("hardware non-idealities", HARDWARE_FEATURES, lambda s: s.hardware)
    width = max(len(t) for t, _ in lines) + 2
    cols = [max(len(n), 1) + 2 for n in names]
    out = [" " * width + "".join(n.rjust(c) for n, c in zip(names, cols))]
    for title, marks in lines:
        out.append(title.ljust(width) + "".join(m.rjust(c) for m, c in zip(marks, cols)))
    for n, s in rows:
        if not isinstance(s, Support):
            out.append(f"{n}: not loaded: {s}")
    return "\n".join(out)
