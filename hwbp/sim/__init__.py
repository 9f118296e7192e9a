"""Reference simulator (numpy, float64): unit-step, continuous and steady modes."""

from hwbp.sim.kernel import Kernel
from hwbp.sim.simulate import INITIAL_STATES, MODES, simulate
from hwbp.sim.solvers import SOLVERS, ExponentialEuler, Euler, RK4, Solver
from hwbp.sim.state import SimulationResult, State, Trace

__all__ = [
    "Kernel", "INITIAL_STATES", "MODES", "simulate", "SOLVERS", "ExponentialEuler", "Euler", "RK4",
    "Solver", "SimulationResult", "State", "Trace",
]
