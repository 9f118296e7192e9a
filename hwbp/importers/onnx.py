"""Import ONNX models of MLPs and residual MLPs into the graph IR.

Covers the graphs that PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``) writes for such networks:

* ``Gemm`` (``transA = 0``, ``transB`` 0 or 1; ``alpha``/``beta`` are folded into
  the parameters) and ``MatMul`` with a constant right operand, each optionally
  followed by an ``Add`` of a constant bias, become one :class:`~hwbp.ir.Dense`;
* ``Relu``, ``Tanh``, ``Sigmoid``, ``LeakyRelu`` and ``Softplus`` become
  :class:`~hwbp.ir.Activation` nodes;
* ``Add`` of two computed tensors becomes an :class:`~hwbp.ir.Add` (residual skip);
* ``Identity`` and ``Flatten`` (axis 1 of a 2-D tensor) are aliases and make no node;
* ``Constant`` nodes and initializers supply weights and biases.

The model is parsed with protobuf only (nothing in the file is executed) and never
reads other files: tensors stored as external data are rejected.

Node names come from the ONNX node names (``/fc1/Gemm`` -> ``fc1.Gemm``); a Dense
whose weight is called ``<prefix>.weight`` is named ``<prefix>``, so its parameters
keep PyTorch's names (``fc1.weight``, ``fc1.bias``).  Names are made unique, and
``loss`` is kept free for :meth:`hwbp.ir.Graph.with_loss`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from types import MappingProxyType
from typing import Callable, Mapping, NamedTuple, NoReturn

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from hwbp.errors import HwbpError, ModelError, ModelFormatError, ShapeError, UnsupportedOpError
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, Dense, Input, Node

__all__ = ["load_onnx", "load_onnx_bytes", "SUPPORTED_OPS"]

_TP = onnx.TensorProto
_AP = onnx.AttributeProto
#: Tensor element types whose values convert exactly (or by widening) to float64.
_NUMERIC_TYPES = frozenset(
    {_TP.FLOAT, _TP.DOUBLE, _TP.FLOAT16, _TP.INT8, _TP.INT16, _TP.INT32, _TP.INT64,
     _TP.UINT8, _TP.UINT16, _TP.UINT32, _TP.UINT64, _TP.BOOL}
)
_FLOAT_TYPES = frozenset({_TP.FLOAT, _TP.DOUBLE, _TP.FLOAT16, _TP.BFLOAT16})
#: Names never given to imported nodes (``Graph.with_loss`` adds ``loss``).
_RESERVED = frozenset({"loss"})


class _Value(NamedTuple):
    """A computed tensor: the IR node holding it, its rank and its width per sample."""

    node: str
    rank: int
    size: int


def _attr_float(value: float) -> float:
    """An ONNX float attribute (stored as float32) as the shortest decimal that
    round-trips through float32, e.g. ``0.2f`` -> ``0.2``."""
    return float(str(np.float32(value)))


def _clean(name: str) -> str:
    """An ONNX name as an IR name: ``/block1/fc/Gemm`` -> ``block1.fc.Gemm``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", name.strip("/").replace("/", ".")).strip("._")


