"""Figures of merit of one cell from its testbench curves (:class:`~hwbp.pdk.bench.BenchResult`).

f is the fd current in units of the cell's unit current; the gate is ``(V(gate) - vcm)/vu``
(units).  The gate is judged against the derivative of the MEASURED f (central
differences of the f curve), since the gradient is exact for the network the circuit
computes only when the gate is the derivative of that network's f.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from hwbp.pdk.bench import BenchResult
from hwbp.pdk.cells import CellSpec
from hwbp.pdk.sky130 import VCM_V, VDD_V

__all__ = ["measure", "GATE_T", "f_curve", "gate_curves"]

#: Tensions (units) at which the gate error is reported.
GATE_T = (0.25, 0.5, 1.0)


def f_curve(res: BenchResult, spec: CellSpec, params: Mapping[str, float]) -> np.ndarray:
    """The measured f(a) (units) at T = 0."""
    return res.i_fd[0] / spec.unit_current(params)


def gate_curves(res: BenchResult, params: Mapping[str, float]) -> np.ndarray:
    """The measured gate(a, T) (units), shape (len(T), len(a))."""
    return (res.v_gate - VCM_V) / params["vu"]


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    A = np.stack([x, np.ones_like(x)], axis=1)
    (g, o), *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(g), float(o)


def _rel_rms(err: np.ndarray, ref: np.ndarray) -> float:
    den = float(np.sqrt(np.mean(ref ** 2)))
    return float(np.sqrt(np.mean(err ** 2)) / den) if den > 0 else float("nan")


def _bandwidth_Hz(freq: np.ndarray, resp: np.ndarray) -> float:
    mag = np.abs(resp)
    below = np.nonzero(mag < mag[0] / np.sqrt(2.0))[0]
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    # log-log interpolation between the two points around -3 dB
    lf = np.interp(np.log(mag[0] / np.sqrt(2.0)), np.log(mag[[k, k - 1]]), np.log(freq[[k, k - 1]]))
    return float(np.exp(lf))


def measure(res: BenchResult, spec: CellSpec, params: Mapping[str, float]) -> dict[str, Any]:
    """One characterization row's measurements.

    Returns
    -------
    dict
        ``f_gain``, ``f_offset`` (units; least-squares fit f ~ gain*f_ideal + offset),
        ``f_shape_rms`` (units, residual of that fit), ``f_err_rms`` (units, f - f_ideal),
        ``gate_gain``, ``gate_offset`` (fit gate/T ~ gain*f_ideal' + offset over T > 0),
        ``gate_zero_T`` (units, rms gate at T = 0), ``gate_err_T<T>`` (relative rms error of
        the gate against f_measured'(a)*T), ``gate_vs_fdiff`` (relative rms error against
        f(a+T/2) - f(a-T/2) of the measured curve, T = 0.5), ``bandwidth_Hz`` (-3 dB of
        the f current), ``tau_s``, ``supply_current_A``, ``power_W`` (vdd and vcm sources).
    """
    a = res.a
    f = f_curve(res, spec, params)
    ideal = spec.ideal(a)
    g, o = _fit(ideal, f)
    row: dict[str, Any] = {"f_gain": g, "f_offset": o, "f_shape_rms": float(np.sqrt(np.mean((f - g * ideal - o) ** 2))),
                           "f_err_rms": float(np.sqrt(np.mean((f - ideal) ** 2)))}
    gate = gate_curves(res, params)
    df_meas = np.gradient(f, a)
    h = 1e-4
    df_ideal = (spec.ideal(a + h) - spec.ideal(a - h)) / (2 * h)
    tpos = res.T > 0
    gg, go = _fit(np.concatenate([df_ideal for _ in res.T[tpos]]),
                  np.concatenate([gate[k] / res.T[k] for k in np.nonzero(tpos)[0]]))
    row.update(gate_gain=gg, gate_offset=go, gate_zero_T=float(np.sqrt(np.mean(gate[0] ** 2))))
    inner = (a > a[0] + 0.5) & (a < a[-1] - 0.5)
    for T in GATE_T:
        k = int(np.argmin(np.abs(res.T - T)))
        row[f"gate_err_T{T:g}"] = _rel_rms((gate[k] - df_meas * res.T[k])[inner], (df_meas * res.T[k])[inner])
    k = int(np.argmin(np.abs(res.T - 0.5)))
    fdiff = np.interp(a + res.T[k] / 2, a, f) - np.interp(a - res.T[k] / 2, a, f)
    row["gate_vs_fdiff"] = _rel_rms((gate[k] - fdiff)[inner], fdiff[inner])
    bw = _bandwidth_Hz(res.freq_Hz, res.i_ac)
    row.update(bandwidth_Hz=bw, tau_s=1.0 / (2 * np.pi * bw) if np.isfinite(bw) else float("nan"),
               supply_current_A=res.i_vdd_A, power_W=VDD_V * res.i_vdd_A + VCM_V * max(res.i_vcm_A, 0.0))
    return row
