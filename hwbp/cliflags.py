"""Command-line flags generated from :class:`hwbp.backend.Options` dataclasses.

Every registered backend (or target) contributes its option fields as flags.  A flag
shared by several backends (``--duration``, ``--dt``, ...) appears once; its help says
which backends take it.  Flags default to "not given", so a flag that the chosen
backend does not take is an error naming the backends it belongs to, never ignored.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping

from hwbp.options import OptionInfo, Options
from hwbp.errors import ConfigError

__all__ = ["add_option_flags", "OptionFlags", "add_output_arg", "check_out_path"]


def _argtype(info: OptionInfo):
    if info.type is int:
        return int
    if info.type is float:
        return float
    return str


class OptionFlags:
    """The flags of a set of option classes (by owner name) on one parser."""

    def __init__(self, owners: Mapping[str, type[Options]]) -> None:
        self.owners = dict(owners)
        #: dest -> (info, [owner names]); dests are ``opt_<field>``
        self.flags: dict[str, tuple[OptionInfo, list[str]]] = {}
        self._helps: dict[str, list[str]] = {}
        for owner, cls in self.owners.items():
            for info in cls.infos():
                if not info.cli:
                    continue
                dest = "opt_" + info.name
                if dest in self.flags:
                    known, users = self.flags[dest]
                    if known.flag != info.flag or known.type is not info.type:
                        raise ConfigError(f"option {info.name!r} of {owner!r} clashes with the one of "
                                          f"{users[0]!r} ({info.flag} {info.type.__name__} vs "
                                          f"{known.flag} {known.type.__name__})")
                    users.append(owner)
                else:
                    self.flags[dest] = (info, [owner])
                    self._helps[dest] = []
                unit = f" [{info.unit}]" if info.unit else ""
                choices = f" {{{','.join(map(str, info.choices))}}}" if info.choices else ""
                self._helps[dest].append(f"{owner}: {info.help}{unit}{choices}")

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
        ``owner`` does not take is a :class:`ConfigError`."""
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
    """Add the flags of ``owners`` to ``parser``; return the :class:`OptionFlags`."""
    flags = OptionFlags(owners)
    flags.add_to(parser, title)
    return flags


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
