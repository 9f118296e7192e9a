"""The guard on replacement cells (``--cells DIR``): a cell file is read the way ngspice
reads it (case-insensitive directive prefixes, ``;``/``$``/``//`` in-line comments,
``+`` continuation lines) and may hold only subcircuits, so that it can neither open a
control section, run ``shell`` nor read another file.
"""

from __future__ import annotations

import re
from pathlib import Path

from hwbp.errors import ConfigError

__all__ = ["top_subckts"]


#: The only dot commands a cell file may hold, matched as whole words.  ngspice reads a
#: directive by its case-insensitive prefix (``.controlx`` and ``.control;x`` open a
#: control section, ``.incfoo`` is ``.include``), so anything else that starts with a dot
#: (control sections, ``.include``/``.lib``, analyses, options, ``.end``) is refused.
_ALLOWED_DOT = frozenset({".subckt", ".ends", ".param", ".func", ".model"})
#: ngspice's in-line comment starters; what follows one is not part of the directive.
_INLINE_COMMENT = re.compile(r"[;$]|//")


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, text) of every non-blank, non-comment line of a
    SPICE file, with ``+`` continuation lines joined to the line they continue.

    A ``*#`` line is not a comment to ngspice (it runs as a control command) and is
    refused here, as is any line ngspice might read as the start of a script."""
    out: list[tuple[int, str]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("*#") or line.lower().startswith("*ng_script"):
            raise ConfigError(f"line {n}: {line.split()[0]!r} is not allowed in a cell "
                              f"(ngspice runs '*#' lines as control commands)")
        if not line or line.startswith("*"):
            continue
        if line.startswith("+") and out:
            out[-1] = (out[-1][0], f"{out[-1][1]} {line[1:].strip()}")
        else:
            out.append((n, line))
    return out


def _head(line: str) -> str:
    """The directive or element name a logical line starts with, as ngspice reads it
    (an in-line comment that follows it cut off)."""
    word = line.split()[0]
    return _INLINE_COMMENT.split(word, maxsplit=1)[0] or word


def top_subckts(p: Path, text: str) -> dict[str, int]:
    """Lower-case name -> port count of each top-level ``.subckt`` of the cell file
    ``p``; rejects banned dot commands, unbalanced ``.subckt``/``.ends`` and any
    line outside a subcircuit (a stray ``.param`` there would rescale the circuit)."""
    found: dict[str, int] = {}
    depth = 0
    try:
        lines = _logical_lines(text)
    except ConfigError as e:
        raise ConfigError(f"cell file {p}: {e}") from None
    for n, line in lines:
        words = line.split()
        head = _head(line).lower()
        if head.startswith(".") and head not in _ALLOWED_DOT:
            raise ConfigError(f"cell file {p}: line {n}: {_head(line)} is not allowed in a cell "
                              f"(only .subckt, .ends, .param, .func and .model; no control section, "
                              f".include, .lib, analysis, option or .end)")
        if head == ".subckt":
            if len(words) < 2:
                raise ConfigError(f"cell file {p}: line {n}: .subckt without a name")
            if depth == 0:
                ports = 0
                for w in words[2:]:
                    if "=" in w or w.lower() == "params:":
                        break
                    ports += 1
                found.setdefault(words[1].lower(), ports)
            depth += 1
        elif head == ".ends":
            if depth == 0:
                raise ConfigError(f"cell file {p}: line {n}: .ends without a matching .subckt")
            depth -= 1
        elif depth == 0:
            raise ConfigError(f"cell file {p}: line {n}: {words[0]!r} outside '.subckt ... .ends'; "
                              f"a cell file may hold only subcircuits and comments")
    if depth:
        raise ConfigError(f"cell file {p}: .subckt not closed by .ends")
    return found
