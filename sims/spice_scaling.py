"""ngspice wall time against synapse count, per realization and option set.

Tanh MLPs W-W-W-10 (input width W, depth 3, CE loss, one sample), W growing until a
run takes more than --limit seconds (that series stops there).  For each option set
(``differential``; ``pair`` with the tuned ``pivrel=1e-6``; ``pair`` with ngspice's
default ``pivrel=1e-3``) and each analysis (``.op``; ``.tran`` for 12 L tau from a
random state) the backend's run (netlist writing, ngspice, reading results) is timed,
as wall time and as CPU time (this process and the ngspice it ran: on a shared machine
the CPU time is what the work costs); a series stops after the first run over --limit
CPU seconds (or 10x that wall time).  The power law ``cpu ~ synapses^k`` is fitted over
the points above 0.2 s.  The
``.op`` tensions of the realizations are compared where both ran.  Writes
``sims/spice_scaling.md`` (table, fits, machine conditions) and ``sims/spice_scaling.png``.

Usage::

    .venv/bin/python sims/spice_scaling.py [--limit 60] [--widths 16,32,64,...]
    .venv/bin/python sims/spice_scaling.py --series op:0   # one series (run several at once)
    .venv/bin/python sims/spice_scaling.py --report        # table and figure from the data

Raw points (CPU and wall time, ``.op`` tensions) are kept in
``sims/spice_scaling_data/<analysis>-<set>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbp.errors import BackendError  # noqa: E402
from outdir import add_out_arg, output_dir  # noqa: E402
from hwbp.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from hwbp.verify.plot import figure_png  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.targets.spice.backend import SpiceBackend  # noqa: E402
from hwbp.types import Batch  # noqa: E402

HERE = Path(__file__).resolve().parent
WIDTHS = (16, 32, 64, 96, 128, 192, 256, 384, 512)
#: Option set label -> backend options.
SETS = {
    "differential": {"realization": "differential"},
    "pair, pivrel 1e-6 (tuned)": {"realization": "pair"},
    "pair, pivrel 1e-3 (ngspice default)": {"realization": "pair", "pivrel": 1e-3},
}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _fit(n: np.ndarray, t: np.ndarray) -> float:
    keep = t > 0.2
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(n[keep]), np.log(t[keep]), 1)[0])


DATA = HERE / "spice_scaling_data"


def measure(analysis: str, label: str, widths: list[int], limit: float, data: Path = DATA) -> None:
    """Run one series, rewriting ``spice_scaling_data/<analysis>-<set>.json`` after each
    point (so a long run that is stopped keeps what it measured)."""
    be = SpiceBackend()
    opts = SETS[label]
    data.mkdir(parents=True, exist_ok=True)
    out = data / f"{analysis}-{list(SETS).index(label)}.json"
    rec = {"analysis": analysis, "label": label, "limit_cpu_s": limit, "points": [],
           "load_start": os.getloadavg()[0]}
    for w in widths:
        g = random_mlp((w, w, w, 10), activation="tanh", seed=0).with_loss("ce")
        system = lower(g)
        rng = np.random.default_rng(0)
        batch = Batch({"x": rng.standard_normal((1, w))}, np.eye(10)[[3]])
        art = be.compile(system, be.options({"analysis": analysis, "timeout_s": 10 * limit, **opts}))
        n = art.data.synapse_count
        t0, c0 = time.perf_counter(), _cpu()
        try:
            res = be.run(art, batch, initial="random" if analysis == "tran" else None)
        except BackendError as exc:
            print(f"{analysis} {label} W={w} ({n:,} synapses): stopped ({str(exc)[:80]})", flush=True)
            rec["points"].append({"w": w, "synapses": n, "cpu_s": None, "wall_s": time.perf_counter() - t0})
            break
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        tension = np.concatenate([res.state.tension[k].ravel() for k in sorted(res.state.tension)])
        rec["points"].append({"w": w, "synapses": n, "cpu_s": cpu, "wall_s": wall, "tension": tension.tolist()})
        rec["load_end"] = os.getloadavg()[0]
        atomic_write_text(out, json.dumps(rec))
        print(f"{analysis} {label} W={w} ({n:,} synapses): {cpu:.2f} s CPU, {wall:.2f} s wall", flush=True)
        if cpu > limit:
            break
    rec["load_end"] = os.getloadavg()[0]
    rec["finished"] = True
    atomic_write_text(out, json.dumps(rec))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=float, default=60.0, help="largest CPU time of a run per series (s)")
    p.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="comma-separated widths W")
    p.add_argument("--series", default=None, help="run one series only: <op|tran>:<set index 0-2>")
    p.add_argument("--report", action="store_true", help="only write the table and figure from the data")
    add_out_arg(p)
    args = p.parse_args(argv)
    # --report only redraws the data and --series measures one whole series: they write
    # where a full run writes; other widths or another CPU limit are reduced runs
    out = output_dir(p, args, HERE, "spice_scaling", neutral=("report", "series"))
    data = DATA if out == HERE else out / DATA.name
    widths = [int(w) for w in args.widths.split(",")]
    if args.series:
        analysis, k = args.series.split(":")
        measure(analysis, list(SETS)[int(k)], widths, args.limit, data)
        return 0
    if not args.report:
        for analysis in ("op", "tran"):
            for label in SETS:
                measure(analysis, label, widths, args.limit, data)
    recs = [json.loads(f.read_text()) for f in sorted(data.glob("*.json"))]
    rows: dict[tuple[str, str], list[tuple[int, float]]] = {}
    walls: dict[tuple[str, str, int], float] = {}
    tensions: dict[tuple[str, int], np.ndarray] = {}
    for r in sorted(recs, key=lambda r: (r["analysis"] != "op", list(SETS).index(r["label"]))):
        key = (r["label"], r["analysis"])
        rows[key] = [(pt["synapses"], float("inf") if pt["cpu_s"] is None else pt["cpu_s"]) for pt in r["points"]]
        for pt in r["points"]:
            walls[(r["label"], r["analysis"], pt["synapses"])] = pt["wall_s"]
            if r["analysis"] == "op" and "tension" in pt:
                tensions[(r["label"], pt["w"])] = np.array(pt["tension"])
    load0 = (min(r["load_start"] for r in recs), max(r["load_start"] for r in recs))
    load1 = (min(r.get("load_end", 0) for r in recs), max(r.get("load_end", 0) for r in recs))
    from hwbp.targets.spice.ngspice import BatchRunner

    info = BatchRunner().info()
    diffs = []
    for w in widths:
        a, b = tensions.get(("differential", w)), tensions.get(("pair, pivrel 1e-6 (tuned)", w))
        if a is not None and b is not None:
            diffs.append((w, float(np.max(np.abs(a - b)))))
    unfinished = [f".{r['analysis']} {r['label']}" for r in recs if not r.get("finished")]
    all_n = sorted({n for s in rows.values() for n, _ in s})
    header = "| synapses | " + " | ".join(f"{a} {lab}" for lab, a in rows) + " |"
    lines = [
        "# ngspice time vs synapse count, per realization",
        "",
        "Tanh MLPs W-W-W-10 (depth 3, CE loss, one sample), widths "
        f"{', '.join(map(str, widths))}.",
        "Time: CPU seconds (this process and ngspice) of the backend's run (netlist writing, ngspice,",
        "reading results), batch runner, with the wall time in brackets; `.tran` for 12 L tau = 36 tau",
        f"from a random state; a series stops after the first run over {args.limit:g} CPU s.  Made by "
        "`sims/spice_scaling.py`.",
        "",
        f"Conditions: {platform.machine()}, {os.cpu_count()} cores shared with other users' jobs "
        f"(load average {load0[0]:.0f}-{load0[1]:.0f} at the starts of the series, {load1[0]:.0f}-{load1[1]:.0f} "
        f"at their ends); {info['ngspice_version']} "
        f"({info['ngspice']}).  The CPU time is what the work costs; the wall time (in brackets) is",
        "mostly the other jobs' share of the cores.  \"timed out\": the run hit the wall-clock limit",
        f"({10 * args.limit:g} s, 10x the CPU limit) before its CPU limit, because of that load.",
        *([f"Series cut short by the time available (still running): {', '.join(unfinished)}."]
          if unfinished else []),
        "",
        header,
        "|" + "---|" * (len(rows) + 1),
    ]
    for n in all_n:
        cells = []
        for key in rows:
            t = dict(rows[key]).get(n)
            w = walls.get((key[0], key[1], n))
            cells.append("" if t is None else ("timed out" if not np.isfinite(t) else f"{t:.2f} ({w:.1f})"))
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines += ["", "Fitted exponent k of CPU time ~ synapses^k (points above 0.2 s):", ""]
    for (label, a), s in rows.items():
        arr = np.array([(n, t) for n, t in s if np.isfinite(t)])
        k = _fit(arr[:, 0], arr[:, 1]) if len(arr) else float("nan")
        lines.append(f"- `.{a}` {label}: k = {k:.2f}" + (f" (largest size run: {int(arr[-1, 0]):,} synapses, "
                                                          f"{arr[-1, 1]:.1f} s)" if len(arr) else ""))
    lines += ["", "`.op` tension, differential vs tuned pair, max |difference| (V): "
              + ", ".join(f"W={w}: {d:.1e}" for w, d in diffs), ""]
    md = out / "spice_scaling.md"
    split = "## Where the time of verify goes"  # written by sims/spice_scaling_split.py: kept
    old = md.read_text() if md.exists() else ""
    tail = ("\n" + split + old.split(split, 1)[1]) if split in old else ""
    atomic_write_text(md, "\n".join(lines) + tail)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, a in zip(axes, ("op", "tran")):
        for (label, an), s in rows.items():
            if an != a:
                continue
            arr = np.array([(n, t) for n, t in s if np.isfinite(t)])
            if len(arr):
                k = _fit(arr[:, 0], arr[:, 1])
                ax.loglog(arr[:, 0], arr[:, 1], "o-", label=f"{label} (k={k:.2f})")
        ax.axhline(args.limit, color="0.5", ls=":", lw=1)
        ax.set_ylabel("CPU time (s)")
        ax.set_xlabel("synapses")
        ax.set_title(f".{a}" + (" (12 L tau)" if a == "tran" else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_bytes(out / "spice_scaling.png", figure_png(fig))
    print(f"wrote {out / 'spice_scaling.md'} and {out / 'spice_scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
