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
* ``support``: what it realizes, as data (:class:`hwbp.support.Support`); ``compile``
  starts with :meth:`Backend.check_support`, which refuses anything else in one line;
* optionally ``update_parameters(artefact, params)`` so training need not recompile;
* ``conformance()``: the profiles (settings, tolerances with the reason for each)
  under which it runs the one conformance suite, :mod:`hwbp.testing`
  (``python -m hwbp.testing NAME``);
* optionally the capability :class:`TrainsOnChip` (on-chip learning);
* optionally the capability :class:`StreamsGradients` (the gradients of a run without
  its state, for training steps; ``run`` itself always returns the whole state).

``compile`` and ``run`` of every backend run under ``numpy.errstate(over="raise",
invalid="raise")`` (:data:`FP_ERRORS`), from the API as from the command line: a
float64 overflow is a :class:`FloatingPointError`, never a silent NaN.
Initial states are in :mod:`hwbp.initial`.

Backends are found by :func:`get_backend` in the built-in table and in the package
entry points of group ``hwbp.backends`` (``name = "module:Class"``): a third-party
package adds one by declaring the entry point, without editing hwbp.  The built-ins
are declared the same way in hwbp's own metadata; the table below only lets a source
checkout that was never installed find them.  A backend module imports its external
tool lazily (inside ``compile``/``run``), so that listing its options costs nothing.

Example (the minimum a backend author writes; see ``docs/conformance.md``)::

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

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from hwbp.errors import ConfigError
from hwbp.options import OptionInfo, Options, option
from hwbp.registry import Registry
from hwbp.lower.system import DynamicsSystem
from hwbp.state import SimulationResult, State
from hwbp.support import Support, check_support as _check_support
from hwbp.testing.profile import ConformanceProfile
from hwbp.types import Batch, Gradients

__all__ = [
    "option", "Options", "OptionInfo", "Artefact", "Backend", "TrainsOnChip", "StreamsGradients", "Support",
    "ENTRY_POINT_GROUP",
    "BUILTIN_BACKENDS", "REGISTRY", "backend_names", "get_backend", "register_backend", "check_state",
    "check_hardware", "check_backend", "FP_ERRORS",
]

#: Entry point group of backends (``name = "module:Class"``).
ENTRY_POINT_GROUP = "hwbp.backends"

#: Floating-point error handling of every backend's ``compile`` and ``run`` (and of the
#: command line): overflow and invalid operations raise.
FP_ERRORS: Mapping[str, str] = MappingProxyType({"over": "raise", "invalid": "raise"})

#: The backends hwbp ships (also declared as entry points in its metadata).
BUILTIN_BACKENDS: Mapping[str, str] = MappingProxyType({
    "reference": "hwbp.sim.backend:ReferenceBackend",
    "spice": "hwbp.targets.spice.backend:SpiceBackend",
    "lava": "hwbp.targets.lava.backend:LavaBackend",
    "brian2": "hwbp.targets.brian2.backend:Brian2Backend",
})

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
    #: What this backend realizes (:class:`hwbp.support.Support`): activations, term
    #: features, losses and hardware non-idealities.  ``compile`` refuses anything else
    #: (:meth:`check_support`), the conformance suite skips it, ``hwbp backends`` lists it.
    #: The default declares every term feature and no hardware non-ideality.
    support: ClassVar[Support] = Support()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in ("compile", "run"):  # the same floating-point handling from the API as from the CLI
            fn = cls.__dict__.get(method)
            if fn is not None and not getattr(fn, "_hwbp_errstate", False):
                setattr(cls, method, _with_fp_errors(fn))

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

    def supports(self, options: Options | None = None) -> Support:
        """What this backend realizes with ``options`` (default: :attr:`support`, whatever
        the options; a backend whose support depends on an option overrides this)."""
        return self.support

    def check_support(self, system: DynamicsSystem, options: Options | None = None) -> None:
        """Raise :class:`ConfigError` (one line, listing what is realized) if ``system``
        uses anything :meth:`supports` does not declare; ``compile`` calls it first."""
        _check_support(self.name, self.supports(options), system)

    def conformance(self) -> Sequence[ConformanceProfile]:
        """Profiles (:class:`hwbp.testing.ConformanceProfile`) under which this backend
        runs the conformance suite (default: one, with default options, at 1e-10)."""
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


