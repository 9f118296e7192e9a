"""What ``hwbp characterize`` writes: ``characterization.csv`` (one row per cell, corner,
temperature and Monte Carlo draw), ``characterization.md``, figures, and ``hardware.toml``
derived from the measurements (loadable by ``hwbp verify --hardware``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwbp.pdk.bench import BenchResult
from hwbp.pdk.blockchar import table_csv
from hwbp.pdk.cells import get_cell
from hwbp.pdk.derive import Measured, hardware_toml
from hwbp.pdk.figures import figures
from hwbp.pdk.measure import GATE_T, f_curve, gate_curves

__all__ = ["COLUMNS", "csv_text", "markdown", "hardware_toml", "figures", "write_all", "rows_from_csv", "measured",
           "load_curves"]

COLUMNS = (["cell", "corner", "temp_C", "mc_seed", "vu_V", "unit_current_A", "f_gain", "f_offset", "f_shape_rms",
            "f_err_rms", "gate_gain", "gate_offset", "gate_zero_T"] + [f"gate_err_T{t:g}" for t in GATE_T]
           + ["gate_vs_fdiff", "bandwidth_Hz", "tau_s", "supply_current_A", "power_W", "area_um2", "area_mos_um2",
              "area_res_um2"])


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV (columns :data:`COLUMNS`)."""
    return table_csv(rows, COLUMNS)


def _nominal(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["mc_seed"] == ""]


def _mc_stats(rows: Sequence[dict[str, Any]], cell: str, key: str, corner: str,
              temp_c: float) -> tuple[float, float, int]:
    """Mean, sample standard deviation and count of ``key`` over the Monte Carlo rows of
    ``cell`` on ``corner`` at ``temp_c``."""
    vals = np.array([r[key] for r in rows if r["cell"] == cell and r["mc_seed"] != "" and r["corner"] == corner
                     and float(r["temp_C"]) == float(temp_c)], dtype=float)
    if vals.size < 2:
        return float("nan"), 0.0, int(vals.size)
    return float(vals.mean()), float(vals.std(ddof=1)), int(vals.size)


