"""The conformance suite as pytest tests: every case of :func:`hwbp.testing.catalog.cases`
under every profile of each backend (``--backend NAME``, see
:mod:`hwbp.testing.plugin`; default: every registered backend).

Run it for one backend from any directory with ``python -m hwbp.testing NAME`` (or
``pytest --pyargs hwbp.testing --backend NAME`` where hwbp is installed).
"""

from __future__ import annotations

from typing import Any

from hwbp.backend import get_backend
from hwbp.testing.suite import backend_params, check_case, check_state_signals, suite_params


def _selected(config: Any) -> tuple[list[str] | None, bool]:
    try:
        names = config.getoption("hwbp_backends")
    except ValueError:  # the plugin is not loaded: every backend
        names = None
    return (list(names), True) if names else (None, False)


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrize by backend, profile and case."""
    names, requested = _selected(metafunc.config)
    if "hwbp_case" in metafunc.fixturenames:
        metafunc.parametrize("hwbp_backend,hwbp_profile,hwbp_case", suite_params(names, requested=requested))
    elif "hwbp_backend" in metafunc.fixturenames:
        metafunc.parametrize("hwbp_backend", backend_params(names, requested=requested))


def test_backend_computes_exact_gradients(hwbp_backend: str, hwbp_profile: Any, hwbp_case: Any) -> None:
    """The gradients the backend's settled state gives are exact backprop's, at its profile's bound."""
    if hwbp_profile is None:  # a backend that cannot be loaded, asked for by name: its error
        get_backend(hwbp_backend)
    check_case(hwbp_backend, hwbp_profile, hwbp_case)


def test_backend_state_is_complete_and_carries_gate_signals(hwbp_backend: str) -> None:
    """Every population's mean and tension and a gate signal per weighted term."""
    check_state_signals(hwbp_backend)
