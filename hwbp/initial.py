"""Initial states: the named starting points every backend understands, drawn
identically by every backend for one seed (so that two backends started from
``random`` with the same seed start from the same state)."""

from __future__ import annotations

import numpy as np

from hwbp.dynamics.drive import forward_pass
from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.state import State
from hwbp.types import Batch

__all__ = ["INITIAL_STATES", "initial_state"]

#: Named initial states every backend understands (besides a :class:`State`).
INITIAL_STATES = ("zeros", "random", "forward-manifold")


def initial_state(system: DynamicsSystem, batch: Batch, initial: str | State, seed: int = 0) -> State:
    """The initial state every backend starts from, drawn identically for one seed.

    Parameters
    ----------
    system : DynamicsSystem
        The lowered system (its populations, in topological order).
    batch : Batch
        The batch (its size is the number of rows of every array).
    initial : str or State
        ``zeros``: all nodes at 0.  ``random``: means then tensions ``N(0, 1)``,
        population by population in topological order, from
        ``numpy.random.default_rng(seed)``.  ``forward-manifold``: means at the forward
        pass (populations in topological order, each from the settled means), tensions
        0.  A :class:`State` is checked (every population, shape ``(batch, n)``,
        finite) and returned as float64.
    seed : int
        Seed of ``random``.

    Returns
    -------
    State
        Means and tensions by population, each ``(batch, n)`` float64.
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