def markdown(rows: Sequence[dict[str, Any]], command: str, mismatch: Sequence[dict[str, Any]] | None = None) -> str:
    """``characterization.md``: the nominal table, the Monte Carlo spreads, the device
    mismatch (Pelgrom fits, when measured), and the command."""
    head = ["cell", "corner", "T (C)", "f gain", "f offset", "f shape rms", "gate gain", "gate(T=0) rms",
            "gate err T=0.25", "gate err T=1", "gate vs f(a+T/2)-f(a-T/2)", "tau (s)", "P (W)", "area (um^2)"]
    out = ["# SKY130 cell characterization", "", f"Produced by `{command}`.", "",
           "f in units of the cell's unit current, a and T in units of vu (V); gate errors are relative rms "
           "errors against the derivative of the *measured* f times T (|a| < 3.5).  Figures: `transfer.png` "
           "(f per corner in colour and temperature by line style, the ideal dashed; below, the deviation from "
           "tt, 27 C; Monte Carlo draws grey) and `gate.png` (gate minus f'_measured(a) T at T = 0.5; below, gate "
           "minus f(a+T/2) - f(a-T/2) of the measured f).  Curves of every run: `curves.npz`; the hardware model "
           "derived from them: `hardware.toml`.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in _nominal(rows):
        vals = [r["cell"], r["corner"], f"{float(r['temp_C']):g}", f"{r['f_gain']:.4f}", f"{r['f_offset']:+.4f}",
                f"{r['f_shape_rms']:.4f}", f"{r['gate_gain']:.4f}", f"{r['gate_zero_T']:.4f}",
                f"{r['gate_err_T0.25']:.3f}", f"{r['gate_err_T1']:.3f}", f"{r['gate_vs_fdiff']:.3f}",
                f"{r['tau_s']:.3g}", f"{r['power_W']:.3g}", f"{r['area_um2']:.0f}"]
        out.append("| " + " | ".join(vals) + " |")
    groups = list(dict.fromkeys((r["cell"], r["corner"], float(r["temp_C"])) for r in rows if r["mc_seed"] != ""))
    if groups:
        out += ["", "## Monte Carlo (mismatch models `<corner>_mm`)", "",
                "| cell | corner | T (C) | draws | f gain mean | f gain sigma | f offset sigma | gate gain sigma | "
                "gate offset sigma | gate err T=0.25 mean |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c, corner, t in groups:
            m, sg, n = _mc_stats(rows, c, "f_gain", corner, t)
            sd = {k: _mc_stats(rows, c, k, corner, t)[1] for k in ("f_offset", "gate_gain", "gate_offset")}
            ge = _mc_stats(rows, c, "gate_err_T0.25", corner, t)[0]
            out.append(f"| {c} | {corner} | {t:g} | {n} | {m:.4f} | {sg:.4f} | {sd['f_offset']:.4f} | "
                       f"{sd['gate_gain']:.4f} | {sd['gate_offset']:.4f} | {ge:.3f} |")
    if mismatch:
        out += mismatch_markdown(mismatch)
    return "\n".join(out) + "\n"


def mismatch_markdown(mismatch: Sequence[dict[str, Any]]) -> list[str]:
    """The device-pair Monte Carlo table and its Pelgrom fits (:mod:`hwbp.pdk.mismatch`)."""
    from hwbp.pdk.mismatch import pelgrom_fit

    r0 = mismatch[0]
    out = ["", f"## Device mismatch (`tb_hwbp_mismatch.cir`, {r0['corner']}_mm, {float(r0['temp_C']):g} C, "
           f"{int(r0['draws'])} draws x {int(r0['pairs']) // int(r0['draws'])} pairs per size)", "",
           "sigma: relative spread of one device (drain current, resistor current, capacitor admittance); "
           "A: the Pelgrom fit sigma = A / sqrt(W L) over the sizes.", "",
           "| device | W (um) | L (um) | W*L (um^2) | sigma | A / sqrt(W L) (fit) |", "|---|---|---|---|---|---|"]
    for dev in dict.fromkeys(r["device"] for r in mismatch):
        a, _ = pelgrom_fit(mismatch, dev)
        for r in (x for x in mismatch if x["device"] == dev):
            out.append(f"| {dev} | {float(r['W_um']):g} | {float(r['L_um']):g} | {float(r['area_um2']):.4g} | "
                       f"{float(r['sigma_device']):.4g} | {a / np.sqrt(float(r['area_um2'])):.4g} |")
    fits = [f"{dev}: A = {pelgrom_fit(mismatch, dev)[0]:.4g} um (rms relative residual "
            f"{pelgrom_fit(mismatch, dev)[1]:.2f})" for dev in dict.fromkeys(r["device"] for r in mismatch)]
    return out + ["", "; ".join(fits) + "."]


def measured(rows: Sequence[dict[str, Any]], curves: Sequence[BenchResult]) -> list[Measured]:
    """The testbench curves of every row in units (:class:`~hwbp.pdk.derive.Measured`)."""
    out = []
    for r, res in zip(rows, curves):
        spec = get_cell(r["cell"])
        params = dict(spec.params)
        out.append(Measured(res.a, res.T, f_curve(res, spec, params), gate_curves(res, params)))
    return out


def curves_npz(curves: Sequence[Measured]) -> bytes:
    """``curves.npz``: the measured curves of every row, in row order, so that the table,
    the hardware model and the figures can be rebuilt without ngspice: ``a`` (units,
    (na,)), ``T`` (units, (nT,)), ``f`` (units, (rows, na), at T = 0), ``gate`` (units,
    (rows, nT, na))."""
    buf = io.BytesIO()
    np.savez_compressed(buf, a=curves[0].a, T=curves[0].T, f=np.array([m.f for m in curves]),
                        gate=np.array([m.gate for m in curves]))
    return buf.getvalue()


def load_curves(path: Path) -> list[Measured]:
    """The rows' curves from a ``curves.npz``."""
    with np.load(path) as z:
        return [Measured(z["a"], z["T"], f, g) for f, g in zip(z["f"], z["gate"])]


def outputs(out_dir: Path, rows: Sequence[dict[str, Any]], curves: Sequence[Measured], command: str,
            mismatch: Sequence[dict[str, Any]] | None = None,
            blocks: Sequence[dict[str, Any]] | None = None) -> dict[Path, bytes]:
    """Every file of a characterization directory, by path (``blocks``: the synapse, node
    pair and loss port rows the hardware model takes, :func:`hwbp.pdk.derive.block_sections`)."""
    files: dict[Path, bytes] = {
        out_dir / "characterization.csv": csv_text(rows).encode(),
        out_dir / "characterization.md": markdown(rows, command, mismatch).encode(),
        out_dir / "hardware.toml": hardware_toml(rows, curves, mismatch, blocks=blocks).encode(),
        out_dir / "curves.npz": curves_npz(curves),
    }
    files.update({out_dir / k: v for k, v in figures(rows, curves).items()})
    return files


def write_all(out_dir: Path, rows: Sequence[dict[str, Any]], curves: Sequence[BenchResult],
              command: str, mismatch: Sequence[dict[str, Any]] | None = None,
              blocks: Sequence[dict[str, Any]] | None = None) -> list[Path]:
    """Write every output into ``out_dir`` at once (all or none).  The device mismatch rows
    (:mod:`hwbp.pdk.mismatch`) are written as ``mismatch.csv``; without them a
    ``mismatch.csv`` already there is folded into the table and the model.  Likewise the
    block cells' rows (``blocks``, else a ``blocks.csv`` already there) feed the model."""
    from hwbp.io import atomic_write_all
    from hwbp.pdk.blockchar import read_blocks_csv
    from hwbp.pdk.mismatch import mismatch_csv, read_mismatch_csv

    mm = mismatch
    if mm is None and (out_dir / "mismatch.csv").is_file():
        mm = read_mismatch_csv(out_dir / "mismatch.csv")
    if blocks is None and (out_dir / "blocks.csv").is_file():
        blocks = read_blocks_csv(out_dir / "blocks.csv")
    files = outputs(out_dir, rows, measured(rows, curves), command, mm, blocks)
    if mismatch is not None:
        files[out_dir / "mismatch.csv"] = mismatch_csv(mismatch).encode()
    return atomic_write_all(files, flag="-o")


def rows_from_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``characterization.csv`` (numbers as floats, ``mc_seed`` as int or "")."""
    rows = []
    with Path(path).open(newline="") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in r.items():
                if k in ("cell", "corner"):
                    row[k] = v
                elif k == "mc_seed":
                    row[k] = int(v) if v else ""
                else:
                    row[k] = float(v)
            rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwbp.pdk.report DIR``: rebuild ``characterization.md``, ``hardware.toml``
    and the figures of DIR from its ``characterization.csv``, ``curves.npz`` and (when
    there) ``mismatch.csv`` and ``blocks.csv``, without ngspice."""
    import sys

    from hwbp.io import atomic_write_all
    from hwbp.pdk.blockchar import read_blocks_csv
    from hwbp.pdk.mismatch import read_mismatch_csv

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m hwbp.pdk.report DIR", file=sys.stderr)
        return 2
    out = Path(args[0])
    rows = rows_from_csv(out / "characterization.csv")
    curves = load_curves(out / "curves.npz")
    mm = read_mismatch_csv(out / "mismatch.csv") if (out / "mismatch.csv").is_file() else None
    blocks = read_blocks_csv(out / "blocks.csv") if (out / "blocks.csv").is_file() else None
    first = (out / "characterization.md").read_text().splitlines()[2] if (out / "characterization.md").exists() else ""
    command = first[len("Produced by `"):first.index("`", len("Produced by `"))] \
        if first.startswith("Produced by `") else "hwbp characterize"
    files = outputs(out, rows, curves, command, mm, blocks)
    del files[out / "characterization.csv"]
    atomic_write_all(files, flag="DIR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
