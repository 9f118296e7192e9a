"""Where ngspice processes run: one :class:`Job` is one ``ngspice -b`` process (its
netlist files, the deck to run, the raw file it writes); a :class:`Pool` runs a list of
them on local threads (each driving its own ngspice) or as tasks on a Dask cluster
(:func:`pool`).

A job carries only text and numbers, so it pickles: a Dask worker on another machine
runs it with its own ngspice (``executable``, else ``$HWBP_NGSPICE``, else ``ngspice``
on its PATH) and sends back the raw file's plots.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from hwbp.errors import BackendError, ConfigError
from hwbp.targets.spice.diagnose import (
    APT_HINT, OutputLimitExceeded, classify, find_ngspice, missing_results, ngspice_version, run_bounded,
    timeout_error,
)
from hwbp.targets.spice.raw import RawPlot, parse_raw

__all__ = ["Job", "JobResult", "run_job", "Pool", "pool", "LOCAL_CLUSTER"]

#: ``scheduler`` value that starts a Dask ``LocalCluster`` for the run.
LOCAL_CLUSTER = "local"
#: Name of the raw file in a job's directory (``@RAW@`` in a deck stands for it).
RAW_NAME = "out.raw"


@dataclass(frozen=True)
class Job:
    """One ngspice process.

    Attributes
    ----------
    files : Mapping[str, str]
        File name -> netlist text, written into a fresh directory (``@RAW@`` in a text
        is replaced by the raw file's name).
    main : str
        The file ngspice runs (``ngspice -b main``).
    analysis, where : str
        For messages: the analysis (``.op``, ``.tran``) and the circuit's title.
    use_r : bool
        Pass ``-r`` (the deck's own analyses write the raw file); otherwise the deck's
        ``.control`` block writes it.
    timeout_s : float
        Wall-clock limit of the process (s).
    executable : str, optional
        ngspice to run (resolved where the job runs, see :func:`find_ngspice`).
    ascii_raw : bool
        Raw file in ASCII rather than binary.
    """

    files: Mapping[str, str]
    main: str
    analysis: str
    where: str
    use_r: bool
    timeout_s: float
    executable: str | None = None
    ascii_raw: bool = False


@dataclass(frozen=True)
class JobResult:
    """What a job produced: the raw file's plots, ngspice's output text, and which
    ngspice ran (path and version, on the machine that ran it)."""

    plots: list[RawPlot]
    text: str
    ngspice: str
    ngspice_version: str = field(default="unknown")


#: Most output (stdout and stderr) one batch ngspice run may print; results travel in
#: the raw file, so only diagnostics are read from it.
MAX_OUTPUT_BYTES = 256 << 20


def run_job(job: Job) -> JobResult:
    """Run ``job`` in a temporary directory; raise :class:`BackendError` on a timeout,
    a reported failure, a non-zero exit status or a missing raw file."""
    exe = find_ngspice(job.executable)
    with tempfile.TemporaryDirectory(prefix="hwbp-ngspice-") as tmp:
        # ngspice runs in ``tmp``: relative names need no quoting (``tmp`` may hold spaces)
        for name, text in job.files.items():
            (Path(tmp) / name).write_text(text.replace("@RAW@", RAW_NAME), encoding="ascii")
        raw = Path(tmp) / RAW_NAME
        cmd = [exe, "-b", job.main] + (["-r", RAW_NAME] if job.use_r else [])
        env = dict(os.environ, SPICE_ASCIIRAWFILE="1" if job.ascii_raw else "0")
        try:
            code, stdout, stderr = run_bounded(cmd, cwd=tmp, timeout_s=job.timeout_s, env=env,
                                               limit_bytes=MAX_OUTPUT_BYTES)
        except subprocess.TimeoutExpired:
            raise timeout_error(job.analysis, job.where, job.timeout_s) from None
        except OutputLimitExceeded:
            raise BackendError(f"ngspice {job.analysis} of {job.where}: {exe} printed more than "
                               f"{MAX_OUTPUT_BYTES >> 20} MiB; is it ngspice?") from None
        except OSError as exc:
            raise BackendError(f"ngspice {job.analysis} of {job.where}: cannot run {exe} ({exc.strerror}); "
                               f"install it: {APT_HINT}") from None
        text = stdout.decode("utf-8", "replace") + "\n" + stderr.decode("utf-8", "replace")
        classify(text, job.analysis, job.where)
        if code != 0:
            last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(no output)"]
            raise BackendError(f"ngspice {job.analysis} of {job.where}: exit status {code} "
                               f"({last[0][:160]})")
        if not raw.is_file():
            raise missing_results(text, job.analysis, job.where, "no results were written")
        plots = parse_raw(raw.read_bytes(), f"raw file of {job.where}")
    return JobResult(plots, text, exe, ngspice_version(exe))


class Pool:
    """Runs jobs: on up to :attr:`size` local threads (each driving its own ngspice
    process), or as tasks on a Dask cluster (:attr:`client`; :attr:`size` is then its
    worker threads).  Make one with :func:`pool`."""

    def __init__(self, size: int, client=None) -> None:
        self.size = max(1, int(size))
        self.client = client

    def map(self, jobs: Sequence[Job], desc: str | None = None) -> list[JobResult]:
        """The results of ``jobs`` in order; the first error is raised.  ``desc``: show a
        progress bar (tqdm, on a terminal) of the jobs done, with this label."""
        if desc is not None:
            return self._map_progress(list(jobs), desc)
        if self.client is not None:
            return self.client.gather(self.client.map(run_job, list(jobs), pure=False))
        if self.size == 1 or len(jobs) <= 1:
            return [run_job(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=min(self.size, len(jobs))) as ex:
            return list(ex.map(run_job, jobs))

    def _map_progress(self, jobs: list[Job], desc: str) -> list[JobResult]:
        """:meth:`map` with a progress bar, advanced as each job completes."""
        from concurrent.futures import as_completed
        from tqdm import tqdm

        with tqdm(total=len(jobs), desc=desc, unit="job", disable=None, leave=False) as bar:
            if self.client is not None:
                from distributed import as_completed as dask_completed

                futures = self.client.map(run_job, jobs, pure=False)
                for _ in dask_completed(futures):
                    bar.update()
                return self.client.gather(futures)
            with ThreadPoolExecutor(max_workers=max(1, min(self.size, len(jobs)))) as ex:
                futures = [ex.submit(run_job, j) for j in jobs]
                for _ in as_completed(futures):
                    bar.update()
                return [f.result() for f in futures]


@contextmanager
def pool(workers: int = 1, scheduler: str | None = None) -> Iterator[Pool]:
    """The :class:`Pool` for ``workers`` local ngspice processes at once, or for a Dask
    ``scheduler``: an address (``tcp://host:8786``; as many jobs as the cluster has
    worker threads) or ``"local"`` (a ``LocalCluster`` of ``workers`` single-threaded
    workers in this process, started for the call: enough, since each task waits on its
    own ngspice process).  The client and cluster are closed on exit."""
    if scheduler is None:
        yield Pool(workers)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--spice-scheduler needs dask.distributed (pip install -c constraints.txt "
                          "'hwbp[dask]')") from None
    cluster = None
    try:
        if scheduler == LOCAL_CLUSTER:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="30s")
    except (ValueError, TypeError) as exc:  # a malformed address
        raise ConfigError(f"--spice-scheduler {scheduler!r}: not a Dask scheduler address (tcp://HOST:PORT, or "
                          f"'{LOCAL_CLUSTER}'): {exc}") from None
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise BackendError(f"--spice-scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
    try:
        yield Pool(sum(client.nthreads().values()), client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
