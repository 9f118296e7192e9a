"""Running ngspice: a batch (subprocess) runner and a shared-library runner.

Both take a :class:`~hwbp.targets.spice.model.Circuit` and return the same node
voltages:

``batch`` (default)
    ``ngspice -b deck.cir -r out.raw`` in a subprocess with a timeout; the raw file
    is read with :mod:`hwbp.targets.spice.raw`.  Several ``.op`` samples run in one
    process as one ``.dc`` sweep over the sample index (stimulus sources are ``pwl``
    functions of it), each solved from the previous one; several ``.tran`` samples run
    in one process one after another; ``workers`` processes at once, on local threads or
    as tasks on a Dask cluster (:mod:`hwbp.targets.spice.jobs`).
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

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from hwbp.errors import BackendError, ConfigError
from hwbp.targets.spice.diagnose import (
    APT_HINT, check_timeout, classify, find_ngspice, missing_results, ngspice_version, tran_options,
)
from hwbp.targets.spice.jobs import Job, JobResult, pool
from hwbp.targets.spice.model import Circuit, Element
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
    """ngspice in subprocesses (``ngspice -b``), results through raw files.

    Parameters
    ----------
    executable : str, optional
        ngspice executable (a path or a name on PATH); default: the environment
        variable ``HWBP_NGSPICE``, else ``ngspice`` on PATH.
    timeout_s : float
        Wall-clock limit per sample (s): a process solving ``k`` samples may run
        ``k * timeout_s``.
    raw_format : {"binary", "ascii"}
        Raw file format requested from ngspice.
    workers : int
        Most ngspice processes run at once.  The batch is cut into ``workers``
        contiguous chunks, each solved in one process: ``.op`` as one ``.dc`` sweep over
        the sample index, ``.tran`` as one transient per sample, one after another.
    scheduler : str, optional
        Run the chunks as tasks on a Dask cluster instead of local threads: a
        scheduler's address (the batch is cut into as many chunks as the cluster has
        worker threads) or ``"local"`` (a ``LocalCluster`` of ``workers`` workers).
    """

    mode = "batch"

    def __init__(self, executable: str | None = None, timeout_s: float = 600.0, raw_format: str = "binary",
                 workers: int = 1, scheduler: str | None = None) -> None:
        if raw_format not in ("binary", "ascii"):
            raise ConfigError(f"raw_format must be 'binary' or 'ascii', got {raw_format!r}")
        if not (isinstance(workers, (int, np.integer)) and workers >= 1):
            raise ConfigError(f"ngspice workers must be an integer >= 1, got {workers!r}")
        if scheduler is not None and not (isinstance(scheduler, str) and scheduler.strip()):
            raise ConfigError(f"--spice-scheduler must be a Dask scheduler address or 'local', got {scheduler!r}")
        self.timeout_s = check_timeout(timeout_s)
        self.executable = executable
        self.raw_format = raw_format
        self.workers = int(workers)
        self.scheduler = scheduler
        self.writer = NgspiceWriter()
        self.last_output = ""
        #: After a run: the ngspice binaries (path and version) that ran it.
        self.ran: list[str] = []

    def info(self) -> dict[str, str]:
        """Which ngspice runs: ``{"ngspice": path, "ngspice_version": "ngspice-39"}``
        (with a Dask scheduler, the binary the workers resolve is recorded per run, in
        :attr:`ran`)."""
        if self.scheduler is not None:
            return {"ngspice": self.executable or "$HWBP_NGSPICE or ngspice on the Dask workers' PATH",
                    "ngspice_version": "see ngspice_ran", "scheduler": self.scheduler}
        exe = find_ngspice(self.executable)
        return {"ngspice": exe, "ngspice_version": ngspice_version(exe)}

    def _job(self, files: Mapping[str, str], main: str, analysis: str, where: str, use_r: bool,
             samples: int) -> Job:
        return Job(dict(files), main, analysis, where, use_r, self.timeout_s * max(1, samples), self.executable,
                   self.raw_format == "ascii")

    def _execute(self, chunks_of, build, desc: str | None = None) -> list:
        """Cut the batch with ``chunks_of(pool size)``, make one job per chunk with
        ``build(chunk) -> (job, read)``, run them (``desc``: with a progress bar), and
        return ``read(result)`` of each."""
        with pool(self.workers, self.scheduler) as p:
            work = [build(c) for c in chunks_of(p.size)]
            results = p.map([job for job, _ in work], desc)
        self.ran = sorted({f"{r.ngspice} ({r.ngspice_version})" for r in results})
        self.last_output = results[-1].text if results else ""
        return [read(r) for (_, read), r in zip(work, results)]

    def op(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]) -> np.ndarray:
        """DC operating points: ``(len(stimuli), len(nodes))`` node voltages (V).

        Each ngspice process solves a contiguous chunk of the samples in one ``.dc``
        sweep over the sample index (:meth:`_op_sweep`): the first from scratch, each
        next one from the previous operating point, with the pivot order kept."""
        parts = self._execute(lambda k: split_work(len(stimuli), k),
                              lambda r: self._op_chunk(circuit, [stimuli[i] for i in r], nodes))
        return np.concatenate(parts, axis=0)

    def op_many(self, work: Sequence[tuple[Circuit, Sequence[Mapping[str, float]], Sequence[str]]],
                desc: str | None = None) -> list[np.ndarray]:
        """The operating points of several circuits, each ``(circuit, stimuli, nodes)`` one
        ngspice process (its samples as one sweep, as :meth:`op`), all in one pool:
        per circuit ``(len(stimuli), len(nodes))`` node voltages (V).  ``desc``: show a
        progress bar with this label."""
        return self._execute(lambda k: work, lambda w: self._op_chunk(*w), desc)

    def _op_chunk(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]):
        if len(stimuli) > 1:
            return self._op_sweep(circuit, stimuli, nodes)
        fmt = "binary" if self.raw_format == "binary" else "ascii"
        commands = ["set noaskquit", f"set filetype={fmt}", "set appendwrite", "op", "write @RAW@", "quit 0"]
        deck = self.writer.write(circuit, stimulus=stimuli[0], analyses=(), save=nodes, control=commands)

        def read(res: JobResult) -> np.ndarray:
            if len(res.plots) != 1:
                raise missing_results(res.text, ".op", circuit.title, f"{len(res.plots)} of 1 operating points solved")
            return np.array([[res.plots[0].vectors[n.lower()][0] for n in nodes]])

        return self._job({**circuit.run_files, "deck.cir": deck}, "deck.cir", ".op", circuit.title, False, 1), read

    def _op_sweep(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]):
        """Several operating points as one ``.dc`` sweep over the sample index: each
        stimulus source that changes is a ``pwl`` of the index, and ngspice solves point
        k + 1 from point k keeping its pivot order (``op`` after ``alter`` reorders the
        matrix again, the dominant cost of a large circuit)."""
        names = [k for k in stimuli[0] if any(s[k] != stimuli[0][k] for s in stimuli)]
        sweep = {k: [float(s[k]) for s in stimuli] for k in names}
        n = len(stimuli)
        deck = self.writer.write(circuit, stimulus=stimuli[0], analyses=(f".dc V{SWEEP_NODE} 0 {n - 1} 1",),
                                 save=nodes, sweep=sweep)

        def read(res: JobResult) -> np.ndarray:
            plots = res.plots
            if len(plots) != 1 or any(len(plots[0].vectors.get(m.lower(), ())) != n for m in nodes[:1]):
                raise missing_results(res.text, ".op", circuit.title, f"the sweep over {n} samples did not complete")
            return np.stack([plots[0].vectors[m.lower()] for m in nodes], axis=1)

        return self._job({**circuit.run_files, "deck.cir": deck}, "deck.cir", ".op", circuit.title, True, n), read

    def tran(self, circuit: Circuit, stimulus: Mapping[str, float], initial: Mapping[str, float],
             step_s: float, stop_s: float, nodes: Sequence[str], reltol: float) -> tuple[np.ndarray, np.ndarray]:
        """Transient from ``initial`` node voltages: ``(t (s), (len(t), len(nodes)) V)``."""
        return self.tran_many(circuit, [stimulus], [initial], step_s, stop_s, nodes, reltol)[0]

    def tran_many(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]],
                  initials: Sequence[Mapping[str, float]], step_s: float, stop_s: float, nodes: Sequence[str],
                  reltol: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """One transient per sample: per sample ``(t (s), (len(t), len(nodes)) V)``.

        The batch is cut into chunks (:attr:`workers`, or the Dask cluster's threads);
        one ngspice process runs a chunk's samples one after another, each its own
        netlist (its sources and ``.ic``) loaded with ``source`` and run, then removed, so
        every sample is solved exactly as in a process of its own (same matrix, same
        time steps: the results are bit-identical)."""
        analysis = f".tran {step_s!r} {stop_s!r} 0 {step_s!r}"
        opts = tran_options(step_s, reltol)
        fmt = "binary" if self.raw_format == "binary" else "ascii"

        def build(r: range):
            files = self._tran_files(circuit, [stimuli[b] for b in r], [initials[b] for b in r], analysis, nodes,
                                     opts, first=r.start)
            commands = ["set noaskquit", f"set filetype={fmt}", "set appendwrite"]
            for b in r:
                commands += [f"source s{b}.cir", "run", "write @RAW@", "destroy all", "remcirc"]
            main = "\n".join([f"* {circuit.title}: transients of samples {r.start}..{r.stop - 1}", ".control",
                              *commands, "quit 0", ".endc", ".end", ""])

            def read(res: JobResult) -> list[tuple[np.ndarray, np.ndarray]]:
                if len(res.plots) != len(r) or any("time" not in p.vectors for p in res.plots):
                    raise missing_results(res.text, ".tran", circuit.title,
                                          f"{len(res.plots)} of {len(r)} transients completed")
                return [(p.vectors["time"], np.stack([p.vectors[n.lower()] for n in nodes], axis=1))
                        for p in res.plots]

            return self._job({**circuit.run_files, **files, "main.cir": main}, "main.cir", ".tran", circuit.title,
                             False, len(r)), read

        parts = self._execute(lambda k: split_work(len(stimuli), k), build)
        return [run for part in parts for run in part]

    def _tran_files(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]],
                    initials: Sequence[Mapping[str, float]], analysis: str, nodes: Sequence[str],
                    options: Mapping[str, str], first: int = 0) -> dict[str, str]:
        """The netlists of consecutive samples ``first, first + 1, ...``: ``s<b>.cir`` per
        sample holds only what differs between samples (its input and target sources and
        its ``.ic`` lines), in place, and includes the runs of lines between them
        (``c<i>.cir``, written once).  Each ``s<b>.cir`` therefore reads as the whole netlist
        of its sample, line for line."""
        lines = self.writer.write(circuit, stimulus=stimuli[0], analyses=(analysis,), save=nodes,
                                  initial=initials[0], extra_options=options).split("\n")[:-1]
        sources = {e.name: e for sec in circuit.sections for e in sec.items
                   if isinstance(e, Element) and e.name in stimuli[0]}
        parts: list[object] = []  # common text (str), a source (Element) or the k-th .ic line (int)
        common: list[str] = []
        n_ic = 0
        for ln in lines[1:]:  # the title stays the first line of each sample's netlist
            head = ln.split(" ", 1)[0]
            vary: object = sources.get(head) if head in sources else (n_ic if ln.startswith(".ic ") else None)
            if vary is None:
                common.append(ln)
                continue
            if common:
                parts.append("\n".join(common))
                common = []
            parts.append(vary)
            n_ic += isinstance(vary, int)
        if common:
            parts.append("\n".join(common))
        files = {f"c{i}.cir": text + "\n" for i, text in enumerate(p for p in parts if isinstance(p, str))}
        for k, (stim, ic) in enumerate(zip(stimuli, initials)):
            ics = self.writer.initial(ic)
            if list(ic) != list(initials[0]) or set(stim) != set(stimuli[0]):  # the layout of sample 0
                raise BackendError(f"spice: sample {first + k} sets other sources or initial conditions than "
                                   f"sample {first} ({len(ic)} node voltages, not {len(initials[0])})")
            out, n_common = [lines[0]], 0
            for part in parts:
                if isinstance(part, str):
                    out.append(f".include c{n_common}.cir")
                    n_common += 1
                else:
                    out.append(ics[part] if isinstance(part, int) else self.writer.element(part, stim))
            files[f"s{first + k}.cir"] = "\n".join(out) + "\n"
        return files


def get_runner(mode: str = "batch", **options) -> "BatchRunner | SharedRunner":
    """The runner of ``mode`` (``batch`` options: executable, timeout_s, raw_format,
    workers, scheduler; ``shared`` options: timeout_s)."""
    if mode == "batch":
        return BatchRunner(**options)
    if mode == "shared":
        from hwbp.targets.spice.shared import SharedRunner

        unknown = sorted(set(options) - {"timeout_s"})
        if unknown:
            raise ConfigError(f"spice mode 'shared' has no option {unknown[0]!r}; valid: timeout_s")
        return SharedRunner(**options)
    raise ConfigError(f"unknown spice mode {mode!r}; valid: {', '.join(MODES)}")
