"""Running a sweep: every (grid point, backend, instance) is one task on a Dask cluster.

Each task is a pure function of the spec and its own seeds, so the numbers do not
depend on how many workers ran them or in which order.  Every finished row is appended
(and flushed to disk) to ``rows.jsonl`` at once; a sweep started again on the same
output directory reads it and runs only the rows that are missing, and again the rows
that failed (unless ``retry=False``).  A task that fails (an exception in the backend,
a lost worker) is a row with its error.  Nothing is written before the spec, its
model and batch and the cluster are known to be usable, so a start that fails leaves
no rows behind for a later run to resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hwbp.errors import ConfigError
from hwbp.sweep.spec import SweepSpec, Task

__all__ = ["run_task", "run_sweep", "fingerprint", "load_rows", "columns", "check_problem", "pending_tasks",
           "failure_groups", "ROWS_FILE"]

ROWS_FILE = "rows.jsonl"
SPEC_FILE = "spec.json"


def fingerprint(spec: SweepSpec) -> str:
    """Hash of everything that decides a sweep's numbers (not its source path)."""
    data = spec.as_mapping()
    data.pop("source")
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


_PROBLEMS: dict[str, Any] = {}


def _problem(spec: SweepSpec):
    """The sweep's graph and batch, built once per process."""
    key = fingerprint(spec)
    if key not in _PROBLEMS:
        _PROBLEMS.clear()
        _PROBLEMS[key] = _build_problem(spec)
    return _PROBLEMS[key]


def _build_problem(spec: SweepSpec):
    from hwbp.io import load_batch, load_model, random_batch
    from hwbp.models import random_mlp

    if spec.model is not None:
        graph = load_model(spec.model)
    else:
        m = spec.mlp
        graph = random_mlp(m["sizes"], activation=m.get("activation", "tanh"), seed=m.get("seed", 0),
                           gain=m.get("gain", 1.0))
    graph = graph.with_loss(spec.loss)
    if spec.batch is not None:
        batch = load_batch(spec.batch, graph, loss=spec.loss)
    else:
        batch = random_batch(graph, spec.random_batch, seed=spec.seed, loss=spec.loss)
    return graph, batch


def check_problem(spec: SweepSpec) -> None:
    """Load the sweep's model and batch (raising the loader's one-line error), so that a
    sweep whose model file is missing or unreadable is refused before it writes."""
    from hwbp.errors import HwbpError

    try:
        _problem(spec)
    except HwbpError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{spec.source}: cannot load the sweep's model or batch: {exc}".splitlines()[0]) from None


def pending_tasks(spec: SweepSpec, done: dict[int, dict[str, Any]], retry: bool = True) -> list[Task]:
    """Tasks still to run: those without a row, and (``retry``) those whose row failed."""
    return [t for t in spec.tasks() if t.id not in done or (retry and done[t.id].get("error"))]


def failure_groups(rows: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """Failed rows grouped by their error message: (error, row ids), most rows first."""
    groups: dict[str, list[int]] = {}
    for r in rows:
        if r.get("error"):
            groups.setdefault(str(r["error"]), []).append(int(r["id"]))
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))


def parameter_names(spec: SweepSpec) -> list[str]:
    """The model's parameters, in lowering order (one group of columns each)."""
    from hwbp.lower.lowerer import lower

    graph, _ = _problem(spec)
    return list(lower(graph).parameters)


def columns(spec: SweepSpec) -> list[str]:
    """The CSV columns of a sweep."""
    cols = ["id", "point", "backend", "instance", "seed", *[k for k, _ in spec.grid],
            "cos_nominal", "rel_err_nominal", "cos_own", "rel_err_own",
            "loss_circuit", "loss_nominal", "loss_own", "acc_circuit", "acc_nominal"]
    for p in parameter_names(spec):
        cols += [f"cos_nominal[{p}]", f"rel_err_nominal[{p}]", f"cos_own[{p}]", f"rel_err_own[{p}]"]
    return cols + ["error"]


