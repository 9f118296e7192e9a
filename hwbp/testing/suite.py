"""The conformance checks, and the parameter list that runs them for a set of backends.

:func:`check_case` verifies one backend, under one of its profiles, on one case: the
gradients read from its settled state against exact backprop, at the profile's named
tolerance (and, where the profile runs the reference simulator's discrete scheme, its
final state against the reference simulator's).  :func:`check_state_signals` checks
that a backend's state is complete and carries a gate signal per weighted term.
:func:`suite_params` lists every (backend, profile, case) with its marks: a case that
uses something the backend does not declare (:class:`hwbp.support.Support`) is skipped
with that reason; a backend that cannot be loaded is skipped, or fails where it was
asked for by name.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Sequence

import numpy as np

from hwbp.backend import backend_names, get_backend
from hwbp.lower.lowerer import lower
from hwbp.support import Uses, system_uses
from hwbp.testing.catalog import build, cases
from hwbp.testing.profile import ConformanceCase, ConformanceProfile

__all__ = ["check_case", "check_state_signals", "suite_params", "skip_reason", "case_uses"]

#: Seed of every random initial state of the suite.
SEED = 3


@functools.lru_cache(maxsize=None)
def case_uses(case: ConformanceCase) -> Uses:
    """What the system of ``case`` uses (activations, term features, loss)."""
    graph, _ = build(case)
    return system_uses(lower(graph))


def skip_reason(backend: str, profile: ConformanceProfile, case: ConformanceCase) -> str | None:
    """Why ``backend`` does not run ``case`` under ``profile`` (None: it runs it): what
    the case uses that the backend's declared support lacks, or the profile's own
    ``unsupported`` reason."""
    be = get_backend(backend)
    missing = be.supports(be.options(dict(profile.options))).missing(case_uses(case))
    if missing:
        return f"{backend} does not realize the {', the '.join(missing)}"
    if profile.unsupported is not None:
        reason = profile.unsupported(case)
        if reason is not None:
            return f"{backend}/{profile.name}: {reason}"
    return None


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.linalg.norm(b))
    return float(np.linalg.norm(np.asarray(a) - b)) / (scale if scale > 0 else 1.0)


def check_case(backend: str, profile: ConformanceProfile, case: ConformanceCase) -> None:
    """Verify ``backend`` under ``profile`` on ``case``; raise ``AssertionError`` naming
    the worst tensor if a gradient (or, with ``profile.reference_options``, a final
    mean, tension or gate) is beyond the profile's bound."""
    from hwbp.verify import Tolerances, verify

    graph, batch = build(case)
    initial = case.initial if profile.takes_initial else None
    tol = Tolerances(max_rel_err=profile.max_rel_err, min_cosine=1.0 - profile.max_rel_err)
    v = verify(graph, batch, backend=backend, options=dict(profile.options), tolerances=tol, initial=initial,
               seed=SEED)
    worst = max(v.comparison.parameters.items(), key=lambda kv: kv[1].rel_err)
    assert v.passed, (f"{backend}/{profile.name} on {case.id}: max rel_err {v.comparison.max_rel_err:.3g} > "
                      f"{profile.max_rel_err:g} (worst parameter {worst[0]}: rel_err {worst[1].rel_err:.3g}, "
                      f"cosine {worst[1].cosine:.6g})")
    # the report says what ran: the backend's realized tau and the readout route of every parameter
    assert v.report["tau_s"] == v.artefact.tau_s
    assert set(v.report["readout"]) == set(v.exact.parameters)
    if profile.reference_options is not None:  # the reference simulator's scheme, step for step
        ref = get_backend("reference").simulate(v.system, batch, dict(profile.reference_options), initial=initial,
                                                seed=SEED)
        ours = v.result.state
        assert ours.t == ref.state.t and ours.steps == ref.state.steps, (
            f"ran to t={ours.t}, {ours.steps} steps; the reference scheme to t={ref.state.t}, {ref.state.steps}")
        diffs = {f"{field} {name}": _rel(getattr(ours, field)[name], getattr(ref.state, field)[name])
                 for field in ("mean", "tension") for name in ref.state.tension}
        diffs.update({f"gate {key}": _rel(ours.gates[key], g) for key, g in ref.state.gates.items()})
        worst_state = max(diffs, key=diffs.__getitem__)
        assert diffs[worst_state] <= profile.reference_rtol, (
            f"{worst_state}: {diffs[worst_state]:.3g} from the reference simulator > {profile.reference_rtol:g}")


