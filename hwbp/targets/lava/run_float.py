"""Deploy a system to the floating-point Lava models, run it, read the state back."""

from __future__ import annotations

import numpy as np

from hwbp.lower.system import DynamicsSystem, Term
from hwbp.state import State
from hwbp.targets.lava.compat import import_lava
from hwbp.targets.lava.network import Network, NetworkSpec
from hwbp.types import Batch

__all__ = ["float_term_params", "float_spec", "run_float", "read_state"]


def float_term_params(term: Term) -> dict:
    """Process parameters of a term for the float models: ``f`` and its slope, the fixed
    gain ``g`` and the source-side ``φ`` and its slope (codes of ``ACTIVATION_CODES``)."""
    import_lava()
    from hwbp.targets.lava.lavaproc.processes import ACTIVATION_CODES

    return {"act": ACTIVATION_CODES.index(term.activation), "alpha": float(term.alpha), "gain": float(term.gain),
            "src_act": ACTIVATION_CODES.index(term.source_activation), "src_alpha": float(term.source_alpha)}


def float_spec(system: DynamicsSystem, batch: Batch, start: State, steps: int, dt: float) -> NetworkSpec:
    """The float64 values of every process for ``batch`` from state ``start``."""
    import_lava()
    from hwbp.targets.lava.lavaproc.processes import LOSS_CODES

    spec = NetworkSpec(inputs={i.name: np.asarray(batch.x[i.name], dtype=np.float64) for i in system.inputs})
    for p in system.populations:
        spec.mean[p.name] = np.array(start.mean[p.name], dtype=np.float64)
        spec.tension[p.name] = np.array(start.tension[p.name], dtype=np.float64)
        is_loss = p.name == system.loss.population
        spec.target[p.name] = np.asarray(batch.y, dtype=np.float64) if is_loss else np.zeros_like(spec.mean[p.name])
        spec.pop_params[p.name] = {"loss": LOSS_CODES.index(system.loss.function) if is_loss else 0,
                                   "beta": system.beta, "dt": dt, "n_steps": steps}
        for k, t in enumerate(p.terms):
            key = (p.name, k)
            spec.weight[key] = None if t.weight is None else np.array(system.parameters[t.weight], dtype=np.float64)
            spec.bias[key] = None if t.bias is None else np.array(system.parameters[t.bias], dtype=np.float64)
            spec.term_params[key] = float_term_params(t)
    return spec


def read_state(system: DynamicsSystem, net: Network, steps: int, dt: float, scale: float = 1.0) -> State:
    """Means, tensions and gate signals ``e`` (weighted terms) from the processes,
    multiplied by ``scale`` (the fixed-point models' unit)."""
    means = {n: np.asarray(p.mean.get(), dtype=np.float64) * scale for n, p in net.populations.items()}
    tens = {n: np.asarray(p.tension.get(), dtype=np.float64) * scale for n, p in net.populations.items()}
    gates = {}
    for p in system.populations:
        for k, t in enumerate(p.terms):
            if t.weight is not None:
                gates[(p.name, k)] = np.asarray(net.terms[(p.name, k)].e.get(), dtype=np.float64) * scale
    return State(means, tens, steps * dt, steps, gates)


def run_float(system: DynamicsSystem, batch: Batch, start: State, steps: int, dt: float, timeout_s: float) -> State:
    """Run ``steps`` unit steps (``steps + 1`` Lava steps) with the float models, on the
    Lava runtime this job keeps (:mod:`hwbp.targets.lava.session`)."""
    import_lava()
    from hwbp.targets.lava.topology import term_table
    from hwbp.targets.lava.lavaproc.fused import FUSED_FLOAT_MODELS
    from hwbp.targets.lava.session import run_session

    means, tens, gates = run_session(term_table(system), float_spec(system, batch, start, steps, dt), "floating_pt",
                                     FUSED_FLOAT_MODELS, timeout_s)
    f64 = {n: np.asarray(v, dtype=np.float64) for n, v in means.items()}
    return State(f64, {n: np.asarray(v, dtype=np.float64) for n, v in tens.items()}, steps * dt, steps,
                 {k: np.asarray(v, dtype=np.float64) for k, v in gates.items()})
