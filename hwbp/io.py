"""File I/O: loading models and batches, and atomic writes.

Loading never executes code from a file: ONNX goes through protobuf, native models
and batches through ``numpy.load(..., allow_pickle=False)``.  Every write goes to a
temporary file in the destination directory and is renamed into place, so a failed
run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from hwbp.errors import BatchError, ConfigError, StateError
from hwbp.ir.graph import Graph
from hwbp.ir.serialize import graph_from_bytes, graph_to_bytes
from hwbp.state import State
from hwbp.types import Batch

__all__ = [
    "MODEL_FORMATS", "load_model", "save_model", "file_sha256", "load_batch", "load_state", "random_batch",
    "atomic_write_bytes", "atomic_write_text", "atomic_write_all", "save_npz", "check_writable",
    "check_batch_memory", "MAX_BATCH_VALUES", "read_toml",
]

#: Model file suffixes hwbp reads.
MODEL_FORMATS = (".onnx", ".hwbp")


def _read(path: str | os.PathLike, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    return p.read_bytes()


def load_model(path: str | os.PathLike, *, output: str | None = None) -> Graph:
    """Load a model by suffix: ``.onnx`` (ONNX) or ``.hwbp`` (native archive).

    ``output`` picks the ONNX tensor to import as the model's output (see
    :func:`hwbp.importers.onnx.load_onnx_bytes`); a native archive has one output."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in MODEL_FORMATS:
        raise ConfigError(f"{p}: unknown model format {suffix or '(none)'!r}; valid: {', '.join(MODEL_FORMATS)}")
    data = _read(p, "model")
    if suffix == ".onnx":
        from hwbp.importers.onnx import load_onnx_bytes

        return load_onnx_bytes(data, source=str(p), name=p.stem, base_dir=p.resolve().parent, output=output)
    graph = graph_from_bytes(data, source=str(p))
    if output is not None and output != graph.output:
        raise ConfigError(f"{p}: --output {output!r}: a native model has the one output {graph.output!r}")
    return graph


def save_model(graph: Graph, path: str | os.PathLike) -> None:
    """Save ``graph`` in the native format (atomically)."""
    atomic_write_bytes(path, graph_to_bytes(graph))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (never unpickled), or a one-line ``ConfigError``."""
    where = str(path)
    data = _read(path, what)
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"{where}: not a readable .npz {what} file ({exc})") from None
    return arrays


def load_batch(path: str | os.PathLike, graph: Graph, *, loss: str | None = None) -> Batch:
    """Load a batch from an ``.npz`` file and validate it against ``graph``.

    The file holds ``x`` ``(batch, n_in)`` (or ``x/<input name>`` arrays for a model
    with several inputs) and ``y``: ``(batch, n_out)`` targets, or, for ``loss="ce"``,
    ``(batch,)`` integer class labels (one-hot encoded on load) or probability rows.
    ``loss`` defaults to the graph's loss port (``mse`` when it has none).
    """
    if loss is None:
        loss = graph.loss.function if graph.loss is not None else "mse"
    where = str(path)
    try:
        arrays = _read_npz(path, "batch")
    except ConfigError as exc:
        raise BatchError(str(exc)) from None
    named = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("x/")}
    x: object = named if named else arrays.get("x")
    if x is None or "y" not in arrays:
        raise BatchError(
            f"{where}: found arrays {sorted(arrays)}; need 'x' (or 'x/<input>' per input) and 'y'"
        )
    sizes = {n.name: n.size for n in graph.inputs}
    return Batch.for_model(sizes, graph.size(graph.output), x, arrays["y"], loss=loss, where=where)


def load_state(path: str | os.PathLike) -> State:
    """Load a state saved by ``hwbp simulate`` (arrays ``activation/<population>`` and
    ``tension/<population>``), e.g. to resume a simulation from it.

    Raises
    ------
    StateError
        If the file is missing or unreadable, or its arrays do not form a state (like
        :func:`load_batch` raises :class:`BatchError`); one line naming the file.
    """
    where = str(path)
    try:
        arrays = _read_npz(path, "state")
    except ConfigError as exc:
        raise StateError(str(exc)) from None
    mean = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("activation/")}
    tension = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("tension/")}
    if not mean or set(mean) != set(tension):
        raise StateError(f"{where}: a state needs matching 'activation/<population>' and 'tension/<population>' arrays")
    for key, arr in [*mean.items(), *tension.items()]:
        if arr.dtype.kind not in "fiu" or not np.all(np.isfinite(arr)):
            raise StateError(f"{where}: array of population {key!r} must be finite numbers, got dtype {arr.dtype}")
    return State(mean, tension)


#: Largest number of float64 values a batch may make the backends hold (``batch size x``
#: every neuron's activation and tension): 2**27 values, 1 GiB.
MAX_BATCH_VALUES = 2 ** 27


def check_batch_memory(graph: Graph, size: int, what: str = "batch") -> None:
    """Raise a one-line :class:`BatchError` when ``size`` samples of ``graph`` would need
    more than :data:`MAX_BATCH_VALUES` float64 values (inputs, targets, and each neuron's
    activation and tension)."""
    per_sample = sum(n.size for n in graph.inputs) + 2 * sum(graph.size(n.name) for n in graph.nodes
                                                             if n is not graph.loss)
    if size * per_sample > MAX_BATCH_VALUES:
        raise BatchError(f"{what} of {size} samples needs {size * per_sample * 8 / 2 ** 30:.3g} GiB "
                         f"({per_sample} float64 values per sample); the limit is "
                         f"{MAX_BATCH_VALUES * 8 / 2 ** 30:.3g} GiB, i.e. at most "
                         f"{MAX_BATCH_VALUES // per_sample} samples for this model")


def random_batch(graph: Graph, size: int, *, seed: int = 0, loss: str | None = None) -> Batch:
    """A reproducible random batch: ``x ~ N(0, 1)``; ``y ~ N(0, 1)`` for mse or random
    one-hot classes for ce (``loss`` defaults to the graph's loss port, else mse).

    Raises
    ------
    BatchError
        For ``size < 1`` or a batch beyond :data:`MAX_BATCH_VALUES`.
    """
    if loss is None:
        loss = graph.loss.function if graph.loss is not None else "mse"
    if size < 1:
        raise BatchError(f"random batch size must be >= 1, got {size}")
    check_batch_memory(graph, size, "--random-batch")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    x = {n.name: rng.standard_normal((size, n.size)) for n in graph.inputs}
    n_out = graph.size(graph.output)
    y = np.eye(n_out)[rng.integers(0, n_out, size)] if loss == "ce" else rng.standard_normal((size, n_out))
    return Batch.for_model({n.name: n.size for n in graph.inputs}, n_out, x, y, loss=loss)


def check_writable(path: str | os.PathLike, flag: str = "output") -> None:
    """Raise a one-line ``ConfigError`` now if ``path`` cannot be written later: it is
    a directory, a parent is a file, or its nearest existing directory does not take a
    new file (read-only file system or permissions; probed by creating and removing a
    temporary file, which also holds for root)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {p}: is a directory, expected a file path")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {p}: {parent} is a file, not a directory")
            try:
                fd, probe = tempfile.mkstemp(prefix=".hwbp-probe.", dir=parent)
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise ConfigError(f"{flag} {p}: cannot write in {parent} ({exc.strerror or exc})") from None
            break


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    p = Path(path)
    check_writable(p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {p}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, p)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write {p}: {exc.strerror or exc}") from None
        raise


