"""The two physical networks of the EP comparison, in ONE simulator and ONE noise model.

Both are systems of RC nodes (time constant τ = 1) integrated by Euler-Maruyama with
step ``dt`` (in τ): every node gets the drift of its network plus kT/C noise,
``x ← clip(x + dt·drift + σ √(2 dt) ξ, −rail, rail)``, so a lone node with a unit
leak fluctuates with rms ``σ = √(kT/C) / unit_V``; states are in units of
``unit_V``.  Signals are read once at the end of each phase (no averaging).
Mismatch multiplies each synapse's device by ``1 + σ_m ε``, one draw per device.

Energy-based network (equilibrium propagation, Scellier & Bengio 2017): input ``x``
clamped, hidden ``h``, output ``o``, ``ρ = tanh``, symmetric weights (ONE device per
synapse, used in both directions)::

    E = ½‖h‖² + ½‖o‖² − ρ(h)·(W₁x + b₁) − ρ(o)·(W₂ρ(h) + b₂),   C = ½‖o − y‖²
    ds/dt = −∂E/∂s − β ∂C/∂s

Its loss is ``C`` at the free equilibrium ``s⁰`` (β = 0).  EP's estimate of the gradient
is ``(∂E/∂θ(s^β) − ∂E/∂θ(s⁰)) / β`` (one-sided, two phases) or
``(∂E/∂θ(s^β) − ∂E/∂θ(s^−β)) / 2β`` (symmetric nudging, Laborieux et al. 2021,
three phases: free, +β, −β; each nudged phase starts from the free state).

Dyadic pair (this project's circuit): the feed-forward network ``h = tanh(W₁x + b₁)``,
``o = W₂h + b₂`` with the same weights, MSE, each neuron a node pair ``x±``
(docs: DESIGN §2); forward and backward currents of a synapse are separate devices
(each with its own mismatch).  One phase from rest; the gradient is read from the
tension ``x⁺ − x⁻ = β δ``.

The reference gradients are independent of both: torch autograd of the feed-forward
loss, and for EP the implicit-function gradient of ``C(s⁰(θ))`` from torch's Hessian
of ``E`` at the free equilibrium.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Net", "simulate", "ep_gradient", "dyadic_gradient", "ep_reference", "ff_reference", "rel_err"]


@dataclass
class Net:
    """Weights ``w1 (H, D)``, ``b1 (H,)``, ``w2 (O, H)``, ``b2 (O,)``."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @classmethod
    def random(cls, d: int, h: int, o: int, seed: int, gain: float = 1.0) -> "Net":
        """Gaussian weights of variance ``gain² / fan_in``, biases 0."""
        rng = np.random.default_rng(seed)
        return cls(gain * rng.standard_normal((h, d)) / np.sqrt(d), np.zeros(h),
                   gain * rng.standard_normal((o, h)) / np.sqrt(h), np.zeros(o))

    def mismatched(self, sigma: float, rng: np.random.Generator) -> "Net":
        """One device per weight: each scaled by ``1 + sigma ε``."""
        return Net(*(p * (1 + sigma * rng.standard_normal(p.shape)) if p.ndim == 2 else p.copy()
                     for p in (self.w1, self.b1, self.w2, self.b2)))


def simulate(drift, state: list[np.ndarray], t: float, dt: float, sigma: float, rail: float,
             rng: np.random.Generator | None) -> list[np.ndarray]:
    """Euler-Maruyama of ``d state / dt = drift(state)`` for time ``t`` (τ = 1) with kT/C
    noise ``sigma`` on every node and the rails; ``rng=None``: noise-free."""
    state = [s.copy() for s in state]
    amp = sigma * np.sqrt(2 * dt)
    for _ in range(int(round(t / dt))):
        d = drift(state)
        for s, ds in zip(state, d):
            s += dt * ds
            if rng is not None and sigma > 0:
                s += amp * rng.standard_normal(s.shape)
            np.clip(s, -rail, rail, out=s)
    return state


# -- equilibrium propagation -----------------------------------------------------------
def _ep_drift(net: Net, x: np.ndarray, y: np.ndarray, beta: float):
    a1 = x @ net.w1.T + net.b1

    def drift(s):
        h, o = s
        rh, ro = np.tanh(h), np.tanh(o)
        dh = -h + (1 - rh ** 2) * (a1 + ro @ net.w2)
        do = -o + (1 - ro ** 2) * (rh @ net.w2.T + net.b2) - beta * (o - y)
        return [dh, do]

    return drift


