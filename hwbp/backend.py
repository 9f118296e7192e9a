"""The backend contract: what a realization of a :class:`~hwbp.lower.DynamicsSystem`
implements, and the registry that finds every backend (built-in or third-party).

A backend is a subclass of :class:`Backend` with

* ``name`` and ``description``;
* ``Options``: a frozen :class:`Options` dataclass whose fields (declared with
  :func:`option`, with units and help text) become the command-line flags of
  ``hwbp verify``, ``simulate`` and ``train``, validate themselves, and are recorded
  in the report;
* ``compile(system, options) -> Artefact``: everything that does not depend on the
  batch (a netlist, a process graph, a kernel's tables); ``artefact.tau_s`` is the
  time constant the realization has (the one source of truth for tau);
* ``run(artefact, batch, *, initial, seed, trace) -> SimulationResult``: settle on a
  batch and return, per population, means and tensions and, per weighted term, the
  gated sensitivity ``e = f'(a) ⊙ T`` as the hardware produced it;
* optionally ``update_parameters(artefact, params)`` so training need not recompile;
* ``conformance()``: the profiles (settings, tolerances with the reason for each, and
  unsupported cases with a reason) under which it runs the one conformance suite in
  ``tests/conformance/``.

Backends are found by :func:`get_backend` in the built-in table and in the package
entry points of group ``hwbp.backends`` (``name = "module:Class"``): a third-party
package adds one by declaring the entry point, without editing hwbp.  The built-ins
are declared the same way in hwbp's own metadata; the table below only lets a source
checkout that was never installed find them.  A backend module imports its external
tool lazily (inside ``compile``/``run``), so that listing its options costs nothing.

Example (the minimum a backend author writes; see ``tests/fixtures/``)::

    @dataclass(frozen=True)
    class MyOptions(Options):
        gain: float = option(1.0, "amplifier gain (dimensionless)")

    class MyBackend(Backend):
        name = "mine"
        description = "my simulator"
        Options = MyOptions

        def compile(self, system, options):
            return Artefact(system, options, tau_s=1.0)

        def run(self, artefact, batch, *, initial=None, seed=0, trace=False):
            ...  # return SimulationResult(State(means, tensions, gates=...))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from hwbp.dynamics.drive import forward_pass
from hwbp.errors import ConfigError
from hwbp.options import OptionInfo, Options, option
from hwbp.registry import Registry
from hwbp.lower.system import DynamicsSystem
from hwbp.state import SimulationResult, State
from hwbp.types import Batch

__all__ = [
    "option", "Options", "OptionInfo", "Artefact", "Backend", "ConformanceCase", "ConformanceProfile",
    "INITIAL_STATES", "initial_state", "ENTRY_POINT_GROUP", "BUILTIN_BACKENDS", "REGISTRY", "backend_names",
    "get_backend", "register_backend", "check_state", "check_hardware",
]

#: Entry point group of backends (``name = "module:Class"``).
ENTRY_POINT_GROUP = "hwbp.backends"

#: The backends hwbp ships (also declared as entry points in its metadata).
BUILTIN_BACKENDS: Mapping[str, str] = MappingProxyType({
    "reference": "hwbp.sim.backend:ReferenceBackend",
    "spice": "hwbp.targets.spice.backend:SpiceBackend",
    "lava": "hwbp.targets.lava.backend:LavaBackend",
    "brian2": "hwbp.targets.brian2.backend:Brian2Backend",
})

#: Named initial states every backend understands (besides a :class:`State`).
INITIAL_STATES = ("zeros", "random", "forward-manifold")


# ------------------------------------------------------------------ artefact
@dataclass(frozen=True, eq=False)
class Artefact:
    """What :meth:`Backend.compile` produced: the system as realized (its ``tau_s`` is
    the realized time constant), the options, and backend-specific ``data``."""

    system: DynamicsSystem
    options: Options
    tau_s: float
    data: Any = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.tau_s) and self.tau_s > 0):
            raise ConfigError(f"the realized time constant must be a positive number of seconds, got {self.tau_s}")
        if self.system.tau_s != self.tau_s:
            object.__setattr__(self, "system", self.system.with_options(tau_s=self.tau_s))


# ------------------------------------------------------------------ conformance
@dataclass(frozen=True)
class ConformanceCase:
    """One case of the conformance suite: a model, a loss, a batch, an initial state."""

    model: str  # "mlp", "resmlp" or "depthres" (hwbp.models.depth_resmlp)
    activation: str
    loss: str
    depth: int
    batch_size: int
    initial: str

    @property
    def id(self) -> str:
        """Short test id."""
        return f"{self.model}-{self.activation}-{self.loss}-L{self.depth}-b{self.batch_size}-{self.initial}"


@dataclass(frozen=True)
class ConformanceProfile:
    """A setting under which a backend runs the conformance suite.

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
        ``unsupported(case) -> str | None``: the reason a case is not run, or None.
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
    """

    name: str
    options: Mapping[str, Any]
    max_rel_err: float
    unsupported: Callable[[ConformanceCase], str | None] | None = None
    slow: Callable[[ConformanceCase], bool] | None = None
    takes_initial: bool = True
    reference_options: Mapping[str, Any] | None = None
    reference_rtol: float = 0.0


# ------------------------------------------------------------------ backend
class Backend(ABC):
    """Base class of every backend (see the module docstring for the contract)."""

    #: Registry name (``--backend NAME``).
    name: ClassVar[str] = ""
    #: One line for ``--help``.
    description: ClassVar[str] = ""
    #: The options dataclass.
    Options: ClassVar[type[Options]] = Options
    #: Option values a gradient source for training uses unless the user sets them.
    training_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    #: Hardware non-idealities (:meth:`hwbp.hardware.Hardware.features`) this backend
    #: realizes for a device instance; any other is refused by :func:`check_hardware`.
    hardware_support: ClassVar[frozenset[str]] = frozenset()

    def options(self, values: Mapping[str, Any] | Options | None = None) -> Options:
        """``values`` as this backend's :class:`Options` (unknown keys are errors)."""
        return self.Options.coerce(values, owner=self.name, kind="backend")

    @abstractmethod
    def compile(self, system: DynamicsSystem, options: Options) -> Artefact:
        """Realize ``system`` (batch-independent work)."""

    @abstractmethod
    def run(self, artefact: Artefact, batch: Batch, *, initial: str | State | None = None, seed: int = 0,
            trace: bool = False) -> SimulationResult:
        """Settle ``artefact`` on ``batch`` from ``initial`` (``None``: the backend's
        default); ``seed`` draws a random initial state; ``trace`` records the trajectory
        where the backend can."""

    def update_parameters(self, artefact: Artefact, params: Mapping[str, np.ndarray]) -> Artefact:
        """An artefact with new parameter values (default: compile again)."""
        return self.compile(artefact.system.with_parameters(params), artefact.options)

    def train_on_chip(self, graph: Any, x: np.ndarray, labels: np.ndarray, config: Any, options: Options, *,
                      beta: float = 1.0, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                      progress: bool = True, desc: str = "training") -> Any:
        """Optional: train inside the realization (on-chip learning), when ``options`` ask
        for it.  Return a :class:`hwbp.train.TrainResult`, or ``None`` (the default) to let
        the host train with the gradients that :meth:`run` provides.  ``config`` is a
        :class:`hwbp.train.TrainConfig`; ``x``, ``labels`` the training set."""
        return None

    def conformance(self) -> Sequence[ConformanceProfile]:
        """Profiles under which this backend runs the conformance suite (default: one,
        with default options, at the reference bound)."""
        return (ConformanceProfile("default", {}, 1e-10),)

    def figure(self, verification: Any, batch: Batch) -> Any:
        """Optional: a matplotlib figure of a verification of this backend's own
        (``hwbp verify --plot``), or ``None`` (the default) for the standard one: the
        gradients against exact backprop, and the error against time when traced
        (:func:`hwbp.verify.plot.verification_figure`)."""
        return None

    def simulate(self, system: DynamicsSystem, batch: Batch, options: Mapping[str, Any] | Options | None = None,
                 **run: Any) -> SimulationResult:
        """``compile`` then ``run`` (``run`` takes ``initial``, ``seed``, ``trace``)."""
        artefact = self.compile(system, self.options(options))
        return self.run(artefact, batch, **run)


