"""``python -m hwbp``: the command line (same as the ``hwbp`` script)."""

import sys

from hwbp.cli import main

sys.exit(main())
