"""The generated case list covers what hwbp supports: every activation (with each loss),
every term feature, both losses, every initial state, batch sizes and depths, and each
case's depth is its lowered system's."""

from __future__ import annotations

from hwbp.initial import INITIAL_STATES
from hwbp.ir.activations import ACTIVATIONS
from hwbp.ir.losses import LOSSES
from hwbp.lower import lower
from hwbp.support import FEATURES
from hwbp.testing import CORE, build, cases, core
from hwbp.testing.catalog import MODELS
from hwbp.testing.suite import case_uses


def test_every_activation_feature_loss_and_initial_state_occurs() -> None:
    cs = cases()
    assert len({c.id for c in cs}) == len(cs)
    uses = [case_uses(c) for c in cs]
    for act in ACTIVATIONS:  # as a term's f, with each loss
        assert {c.loss for c, u in zip(cs, uses) if act in u.activations} == set(LOSSES), act
    assert set().union(*(u.features for u in uses)) == set(FEATURES)
    assert {c.initial for c in cs} == set(INITIAL_STATES)
    assert {c.model for c in cs} == set(MODELS)
    assert max(c.depth for c in cs) == 8 and {1, 7} <= {c.batch_size for c in cs}
    assert {(c.model, c.activation) for c in cs if core(c)} == set(CORE)


def test_a_case_states_the_depth_of_its_system() -> None:
    for case in cases():
        graph, batch = build(case)
        assert lower(graph).depth == case.depth, case.id
        assert batch.size == case.batch_size
