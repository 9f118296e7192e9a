"""Shared measurement and reporting of the benchmarks: wall time, CPU time including
child processes, the load average, and ratios to a competitor measured in the same run.

CPU time is what to quote on a shared, loaded machine: wall time there includes
waiting for a core, CPU time (user + system) does not.  :func:`cpu_seconds` counts this
process, every child it has reaped (``resource.getrusage(RUSAGE_CHILDREN)``: ngspice,
compilers, finished workers) and every child still alive (through ``psutil``: Lava's
forked processes, Dask workers), so a run that hands its work to other processes is
charged for it.

A :class:`Table` collects rows (a label, a :class:`Sample` and its competitor's
label) and prints them as a Markdown table: ``make bench`` (``benchmarks/run_all.py``)
collects every benchmark's tables into ``benchmarks/results.md``.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from statistics import median
from typing import Any, Callable, Sequence

try:
    import psutil
except ImportError:  # pragma: no cover - installed with distributed (the sweep extra)
    psutil = None

__all__ = ["Sample", "Table", "cpu_seconds", "children_alive", "measure", "load_average", "thread_note"]


def children_alive() -> dict[int, float]:
    """CPU seconds of every live descendant, by pid."""
    if psutil is None:
        return {}
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            out[child.pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


class _Clock:
    """A snapshot of wall time and of every CPU time counter that :func:`cpu_seconds` sums."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        me, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        self.own = me.ru_utime + me.ru_stime
        self.reaped = reaped.ru_utime + reaped.ru_stime
        self.alive = children_alive()

    def since(self, start: "_Clock") -> tuple[float, float]:
        """``(wall s, CPU s)`` from ``start`` to this snapshot.  A child alive at
        ``start`` and reaped since is counted once: its whole life arrives in the
        reaped counter, so what it had used at ``start`` is taken off."""
        gone = sum(v for pid, v in start.alive.items() if pid not in self.alive)
        alive = sum(v - start.alive.get(pid, 0.0) for pid, v in self.alive.items())
        cpu = (self.own - start.own) + (self.reaped - start.reaped - gone) + alive
        return self.wall - start.wall, max(cpu, 0.0)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and all its children so far."""
    c = _Clock()
    return c.own + c.reaped + sum(c.alive.values())


def load_average() -> float:
    """The 1-minute load average (NaN where the system has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


@dataclass
class Sample:
    """One measured case: wall and CPU seconds per repetition (the medians over
    ``repeat`` repetitions) and the 1-minute load average at the end."""

    wall_s: float
    cpu_s: float
    load: float
    repeat: int = 1


def measure(fn: Callable[[], Any], repeat: int = 1, *, per: float = 1.0) -> Sample:
    """Run ``fn`` ``repeat`` times; medians of wall and CPU time, divided by ``per``
    (e.g. the number of gradients one call computes)."""
    walls, cpus = [], []
    for _ in range(max(1, repeat)):
        start = _Clock()
        fn()
        wall, cpu = _Clock().since(start)
        walls.append(wall / per)
        cpus.append(cpu / per)
    return Sample(median(walls), median(cpus), load_average(), max(1, repeat))


def _fmt_time(s: float) -> str:
    if s != s:
        return "—"
    if s < 0:  # a difference of two noisy times
        return "−" + _fmt_time(-s)
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def _fmt_ratio(x: float) -> str:
    if x != x:
        return "—"
    return f"{x:.3g}×"


class Table:
    """Rows of samples with the ratio of each to its competitor's, printed as Markdown.

    Parameters
    ----------
    title : str
        A line above the table (the work measured).
    unit : str
        What one sample's times are per ("run", "gradient", "step", ...).
    extra : sequence of str
        Names of additional columns (their values given to :meth:`add`).
    """

    def __init__(self, title: str, unit: str = "run", extra: Sequence[str] = ()) -> None:
        self.title, self.unit, self.extra = title, unit, tuple(extra)
        self.rows: list[tuple[str, Sample, str | None, tuple[str, ...]]] = []

    def add(self, label: str, sample: Sample, versus: str | None = None, *extra: Any) -> None:
        """A row ``label``; ``versus`` names the row (added before) it is compared to."""
        if versus is not None and versus not in {r[0] for r in self.rows}:
            raise ValueError(f"no row {versus!r} to compare {label!r} with")
        self.rows.append((label, sample, versus, tuple(str(e) for e in extra)))

    def sample(self, label: str) -> Sample:
        """The sample of row ``label``."""
        return next(r[1] for r in self.rows if r[0] == label)

    def ratio(self, label: str, *, cpu: bool = True) -> float:
        """Time of row ``label`` over its competitor's (CPU time unless ``cpu`` is False)."""
        row = next(r for r in self.rows if r[0] == label)
        if row[2] is None:
            return float("nan")
        other = self.sample(row[2])
        a, b = (row[1].cpu_s, other.cpu_s) if cpu else (row[1].wall_s, other.wall_s)
        return a / b if b > 0 else float("nan")

    def markdown(self) -> str:
        """The table as Markdown text (title line, header, one line per row)."""
        head = ["case", f"wall / {self.unit}", f"CPU / {self.unit}", "load", "vs", "CPU ratio", "wall ratio",
                *self.extra]
        lines = [f"**{self.title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, s, versus, extra in self.rows:
            cells = [label, _fmt_time(s.wall_s), _fmt_time(s.cpu_s), f"{s.load:.2f}", versus or "",
                     _fmt_ratio(self.ratio(label)), _fmt_ratio(self.ratio(label, cpu=False)), *extra]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def print(self) -> None:
        """Print :meth:`markdown` and a blank line."""
        print(self.markdown(), end="\n\n", flush=True)


def thread_note() -> str:
    """One line naming the BLAS threads setting and the cores (for a table's footer)."""
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    threads = ", ".join(f"{k}={v}" for k, v in env.items()) or "BLAS threads: library default"
    return f"{os.cpu_count()} cores; {threads}"
