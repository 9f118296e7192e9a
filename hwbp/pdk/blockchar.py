"""``hwbp characterize --cells synapse,node,loss``: the synapse, node pair and loss port
testbenches over corners, temperatures and Monte Carlo draws (Dask tasks, progress bar),
written as ``blocks.csv`` (one row per run, :data:`~hwbp.pdk.blocks.BLOCK_COLUMNS`) and
``blocks.md`` (nominal table and Monte Carlo spreads: node R/C spread, synapse
forward/backward mismatch, loss-port offset)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwbp.pdk.blocks import BLOCK_COLUMNS, BlockBench, block_bench, measure_block, run_block
from hwbp.pdk.cells import get_block
from hwbp.pdk.sky130 import find_models

__all__ = ["plan_blocks", "run_blocks", "table_csv", "blocks_csv", "read_blocks_csv", "blocks_markdown", "write_blocks",
           "BLOCK_FILES"]

#: What the block characterization writes into ``-o DIR``.
BLOCK_FILES = ("blocks.csv", "blocks.md")


def plan_blocks(names: Sequence[str], corners: Sequence[str], temps_c: Sequence[float], mc: int,
                pdk_root: str | None = None, mc_seed0: int = 1) -> list[tuple[dict[str, Any], BlockBench]]:
    """(row head, bench) per block, corner, temperature and draw (nominal, then ``mc``
    Monte Carlo draws of ``<corner>_mm``, seeds ``mc_seed0 ...``)."""
    lib = str(find_models(pdk_root))
    out = []
    for name in names:
        spec = get_block(name)
        for corner in corners:
            for t in temps_c:
                for section, seed in [(corner, None)] + [(f"{corner}_mm", mc_seed0 + k) for k in range(mc)]:
                    head = {"cell": name, "corner": corner, "temp_C": float(t), "mc_seed": "" if seed is None else seed,
                            "vu_V": spec.params["vu"]}
                    out.append((head, block_bench(spec, lib, section, float(t), seed)))
    return out


def run_blocks(planned: Sequence[tuple[dict[str, Any], BlockBench]], scheduler: str | None = None,
               workers: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run the planned testbenches as Dask tasks (a local cluster unless ``scheduler``) and
    measure them; rows in plan order."""
    import os

    from tqdm import tqdm

    from hwbp.targets.spice.jobs import LOCAL_CLUSTER, pool

    n = workers or max(1, min(len(planned), os.cpu_count() or 1))
    tables: list[Any] = [None] * len(planned)
    with pool(n, scheduler or LOCAL_CLUSTER) as p:
        from distributed import as_completed

        futures = p.client.map(run_block, [b for _, b in planned], pure=False)
        index = {f.key: k for k, f in enumerate(futures)}
        try:
            with tqdm(total=len(planned), desc="ngspice block testbenches", unit="run", disable=not progress) as bar:
                for fut in as_completed(futures):
                    tables[index[fut.key]] = fut.result()
                    bar.update(1)
        finally:
            for fut in futures:
                fut.cancel()
    rows = []
    for (head, bench), t in zip(planned, tables):
        row = {c: "" for c in BLOCK_COLUMNS}
        row.update(head)
        row.update(measure_block(head["cell"], t, dict(bench.params)))
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def table_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, strict: bool = True) -> str:
    """The rows as CSV with ``columns`` (floats to 6 significant digits); a column a row
    lacks is an error (``strict``) or an empty cell."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r[c] if strict else r.get(c, "")) for c in columns])
    return buf.getvalue()


def blocks_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV (columns :data:`~hwbp.pdk.blocks.BLOCK_COLUMNS`; a column a cell
    does not measure is empty)."""
    return table_csv(rows, BLOCK_COLUMNS, strict=False)