def atomic_write_all(files: Mapping[str | os.PathLike, bytes], flag: str = "output") -> list[Path]:
    """Write several files all or none: every destination is checked before anything is
    created (a one-line ``ConfigError`` naming ``flag``), every file goes to a temporary
    name first, and only when all of them are written are they renamed into place.
    Returns the paths, in order."""
    paths = [Path(path) for path in files]
    for p in paths:
        check_writable(p, flag)
    temps: list[tuple[str, Path]] = []
    made: list[Path] = []  # directories created here, removed again if a write fails
    ok = False
    try:
        for p, data in zip(paths, files.values()):
            try:
                missing = [d for d in (p.parent, *p.parent.parents) if not d.exists()]
                p.parent.mkdir(parents=True, exist_ok=True)
                made += [d for d in missing if d not in made]
                fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
                temps.append((tmp, p))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, 0o666 & ~_umask())
            except OSError as exc:
                raise ConfigError(f"cannot write {p}: {exc.strerror or exc}") from None
        for tmp, p in temps:
            os.replace(tmp, p)
        ok = True
        return paths
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if not ok:
            for d in made:  # deepest first: each was created empty by this call
                with contextlib.suppress(OSError):
                    d.rmdir()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An uncompressed ``.npz`` of ``arrays``: members sorted by name, fixed zip
    timestamps, no pickle, so the same arrays always give the same bytes
    (``numpy.savez`` stamps the current time); ``numpy.load(..., allow_pickle=False)``
    reads it.  An array of dtype object is a ``TypeError``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for key in sorted(arrays):
            value = np.asarray(arrays[key])
            if value.dtype == object:
                raise TypeError(f"array {key!r} has dtype object (would need pickle)")
            member = io.BytesIO()
            if value.ndim and not value.flags.c_contiguous:  # (ascontiguousarray would make a 0-d array 1-d)
                value = np.ascontiguousarray(value)
            np.lib.format.write_array(member, value, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, member.getvalue())
    return buf.getvalue()


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Save arrays to an uncompressed ``.npz`` atomically (names may contain ``/``)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def read_toml(path: str | os.PathLike, what: str) -> dict:
    """The mapping in the TOML file at ``path``; ``what`` names the file in the one-line
    :class:`ConfigError` for a missing file or invalid TOML."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
