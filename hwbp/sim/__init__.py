"""Reference simulator (numpy, float64): unit-step, continuous and steady modes, with
event-driven messaging and device instances, all through the one driver
:func:`~hwbp.sim.simulate.simulate`."""

from hwbp.sim.kernel import Kernel
from hwbp.sim.simulate import INITIAL_STATES, MODES, simulate, simulate_events
from hwbp.sim.solvers import SOLVERS, ExponentialEuler, Euler, RK4, Solver
from hwbp.sim.stream import steady_gradients
from hwbp.state import SimulationResult, State, Trace

__all__ = [
    "Kernel", "INITIAL_STATES", "MODES", "simulate", "simulate_events", "SOLVERS", "ExponentialEuler", "Euler",
    "RK4", "Solver", "SimulationResult", "State", "Trace", "steady_gradients",
]
