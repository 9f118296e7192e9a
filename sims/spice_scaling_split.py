"""Where the CPU time of ``verify --backend spice`` goes: hwbp (Python start-up,
lowering, emission, reading the raw file, the oracle) and ngspice (parsing, matrix
set-up and reordering, factoring), and what ngspice-39's options change.

For each model (tanh MLPs, CE loss, one sample, ``.op``, the default differential
realization) it measures, in CPU seconds (this process and ngspice):

* ``verify`` end to end through the API, split into ngspice's CPU (the child process)
  and the rest (hwbp); a new Python process importing the command line and the SPICE
  path (what ``hwbp verify`` adds on top);
* the deck the batch runner writes, run by ngspice alone: whole, and parse only (the
  same deck with no analysis); ngspice's own accounting (``.options acct``) splits
  the analysis into matrix reorder, factor, load and solve (its times are wall clock:
  their shares are applied to the analysis CPU time);
* the same deck with ngspice settings that might shorten reordering or parsing:
  ``.options klu`` (the KLU solver, where the ngspice build has it), ``pivrel`` 0.5 and
  1e-6 (the Markowitz pivot threshold), and every subcircuit expanded and every
  ``{parameter}`` replaced by its number before ngspice sees the deck; each with the
  largest difference of its node voltages from the plain deck's.  Each deck runs
  ``--repeat`` times and the least CPU time counts (on a loaded machine the others
  include time lost to other work: caches, memory bandwidth).

Writes the section "Where the time of verify goes" at the end of
``sims/spice_scaling.md`` (replacing an earlier one; ``sims/spice_scaling.py`` keeps
it when it rewrites the file).

Usage::

    .venv/bin/python sims/spice_scaling_split.py [--sizes 784-256-256-10 256-256-256-256-10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "sims"))

from measure import load_average, measure  # noqa: E402
from outdir import add_out_arg, output_dir  # noqa: E402

from hwbp.io import atomic_write_text  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.targets.spice.backend import SpiceBackend, stimulus  # noqa: E402
from hwbp.targets.spice.diagnose import find_ngspice, ngspice_version  # noqa: E402
from hwbp.targets.spice.raw import read_raw  # noqa: E402
from hwbp.targets.spice.writer import NgspiceWriter  # noqa: E402
from hwbp.types import Batch  # noqa: E402

HERE = Path(__file__).resolve().parent
MARK = "## Where the time of verify goes"
ACCT = ("Netlist loading time", "Subckt and Param expansion time", "Netlist parsing time", "Total analysis time",
        "Matrix reorder time", "Matrix factor time", "Matrix load time", "Matrix solve time")


def _children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _ngspice(deck: str, workdir: Path, name: str) -> tuple[float, dict, np.ndarray | None]:
    """Run ``deck`` (``@RAW@``: its raw file); CPU seconds, ngspice's accounting, the
    node voltages of the operating point (None without one)."""
    path, raw = workdir / f"{name}.cir", workdir / f"{name}.raw"
    path.write_text(deck.replace("@RAW@", str(raw)))
    c0 = _children()
    out = subprocess.run([find_ngspice(None), "-b", str(path)], capture_output=True, text=True, timeout=3600)
    cpu = _children() - c0
    acct = {}
    for key in ACCT:
        m = re.search(rf"{re.escape(key)}\s*(?:\(seconds\))?\s*=\s*([0-9.eE+-]+)", out.stdout + out.stderr)
        if m:
            acct[key] = float(m.group(1))
    values = None
    if raw.exists():
        plot = read_raw(raw)[0]
        values = np.array([v[0] for _, v in sorted(plot.vectors.items())])
    return cpu, acct, values


def _flatten(deck: str) -> str:
    """``deck`` with every subcircuit instance expanded and every ``{expression}``
    replaced by its value (the global ``.param`` values)."""
    params, subckts, body, cur = {}, {}, [], None
    for line in deck.split("\n"):
        low = line.lower()
        if low.startswith(".param"):
            params.update(re.findall(r"(\w+)=(\S+)", line))
        elif low.startswith(".subckt"):
            parts = line.split()
            cur = (parts[2:], [])
            subckts[parts[1]] = cur
        elif low.startswith(".ends"):
            cur = None
        elif cur is not None:
            if line.strip() and not line.startswith("*"):
                cur[1].append(line)
        else:
            body.append(line)
    pins = {"R": 2, "C": 2, "V": 2, "G": 4, "E": 4, "B": 2}
    out = []
    for line in body:
        if not line[:1] or line[0] not in "Xx":
            out.append(line)
            continue
        parts = line.split()
        formals, elements = subckts[parts[-1]]
        rename = dict(zip(formals, parts[1:-1]), **{"0": "0"})
        local = lambda n: rename.get(n, f"{parts[0]}_{n}")  # noqa: E731
        for el in elements:
            tok = el.split()
            n = pins[tok[0][0].upper()]
            rest = " ".join(tok[1 + n:])
            if tok[0][0] in "Bb":
                rest = re.sub(r"V\((\w+)\)", lambda m: f"V({local(m.group(1))})", rest)
            out.append(" ".join([f"{tok[0][0]}{parts[0]}_{tok[0][1:]}", *map(local, tok[1:1 + n]), rest]))

    def value(m: re.Match) -> str:
        expr = re.sub(r"\b(\w+)\b", lambda k: params.get(k.group(1), k.group(1)), m.group(1))
        return repr(float(eval(expr, {"__builtins__": {}})))  # the emitter's own arithmetic on its numbers

    return re.sub(r"\{([^}]*)\}", value, "\n".join(out))


SPREAD: dict[str, list[float]] = {}


def _best(deck: str, workdir: Path, name: str, repeat: int) -> tuple[float, dict, np.ndarray | None]:
    """:func:`_ngspice` ``repeat`` times; the run with the least CPU time (the others
    lost time to the machine's other work); every run's CPU time is kept in
    :data:`SPREAD`."""
    runs = [_ngspice(deck, workdir, name) for _ in range(repeat)]
    SPREAD[name] = [r[0] for r in runs]
    return min(runs, key=lambda r: r[0])


def split(sizes: tuple[int, ...], workdir: Path, repeat: int) -> list[str]:
    from hwbp.verify import verify

    g = random_mlp(list(sizes), activation="tanh", seed=0).with_loss("ce")
    rng = np.random.default_rng(0)
    batch = Batch({"x": rng.standard_normal((1, sizes[0]))}, np.eye(sizes[-1])[rng.integers(0, sizes[-1], 1)])
    spent = {}

    def run() -> None:
        c0 = _children()
        verify(g, batch, backend="spice", options={"analysis": "op"})
        spent["ngspice"] = _children() - c0

    whole = measure(run)
    be = SpiceBackend()
    system = lower(g)
    out = {}

    def emit() -> None:
        circuit = be.compile(system, be.options({"analysis": "op"})).data
        stim = stimulus(circuit, {k: v[0] for k, v in batch.x.items()}, batch.y[0])
        out["deck"] = NgspiceWriter().write(circuit, stimulus=stim, analyses=(), save=circuit.saved_nodes(),
                                            control=["set noaskquit", "set filetype=binary", "op", "write @RAW@",
                                                     "quit 0"])

    emission = measure(emit)
    # ngspice prints its accounting after "rusage all" when a .control block runs the analysis
    deck = out["deck"].replace(".options ", ".options acct ", 1).replace("\nop\n", "\nop\nrusage all\n", 1)
    base_cpu, acct, base = _best(deck, workdir, "plain", repeat)
    raw_read = measure(lambda: read_raw(workdir / "plain.raw"), 3)
    parse_cpu, _, _ = _best(deck.replace("\nop\nrusage all\nwrite @RAW@\n", "\n"), workdir, "parse", repeat)
    name = "-".join(map(str, sizes))
    analysis_cpu = base_cpu - parse_cpu
    total_a = acct.get("Total analysis time", float("nan"))
    lines = [f"### {name} (one sample, `.op`, {len(out['deck']) / 1e6:.1f} MB deck)", "",
             "| part | CPU s | share of verify |", "|---|---|---|"]
    h = whole.cpu_s - spent["ngspice"]
    for label, v in [("verify (API), all", whole.cpu_s), ("  hwbp: everything but ngspice", h),
                     ("    of which emission (circuit + deck text)", emission.cpu_s),
                     ("    of which reading the raw file", raw_read.cpu_s),
                     ("  ngspice", spent["ngspice"]), ("    parse (load, subcircuit and parameter expansion)",
                                                       parse_cpu * spent["ngspice"] / base_cpu),
                     ("    analysis", analysis_cpu * spent["ngspice"] / base_cpu)]:
        lines.append(f"| {label} | {v:.2f} | {v / whole.cpu_s:.0%} |")
    for key in ("Matrix reorder time", "Matrix factor time", "Matrix load time", "Matrix solve time"):
        if key in acct and total_a > 0:
            v = analysis_cpu * spent["ngspice"] / base_cpu * acct[key] / total_a
            lines.append(f"|       {key.lower().replace(' time', '')} (by ngspice's accounting) | {v:.2f} | "
                         f"{v / whole.cpu_s:.0%} |")
    lines += ["", "| ngspice settings on the same deck | ngspice CPU s | vs plain | max abs dV vs plain (V) |",
              "|---|---|---|---|", f"| plain (hwbp's deck) | {base_cpu:.2f} | 1.00× | 0 |"]
    variants = {"`.options klu`": deck.replace(".options ", ".options klu ", 1),
                "`pivrel=0.5`": deck.replace(".options ", ".options pivrel=0.5 ", 1),
                "`pivrel=1e-6`": deck.replace(".options ", ".options pivrel=1e-6 ", 1),
                "subcircuits expanded, parameters replaced": _flatten(deck)}
    for i, (label, text) in enumerate(variants.items()):
        cpu, _, vals = _best(text, workdir, f"v{i}", repeat)
        diff = "no result" if vals is None or base is None or vals.shape != base.shape else \
            f"{float(np.abs(vals - base).max()):.1e}"
        lines.append(f"| {label} | {cpu:.2f} | {cpu / base_cpu:.2f}× | {diff} |")
    runs = SPREAD["plain"]
    lines += ["", f"The plain deck's {len(runs)} runs took {min(runs):.2f}-{max(runs):.2f} s CPU "
              f"(spread {max(runs) / min(runs) - 1:.0%}): a setting counts as faster only by more than that."]
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["784-256-256-10"])
    p.add_argument("--repeat", type=int, default=3, help="ngspice runs per deck (the least CPU time counts)")
    add_out_arg(p)
    args = p.parse_args(argv)
    out = output_dir(p, args, HERE, "spice_scaling_split")
    code = "import hwbp.cli, hwbp.targets.spice.backend, hwbp.verify"
    start = measure(lambda: subprocess.run([sys.executable, "-c", code], check=True), 3)
    load0 = load_average()
    exe = find_ngspice(None)
    lines = [MARK, "", "Made by `sims/spice_scaling_split.py` (CPU seconds; a shared machine, load average "
             f"{load0:.1f} at the start). {ngspice_version(exe)} ({exe}). A new Python process that imports "
             f"hwbp's command line and SPICE path costs {start.cpu_s:.2f} s CPU ({start.wall_s:.2f} s wall) before "
             "any of the work below.", ""]
    with tempfile.TemporaryDirectory(prefix="hwbp-spice-split-") as d:
        for s in args.sizes:
            lines += split(tuple(int(x) for x in s.split("-")), Path(d), args.repeat)
            print("\n".join(lines[-30:]), flush=True)
    lines.append(f"Load average {load_average():.1f} at the end.")
    md = out / "spice_scaling.md"
    text = md.read_text() if md.exists() else ""
    text = text.split(MARK)[0].rstrip() + "\n\n" if MARK in text else text.rstrip() + "\n\n"
    atomic_write_text(md, text + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
