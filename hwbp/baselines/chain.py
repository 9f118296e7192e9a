"""The depth-study residual chain in plain vectorized numpy, with every gradient method.

The model is :func:`hwbp.models.depth_resmlp` (``L`` weight layers, width ``N``)::

    z_1 = g_1 W_1 x + b_1,   z_l = z_{l-1} + g W_l φ(z_{l-1}) + b_l  (l = 2 .. L-1),
    ŷ   = g_L W_L φ(z_{L-1}) + b_L,          ℓ = ½ ‖ŷ − y‖²  (batch mean)

:class:`ResChain` holds its parameters as stacked arrays, so that one inference
step of PC / PC-ALM or one unit step of the dyadic sensitivity field is two batched
matrix products over all layers at once (the same arithmetic as
:mod:`hwbp.baselines.pc` on the lowered system, without the per-population
overhead; the tests check both give the same gradients).  The protocol runs of
``sims/depth/protocol`` train 937 steps per run with it.

Every method returns an error signal per population (``s_k`` for ``z_1 .. z_{L-1}``,
``s_out`` for ``ŷ``) that takes the place of the backprop sensitivity; the weight
gradient is always the synapse rule ``s φ(u)ᵀ`` (:meth:`ResChain.grads`) at the
method's final state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["ResChain", "TIMINGS"]

#: When PC-ALM's multipliers are read for the weight gradient: ``pre_dual_energy``
#: (the energy that the last primal step descended, before the last dual update; the
#: PC-ALM reference code's default) or ``post_dual`` (after it).
TIMINGS = ("pre_dual_energy", "post_dual")


def _phi(act: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if act == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(np.float64)
    if act == "tanh":
        t = np.tanh(z)
        return t, 1.0 - t * t
    if act == "identity":
        return z, np.ones_like(z)
    raise ConfigError(f"unknown activation {act!r}; valid: relu, tanh, identity")


@dataclass
class ResChain:
    """Parameters of the residual chain (``L >= 3``): ``w1 (N, n_in)``, ``wm (L-2, N, N)``,
    ``wl (n_out, N)``, biases ``b1, bm (L-2, N), bl`` (zeros and untrained when
    ``bias`` is False), gains ``g1, gm, gl`` and the activation name."""

    w1: np.ndarray
    wm: np.ndarray
    wl: np.ndarray
    b1: np.ndarray
    bm: np.ndarray
    bl: np.ndarray
    g1: float
    gm: float
    gl: float
    activation: str
    bias: bool = True

    @classmethod
    def from_graph(cls, graph, *, bias: bool = True) -> "ResChain":
        """The chain of a :func:`~hwbp.models.depth_resmlp` graph (same weights)."""
        dense = [n for n in graph.nodes if type(n).__name__ == "Dense"]
        acts = {n.function for n in graph.nodes if type(n).__name__ == "Activation"}
        if len(dense) < 3 or len(acts) > 1:
            raise ConfigError("ResChain needs a depth_resmlp graph with depth >= 3")
        acts = acts or {"identity"}
        mids = dense[1:-1]
        return cls(np.array(dense[0].weight, dtype=np.float64), np.stack([np.array(d.weight) for d in mids]),
                   np.array(dense[-1].weight, dtype=np.float64), np.array(dense[0].bias, dtype=np.float64),
                   np.stack([np.array(d.bias) for d in mids]), np.array(dense[-1].bias, dtype=np.float64),
                   float(dense[0].gain), float(mids[0].gain), float(dense[-1].gain), acts.pop(), bias)

    @property
    def depth(self) -> int:
        """Weight layers L."""
        return self.wm.shape[0] + 2

    def params(self) -> dict[str, np.ndarray]:
        """The trained parameters by name (biases only when ``bias``)."""
        p = {"w1": self.w1, "wm": self.wm, "wl": self.wl}
        if self.bias:
            p.update(b1=self.b1, bm=self.bm, bl=self.bl)
        return p

    # -- the network ----------------------------------------------------------------
    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed-forward pass: ``Z (L-1, B, N)`` (``z_1 .. z_{L-1}``) and ``ŷ``."""
        L = self.depth
        z = np.empty((L - 1, x.shape[0], self.w1.shape[0]))
        z[0] = self.g1 * (x @ self.w1.T) + self.b1
        for k in range(1, L - 1):
            z[k] = z[k - 1] + self.gm * (_phi(self.activation, z[k - 1])[0] @ self.wm[k - 1].T) + self.bm[k - 1]
        return z, self.gl * (_phi(self.activation, z[-1])[0] @ self.wl.T) + self.bl

    def predict(self, x: np.ndarray, z: np.ndarray, mu1: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``μ(z)`` of every free population (``μ_1`` from ``x``, or ``mu1`` when given: it
        does not depend on ``z``), ``ŷ = μ_L(z)``, and ``φ(z), φ'(z)``."""
        ph, dph = _phi(self.activation, z)
        mu = np.empty_like(z)
        mu[0] = self.g1 * (x @ self.w1.T) + self.b1 if mu1 is None else mu1
        if len(z) > 1:
            np.matmul(ph[:-1], np.swapaxes(self.wm, 1, 2), out=mu[1:])
            mu[1:] *= self.gm
            mu[1:] += z[:-1] + self.bm[:, None, :]
        return mu, self.gl * (ph[-1] @ self.wl.T) + self.bl, ph, dph

    def pullback(self, dph: np.ndarray, s: np.ndarray, s_out: np.ndarray) -> np.ndarray:
        """``Σ_{p reads k} J_pkᵀ s_p`` for every free population ``k``."""
        back = np.empty_like(s)
        if len(s) > 1:
            np.matmul(s[1:], self.wm, out=back[:-1])
            back[:-1] *= self.gm * dph[:-1]
            back[:-1] += s[1:]
        back[-1] = dph[-1] * (self.gl * (s_out @ self.wl))
        return back

    def jvp(self, dph: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tangent of ``μ`` along ``v``: ``(J v)_k`` for ``μ_2 .. μ_{L-1}`` (index 0 is 0)
        and the output's ``J_L v_{L-1}``."""
        out = np.zeros_like(v)
        if len(v) > 1:
            out[1:] = v[:-1] + self.gm * np.matmul(dph[:-1] * v[:-1], np.swapaxes(self.wm, 1, 2))
        return out, self.gl * ((dph[-1] * v[-1]) @ self.wl.T)

    def grads(self, x: np.ndarray, ph: np.ndarray, s: np.ndarray, s_out: np.ndarray) -> dict[str, np.ndarray]:
        """The synapse rule: ``∂/∂θ`` from error signals ``s`` (free populations) and
        ``s_out`` (output), with ``φ`` at the method's state; batch means."""
        B = x.shape[0]
        g = {"w1": self.g1 * (s[0].T @ x) / B, "wm": self.gm * np.matmul(np.swapaxes(s[1:], 1, 2), ph[:-1]) / B,
             "wl": self.gl * (s_out.T @ ph[-1]) / B}
        if self.bias:
            g.update(b1=s[0].mean(0), bm=s[1:].mean(1), bl=s_out.mean(0))
        return g

    # -- gradient methods ---------------------------------------------------------
    def backprop(self, x: np.ndarray, y: np.ndarray) -> tuple[dict, float]:
        """Exact gradients (reverse sweep) and the batch-mean loss."""
        z, yhat = self.forward(x)
        _, dph = _phi(self.activation, z)
        ph = _phi(self.activation, z)[0]
        s = np.empty_like(z)
        s_out = yhat - y
        s[-1] = dph[-1] * (self.gl * (s_out @ self.wl))
        for k in range(len(z) - 2, -1, -1):
            s[k] = s[k + 1] + dph[k] * (self.gm * (s[k + 1] @ self.wm[k]))
        return self.grads(x, ph, s, s_out), float(0.5 * ((yhat - y) ** 2).sum(1).mean())

    def dyadic(self, x: np.ndarray, y: np.ndarray, steps: int) -> dict:
        """The dyadic sensitivity field, ``steps`` unit Euler steps from the forward manifold
        (activations settled, sensitivities 0): every layer updates at once from the
        previous state (exact after ``L - 1`` steps)."""
        z, yhat = self.forward(x)
        ph, dph = _phi(self.activation, z)
        s_out = yhat - y
        s = np.zeros_like(z)
        for _ in range(steps):
            s = self.pullback(dph, s, s_out)
        return self.grads(x, ph, s, s_out)

    def lambda_max(self, x: np.ndarray, *, rho: float = 1.0, iters: int = 200, seed: int = 0) -> float:
        """Largest eigenvalue of the Gauss-Newton Hessian of the PC energy in ``z`` at the
        feed-forward state (``ρ Rᵀ R + J_Lᵀ J_L``, ``R`` the residuals' Jacobian), by
        power iteration; the protocol's inference step is ``η = 1/λ_max`` (gradient
        descent on a quadratic is stable for ``η < 2/λ_max``)."""
        z, _ = self.forward(x)
        dph = _phi(self.activation, z)[1]
        v = np.random.default_rng(seed).standard_normal(z.shape)
        lam = 0.0
        for _ in range(iters):
            v /= np.linalg.norm(v)
            jv, jo = self.jvp(dph, v)
            u = rho * (v - jv)
            hv = u - self.pullback(dph, u, -jo)
            new = float(np.vdot(v, hv))
            if abs(new - lam) <= 1e-10 * abs(new):
                lam = new
                break
            lam, v = new, hv
        return lam

    def pc(self, x: np.ndarray, y: np.ndarray, steps: int, eta: float, *, rho: float = 1.0, alpha: float = 0.0,
           timing: str = "pre_dual_energy", gamma: float = 1.0, checkpoints=None):
        """PC (``alpha = 0``) or PC-ALM (``alpha > 0``): ``steps`` primal steps
        ``z ← z − η ∇_z E`` from the feed-forward pass, each followed (PC-ALM) by the
        dual ascent ``λ ← λ + α r``; gradient ``∂E/∂θ`` at the final ``z`` with the
        multipliers of ``timing`` (:data:`TIMINGS`).  ``gamma`` scales the output loss
        (small-error PC: ``gamma << 1``; the result is divided by it).  With
        ``checkpoints`` (step counts), returns ``{T: gradient after T steps}`` instead."""
        if timing not in TIMINGS:
            raise ConfigError(f"unknown multiplier timing {timing!r}; valid: {', '.join(TIMINGS)}")
        z, _ = self.forward(x)
        lam = np.zeros_like(z)
        lam_prev = lam
        mu, yhat, ph, dph = self.predict(x, z)
        mu1 = mu[0].copy()
        marks = set(checkpoints or ()) | {steps}
        out = {}
        for t in range(steps + 1):
            if t in marks:
                used = lam_prev if (alpha and timing == "pre_dual_energy") else lam
                g = self.grads(x, ph, -(rho * (z - mu) + used), gamma * (yhat - y))
                out[t] = {k: v / gamma for k, v in g.items()} if gamma != 1.0 else g
            if t == steps:
                break
            s = -(rho * (z - mu) + lam)
            z = z - eta * (self.pullback(dph, s, gamma * (yhat - y)) - s)
            mu, yhat, ph, dph = self.predict(x, z, mu1)
            if alpha:
                lam_prev, lam = lam, lam + alpha * (z - mu)
        return out if checkpoints is not None else out[steps]

    def fixed_prediction_pc(self, x: np.ndarray, y: np.ndarray, steps: int, eta: float = 1.0) -> dict:
        """PC with the fixed-prediction assumption (Millidge et al. 2020): predictions and
        Jacobians frozen at the feed-forward pass, errors ``ε_k = z_k − μ̄_k`` relaxed by
        ``z ← z − η (Σ Jᵀ(−ε) + ε)``; with ``η = 1`` exact after ``L − 1`` steps."""
        z0, yhat = self.forward(x)
        ph, dph = _phi(self.activation, z0)
        s_out = yhat - y
        eps = np.zeros_like(z0)
        for _ in range(steps):
            eps = eps - eta * (self.pullback(dph, -eps, s_out) + eps)
        return self.grads(x, ph, -eps, s_out)

    def step(self, g: dict[str, np.ndarray], adam: dict, lr: float, t: int) -> None:
        """One Adam update (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, bias-corrected) in place."""
        for k, gk in g.items():
            m, v = adam.setdefault(k, (np.zeros_like(gk), np.zeros_like(gk)))
            m = 0.9 * m + 0.1 * gk
            v = 0.999 * v + 0.001 * gk * gk
            adam[k] = (m, v)
            p = getattr(self, k)
            p -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)

