"""The shipped conformance suite (:mod:`hwbp.testing`) for every other registered backend:
the template package found through its entry point (a broken one is skipped with its
error), exactly as ``python -m hwbp.testing NAME`` runs it."""

from __future__ import annotations

import pytest

from hwbp.backend import BUILTIN_BACKENDS, backend_names
from hwbp.testing.suite import backend_params, check_case, check_state_signals, suite_params

OTHERS = [n for n in backend_names() if n not in BUILTIN_BACKENDS]


def test_the_template_backend_is_registered() -> None:
    assert "template" in OTHERS


@pytest.mark.parametrize("backend,profile,case", suite_params(OTHERS))
def test_backend_computes_exact_gradients(backend, profile, case) -> None:
    check_case(backend, profile, case)


@pytest.mark.parametrize("backend", backend_params(OTHERS))
def test_backend_state_is_complete_and_carries_gate_signals(backend) -> None:
    check_state_signals(backend)
