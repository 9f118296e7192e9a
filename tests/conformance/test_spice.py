"""The shipped conformance suite (:mod:`hwbp.testing`) for the spice backend (one file per
built-in backend, so that the suite's runs spread over the test workers)."""

from __future__ import annotations

import pytest

from hwbp.testing.suite import backend_params, check_case, check_state_signals, suite_params


@pytest.mark.parametrize("backend,profile,case", suite_params(["spice"], spread=3))
def test_backend_computes_exact_gradients(backend, profile, case) -> None:
    check_case(backend, profile, case)


@pytest.mark.parametrize("backend", backend_params(["spice"]))
def test_backend_state_is_complete_and_carries_gate_signals(backend) -> None:
    check_state_signals(backend)
