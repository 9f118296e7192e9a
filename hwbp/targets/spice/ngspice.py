"""Running ngspice: a batch (subprocess) runner and a shared-library runner.

Both take a :class:`~hwbp.targets.spice.model.Circuit` and return the same node
voltages:

``batch`` (default)
    ``ngspice -b deck.cir -r out.raw`` in a subprocess with a timeout; the raw file
    is read with :mod:`hwbp.targets.spice.raw`.  Several ``.op`` samples run in one
    process as one ``.dc`` sweep over the sample index (stimulus sources are ``pwl``
    functions of it), each solved from the previous one; ``workers`` processes at once.
``shared``
    The ngspice shared library (``libngspice``) through PySpice (in
    :mod:`hwbp.targets.spice.shared`), loaded once per
    process; circuits are loaded from text and vectors read from memory.  Fast for
    repeated simulation (training loops).  Analyses run in ngspice's background
    thread so that a wall-clock limit can halt them; the library stays usable.

ngspice's DC iteration is bounded by ``itl1`` (from the circuit) and its adaptive gmin
and source stepping (``gminsteps = srcsteps = 1``, its defaults: other values select
SPICE3's fixed stepping, which fails circuits the adaptive one solves); a ``.op`` that
needs the transient fallback after both failed is an error (:func:`classify`).

ngspice reports problems as text; :func:`hwbp.targets.spice.diagnose.classify` turns
that text into one :class:`~hwbp.errors.BackendError` naming the analysis and what to
change (both runners import it from :mod:`~hwbp.targets.spice.diagnose`, never from
each other).  No partial results are
returned.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from hwbp.errors import BackendError, ConfigError
from hwbp.targets.spice.diagnose import (
    APT_HINT, alter_commands, check_timeout, classify, find_ngspice, missing_results, ngspice_version,
    timeout_error, tran_options,
)
from hwbp.targets.spice.model import Circuit
from hwbp.targets.spice.raw import parse_raw
from hwbp.targets.spice.writer import SWEEP_NODE, NgspiceWriter

if TYPE_CHECKING:
    from hwbp.targets.spice.shared import SharedRunner

__all__ = ["MODES", "APT_HINT", "find_ngspice", "classify", "BatchRunner", "get_runner", "split_work"]

MODES = ("batch", "shared")


def split_work(n: int, workers: int) -> list[range]:
    """``range(n)`` cut into at most ``workers`` contiguous, nearly equal chunks."""
    k = max(1, min(int(workers), n))
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class BatchRunner:
    """ngspice in a subprocess per run (``ngspice -b``), results through raw files.

    Parameters
    ----------
    executable : str, optional
        ngspice executable (a path or a name on PATH); default: the environment
        variable ``HWBP_NGSPICE``, else ``ngspice`` on PATH.
    timeout_s : float
        Wall-clock limit of one ngspice process (s).
    raw_format : {"binary", "ascii"}
        Raw file format requested from ngspice.
    workers : int
        Most ngspice processes run at once.  ``.op``: the batch is cut into ``workers``
        contiguous chunks, each solved in one process (sample after sample, the stimulus
        re-valued by ``alter``); ``.tran``: one process per sample.
    """

    mode = "batch"

    def __init__(self, executable: str | None = None, timeout_s: float = 600.0, raw_format: str = "binary",
                 workers: int = 1) -> None:
        if raw_format not in ("binary", "ascii"):
            raise ConfigError(f"raw_format must be 'binary' or 'ascii', got {raw_format!r}")
        if not (isinstance(workers, (int, np.integer)) and workers >= 1):
            raise ConfigError(f"ngspice workers must be an integer >= 1, got {workers!r}")
        self.timeout_s = check_timeout(timeout_s)
        self.executable = executable
        self.raw_format = raw_format
        self.workers = int(workers)
        self.writer = NgspiceWriter()
        self.last_output = ""

    def info(self) -> dict[str, str]:
        """Which ngspice runs: ``{"ngspice": path, "ngspice_version": "ngspice-39"}``."""
        exe = find_ngspice(self.executable)
        return {"ngspice": exe, "ngspice_version": ngspice_version(exe)}

    def _run(self, deck: str, analysis: str, where: str, use_r: bool) -> tuple[list, str]:
        exe = find_ngspice(self.executable)
        with tempfile.TemporaryDirectory(prefix="hwbp-ngspice-") as tmp:
            cir, raw = Path(tmp) / "deck.cir", Path(tmp) / "out.raw"
            # ngspice runs in ``tmp``: a relative name needs no quoting (``tmp`` may hold spaces)
            cir.write_text(deck.replace("@RAW@", raw.name), encoding="ascii")
            cmd = [exe, "-b", str(cir)] + (["-r", str(raw)] if use_r else [])
            env = dict(os.environ, SPICE_ASCIIRAWFILE="1" if self.raw_format == "ascii" else "0")
            try:
                proc = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=self.timeout_s, env=env,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise timeout_error(analysis, where, self.timeout_s) from None
            except OSError as exc:
                raise BackendError(f"ngspice {analysis} of {where}: cannot run {exe} ({exc.strerror}); "
                                   f"install it: {APT_HINT}") from None
            text = proc.stdout.decode("utf-8", "replace") + "\n" + proc.stderr.decode("utf-8", "replace")
            classify(text, analysis, where)
            if proc.returncode != 0:
                last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(no output)"]
                raise BackendError(f"ngspice {analysis} of {where}: exit status {proc.returncode} ({last[0][:160]})")
            if not raw.is_file():
                raise missing_results(text, analysis, where, "no results were written")
            self.last_output = text
            return parse_raw(raw.read_bytes(), f"raw file of {where}"), text

    def _map(self, fn, items: Sequence) -> list:
        """``fn`` over ``items`` on at most :attr:`workers` threads (each drives its own
        ngspice process), in order; the first error is raised."""
        if self.workers == 1 or len(items) == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(fn, items))

    def op(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]) -> np.ndarray:
        """DC operating points: ``(len(stimuli), len(nodes))`` node voltages (V).

        Each ngspice process solves a contiguous chunk of the samples in one ``.dc``
        sweep over the sample index (:meth:`_op_sweep`): the first from scratch, each
        next one from the previous operating point, with the pivot order kept."""
        chunks = split_work(len(stimuli), self.workers)
        parts = self._map(lambda r: self._op_chunk(circuit, [stimuli[i] for i in r], nodes), chunks)
        return np.concatenate(parts, axis=0)

    def _op_chunk(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]) -> np.ndarray:
        if len(stimuli) > 1:
            return self._op_sweep(circuit, stimuli, nodes)
        fmt = "binary" if self.raw_format == "binary" else "ascii"
        commands = ["set noaskquit", f"set filetype={fmt}", "set appendwrite"]
        prev: Mapping[str, float] = stimuli[0]
        for k, stim in enumerate(stimuli):
            commands += alter_commands(prev, stim) if k else []
            commands += ["op", "write @RAW@"]
            prev = stim
        commands.append("quit 0")
        deck = self.writer.write(circuit, stimulus=stimuli[0], analyses=(), save=nodes, control=commands)
        plots, text = self._run(deck, ".op", circuit.title, use_r=False)
        if len(plots) != len(stimuli):
            raise missing_results(text, ".op", circuit.title, f"{len(plots)} of {len(stimuli)} operating points solved")
        return np.array([[p.vectors[n.lower()][0] for n in nodes] for p in plots])

    def _op_sweep(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]) -> np.ndarray:
        """Several operating points as one ``.dc`` sweep over the sample index: each
        stimulus source that changes is a ``pwl`` of the index, and ngspice solves point
        k + 1 from point k keeping its pivot order (``op`` after ``alter`` reorders the
        matrix again, the dominant cost of a large circuit)."""
        names = [k for k in stimuli[0] if any(s[k] != stimuli[0][k] for s in stimuli)]
        sweep = {k: [float(s[k]) for s in stimuli] for k in names}
        n = len(stimuli)
        deck = self.writer.write(circuit, stimulus=stimuli[0], analyses=(f".dc V{SWEEP_NODE} 0 {n - 1} 1",),
                                 save=nodes, sweep=sweep)
        plots, text = self._run(deck, ".op", circuit.title, use_r=True)
        if len(plots) != 1 or any(len(plots[0].vectors.get(m.lower(), ())) != n for m in nodes[:1]):
            raise missing_results(text, ".op", circuit.title, f"the sweep over {n} samples did not complete")
        return np.stack([plots[0].vectors[m.lower()] for m in nodes], axis=1)

    def tran(self, circuit: Circuit, stimulus: Mapping[str, float], initial: Mapping[str, float],
             step_s: float, stop_s: float, nodes: Sequence[str], reltol: float) -> tuple[np.ndarray, np.ndarray]:
        """Transient from ``initial`` node voltages: ``(t (s), (len(t), len(nodes)) V)``."""
        return self.tran_many(circuit, [stimulus], [initial], step_s, stop_s, nodes, reltol)[0]

    def tran_many(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]],
                  initials: Sequence[Mapping[str, float]], step_s: float, stop_s: float, nodes: Sequence[str],
                  reltol: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """One transient per sample, each in its own ngspice process, at most
        :attr:`workers` at once: per sample ``(t (s), (len(t), len(nodes)) V)``."""
        def one(b: int) -> tuple[np.ndarray, np.ndarray]:
            deck = self.writer.write(circuit, stimulus=stimuli[b], analyses=(f".tran {step_s!r} {stop_s!r} 0 {step_s!r}",),
                                     save=nodes, initial=initials[b], extra_options=tran_options(step_s, reltol))
            plots, text = self._run(deck, ".tran", circuit.title, use_r=True)
            if len(plots) != 1 or "time" not in plots[0].vectors:
                raise missing_results(text, ".tran", circuit.title, "no transient results")
            v = plots[0].vectors
            return v["time"], np.stack([v[n.lower()] for n in nodes], axis=1)

        return self._map(one, list(range(len(stimuli))))


def get_runner(mode: str = "batch", **options) -> "BatchRunner | SharedRunner":
    """The runner of ``mode`` (``batch`` options: executable, timeout_s, raw_format,
    workers; ``shared`` options: timeout_s)."""
    if mode == "batch":
        return BatchRunner(**options)
    if mode == "shared":
        from hwbp.targets.spice.shared import SharedRunner

        unknown = sorted(set(options) - {"timeout_s"})
        if unknown:
            raise ConfigError(f"spice mode 'shared' has no option {unknown[0]!r}; valid: timeout_s")
        return SharedRunner(**options)
    raise ConfigError(f"unknown spice mode {mode!r}; valid: {', '.join(MODES)}")
