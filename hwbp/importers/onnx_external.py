"""Safe reading of ONNX external data (tensors stored in a side file such as ``m.onnx.data``).

torch's default exporter (``torch.onnx.export(model, x, "m.onnx")``, the dynamo
exporter) stores every tensor above 1 KiB in ``m.onnx.data`` and records, per tensor,
``location``, ``offset`` and ``length``.  A model file is untrusted input, so:

* ``location`` must be a plain relative path inside the model's directory: no absolute
  path, no drive, no ``..``, no backslash, no NUL; after resolving symbolic links the
  file must still lie inside that directory and be a regular file;
* ``offset`` and ``length`` must be non-negative decimal integers, and the range must
  lie inside the file;
* ``length`` (or the rest of the file when it is absent) must be exactly the tensor's
  size, ``prod(dims) * itemsize`` of its element type.

Only that byte range is read (little-endian, as ONNX specifies); nothing is executed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx

from hwbp.errors import ModelFormatError

__all__ = ["read_external"]

_TP = onnx.TensorProto
#: Element type -> little-endian numpy dtype of its raw bytes.
_RAW_DTYPES = {
    _TP.FLOAT: "<f4", _TP.DOUBLE: "<f8", _TP.FLOAT16: "<f2",
    _TP.INT8: "i1", _TP.INT16: "<i2", _TP.INT32: "<i4", _TP.INT64: "<i8",
    _TP.UINT8: "u1", _TP.UINT16: "<u2", _TP.UINT32: "<u4", _TP.UINT64: "<u8", _TP.BOOL: "?",
}
_KEYS = ("location", "offset", "length", "checksum")


def _inside(base: Path, location: str, what: str) -> Path:
    """The file ``location`` names, checked to lie inside ``base`` (``what`` names the tensor)."""
    bad = (not location or "\0" in location or "\\" in location or os.path.isabs(location)
           or Path(location).drive or ".." in Path(location).parts)
    if bad:
        raise ModelFormatError(f"{what}: external data location {location!r} must be a relative path "
                               f"inside the model's directory")
    root = base.resolve()
    path = (root / location).resolve()
    if root != path and root not in path.parents:
        raise ModelFormatError(f"{what}: external data location {location!r} leads outside the model's "
                               f"directory (through a symbolic link)")
    if not path.is_file():
        raise ModelFormatError(f"{what}: external data file {location!r} not found next to the model")
    return path


def _integer(entries: dict[str, str], key: str, what: str) -> int | None:
    text = entries.get(key)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ModelFormatError(f"{what}: external data {key} {text!r} must be a non-negative integer")
    return int(text)


def read_external(proto: onnx.TensorProto, base_dir: str | os.PathLike | None, what: str) -> np.ndarray:
    """The values of ``proto``, whose data lie in an external file, as a float64 array.

    Parameters
    ----------
    proto : onnx.TensorProto
        A tensor with ``data_location == EXTERNAL``.
    base_dir : path or None
        The model file's directory; ``None`` (a model given as bytes) is an error.
    what : str
        Names the tensor (and the model) in error messages.

    Raises
    ------
    ModelFormatError
        For a location outside ``base_dir``, a missing file, a range outside the file,
        a length that does not match the tensor's shape and element type, or an
        element type that hwbp does not read.
    """
    if base_dir is None:
        raise ModelFormatError(f"{what} stores its data in an external file; load the model from its path "
                               f"(load_onnx / load_model) so the file next to it can be read")
    entries: dict[str, str] = {}
    for e in proto.external_data:
        if e.key not in _KEYS:
            raise ModelFormatError(f"{what}: unknown external data key {e.key!r}; valid: {', '.join(_KEYS)}")
        if e.key in entries:
            raise ModelFormatError(f"{what}: external data key {e.key!r} given twice")
        entries[e.key] = e.value
    dtype = _RAW_DTYPES.get(proto.data_type)
    if dtype is None:
        known = proto.data_type in _TP.DataType.values()
        name = _TP.DataType.Name(proto.data_type) if known else proto.data_type
        raise ModelFormatError(f"{what} has unsupported element type {name}")
    dims = [int(d) for d in proto.dims]
    if any(d < 0 for d in dims):
        raise ModelFormatError(f"{what}: negative dimension in shape {dims}")
    count = int(np.prod(dims, dtype=object)) if dims else 1
    expected = count * np.dtype(dtype).itemsize
    path = _inside(Path(base_dir), entries.get("location", ""), what)
    offset = _integer(entries, "offset", what) or 0
    length = _integer(entries, "length", what)
    size = path.stat().st_size
    if length is None:
        length = size - offset
    if offset + length > size or length < 0:
        raise ModelFormatError(f"{what}: external data range [{offset}, {offset + length}) lies outside "
                               f"{entries['location']!r} ({size} bytes)")
    if length != expected:
        raise ModelFormatError(f"{what}: external data holds {length} bytes but shape {dims} of "
                               f"{np.dtype(dtype).name} needs {expected}")
    with open(path, "rb") as fh:
        fh.seek(offset)
        raw = fh.read(length)
    if len(raw) != length:
        raise ModelFormatError(f"{what}: external data file {entries['location']!r} ended early")
    with np.errstate(all="ignore"):  # non-finite values are reported by Graph lint
        return np.frombuffer(raw, dtype=dtype).astype(np.float64).reshape(dims)
