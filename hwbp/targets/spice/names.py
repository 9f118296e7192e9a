"""SPICE-safe names derived from IR names.

Every node, element and parameter name in an emitted netlist is built from a *tag*
made here: lower case ASCII letters, digits and ``_`` only, starting with a letter,
at most :data:`MAX_TAG` characters, unique within the netlist.  No user-controlled
string (model name, population name, file name) can therefore start a new SPICE
line, a dot command or a ``.control`` block.  Free text that goes into comments
passes through :func:`comment_text`.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["MAX_TAG", "sanitize", "unique_tags", "comment_text"]

#: Longest tag taken from an IR name (a uniqueness suffix may follow).
MAX_TAG = 24

_NOT_NAME = re.compile(r"[^a-z0-9]+")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def sanitize(name: str, fallback: str = "n") -> str:
    """``name`` reduced to ``[a-z][a-z0-9_]*`` (at most :data:`MAX_TAG` characters).

    Non-ASCII characters, spaces, dots, newlines and SPICE punctuation become ``_``;
    a name that does not start with a letter gets ``fallback`` in front.
    """
    tag = _NOT_NAME.sub("_", str(name).lower()).strip("_")[:MAX_TAG].strip("_")
    if not tag or not tag[0].isalpha():
        tag = f"{fallback}_{tag}" if tag else fallback
    return tag


def unique_tags(names: Iterable[str], fallback: str = "n") -> dict[str, str]:
    """A unique tag for each name (in order): :func:`sanitize`, then ``_<index>`` where
    two names would collide.  Deterministic for the same sequence of names."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for i, name in enumerate(names):
        tag = sanitize(name, fallback)
        if tag in used:
            tag = f"{tag}_{i}"
            while tag in used:
                tag += "_"
        used.add(tag)
        out[name] = tag
    return out


def comment_text(text: object) -> str:
    """``text`` as a single printable-ASCII line, safe after a ``*`` comment marker
    (control characters and non-ASCII become ``?``)."""
    return _NOT_PRINTABLE.sub("?", str(text))
