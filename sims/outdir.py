"""Where a study writes: its committed results only on a full default run.

Every script under ``sims/`` takes ``-o DIR``.  Without it a run with the default
options writes the committed results beside the script; a reduced or changed run
(``--quick``, fewer samples, other widths, ...) writes to a scratch directory
(``$TMPDIR/hwbp-sims/<study>``) and says so, so that it never overwrites what is
committed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Iterable

__all__ = ["add_out_arg", "output_dir", "scratch_dir"]


def add_out_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``-o/--out DIR`` to ``parser``."""
    parser.add_argument("-o", "--out", metavar="DIR", default=None,
                        help="output directory (default: beside the script for a full default run, else a "
                             "scratch directory: reduced runs never overwrite the committed results)")


def scratch_dir(study: str) -> Path:
    """The scratch directory of ``study``."""
    return Path(tempfile.gettempdir()) / "hwbp-sims" / study


def output_dir(parser: argparse.ArgumentParser, args: argparse.Namespace, committed: Path, study: str,
               neutral: Iterable[str] = ()) -> Path:
    """``-o`` when given; else ``committed`` when every option has its default (options
    named in ``neutral`` do not change the results, e.g. a worker count); else the
    scratch directory of ``study``, announced on stdout.  The directory is created."""
    if args.out is not None:
        out = Path(args.out)
    else:
        skip = {"help", "out", *neutral}
        changed = [a.option_strings[-1] if a.option_strings else a.dest for a in parser._actions
                   if a.dest not in skip and getattr(args, a.dest, a.default) != a.default]
        if not changed:
            out = committed
        else:
            out = scratch_dir(study)
            print(f"{study}: a run with {', '.join(changed)} writes to {out} (give -o DIR to choose; the "
                  f"committed results in {committed} are kept)")
    out.mkdir(parents=True, exist_ok=True)
    return out
