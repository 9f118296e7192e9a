"""``hwbp characterize``: every cell's testbench over corners, temperatures and Monte Carlo
draws, as ngspice runs on Dask (a local cluster unless a scheduler is named), measured
into rows (:func:`hwbp.pdk.measure.measure`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hwbp.errors import ConfigError
from hwbp.pdk.bench import Bench, BenchResult, run_bench
from hwbp.pdk.cells import cell_area_um2, get_cell
from hwbp.pdk.measure import measure
from hwbp.pdk.sky130 import CORNERS, find_models

__all__ = ["Run", "plan", "run_all", "parse_list"]


@dataclass(frozen=True)
class Run:
    """One planned testbench run: the cell, corner, temperature (deg C) and Monte Carlo
    seed (None: the corner's nominal models), and its :class:`Bench`."""

    cell: str
    corner: str
    temp_c: float
    seed: int | None
    bench: Bench


def parse_list(text: str, flag: str, valid: Sequence[str] | None = None, number: bool = False) -> list:
    """A comma-separated flag value as a list (numbers, or names checked against ``valid``)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{flag}: empty list")
    if number:
        try:
            return [float(t) for t in items]
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: not a comma-separated list of numbers") from None
    bad = [t for t in items if valid is not None and t not in valid]
    if bad:
        raise ConfigError(f"{flag}: unknown {', '.join(bad)}; valid: {', '.join(valid or ())}")
    return items


def plan(cells: Sequence[str], corners: Sequence[str], temps_c: Sequence[float], mc: int,
         pdk_root: str | None = None, mc_seed0: int = 1, mc_corners: Sequence[str] | None = None,
         mc_temps_c: Sequence[float] | None = None, ib_A: float | None = None,
         params: Mapping[str, float] | None = None) -> list[Run]:
    """The runs: per cell, corner and temperature the nominal models and ``mc`` Monte Carlo
    draws (``<corner>_mm``, seeds ``mc_seed0 ...``); the draws only on ``mc_corners`` and
    at ``mc_temps_c`` when given (default: every corner and temperature); ``ib_A``: the
    cells' bias current (A; default each cell's, :meth:`~hwbp.pdk.cells.CellSpec.at_bias`);
    ``params``: other cell parameters (:meth:`~hwbp.pdk.cells.CellSpec.with_params`)."""
    for c in mc_corners or ():
        if c not in corners:
            raise ConfigError(f"--mc-corners: {c!r} is not among --corners {','.join(corners)}")
    for t in mc_temps_c or ():
        if float(t) not in [float(x) for x in temps_c]:
            raise ConfigError(f"--mc-temps: {t:g} C is not among --temps")
    for c in corners:
        if c not in CORNERS:
            raise ConfigError(f"--corners: unknown corner {c!r}; valid: {', '.join(CORNERS)}")
    for t in temps_c:
        if not -55.0 <= t <= 150.0:
            raise ConfigError(f"--temps: {t:g} C is outside the models' range -55..150 C")
    if mc < 0:
        raise ConfigError(f"--mc must be >= 0, got {mc}")
    lib = str(find_models(pdk_root))
    runs = []
    for name in cells:
        spec = get_cell(name).with_params(params).at_bias(ib_A)
        cell_text, tb_text = spec.path.read_text(encoding="ascii"), spec.testbench.read_text(encoding="ascii")
        values = tuple(spec.params.items())
        for corner in corners:
            for t in temps_c:
                n_mc = mc if ((mc_corners is None or corner in mc_corners)
                              and (mc_temps_c is None or float(t) in [float(x) for x in mc_temps_c])) else 0
                draws = [(corner, None)] + [(f"{corner}_mm", mc_seed0 + k) for k in range(n_mc)]
                for section, seed in draws:
                    runs.append(Run(name, corner, float(t), seed,
                                    Bench(cell_text, tb_text, spec.path.name, lib, section, float(t), values, seed)))
    return runs


def run_all(runs: Sequence[Run], scheduler: str | None = None, workers: int | None = None,
            progress: bool = True) -> list[tuple[dict[str, Any], BenchResult]]:
    """Run every testbench as a Dask task (``scheduler``: an address, default a local
    cluster of ``workers`` threads) with a progress bar; returns (row, curves) in plan order."""
    import os

    from tqdm import tqdm

    from hwbp.targets.spice.jobs import LOCAL_CLUSTER, pool

    n = workers or max(1, min(len(runs), os.cpu_count() or 1))
    with pool(n, scheduler or LOCAL_CLUSTER) as p:
        from distributed import as_completed

        futures = p.client.map(run_bench, [r.bench for r in runs], pure=False)
        index = {f.key: k for k, f in enumerate(futures)}
        results: list[BenchResult | None] = [None] * len(runs)
        try:
            with tqdm(total=len(runs), desc="ngspice testbenches", unit="run", disable=not progress) as bar:
                for fut in as_completed(futures):
                    results[index[fut.key]] = fut.result()
                    bar.update(1)
        finally:
            for fut in futures:
                fut.cancel()
    out = []
    for run, res in zip(runs, results):
        spec = get_cell(run.cell)
        params = dict(run.bench.params)
        area = cell_area_um2(spec.path, spec.subckt, params)
        row: dict[str, Any] = {"cell": run.cell, "corner": run.corner, "temp_C": run.temp_c,
                               "mc_seed": "" if run.seed is None else run.seed, "vu_V": params["vu"],
                               "unit_current_A": spec.unit_current(params)}
        row.update(measure(res, spec, params))
        row.update(area_um2=area["total"], area_mos_um2=area["mos"], area_res_um2=area["res"])
        out.append((row, res))
    return out
