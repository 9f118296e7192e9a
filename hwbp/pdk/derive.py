"""The hardware model that ``hwbp characterize`` derives from its measurements
(``hardware.toml``, loadable by ``hwbp verify --hardware``).

From one cell's nominal curves (the reference corner and temperature):

- ``[curves.<cell>]``: the measured f on the sweep grid and the gate at zero tension
  ``z(a)`` (:class:`hwbp.hardware.curves.Curve`);
- ``[cells] gate = "pair"``: the gate is ``(1 + g') [f~(a + T/2) - f~(a - T/2)] + z(a)``,
  with ``g'`` the least-squares gain of ``gate - z`` against the finite difference of the
  measured f over every measured ``T > 0``;
- spreads from the Monte Carlo draws of that corner and temperature: ``f_gain_sigma``
  (relative to the curve), ``f_offset_sigma_V``, ``df_gain_sigma`` (of ``g'``),
  ``pair_offset_sigma`` (the draws' mean zero-tension gate, minus the nominal one) and
  ``pair_slope_sigma``: the rms over the draws of ``q``, the least-squares slope of the
  draw's zero-tension gate minus the nominal one against the nominal f (``|a| <= 3``): the
  gain difference of the pair's two f copies, zero on average by symmetry;
- from the device-pair testbench (:mod:`hwbp.pdk.mismatch`), when measured: ``[mismatch]
  pelgrom_A_um`` of the nfet drain current and ``[nodes] r_sigma, c_sigma`` of the
  node-sized resistor and capacitor;
- from the block cells' rows (``blocks.csv`` of ``hwbp characterize --cells
  synapse,node,loss``, :mod:`hwbp.pdk.blocks`), when given, which take precedence:

  * the synapse cell's Monte Carlo draws: its gain spread ``s_g`` (pooled rms of
    ``syn_gain_sd``, the relative spread of one instance's forward gain) and its
    forward/backward spread ``s_fb`` (pooled rms of ``syn_fb_rms``, backward/forward gain
    - 1).  In the model a synapse's forward and backward device are ``exp(sigma z_f)`` and
    ``exp(sigma z_b)`` with correlation ``rho``, so ``ln(g_b/g_f)`` has standard deviation
    ``sigma sqrt(2 (1 - rho))``: ``sigma = s_g`` and ``rho = 1 - s_fb^2 / (2 s_g^2)``
    (clipped to [-1, 1]).  ``sigma`` is written in Pelgrom form, ``area_um2`` = W*L of the
    cell's gain-setting device (the Gilbert tail, ``wt*lt`` of its parameters) and
    ``pelgrom_A_um = s_g sqrt(area_um2)``, so that another tail sizing scales it;
  * the node pair cell's Monte Carlo draws: ``r_sigma`` = std(R+/R- - 1)/sqrt(2) (the
    leak mismatch of x+ against x-, each resistor drawn on its own) and ``c_sigma`` = the
    relative spread of the measured C = tau/R;
  * the synapse cell's offsets (``[synapses]``, where its rows carry the per-instance
    columns): ``offset_fwd_sigma`` and ``offset_bwd_sigma`` = the pooled rms over every
    draw's instances of the forward and the backward output at zero input (units of w*x
    at the full-scale weight: ``syn_offset_fwd_rms``, ``syn_offset_bwd_rms``), and
    ``offset_correlation`` = the pooled mean of their product (``syn_offset_fb_cov``) over
    the two: the cell's two Gilbert halves have their own devices, so the measurement, not
    an assumption, says whether one draw serves both directions;
  * the loss port: ``[loss] beta_gain`` from its nominal row (``loss_beta_err``) and
    ``beta_gain_sigma`` from the relative spread of its Monte Carlo ``loss_beta``;
    ``offset`` = its nominal input offset (``loss_offset``, units of x - y) and
    ``offset_sigma`` = the standard deviation of ``loss_offset`` over the draws.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

__all__ = ["Measured", "hardware_toml", "pair_gain", "pair_slope", "synapse_area_um2", "block_sections"]


def synapse_area_um2() -> float:
    """Gate area W*L (um^2) of the synapse cell's gain-setting device: the tail of each
    Gilbert multiplier (``wt*lt`` of :data:`hwbp.pdk.cells.BLOCKS` ``synapse``), whose
    current sets the forward and the backward gain; ``area_um2`` in the TOML."""
    from hwbp.pdk.cells import BLOCKS

    p = BLOCKS["synapse"].params
    return float(p["wt"] * p["lt"])


def _pooled(rows: Sequence[dict[str, Any]], key: str) -> float:
    return float(np.sqrt(np.mean([float(r[key]) ** 2 for r in rows])))


def _rel_sd(rows: Sequence[dict[str, Any]], key: str) -> float:
    v = np.array([float(r[key]) for r in rows])
    return float(v.std(ddof=1) / abs(v.mean())) if v.size >= 2 else 0.0


def block_sections(blocks: Sequence[dict[str, Any]], corner: str = "tt", temp_c: float = 27.0) -> dict[str, Any]:
    """What the block cells' rows (``blocks.csv``, any number of runs concatenated) give
    the model at ``corner``, ``temp_c`` (module docstring): a dict with, where measured,
    ``synapse`` (``sigma``, ``fb``, ``rho``, ``area_um2``, ``pelgrom_A_um``, ``draws``),
    ``synapse_offset`` (``fwd_sigma``, ``bwd_sigma``, ``rho``, ``draws``, ``instances``),
    ``node`` (``r_sigma``, ``c_sigma``, ``draws``) and ``loss`` (``beta_gain``,
    ``beta_gain_sigma``, ``draws`` and, where its draws carry ``loss_offset``, ``offset``,
    ``offset_sigma``, ``offset_draws``)."""
    def sel(cell: str, mc: bool) -> list[dict[str, Any]]:
        return [r for r in blocks if r["cell"] == cell and r["corner"] == corner and float(r["temp_C"]) == temp_c
                and (r["mc_seed"] != "") == mc]

    out: dict[str, Any] = {}
    syn = [r for r in sel("synapse", True) if r.get("syn_gain_sd", "") != ""]
    if len(syn) >= 2:
        sg, fb = _pooled(syn, "syn_gain_sd"), _pooled(syn, "syn_fb_rms")
        area = synapse_area_um2()
        out["synapse"] = {"sigma": sg, "fb": fb, "rho": float(np.clip(1.0 - fb * fb / (2.0 * sg * sg), -1.0, 1.0)),
                          "area_um2": area, "pelgrom_A_um": sg * float(np.sqrt(area)), "draws": len(syn)}
    off = [r for r in sel("synapse", True) if r.get("syn_offset_fwd_rms", "") != ""]
    if len(off) >= 2:
        from hwbp.pdk.blocks import SYN_WEIGHTS

        sf, sb = _pooled(off, "syn_offset_fwd_rms"), _pooled(off, "syn_offset_bwd_rms")
        cov = float(np.mean([float(r["syn_offset_fb_cov"]) for r in off]))
        out["synapse_offset"] = {"fwd_sigma": sf, "bwd_sigma": sb,
                                 "rho": float(np.clip(cov / (sf * sb), -1.0, 1.0)) if sf * sb > 0 else 0.0,
                                 "draws": len(off), "instances": len(off) * len(SYN_WEIGHTS)}
    node = sel("node", True)
    if len(node) >= 2:
        mis = np.array([float(r["node_R_mismatch"]) for r in node])
        out["node"] = {"r_sigma": float(mis.std(ddof=1) / np.sqrt(2.0)), "c_sigma": _rel_sd(node, "node_C_F"),
                       "draws": len(node)}
    loss_nom, loss_mc = sel("loss", False), sel("loss", True)
    if loss_nom:
        offs = np.array([float(r["loss_offset"]) for r in loss_mc if r.get("loss_offset", "") != ""])
        out["loss"] = {"beta_gain": float(loss_nom[0]["loss_beta_err"]),
                       "beta_gain_sigma": _rel_sd(loss_mc, "loss_beta"), "draws": len(loss_mc)}
        if offs.size >= 2:
            out["loss"].update(offset=float(loss_nom[0].get("loss_offset") or 0.0),
                               offset_sigma=float(offs.std(ddof=1)), offset_draws=int(offs.size))
    return out


class Measured(NamedTuple):
    """The curves of one characterization row: ``a`` (units, (na,)), ``T`` (units, (nT,)),
    ``f`` (units, (na,), at T = 0) and ``gate`` (units, (nT, na))."""

    a: np.ndarray
    T: np.ndarray
    f: np.ndarray
    gate: np.ndarray


def _fdiff(m: Measured, T: float) -> np.ndarray:
    return np.interp(m.a + T / 2, m.a, m.f) - np.interp(m.a - T / 2, m.a, m.f)


def _inner(m: Measured) -> np.ndarray:
    return (m.a > m.a[0] + 0.5) & (m.a < m.a[-1] - 0.5)


def pair_gain(m: Measured, zero: np.ndarray | None = None) -> float:
    """``1 + g'``: the least-squares gain of ``gate(a, T) - z(a)`` against
    ``f(a + T/2) - f(a - T/2)`` of the measured f over every ``T > 0`` (``|a|`` inside
    the sweep by 0.5)."""
    z = m.gate[0] if zero is None else zero
    inner = _inner(m)
    x = np.concatenate([_fdiff(m, T)[inner] for T in m.T if T > 0])
    y = np.concatenate([(m.gate[k] - z)[inner] for k, T in enumerate(m.T) if T > 0])
    return float(x @ y / (x @ x))


def pair_slope(draw: Measured, nominal: Measured) -> float:
    """``q`` of one Monte Carlo draw: the least-squares slope (with an intercept) of the
    draw's zero-tension gate minus the nominal one against the nominal f over ``|a| <= 3``."""
    inner = np.abs(nominal.a) <= 3.0
    dz, f = (draw.gate[0] - nominal.gate[0])[inner], nominal.f[inner]
    design = np.stack([np.ones_like(f), f], axis=1)
    return float(np.linalg.lstsq(design, dz, rcond=None)[0][1])