def check_state(system: DynamicsSystem, state: State, backend: str) -> None:
    """Raise :class:`ConfigError` if a backend's ``state`` lacks a population or has
    arrays of the wrong shape (a defect of that backend, reported clearly)."""
    for pop in system.populations:
        for kind, values in (("mean", state.mean), ("tension", state.tension)):
            if pop.name not in values:
                raise ConfigError(f"backend {backend!r} returned no {kind} for population {pop.name!r}; "
                                  f"a state needs every population: {', '.join(p.name for p in system.populations)}")
            shape = np.shape(values[pop.name])
            if len(shape) != 2 or shape[1] != pop.size:
                raise ConfigError(f"backend {backend!r}: {kind} of population {pop.name!r} has shape {shape}, "
                                  f"expected (batch, {pop.size})")


# ------------------------------------------------------------------ initial state
def initial_state(system: DynamicsSystem, batch: Batch, initial: str | State, seed: int = 0) -> State:
    """The initial state every backend starts from, drawn identically for one seed.

    ``zeros``: all nodes at 0.  ``random``: means then tensions ``N(0, 1)``, population
    by population in topological order, from ``numpy.random.default_rng(seed)``.
    ``forward-manifold``: means at the forward pass (populations in topological order,
    each from the settled means), tensions 0.  A :class:`State` is checked (every
    population, shape ``(batch, n)``, finite) and returned as float64.
    """
    shapes = [(batch.size, p.size) for p in system.populations]
    names = [p.name for p in system.populations]
    if isinstance(initial, State):
        means, tens = {}, {}
        for n, shape in zip(names, shapes):
            for label, src, dst in (("activation", initial.mean, means), ("tension", initial.tension, tens)):
                if n not in src:
                    raise ConfigError(f"initial state lacks the {label} of population {n!r}; give every "
                                      f"population: {', '.join(names)}")
                a = np.array(src[n], dtype=np.float64)
                if a.shape != shape:
                    raise ConfigError(f"initial {label} of population {n!r}: expected shape {shape} "
                                      f"(batch x neurons), got {a.shape}")
                if not np.all(np.isfinite(a)):
                    raise ConfigError(f"initial {label} of population {n!r} has NaN or Inf values")
                dst[n] = a
        return State(means, tens)
    if initial == "zeros":
        return State({n: np.zeros(s) for n, s in zip(names, shapes)}, {n: np.zeros(s) for n, s in zip(names, shapes)})
    if initial == "random":
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
        rng = np.random.default_rng(seed)
        means = {n: rng.standard_normal(s) for n, s in zip(names, shapes)}
        return State(means, {n: rng.standard_normal(s) for n, s in zip(names, shapes)})
    if initial == "forward-manifold":
        return State(forward_pass(system, batch), {n: np.zeros(s) for n, s in zip(names, shapes)})
    raise ConfigError(f"unknown initial state {initial!r}; valid: {', '.join(INITIAL_STATES)} or a State")


def check_hardware(backend: Backend, hardware: Any) -> None:
    """Raise :class:`ConfigError` (one line) if ``backend`` does not realize every
    non-ideality that ``hardware`` (a :class:`hwbp.hardware.Hardware`) switches on."""
    missing = [f for f in hardware.features() if f not in backend.hardware_support]
    if missing:
        have = ", ".join(sorted(backend.hardware_support)) or "none"
        raise ConfigError(f"backend {backend.name!r} does not realize hardware non-ideality "
                          f"{', '.join(missing)} (it supports: {have})")


# ------------------------------------------------------------------ registry
#: The registry of backends (built-ins, entry points of group ``hwbp.backends``).
REGISTRY = Registry("backend", ENTRY_POINT_GROUP, BUILTIN_BACKENDS, Backend)


def backend_names() -> list[str]:
    """Every registered backend name: built-ins first, then the rest sorted."""
    return REGISTRY.names()


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (an instance); the error lists the valid names."""
    return REGISTRY.get(name)


def register_backend(name: str, backend: "str | type[Backend] | Backend") -> None:
    """Register ``backend`` (a class, an instance or ``"module:Class"``) as ``name``."""
    REGISTRY.register(name, backend)