def _de_dtheta(net: Net, x: np.ndarray, s: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``∂E/∂θ`` at state ``s``, batch mean."""
    rh, ro = np.tanh(s[0]), np.tanh(s[1])
    B = x.shape[0]
    return {"w1": -rh.T @ x / B, "b1": -rh.mean(0), "w2": -ro.T @ rh / B, "b2": -ro.mean(0)}


def ep_gradient(net: Net, x: np.ndarray, y: np.ndarray, beta: float, *, symmetric: bool, t_phase: float,
                dt: float, sigma: float, rail: float, rng) -> dict[str, np.ndarray]:
    """EP's gradient estimate: a free phase from rest, then one (or, symmetric, two) nudged
    phases from the free state, each ``t_phase`` long."""
    zeros = [np.zeros((x.shape[0], net.w1.shape[0])), np.zeros((x.shape[0], net.w2.shape[0]))]
    free = simulate(_ep_drift(net, x, y, 0.0), zeros, t_phase, dt, sigma, rail, rng)
    plus = simulate(_ep_drift(net, x, y, beta), free, t_phase, dt, sigma, rail, rng)
    other = simulate(_ep_drift(net, x, y, -beta), free, t_phase, dt, sigma, rail, rng) if symmetric else free
    gp, go = _de_dtheta(net, x, plus), _de_dtheta(net, x, other)
    scale = 2 * beta if symmetric else beta
    return {k: (gp[k] - go[k]) / scale for k in gp}


# -- the dyadic pair ------------------------------------------------------------------------
def _pair_drift(fwd: Net, bwd: Net, x: np.ndarray, y: np.ndarray, beta: float):
    a1 = x @ fwd.w1.T + fwd.b1
    f1 = np.tanh(a1)

    def drift(s):
        hp, hm, op, om = s
        hbar, obar = (hp + hm) / 2, (op + om) / 2
        a2 = hbar @ fwd.w2.T + fwd.b2
        back = 0.5 * ((op - om) @ bwd.w2)  # the backward devices
        nudge = 0.5 * beta * (obar - y)
        return [-hp + f1 + back, -hm + f1 - back, -op + a2 + nudge, -om + a2 - nudge]

    return drift


def dyadic_gradient(fwd: Net, bwd: Net, x: np.ndarray, y: np.ndarray, beta: float, *, t_phase: float, dt: float,
                    sigma: float, rail: float, rng) -> dict[str, np.ndarray]:
    """One phase from rest; gradient from the tensions by the local rule (``f'`` of the
    cell's own pre-activation)."""
    B, H, n_out = x.shape[0], fwd.w1.shape[0], fwd.w2.shape[0]
    hp, hm, op, om = simulate(_pair_drift(fwd, bwd, x, y, beta),
                              [np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, n_out)), np.zeros((B, n_out))],
                              t_phase, dt, sigma, rail, rng)
    hbar = (hp + hm) / 2
    e1 = (1 - np.tanh(x @ fwd.w1.T + fwd.b1) ** 2) * (hp - hm) / beta
    e2 = (op - om) / beta
    return {"w1": e1.T @ x / B, "b1": e1.mean(0), "w2": e2.T @ hbar / B, "b2": e2.mean(0)}


# -- independent references (torch) -----------------------------------------------------------
def _torch_params(net: Net):
    import torch

    return {k: torch.tensor(getattr(net, k), dtype=torch.float64, requires_grad=True) for k in ("w1", "b1", "w2", "b2")}


def ff_reference(net: Net, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Backprop of the feed-forward MSE loss (batch mean), by torch autograd."""
    import torch

    p = _torch_params(net)
    xt, yt = torch.tensor(x), torch.tensor(y)
    o = torch.tanh(xt @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"]
    (0.5 * ((o - yt) ** 2).sum(1).mean()).backward()
    return {k: v.grad.numpy() for k, v in p.items()}


def ep_free_state(net: Net, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """The free equilibrium, approximately (noise-free relaxation for 200 τ; polished by
    Newton's method in :func:`ep_reference`)."""
    zeros = [np.zeros((x.shape[0], net.w1.shape[0])), np.zeros((x.shape[0], net.w2.shape[0]))]
    return simulate(_ep_drift(net, x, y, 0.0), zeros, 200.0, 0.2, 0.0, np.inf, None)


def ep_reference(net: Net, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """``d C(s⁰(θ)) / dθ`` by the implicit-function theorem with torch: ``−∂²E/∂θ∂s · H⁻¹ ∂C/∂s``
    at the free equilibrium (``H`` the Hessian of ``E`` in ``s``, per sample)."""
    import torch

    h0, o0 = ep_free_state(net, x, y)
    p = _torch_params(net)
    xt, yt = torch.tensor(x), torch.tensor(y)
    H_, B = h0.shape[1], x.shape[0]

    def energy(s, i):
        h, o = s[:H_], s[H_:]
        rh, ro = torch.tanh(h), torch.tanh(o)
        return 0.5 * (h @ h + o @ o) - rh @ (p["w1"] @ xt[i] + p["b1"]) - ro @ (p["w2"] @ rh + p["b2"])

    total = {k: torch.zeros_like(v) for k, v in p.items()}
    for i in range(B):
        s0 = torch.tensor(np.concatenate([h0[i], o0[i]]))
        for _ in range(4):  # Newton polishing of the relaxed state
            s = s0.clone().requires_grad_(True)
            (grad_s,) = torch.autograd.grad(energy(s, i), s, create_graph=True)
            hess = torch.stack([torch.autograd.grad(grad_s[j], s, retain_graph=True)[0] for j in range(len(s))])
            s0 = s0 - torch.linalg.solve(hess.detach(), grad_s.detach())
        if float(grad_s.detach().abs().max()) > 1e-12:
            raise RuntimeError(f"free phase not at equilibrium (|dE/ds| = {float(grad_s.detach().abs().max()):.2e})")
        dc = torch.cat([torch.zeros(H_, dtype=torch.float64), s[H_:].detach() - yt[i]])
        v = torch.linalg.solve(hess.detach(), dc)
        gs = torch.autograd.grad(grad_s @ v, list(p.values()))
        for k, g in zip(p, gs):
            total[k] -= g / B
    return {k: v.numpy() for k, v in total.items()}


def rel_err(g: dict, ref: dict) -> float:
    """``‖g − g*‖ / ‖g*‖`` over all parameters."""
    a = np.concatenate([np.ravel(g[k]) for k in sorted(ref)])
    b = np.concatenate([np.ravel(ref[k]) for k in sorted(ref)])
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
