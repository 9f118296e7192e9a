"""Lazy lookup in the read-only ``name -> "module:function"`` tables (backends,
targets), so that a component whose external tool is missing costs nothing until
it is chosen; and unique naming shared by the graph and the exporters."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Container, Mapping

from hwbp.errors import ConfigError

__all__ = ["load_entry", "unique_name"]


def load_entry(table: Mapping[str, str], name: str, kind: str) -> Callable[..., Any]:
    """Import and return the function ``table[name]``; ``kind`` names the table in the
    error, which lists the valid names."""
    try:
        module, func = table[name].split(":")
    except KeyError:
        raise ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(table)}") from None
    return getattr(importlib.import_module(module), func)


def unique_name(base: str, taken: Container[str]) -> str:
    """``base``, or ``base_1``, ``base_2``, ... : the first not in ``taken``."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name
