"""Export an IR graph as ONNX, in the layout :mod:`hwbp.importers.onnx` reads back.

``Dense`` -> ``Gemm`` (``transB = 1``, weight ``<name>.weight`` of shape ``(out, in)``,
bias ``<name>.bias``), ``Activation`` -> ``Tanh`` / ``Sigmoid`` / ``Relu`` /
``LeakyRelu`` / ``Softplus`` (``Identity`` for the identity), ``Add`` -> ``Add``
(a chain of two-input Adds for more inputs).  Opset 17; the single input takes
``[batch, n]``; tensor names are kept unique.  Deterministic bytes.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hwbp.errors import ConfigError, ModelError
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, Dense, Input, Loss
from hwbp.registry import unique_name

__all__ = ["OPSET", "graph_to_onnx_bytes", "save_onnx"]

OPSET = 17
_ACT_OPS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "leaky_relu": "LeakyRelu",
            "softplus": "Softplus", "identity": "Identity"}
_DTYPES = {"float32": (np.float32, TensorProto.FLOAT), "float64": (np.float64, TensorProto.DOUBLE)}


def _cast(value: np.ndarray, np_type: type) -> np.ndarray:
    """``value`` as ``np_type``; values beyond its range become Inf (refused by the caller)."""
    with np.errstate(over="ignore"):
        return value.astype(np_type)


def graph_to_onnx_bytes(graph: Graph, *, dtype: str = "float32") -> bytes:
    """The serialized ONNX ``ModelProto`` of ``graph`` (its loss port is not exported).

    Parameters
    ----------
    graph : Graph
        A single-input graph of Dense, Activation and Add nodes.
    dtype : {"float32", "float64"}
        Element type of the weights and of the input/output tensors.
    """
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown ONNX dtype {dtype!r}; valid: {', '.join(_DTYPES)}")
    np_type, onnx_type = _DTYPES[dtype]
    if len(graph.inputs) != 1:
        raise ModelError(f"ONNX export supports one input, graph {graph.name!r} has {len(graph.inputs)}")
    inp = graph.inputs[0]
    used = {inp.name} | {n for d in graph.nodes if isinstance(d, Dense) for n in (d.weight_name, d.bias_name)
                         if d.has_bias or n == d.weight_name}

    def fresh(base: str) -> str:
        name = unique_name(base, used)
        used.add(name)
        return name

    output = fresh("output")
    tensor = {inp.name: inp.name}
    nodes, inits = [], []
    for node in graph.nodes:
        if isinstance(node, (Input, Loss)):
            continue
        out = output if node.name == graph.output else fresh(f"{node.name}_output")
        if isinstance(node, Dense):
            inits.append(numpy_helper.from_array(_cast(node.weight, np_type), name=node.weight_name))
            operands = [tensor[node.source], node.weight_name]
            if node.has_bias:  # a bias-free layer stays bias-free (Gemm without C)
                inits.append(numpy_helper.from_array(_cast(node.bias, np_type), name=node.bias_name))
                operands.append(node.bias_name)
            nodes.append(helper.make_node("Gemm", operands, [out],
                                          name=f"/{node.name}/Gemm", alpha=1.0, beta=1.0, transB=1))
        elif isinstance(node, Activation):
            op = _ACT_OPS.get(node.function)
            if op is None:
                raise ModelError(f"ONNX export: activation {node.function!r} of node {node.name!r} has no ONNX op")
            extra = {"alpha": float(node.alpha)} if op == "LeakyRelu" else {}
            nodes.append(helper.make_node(op, [tensor[node.source]], [out], name=f"/{node.name}/{op}", **extra))
        elif isinstance(node, Add):
            acc = tensor[node.sources[0]]
            for k, src in enumerate(node.sources[1:], start=1):
                last = k == len(node.sources) - 1
                step = out if last else fresh(f"{node.name}_partial{k}")
                nodes.append(helper.make_node("Add", [acc, tensor[src]], [step],
                                              name=f"/{node.name}/Add" + ("" if last else f"_{k}")))
                acc = step
        else:  # pragma: no cover - the IR has no other node types
            raise ModelError(f"ONNX export: unsupported node {node.name!r} ({type(node).__name__})")
        tensor[node.name] = out
    for init in inits:  # float32 overflows beyond 3.4e38: refuse rather than write Inf weights
        if not np.all(np.isfinite(numpy_helper.to_array(init))):
            raise ModelError(f"ONNX export of {graph.name!r}: parameter {init.name!r} does not fit {dtype} "
                             f"(largest |value| {float(np.abs(graph.parameters()[init.name]).max()):.3g})")
    g = helper.make_graph(
        nodes, graph.name,
        [helper.make_tensor_value_info(inp.name, onnx_type, ["batch", int(inp.size)])],
        [helper.make_tensor_value_info(output, onnx_type, ["batch", graph.size(graph.output)])],
        initializer=inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hwbp", ir_version=8)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ONNX export of {graph.name!r} is not valid ONNX: {first}") from None
    return model.SerializeToString()


def save_onnx(graph: Graph, path: str | os.PathLike, *, dtype: str = "float32") -> None:
    """Write ``graph`` as an ONNX file (atomically)."""
    from hwbp.io import atomic_write_bytes

    atomic_write_bytes(path, graph_to_onnx_bytes(graph, dtype=dtype))
