"""Command-line flags generated from :class:`hwbp.backend.Options` dataclasses.

Every registered backend (or target) contributes its option fields as flags.  A flag
shared by several backends (``--duration``, ``--dt``, ...) appears once; its help says
which backends take it.  Flags default to "not given", so a flag that the chosen
backend does not take is an error naming the backends it belongs to, never ignored.

The options of each owner are validated when its flags are added: an owner whose flag
is one of hwbp's own (``--rtol``), or has the flag of another owner with another type,
is left out as a whole (:attr:`OptionFlags.rejected`, one line saying why), and every
other owner keeps working.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Collection, Mapping

from hwbp.options import OptionInfo, Options
from hwbp.errors import ConfigError, ModelNote

__all__ = ["add_option_flags", "OptionFlags", "warn_rejected", "add_output_arg", "check_out_path", "show_note",
           "plugin_of"]


def _argtype(info: OptionInfo):
    if info.type is int:
        return int
    if info.type is float:
        return float
    return str


class OptionFlags:
    """The flags of a set of option classes (by owner name) on one parser."""

    def __init__(self, owners: Mapping[str, type[Options]], reserved: Collection[str] = ()) -> None:
        #: dest -> (info, [owner names]); dests are ``opt_<field>``
        self.flags: dict[str, tuple[OptionInfo, list[str]]] = {}
        self._helps: dict[str, list[str]] = {}
        #: owner -> why it was left out (its options clash)
        self.rejected: dict[str, str] = {}
        accepted = {}
        for owner, cls in owners.items():
            reason = self._clash(owner, cls, set(reserved))
            if reason is not None:
                self.rejected[owner] = reason
                continue
            accepted[owner] = cls
            for info in cls.infos():
                if not info.cli:
                    continue
                dest = "opt_" + info.name
                if dest in self.flags:
                    self.flags[dest][1].append(owner)
                else:
                    self.flags[dest] = (info, [owner])
                    self._helps[dest] = []
                unit = f" [{info.unit}]" if info.unit else ""
                choices = f" {{{','.join(map(str, info.choices))}}}" if info.choices else ""
                self._helps[dest].append(f"{owner}: {info.help}{unit}{choices}")
        self.owners = accepted

    def _clash(self, owner: str, cls: type[Options], reserved: set[str]) -> str | None:
        """Why the options of ``owner`` cannot join (None: they can)."""
        try:
            infos = [i for i in cls.infos() if i.cli]
        except Exception as exc:
            return f"its options cannot be read ({type(exc).__name__}: {exc})".splitlines()[0]
        by_flag = {info.flag: info for info, _ in self.flags.values()}
        for info in infos:
            if info.flag in reserved:
                return f"its option {info.name!r} ({info.flag}) clashes with hwbp's own flag {info.flag}"
            dest = "opt_" + info.name
            known = self.flags[dest][0] if dest in self.flags else by_flag.get(info.flag)
            if known is not None and (known.flag != info.flag or known.type is not info.type
                                      or known.name != info.name):
                users = self.flags["opt_" + known.name][1]
                return (f"its option {info.name!r} ({info.flag} {info.type.__name__}) clashes with the one of "
                        f"{users[0]!r} ({known.flag} {known.type.__name__})")
        return None

    def add_to(self, parser: argparse.ArgumentParser, title: str) -> None:
        """Add every flag to ``parser`` in a group called ``title``."""
        group = parser.add_argument_group(title)
        for dest, (info, users) in self.flags.items():
            helptext = "; ".join(self._helps[dest]).replace("%", "%%")
            if info.type is bool:
                group.add_argument(info.flag, dest=dest, action="store_const", const=True, default=None,
                                   help=helptext)
            else:
                group.add_argument(info.flag, dest=dest, type=_argtype(info), default=None,
                                   metavar=info.name.upper(), help=helptext)

    def values(self, args: argparse.Namespace, owner: str, kind: str) -> dict[str, Any]:
        """The option values given on the command line for ``owner``; a flag that
        ``owner`` does not take, or an owner that was left out, is a :class:`ConfigError`."""
        if owner in self.rejected:
            raise ConfigError(f"{kind} {owner!r} is left out: {self.rejected[owner]}")
        out: dict[str, Any] = {}
        for dest, (info, users) in self.flags.items():
            value = getattr(args, dest, None)
            if value is None:
                continue
            if owner not in users:
                raise ConfigError(f"{info.flag} does not apply to --{kind} {owner} (it is an option of "
                                  f"{', '.join(users)})")
            out[info.name] = value
        return out


def add_option_flags(parser: argparse.ArgumentParser, owners: Mapping[str, type[Options]],
                     title: str) -> OptionFlags:
    """Add the flags of ``owners`` to ``parser``; return the :class:`OptionFlags`.  An
    owner whose options clash with the parser's own flags or with another owner's is
    left out (:attr:`OptionFlags.rejected`) and reported by :func:`warn_rejected`."""
    flags = OptionFlags(owners, reserved=list(parser._option_string_actions))
    flags.add_to(parser, title)
    warn_rejected(flags.rejected, title.split()[0])
    return flags


#: What :func:`warn_rejected` reported in this process (each once).
_WARNED: set[str] = set()


def warn_rejected(rejected: Mapping[str, str], kind: str) -> None:
    """One ``hwbp: warning:`` line on stderr per left-out plug-in and reason (once per
    process, whichever command's flags found it first)."""
    for owner, reason in rejected.items():
        if f"{owner}: {reason}" not in _WARNED:
            _WARNED.add(f"{owner}: {reason}")
            print(f"hwbp: warning: {kind} {owner!r} is left out: {reason}; the other {kind}s work", file=sys.stderr)


def add_output_arg(p: argparse.ArgumentParser) -> None:
    """``--output NAME``: the ONNX tensor to use as the model's output."""
    p.add_argument("--output", metavar="NAME", help="ONNX tensor to use as the model's output (default: the only "
                                                    "output; with several, a classifier's logits)")


def check_out_path(path: str | None, suffix: str, flag: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` (given with ``flag``) is None or a
    writable file name ending in ``suffix``."""
    from hwbp.io import check_writable

    if path is not None:
        if Path(path).suffix.lower() != suffix:
            raise ConfigError(f"{flag} {path}: expected a {suffix} file")
        check_writable(path, flag)


def show_note(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """Print a :class:`~hwbp.errors.ModelNote` (and any other warning) as one line on stderr."""
    kind = "note" if issubclass(category, ModelNote) else "warning"
    print(f"hwbp: {kind}: {' '.join(str(message).split())}", file=sys.stderr)


def plugin_of(exc: BaseException) -> tuple[str, str, str] | None:
    """``(kind, name, module)`` of the third-party backend or target whose code raised
    ``exc`` (the innermost frame of hwbp or of a plug-in decides), or None (hwbp's)."""
    import traceback

    from hwbp.backend import REGISTRY
    from hwbp.targets import TARGETS

    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] == "hwbp":
            return None
        for kind, registry in (("backend", REGISTRY), ("target", TARGETS)):
            name = registry.plugin_of(module)
            if name is not None:
                return kind, name, module
    return None