def read_blocks_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``blocks.csv`` (numbers as floats, empty cells and ``mc_seed`` of a
    nominal row as "", ``mc_seed`` of a draw as int); columns a file lacks read as ""."""
    rows = []
    with Path(path).open(newline="") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = {c: "" for c in BLOCK_COLUMNS}
            for k, v in r.items():
                if k in ("cell", "corner") or v == "":
                    row[k] = v
                elif k == "mc_seed":
                    row[k] = int(v)
                else:
                    row[k] = float(v)
            rows.append(row)
    return rows


_SHOW = {"synapse": [("iu (A)", "syn_iu_A", ".4g"), ("gain lin. err", "syn_gain_lin_err", ".4f"),
                     ("fwd/bwd mismatch", "syn_fb_mismatch", ".2e"), ("offset fwd (w*x)", "syn_offset_fwd", ".4f"),
                     ("offset bwd (w*x)", "syn_offset_bwd", ".4f"), ("x lin. err, abs(x) <= 3", "syn_x_lin_err", ".4f"),
                     ("t 10-90 fwd (s)", "syn_rise_fwd_s", ".3g"), ("t 10-90 bwd (s)", "syn_rise_bwd_s", ".3g"),
                     ("t 1 % fwd (s)", "syn_settle_fwd_s", ".3g"), ("t 1 % bwd (s)", "syn_settle_bwd_s", ".3g"),
                     ("tau (s)", "tau_s", ".3g")],
         "node": [("R (ohm)", "node_R_ohm", ".5g"), ("R+/R- - 1", "node_R_mismatch", ".2e"), ("C (F)", "node_C_F", ".4g"),
                  ("tau (s)", "node_tau_s", ".4g"), ("tension offset", "node_tension_offset", ".2e"),
                  ("R voltco (1/V)", "node_R_voltco_per_V", ".2e")],
         "loss": [("beta", "loss_beta", ".4f"), ("beta err", "loss_beta_err", "+.4f"), ("offset (x-y)", "loss_offset", ".2e"),
                  ("lin. err, abs(x - y) <= 2", "loss_lin_err", ".4f"), ("gain change y=-1..1", "loss_cm_gain_err", ".4f"),
                  ("t 10-90 (s)", "loss_rise_s", ".3g"), ("t 1 % (s)", "loss_settle_s", ".3g"),
                  ("tau (s)", "tau_s", ".3g")]}
_MC = {"synapse": ["syn_iu_A", "syn_gain_sd", "syn_fb_rms", "syn_fb_mismatch", "syn_offset_fwd", "syn_offset_bwd",
                   "syn_offset_fwd_rms", "syn_offset_bwd_rms", "tau_s"],
       "node": ["node_R_ohm", "node_R_mismatch", "node_C_F", "node_tau_s", "node_tension_offset"],
       "loss": ["loss_beta", "loss_offset", "tau_s"]}


def blocks_markdown(rows: Sequence[dict[str, Any]], command: str) -> str:
    """``blocks.md``: per block the nominal rows, then mean and standard deviation over the
    Monte Carlo draws of each corner and temperature."""
    out = ["# SKY130 synapse, node pair and loss port", "", f"Produced by `{command}`.", "",
           "Units: synapse offsets in units of w*x at the full-scale weight, the node's tension offset "
           "in units, the loss port's offset in units of x - y.  Power and supply current per instance.  "
           "Step responses to a one-unit input step (x; the synapse's backward: e), outputs held at vcm: "
           "10-90 % rise (t 10-90) and settling to 1 % of the step (t 1 %), the synapse's the slowest of its "
           "instances with w != 0; tau: the synapse's and the loss port's t 10-90 / ln 9 (a single pole's), "
           "the node's fitted to its step response.", ""]
    for cell in dict.fromkeys(r["cell"] for r in rows):
        show = _SHOW[cell]
        head = ["corner", "T (C)"] + [h for h, _, _ in show] + ["I supply (A)", "P (W)", "area (um^2)"]
        out += [f"## {cell}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            if r["cell"] == cell and r["mc_seed"] == "":
                vals = [r["corner"], f"{float(r['temp_C']):g}"] + [format(r[k], f) for _, k, f in show]
                vals += [f"{r['supply_current_A']:.3g}", f"{r['power_W']:.3g}", f"{r['area_um2']:.0f}"]
                out.append("| " + " | ".join(vals) + " |")
        groups = list(dict.fromkeys((r["corner"], float(r["temp_C"])) for r in rows
                                    if r["cell"] == cell and r["mc_seed"] != ""))
        if groups:
            keys = _MC[cell]
            out += ["", "Monte Carlo (`<corner>_mm`): mean / standard deviation", "",
                    "| corner | T (C) | draws | " + " | ".join(keys) + " |", "|" + "---|" * (3 + len(keys))]
            for corner, t in groups:
                sel = [r for r in rows if r["cell"] == cell and r["mc_seed"] != "" and r["corner"] == corner
                       and float(r["temp_C"]) == t]
                stats = []
                for k in keys:
                    v = np.array([float(r[k]) for r in sel])
                    sd = float(v.std(ddof=1)) if v.size > 1 else float("nan")
                    stats.append(f"{v.mean():.4g} / {sd:.2g}")
                out.append(f"| {corner} | {t:g} | {len(sel)} | " + " | ".join(stats) + " |")
        out.append("")
    return "\n".join(out)


def write_blocks(out_dir: Path, rows: Sequence[dict[str, Any]], command: str) -> list[Path]:
    """Write ``blocks.csv`` and ``blocks.md`` into ``out_dir`` at once."""
    from hwbp.io import atomic_write_all

    return atomic_write_all({out_dir / "blocks.csv": blocks_csv(rows).encode(),
                             out_dir / "blocks.md": blocks_markdown(rows, command).encode()}, flag="-o")