def run_task(spec: SweepSpec, task: Task) -> dict[str, Any]:
    """Run one task: verify one device instance on one backend; a row (dict).  Any
    exception becomes the row's ``error`` (one line)."""
    row: dict[str, Any] = {"id": task.id, "point": task.point, "backend": task.backend,
                           "instance": task.instance, "seed": task.seed, **dict(task.values)}
    t0 = time.perf_counter()
    try:
        from hwbp.verify.run import verify

        graph, batch = _problem(spec)
        hw = spec.hardware_at(task.values)
        v = verify(graph, batch, backend=task.backend, beta=spec.beta, options=spec.backends[task.backend],
                   hardware=hw, seed=task.seed)
        h = v.report["hardware"]
        row.update({
            "cos_nominal": h["nominal"]["total"]["cosine"], "rel_err_nominal": h["nominal"]["total"]["rel_err"],
            "cos_own": h["own"]["total"]["cosine"], "rel_err_own": h["own"]["total"]["rel_err"],
            "loss_circuit": h["loss"]["physical"], "loss_nominal": h["loss"]["nominal"], "loss_own": h["loss"]["own"],
            "acc_circuit": h["accuracy"]["physical"], "acc_nominal": h["accuracy"]["nominal"],
        })
        for ref in ("nominal", "own"):
            for p, m in h[ref]["parameters"].items():
                row[f"cos_{ref}[{p}]"] = m["cosine"]
                row[f"rel_err_{ref}[{p}]"] = m["rel_err"]
        row["error"] = ""
    except Exception as exc:  # a failed task is a row with its error, never a lost sweep
        row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    row["_seconds"] = time.perf_counter() - t0
    return row


def run_chunk(spec: SweepSpec, tasks: list[Task]) -> list[dict[str, Any]]:
    """Run several tasks in one Dask task (amortizes the scheduling of short tasks)."""
    return [run_task(spec, t) for t in tasks]


