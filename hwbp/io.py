"""File I/O: loading models and batches, and atomic writes.

Loading never executes code from a file: ONNX goes through protobuf, native models
and batches through ``numpy.load(..., allow_pickle=False)``.  Every write goes to a
temporary file in the destination directory and is renamed into place, so a failed
run leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from hwbp.errors import BatchError, ConfigError
from hwbp.ir.graph import Graph
from hwbp.ir.serialize import graph_from_bytes, graph_to_bytes
from hwbp.sim.state import State
from hwbp.types import Batch

__all__ = [
    "MODEL_FORMATS", "load_model", "save_model", "file_sha256", "load_batch", "load_state", "random_batch",
    "atomic_write_bytes", "atomic_write_text", "save_npz",
]

#: Model file suffixes hwbp reads.
MODEL_FORMATS = (".onnx", ".hwbp")


def _read(path: str | os.PathLike, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    return p.read_bytes()


def load_model(path: str | os.PathLike) -> Graph:
    """Load a model by suffix: ``.onnx`` (ONNX) or ``.hwbp`` (native archive)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in MODEL_FORMATS:
        raise ConfigError(f"{p}: unknown model format {suffix or '(none)'!r}; valid: {', '.join(MODEL_FORMATS)}")
    data = _read(p, "model")
    if suffix == ".onnx":
        from hwbp.importers.onnx import load_onnx_bytes

        return load_onnx_bytes(data, source=str(p), name=p.stem)
    return graph_from_bytes(data, source=str(p))


def save_model(graph: Graph, path: str | os.PathLike) -> None:
    """Save ``graph`` in the native format (atomically)."""
    atomic_write_bytes(path, graph_to_bytes(graph))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_batch(path: str | os.PathLike, graph: Graph) -> Batch:
    """Load ``x`` and ``y`` arrays from an ``.npz`` file and validate them against ``graph``.

    ``x`` is ``(batch, n_in)``; ``y`` is ``(batch, n_out)`` targets or ``(batch,)`` integer
    class labels (one-hot encoded on load).
    """
    where = str(path)
    data = _read(path, "batch")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise BatchError(f"{where}: not a readable .npz batch file ({exc})") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise BatchError(f"{where}: missing array(s) {missing}; found {sorted(arrays)}, need 'x' and 'y'")
    sizes = {n.name: n.size for n in graph.inputs}
    return Batch.for_model(sizes, graph.size(graph.output), arrays["x"], arrays["y"], where=where)


def load_state(path: str | os.PathLike) -> State:
    """Load a state saved by ``hwbp simulate`` (arrays ``activation/<population>`` and
    ``tension/<population>``), e.g. to resume a simulation from it."""
    where = str(path)
    data = _read(path, "state")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"{where}: not a readable .npz state file ({exc})") from None
    mean = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("activation/")}
    tension = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("tension/")}
    if not mean or set(mean) != set(tension):
        raise ConfigError(f"{where}: a state needs matching 'activation/<population>' and 'tension/<population>' arrays")
    return State(mean, tension)


def random_batch(graph: Graph, size: int, *, seed: int = 0, loss: str = "mse") -> Batch:
    """A reproducible random batch: ``x ~ N(0, 1)``; ``y ~ N(0, 1)`` for mse or random
    one-hot classes for ce."""
    if size < 1:
        raise BatchError(f"random batch size must be >= 1, got {size}")
    rng = np.random.default_rng(seed)
    x = {n.name: rng.standard_normal((size, n.size)) for n in graph.inputs}
    n_out = graph.size(graph.output)
    y = np.eye(n_out)[rng.integers(0, n_out, size)] if loss == "ce" else rng.standard_normal((size, n_out))
    return Batch.for_model({n.name: n.size for n in graph.inputs}, n_out, x, y)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Save arrays to an uncompressed ``.npz`` atomically (names may contain ``/``)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())
