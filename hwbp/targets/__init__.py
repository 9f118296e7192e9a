"""Compilation targets: each turns a :class:`~hwbp.lower.DynamicsSystem` into artefacts.

A target is a subclass of :class:`Target` with a ``name``, a ``description``, an
``Options`` dataclass (:class:`hwbp.backend.Options`; its fields become the flags of
``hwbp compile``) and ``emit(system, out_dir, options, info) -> list[Path]``, which
writes its files atomically and deterministically.  Targets are found in the built-in
table and in the entry points of group ``hwbp.targets``, exactly like backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Mapping

from hwbp.backend import Options
from hwbp.lower.system import DynamicsSystem
from hwbp.registry import Registry

__all__ = ["Target", "BUILTIN_TARGETS", "TARGETS", "target_names", "get_target"]


class Target(ABC):
    """Base class of compilation targets."""

    #: Registry name (``--target NAME``).
    name: ClassVar[str] = ""
    #: One line for ``--help``.
    description: ClassVar[str] = ""
    #: The options dataclass.
    Options: ClassVar[type[Options]] = Options

    def options(self, values: Mapping[str, Any] | Options | None = None) -> Options:
        """``values`` as this target's :class:`Options` (unknown keys are errors)."""
        return self.Options.coerce(values, owner=self.name, kind="target")

    @abstractmethod
    def emit(self, system: DynamicsSystem, out_dir: str | Path, options: Options,
             info: Mapping[str, Any] | None = None) -> list[Path]:
        """Write the artefacts of ``system`` into ``out_dir``; ``info`` carries facts for
        headers (``model_file``, ``model_sha256``) and, from ``hwbp compile``, ``graph``
        (the model with its loss port) and, with ``--batch``, ``batch`` (a
        :class:`~hwbp.types.Batch`) and ``batch_file``; a target uses what it needs.
        Returns the paths written."""


#: The targets hwbp ships (also declared as entry points of group ``hwbp.targets``).
BUILTIN_TARGETS: Mapping[str, str] = MappingProxyType({
    "equations": "hwbp.targets.equations:EquationsTarget",
    "spice": "hwbp.targets.spice.emit:SpiceTarget",
    "lava": "hwbp.targets.lava.emit:LavaTarget",
    "brian2": "hwbp.targets.brian2.emit:Brian2Target",
})

#: The registry of targets.
TARGETS = Registry("target", "hwbp.targets", BUILTIN_TARGETS, Target)


def target_names() -> list[str]:
    """Every registered target name."""
    return TARGETS.names()


def get_target(name: str) -> Target:
    """The target ``name``; the error lists the valid names."""
    return TARGETS.get(name)
