"""The one conformance suite: every registered backend, under each of its profiles,
on every case of :mod:`tests.conformance.cases`.

A backend joins by registering (built-in table or a package entry point of group
``hwbp.backends``) and declaring its profiles (:meth:`hwbp.backend.Backend.conformance`):
the option values, the named tolerance, the cases it cannot run and why.  Nothing
here names a backend.
"""

from __future__ import annotations

import numpy as np
import pytest

from hwbp.backend import backend_names, get_backend
from hwbp.oracle import exact_gradients
from hwbp.verify import Tolerances, verify

from .cases import build, cases


def _params():
    out = []
    for name in backend_names():
        backend = get_backend(name)
        for profile in backend.conformance():
            for case in cases():
                marks = []
                reason = profile.unsupported(case) if profile.unsupported else None
                if reason is not None:
                    marks.append(pytest.mark.skip(reason=f"{name}/{profile.name} does not support it: {reason}"))
                if profile.slow is not None and profile.slow(case):
                    marks.append(pytest.mark.slow)
                out.append(pytest.param(name, profile, case, id=f"{name}-{profile.name}-{case.id}", marks=marks))
    return out


@pytest.mark.parametrize("backend,profile,case", _params())
def test_backend_computes_exact_gradients(backend, profile, case) -> None:
    graph, batch = build(case)
    tol = Tolerances(max_rel_err=profile.max_rel_err, min_cosine=1.0 - profile.max_rel_err)
    v = verify(graph, batch, backend=backend, options=dict(profile.options), tolerances=tol,
               initial=case.initial if profile.takes_initial else None, seed=3)
    worst = max(v.comparison.parameters.items(), key=lambda kv: kv[1].rel_err)
    assert v.passed, (f"max rel_err {v.comparison.max_rel_err:.3g} > {profile.max_rel_err:g} "
                      f"(worst parameter {worst[0]}: {worst[1].rel_err:.3g})")
    # the report says what ran: the backend's realized tau, its options, the readout route
    assert v.report["tau_s"] == v.artefact.tau_s
    assert set(v.report["readout"]) == set(v.exact.parameters)
    if profile.reference_options is not None:  # the reference simulator's scheme, step for step
        ref = get_backend("reference").simulate(v.system, batch, dict(profile.reference_options),
                                                initial=case.initial if profile.takes_initial else None, seed=3)
        ours = v.result.state
        assert ours.t == ref.state.t and ours.steps == ref.state.steps
        diffs = {f"{field} {name}": _rel(getattr(ours, field)[name], getattr(ref.state, field)[name])
                 for field in ("mean", "tension") for name in ref.state.tension}
        diffs.update({f"gate {key}": _rel(ours.gates[key], g) for key, g in ref.state.gates.items()})
        worst = max(diffs, key=diffs.get)
        assert diffs[worst] <= profile.reference_rtol, (
            f"{worst}: {diffs[worst]:.3g} from the reference simulator > {profile.reference_rtol:g}")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.linalg.norm(b))
    return float(np.linalg.norm(np.asarray(a) - b)) / (scale if scale > 0 else 1.0)


@pytest.mark.parametrize("backend", backend_names())
def test_backend_state_is_complete_and_carries_gate_signals(backend) -> None:
    """Every population's mean and tension, and a gate signal per weighted term, of the
    right shape: the readout must not have to recompute f' for any registered backend."""
    graph, batch = build(cases()[3])
    be = get_backend(backend)
    profile = be.conformance()[0]
    v = verify(graph, batch, backend=backend, options=dict(profile.options))
    state = v.result.state
    for pop in v.system.populations:
        assert state.mean[pop.name].shape == state.tension[pop.name].shape == (batch.size, pop.size)
        for k, term in enumerate(pop.terms):
            if term.weight is not None:
                assert state.gates[(pop.name, k)].shape == (batch.size, pop.size)
    assert set(v.report["readout"].values()) == {"gate"}
    exact = exact_gradients(graph, batch)
    assert np.isfinite(v.physical.loss) and abs(v.physical.loss - exact.loss) <= 1e-6 * max(1.0, abs(exact.loss))
