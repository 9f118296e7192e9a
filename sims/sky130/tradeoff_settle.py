"""Settling time of the trade-off study (``tradeoff.py``): how each transistor-level ``.tran``
run is sized (duration and output step), what is read from its waveforms, and the settling
model fitted to and checked against those runs.

The ``.tran`` runs of the study put the activation cells at transistor level on behavioral
node pairs (R = 1 kOhm, C swept, tau = R*C).  Two time constants set the network's
settling: the node's R*C and the cells' response in the network, tau_net(ib).  The output
step (also ngspice's largest internal step) is a stated fraction of the smaller of the two
(:func:`tran_plan`), so the 1 % settling time read from the output grid is known to one
step; a run whose step would make more than :data:`MAX_STEPS` points takes
``duration / MAX_STEPS`` instead, and the point says so (``step_capped``) and states its
precision (``t1_precision_s``: one step, both ways).

The model (:func:`fit_model`): t_1% = n_1% * (R*C + tau_net(ib)), n_1% the ideal network's
1 % settling time in units of tau (the node and the cell as lags in series), with
tau_net(ib) the cells' delay *in the network*, fitted at each measured bias current to
the run with the smallest R*C (where the cell sets the time) and log-log interpolated in ib
between the measured bias currents (held at the end values outside them).  Every other
measured run checks it.  The waveforms give the cells' delay independently
(:func:`gate_delay`): the lag of each gate node (f'(a)*T, the cell's output) behind the
node pair's mean and tension that it is computed from.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

#: The output step is at most this fraction of the run's smallest time constant.
STEP_FRACTION = 1.0 / 20.0
#: Largest number of output steps of one run (ngspice's cost grows with it; above it the
#: step is duration / MAX_STEPS and the run says so).
MAX_STEPS = 5000
#: A run lasts this many times its expected 1 % settling time (the final value, which the
#: settling time is measured against, must itself have settled far below 1 %).
DURATION_FACTOR = 4.0


def tran_plan(r_ohm: float, c_F: float, n1: float, tau_net_est_s: float) -> dict[str, float]:
    """Duration and output step of one ``.tran`` run, in units of tau = R*C and in s.

    Parameters
    ----------
    r_ohm, c_F : float
        Node resistance (ohm) and capacitance (F).
    n1 : float
        The ideal network's 1 % settling time in units of tau.
    tau_net_est_s : float
        An estimate of the cells' delay in the network (s), only for sizing the run.

    Returns
    -------
    dict
        ``duration_tau``, ``step_tau``, ``step_s``, ``tau_min_s`` (the smaller of R*C and
        ``tau_net_est_s``), ``step_over_tau_min`` and ``step_capped`` (1.0 when
        :data:`MAX_STEPS` set the step, else 0.0).
    """
    tau = r_ohm * c_F
    t_est = n1 * (tau + tau_net_est_s)
    duration_s = max(DURATION_FACTOR * t_est, 24.0 * tau)
    tau_min = min(tau, tau_net_est_s)
    step_s = STEP_FRACTION * tau_min
    capped = duration_s / step_s > MAX_STEPS
    if capped:
        step_s = duration_s / MAX_STEPS
    return {"duration_tau": duration_s / tau, "step_tau": step_s / tau, "step_s": step_s, "tau_min_s": tau_min,
            "step_over_tau_min": step_s / tau_min, "step_capped": float(capped)}


def _t1(t: np.ndarray, err: np.ndarray, tol: float) -> float:
    above = np.nonzero(err > tol)[0]
    if len(above) == 0:
        return float(t[0])
    k = above[-1] + 1
    return float(t[k]) if k < len(t) else float("nan")


def _rel_err(arr: np.ndarray) -> np.ndarray:
    """(K, ...) -> relative 2-norm distance of each time point from the last one."""
    final = arr[-1]
    scale = max(float(np.linalg.norm(final)), 1e-300)
    return np.linalg.norm((arr - final).reshape(len(arr), -1), axis=1) / scale


def _ls_residual(y: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> float:
    """Relative residual of the per-column least-squares fit y = a x1 + b x2 (arrays (K, n))."""
    s11, s12, s22 = (x1 * x1).sum(0), (x1 * x2).sum(0), (x2 * x2).sum(0)
    s1y, s2y = (x1 * y).sum(0), (x2 * y).sum(0)
    det = s11 * s22 - s12 ** 2
    ok = det > 1e-9 * np.maximum(s11 * s22, 1e-300)
    a = np.where(ok, (s1y * s22 - s2y * s12) / np.where(ok, det, 1.0), s1y / np.maximum(s11, 1e-300))
    b = np.where(ok, (s2y * s11 - s1y * s12) / np.where(ok, det, 1.0), 0.0)
    r = y - a * x1 - b * x2
    return float((r ** 2).sum() / max(float((y ** 2).sum()), 1e-300))


def gate_delay(t_s: np.ndarray, gate: np.ndarray, mean: np.ndarray, tension: np.ndarray,
               window: tuple[float, float] = (0.3, 1e-3)) -> float:
    """Time constant (s) of a gate cell in the network, from one ``.tran`` trace: the gate
    node (the cell's output f'(a)*T) as a first-order lag behind the node pair it reads.

    Near rest the cell is linear in its inputs' deviations from their last values:
    dG_i + tau_g dG_i/dt = a_i dT_i + b_i dm_i (T: tension, m: mean; a_i, b_i per neuron,
    tau_g shared).  For each tau_g of a log grid the per-neuron least squares gives a
    residual; tau_g is the grid minimum refined by a parabola in log tau_g.  Fitted over
    the time points where the gate's relative error lies inside ``window`` (30 % down to
    0.1 %); ``nan`` when fewer than 16 points do.  (A lag is told from a gain by the
    waveform's shape, which near rest is a few decaying modes, not a single one.)

    Parameters
    ----------
    t_s : ndarray
        Time points (s), uniform, shape ``(K,)``.
    gate, mean, tension : ndarray
        The gate signals and the node pair's mean and tension of the same neurons, shape
        ``(K, n)`` (one sample).
    """
    dt = float(t_s[1] - t_s[0])
    dg, dm, dtn = gate - gate[-1], mean - mean[-1], tension - tension[-1]
    err = _rel_err(gate)
    sel = np.nonzero((err <= window[0]) & (err >= window[1]))[0]
    sel = sel[(sel > 0) & (sel < len(t_s) - 1)]
    if len(sel) < 16:
        return float("nan")
    deriv = (dg[sel + 1] - dg[sel - 1]) / (2 * dt)
    y0, x1, x2 = dg[sel], dtn[sel], dm[sel]
    grid = np.geomspace(dt / 10, 200 * dt, 80)
    res = np.array([_ls_residual(y0 + tg * deriv, x1, x2) for tg in grid])
    j = int(np.argmin(res))
    if 0 < j < len(grid) - 1:
        lg = np.log(grid[j - 1:j + 2])
        r0, r1, r2 = res[j - 1:j + 2]
        den = r0 - 2 * r1 + r2
        frac = 0.5 * (r0 - r2) / den if den > 0 else 0.0
        return float(np.exp(lg[1] + float(np.clip(frac, -1, 1)) * (lg[2] - lg[1])))
    return float(grid[j])


def trace_summary(trace: Any, tau_s: float, n_curve: int = 240) -> dict[str, Any]:
    """What the study keeps of a ``.tran`` trace (one sample): per population the 1 %
    settling time of its tension and mean (s), per gate the 1 % settling time and its delay
    behind the node pair (:func:`gate_delay`, s), and the worst population's relative
    tension error at ``n_curve`` log-spaced times (for the figure)."""
    t_s = np.asarray(trace.t) * tau_s
    out: dict[str, Any] = {"layers": {}, "gates": {}}
    worst = np.zeros(len(t_s))
    for name, arr in trace.tension.items():
        et, em = _rel_err(arr[:, 0]), _rel_err(trace.mean[name][:, 0])
        worst = np.maximum(worst, et)
        out["layers"][name] = {"t1_tension_s": _t1(t_s, et, 0.01), "t1_mean_s": _t1(t_s, em, 0.01)}
    for (pop, k), g in trace.gates.items():
        g0 = g[:, 0]
        out["gates"][f"{pop}/{k}"] = {"t1_s": _t1(t_s, _rel_err(g0), 0.01),
                                      "delay_s": gate_delay(t_s, g0, trace.mean[pop][:, 0], trace.tension[pop][:, 0])}
    idx = np.unique(np.geomspace(1, len(t_s) - 1, n_curve).astype(int))
    out["curve_t_s"] = [float(v) for v in t_s[idx]]
    out["curve_err"] = [float(v) for v in worst[idx]]
    return out


def end_residual(curve_t_s: Sequence[float], curve_err: Sequence[float], t1_s: float, duration_s: float,
                 band: tuple[float, float] = (0.03, 0.003)) -> dict[str, float]:
    """How much the run's own end leaves unsettled, from its error curve.

    The error is measured against the last point, which has not settled exactly: with an
    exponential tail of time constant tau_tail the measured error is A (exp(-t/tau_tail) -
    exp(-T/tau_tail)) (T: the duration), and the true 1 % crossing comes later than the
    measured one by -tau_tail * ln(1 - q), q = exp(-(T - t_1%)/tau_tail).  tau_tail is fitted
    to that form where the measured error is inside ``band`` (3 % down to 0.3 %).

    Returns
    -------
    dict
        ``tail_tau_s`` (s; nan when fewer than 3 points lie in the band) and ``t1_late_s``
        (s, the one-sided correction; nan with it).
    """
    t = np.asarray(curve_t_s, dtype=np.float64)
    e = np.asarray(curve_err, dtype=np.float64)
    sel = (e <= band[0]) & (e >= band[1]) & (t < duration_s)
    if sel.sum() < 3:
        return {"tail_tau_s": float("nan"), "t1_late_s": float("nan")}
    # e(t) = A (exp(-t/tau) - exp(-T/tau)) against the last point: tau by a log-spaced search, A in closed form
    ts, le = t[sel], np.log(e[sel])
    span = max(float(ts[-1] - ts[0]), 1e-300)
    best = (math.inf, float("inf"))
    for tau in np.geomspace(span / 50, span * 50, 400):
        model = np.exp(-ts / tau) - math.exp(-duration_s / tau)
        if np.any(model <= 0):
            continue
        r = le - np.log(model)
        cost = float(((r - r.mean()) ** 2).sum())
        if cost < best[0]:
            best = (cost, float(tau))
    tau_tail = best[1]
    q = math.exp(-(duration_s - t1_s) / tau_tail) if math.isfinite(tau_tail) else 1.0
    return {"tail_tau_s": float(tau_tail), "t1_late_s": float(-tau_tail * math.log(1.0 - q)) if q < 1 else float("inf")}


def fit_model(trans: Sequence[Mapping[str, Any]], n1: float) -> dict[float, float]:
    """tau_net(ib) (s) at each measured bias current: from the run with the smallest R*C
    there, t_1% / n_1% - R*C (at least 0)."""
    best: dict[float, Mapping[str, Any]] = {}
    for r in trans:
        ib = float(r["ib_A"])
        if ib not in best or r["c_F"] < best[ib]["c_F"]:
            best[ib] = r
    return {ib: max(float(r["settling_time_1pct_s"]) / n1 - r["r_ohm"] * r["c_F"], 0.0) for ib, r in best.items()}


def fit_points(trans: Sequence[Mapping[str, Any]]) -> set[tuple[float, float]]:
    """The (ib, C) runs :func:`fit_model` takes tau_net from (the rest check it)."""
    best: dict[float, float] = {}
    for r in trans:
        ib = float(r["ib_A"])
        best[ib] = min(best.get(ib, math.inf), float(r["c_F"]))
    return {(ib, c) for ib, c in best.items()}


def tau_net(ib: float, fitted: Mapping[float, float], tau_cell: Mapping[float, float]) -> tuple[float, str]:
    """tau_net at ``ib`` (s) and its source: ``measured`` at a fitted bias current; elsewhere
    the testbench's tau_cell(ib) (``tau_cell``, s, by bias current) times the ratio
    tau_net/tau_cell of the fitted ones, log-log ``interpolated`` in ib between two or held at
    the nearest end value outside them (``extrapolated``)."""
    for k, v in fitted.items():
        if math.isclose(k, ib, rel_tol=1e-9):
            return v, "measured"
    xs = sorted(fitted)
    ys = np.log([max(fitted[x], 1e-18) / tau_cell[x] for x in xs])
    src = "interpolated" if xs[0] < ib < xs[-1] else "extrapolated"
    return float(tau_cell[ib] * np.exp(np.interp(math.log(ib), np.log(xs), ys))), src


def settling_model(ib: float, c_F: float, r_ohm: float, n1: float, fitted: Mapping[float, float],
                   tau_cell: Mapping[float, float]) -> float:
    """The model's 1 % settling time (s): n_1% * (R*C + tau_net(ib))."""
    return n1 * (r_ohm * c_F + tau_net(ib, fitted, tau_cell)[0])
