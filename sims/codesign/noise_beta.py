"""Study 3: gradient SNR against beta and node capacitance C under thermal (kT/C) noise,
with supply rails, beside a two-phase finite-difference nudging estimate (equilibrium
propagation's (s^beta - s^0) / beta) at the same beta and noise.

Network: random tanh MLP 16-32-32-8 (gain 1.2), MSE on a random batch of 16.  Hardware:
unit_V = 0.1 V (one unit of activation is 100 mV), rails at +-1 V, kT/C noise at 300 K
for C = 10 fF, 100 fF, 1 pF (0.64, 0.20, 0.064 mV rms per node), nothing else.

* one-phase (this circuit): the reference simulator in continuous mode with
  Euler-Maruyama (dt = 0.05 tau, 36 tau), the noise on every node, x+- clipped at the
  rails; the tension and gate signals are read once at the end (no averaging).
* two-phase (EP-style): the free phase s^0 = x and the nudged phase s^beta = x + beta dl/dx
  are each measured on one node with the same kT/C noise and the same rails, in two
  independent measurements; dl/dx = (s^beta - s^0) / beta, and the weight gradient is read
  by the same local rule (f'(a) from the free phase).  The nudged state is taken as the
  exact linear response, the most favourable case for EP (a real nudged network adds an
  O(beta) curvature bias on top).  This is a finite-difference emulation with static
  readout noise, not equilibrium propagation, and not under the circuit's dynamic noise
  model: the like-for-like comparison with EP is sims/ep/.

Gradient SNR = -10 log10(mean over 4 noise seeds of rel_err^2) in dB, against the
noise-free gradient.  Outputs: noise_beta.csv, noise_beta.png.

Run: python sims/codesign/noise_beta.py   (about 30 s on 2 shared cores)
"""

from __future__ import annotations

import numpy as np

from common import markdown, parse_args, save, write_table  # noqa: E402
from hwbp.hardware import hardware_from_mapping
from hwbp.io import random_batch
from hwbp.ir.activations import get_activation
from hwbp.lower.lowerer import lower
from hwbp.models import random_mlp
from hwbp.oracle.backprop import exact_gradients
from hwbp.state import State
from hwbp.verify.readout import read_gradients
from hwbp.verify.run import verify

BETAS = (0.01, 0.03, 0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
CAPS_F = (1e-14, 1e-13, 1e-12)
SEEDS = 4
UNIT_V, RAIL_V = 0.1, 1.0


def _ep(system, batch, exact_state, sigma: float, rail: float, beta: float, rng) -> float:
    """rel_err of the two-phase estimate (see the module docstring)."""
    means, tens = {}, {}
    for pop in system.populations:
        x = exact_state.mean[pop.name]
        d = exact_state.tension[pop.name] / system.beta  # dl/dx, noise-free
        free = np.clip(x, -rail, rail) + sigma * rng.standard_normal(x.shape)
        nudged = np.clip(x + beta * d, -rail, rail) + sigma * rng.standard_normal(x.shape)
        means[pop.name] = free
        tens[pop.name] = (nudged - free) / beta * system.beta  # as a tension of this system's beta
    gates = {}
    for pop in system.populations:
        for k, t in enumerate(pop.terms):
            if t.weight is None:
                continue
            u = batch.x[t.source] if not system.is_population(t.source) else means[t.source]
            a = u @ system.parameters[t.weight].T + (0 if t.bias is None else system.parameters[t.bias])
            fn = get_activation(t.activation)
            gates[(pop.name, k)] = fn.df(a, fn.f(a, t.alpha), t.alpha) * tens[pop.name]
    est = read_gradients(system, State(means, tens, gates=gates), batch)
    return _total_rel(est)


def _total_rel(est) -> float:
    keys = sorted(EXACT.parameters)
    g = np.concatenate([np.ravel(est.parameters[k]) for k in keys])
    r = np.concatenate([np.ravel(EXACT.parameters[k]) for k in keys])
    return float(np.linalg.norm(g - r) / np.linalg.norm(r))


EXACT = None


def main() -> None:
    parse_args('noise_beta', __doc__)
    global EXACT
    graph = random_mlp([16, 32, 32, 8], activation="tanh", seed=3, gain=1.2).with_loss("mse")
    batch = random_batch(graph, 16, seed=0, loss="mse")
    EXACT = exact_gradients(graph, batch)
    clean = verify(graph, batch, options={"mode": "steady"})
    rows = []
    for c in CAPS_F:
        hw = hardware_from_mapping({"unit_V": UNIT_V, "noise": {"temperature_K": 300.0, "capacitance_F": c},
                                    "rails": {"v_V": RAIL_V}})
        sigma = hw.noise.sigma_V / UNIT_V
        for beta in BETAS:
            one = []
            ep = []
            rng = np.random.default_rng(7)
            for s in range(SEEDS):
                v = verify(graph, batch, beta=beta, options={"mode": "continuous", "dt": 0.05}, hardware=hw, seed=s)
                one.append(_total_rel(v.physical) ** 2)
                ep.append(_ep(lower(graph, beta=1.0), batch, clean.result.state, sigma, RAIL_V / UNIT_V, beta, rng) ** 2)
            rows.append({"C_F": c, "sigma_units": sigma, "beta": beta,
                         "snr_db_one_phase": float(-10 * np.log10(np.mean(one))),
                         "snr_db_two_phase": float(-10 * np.log10(np.mean(ep)))})
            print(rows[-1], flush=True)
    cols = list(rows[0])
    write_table("noise_beta", rows, cols)
    print(markdown(rows, cols))
    x_max = max(float(np.max(np.abs(m))) for m in clean.result.state.mean.values())
    d_max = max(float(np.max(np.abs(t))) for t in clean.result.state.tension.values())
    print(f"noise-free: max |x| = {x_max:.3g} units, max |dl/dx| = {d_max:.3g}; rails at {RAIL_V / UNIT_V:g} units")

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for c, color in zip(CAPS_F, ("C0", "C1", "C2")):
        rs = [r for r in rows if r["C_F"] == c]
        ax.semilogx([r["beta"] for r in rs], [r["snr_db_one_phase"] for r in rs], "o-", color=color,
                    label=f"one phase (tension), C = {c * 1e15:g} fF")
        ax.semilogx([r["beta"] for r in rs], [r["snr_db_two_phase"] for r in rs], "s--", color=color, alpha=0.7,
                    label=f"two-phase nudging, C = {c * 1e15:g} fF")
    ax.set(xlabel="beta (V of tension per unit gradient x unit_V)", ylabel="gradient SNR (dB)",
           title="kT/C noise at 300 K, rails +-1 V, unit 0.1 V")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save(fig, "noise_beta")


if __name__ == "__main__":
    main()
