"""Shared helpers of the SPICE tests (real ngspice; nothing is mocked)."""

from __future__ import annotations

import shutil

import pytest

from hwbp.models import random_mlp


def require_ngspice() -> None:
    """Fail (not skip) when ngspice is missing: `make test` installs it on CI."""
    if shutil.which("ngspice") is None:
        pytest.fail("ngspice is not installed; run: apt-get install -y ngspice libngspice0 libngspice0-dev")


def mlp(depth: int, width: int, act: str, seed: int, n_in: int = 5, n_out: int = 3):
    """A random MLP of ``depth`` populations (hidden ``act``, linear output)."""
    gain = {"sigmoid": 4.0, "relu": 1.4}.get(act, 1.2)
    sizes = [n_in] + [width] * (depth - 1) + [n_out]
    return random_mlp(sizes, activation=act, seed=seed, gain=gain)