class _Importer:
    """State of one import: constants, computed tensors and the IR nodes made so far."""

    def __init__(self, source: str, graph: onnx.GraphProto) -> None:
        self.source = source
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, _Value] = {}
        self.nodes: dict[str, Node] = {}
        self.used: set[str] = set(_RESERVED)
        #: Tensors produced directly by a Gemm/MatMul, by tensor name -> Dense name.
        self.fusable: dict[str, str] = {}
        self.uses: Counter[str] = Counter(i for n in graph.node for i in n.input if i)
        self.uses.update(o.name for o in graph.output)

    # -------------------------------------------------------------- errors
    def fail(self, node: onnx.NodeProto, msg: str, cls: type[HwbpError] = UnsupportedOpError) -> NoReturn:
        label = node.name or (node.output[0] if node.output else "")
        raise cls(f"{self.source}: node {label!r} ({node.op_type}): {msg}")

    # ------------------------------------------------------------- tensors
    def tensor(self, proto: onnx.TensorProto, what: str) -> np.ndarray:
        """``proto`` as a float64 array; ``what`` names it in errors."""
        if proto.data_location == _TP.EXTERNAL:
            raise ModelFormatError(f"{self.source}: {what} stores its data in an external file; not supported")
        if proto.data_type not in _NUMERIC_TYPES:
            known = proto.data_type in _TP.DataType.values()
            dtype = _TP.DataType.Name(proto.data_type) if known else proto.data_type
            raise ModelFormatError(f"{self.source}: {what} has unsupported element type {dtype}")
        try:
            with np.errstate(all="ignore"):  # non-finite values are reported by Graph lint
                return np.asarray(numpy_helper.to_array(proto), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ModelFormatError(f"{self.source}: {what} is corrupted: {' '.join(str(exc).split())}") from None

    def dynamic(self, node: onnx.NodeProto, index: int) -> _Value:
        """Input ``index`` of ``node``, which must be a computed tensor of rank <= 2."""
        name = node.input[index] if index < len(node.input) else ""
        if name in self.consts:
            self.fail(node, f"input #{index} {name!r} is a constant; expected a computed tensor")
        if name not in self.values:
            self.fail(node, f"input #{index} {name!r} is not produced by any preceding node", ModelError)
        value = self.values[name]
        if value.rank > 2:
            self.fail(node, f"input {name!r} is {value.rank}-D; only [batch, n] or [n] tensors are supported")
        return value

    def const(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        """Input ``index`` of ``node``, which must be a constant (initializer or Constant)."""
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.consts:
            self.fail(node, f"{what} {name!r} must be a constant initializer")
        return self.consts[name]

    def attrs(self, node: onnx.NodeProto, defaults: Mapping[str, object]) -> dict[str, object]:
        """Attributes of ``node`` over ``defaults``; unknown attributes are errors."""
        out = dict(defaults)
        for attr in node.attribute:
            if attr.name not in defaults:
                self.fail(node, f"unsupported attribute {attr.name!r}")
            is_float = isinstance(defaults[attr.name], float)
            if attr.type != (_AP.FLOAT if is_float else _AP.INT):
                kind = "a float" if is_float else "an int"
                self.fail(node, f"attribute {attr.name!r} must be {kind}", ModelError)
            out[attr.name] = onnx.helper.get_attribute_value(attr)
        return out

    # ------------------------------------------------------------ emission
    def unique(self, base: str, fallback: str) -> str:
        """A new, unused IR name from ``base`` (or ``fallback`` if ``base`` cleans to nothing)."""
        stem = _clean(base) or _clean(fallback) or "node"
        name, k = stem, 0
        while name in self.used:
            k += 1
            name = f"{stem}_{k}"
        self.used.add(name)
        return name

    def node_name(self, node: onnx.NodeProto) -> str:
        """IR name of ``node``: a module path like ``/block1/act/Tanh`` loses its trailing
        op type (``block1.act``), as PyTorch names nodes after their modules."""
        parts = node.name.strip("/").split("/")
        if len(parts) > 1 and parts[-1].split("_")[0] == node.op_type:
            parts = parts[:-1]
        base = "/".join(parts) if node.name else (node.output[0] if node.output else "")
        return self.unique(base, node.op_type.lower())

    def emit(self, node: onnx.NodeProto, ir: Node, rank: int, size: int) -> None:
        self.nodes[ir.name] = ir
        self.values[node.output[0]] = _Value(ir.name, rank, size)

    def dense(self, node: onnx.NodeProto, x: _Value, weight: np.ndarray, bias: np.ndarray, wname: str) -> None:
        """Emit ``y = weight @ x + bias`` (``weight`` is ``(out, in)``)."""
        if weight.shape[1] != x.size:
            self.fail(node, f"weight {wname!r} (as (out, in) = {weight.shape}) expects {weight.shape[1]} "
                            f"inputs but the input has {x.size}", ShapeError)
        bias = self.bias(node, bias, weight.shape[0])
        prefix = wname[: -len(".weight")] if wname.endswith(".weight") else ""
        name = self.unique(prefix, "") if _clean(prefix) else self.node_name(node)
        self.emit(node, Dense(name, source=x.node, weight=weight, bias=bias), x.rank, weight.shape[0])
        self.fusable[node.output[0]] = name

    def bias(self, node: onnx.NodeProto, b: np.ndarray, n_out: int) -> np.ndarray:
        """``b`` broadcast to ``(n_out,)``: accepts ``(n_out,)``, ``(1, n_out)``, scalars and ``(1,)``."""
        flat = b[0] if b.ndim == 2 and b.shape[0] == 1 else b
        if flat.shape in ((), (1,)):
            return np.full(n_out, float(flat.reshape(())))
        if flat.shape != (n_out,):
            self.fail(node, f"bias of shape {b.shape} does not broadcast to ({n_out},) per sample", ShapeError)
        return flat


# ------------------------------------------------------------------ handlers
Handler = Callable[[_Importer, onnx.NodeProto], None]


def _gemm(imp: _Importer, node: onnx.NodeProto) -> None:
    at = imp.attrs(node, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0})
    if at["transA"] != 0:
        imp.fail(node, f"transA={at['transA']} is not supported (only 0)")
    if at["transB"] not in (0, 1):
        imp.fail(node, f"transB={at['transB']} is not supported (only 0 or 1)")
    if len(node.input) not in (2, 3):
        imp.fail(node, f"expected 2 or 3 inputs, got {len(node.input)}", ModelError)
    x = imp.dynamic(node, 0)
    if x.rank != 2:
        imp.fail(node, f"input A must be 2-D [batch, n], got {x.rank}-D", ShapeError)
    w = imp.const(node, 1, "weight")
    if w.ndim != 2:
        imp.fail(node, f"weight {node.input[1]!r} must be 2-D, got shape {w.shape}", ShapeError)
    weight = _attr_float(at["alpha"]) * (w if at["transB"] else w.T)
    has_c = len(node.input) == 3 and node.input[2] != ""
    bias = _attr_float(at["beta"]) * imp.const(node, 2, "bias") if has_c else np.zeros(())
    imp.dense(node, x, weight, bias, node.input[1])


def _matmul(imp: _Importer, node: onnx.NodeProto) -> None:
    imp.attrs(node, {})
    if len(node.input) != 2:
        imp.fail(node, f"expected 2 inputs, got {len(node.input)}", ModelError)
    x = imp.dynamic(node, 0)
    w = imp.const(node, 1, "right operand (weight)")
    if w.ndim != 2:
        imp.fail(node, f"weight {node.input[1]!r} must be 2-D (in, out), got shape {w.shape}", ShapeError)
    imp.dense(node, x, w.T, np.zeros(()), node.input[1])


def _add(imp: _Importer, node: onnx.NodeProto) -> None:
    imp.attrs(node, {})
    if len(node.input) != 2:
        imp.fail(node, f"expected 2 inputs, got {len(node.input)}", ModelError)
    is_const = [name in imp.consts for name in node.input]
    if all(is_const):
        imp.fail(node, "Add of two constants is not supported (fold it before export)")
    if any(is_const):
        k = is_const.index(False)
        tensor = node.input[k]
        x = imp.dynamic(node, k)
        dense_name = imp.fusable.get(tensor)
        if dense_name is None or imp.uses[tensor] != 1:
            imp.fail(node, "adding a constant is supported only as the bias of a preceding Gemm/MatMul "
                           "whose output has no other use")
        dense = imp.nodes[dense_name]
        assert isinstance(dense, Dense)
        b = imp.bias(node, imp.consts[node.input[1 - k]], x.size)
        imp.nodes[dense_name] = dataclasses.replace(dense, bias=dense.bias + b)
        imp.values[node.output[0]] = x
        imp.fusable[node.output[0]] = dense_name
        return
    a, b = imp.dynamic(node, 0), imp.dynamic(node, 1)
    if (a.rank, a.size) != (b.rank, b.size):
        imp.fail(node, f"operands differ in shape ({a.rank}-D of width {a.size} vs "
                       f"{b.rank}-D of width {b.size}); broadcasting is not supported", ShapeError)
    imp.emit(node, Add(imp.node_name(node), sources=(a.node, b.node)), a.rank, a.size)


def _pass_through(imp: _Importer, node: onnx.NodeProto) -> None:
    """Bind the output of the one-input ``node`` to its input's IR node (no new node)."""
    if len(node.input) != 1:
        imp.fail(node, f"expected 1 input, got {len(node.input)}", ModelError)
    imp.values[node.output[0]] = imp.dynamic(node, 0)


def _identity(imp: _Importer, node: onnx.NodeProto) -> None:
    imp.attrs(node, {})
    _pass_through(imp, node)


def _flatten(imp: _Importer, node: onnx.NodeProto) -> None:
    at = imp.attrs(node, {"axis": 1})
    value = imp.values.get(node.input[0]) if node.input else None
    if value is not None and value.rank != 2:
        imp.fail(node, f"Flatten of a {value.rank}-D tensor is not supported (only 2-D [batch, n])")
    if at["axis"] not in (1, -1):
        imp.fail(node, f"axis={at['axis']} is not supported (only 1)")
    _pass_through(imp, node)


def _activation(function: str, alpha: bool = False) -> Handler:
    """Handler making an :class:`Activation` of ``function`` (with ONNX attribute
    ``alpha``, default 0.01, where ``alpha`` is true)."""

    def handler(imp: _Importer, node: onnx.NodeProto) -> None:
        at = imp.attrs(node, {"alpha": 0.01} if alpha else {})
        if len(node.input) != 1:
            imp.fail(node, f"expected 1 input, got {len(node.input)}", ModelError)
        x = imp.dynamic(node, 0)
        ir = Activation(imp.node_name(node), source=x.node, function=function,
                        alpha=_attr_float(at["alpha"]) if alpha else 0.01)
        imp.emit(node, ir, x.rank, x.size)

    handler.__name__ = f"_{function}"
    return handler


def _constant(imp: _Importer, node: onnx.NodeProto) -> None:
    if len(node.attribute) != 1:
        imp.fail(node, "expected exactly one value attribute", ModelError)
    attr = node.attribute[0]
    if attr.name == "value":
        imp.consts[node.output[0]] = imp.tensor(attr.t, f"node {node.name!r} (Constant) value")
    elif attr.name in ("value_float", "value_floats", "value_int", "value_ints"):
        imp.consts[node.output[0]] = np.asarray(onnx.helper.get_attribute_value(attr), dtype=np.float64)
    else:
        imp.fail(node, f"unsupported attribute {attr.name!r}")


#: Handler per supported ONNX op type (default domain).
_HANDLERS: Mapping[str, Handler] = MappingProxyType({
    "Add": _add,
    "Constant": _constant,
    "Flatten": _flatten,
    "Gemm": _gemm,
    "Identity": _identity,
    "LeakyRelu": _activation("leaky_relu", alpha=True),
    "MatMul": _matmul,
    "Relu": _activation("relu"),
    "Sigmoid": _activation("sigmoid"),
    "Softplus": _activation("softplus"),
    "Tanh": _activation("tanh"),
})

#: The ONNX op types :func:`load_onnx_bytes` accepts, sorted.
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(_HANDLERS))


