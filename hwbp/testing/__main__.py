"""``python -m hwbp.testing NAME [PYTEST ARGS...]``: the conformance suite for the
registered backend ``NAME``, from any directory (extra arguments go to pytest, e.g.
``-m "not slow"``, ``-k tanh``, ``-x``).  Exit status: pytest's (0 every case passed or
was skipped; 1 a case failed; 2 bad usage)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

USAGE = "usage: python -m hwbp.testing NAME [PYTEST ARGS...]  (NAME: a registered backend; see 'hwbp backends')"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite for one backend; return pytest's exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    import pytest

    here = Path(__file__).resolve().parent
    return int(pytest.main([str(here / "test_conformance.py"), "-p", "hwbp.testing.plugin", "-p", "no:cacheprovider",
                            "--rootdir", str(here), "--backend", args[0], *args[1:]]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
