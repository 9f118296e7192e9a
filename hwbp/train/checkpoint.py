"""Training checkpoints that resume exactly: parameters, optimizer moments, the
shuffling generator's state, the current epoch's order and position, and the history.

One ``.npz`` file (no pickle: arrays, and the metadata as a JSON string), written
atomically.  Resuming from a checkpoint gives bit-identical parameters to a run
that never stopped.
"""

from __future__ import annotations

import json
import zipfile
import zlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "FORMAT"]

#: Format tag stored in the checkpoint.
FORMAT = "hwbp.checkpoint/1"


@dataclass
class Checkpoint:
    """Everything a run needs to continue: see the module docstring."""

    params: dict[str, np.ndarray]
    opt_step: int
    opt_m: dict[str, np.ndarray]
    opt_v: dict[str, np.ndarray]
    rng_state: dict[str, Any]
    epoch: int
    step_in_epoch: int
    order: np.ndarray
    history: dict[str, list] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike, ck: Checkpoint) -> None:
    """Write ``ck`` to ``path`` (``.npz``) atomically."""
    from hwbp.io import save_npz

    meta = {"format": FORMAT, "opt_step": ck.opt_step, "rng_state": ck.rng_state, "epoch": ck.epoch,
            "step_in_epoch": ck.step_in_epoch, "history": ck.history, "config": ck.config}
    arrays = {f"param/{k}": v for k, v in ck.params.items()}
    arrays.update({f"m/{k}": v for k, v in ck.opt_m.items()})
    arrays.update({f"v/{k}": v for k, v in ck.opt_v.items()})
    arrays["order"] = np.asarray(ck.order, dtype=np.int64)
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    save_npz(path, arrays)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    ConfigError
        If the file is not a readable hwbp checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(bytes(data.pop("meta")).decode())
    except FileNotFoundError:
        raise ConfigError(f"--resume {path}: no such checkpoint file") from None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # a truncated file is a BadZipFile; a single .npy array is no context manager
        raise ConfigError(f"--resume {path}: not a readable hwbp checkpoint ({exc})".splitlines()[0]) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConfigError(f"--resume {path}: not a checkpoint of format {FORMAT!r}")

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}

    try:
        return Checkpoint(part("param/"), int(meta["opt_step"]), part("m/"), part("v/"), meta["rng_state"],
                          int(meta["epoch"]), int(meta["step_in_epoch"]), data["order"], meta["history"],
                          meta.get("config", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"--resume {path}: incomplete hwbp checkpoint (missing or bad {exc})".splitlines()[0]) \
            from None