def check_state_signals(backend: str) -> None:
    """Under the backend's first profile, on a residual MLP: every population's mean and
    tension and a gate signal per weighted term, of shape ``(batch, n)``, and every
    parameter read from a gate (the readout never recomputes ``f'``); the loss of the
    settled state is the exact one."""
    from hwbp.oracle import exact_gradients
    from hwbp.verify import verify

    be = get_backend(backend)
    profile = be.conformance()[0]
    case = ConformanceCase("resmlp", "tanh", "mse", 3, 2, "zeros")
    graph, batch = build(case)
    v = verify(graph, batch, backend=backend, options=dict(profile.options))
    state = v.result.state
    for pop in v.system.populations:
        for field in ("mean", "tension"):
            shape = np.shape(getattr(state, field)[pop.name])
            assert shape == (batch.size, pop.size), f"{field} of {pop.name!r}: shape {shape}"
        for k, term in enumerate(pop.terms):
            if term.weighted:
                assert (pop.name, k) in state.gates, f"no gate signal of term {k} of {pop.name!r}"
                assert np.shape(state.gates[(pop.name, k)]) == (batch.size, pop.size)
    assert set(v.report["readout"].values()) == {"gate"}, v.report["readout"]
    exact = exact_gradients(graph, batch)
    assert np.isfinite(v.physical.loss) and abs(v.physical.loss - exact.loss) <= 1e-6 * max(1.0, abs(exact.loss))


def _profiles(name: str) -> tuple[Any, Sequence[ConformanceProfile] | None, str | None]:
    """The backend ``name``, its profiles, or why it cannot be loaded."""
    try:
        be = get_backend(name)
        return be, tuple(be.conformance()), None
    except Exception as exc:  # a broken plug-in is reported, not fatal for the others
        return None, None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def suite_params(names: Iterable[str] | None = None, *, requested: bool = False,
                 spread: int | None = None) -> list[Any]:
    """``pytest.param(backend, profile, case)`` of every case of every profile of each
    backend in ``names`` (default: every registered backend), with marks: ``skip`` with
    the reason where the backend does not realize what the case uses, ``slow`` where the
    profile says so.  A backend that cannot be loaded is one parameter that skips with
    the reason, or, when ``requested`` (named by the user), fails with it.  With
    ``spread = k``, a case the profile marks slow also carries the ``exhaustive`` mark
    unless its index in :func:`cases` is a multiple of ``k`` (a test run may then
    deselect those and keep an even spread of the expensive profiles' cases)."""
    import pytest

    out = []
    for name in list(backend_names() if names is None else names):
        be, profiles, error = _profiles(name)
        if error is not None:
            out.append(pytest.param(name, None, None, id=f"{name}-not-loaded",
                                    marks=() if requested else pytest.mark.skip(
                                        reason=f"backend {name!r} cannot be loaded: {error}")))
            continue
        for profile in profiles:
            for index, case in enumerate(cases()):
                marks = []
                reason = skip_reason(name, profile, case)
                if reason is not None:
                    marks.append(pytest.mark.skip(reason=reason))
                if profile.slow is not None and profile.slow(case):
                    marks.append(pytest.mark.slow)
                    if spread is not None and index % spread:
                        marks.append(pytest.mark.exhaustive)
                why = profile.expected_failure(case) if profile.expected_failure is not None else None
                if why is not None:
                    marks.append(pytest.mark.xfail(strict=True, raises=AssertionError,
                                                   reason=f"{name}/{profile.name}: {why}"))
                out.append(pytest.param(name, profile, case, id=f"{name}-{profile.name}-{case.id}", marks=marks))
    return out


def backend_params(names: Iterable[str] | None = None, *, requested: bool = False) -> list[Any]:
    """``pytest.param(backend)`` for :func:`check_state_signals`, with the same
    handling of a backend that cannot be loaded as :func:`suite_params`."""
    import pytest

    out = []
    for name in list(backend_names() if names is None else names):
        _, _, error = _profiles(name)
        marks = () if error is None or requested else pytest.mark.skip(reason=f"backend {name!r} cannot be loaded: "
                                                                               f"{error}")
        out.append(pytest.param(name, id=name, marks=marks))
    return out