def _stats(rows: Sequence[dict[str, Any]], key: str, sel: Sequence[int]) -> float:
    vals = np.array([rows[i][key] for i in sel], dtype=float)
    return float(vals.std(ddof=1)) if vals.size >= 2 else 0.0


def _list(x: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.12g}" for v in np.asarray(x, dtype=float)) + "]"


def hardware_toml(rows: Sequence[dict[str, Any]], curves: Sequence[Measured] | None = None,
                  mismatch: Sequence[dict[str, Any]] | None = None, cell: str | None = None,
                  blocks: Sequence[dict[str, Any]] | None = None) -> str:
    """The derived ``hardware.toml`` (module docstring) for ``cell`` (default: tanh when
    measured, else the first cell), referenced to its nominal tt, 27 C row (else its first
    nominal row).  Without ``curves``: the cell as a gain and an offset of f and of the
    derivative gate (``f' ~ gate / T``).  ``blocks``: rows of ``blocks.csv``
    (:func:`block_sections`), whose synapse, node and loss measurements take precedence
    over the device-pair testbench's."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    cell = cell or ("tanh" if "tanh" in cells else cells[0])
    nom = [i for i, r in enumerate(rows) if r["cell"] == cell and r["mc_seed"] == ""]
    iref = next((i for i in nom if rows[i]["corner"] == "tt" and float(rows[i]["temp_C"]) == 27.0), nom[0])
    ref = rows[iref]
    vu = float(ref["vu_V"])
    mc = [i for i, r in enumerate(rows) if r["cell"] == cell and r["mc_seed"] != "" and r["corner"] == ref["corner"]
          and float(r["temp_C"]) == float(ref["temp_C"])]
    where = f"corner {ref['corner']}, {float(ref['temp_C']):g} C"
    lines = [f"# hardware model derived by `hwbp characterize` from the {cell} cell "
             f"(circuits/sky130/hwbp_act_{cell}.cir)",
             f"# nominal values: {where}; spreads: {len(mc)} Monte Carlo draws ({ref['corner']}_mm)"]
    if curves is None:
        s = {k: _stats(rows, k, mc) for k in ("f_gain", "f_offset", "gate_gain", "gate_offset")}
        lines += ["# f~(a) = (1 + f_gain) f(a) + f_offset_V/unit_V; f'~(a) = (1 + df_gain) f'(a) + df_offset.",
                  f"unit_V = {vu!r}", "", "[cells]",
                  f"f_gain = {ref['f_gain'] - 1.0!r}", f"f_gain_sigma = {s['f_gain']!r}",
                  f"f_offset_V = {ref['f_offset'] * vu!r}", f"f_offset_sigma_V = {s['f_offset'] * vu!r}",
                  f"df_gain = {ref['gate_gain'] - 1.0!r}", f"df_gain_sigma = {s['gate_gain']!r}",
                  f"df_offset = {ref['gate_offset']!r}", f"df_offset_sigma = {s['gate_offset']!r}"]
    else:
        m = curves[iref]
        g_nom = pair_gain(m)
        draws = [curves[i] for i in mc]
        g_mc = np.array([pair_gain(d) for d in draws])
        inner = np.abs(m.a) <= 1.0
        p_mc = np.array([np.mean((d.gate[0] - m.gate[0])[inner]) for d in draws])
        q_mc = np.array([pair_slope(d, m) for d in draws])
        fg = np.array([rows[i]["f_gain"] for i in mc]) / ref["f_gain"]
        lines += ["# f~(a) = (1 + f_gain) curve(a) + f_offset_V/unit_V (the curve holds the nominal gain and offset);",
                  "# gate = (1 + df_gain) [f~(a + T/2) - f~(a - T/2)] + gate_zero(a) + N(0, pair_offset_sigma^2)"
                  " + N(0, pair_slope_sigma^2) curve(a),",
                  "# the same f circuit at a +- T/2, as the cell computes it (hwbp.hardware.curves).",
                  f"unit_V = {vu!r}", "", "[cells]", 'gate = "pair"',
                  f"f_gain_sigma = {float(fg.std(ddof=1)) if fg.size >= 2 else 0.0!r}",
                  f"f_offset_sigma_V = {_stats(rows, 'f_offset', mc) * vu!r}",
                  f"df_gain = {g_nom - 1.0!r}",
                  f"df_gain_sigma = {float(g_mc.std(ddof=1)) if g_mc.size >= 2 else 0.0!r}",
                  f"pair_offset_sigma = {float(p_mc.std(ddof=1)) if p_mc.size >= 2 else 0.0!r}",
                  f"pair_slope_sigma = {float(np.sqrt(np.mean(q_mc ** 2))) if q_mc.size >= 2 else 0.0!r}"]
    bl = block_sections(blocks, ref["corner"], float(ref["temp_C"])) if blocks else {}
    a_mos = res = None
    n_pairs = 0
    if mismatch:
        from hwbp.pdk.mismatch import pelgrom_fit

        a_mos, res = pelgrom_fit(mismatch, "nfet_01v8")
        n_pairs = len([r for r in mismatch if r["device"] == "nfet_01v8"])
    area = synapse_area_um2()
    if "synapse" in bl:
        s = bl["synapse"]
        lines += ["", f"# synapse: the cell's own Monte Carlo ({s['draws']} draws x 4 instances, {where}): forward "
                  f"gain spread {s['sigma']:.4g}, backward/forward gain - 1 rms {s['fb']:.4g};",
                  "# sigma = the gain spread in Pelgrom form over the gain-setting tail W*L (circuits/sky130/"
                  "hwbp_synapse.cir wt*lt), correlation = 1 - fb^2 / (2 sigma^2)"
                  + (f";\n# the nfet device-pair fit gives pelgrom_A_um = {a_mos:.4g} "
                     f"(sigma {a_mos / np.sqrt(area):.4g} at this area)" if a_mos is not None else ""),
                  "[mismatch]", f"pelgrom_A_um = {s['pelgrom_A_um']:.6g}", f"area_um2 = {s['area_um2']!r}",
                  f"correlation = {s['rho']:.6g}"]
    elif a_mos is not None:
        lines += ["", f"# synapse: nfet_01v8 drain-current mismatch, Pelgrom fit over {n_pairs} areas "
                  f"(rms residual {res:.2f});",
                  "# area_um2: W*L of the synapse cell's gain-setting tail (circuits/sky130/hwbp_synapse.cir wt*lt)",
                  "[mismatch]", f"pelgrom_A_um = {a_mos:.6g}", f"area_um2 = {area!r}"]
    if "synapse_offset" in bl:
        o = bl["synapse_offset"]
        lines += ["", f"# synapse offsets: the cell's own Monte Carlo ({o['draws']} draws x {o['instances'] // o['draws']} "
                  f"instances, {where}): rms of each instance's output at zero input,",
                  "# units of w*x at the full-scale weight (the network's largest |w|), forward and backward; "
                  "correlation = mean(fwd*bwd)/(fwd rms * bwd rms)",
                  f"# (standard error ~{1.0 / np.sqrt(o['instances']):.2g}; the two Gilbert halves of "
                  "circuits/sky130/hwbp_synapse.cir have their own devices)",
                  "[synapses]", f"offset_fwd_sigma = {o['fwd_sigma']:.6g}", f"offset_bwd_sigma = {o['bwd_sigma']:.6g}",
                  f"offset_correlation = {o['rho']:.6g}"]
    if "node" in bl:
        n = bl["node"]
        lines += ["", f"# node: the node pair cell's Monte Carlo ({n['draws']} draws, {where}): r_sigma = "
                  "std(R+/R- - 1)/sqrt(2), c_sigma = relative spread of C = tau/R", "[nodes]",
                  f"r_sigma = {n['r_sigma']:.6g}", f"c_sigma = {n['c_sigma']:.6g}"]
    elif mismatch:
        node = {r["device"]: r for r in mismatch if r["device"] != "nfet_01v8"
                and float(r["area_um2"]) == max(float(x["area_um2"]) for x in mismatch if x["device"] == r["device"])}
        lines += ["", f"# node: an xhigh_po resistor W x L = {node['res_xhigh_po']['W_um']:g} x "
                  f"{node['res_xhigh_po']['L_um']:g} um ({1.0 / float(node['res_xhigh_po']['mean']):.3g} ohm measured) "
                  f"and a MIM capacitor {node['cap_mim_m3_1']['W_um']:g} x {node['cap_mim_m3_1']['L_um']:g} um "
                  f"({float(node['cap_mim_m3_1']['mean']) / (2e6 * 3.141592653589793):.3g} F measured)",
                  "# "
                  f"({int(mismatch[0]['draws'])} Monte Carlo draws, {int(mismatch[0]['pairs'])} pairs per size)",
                  "[nodes]", f"r_sigma = {float(node['res_xhigh_po']['sigma_device']):.6g}",
                  f"c_sigma = {float(node['cap_mim_m3_1']['sigma_device']):.6g}"]
    if "loss" in bl:
        lo = bl["loss"]
        lines += ["", f"# loss port: realized beta / nominal - 1 (nominal models) and its spread over "
                  f"{lo['draws']} Monte Carlo draws, {where};",
                  "# input offset (units of x - y): the nominal models' value and the standard deviation over the "
                  "draws", "[loss]", f"beta_gain = {lo['beta_gain']:.6g}",
                  f"beta_gain_sigma = {lo['beta_gain_sigma']:.6g}"]
        if "offset_sigma" in lo:
            lines += [f"offset = {lo['offset']:.6g}", f"offset_sigma = {lo['offset_sigma']:.6g}"]
    if curves is not None:
        m = curves[iref]
        lines += ["", f"# the measured curve ({where}) and the gate at zero tension, in units", f"[curves.{cell}]",
                  f"a = {_list(m.a)}", f"f = {_list(m.f)}", f"gate_zero = {_list(m.gate[0])}"]
    return "\n".join(lines) + "\n"
