"""Reader (and, for tests and tools, writer) of the IDX format of MNIST and Fashion-MNIST.

An IDX file is a big-endian header -- two zero bytes, a type code (0x08 unsigned
byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the
number of dimensions -- then one uint32 per dimension, then the data in C order.
Files ending in ``.gz`` are gunzipped.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
import struct
from pathlib import Path

import numpy as np

from hwbp.errors import HwbpError

__all__ = ["IdxFormatError", "read_idx", "write_idx"]

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxFormatError(HwbpError, ValueError):
    """A file is not a readable IDX file (bad magic, truncated, wrong size)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzipped when it ends in ``.gz``).

    Raises
    ------
    IdxFormatError
        If the header is not IDX or the data does not match its dimensions.
    FileNotFoundError
        If ``path`` does not exist.
    """
    p = Path(path)
    try:
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise IdxFormatError(f"{p}: cannot read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise IdxFormatError(f"{p}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    ndim = data[3]
    head = 4 + 4 * ndim
    if len(data) < head:
        raise IdxFormatError(f"{p}: truncated IDX header ({len(data)} bytes, {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", data[4:head])
    dtype = np.dtype(_TYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: 4 x 65536 dimensions do not wrap to 0
    if len(data) - head != expected:
        raise IdxFormatError(f"{p}: IDX data has {len(data) - head} bytes, dimensions {dims} need {expected}")
    return np.frombuffer(data, dtype=dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64) as an IDX file
    (gzipped when ``path`` ends in ``.gz``), atomically."""
    from hwbp.io import atomic_write_bytes

    arr = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _TYPES.items()}
    code = codes.get(arr.dtype.newbyteorder("=").str)
    if code is None:
        raise IdxFormatError(f"{path}: IDX cannot store dtype {arr.dtype}")
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw += np.ascontiguousarray(arr).astype(_TYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    atomic_write_bytes(path, raw)
