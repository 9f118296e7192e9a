"""The one conformance suite (:mod:`hwbp.testing`) for every registered backend: the
built-ins and the template package found through its entry point.

Nothing here names a backend: the cases, the skips (from each backend's declared
support) and the checks are the shipped library's, exactly as ``python -m hwbp.testing
NAME`` runs them for one backend.
"""

from __future__ import annotations

import pytest

from hwbp.testing.suite import backend_params, check_case, check_state_signals, suite_params


@pytest.mark.parametrize("backend,profile,case", suite_params())
def test_backend_computes_exact_gradients(backend, profile, case) -> None:
    check_case(backend, profile, case)


@pytest.mark.parametrize("backend", backend_params())
def test_backend_state_is_complete_and_carries_gate_signals(backend) -> None:
    check_state_signals(backend)