def _chunks(tasks: list[Task], n_workers: int, chunk: int | None) -> list[list[Task]]:
    """Groups of consecutive tasks: ``chunk`` each, or (default) about 4 groups per
    worker, at most 16 tasks each.  Rows do not depend on the grouping."""
    if chunk is None:
        chunk = max(1, min(16, len(tasks) // (4 * max(1, n_workers))))
    return [tasks[i:i + chunk] for i in range(0, len(tasks), chunk)]


def load_rows(out: Path, n_tasks: int) -> dict[int, dict[str, Any]]:
    """Rows already done in ``out`` (a torn last line from a killed run is ignored)."""
    rows: dict[int, dict[str, Any]] = {}
    path = out / ROWS_FILE
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("id"), int) and 0 <= row["id"] < n_tasks:
            rows[row["id"]] = row
    return rows


def _check_directory(spec: SweepSpec, out: Path) -> None:
    """Refuse an output path that is a file or holds another sweep (reads only)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a directory")
    meta = out / SPEC_FILE
    if meta.is_file():
        try:
            old = json.loads(meta.read_text(encoding="utf-8")).get("fingerprint")
        except (json.JSONDecodeError, AttributeError):
            old = None
        if old != fingerprint(spec):
            raise ConfigError(f"{out} holds the rows of a different sweep (spec changed); choose another -o")


def _prepare(spec: SweepSpec, out: Path, retry: bool = False) -> dict[int, dict[str, Any]]:
    from hwbp.io import atomic_write_text

    _check_directory(spec, out)
    out.mkdir(parents=True, exist_ok=True)
    meta = out / SPEC_FILE
    if not meta.is_file():
        atomic_write_text(meta, json.dumps({"fingerprint": fingerprint(spec), "spec": spec.as_mapping()}, indent=1,
                                           default=str) + "\n")
    tasks = spec.tasks()
    done = load_rows(out, len(tasks))
    if retry:  # the failed rows are run again: their new rows replace them
        done = {i: r for i, r in done.items() if not r.get("error")}
    # rewrite without a torn line (nor the rows run again), so that appends start on a fresh line
    atomic_write_text(out / ROWS_FILE, "".join(json.dumps(done[i]) + "\n" for i in sorted(done)))
    return done


_ADDRESS = re.compile(r"^(?:(?:tcp|tls|inproc|ucx|ws|wss)://\S+|[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


def check_scheduler(address: str) -> None:
    """Refuse a scheduler address that is neither ``protocol://...`` (tcp, tls, inproc,
    ucx, ws, wss) nor ``host:port``."""
    if not _ADDRESS.match(address):
        raise ConfigError(f"--scheduler {address!r}: not a Dask scheduler address; give [tcp://]HOST:PORT")


def _client(scheduler: str | None, workers: int | None, processes: bool):
    from distributed import Client, LocalCluster

    if scheduler:
        check_scheduler(scheduler)
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, ValueError, TypeError) as exc:  # unreachable, refused, malformed
            raise ConfigError(f"--scheduler {scheduler}: cannot connect ({exc})".splitlines()[0]) from None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=None)
    return Client(cluster), cluster


def run_sweep(spec: SweepSpec, out: str | os.PathLike, *, scheduler: str | None = None, workers: int | None = None,
              processes: bool = True, progress: bool | None = None, chunk: int | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None, retry: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) ``spec`` into directory ``out``; return every row, sorted by id.

    Parameters
    ----------
    spec : SweepSpec
    out : path
        Output directory: ``rows.jsonl`` (rows as they finish), ``spec.json``.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); default: a
        ``LocalCluster`` of ``workers`` single-threaded workers.
    workers : int, optional
        Local workers (default: the machine's CPU count).
    processes : bool
        Local workers as processes (True) or threads.
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).
    chunk : int, optional
        Tasks per Dask task (default: about 4 per worker, at most 16).
    on_row : callable, optional
        Called with every row as it arrives.
    retry : bool
        Run again the rows that failed in an earlier run on ``out`` (default); False
        keeps them as they are.
    """
    from tqdm import tqdm

    out = Path(out)
    tasks = spec.tasks()
    check_problem(spec)
    _check_directory(spec, out)
    existing = load_rows(out, len(tasks)) if out.is_dir() else {}
    pending = pending_tasks(spec, existing, retry)
    if not pending:
        return [existing[i] for i in sorted(existing)]
    from distributed import as_completed

    if progress is None:
        progress = sys.stderr.isatty()
    client, cluster = _client(scheduler, workers, processes)
    try:
        done = _prepare(spec, out, retry)
        pending = pending_tasks(spec, done, retry)
        key = fingerprint(spec)
        n_workers = len(client.nthreads()) or 1
        futures = {client.submit(run_chunk, spec, group, key=f"hwbp-sweep-{key}-{group[0].id}", pure=False): group
                   for group in _chunks(pending, n_workers, chunk)}
        with open(out / ROWS_FILE, "a", encoding="utf-8") as fh, \
                tqdm(total=len(tasks), initial=len(tasks) - len(pending), disable=not progress, desc="sweep",
                     unit="row", file=sys.stderr) as bar:
            for fut in as_completed(futures):
                group = futures[fut]
                try:
                    rows = fut.result()
                except Exception as exc:  # a lost worker, a failed deserialization
                    rows = [{"id": t.id, "point": t.point, "backend": t.backend, "instance": t.instance,
                             "seed": t.seed, **dict(t.values),
                             "error": f"{type(exc).__name__}: {exc}".splitlines()[0]} for t in group]
                fh.write("".join(json.dumps(row) + "\n" for row in rows))
                fh.flush()
                os.fsync(fh.fileno())
                for row in rows:
                    done[row["id"]] = row
                    if on_row is not None:
                        on_row(row)
                bar.update(len(rows))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return [done[i] for i in sorted(done)]
