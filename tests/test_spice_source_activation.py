"""Source-side activations in SPICE (terms ``f(g W φ(u) + b)``: the pre-activation
layers of :func:`hwbp.models.depth_resmlp`): one ``hwbp_act_<φ>`` cell per source
neuron, whose ``φ'`` gates the backward sum before it reaches the source.  Real ngspice."""

from __future__ import annotations

import numpy as np
import pytest

import hwbp.targets.spice.builders as builders
from hwbp.lower import lower
from hwbp.models import depth_resmlp
from hwbp.targets.spice.build import build_circuit
from hwbp.targets.spice.model import SpiceOptions
from hwbp.targets.spice.writer import NgspiceWriter
from hwbp.types import Batch
from hwbp.verify import verify

from spice_helpers import require_ngspice

#: `.op` against exact backprop (measured 2.4e-16 on tanh, depth 3).
OP_TOL = 1e-10


def _case(act: str, depth: int = 4):
    graph = depth_resmlp(5, 4, 3, depth, activation=act, seed=2).with_loss("mse")
    rng = np.random.default_rng(3)
    return graph, Batch({"x": rng.standard_normal((3, 5))}, rng.standard_normal((3, 3)))


def test_one_source_cell_per_source_neuron():
    graph, _ = _case("tanh")
    system = lower(graph)
    text = NgspiceWriter().write(build_circuit(system, SpiceOptions()))
    cells = [ln for ln in text.splitlines() if ln.startswith("Xu_")]
    # populations z1 .. z_{L-1} each feed one pre-activation layer through tanh
    assert len(cells) == sum(p.size for p in system.populations[:-1])
    assert all(ln.split()[5] == "hwbp_act_tanh" for ln in cells)


@pytest.mark.parametrize("realization", ["differential", "pair"])
@pytest.mark.parametrize("act", ["tanh", "relu", "gelu"])
def test_depth_model_has_exact_gradients(act, realization):
    require_ngspice()
    graph, batch = _case(act)
    v = verify(graph, batch, backend="spice", options={"realization": realization})
    assert v.comparison.max_rel_err < OP_TOL, v.comparison.max_rel_err


def test_without_the_source_side_gate_verification_fails(monkeypatch):
    """Negative control: a circuit whose backward sum bypasses phi' (the G elements
    into the source's sensitivity node read the ungated sum) must FAIL."""
    require_ngspice()
    original = builders.source_activation_sections

    def ungated(ctx):
        sections = original(ctx)
        out = []
        for sec in sections:
            items = tuple(builders.Element(e.name, (e.nodes[0], e.nodes[1], e.nodes[2].replace("_ug", "_ub"),
                                                    e.nodes[3]), e.value)
                          if e.name.startswith("Gu_") else e for e in sec.items)
            out.append(builders.Section(sec.title, items))
        return out

    monkeypatch.setattr("hwbp.targets.spice.build.source_activation_sections", ungated)
    graph, batch = _case("tanh")
    v = verify(graph, batch, backend="spice", options={})
    assert not v.passed and v.comparison.max_rel_err > 1e-3


def test_source_side_activation_on_an_input():
    """φ of a clamped input: one cell per input component, no backward path (the input
    has no sensitivity); gradients equal the reference simulator's steady state."""
    import dataclasses

    from hwbp.backend import get_backend
    from hwbp.models import random_mlp
    from hwbp.verify.readout import read_gradients

    require_ngspice()
    system = lower(random_mlp([4, 5, 3], activation="tanh", seed=1).with_loss("mse"))
    first = system.populations[0]
    term = dataclasses.replace(first.terms[0], source_activation="tanh")
    system = dataclasses.replace(system, populations=(dataclasses.replace(first, terms=(term,)),
                                                      *system.populations[1:]))
    text = NgspiceWriter().write(build_circuit(system, SpiceOptions()))
    assert sum(ln.startswith("Xu_") for ln in text.splitlines()) == 4
    assert not any(ln.startswith(("Rub_", "Gu_")) for ln in text.splitlines())
    rng = np.random.default_rng(0)
    batch = Batch({"x": rng.standard_normal((2, 4))}, rng.standard_normal((2, 3)))
    want = read_gradients(system, get_backend("reference").simulate(system, batch, {"mode": "steady"}).state,
                          batch).parameters
    got = read_gradients(system, get_backend("spice").simulate(system, batch, {"analysis": "op"}).state,
                         batch).parameters
    assert max(np.linalg.norm(got[k] - w) / np.linalg.norm(w) for k, w in want.items()) < OP_TOL
