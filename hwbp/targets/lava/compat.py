"""Run lava-nc 0.10.0 on Python 3.11 without editing the installed package.

lava-nc 0.10.0 declares Python ``<3.11`` and fails to import there for two reasons,
both fixed here in memory, at import time, by a :data:`sys.meta_path` finder:

* ``lava.magma.compiler.var_model`` gives dataclass fields the default
  ``ByteEncoder()``, an unhashable (mutable) default that Python 3.11's dataclasses
  reject; the finder rewrites each ``= ByteEncoder()`` default to
  ``= dataclasses.field(default_factory=ByteEncoder)`` (same value for every instance
  that does not override it, each one now its own object);
* ``lava.magma.runtime.message_infrastructure.multiprocessing`` calls
  ``multiprocessing.set_start_method('fork')``, which raises once another library
  (dask, torch) fixed the start method; the finder adds ``force=True``.

:func:`install` is idempotent and must run before the first ``lava`` import; every
hwbp module that imports lava calls :func:`import_lava` (or :func:`install`) first.
Only the two named modules are touched; their source is read from the installed
files and compiled without writing bytecode caches.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from types import ModuleType
from typing import Callable, Mapping, Sequence

from hwbp.errors import BackendError

__all__ = ["PATCHES", "LavaCompatFinder", "install", "installed", "import_lava", "patch_source"]

_BYTE_DEFAULT = re.compile(r"(:\s*ByteEncoder\s*)=\s*ByteEncoder\(\)")
_FORK = re.compile(r"mp\.set_start_method\(\s*(['\"])fork\1\s*\)")


def _patch_var_model(src: str) -> str:
    out = _BYTE_DEFAULT.sub(r"\1= _hwbp_field(default_factory=ByteEncoder)", src)
    return out.replace("from dataclasses import dataclass, InitVar",
                       "from dataclasses import dataclass, InitVar, field as _hwbp_field", 1)


def _patch_multiprocessing(src: str) -> str:
    return _FORK.sub("mp.set_start_method('fork', force=True)", src)


#: Module name -> source rewrite.
PATCHES: Mapping[str, Callable[[str], str]] = {
    "lava.magma.compiler.var_model": _patch_var_model,
    "lava.magma.runtime.message_infrastructure.multiprocessing": _patch_multiprocessing,
}


def patch_source(module: str, src: str) -> str:
    """The rewritten source of ``module`` (unchanged for a module not in :data:`PATCHES`).

    Raises
    ------
    BackendError
        If the patch no longer applies (a lava-nc version other than 0.10.0).
    """
    fix = PATCHES.get(module)
    if fix is None:
        return src
    out = fix(src)
    if module.endswith("var_model") and ("= ByteEncoder()" in out or "_hwbp_field" not in out):
        raise BackendError(f"cannot adapt {module} to this Python: unexpected source (lava-nc 0.10.0 needed)")
    return out


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Source loader that compiles the patched source (no bytecode cache)."""

    def get_code(self, fullname: str):  # noqa: D102 - importlib protocol
        src = self.get_data(self.path).decode("utf-8")
        return compile(patch_source(fullname, src), self.path, "exec", dont_inherit=True)


class LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that serves the modules of :data:`PATCHES` through a patching loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None):
        """Spec of ``fullname`` with a patching loader; None for every other module."""
        if fullname not in PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin)
        return spec


def installed() -> bool:
    """Whether the finder is on :data:`sys.meta_path`."""
    return any(isinstance(f, LavaCompatFinder) for f in sys.meta_path)


def install() -> None:
    """Put the finder first on :data:`sys.meta_path` (idempotent).  Modules of
    :data:`PATCHES` that were already imported unpatched cannot be fixed: a
    :class:`BackendError` says so."""
    if installed():
        return
    early = [m for m in PATCHES if m in sys.modules and not isinstance(
        getattr(sys.modules[m], "__loader__", None), _PatchingLoader)]
    if early and sys.version_info >= (3, 11):
        raise BackendError(f"{early[0]} was imported before hwbp's lava compatibility layer; import "
                           f"hwbp.targets.lava.compat first")
    sys.meta_path.insert(0, LavaCompatFinder())


def import_lava() -> None:
    """Install the compatibility layer, then import lava's core modules.

    Raises
    ------
    BackendError
        If lava-nc is not installed (the message says how to install it).
    """
    install()
    if importlib.util.find_spec("lava") is None:
        raise BackendError("the lava backend needs lava-nc 0.10.0: pip install numpy<2 'scipy>=1.10,<2' "
                           "networkx==2.8.7 asteval==0.9.33 'scikit-learn>=1.5,<2' && pip install --no-deps "
                           "--ignore-requires-python lava-nc==0.10.0 (or make test)")
    import lava.magma.core.process.process  # noqa: F401
    import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
