"""Regenerate the golden netlists in this directory.

Run from the project root after an intended change of the emitted text::

    .venv/bin/python tests/golden/regen.py

then review ``git diff tests/golden`` and commit.  ``tests/test_spice_emit.py``
fails whenever the emitter's output differs from these files, and also simulates
each golden netlist in ngspice and compares it with the oracle.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from hwbp.lower import lower  # noqa: E402
from hwbp.models import random_mlp, random_resmlp  # noqa: E402
from hwbp.targets.spice.emit import write_netlists  # noqa: E402

#: Golden case -> graph with its loss port.
CASES = {
    "mlp_tanh_mse": lambda: random_mlp([3, 4, 2], activation="tanh", seed=0, name="mlp_tanh_mse").with_loss("mse"),
    "resmlp_ce": lambda: random_resmlp(3, 4, 3, 1, activation="sigmoid", seed=1, name="resmlp_ce").with_loss("ce"),
    "mlp_tanh_mse_pair": lambda: random_mlp([3, 4, 2], activation="tanh", seed=0,
                                            name="mlp_tanh_mse_pair").with_loss("mse"),
}
#: Golden case -> options other than the defaults.
OPTIONS = {"mlp_tanh_mse_pair": {"realization": "pair"}}


def main() -> None:
    for name, make in CASES.items():
        for stale in (HERE / name).rglob("*.cir"):  # files the emitter no longer writes
            stale.unlink()
        for path in write_netlists(lower(make()), HERE / name, **OPTIONS.get(name, {})):
            print(f"wrote {path.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
