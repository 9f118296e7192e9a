"""Registries of pluggable components (backends, compilation targets), and unique naming
shared by the graph and the exporters.

A :class:`Registry` finds components in three places, later ones overriding earlier:
its built-in table (so a source checkout that was never installed works), the package
entry points of its group (how hwbp declares its own built-ins too, and how a
third-party package adds one without editing hwbp), and :meth:`Registry.register`
calls in this process.  Components are ``"module:attr"`` strings imported lazily, so
a component whose external tool is missing costs nothing until it is chosen.

A third-party component (a plug-in) cannot break the others: one whose import or
construction fails, or that fails the registry's ``validate`` check, is a one-line
:class:`ConfigError` naming it when it is chosen, and :meth:`Registry.plugin_of` tells
which plug-in a failing piece of code belongs to (so that its errors are reported as
its own, not hwbp's).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Callable, Container, Mapping

from hwbp.errors import ConfigError, HwbpError

__all__ = ["Registry", "unique_name"]


class Registry:
    """Named components of one kind.

    Parameters
    ----------
    kind : str
        What the components are (``"backend"``), for error messages.
    group : str
        Entry point group (``"hwbp.backends"``).
    builtins : Mapping[str, str]
        Name -> ``"module:attr"`` of the components hwbp ships.
    base : type
        Class every component must be an instance (or subclass) of.
    validate : callable, optional
        ``validate(component)`` raises :class:`ConfigError` (one line) if a loaded
        component is unusable (e.g. its options are malformed).
    """

    def __init__(self, kind: str, group: str, builtins: Mapping[str, str], base: type,
                 validate: Callable[[Any], None] | None = None) -> None:
        self.kind, self.group, self.builtins, self.base = kind, group, dict(builtins), base
        self.validate = validate
        self._entry_points: dict[str, str] | None = None
        self._registered: dict[str, Any] = {}
        self._instances: dict[str, Any] = {}

    def _table(self) -> dict[str, Any]:
        if self._entry_points is None:
            try:
                eps = metadata.entry_points(group=self.group)
                self._entry_points = {ep.name: ep.value for ep in eps}
            except Exception:  # a broken distribution elsewhere must not break hwbp
                self._entry_points = {}
        return {**self.builtins, **self._entry_points, **self._registered}

    def names(self) -> list[str]:
        """Every name: built-ins first (in their order), then the others sorted."""
        table = self._table()
        return [n for n in self.builtins] + sorted(n for n in table if n not in self.builtins)

    def register(self, name: str, component: Any) -> None:
        """Register ``component`` (a class, an instance or ``"module:attr"``) as ``name``."""
        self._registered[name] = component
        self._instances.pop(name, None)

    def unregister(self, name: str) -> None:
        """Drop a component registered with :meth:`register`."""
        self._registered.pop(name, None)
        self._instances.pop(name, None)

    def refresh(self) -> None:
        """Forget cached entry points and instances (after installing a package)."""
        self._entry_points = None
        self._instances.clear()

    def get(self, name: str) -> Any:
        """The component ``name`` (classes are instantiated once); the error lists the
        valid names."""
        if name not in self._instances:
            table = self._table()
            if name not in table:
                raise ConfigError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
            obj = table[name]
            if isinstance(obj, str):
                module, _, attr = obj.partition(":")
                try:
                    obj = importlib.import_module(module)
                    for part in attr.split(".") if attr else ():
                        obj = getattr(obj, part)
                except HwbpError:
                    raise
                except Exception as exc:  # a broken plug-in: its error, one line, naming it
                    raise ConfigError(f"{self.kind} {name!r} ({table[name]}) cannot be loaded: "
                                      f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
            try:
                inst = obj() if isinstance(obj, type) else obj
            except HwbpError:
                raise
            except Exception as exc:
                raise ConfigError(f"{self.kind} {name!r} cannot be constructed: {type(exc).__name__}: "
                                  f"{exc}".splitlines()[0]) from None
            if not isinstance(inst, self.base):
                raise ConfigError(f"{self.kind} {name!r} is not a {self.base.__module__}.{self.base.__name__} "
                                  f"(got {type(inst).__name__})")
            if self.validate is not None:
                self.validate(inst)
            self._instances[name] = inst
        return self._instances[name]


    def plugin_of(self, module: str) -> str | None:
        """The name of the third-party component (not part of hwbp) whose top-level
        package holds ``module`` (a module name), or None."""
        top = module.split(".")[0]
        if top == "hwbp":
            return None
        for name, obj in self._table().items():
            where = obj.partition(":")[0] if isinstance(obj, str) else (
                obj.__module__ if isinstance(obj, type) else type(obj).__module__)
            if where.split(".")[0] == top:
                return name
        return None


def unique_name(base: str, taken: Container[str]) -> str:
    """``base``, or ``base_1``, ``base_2``, ... : the first not in ``taken``."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name
