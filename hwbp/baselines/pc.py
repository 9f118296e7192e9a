"""Predictive coding (PC) and augmented-Lagrangian predictive coding (PC-ALM).

Both run on the lowered :class:`~hwbp.lower.DynamicsSystem`, so they see exactly the
layers (and the fixed gains and source-side nonlinearities) that the dynamics see.
Every population ``z_l`` except the output is a free variable; ``μ_l(z)`` is the
population's forward drive (its layer applied to the populations it reads) and the
output is ``ŷ = μ_L(z)``.  With residuals ``r_l = z_l − μ_l(z)``:

PC (Whittington & Bogacz; as in Seely & Gould, arXiv 2605.31022)
    ``E = ℓ(ŷ, y) + (ρ/2) Σ_l ‖r_l‖²``; ``T`` steps ``z ← z − η ∇_z E`` from the
    feed-forward pass (``r = 0``); the weight gradient is ``∂E/∂W`` at the final
    ``z``: ``−ρ r_l`` takes the place of the backprop sensitivity of layer ``l``.
PC-ALM (Seely & Gould)
    multipliers ``λ_l`` (start at 0), ``E = ℓ + Σ_l (ρ/2)‖r_l + λ_l/ρ‖²``; each step
    first ``z ← z − η ∇_z E``, then the dual ascent ``λ_l ← λ_l + α r_l`` with the
    residual at the new ``z``; weight gradient ``∂E/∂W``: ``−(ρ r_l + λ_l)`` in place
    of the sensitivity.  With ``α = 0`` it is PC.

The per-sample energies are relaxed independently; the weight gradients are batch
means, read by :func:`hwbp.verify.read_gradients` from a :class:`~hwbp.state.State`
whose tension is ``β`` times the error signal above (``∇ℓ(ŷ)`` at the output), so the
synapse rule ``e φ(u)ᵀ`` is the same code for every method.  The two relaxations are
written separately (``pc_relax`` keeps no multipliers), so that the test "PC-ALM with
``α = 0`` is PC" compares two implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.sim.kernel import Kernel
from hwbp.sim.recording import forward_sweep
from hwbp.state import State
from hwbp.types import Batch, Gradients

__all__ = ["PCResult", "pc_relax", "pc_alm_relax", "pc_gradients"]

Arrays = list[np.ndarray]
#: ``record(step, state)`` called after every inference step with the state whose
#: tension is ``β`` times the current error signal (for credit-arrival studies).
Recorder = Callable[[int, State], None]


@dataclass(frozen=True, eq=False)
class PCResult:
    """Final state of a relaxation: ``state`` (means ``z``, tension ``β ×`` error
    signal, gate signals), ``loss`` of the feed-forward pass, ``energy`` at the end
    (batch mean), and the multipliers (empty for PC)."""

    state: State
    loss: float
    energy: float
    multipliers: dict[str, np.ndarray]


def _check(system: DynamicsSystem, steps: int, rho: float, eta: float, alpha: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ConfigError(f"inference steps T must be an integer >= 0, got {steps!r}")
    for label, value, ok in (("rho", rho, rho > 0), ("eta", eta, eta > 0), ("alpha", alpha, alpha >= 0)):
        if not (np.isfinite(value) and ok):
            raise ConfigError(f"predictive coding: {label} must be a finite number {'>= 0' if label == 'alpha' else '> 0'}, "
                              f"got {value}")
    if system.successors[system.loss.population]:
        raise ConfigError(f"predictive coding needs the loss population {system.loss.population!r} to be the output "
                          "(read by no other population)")


class _Relaxer:
    """Shared pieces: the feed-forward init, ``μ(z)``, and ``Σ Jᵀ s`` products."""

    def __init__(self, system: DynamicsSystem, batch: Batch, *, vectorize: bool = True) -> None:
        from hwbp.baselines.stacked import stacked_chain

        self.system = system
        self.kernel = Kernel(system, batch, stack_layers=False)
        self.fast = stacked_chain(system, batch) if vectorize else None
        self.out = self.kernel.loss_index
        self.n = len(self.kernel.names)
        self.free = [i for i in range(self.n) if i != self.out]
        self.y = batch.y

    def feedforward(self) -> Arrays:
        z = [np.zeros((self.kernel.batch_size, s)) for s in self.kernel.sizes]
        forward_sweep(self.kernel, z)
        return z

    def predictions(self, z: Arrays) -> Arrays:
        """``μ_l(z)`` of every population (caches the gates at ``z``)."""
        if self.fast is not None:
            return self.fast.predictions(z)
        mu: Arrays = [None] * self.n  # type: ignore[list-item]
        self.kernel.forward(range(self.n), z, mu)
        return mu

    def pullback(self, z: Arrays, signal: Arrays) -> Arrays:
        """``Σ_{p reads l} J_plᵀ signal_p`` for every free ``l`` (gates from :meth:`predictions`)."""
        if self.fast is not None:
            return self.fast.pullback(z, signal)
        out: Arrays = [None] * self.n  # type: ignore[list-item]
        self.kernel.backward(self.free, z, signal, out)
        return out

    def state(self, z: Arrays, signal: Arrays) -> State:
        from hwbp.sim.simulate import gate_signals

        beta = self.system.beta
        tension = [beta * s for s in signal]
        names = self.kernel.names
        return State(dict(zip(names, z)), dict(zip(names, tension)), gates=gate_signals(self.kernel, z, tension))

    def loss_grad(self, yhat: np.ndarray) -> np.ndarray:
        return self.kernel.loss_fn.grad(yhat, self.y)

    def loss(self, yhat: np.ndarray) -> np.ndarray:
        return self.kernel.loss_fn.value(yhat, self.y)


def pc_relax(system: DynamicsSystem, batch: Batch, *, steps: int | None = None, rho: float = 1.0,
             eta: float = 0.2, record: Recorder | None = None, vectorize: bool = True) -> PCResult:
    """Predictive-coding inference: ``steps`` (default ``2L``) gradient steps on ``z``.

    Parameters
    ----------
    system : DynamicsSystem
        The lowered network (its loss port is the output).
    batch : Batch
    steps : int, optional
        Inference budget T (default ``2L``).
    rho : float
        Precision ``ρ`` of the layer residuals.
    eta : float
        Inference step size ``η``.
    record : callable, optional
        ``record(step, state)`` after each step (step 0 is the feed-forward pass).
    vectorize : bool
        Evaluate a residual chain's layers as one stacked product
        (:mod:`hwbp.baselines.stacked`; same arithmetic, less overhead).
    """
    T = 2 * system.depth if steps is None else steps
    _check(system, T, rho, eta, 0.0)
    rx = _Relaxer(system, batch, vectorize=vectorize)
    z = rx.feedforward()
    loss0 = float(rx.loss(z[rx.out]).mean())

    def signal_at(z: Arrays) -> tuple[Arrays, Arrays]:
        mu = rx.predictions(z)
        z[rx.out] = mu[rx.out]
        sig: Arrays = [-rho * (z[i] - mu[i]) for i in range(rx.n)]
        sig[rx.out] = rx.loss_grad(mu[rx.out])
        return mu, sig

    mu, sig = signal_at(z)
    if record is not None:
        record(0, rx.state(z, sig))
    for step in range(1, T + 1):
        back = rx.pullback(z, sig)
        z = [z[i] if i == rx.out else z[i] - eta * (back[i] - sig[i]) for i in range(rx.n)]
        mu, sig = signal_at(z)
        if record is not None:
            record(step, rx.state(z, sig))
    energy = rx.loss(z[rx.out]) + sum(0.5 * rho * ((z[i] - mu[i]) ** 2).sum(axis=1) for i in rx.free)
    return PCResult(rx.state(z, sig), loss0, float(np.mean(energy)), {})


def pc_alm_relax(system: DynamicsSystem, batch: Batch, *, steps: int | None = None, rho: float = 1.0,
                 alpha: float = 1.0, eta: float = 0.2, record: Recorder | None = None,
                 vectorize: bool = True, timing: str = "post_dual") -> PCResult:
    """PC-ALM inference: ``steps`` (default ``2L``) primal steps on ``z``, each followed
    by the dual ascent ``λ ← λ + α r`` (see the module docstring).

    Parameters
    ----------
    system, batch, steps, rho, eta, record, vectorize
        As for :func:`pc_relax`.
    alpha : float
        Dual step ``α`` (0 gives PC).
    timing : str
        Multipliers of the final error signal (the weight gradient): ``post_dual``
        (after the last dual update) or ``pre_dual_energy`` (before it: the energy the
        last primal step descended; the PC-ALM reference code's default and the
        protocol's, :mod:`hwbp.baselines.protocol`).
    """
    from hwbp.baselines.chain import TIMINGS

    T = 2 * system.depth if steps is None else steps
    _check(system, T, rho, eta, alpha)
    if timing not in TIMINGS:
        raise ConfigError(f"unknown multiplier timing {timing!r}; valid: {', '.join(TIMINGS)}")
    rx = _Relaxer(system, batch, vectorize=vectorize)
    z = rx.feedforward()
    loss0 = float(rx.loss(z[rx.out]).mean())
    lam = [np.zeros_like(a) for a in z]
    lam_prev = lam

    def residuals(z: Arrays) -> Arrays:
        mu = rx.predictions(z)
        z[rx.out] = mu[rx.out]
        return [z[i] - mu[i] for i in range(rx.n)]

    def signal(r: Arrays, lam: Arrays) -> Arrays:
        sig = [-(rho * r[i] + lam[i]) for i in range(rx.n)]
        sig[rx.out] = rx.loss_grad(z[rx.out])
        return sig

    r = residuals(z)
    sig = signal(r, lam)
    if record is not None:
        record(0, rx.state(z, sig))
    for step in range(1, T + 1):
        back = rx.pullback(z, sig)
        z = [z[i] if i == rx.out else z[i] - eta * (back[i] - sig[i]) for i in range(rx.n)]
        r = residuals(z)
        lam_prev, lam = lam, [lam[i] if i == rx.out else lam[i] + alpha * r[i] for i in range(rx.n)]
        sig = signal(r, lam)
        if record is not None:
            record(step, rx.state(z, sig))
    if timing == "pre_dual_energy" and T > 0:
        sig = signal(r, lam_prev)
    energy = rx.loss(z[rx.out]) + sum(
        0.5 * rho * ((r[i] + lam[i] / rho) ** 2).sum(axis=1) for i in rx.free)
    multipliers = {rx.kernel.names[i]: lam[i] for i in rx.free}
    return PCResult(rx.state(z, sig), loss0, float(np.mean(energy)), multipliers)


def pc_gradients(system: DynamicsSystem, batch: Batch, result: PCResult) -> Gradients:
    """Weight gradients ``∂E/∂θ`` at the relaxed state (the synapse rule on the error
    signals), with the loss of the feed-forward pass."""
    from hwbp.verify.readout import read_gradients

    g = read_gradients(system, result.state, batch)
    return Gradients(parameters=g.parameters, activations=g.activations, loss=result.loss)
