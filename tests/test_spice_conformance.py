"""The SPICE backend's conformance profiles (``SpiceBackend.conformance()``): each
realization, ``.op`` and ``.tran``, on a few cases of the conformance suite; gradients
against exact backprop (real ngspice)."""

from __future__ import annotations

import pytest

from hwbp.testing import ConformanceCase
from hwbp.models import random_mlp, random_resmlp
from hwbp.targets.spice.backend import SpiceBackend
from hwbp.verify import verify

from conftest import make_batch
from spice_helpers import require_ngspice

CASES = (
    ConformanceCase("mlp", "tanh", "mse", 2, 2, "zeros"),
    ConformanceCase("resmlp", "sigmoid", "ce", 3, 2, "zeros"),
    ConformanceCase("mlp", "tanh", "ce", 2, 1, "random"),
    ConformanceCase("mlp", "relu", "mse", 4, 2, "random"),
)


def _graph(case: ConformanceCase):
    if case.model == "mlp":
        gain = {"sigmoid": 4.0, "relu": 1.4}.get(case.activation, 1.2)
        sizes = [5] + [6] * (case.depth - 1) + [3]
        return random_mlp(sizes, activation=case.activation, seed=case.depth, gain=gain).with_loss(case.loss)
    return random_resmlp(4, 5, 3, case.depth - 1, activation=case.activation, seed=case.depth).with_loss(case.loss)


def _params():
    out = []
    for profile in SpiceBackend().conformance():
        for case in CASES:
            reason = profile.unsupported(case) if profile.unsupported else None
            if reason is not None:
                continue
            marks = [pytest.mark.slow] if profile.slow is not None and profile.slow(case) else []
            out.append(pytest.param(profile, case, id=f"{profile.name}-{case.id}", marks=marks))
    return out


@pytest.mark.parametrize("profile,case", _params())
def test_profile(profile, case: ConformanceCase) -> None:
    require_ngspice()
    g = _graph(case)
    batch = make_batch(g, size=case.batch_size, seed=case.depth + 3, loss=case.loss)
    initial = None if profile.options["analysis"] == "op" else case.initial
    v = verify(g, batch, backend="spice", options=profile.options, initial=initial, seed=1)
    assert v.comparison.max_rel_err <= profile.max_rel_err, (profile.name, case.id, v.comparison.max_rel_err)
    assert v.result.settle["realization"] == profile.options["realization"]


def test_every_realization_has_op_and_tran_profiles() -> None:
    names = {p.name for p in SpiceBackend().conformance()}
    assert names == {"op-pair", "op-differential", "tran-pair", "tran-differential"}
