"""Where the circuit library lives.

The cells are one set of files, ``circuits/`` at the repository root.  The wheel maps that
directory into the package as ``hwbp/circuits/`` at build time (``setup.cfg``
``package_dir``), so an installed hwbp finds it next to its modules and a source checkout
finds it one level up.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["circuits_dir", "BEHAVIORAL_DIR"]

_PKG = Path(__file__).resolve().parent


def circuits_dir() -> Path:
    """The circuit library's root directory (``circuits/``).

    Returns
    -------
    Path
        ``<package>/circuits`` in an installed wheel, else ``<repository>/circuits``.
    """
    for candidate in (_PKG / "circuits", _PKG.parent / "circuits"):
        if (candidate / "behavioral").is_dir():
            return candidate
    return _PKG.parent / "circuits"


#: The behavioral cells (B sources and ideal VCCS): the ideal reference realization.
BEHAVIORAL_DIR = circuits_dir() / "behavioral"
