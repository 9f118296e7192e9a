"""Native model format: one ZIP archive holding ``graph.json`` and ``.npy`` arrays.

Serialization goes through one registry (:data:`NODE_TYPES`, keyed by each node
class's ``kind``) and the dataclass fields of each node: array fields are stored as
``.npy`` members, every other field as JSON.  Arrays are read with
``allow_pickle=False``: loading a model never executes code from the file.

The functions here are pure (bytes in, bytes out); :mod:`hwbp.io` reads and writes files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from hwbp.errors import HwbpError, ModelFormatError
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, AvgPool, BatchNorm, Conv, Dense, Input, Loss, Node

__all__ = ["FORMAT", "NODE_TYPES", "graph_to_bytes", "graph_from_bytes"]

#: Format tag written into ``graph.json``.
FORMAT = "hwbp.graph/1"

#: Registry of serializable node types, by their ``kind``.
NODE_TYPES: Mapping[str, type[Node]] = MappingProxyType(
    {cls.kind: cls for cls in (Input, Dense, Activation, Add, Loss, Conv, AvgPool, BatchNorm)}
)


#: Fields added to a node type after format 1, with their defaults: written only when a
#: node's value differs, so archives of models that do not use them stay readable by
#: earlier versions (and byte-identical to what those wrote).
OPTIONAL_FIELDS: Mapping[tuple[str, str], Any] = MappingProxyType({("dense", "gain"): 1.0,
                                                                   ("dense", "has_bias"): True})


def _encode_node(node: Node, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": node.kind}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = (node.kind, f.name)
        if key in OPTIONAL_FIELDS and value == OPTIONAL_FIELDS[key]:
            continue  # a field added after format 1, at its default: older readers load the archive
        if value is None and f.default is None:
            continue  # optional field left at its default (e.g. an untied Dense): older readers load it
        if isinstance(value, np.ndarray):
            key = f"arrays/{len(arrays)}.npy"
            arrays[key] = value
            record[f.name] = {"array": key}
        elif isinstance(value, tuple):
            record[f.name] = list(value)
        else:
            record[f.name] = value
    return record


def graph_to_bytes(graph: Graph) -> bytes:
    """Serialize ``graph`` to the native archive format (deterministic bytes)."""
    arrays: dict[str, np.ndarray] = {}
    doc = {
        "format": FORMAT,
        "name": graph.name,
        "output": graph.output,
        "nodes": [_encode_node(n, arrays) for n in graph.nodes],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        def put(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)

        put("graph.json", json.dumps(doc, indent=1, sort_keys=True).encode())
        for key, arr in arrays.items():
            abuf = io.BytesIO()
            np.lib.format.write_array(abuf, np.ascontiguousarray(arr), allow_pickle=False)
            put(key, abuf.getvalue())
    return buf.getvalue()


def _decode_node(record: Any, zf: zipfile.ZipFile, where: str) -> Node:
    if not isinstance(record, dict) or "kind" not in record:
        raise ModelFormatError(f"{where}: node record must be an object with a 'kind'")
    kind = record["kind"]
    cls = NODE_TYPES.get(kind)
    if cls is None:
        raise ModelFormatError(f"{where}: unknown node kind {kind!r}; valid: {', '.join(sorted(NODE_TYPES))}")
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in record.items():
        if key == "kind":
            continue
        if key not in names:
            raise ModelFormatError(f"{where}: {kind} node has no field {key!r}")
        if isinstance(value, dict) and set(value) == {"array"}:
            try:
                with zf.open(str(value["array"])) as fh:
                    value = np.lib.format.read_array(io.BytesIO(fh.read()), allow_pickle=False)
            except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
                raise ModelFormatError(f"{where}: cannot read array {value['array']!r}: {exc}") from None
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ModelFormatError(f"{where}: {exc}") from None


def graph_from_bytes(data: bytes, *, source: str = "<bytes>") -> Graph:
    """Parse a native archive; ``source`` names it in error messages.

    Raises
    ------
    ModelFormatError
        If the archive is truncated, corrupted or of another format.
    ModelError
        If it parses but describes an invalid graph.
    """
    try:
        return _parse(data, source)
    except HwbpError as exc:
        msg = str(exc)
        raise type(exc)(msg if msg.startswith(source) else f"{source}: {msg}") from None
    except Exception as exc:  # corrupted archives surface as zlib, zipfile, TypeError, ...
        raise ModelFormatError(
            f"{source}: corrupted hwbp model archive ({type(exc).__name__}: {exc})".replace("\n", " ")
        ) from None


def _parse(data: bytes, source: str) -> Graph:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        doc = json.loads(zf.read("graph.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        raise ModelFormatError(f"{source}: not a readable hwbp model archive ({exc})") from None
    with zf:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ModelFormatError(f"{source}: graph.json is not of format {FORMAT!r}")
        records = doc.get("nodes", [])
        if not isinstance(records, list):
            raise ModelFormatError(f"{source}: graph.json 'nodes' must be a list")
        nodes = [_decode_node(rec, zf, f"{source}: node #{i}") for i, rec in enumerate(records)]
        return Graph(tuple(nodes), str(doc.get("output", "")), str(doc.get("name", "model")))