def _with_fp_errors(fn: Any) -> Any:
    """``fn`` run under :data:`FP_ERRORS`."""
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(**FP_ERRORS):
            return fn(*args, **kwargs)

    wrapped._hwbp_errstate = True  # type: ignore[attr-defined]
    return wrapped


@runtime_checkable
class TrainsOnChip(Protocol):
    """The capability of a backend that trains inside its realization (on-chip learning):
    the training code looks it up (``isinstance(backend, TrainsOnChip)``) and, where the
    backend has it, lets it train when its options ask for it."""

    def train_on_chip(self, graph: Any, x: np.ndarray, labels: np.ndarray, config: Any, options: Options, *,
                      beta: float = 1.0, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                      progress: bool = True, desc: str = "training") -> Any:
        """Train inside the realization when ``options`` ask for it: a
        :class:`hwbp.train.TrainResult`, or ``None`` to let the host train with the
        gradients that :meth:`Backend.run` provides.  ``config`` is a
        :class:`hwbp.train.TrainConfig`; ``x``, ``labels`` the training set."""


@runtime_checkable
class StreamsGradients(Protocol):
    """The capability of a backend that gives the gradients of a settled run without
    returning its state: a training step looks it up
    (``isinstance(backend, StreamsGradients)``) and uses it where the backend has it;
    verification always reads the whole state that :meth:`Backend.run` returns."""

    def gradients(self, artefact: Artefact, batch: Batch, *, initial: str | State | None = None
                  ) -> Gradients | None:
        """The gradients of the batch-mean loss at the settled state, bit for bit
        ``read_gradients(artefact.system, run(artefact, batch, initial=initial).state, batch)``
        (activation gradients may be left out); ``None`` where ``artefact``'s options
        or system do not allow it (the caller then runs and reads the state)."""


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


def check_hardware(backend: Backend, hardware: Any) -> None:
    """Raise :class:`ConfigError` (one line) if ``backend`` does not realize every
    non-ideality that ``hardware`` (a :class:`hwbp.hardware.Hardware`) switches on."""
    missing = [f for f in hardware.features() if f not in backend.support.hardware]
    if missing:
        have = ", ".join(sorted(backend.support.hardware)) or "none"
        raise ConfigError(f"backend {backend.name!r} does not realize hardware non-ideality "
                          f"{', '.join(missing)} (it supports: {have})")


# ------------------------------------------------------------------ registry
def check_backend(backend: Backend) -> None:
    """Raise :class:`ConfigError` (one line, naming it) if a loaded backend is malformed:
    its ``Options`` not an :class:`Options` dataclass with valid fields and flags, its
    ``support`` not a :class:`Support`.  Run when the registry loads it, so that a
    malformed plug-in is refused by itself and never breaks the others."""
    where = f"backend {backend.name or type(backend).__name__!r} ({type(backend).__module__})"
    if not (isinstance(backend.Options, type) and issubclass(backend.Options, Options)):
        raise ConfigError(f"{where}: Options must be a subclass of hwbp.options.Options, got {backend.Options!r}")
    try:
        infos = backend.Options.infos()
    except Exception as exc:
        raise ConfigError(f"{where}: its Options cannot be read: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    for info in infos:
        if info.cli and not (isinstance(info.flag, str) and info.flag.startswith("--") and len(info.flag) > 2
                             and " " not in info.flag):
            raise ConfigError(f"{where}: option {info.name!r} has the invalid flag {info.flag!r} (--name expected)")
        if info.cli and info.type not in (int, float, str, bool):
            raise ConfigError(f"{where}: option {info.name!r} of type {getattr(info.type, '__name__', info.type)} "
                              f"cannot be a command-line flag (int, float, str or bool; or cli=False)")
    if not isinstance(backend.support, Support):
        raise ConfigError(f"{where}: support must be a hwbp.support.Support, got {type(backend.support).__name__}")


#: The registry of backends (built-ins, entry points of group ``hwbp.backends``).
REGISTRY = Registry("backend", ENTRY_POINT_GROUP, BUILTIN_BACKENDS, Backend, validate=check_backend)


def backend_names() -> list[str]:
    """Every registered backend name: built-ins first, then the rest sorted."""
    return REGISTRY.names()


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (an instance); the error lists the valid names."""
    return REGISTRY.get(name)


def register_backend(name: str, backend: "str | type[Backend] | Backend") -> None:
    """Register ``backend`` (a class, an instance or ``"module:Class"``) as ``name``."""
    REGISTRY.register(name, backend)
