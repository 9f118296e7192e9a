"""The conformance suite as a library, shipped with hwbp: every backend, built-in or
third-party, runs the same cases against exact backprop.

Run it for one backend from any directory::

    python -m hwbp.testing NAME            # or, with hwbp installed:
    pytest --pyargs hwbp.testing --backend NAME

The cases are generated from what hwbp supports (:mod:`hwbp.testing.catalog`); a case
that uses something the backend does not declare in its :class:`hwbp.support.Support`
is skipped with the reason.  A backend states the settings it runs them under, each
with its named tolerance, in :meth:`hwbp.backend.Backend.conformance`
(:class:`ConformanceProfile`).
"""

from __future__ import annotations

from typing import Any

from hwbp.testing.profile import CORE, ConformanceCase, ConformanceProfile, core

__all__ = ["ConformanceCase", "ConformanceProfile", "CORE", "core", "cases", "build", "check_case", "check_state_signals",
           "suite_params", "skip_reason"]

_LAZY = {"cases": "hwbp.testing.catalog", "build": "hwbp.testing.catalog", "check_case": "hwbp.testing.suite",
         "check_state_signals": "hwbp.testing.suite", "suite_params": "hwbp.testing.suite",
         "skip_reason": "hwbp.testing.suite"}


def __getattr__(name: str) -> Any:
    """The suite's functions, imported on first use (the backends import the profile
    types from here while hwbp loads; the suite imports the backends)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwbp.testing' has no attribute {name!r}")
