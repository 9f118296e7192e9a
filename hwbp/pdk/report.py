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
from hwbp.pdk.cells import get_cell
from hwbp.pdk.measure import GATE_T, f_curve, gate_curves

__all__ = ["COLUMNS", "csv_text", "markdown", "hardware_toml", "figures", "write_all", "rows_from_csv"]

COLUMNS = (["cell", "corner", "temp_C", "mc_seed", "vu_V", "unit_current_A", "f_gain", "f_offset", "f_shape_rms",
            "f_err_rms", "gate_gain", "gate_offset", "gate_zero_T"] + [f"gate_err_T{t:g}" for t in GATE_T]
           + ["gate_vs_fdiff", "bandwidth_Hz", "tau_s", "supply_current_A", "power_W", "area_um2", "area_mos_um2",
              "area_res_um2"])


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV (columns :data:`COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_fmt(r[c]) for c in COLUMNS])
    return buf.getvalue()


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


def hardware_toml(rows: Sequence[dict[str, Any]], cell: str | None = None) -> str:
    """A hardware model (:mod:`hwbp.hardware`) from the measurements of ``cell`` (default:
    tanh when measured, else the first cell): ``unit_V`` = vu; ``[cells]`` gain and offset of
    f and of the gate (``f' ~ gate/T``) from the nominal tt, 27 C row (else the first nominal
    row), their spreads from the Monte Carlo rows of that cell (0 without ``--mc``)."""
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    cell = cell or ("tanh" if "tanh" in cells else cells[0])
    nom = [r for r in _nominal(rows) if r["cell"] == cell]
    ref = next((r for r in nom if r["corner"] == "tt" and float(r["temp_C"]) == 27.0), nom[0])
    vu = float(ref["vu_V"])
    where = (ref["corner"], ref["temp_C"])
    s = {k: _mc_stats(rows, cell, k, *where)[1] for k in ("f_gain", "f_offset", "gate_gain", "gate_offset")}
    n_mc = _mc_stats(rows, cell, "f_gain", *where)[2]
    lines = [
        f"# hardware model derived by `hwbp characterize` from the {cell} cell (circuits/sky130/hwbp_act_{cell}.cir)",
        f"# nominal values: corner {ref['corner']}, {float(ref['temp_C']):g} C; spreads: {n_mc} Monte Carlo draws "
        f"({ref['corner']}_mm, {float(ref['temp_C']):g} C)",
        "# f~(a) = (1 + f_gain) f(a) + f_offset_V/unit_V; f'~(a) = (1 + df_gain) f'(a) + df_offset (gate / T).",
        "# Not represented by this model (see characterization.md): the shape error f_shape_rms, the gate",
        "# offset at zero tension gate_zero_T, and that the gate tracks the realized f.",
        f"unit_V = {vu!r}",
        "",
        "[cells]",
        f"f_gain = {ref['f_gain'] - 1.0!r}",
        f"f_gain_sigma = {s['f_gain']!r}",
        f"f_offset_V = {ref['f_offset'] * vu!r}",
        f"f_offset_sigma_V = {s['f_offset'] * vu!r}",
        f"df_gain = {ref['gate_gain'] - 1.0!r}",
        f"df_gain_sigma = {s['gate_gain']!r}",
        f"df_offset = {ref['gate_offset']!r}",
        f"df_offset_sigma = {s['gate_offset']!r}",
    ]
    return "\n".join(lines) + "\n"


def markdown(rows: Sequence[dict[str, Any]], command: str) -> str:
    """``characterization.md``: the nominal table, the Monte Carlo spreads, and the command."""
    head = ["cell", "corner", "T (C)", "f gain", "f offset", "f shape rms", "gate gain", "gate(T=0) rms",
            "gate err T=0.25", "gate err T=1", "gate vs f(a+T/2)-f(a-T/2)", "tau (s)", "P (W)", "area (um^2)"]
    out = ["# SKY130 cell characterization", "", f"Produced by `{command}`.", "",
           "f in units of the cell's unit current, a and T in units of vu (V); gate errors are relative rms "
           "errors against the derivative of the *measured* f times T (|a| < 3.5).  Figures: `transfer.png` "
           "(f; nominal corners in colour, Monte Carlo draws grey, the ideal dashed) and `gate.png` (gate minus "
           "f'_measured(a) T at T = 0.5).", "",
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
    return "\n".join(out) + "\n"


def figures(rows: Sequence[dict[str, Any]], curves: Sequence[BenchResult]) -> dict[str, bytes]:
    """``transfer.png`` (f per cell: every nominal corner/temperature and the ideal; Monte
    Carlo draws thin) and ``gate.png`` (gate error against f_measured'*T, nominal runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(dict.fromkeys(r["cell"] for r in rows))
    out = {}
    for name in ("transfer", "gate"):
        fig, axes = plt.subplots(1, len(cells), figsize=(4.6 * len(cells), 3.8), squeeze=False)
        for ax, cell in zip(axes[0], cells):
            spec = get_cell(cell)
            for r, res in zip(rows, curves):
                if r["cell"] != cell:
                    continue
                params = dict(spec.params)
                f = f_curve(res, spec, params)
                mc = r["mc_seed"] != ""
                label = None if mc else f"{r['corner']}, {r['temp_C']:g} C"
                style = dict(lw=0.6, alpha=0.5, color="0.5") if mc else dict(lw=1.4)
                if name == "transfer":
                    ax.plot(res.a, f, label=label, **style)
                else:
                    k = int(np.argmin(np.abs(res.T - 0.5)))
                    err = gate_curves(res, params)[k] - np.gradient(f, res.a) * res.T[k]
                    ax.plot(res.a, err, label=label, **style)
            if name == "transfer":
                ax.plot(res.a, spec.ideal(res.a), "k--", lw=1.0, label="ideal")
                ax.set_ylabel("f (units of the unit current)")
            else:
                ax.set_ylabel("gate - f'_measured(a) T at T = 0.5 (units)")
            ax.set_xlabel("pre-activation a (units of vu)")
            ax.set_title(f"{cell} (SKY130)")
            ax.ticklabel_format(useOffset=False)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        out[f"{name}.png"] = buf.getvalue()
    return out


def write_all(out_dir: Path, rows: Sequence[dict[str, Any]], curves: Sequence[BenchResult],
              command: str) -> list[Path]:
    """Write every output into ``out_dir`` at once (all or none)."""
    from hwbp.io import atomic_write_all

    files: dict[Path, bytes] = {
        out_dir / "characterization.csv": csv_text(rows).encode(),
        out_dir / "characterization.md": markdown(rows, command).encode(),
        out_dir / "hardware.toml": hardware_toml(rows).encode(),
    }
    files[out_dir / "curves.npz"] = curves_npz(rows, curves)
    files.update({out_dir / k: v for k, v in figures(rows, curves).items()})
    return atomic_write_all(files, flag="-o")


def curves_npz(rows: Sequence[dict[str, Any]], curves: Sequence[BenchResult]) -> bytes:
    """The measured curves of every row (``curves.npz``), so that the table, the hardware
    model and the figures can be rebuilt without ngspice: ``a`` (units, shape (na,)),
    ``T`` (units, (nT,)), ``f`` (units, (rows, na), at T = 0), ``gate`` (units, (rows, nT, na))."""
    fs, gs = [], []
    for r, res in zip(rows, curves):
        spec = get_cell(r["cell"])
        params = dict(spec.params)
        fs.append(f_curve(res, spec, params))
        gs.append(gate_curves(res, params))
    buf = io.BytesIO()
    np.savez_compressed(buf, a=curves[0].a, T=curves[0].T, f=np.array(fs), gate=np.array(gs))
    return buf.getvalue()


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
    """``python -m hwbp.pdk.report DIR``: rewrite ``characterization.md`` and ``hardware.toml``
    of DIR from its ``characterization.csv`` (the figures need the curves: rerun
    ``hwbp characterize`` for those)."""
    import sys

    from hwbp.io import atomic_write_all

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m hwbp.pdk.report DIR", file=sys.stderr)
        return 2
    out = Path(args[0])
    rows = rows_from_csv(out / "characterization.csv")
    first = (out / "characterization.md").read_text().splitlines()[2] if (out / "characterization.md").exists() else ""
    command = first[len("Produced by `"):-2] if first.startswith("Produced by `") else "hwbp characterize"
    atomic_write_all({out / "characterization.md": markdown(rows, command).encode(),
                      out / "hardware.toml": hardware_toml(rows).encode()}, flag="DIR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
