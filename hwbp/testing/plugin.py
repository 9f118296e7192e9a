"""The pytest plugin of the conformance suite: ``--backend NAME`` (repeatable) picks the
backends that :mod:`hwbp.testing.test_conformance` runs (default: every registered one).

Installed hwbp declares it as a ``pytest11`` entry point, so that
``pytest --pyargs hwbp.testing --backend NAME`` works from any directory; from a source
checkout load it by name: ``pytest -p hwbp.testing.plugin --pyargs hwbp.testing
--backend NAME``, or run ``python -m hwbp.testing NAME``.  It imports nothing of hwbp
until the suite runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: Any) -> None:
    """``--backend NAME`` in a group of its own."""
    group = parser.getgroup("hwbp", "hwbp conformance suite (hwbp.testing)")
    group.addoption("--backend", action="append", dest="hwbp_backends", metavar="NAME", default=None,
                    help="run the hwbp conformance suite for this registered backend (repeatable; default: every "
                         "registered backend)")


def pytest_configure(config: Any) -> None:
    """Declare the ``slow`` marker the suite's long cases carry."""
    config.addinivalue_line("markers", "slow: long cases (deep networks, continuous-time runs); deselect with "
                                       "-m 'not slow'")
