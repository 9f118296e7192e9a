"""The conformance suite's two sizes in hwbp's own test run.

``make test`` runs every case of every profile whose cases are cheap, and of the
expensive profiles (cases the profile marks slow: ngspice transients, Brian2, Lava
fixed point, the reference's continuous solver) every third case of the generated
list, so that each backend still meets every layout, activation family and loss.  The
rest carry the ``exhaustive`` mark and are deselected unless ``--conformance=full``
(CI's second step, ``.ci/run``; the option is declared in ``tests/conftest.py``) asks
for the whole suite.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--conformance") == "full":
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("exhaustive") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
