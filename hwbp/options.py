"""Options of backends and targets: frozen dataclasses whose fields, declared with
:func:`option`, carry help text, units and valid choices.  The command line turns every
field into a flag (:mod:`hwbp.cliflags`); values are validated on construction, and
every error is a one-line :class:`~hwbp.errors.ConfigError` naming the flag and the
valid values; :meth:`Options.as_dict` records them in reports."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["option", "Options", "OptionInfo"]


@dataclass(frozen=True)
class OptionInfo:
    """How one option field appears to users: help text, unit, valid choices, flag."""

    name: str
    type: type
    default: Any
    help: str
    unit: str | None
    choices: tuple[Any, ...] | None
    flag: str
    cli: bool

    @property
    def optional(self) -> bool:
        """Whether ``None`` is a valid value (the backend then picks a default)."""
        return self.default is None


def option(default: Any, help: str, *, unit: str | None = None, choices: Sequence[Any] | None = None,
           flag: str | None = None, cli: bool = True) -> Any:
    """Declare an :class:`Options` field.

    Parameters
    ----------
    default : object
        Default value (``None``: the backend chooses, e.g. ``2L`` steps).
    help : str
        One line for ``--help`` and the documentation.
    unit : str, optional
        Physical unit (``ohm``, ``F``, ``s``, ``V``, ``A``, ``S``, or ``tau``).
    choices : sequence, optional
        The valid values; anything else is a :class:`ConfigError` listing them.
    flag : str, optional
        Command-line flag (default ``--`` plus the field name with dashes).
    cli : bool
        Whether the field has a flag at all (mappings, callables: API only).
    """
    meta = {"help": help, "unit": unit, "choices": None if choices is None else tuple(choices),
            "flag": flag, "cli": cli}
    return field(default=default, metadata=meta)


def _base_type(tp: Any) -> type:
    """``float`` for ``float | None`` etc.; the first non-None member of a union."""
    if isinstance(tp, type):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and isinstance(args[0], type):
        return args[0]
    origin = typing.get_origin(args[0] if args else tp)
    return origin if isinstance(origin, type) else object


#: :meth:`Options.infos` of each options class, computed on first use.
_INFOS: dict[type, tuple[OptionInfo, ...]] = {}


@dataclass(frozen=True)
class Options:
    """Base class of a backend's (or target's) options: a frozen dataclass whose fields
    are declared with :func:`option`.  Values are checked on construction: types,
    choices and, in subclasses, :meth:`check`.  Every error is a :class:`ConfigError`
    naming the flag and the valid values."""

    def __post_init__(self) -> None:
        for info in self.infos():
            value = getattr(self, info.name)
            if value is None and info.optional:
                continue
            object.__setattr__(self, info.name, self._coerce(info, value))
        self.check()

    def check(self) -> None:
        """Cross-field checks of a subclass (raise :class:`ConfigError`)."""

    @classmethod
    def infos(cls) -> tuple[OptionInfo, ...]:
        """One :class:`OptionInfo` per field, in declaration order (computed once per class:
        the command line's parser and every options object ask for them)."""
        cached = _INFOS.get(cls)
        if cached is None:
            cached = _INFOS[cls] = cls._field_infos()
        return cached

    @classmethod
    def _field_infos(cls) -> tuple[OptionInfo, ...]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append(OptionInfo(
                name=f.name, type=_base_type(hints.get(f.name, object)), default=default,
                help=meta.get("help", ""), unit=meta.get("unit"), choices=meta.get("choices"),
                flag=meta.get("flag") or "--" + f.name.replace("_", "-"), cli=meta.get("cli", True)))
        return tuple(out)

    @classmethod
    def info(cls, name: str) -> OptionInfo:
        """The :class:`OptionInfo` of field ``name``."""
        for i in cls.infos():
            if i.name == name:
                return i
        raise ConfigError(f"no option {name!r}; valid: {', '.join(i.name for i in cls.infos())}")

    @staticmethod
    def _coerce(info: OptionInfo, value: Any) -> Any:
        what = f"{info.flag} ({info.name})"
        tp = info.type
        if tp is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigError(f"{what} must be true or false, got {value!r}")
            value = bool(value)
        elif tp is int:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) and not (
                    isinstance(value, (float, np.floating)) and float(value).is_integer()):
                raise ConfigError(f"{what} must be an integer, got {value!r}")
            value = int(value)
        elif tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"{what} must be a number, got {value!r}")
            value = float(value)
            if not np.isfinite(value):
                raise ConfigError(f"{what} must be a finite number, got {value!r}")
        elif tp is str:
            if not isinstance(value, str):
                raise ConfigError(f"{what} must be a string, got {value!r}")
        if info.choices is not None and value not in info.choices:
            raise ConfigError(f"{what}: invalid value {value!r}; valid: {', '.join(map(str, info.choices))}")
        return value

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None, *, owner: str = "") -> "Options":
        """Options from a mapping of field values; an unknown key is a :class:`ConfigError`
        listing the valid ones (``owner`` names the backend in the message)."""
        values = dict(values or {})
        names = [i.name for i in cls.infos()]
        unknown = sorted(set(values) - set(names))
        if unknown:
            who = f"backend {owner!r}" if owner else cls.__name__
            raise ConfigError(f"{who} has no option {unknown[0]!r}; valid: {', '.join(names) or '(none)'}")
        return cls(**values)

    @classmethod
    def coerce(cls, values: "Mapping[str, Any] | Options | None", *, owner: str, kind: str) -> "Options":
        """``values`` as this class: an instance of it as it is, a mapping (or None)
        through :meth:`from_mapping`; an instance of another class is a
        :class:`ConfigError` naming the ``kind`` (backend, target) ``owner``."""
        if isinstance(values, Options):
            if not isinstance(values, cls):
                raise ConfigError(f"{kind} {owner!r} takes {cls.__name__}, got {type(values).__name__}")
            return values
        return cls.from_mapping(values, owner=owner)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready field values (for the report)."""
        out: dict[str, Any] = {}
        for info in self.infos():
            v = getattr(self, info.name)
            if isinstance(v, Mapping):
                v = {str(k): str(x) for k, x in v.items()}
            elif not isinstance(v, (bool, int, float, str, type(None))):
                v = str(v)
            out[info.name] = v
        return out