# --------------------------------------------------------------- graph level
def _parse(data: bytes, source: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(bytes(data))
    except (DecodeError, ValueError, RuntimeError, OverflowError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelFormatError(f"{source}: not a readable ONNX model ({detail})") from None
    if model.ir_version < 1 or not model.HasField("graph") or not model.graph.node:
        raise ModelFormatError(f"{source}: not a readable ONNX model (no IR version or no graph nodes)")
    g = model.graph
    names = [g.name, *(t.name for t in g.initializer), *(v.name for v in (*g.input, *g.output))]
    for n in g.node:
        names += [n.name, n.op_type, n.domain, *n.input, *n.output, *(a.name for a in n.attribute)]
    if not all(isinstance(s, str) for s in names):  # protobuf returns bytes for invalid UTF-8
        raise ModelFormatError(f"{source}: not a readable ONNX model (a name is not valid UTF-8)")
    return model


def _add_input(imp: _Importer, vi: onnx.ValueInfoProto) -> None:
    """Create the IR :class:`Input` of graph input ``vi`` (shape ``[batch, n]``, ``[n]`` or
    ``[batch, ...]``; only the first two reach a computation)."""
    src = imp.source
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None or not tt.HasField("shape"):
        raise ModelError(f"{src}: graph input {vi.name!r} must be a tensor with a static shape")
    if tt.elem_type not in _FLOAT_TYPES:
        raise ModelError(f"{src}: graph input {vi.name!r} must be a floating-point tensor")
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
    features = dims[1:] if len(dims) >= 2 else dims
    if not features or any(d < 1 for d in features):
        raise ModelError(f"{src}: graph input {vi.name!r} must have shape [batch, n] or [n] with a fixed "
                         f"n >= 1; got {[d.dim_param or d.dim_value for d in tt.shape.dim]}")
    ir = Input(imp.unique(vi.name, "x"), size=int(np.prod(features)))
    imp.nodes[ir.name] = ir
    imp.values[vi.name] = _Value(ir.name, len(dims), ir.size)


def _convert(model: onnx.ModelProto, source: str, name: str | None) -> Graph:
    g = model.graph
    imp = _Importer(source, g)
    if g.sparse_initializer:
        raise ModelError(f"{source}: sparse initializers are not supported")
    for init in g.initializer:
        imp.consts[init.name] = imp.tensor(init, f"initializer {init.name!r}")
    dynamic = [vi for vi in g.input if vi.name not in imp.consts]
    if len(dynamic) != 1:
        raise ModelError(f"{source}: model must have exactly one (non-initializer) input, "
                         f"got {len(dynamic)}: {[vi.name for vi in dynamic]}")
    if len(g.output) != 1:
        raise ModelError(f"{source}: model must have exactly one output, got {len(g.output)}")
    _add_input(imp, dynamic[0])
    for node in g.node:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        handler = _HANDLERS.get(op)
        if handler is None:
            label = node.name or (node.output[0] if node.output else "")
            raise UnsupportedOpError(f"{source}: unsupported op {op!r} at node {label!r}; "
                                     f"supported: {', '.join(SUPPORTED_OPS)}")
        if len(node.output) != 1 or not node.output[0]:
            imp.fail(node, f"expected 1 output, got {len(node.output)}", ModelError)
        handler(imp, node)
    out = g.output[0].name
    if out not in imp.values:
        raise ModelError(f"{source}: graph output {out!r} is not a computed tensor")
    return _build(imp, imp.values[out], name or g.name or "model")


def _build(imp: _Importer, out: _Value, name: str) -> Graph:
    """The IR graph of the nodes that feed ``out`` (unused branches are dropped)."""
    if out.rank > 2:
        raise ModelError(f"{imp.source}: graph output is {out.rank}-D; expected [batch, n] or [n]")
    live = {out.node}
    for node in reversed(list(imp.nodes.values())):
        if node.name in live:
            live.update(node.inputs)
    nodes = tuple(n for n in imp.nodes.values() if n.name in live)
    try:
        return Graph(nodes, out.node, name)
    except HwbpError as exc:
        raise type(exc)(f"{imp.source}: {exc}") from None


def load_onnx_bytes(data: bytes, *, source: str = "<bytes>", name: str | None = None) -> Graph:
    """Import an ONNX model (serialized ``ModelProto``) as an IR graph.

    Parameters
    ----------
    data : bytes
        The model file's contents.
    source : str
        What to call the model in error messages (typically its path).
    name : str, optional
        Graph name; default the ONNX graph's name, else ``"model"``.

    Returns
    -------
    Graph
        A validated graph without a loss port; its single input is named after the
        ONNX graph input and takes ``(batch, n)`` arrays.

    Raises
    ------
    ModelFormatError
        If ``data`` is not a readable ONNX model (truncated, corrupted, external data).
    UnsupportedOpError
        For an op type, attribute value or operand kind that hwbp cannot represent.
    ShapeError
        For inconsistent weight, bias or operand shapes.
    ModelError
        For any other invalid model (several inputs, non-finite weights, ...).
    """
    return _convert(_parse(data, source), source, name)


def load_onnx(path: str | os.PathLike[str], *, name: str | None = None) -> Graph:
    """Read the ONNX file at ``path`` and import it with :func:`load_onnx_bytes`."""
    with open(path, "rb") as fh:
        data = fh.read()
    return load_onnx_bytes(data, source=os.fspath(path), name=name)
