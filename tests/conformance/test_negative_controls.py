"""Negative controls: four deliberately wrong backends (small changes to the reference
simulator) each FAIL the conformance suite, so the generated cases catch a wrong gate,
an ignored gain, a wrong derivative and an ignored layout offset.

Each wrong backend realizes the dynamics of a system that differs from the one it was
given in one respect, while the artefact keeps the given system (so the readout and
the report are those of the given system, as a real backend's would be).
"""

from __future__ import annotations

import copy
import dataclasses
from unittest import mock

import numpy as np
import pytest

from hwbp.backend import Artefact, get_backend, register_backend, REGISTRY
from hwbp.ir import activations
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.backend import ReferenceBackend
from hwbp.testing import ConformanceCase, cases
from hwbp.testing.suite import check_case, skip_reason


def _with_terms(system: DynamicsSystem, change) -> DynamicsSystem:
    pops = tuple(dataclasses.replace(p, terms=tuple(change(t) for t in p.terms)) for p in system.populations)
    return dataclasses.replace(system, populations=pops)


class _Altered(ReferenceBackend):
    """The reference simulator run on an altered system or with an altered table."""

    def alter(self, system: DynamicsSystem) -> DynamicsSystem:
        return system

    def table(self) -> dict:
        return {}

    def run(self, artefact, batch, **kw):
        wrong = Artefact(self.alter(artefact.system), artefact.options, artefact.tau_s, artefact.data)
        with mock.patch.dict(activations._TABLE, self.table()):
            return super().run(wrong, batch, **kw)


class WrongTanhGate(_Altered):
    """tanh's gate as ``1 - y`` instead of ``1 - y**2`` (f itself right)."""

    name = "wrong-tanh-gate"

    def table(self) -> dict:
        fn = activations.ACTIVATIONS["tanh"]
        return {"tanh": dataclasses.replace(fn, df=lambda a, y, p: 1.0 - y)}


class IgnoredGain(_Altered):
    """Every term's fixed gain dropped (g = 1)."""

    name = "ignored-gain"

    def alter(self, system):
        return _with_terms(system, lambda t: dataclasses.replace(t, gain=1.0))


class WrongEluDerivative(_Altered):
    """elu's derivative below 0 taken as ``y`` (= alpha (exp(a) - 1)), missing ``+ alpha``."""

    name = "wrong-elu-derivative"

    def table(self) -> dict:
        fn = activations.ACTIVATIONS["elu"]
        return {"elu": dataclasses.replace(fn, df=lambda a, y, p: np.where(a > 0, 1.0, y))}


class IgnoredLayoutOffset(_Altered):
    """A layout's input offset (batch norm's running mean) dropped."""

    name = "ignored-layout-offset"

    def alter(self, system):
        def drop(t):
            if t.layout is None or t.layout.offset is None:
                return t
            layout = copy.copy(t.layout)
            layout.offset = None
            return dataclasses.replace(t, layout=layout)
        return _with_terms(system, drop)


WRONG = (WrongTanhGate, IgnoredGain, WrongEluDerivative, IgnoredLayoutOffset)


@pytest.fixture
def registered():
    names = []

    def add(cls):
        register_backend(cls.name, cls)
        names.append(cls.name)
        return cls.name

    yield add
    for n in names:
        REGISTRY.unregister(n)


def _first_failure(name: str) -> tuple[ConformanceCase, str] | None:
    """The first case of the suite (unit-step profile) that ``name`` fails, with the message."""
    profile = get_backend(name).conformance()[0]
    for case in cases():
        if skip_reason(name, profile, case) is not None:
            continue
        try:
            check_case(name, profile, case)
        except AssertionError as exc:
            return case, str(exc)
    return None


@pytest.mark.parametrize("cls", WRONG, ids=[c.name for c in WRONG])
def test_a_wrong_backend_fails_the_suite(cls, registered) -> None:
    name = registered(cls)
    assert get_backend(name).conformance()[0].name == "unit-step"
    failed = _first_failure(name)
    assert failed is not None, f"{name} passes every conformance case"
    case, message = failed
    assert "max rel_err" in message and name in message
    what = {"wrong-tanh-gate": "tanh", "wrong-elu-derivative": "elu"}.get(name)
    if what is not None:  # caught by a case that uses the activation
        assert case.activation == what, case.id
    elif name == "ignored-gain":
        assert case.model == "depthres", case.id
    else:
        assert case.model in ("conv2d", "batchnorm"), case.id


def test_the_unaltered_wrapper_passes(registered) -> None:
    """The control of the controls: the wrapper itself changes nothing."""

    class Same(_Altered):
        name = "unaltered-reference"

    registered(Same)
    profile = get_backend("unaltered-reference").conformance()[0]
    for case in [c for c in cases() if c.activation in ("tanh", "elu") or c.model in ("depthres", "batchnorm")]:
        check_case("unaltered-reference", profile, case)
