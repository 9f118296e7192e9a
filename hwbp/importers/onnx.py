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

The model is parsed with protobuf only (nothing in the file is executed).  Tensors
stored as external data (torch's default exporter writes ``m.onnx.data``) are read
from inside the model's directory only, with every offset and length checked
(:mod:`hwbp.importers.onnx_external`); a model given as bytes has no directory, so
external data are an error there.  The dynamo exporter's ``Softplus + Greater + Where``
(torch's ``threshold``) is read as Softplus.

Node names come from the ONNX node names (``/fc1/Gemm`` -> ``fc1.Gemm``); a Dense
whose weight is called ``<prefix>.weight`` is named ``<prefix>``, so its parameters
keep PyTorch's names (``fc1.weight``, ``fc1.bias``).  Names are made unique, and
``loss`` is kept free for :meth:`hwbp.ir.Graph.with_loss`.
"""


from __future__ import annotations

import os
import warnings
from collections import Counter

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from hwbp.errors import (
    HwbpError,
    ModelError,
    ModelFormatError,
    ModelNote,
    UnsupportedOpError,
)
from hwbp.importers._onnx_state import _FLOAT_TYPES, _Importer, _Value
from hwbp.importers.onnx_ops import _HANDLERS, SUPPORTED_OPS
from hwbp.importers.onnx_outputs import choose_output, needed_nodes
from hwbp.importers.onnx_patterns import fuse_decompositions
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Input

__all__ = ["load_onnx", "load_onnx_bytes", "SUPPORTED_OPS"]


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
    imp.values[vi.name] = _Value(ir.name, len(dims), ir.size, tuple(features) if len(dims) > 2 else ())
    imp.batch_dim = int(dims[0]) if len(dims) >= 2 else 0  # a static batch size, as Reshape may name it


#: Ops that carry a whole sub-network (recurrences, control flow): named first when a
#: model is refused, since the ops around them (Transpose, Shape, ...) are only their plumbing.
_COMPOUND = ("LSTM", "GRU", "RNN", "Loop", "Scan", "If")


def _op(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _refuse_unsupported(nodes: list[onnx.NodeProto], source: str) -> None:
    """One error naming the model's unsupported op: a recurrent or control-flow op if
    there is one (an LSTM, not the Transpose before it), else the first."""
    bad = [n for n in nodes if _op(n) not in _HANDLERS]
    if not bad:
        return
    first = next((n for n in bad if n.op_type in _COMPOUND), bad[0])
    label = first.name or (first.output[0] if first.output else "")
    others = sorted({_op(n) for n in bad} - {_op(first)})
    more = f" (also unsupported: {', '.join(others)})" if others else ""
    raise UnsupportedOpError(f"{source}: unsupported op {_op(first)!r} at node {label!r}{more}; "
                             f"supported: {', '.join(SUPPORTED_OPS)}")


def _note_folding(nodes: list[onnx.NodeProto], source: str) -> None:
    """A ``hwbp: note:`` when a Conv/Gemm weight is an exporter-made constant
    (``onnx::Conv_25``): torch's exporter names a weight so when it has folded a
    BatchNorm into it, so its gradient is not that of the module's own weight."""
    folded = [n for n in nodes if n.op_type in ("Conv", "Gemm", "ConvTranspose") and len(n.input) > 1
              and n.input[1].startswith("onnx::")]
    if folded:
        names = ", ".join(repr(n.name or n.output[0]) for n in folded[:3]) + (", ..." if len(folded) > 3 else "")
        warnings.warn(ModelNote(
            f"{source}: the weights of {names} are exporter-made constants (as when torch.onnx.export folds a "
            f"BatchNorm into the layer before it): their gradients are those of the folded weights, not of the "
            f"module's parameters; export with do_constant_folding=False (or "
            f"training=torch.onnx.TrainingMode.PRESERVE) to keep the normalization"), stacklevel=3)


def _convert(model: onnx.ModelProto, source: str, name: str | None, base_dir: str | None = None,
             output: str | None = None) -> Graph:
    g = model.graph
    out = choose_output(g, source, output)
    nodes = needed_nodes(fuse_decompositions(g), out)
    imp = _Importer(source, g, base_dir)
    imp.uses = Counter(i for n in nodes for i in n.input if i)
    imp.uses[out] += 1
    if g.sparse_initializer:
        raise ModelError(f"{source}: sparse initializers are not supported")
    for init in g.initializer:
        imp.consts[init.name] = imp.tensor(init, f"initializer {init.name!r}")
    dynamic = [vi for vi in g.input if vi.name not in imp.consts]
    if len(dynamic) != 1:
        raise ModelError(f"{source}: model must have exactly one (non-initializer) input, "
                         f"got {len(dynamic)}: {[vi.name for vi in dynamic]}")
    _add_input(imp, dynamic[0])
    _refuse_unsupported(nodes, source)
    _note_folding(nodes, source)
    for node in nodes:
        op = _op(node)
        handler = _HANDLERS[op]
        if len(node.output) != 1 or not node.output[0]:
            imp.fail(node, f"expected 1 output, got {len(node.output)}", ModelError)
        handler(imp, node)
        imp.producers[node.output[0]] = node
    if out not in imp.values:
        raise ModelError(f"{source}: output {out!r} is not a computed tensor")
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


def load_onnx_bytes(data: bytes, *, source: str = "<bytes>", name: str | None = None,
                    base_dir: str | os.PathLike[str] | None = None, output: str | None = None) -> Graph:
    """Import an ONNX model (serialized ``ModelProto``) as an IR graph.

    Parameters
    ----------
    data : bytes
        The model file's contents.
    source : str
        What to call the model in error messages (typically its path).
    name : str, optional
        Graph name; default the ONNX graph's name, else ``"model"``.
    base_dir : path, optional
        Directory of the model file: tensors stored as external data are read from
        files inside it (and nowhere else).  Without it external data are an error.
    output : str, optional
        The tensor to import as the model's output (a graph output or any tensor, e.g.
        a classifier's logits); default: the only graph output, or for several a
        classifier's logits or probabilities (announced by a ``ModelNote`` warning;
        see :mod:`hwbp.importers.onnx_outputs`).  Only the nodes it needs are read.

    Returns
    -------
    Graph
        A validated graph without a loss port; its single input is named after the
        ONNX graph input and takes ``(batch, n)`` arrays.

    Raises
    ------
    ModelFormatError
        If ``data`` is not a readable ONNX model (truncated, corrupted, external data
        missing, outside ``base_dir`` or not matching the tensor's shape).
    UnsupportedOpError
        For an op type, attribute value or operand kind that hwbp cannot represent.
    ShapeError
        For inconsistent weight, bias or operand shapes.
    ModelError
        For any other invalid model (several inputs, non-finite weights, ...).
    """
    return _convert(_parse(data, source), source, name, None if base_dir is None else os.fspath(base_dir),
                    output)


def load_onnx(path: str | os.PathLike[str], *, name: str | None = None, output: str | None = None) -> Graph:
    """Read the ONNX file at ``path`` and import it with :func:`load_onnx_bytes`
    (external data are read from the file's directory)."""
    with open(path, "rb") as fh:
        data = fh.read()
    return load_onnx_bytes(data, source=os.fspath(path), name=name,
                           base_dir=os.path.dirname(os.path.abspath(path)), output=output)
