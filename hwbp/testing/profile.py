"""The types of the conformance suite: a case, and a profile under which a backend runs
the cases (its options and its named tolerance)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["ConformanceCase", "ConformanceProfile", "CORE", "core"]

#: The core cases, by (model kind, activation): one of each model kind, both losses, the
#: activations whose derivatives differ most (tanh, relu, elu, clip).  A backend whose
#: cases cost seconds each marks the others ``slow`` (``make test-fast`` runs these).
CORE = frozenset({("mlp", "identity"), ("mlp", "tanh"), ("mlp", "elu"), ("resmlp", "relu"), ("resmlp", "clip"),
                  ("depthres", "relu"), ("conv2d", "silu"), ("batchnorm", "tanh"), ("tied", "tanh")})


@dataclass(frozen=True)
class ConformanceCase:
    """One case of the conformance suite: a model, a loss, a batch, an initial state.

    Attributes
    ----------
    model : str
        The model kind (:data:`hwbp.testing.catalog.MODELS`): ``mlp``, ``resmlp``,
        ``depthres`` (:func:`hwbp.models.depth_resmlp`: gains and source-side φ),
        ``conv1d``, ``conv2d``, ``conv2d-stride`` (convolutions, average pooling,
        batch normalization), ``batchnorm`` (a dense layer with batch normalization) or
        ``tied`` (one layer applied twice).
    activation : str
        The activation the model's hidden layers use.
    loss : str
        ``mse`` or ``ce``.
    depth : int
        Depth of the lowered system in populations (L; unit-step Euler is exact after 2L).
    batch_size : int
        Samples in the batch.
    initial : str
        Initial state (:data:`hwbp.initial.INITIAL_STATES`).
    """

    model: str
    activation: str
    loss: str
    depth: int
    batch_size: int
    initial: str

    @property
    def id(self) -> str:
        """Short test id."""
        return f"{self.model}-{self.activation}-{self.loss}-L{self.depth}-b{self.batch_size}-{self.initial}"


def core(case: ConformanceCase) -> bool:
    """Whether ``case`` is one of the :data:`CORE` cases."""
    return (case.model, case.activation) in CORE


@dataclass(frozen=True)
class ConformanceProfile:
    """A setting under which a backend runs the conformance suite.

    What a backend does not realize at all is declared once, in its
    :class:`hwbp.support.Support`, and the suite skips those cases by itself; a
    profile's ``unsupported`` is for the limits of one setting (a number format's
    resolution, say), each with its reason.

    Attributes
    ----------
    name : str
        Profile name, e.g. ``"unit-step"`` or ``"op"``.
    options : Mapping[str, object]
        Option values (fields of the backend's ``Options``).
    max_rel_err : float
        Bound on every tensor's ``rel_err``: a named constant of the backend module,
        with a comment saying why it is what it is.
    unsupported : callable, optional
        ``unsupported(case) -> str | None``: the reason a case is not run under this
        profile, or None.
    slow : callable, optional
        ``slow(case) -> bool``: cases marked ``slow`` (CI runs them too).
    takes_initial : bool
        Whether the profile starts from the case's initial state; a profile that solves
        for the fixed point directly (SPICE ``.op``) runs every case from its default.
    reference_options : Mapping[str, object], optional
        Options of the ``reference`` backend whose discrete scheme this profile runs
        step for step (same solver, dt and duration); the suite then also compares the
        final means, tensions and gates with the reference simulator's.
    reference_rtol : float
        Bound on the relative difference of that comparison.
    expected_failure : callable, optional
        ``expected_failure(case) -> str | None``: a case known to exceed the bound under
        this setting, with the measured figure; it runs and must fail (a strict xfail),
        so the day it passes the declaration is revisited.
    """

    name: str
    options: Mapping[str, Any]
    max_rel_err: float
    unsupported: Callable[[ConformanceCase], str | None] | None = None
    slow: Callable[[ConformanceCase], bool] | None = None
    takes_initial: bool = True
    reference_options: Mapping[str, Any] | None = None
    reference_rtol: float = 0.0
    expected_failure: Callable[[ConformanceCase], str | None] | None = None
