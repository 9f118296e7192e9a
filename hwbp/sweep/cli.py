"""``hwbp sweep SPEC.toml -o DIR [--scheduler ADDRESS] [--workers N]``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_sweep_parser", "cmd_sweep"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` sub-command to the ``hwbp`` parser."""
    p = sub.add_parser("sweep", help="Monte Carlo over hardware instances: grid x instances x backends on Dask")
    p.add_argument("spec", help="sweep specification (.toml)")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="output directory: results.csv, summary.md, summary.png (a sweep there is resumed)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="local cluster: worker processes (default: the number of CPUs)")
    p.add_argument("--no-retry", dest="retry", action="store_false",
                   help="on a resumed sweep, keep the rows that failed before instead of running them again")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run or resume a sweep and write its results; 1 when rows failed (their errors
    listed once, grouped, on stderr), 0 when every row succeeded."""
    import sys

    from hwbp.errors import ConfigError
    from hwbp.sweep.report import write_results
    from hwbp.sweep.run import check_problem, check_scheduler, columns, failure_groups, load_rows, run_sweep
    from hwbp.sweep.spec import load_spec

    if args.scheduler and args.workers:
        raise ConfigError("--workers sizes a local cluster; it does not apply with --scheduler")
    if args.scheduler:
        check_scheduler(args.scheduler)
    spec = load_spec(args.spec)
    check_problem(spec)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a directory")
    tasks = spec.tasks()
    old = load_rows(out, len(tasks)) if out.is_dir() else {}
    old_failed = sum(1 for r in old.values() if r.get("error"))
    if old:
        line = f"resuming: {len(old)} of {len(tasks)} rows already done in {out}"
        if old_failed:
            line += (f"; retrying the {old_failed} that failed" if args.retry
                     else f"; keeping the {old_failed} that failed (--no-retry)")
        print(line)
    rows = run_sweep(spec, out, scheduler=args.scheduler, workers=args.workers, retry=args.retry)
    paths = write_results(rows, spec, out, columns(spec))
    groups = failure_groups(rows)
    failed = sum(len(ids) for _, ids in groups)
    ran = len(rows) - len(old) + (old_failed if args.retry else 0)
    print(f"{len(rows)} rows ({ran} run now, {failed} failed)")
    for p in paths:
        print(f"wrote {p}")
    if failed:
        print(f"hwbp: {failed} of {len(rows)} rows failed:", file=sys.stderr)
        for error, ids in groups:
            shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
            print(f"  {len(ids)} rows ({shown}): {error}", file=sys.stderr)
        return 1
    return 0
