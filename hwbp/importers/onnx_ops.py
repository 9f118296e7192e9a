"""Handlers of the ONNX op types the importer supports, one function per op."""


from __future__ import annotations

import dataclasses
import warnings
from types import MappingProxyType
from typing import Mapping

import numpy as np
import onnx

from hwbp.errors import (
    ModelError,
    ModelNote,
    ShapeError,
)
from hwbp.importers._onnx_state import Handler, _attr_float, _Importer
from hwbp.importers.onnx_spatial import SPATIAL_HANDLERS
from hwbp.ir.nodes import Activation, Add, Dense

__all__ = ["SUPPORTED_OPS"]


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
    weight = w if at["transB"] else w.T  # alpha stays a fixed gain: the parameterization round-trips
    has_c = len(node.input) == 3 and node.input[2] != ""
    beta = _attr_float(at["beta"])
    bias = beta * imp.const(node, 2, "bias") if has_c else np.zeros(())
    alpha = _attr_float(at["alpha"])
    if alpha == 0:
        imp.fail(node, "alpha = 0 makes the layer constant; fold it before export")
    # with beta != 1 the bias parameter is beta * C, not the initializer C: it is not tied to C
    # (nor to another node reading C), and the user is told what its gradient is
    cname = node.input[2] if has_c and beta == 1 else ""
    imp.dense(node, x, weight, bias, node.input[1], cname, has_bias=has_c, gain=alpha)
    if has_c and beta != 1:
        label = node.name or node.output[0]
        bname = imp.nodes[imp.values[node.output[0]].node].bias_name
        warnings.warn(ModelNote(f"{imp.source}: Gemm {label!r} has beta = {beta:g}: parameter {bname!r} holds "
                                f"beta * C ({node.input[2]!r}); its gradient is dL/dC / beta"), stacklevel=2)


def _matmul(imp: _Importer, node: onnx.NodeProto) -> None:
    imp.attrs(node, {})
    if len(node.input) != 2:
        imp.fail(node, f"expected 2 inputs, got {len(node.input)}", ModelError)
    x = imp.dynamic(node, 0)
    w = imp.const(node, 1, "right operand (weight)")
    if w.ndim != 2:
        imp.fail(node, f"weight {node.input[1]!r} must be 2-D (in, out), got shape {w.shape}", ShapeError)
    imp.dense(node, x, w.T, np.zeros(()), node.input[1], has_bias=False)


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
        bname = node.input[1 - k]
        tie = imp.params.get(bname) if dense.bias_param is None and not np.any(dense.bias) else None
        imp.nodes[dense_name] = dataclasses.replace(dense, bias=dense.bias + b, has_bias=True,
                                                    bias_param=tie or dense.bias_param)
        imp.params.setdefault(bname, imp.nodes[dense_name].bias_name)
        imp.values[node.output[0]] = x
        imp.fusable[node.output[0]] = dense_name
        return
    a, b = imp.dynamic(node, 0, any_rank=True), imp.dynamic(node, 1, any_rank=True)
    if (a.rank, a.size) != (b.rank, b.size) or (a.rank > 2 and a.shape != b.shape):
        imp.fail(node, f"operands differ in shape ({a.rank}-D of width {a.size} vs "
                       f"{b.rank}-D of width {b.size}); broadcasting is not supported", ShapeError)
    imp.emit(node, Add(imp.node_name(node), sources=(a.node, b.node)), a.rank, a.size, a.shape)


def _pass_through(imp: _Importer, node: onnx.NodeProto) -> None:
    """Bind the output of the one-input ``node`` to its input's IR node (no new node)."""
    if len(node.input) != 1:
        imp.fail(node, f"expected 1 input, got {len(node.input)}", ModelError)
    imp.values[node.output[0]] = imp.dynamic(node, 0)


def _identity(imp: _Importer, node: onnx.NodeProto) -> None:
    imp.attrs(node, {})
    if len(node.input) == 1 and node.input[0] in imp.consts:  # a constant under another name (torch's exporter)
        imp.consts[node.output[0]] = imp.consts[node.input[0]]
        return
    _pass_through(imp, node)


def _flatten(imp: _Importer, node: onnx.NodeProto) -> None:
    at = imp.attrs(node, {"axis": 1})
    value = imp.values.get(node.input[0]) if node.input else None
    if value is not None and value.rank < 2:
        imp.fail(node, f"Flatten of a {value.rank}-D tensor is not supported (only [batch, ...])")
    if at["axis"] != 1 and not (at["axis"] == -1 and value is not None and value.rank == 2):
        imp.fail(node, f"axis={at['axis']} is not supported (only 1)")
    if len(node.input) != 1:
        imp.fail(node, f"expected 1 input, got {len(node.input)}", ModelError)
    x = imp.dynamic(node, 0, any_rank=True)
    # [batch, C, *S] flattened row-major is the IR's layout already: no new node
    imp.values[node.output[0]] = x._replace(rank=2, shape=(x.size,))


def _activation(function: str, alpha: bool | float = False) -> Handler:
    """Handler making an :class:`Activation` of ``function`` (with ONNX attribute
    ``alpha``, default 0.01 or the number given, where ``alpha`` is set)."""
    default = 0.01 if alpha is True else float(alpha)

    def handler(imp: _Importer, node: onnx.NodeProto) -> None:
        at = imp.attrs(node, {"alpha": default} if alpha else {})
        if len(node.input) != 1:
            imp.fail(node, f"expected 1 input, got {len(node.input)}", ModelError)
        x = imp.dynamic(node, 0, any_rank=True)
        ir = Activation(imp.node_name(node), source=x.node, function=function,
                        alpha=_attr_float(at["alpha"]) if alpha else 0.01)
        imp.emit(node, ir, x.rank, x.size, x.shape)

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


from hwbp.importers.onnx_aliases import _cast  # noqa: E402  (value-preserving ops)
from hwbp.importers.onnx_decomp import _greater, _where  # noqa: E402  (exporter decompositions)

#: Handler per supported ONNX op type (default domain).
_HANDLERS: Mapping[str, Handler] = MappingProxyType({
    "Cast": _cast,
    "Greater": _greater,
    "Where": _where,
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
    "Elu": _activation("elu", alpha=1.0),
    "Softsign": _activation("softsign"),
    **SPATIAL_HANDLERS,
})

#: The ONNX op types :func:`load_onnx_bytes` accepts, sorted.
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(_HANDLERS))
