"""Testbenches and measurements of the synapse, the node pair and the MSE loss port
(:data:`hwbp.pdk.cells.BLOCKS`): one ngspice run per cell, corner, temperature and Monte
Carlo draw, measured into one row each.

A :class:`BlockBench` carries only text and numbers, so it pickles and runs as a Dask task
(:func:`run_block`) like the activation cells' :class:`~hwbp.pdk.bench.Bench`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hwbp.pdk.bench import fill_deck, run_testbench
from hwbp.pdk.cells import BlockSpec, cell_area_um2, get_block
from hwbp.pdk.sky130 import VCM_V, VDD_V

__all__ = ["BlockBench", "block_bench", "run_block", "measure_block", "step_response", "BLOCK_COLUMNS",
           "SYN_WEIGHTS", "X_RANGE", "X_STEP", "STEP_T0_S", "STEP_WINDOW_S", "STEP_DT_S"]

#: Programmed weights of the synapse testbench (w / wmax), in its instance order.
SYN_WEIGHTS = (-1.0, -0.5, 0.0, 0.5, 1.0)
#: Input sweeps in units: x in [-X_RANGE, X_RANGE] by X_STEP (the loss port: x - y to +-4/3 more).
X_RANGE, X_STEP = 3.0, 0.25
#: Outputs each testbench writes.
_OUTPUTS = {"synapse": ("op.txt", "dcf.txt", "dcb.txt", "tran.txt"), "node": ("dc.txt", "tran.txt"),
            "loss": ("op.txt", "dc.txt", "tran.txt")}
#: The synapse's and the loss port's step responses: a one-unit input step at STEP_T0_S (s),
#: each observed for STEP_WINDOW_S (s; the synapse's backward step at STEP_T0_S +
#: STEP_WINDOW_S), output every STEP_DT_S (s: 1/38 of the synapse's 19 ns and 1/50 of the
#: loss port's 25 ns equivalent time constant on tt, 27 C).
STEP_T0_S, STEP_WINDOW_S, STEP_DT_S = 10e-9, 400e-9, 0.5e-9
#: ln 9: a single pole's 10-90 % rise time in time constants.
_LN9 = float(np.log(9.0))
#: The node pair's step (units of fd) at 10 ns and the run length in node time constants.
_STEP_T0_S, _TRAN_TAUS = 10e-9, 12.0
_SD_REST = 0.5

#: Columns of ``blocks.csv`` (one cell's row leaves the others' columns empty).
BLOCK_COLUMNS = ["cell", "corner", "temp_C", "mc_seed", "vu_V",
                 "syn_iu_A", "syn_gain_lin_err", "syn_fb_mismatch", "syn_offset_fwd", "syn_offset_bwd",
                 "syn_x_lin_err", "syn_gain_sd", "syn_fb_rms",
                 "syn_offset_fwd_rms", "syn_offset_bwd_rms", "syn_offset_fb_cov",
                 "node_R_ohm", "node_R_mismatch", "node_C_F", "node_tau_s", "node_tension_offset",
                 "node_R_voltco_per_V",
                 "syn_rise_fwd_s", "syn_rise_bwd_s", "syn_settle_fwd_s", "syn_settle_bwd_s",
                 "loss_beta", "loss_beta_err", "loss_offset", "loss_lin_err", "loss_cm_gain_err",
                 "loss_rise_s", "loss_settle_s",
                 "tau_s", "supply_current_A", "power_W", "area_um2"]


@dataclass(frozen=True)
class BlockBench:
    """One testbench run of a block (see :class:`hwbp.pdk.bench.Bench`); ``fill`` holds the
    placeholder values beyond the common ones."""

    name: str
    cell_text: str
    tb_text: str
    cell_file: str
    lib: str
    corner: str
    temp_c: float
    params: tuple[tuple[str, float], ...]
    fill: tuple[tuple[str, str], ...]
    seed: int | None = None
    timeout_s: float = 600.0

    def deck(self) -> str:
        """The testbench with its placeholders filled."""
        return fill_deck(self, dict(self.fill))


def block_bench(spec: BlockSpec, lib: str, corner: str, temp_c: float, seed: int | None = None,
                params: Mapping[str, float] | None = None) -> BlockBench:
    """The testbench run of ``spec`` on ``corner`` (a model section: ``tt``, ``tt_mm``) at
    ``temp_c`` (deg C), with ``params`` (default: the cell's)."""
    p = dict(spec.params if params is None else params)
    vu = p["vu"]
    lo, hi, st = VCM_V - X_RANGE * vu, VCM_V + X_RANGE * vu + 1e-9, X_STEP * vu
    if spec.name == "synapse":
        fill = {"{VTW}": repr(spec.calib["vtw"]), "{TW}": repr(spec.calib["tw"])}
    elif spec.name == "node":
        tau = p["r"] * p["c"]
        fill = {"{SD}": f"{VCM_V + _SD_REST * vu:.12g}", "{STEP_HI}": f"{VCM_V + vu:.12g}",
                "{T_STOP}": f"{_STEP_T0_S + _TRAN_TAUS * tau:.6g}", "{T_STEP}": f"{tau / 50:.6g}"}
    else:
        fill = {"{Y_LO}": f"{VCM_V - vu:.12g}", "{Y_HI}": f"{VCM_V + vu + 1e-9:.12g}", "{Y_STEP}": f"{vu:.12g}"}
        lo, hi = VCM_V - (X_RANGE + 1) * vu, VCM_V + (X_RANGE + 1) * vu + 1e-9
    if spec.name in ("synapse", "loss"):
        t1 = STEP_T0_S + STEP_WINDOW_S
        fill.update({"{STEP_HI}": f"{VCM_V + vu:.12g}", "{T1}": f"{t1:.6g}", "{T1_EDGE}": f"{t1 + 10e-12:.6g}",
                     "{T_STOP}": f"{t1 + (STEP_WINDOW_S if spec.name == 'synapse' else 0.0):.6g}",
                     "{T_STEP}": f"{STEP_DT_S:.6g}"})
    fill.update({"{X_LO}": f"{lo:.12g}", "{X_HI}": f"{hi:.12g}", "{X_STEP}": f"{st:.12g}"})
    return BlockBench(spec.name, spec.path.read_text(encoding="ascii"), spec.testbench.read_text(encoding="ascii"),
                      spec.path.name, lib, corner, float(temp_c), tuple(p.items()), tuple(fill.items()), seed)


def run_block(bench: BlockBench) -> dict[str, np.ndarray]:
    """Run ``bench`` in a fresh directory; its output tables by file name.  A one-line
    :class:`BackendError` when ngspice fails, times out or writes no results."""
    return run_testbench(bench, _OUTPUTS[bench.name])


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def _crossing(t: np.ndarray, g: np.ndarray, level: float) -> float:
    """The first time ``g`` reaches ``level`` (linear between samples; ``g`` rising)."""
    k = int(np.argmax(g >= level))
    if g[k] < level:
        return float("nan")
    if k == 0:
        return float(t[0])
    return float(t[k - 1] + (level - g[k - 1]) / (g[k] - g[k - 1]) * (t[k] - t[k - 1]))


def step_response(t: np.ndarray, y: np.ndarray, t0_s: float, t1_s: float, tol: float = 0.01) -> tuple[float, float]:
    """The 10-90 % rise time and the settling time (s, from the step) of ``y`` against time
    ``t`` (s) after a step at ``t0_s`` observed until ``t1_s``: the start is the last sample
    before the step, the final value the mean over the window's last tenth; settled once
    ``y`` stays within ``tol`` of the step from the final value.  Either is NaN where the
    window does not resolve it (no step, or the settling falls in the window's last quarter)."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    span = t1_s - t0_s
    before, win = t < t0_s, (t > t0_s) & (t < t1_s)
    if not before.any() or win.sum() < 3:
        raise ValueError("step_response: no samples before the step or in its window")
    y0 = y[before][-1]
    yf = float(y[win & (t >= t1_s - 0.1 * span)].mean())
    if not abs(yf - y0) > 1e-9 * max(abs(yf), abs(y0), 1e-30):
        return float("nan"), float("nan")
    tw, f = t[win] - t0_s, (y[win] - y0) / (yf - y0)
    rise = _crossing(tw, f, 0.9) - _crossing(tw, f, 0.1)
    g = np.abs(f - 1.0)
    out = np.nonzero(g > tol)[0]
    if out.size == 0:
        settle = float(tw[0])
    elif out[-1] + 1 >= tw.size:
        settle = float("nan")
    else:
        k = int(out[-1])
        settle = float(tw[k] + (g[k] - tol) / (g[k] - g[k + 1]) * (tw[k + 1] - tw[k]))
    return rise, (settle if settle <= 0.75 * span else float("nan"))


def _synapse_steps(tr: np.ndarray) -> dict[str, float]:
    """The slowest 10-90 % rise and 1 % settling over the instances with w != 0: forward
    after the x step, backward after the e step (tran.txt: (t, i) pairs, VOk at 4k, VSk at 4k + 2)."""
    t, t1 = tr[:, 0], STEP_T0_S + STEP_WINDOW_S
    fwd, bwd = [], []
    for k, w in enumerate(SYN_WEIGHTS):
        if w != 0:
            fwd.append(step_response(t, tr[:, 4 * k + 1], STEP_T0_S, t1))
            bwd.append(step_response(t, tr[:, 4 * k + 3], t1, t1 + STEP_WINDOW_S))
    rf, sf = np.array(fwd).T
    rb, sb = np.array(bwd).T
    return {"syn_rise_fwd_s": float(rf.max()), "syn_rise_bwd_s": float(rb.max()), "syn_settle_fwd_s": float(sf.max()),
            "syn_settle_bwd_s": float(sb.max()), "tau_s": float(max(rf.max(), rb.max())) / _LN9}


def _synapse(t: Mapping[str, np.ndarray], spec: BlockSpec, p: Mapping[str, float]) -> dict[str, float]:
    vu = p["vu"]
    f, b = t["dcf.txt"], t["dcb.txt"]
    x = (f[:, 0] - VCM_V) / vu
    # wrdata: (sweep, value) pairs; instance k's forward current in pair 2k, backward in 2k+1
    fwd, bwd = f[:, 1::2][:, 0::2], b[:, 1::2][:, 1::2]
    ws = np.array(SYN_WEIGHTS)
    inner = np.abs(x) <= 1.0 + 1e-9
    gf = np.array([_slope(x[inner], fwd[inner, k]) for k in range(len(ws))])
    gb = np.array([_slope(x[inner], bwd[inner, k]) for k in range(len(ws))])
    iu = float(np.dot(ws, gf) / np.dot(ws, ws))  # A per unit of w*x at wmax = 1 (fit through 0)
    nz = ws != 0
    zero = int(np.argmin(np.abs(x)))
    top = int(np.argmax(ws))
    xlin = (fwd[:, top] - fwd[zero, top] - gf[top] * x) / (gf[top] * X_RANGE)
    i_vdd = float(-t["op.txt"][0, 1]) / len(ws)
    per_w = gf[nz] / ws[nz]  # each instance's forward gain per unit of w (its own devices)
    of, ob = fwd[zero] / abs(iu), bwd[zero] / abs(iu)  # each instance's offsets, units of full-scale w*x
    return {"syn_iu_A": iu, "syn_gain_sd": float(per_w.std(ddof=1) / abs(per_w.mean())),
            "syn_fb_rms": float(np.sqrt(np.mean((gb[nz] / gf[nz] - 1.0) ** 2))), "syn_gain_lin_err": float(np.max(np.abs(gf - iu * ws)) / abs(iu)),
            "syn_fb_mismatch": float(np.max(np.abs(gb[nz] / gf[nz] - 1.0))),
            "syn_offset_fwd": float(np.max(np.abs(fwd[zero]))) / abs(iu),
            "syn_offset_bwd": float(np.max(np.abs(bwd[zero]))) / abs(iu),
            "syn_x_lin_err": float(np.max(np.abs(xlin))),
            "syn_offset_fwd_rms": float(np.sqrt(np.mean(of ** 2))),
            "syn_offset_bwd_rms": float(np.sqrt(np.mean(ob ** 2))),
            "syn_offset_fb_cov": float(np.mean(of * ob)),
            "supply_current_A": i_vdd, "power_W": VDD_V * i_vdd, **_synapse_steps(t["tran.txt"])}


def _node(t: Mapping[str, np.ndarray], spec: BlockSpec, p: Mapping[str, float]) -> dict[str, float]:
    vu, r = p["vu"], p["r"]
    d = t["dc.txt"]
    fd = (d[:, 0] - VCM_V) / vu
    xp, xm, tn = (d[:, 1] - VCM_V) / vu, (d[:, 3] - VCM_V) / vu, (d[:, 5] - VCM_V) / vu
    # injected: (fd +- sd/2)*vu/r; R = the node's voltage over that current
    ip, im = (fd + _SD_REST / 2) * vu / r, (fd - _SD_REST / 2) * vu / r
    ok_p, ok_m = np.abs(ip) > 1e-3 * vu / r, np.abs(im) > 1e-3 * vu / r
    rp, rm = (xp * vu)[ok_p] / ip[ok_p], (xm * vu)[ok_m] / im[ok_m]
    R = float(np.median(np.concatenate([rp, rm])))
    rest = int(np.argmin(np.abs(fd)))
    # R(V): the relative change of the leak over the node's voltage range (per V)
    vp = (xp * vu)[ok_p]
    voltco = float(np.polyfit(np.abs(vp), rp / R, 1)[0]) if vp.size > 2 else float("nan")
    tr = t["tran.txt"]
    ts, v = tr[:, 0], (tr[:, 1] - VCM_V) / vu
    after = ts > _STEP_T0_S + 1e-12
    final, start = v[-1], v[0]
    frac = (final - v[after]) / (final - start)
    use = (frac < 0.9) & (frac > 0.02)
    tau = float(-1.0 / np.polyfit(ts[after][use] - _STEP_T0_S, np.log(frac[use]), 1)[0])
    return {"node_R_ohm": R, "node_R_mismatch": float(np.median(rp) / np.median(rm) - 1.0), "node_tau_s": tau,
            "node_C_F": tau / R, "tau_s": tau, "node_tension_offset": float(tn[rest] - _SD_REST * R / r),
            "node_R_voltco_per_V": voltco, "supply_current_A": 0.0, "power_W": 0.0}


def _loss(t: Mapping[str, np.ndarray], spec: BlockSpec, p: Mapping[str, float]) -> dict[str, float]:
    vu, iu, beta = p["vu"], p["iu"], p["beta"]
    d = t["dc.txt"]
    n = int(round(2 * (X_RANGE + 1) / X_STEP)) + 1
    x = (d[:n, 0] - VCM_V) / vu
    cur = d[:, 1].reshape(-1, n) / iu  # rows: y = -1, 0, +1 units
    ys = (-1.0, 0.0, 1.0)
    gains, lin = [], []
    for k, y in enumerate(ys):
        e = x - y
        inner = np.abs(e) <= 2.0 + 1e-9
        g, o = np.polyfit(e[inner], cur[k][inner], 1)
        gains.append(g)
        lin.append(np.max(np.abs(cur[k][inner] - g * e[inner] - o)) / (abs(g) * 2.0))
    i_vdd = float(-t["op.txt"][0, 1])
    tr = t["tran.txt"]
    rise, settle = step_response(tr[:, 0], tr[:, 1], STEP_T0_S, STEP_T0_S + STEP_WINDOW_S)
    return {"loss_rise_s": rise, "loss_settle_s": settle, "tau_s": rise / _LN9,
            "loss_beta": float(gains[1]), "loss_beta_err": float(gains[1] / beta - 1.0),
            "loss_offset": float(t["op.txt"][0, 5]) / iu / beta, "loss_lin_err": float(max(lin)),
            "loss_cm_gain_err": float((max(gains) - min(gains)) / gains[1]),
            "supply_current_A": i_vdd, "power_W": VDD_V * i_vdd}


def measure_block(name: str, tables: Mapping[str, np.ndarray], params: Mapping[str, float] | None = None
                  ) -> dict[str, Any]:
    """The measurements of one block run (the columns of :data:`BLOCK_COLUMNS` it fills).

    synapse: ``syn_iu_A`` (A per unit of w*x at wmax = 1, the fit of the forward gain against
    the programmed weight), ``syn_gain_lin_err`` (largest deviation of a gain from that fit,
    relative), ``syn_fb_mismatch`` (largest |backward/forward gain - 1| over w != 0),
    ``syn_offset_fwd``/``_bwd`` (output at zero input, units of w*x), ``syn_x_lin_err`` (largest
    deviation from linear in x over |x| <= 3 at w = wmax, relative to full scale),
    ``syn_gain_sd`` (relative standard deviation of the forward gain per unit of w over the
    testbench's instances with w != 0, each its own devices: the gain spread of one Monte
    Carlo draw) and ``syn_fb_rms`` (rms of backward/forward gain - 1 over those instances);
    ``syn_offset_fwd_rms``/``_bwd_rms`` (rms over all the testbench's instances of each one's
    output at zero input, units of w*x at the full-scale weight) and ``syn_offset_fb_cov``
    (the mean over them of the forward times the backward offset: with the rms values, the
    two directions' offset correlation).
    node: ``node_R_ohm`` (leak), ``node_R_mismatch`` (x+ against x-), ``node_tau_s`` (step
    response), ``node_C_F`` = tau/R, ``node_tension_offset`` (units, at rest), ``node_R_voltco_per_V``.
    loss: ``loss_beta`` (the realized beta), ``loss_beta_err``, ``loss_offset`` (units of x - y
    at x = y), ``loss_lin_err`` (|x - y| <= 2), ``loss_cm_gain_err`` (gain change over y = -1..1),
    ``loss_rise_s``, ``loss_settle_s`` (a one-unit step of x, as the synapse's).
    All: ``tau_s`` (s; the synapse and the loss port: the equivalent single-pole time constant
    10-90 % rise / ln 9, of the slower direction; the node: ``node_tau_s``),
    ``supply_current_A`` (vdd, per instance), ``power_W``, ``area_um2``.
    """
    spec = get_block(name)
    p = dict(spec.params if params is None else params)
    row = {"synapse": _synapse, "node": _node, "loss": _loss}[name](tables, spec, p)
    row["area_um2"] = cell_area_um2(spec.path, spec.subckt, p)["total"]
    return row
