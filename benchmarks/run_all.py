"""Run every benchmark and collect its tables into ``benchmarks/results.md`` (``make bench``).

Each ``benchmarks/bench_*.py`` runs in its own process, one after the other; its
output (Markdown tables from ``benchmarks/measure.py`` and a few lines of text) goes
into the file under its name and command, after a header naming the machine, the
commit, the Python and the load average.  On a shared machine the wall times include
waiting for a core: quote the CPU-time ratios.

Usage::

    .venv/bin/python benchmarks/run_all.py [--quick] [--only lava spice] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from measure import load_average  # noqa: E402

from hwbp.provenance import cpu_model  # noqa: E402

#: name -> (arguments, arguments with --quick)
BENCHMARKS = {
    "core": ([], ["--rounds", "2", "--depths", "8"]),
    "lava": ([], ["--quick"]),
    "brian2": ([], ["--quick"]),
    "spice": ([], ["--quick"]),
    "sweep": ([], ["--instances", "20", "--rounds", "1"]),
    "depth": ([], ["--depths", "8", "--repeat", "1"]),
}


def _machine() -> list[str]:
    cpu = cpu_model()
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return [f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {cpu}, {os.cpu_count()} cores{mem}; {platform.platform()}",
            f"- Python {platform.python_version()}; commit {commit}",
            f"- load average at the start: {load_average():.2f}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="each benchmark's short form")
    ap.add_argument("--only", nargs="+", choices=tuple(BENCHMARKS), help="run these benchmarks only")
    ap.add_argument("--out", default=str(HERE / "results.md"), help="output file (default benchmarks/results.md)")
    args = ap.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    parts = ["# Benchmark results", "", "Written by `make bench` (`benchmarks/run_all.py`"
             + (" --quick" if args.quick else "") + "). Every row: wall and CPU time (CPU of child processes "
             "included: ngspice, Lava's processes, compilers, Dask workers), the 1-minute load average, and the "
             "ratio to the row it is compared with, measured in the same run. On a shared machine wall times "
             "include waiting for a core: quote the CPU ratios.", "", *_machine(), ""]
    failed = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name in names:
        extra = BENCHMARKS[name][1 if args.quick else 0]
        cmd = [sys.executable, f"benchmarks/bench_{name}.py", *extra]
        print(f"== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        print(proc.stdout, end="", flush=True)
        parts += [f"## bench_{name}", "", f"`python {' '.join(cmd[1:])}` ({time.perf_counter() - t0:.0f} s, load "
                  f"average at the end {load_average():.2f})", "", proc.stdout.strip(), ""]
        if proc.returncode:
            failed.append(name)
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            parts += [f"**failed** (exit {proc.returncode}):", "", "```", tail, "```", ""]
            print(proc.stderr[-2000:], file=sys.stderr)
    Path(args.out).write_text("\n".join(parts) + "\n")
    print(f"wrote {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
