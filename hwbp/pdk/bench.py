"""Running one cell testbench in ngspice: the deck (the testbench next to the cell, its
placeholders filled), the ``.spiceinit`` that the PDK needs, and the curves read back.

A :class:`Bench` carries only text and numbers, so it pickles: it runs as a Dask task
(:func:`run_bench`) on any worker with ngspice and the same PDK path.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwbp.errors import BackendError
from hwbp.pdk.sky130 import VCM_V, seeded, spiceinit

__all__ = ["Bench", "BenchResult", "run_bench", "A_RANGE", "A_STEP", "T_MAX", "T_STEP"]

#: The DC sweep of the testbenches, in units: a in [-A_RANGE, A_RANGE] by A_STEP,
#: the tension T in [0, T_MAX] by T_STEP.
A_RANGE, A_STEP, T_MAX, T_STEP = 4.0, 0.1, 1.0, 0.25


@dataclass(frozen=True)
class Bench:
    """One testbench run.

    Attributes
    ----------
    cell_text, tb_text : str
        The cell file and its testbench (with placeholders).
    cell_file : str
        File name the testbench ``.include``s.
    lib : str
        Path of the PDK's ngspice library.
    corner : str
        Model section (``tt``, ``ss_mm``, ...).
    temp_c : float
        Temperature (deg C).
    params : tuple of (str, float)
        Cell parameters.
    seed : int, optional
        Monte Carlo draw (``rndseed``) of a ``*_mm`` corner.
    timeout_s : float
        Wall-clock limit of the ngspice process (s).
    """

    cell_text: str
    tb_text: str
    cell_file: str
    lib: str
    corner: str
    temp_c: float
    params: tuple[tuple[str, float], ...]
    seed: int | None = None
    timeout_s: float = 600.0

    @property
    def vu(self) -> float:
        """Volts per unit (the ``vu`` parameter)."""
        return dict(self.params)["vu"]

    def deck(self) -> str:
        """The testbench with its placeholders filled."""
        vu = self.vu
        return fill_deck(self, {
            "{VU}": f"{vu:.12g}", "{A_LO}": f"{VCM_V - A_RANGE * vu:.12g}",
            "{A_HI}": f"{VCM_V + A_RANGE * vu + 1e-9:.12g}", "{A_STEP}": f"{A_STEP * vu:.12g}",
            "{T_HI}": f"{VCM_V + T_MAX * vu + 1e-9:.12g}", "{T_STEP}": f"{T_STEP * vu:.12g}",
        })


@dataclass(frozen=True)
class BenchResult:
    """Curves of one run: ``a`` (units), ``T`` (units), ``i_fd`` (A, shape (nT, na)), ``v_gate``
    (V, same shape), the supply currents at rest ``i_vdd_A``, ``i_vcm_A`` (A, drawn from the
    source), and the AC response of the fd current ``freq_Hz``, ``i_ac`` (A/V)."""

    a: np.ndarray
    T: np.ndarray
    i_fd: np.ndarray
    v_gate: np.ndarray
    i_vdd_A: float
    i_vcm_A: float
    freq_Hz: np.ndarray
    i_ac: np.ndarray


def _table(path: Path) -> np.ndarray:
    return np.atleast_2d(np.loadtxt(path))


def fill_deck(bench: Any, extra: dict[str, str]) -> str:
    """A testbench's text (``bench.tb_text``) with its placeholders filled: the model
    library, vcm, corner, temperature and the cell parameters of ``bench``, then ``extra``."""
    fill = {"{SKY130_LIB}": bench.lib, "{VCM}": f"{VCM_V:.12g}", "{CORNER}": bench.corner,
            "{TEMP_C}": f"{bench.temp_c:g}", "{PARAMS}": " ".join(f"{k}={v:.12g}" for k, v in bench.params), **extra}
    text = bench.tb_text
    for k, v in fill.items():
        text = text.replace(k, v)
    return text


def run_testbench(bench: Any, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Run a testbench (``bench.cell_file``/``cell_text``, ``deck()``, ``seed``, ``corner``,
    ``temp_c``, ``timeout_s``) in a fresh directory with the PDK's ``.spiceinit`` and read
    the ``outputs`` tables it writes (``wrdata`` files), by file name; a one-line
    :class:`BackendError` when ngspice fails, times out or writes one of them not."""
    where = f"testbench {bench.cell_file} ({bench.corner}, {bench.temp_c:g} C)"
    with tempfile.TemporaryDirectory(prefix="hwbp-pdk-") as tmp:
        d = Path(tmp)
        (d / ".spiceinit").write_text(spiceinit(bench.seed), encoding="ascii")
        (d / bench.cell_file).write_text(bench.cell_text, encoding="ascii")
        (d / "tb.cir").write_text(seeded(bench.deck(), bench.seed), encoding="ascii")
        try:
            proc = subprocess.run([os.environ.get("HWBP_NGSPICE", "ngspice"), "-b", "tb.cir"], cwd=d,
                                  capture_output=True, timeout=bench.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"{where}: ngspice did not finish in {bench.timeout_s:g} s") from None
        except OSError as exc:
            raise BackendError(f"{where}: cannot run ngspice ({exc.strerror})") from None
        missing = [n for n in outputs if not (d / n).is_file()]
        if proc.returncode != 0 or missing:
            text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
            why = [ln for ln in text.splitlines() if "rror" in ln or "converge" in ln.lower()][:1]
            raise BackendError(f"{where}: ngspice failed (exit {proc.returncode}"
                               f"{', no ' + ', '.join(missing) if missing else ''}"
                               f"{': ' + why[0].strip()[:160] if why else ''})")
        return {n: _table(d / n) for n in outputs}


def run_bench(bench: Bench) -> BenchResult:
    """Run ``bench`` in a fresh directory and read its curves; :class:`BackendError` (one
    line) when ngspice fails, times out or writes no results."""
    where = f"testbench {bench.cell_file} ({bench.corner}, {bench.temp_c:g} C)"
    t = run_testbench(bench, ("dc.txt", "op.txt", "ac.txt"))
    dc, op, ac = t["dc.txt"], t["op.txt"], t["ac.txt"]
    vu = bench.vu
    na = int(round(2 * A_RANGE / A_STEP)) + 1
    nt = int(round(T_MAX / T_STEP)) + 1
    if dc.shape[0] != na * nt:
        raise BackendError(f"{where}: expected {na * nt} DC points, got {dc.shape[0]}")
    a = (dc[:na, 0] - VCM_V) / vu
    # wrdata writes (sweep, value) pairs per vector: i(VFD) in column 1, v(gate) in column 3
    i_fd = dc[:, 1].reshape(nt, na)
    v_gate = dc[:, 3].reshape(nt, na)
    T = np.arange(nt) * T_STEP
    # an AC vector is complex: (freq, re, im)
    i_ac = ac[:, 1] + 1j * ac[:, 2] if ac.shape[1] >= 3 else ac[:, 1].astype(complex)
    return BenchResult(a=a, T=T, i_fd=i_fd, v_gate=v_gate, i_vdd_A=float(-op[0, 1]), i_vcm_A=float(-op[0, 3]),
                       freq_Hz=ac[:, 0], i_ac=i_ac)
