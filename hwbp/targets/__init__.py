"""Compilation targets: each turns a :class:`~hwbp.lower.DynamicsSystem` into artefacts.

:data:`TARGETS` maps a target name to ``"module:function"``; the function has the
signature ``emit(system, out_dir, **options) -> list[pathlib.Path]`` and writes its
files atomically.  Targets are imported lazily.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping

from hwbp.registry import load_entry

__all__ = ["TARGETS", "get_target"]

#: Target name -> "module:function".
TARGETS: Mapping[str, str] = MappingProxyType(
    {
        "equations": "hwbp.targets.equations:write_equations",
        "spice": "hwbp.targets.spice.emit:write_netlists",
    }
)


def get_target(name: str) -> Callable:
    """The emitter of target ``name``; the error lists the valid names."""
    return load_entry(TARGETS, name, "target")
