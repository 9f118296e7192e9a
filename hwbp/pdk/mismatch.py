"""Device mismatch of the PDK for the hardware model: Pelgrom coefficients from Monte Carlo.

The testbench ``circuits/sky130/tb_hwbp_mismatch.cir`` holds matched pairs of an NMOS
transistor (the synapse device) at three gate areas, of the xhigh_po poly resistor and
of the MIM capacitor at two areas each.  Every Monte Carlo draw (``<corner>_mm``, one
``rndseed``) is one ngspice run.  Per device size the relative spread of one device is

    sigma_dev = std_draws((X_a - X_b) / ((X_a + X_b) / 2)) / sqrt(2)

(``X``: drain current, resistor current, capacitor admittance), and the Pelgrom
coefficient ``A`` (um) is the least-squares fit ``sigma_dev = A / sqrt(W L)`` through the
origin over the sizes.  The node's R and C spreads are those of the node-sized devices
(:data:`NODE_R_OHM`, :data:`NODE_C_F`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hwbp.errors import BackendError
from hwbp.pdk.sky130 import cells_dir, seeded, spiceinit

__all__ = ["DEVICES", "NODE_R_OHM", "NODE_C_F", "MismatchRun", "run_mismatch", "mismatch_rows", "pelgrom_fit",
           "mismatch_plan", "MISMATCH_COLUMNS"]

#: The node the derived model assumes: R (ohm) in xhigh_po, C (F) in MIM (the testbench's
#: first resistor and capacitor pair).
NODE_R_OHM, NODE_C_F = 100e3, 1e-12
#: (kind, W um, L um) of each pair, in the testbench's output order (op: mos, res; ac: cap).
DEVICES = (("nfet_01v8", 2.0, 1.0), ("nfet_01v8", 8.0, 1.0), ("nfet_01v8", 32.0, 1.0),
           ("res_xhigh_po", 0.35, 17.5), ("res_xhigh_po", 0.35, 4.375),
           ("cap_mim_m3_1", 22.36, 22.36), ("cap_mim_m3_1", 11.18, 11.18))
#: Independent pairs of each size in one run (the testbench's copies ``_1 .. _4``).
REPLICAS = 4
MISMATCH_COLUMNS = ("device", "corner", "temp_C", "W_um", "L_um", "area_um2", "draws", "pairs", "mean",
                    "sigma_device")


@dataclass(frozen=True)
class MismatchRun:
    """One Monte Carlo draw of the mismatch testbench (picklable: a Dask task)."""

    tb_text: str
    lib: str
    corner: str
    temp_c: float
    seed: int
    timeout_s: float = 600.0


def mismatch_plan(lib: str, corner: str = "tt", temp_c: float = 27.0, draws: int = 20,
                  seed0: int = 1) -> list[MismatchRun]:
    """``draws`` runs of the testbench on ``<corner>_mm`` at ``temp_c`` (deg C)."""
    text = (cells_dir() / "tb_hwbp_mismatch.cir").read_text(encoding="ascii")
    return [MismatchRun(text, lib, corner, float(temp_c), seed0 + k) for k in range(draws)]


def run_mismatch(run: MismatchRun) -> np.ndarray:
    """The pair values of one draw, shape (len(DEVICES), REPLICAS, 2): currents (A) and,
    for the capacitors, the admittance magnitude at 1 MHz (S)."""
    deck = (run.tb_text.replace("{SKY130_LIB}", run.lib).replace("{CORNER}", f"{run.corner}_mm")
            .replace("{TEMP_C}", f"{run.temp_c:g}"))
    where = f"mismatch testbench ({run.corner}_mm, seed {run.seed})"
    with tempfile.TemporaryDirectory(prefix="hwbp-mm-") as tmp:
        d = Path(tmp)
        (d / ".spiceinit").write_text(spiceinit(run.seed), encoding="ascii")
        (d / "tb.cir").write_text(seeded(deck, run.seed), encoding="ascii")
        try:
            proc = subprocess.run([os.environ.get("HWBP_NGSPICE", "ngspice"), "-b", "tb.cir"], cwd=d,
                                  capture_output=True, timeout=run.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"{where}: ngspice did not finish in {run.timeout_s:g} s") from None
        if proc.returncode != 0 or not (d / "op.txt").is_file() or not (d / "ac.txt").is_file():
            raise BackendError(f"{where}: ngspice failed (exit {proc.returncode})")
        op = np.loadtxt(d / "op.txt").ravel()[1::2]
        ac = np.loadtxt(d / "ac.txt").ravel()
    cap = np.hypot(ac[1::3], ac[2::3])
    return np.abs(np.concatenate([op, cap])).reshape(len(DEVICES), REPLICAS, 2)


def mismatch_rows(runs: Sequence[MismatchRun], values: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """One row per device size: the relative spread of one device over every pair of every draw."""
    v = np.array(values)  # (draws, devices, replicas, 2)
    rel = (v[..., 0] - v[..., 1]) / (0.5 * (v[..., 0] + v[..., 1]))
    rows = []
    for k, (kind, w, length) in enumerate(DEVICES):
        rows.append({"device": kind, "corner": runs[0].corner, "temp_C": runs[0].temp_c, "W_um": w, "L_um": length,
                     "area_um2": w * length, "draws": len(values), "pairs": int(rel[:, k].size),
                     "mean": float(v[:, k].mean()), "sigma_device": float(rel[:, k].ravel().std(ddof=1) / np.sqrt(2.0))})
    return rows


def pelgrom_fit(rows: Sequence[dict[str, Any]], device: str) -> tuple[float, float]:
    """``(A, rms relative residual)``: ``sigma_device = A / sqrt(W L)`` (A in um) fitted
    through the origin over the sizes of ``device``."""
    sel = [r for r in rows if r["device"] == device]
    s = np.array([1.0 / np.sqrt(float(r["area_um2"])) for r in sel])
    y = np.array([float(r["sigma_device"]) for r in sel])
    a = float(s @ y / (s @ s))
    return a, float(np.sqrt(np.mean(((a * s - y) / y) ** 2)))


def measure_mismatch(lib: str, corner: str = "tt", temp_c: float = 27.0, draws: int = 20,
                     scheduler: str | None = None, workers: int | None = None,
                     progress: bool = True) -> list[dict[str, Any]]:
    """Run ``draws`` Monte Carlo draws of the testbench as Dask tasks (a local cluster unless
    ``scheduler`` is an address) with a progress bar; the rows of :func:`mismatch_rows`."""
    from distributed import as_completed
    from tqdm import tqdm

    from hwbp.targets.spice.jobs import LOCAL_CLUSTER, pool

    if draws < 2:
        from hwbp.errors import ConfigError

        raise ConfigError(f"--mismatch needs at least 2 Monte Carlo draws for a spread, got {draws}")
    runs = mismatch_plan(lib, corner, temp_c, draws)
    n = workers or max(1, min(len(runs), os.cpu_count() or 1))
    with pool(n, scheduler or LOCAL_CLUSTER) as p:
        futures = p.client.map(run_mismatch, runs, pure=False)
        index = {f.key: k for k, f in enumerate(futures)}
        values: list[Any] = [None] * len(runs)
        try:
            with tqdm(total=len(runs), desc="mismatch draws", unit="run", disable=not progress) as bar:
                for fut in as_completed(futures):
                    values[index[fut.key]] = fut.result()
                    bar.update(1)
        finally:
            for fut in futures:
                fut.cancel()
    return mismatch_rows(runs, values)


def mismatch_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as ``mismatch.csv`` (columns :data:`MISMATCH_COLUMNS`)."""
    lines = [",".join(MISMATCH_COLUMNS)]
    for r in rows:
        lines.append(",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in MISMATCH_COLUMNS))
    return "\n".join(lines) + "\n"


def read_mismatch_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``mismatch.csv`` (numbers as floats)."""
    import csv

    with Path(path).open(newline="") as fh:
        return [{k: (v if k in ("device", "corner") else float(v)) for k, v in r.items()} for r in csv.DictReader(fh)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwbp.pdk.mismatch [--draws N] [--workers N] -o DIR``: write DIR/mismatch.csv
    (tt, 27 C); ``python -m hwbp.pdk.report DIR`` then folds it into the hardware model."""
    import argparse

    from hwbp.io import atomic_write_all
    from hwbp.pdk.sky130 import find_models

    ap = argparse.ArgumentParser(prog="python -m hwbp.pdk.mismatch")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args(argv)
    rows = measure_mismatch(str(find_models()), draws=args.draws, workers=args.workers)
    for p in atomic_write_all({Path(args.out) / "mismatch.csv": mismatch_csv(rows).encode()}, flag="-o"):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
