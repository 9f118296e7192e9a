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
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run or resume a sweep and write its results."""
    from hwbp.errors import ConfigError
    from hwbp.sweep.report import write_results
    from hwbp.sweep.run import columns, load_rows, run_sweep
    from hwbp.sweep.spec import load_spec

    if args.scheduler and args.workers:
        raise ConfigError("--workers sizes a local cluster; it does not apply with --scheduler")
    spec = load_spec(args.spec)
    out = Path(args.out)
    tasks = spec.tasks()
    before = len(load_rows(out, len(tasks))) if out.is_dir() else 0
    if before:
        print(f"resuming: {before} of {len(tasks)} rows already done in {out}")
    rows = run_sweep(spec, out, scheduler=args.scheduler, workers=args.workers)
    paths = write_results(rows, spec, out, columns(spec))
    failed = sum(1 for r in rows if r.get("error"))
    print(f"{len(rows)} rows ({len(rows) - before} run now, {failed} failed)")
    for p in paths:
        print(f"wrote {p}")
    return 0
