"""Export an IR graph as ONNX, in the layout :mod:`hwbp.importers.onnx` reads back.

``Dense`` -> ``Gemm`` (``transB = 1``, ``alpha`` = the dense gain, weight ``<name>.weight`` of shape ``(out, in)``,
bias ``<name>.bias``), ``Activation`` -> ``Tanh`` / ``Sigmoid`` / ``Relu`` /
``LeakyRelu`` / ``Softplus`` / ``Elu`` / ``Softsign`` / ``Gelu`` / ``Clip``
(``Identity`` for the identity; SiLU as ``x * Sigmoid(x)``), ``Add`` -> ``Add``
(a chain of two-input Adds for more inputs).  ``Conv``, ``AvgPool`` and ``BatchNorm``
become ``Conv`` / ``AveragePool`` / ``BatchNormalization`` between a ``Reshape`` to
``[batch, C, *S]`` and a ``Flatten`` back.  A tied parameter is ONE initializer read
by every node that uses it.  Opset 17 (20 where a Gelu needs it); the single input
takes ``[batch, n]``; tensor names are kept unique.  Deterministic bytes.  ONNX stores Gemm's
``alpha`` as a 32-bit float, so a Dense's fixed gain comes back to about 6e-8 relative
(the importer keeps it as the Dense's gain).
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hwbp.errors import ConfigError, ModelError
from hwbp.ir.graph import Graph
from hwbp.ir.nodes import Activation, Add, AvgPool, BatchNorm, Conv, Dense, Input, Loss
from hwbp.registry import unique_name

__all__ = ["OPSET", "graph_to_onnx_bytes", "save_onnx"]

OPSET = 17
_ACT_OPS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "leaky_relu": "LeakyRelu",
            "softplus": "Softplus", "identity": "Identity", "elu": "Elu", "softsign": "Softsign",
            "gelu": "Gelu", "gelu_tanh": "Gelu", "hardtanh": "Clip", "relu6": "Clip", "silu": "Mul",
            "clip": "Clip"}
_CLIP_BOUNDS = {"hardtanh": (-1.0, 1.0), "relu6": (0.0, 6.0)}
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
    used = {inp.name} | set(graph.parameters())

    def fresh(base: str) -> str:
        name = unique_name(base, used)
        used.add(name)
        return name

    output = fresh("output")
    tensor = {inp.name: inp.name}
    nodes, inits = [], []
    written: set[str] = set()
    opset = OPSET

    def add_param(name: str, value: np.ndarray) -> None:
        if name not in written:  # a tied parameter is one initializer
            written.add(name)
            inits.append(numpy_helper.from_array(_cast(value, np_type), name=name))

    def add_const(name: str, value: np.ndarray, dtype: type | None = None) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value).astype(dtype or np_type), name=name))
        return name

    for node in graph.nodes:
        if isinstance(node, (Input, Loss)):
            continue
        out = output if node.name == graph.output else fresh(f"{node.name}_output")
        if isinstance(node, Dense):
            add_param(node.weight_name, node.weight)
            operands = [tensor[node.source], node.weight_name]
            if node.has_bias:  # a bias-free layer stays bias-free (Gemm without C)
                add_param(node.bias_name, node.bias)
                operands.append(node.bias_name)
            nodes.append(helper.make_node("Gemm", operands, [out],
                                          name=f"/{node.name}/Gemm", alpha=float(node.gain), beta=1.0, transB=1))
        elif isinstance(node, (Conv, AvgPool, BatchNorm)):
            nodes += _spatial_nodes(node, tensor[node.source], out, fresh, add_param, add_const)
        elif isinstance(node, Activation):
            op = _ACT_OPS.get(node.function)
            if op is None:
                raise ModelError(f"ONNX export: activation {node.function!r} of node {node.name!r} has no ONNX op")
            src = tensor[node.source]
            extra: dict = {"alpha": float(node.alpha)} if op in ("LeakyRelu", "Elu") else {}
            ins = [src]
            if node.function == "gelu_tanh":
                extra = {"approximate": "tanh"}
            elif op == "Clip":
                lo, hi = _CLIP_BOUNDS.get(node.function, (node.alpha, node.high))
                ins += [add_const(fresh(f"{node.name}_min"), np.array(lo)), add_const(fresh(f"{node.name}_max"), np.array(hi))]
            elif op == "Mul":
                sig = fresh(f"{node.name}_sigmoid")
                nodes.append(helper.make_node("Sigmoid", [src], [sig], name=f"/{node.name}/Sigmoid"))
                ins.append(sig)
            opset = max(opset, 20) if op == "Gelu" else opset
            nodes.append(helper.make_node(op, ins, [out], name=f"/{node.name}/{op}", **extra))
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
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="hwbp", ir_version=8)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ONNX export of {graph.name!r} is not valid ONNX: {first}") from None
    return model.SerializeToString()


def _spatial_nodes(node: Conv | AvgPool | BatchNorm, src: str, out: str, fresh, add_param, add_const) -> list:
    """``Reshape`` to ``[batch, C, *S]``, the op, ``Flatten`` back to ``[batch, n]``."""
    shape = add_const(fresh(f"{node.name}_shape"), np.array((-1,) + node.in_shape), np.int64)
    x4, y4 = fresh(f"{node.name}_input"), fresh(f"{node.name}_spatial")
    nodes = [helper.make_node("Reshape", [src, shape], [x4], name=f"/{node.name}/Reshape")]
    if isinstance(node, Conv):
        add_param(node.weight_name, node.weight)
        if node.has_bias:
            add_param(node.bias_name, node.bias)
        nodes.append(helper.make_node(
            "Conv", [x4, node.weight_name] + ([node.bias_name] if node.has_bias else []), [y4],
            name=f"/{node.name}/Conv",
            kernel_shape=list(node.weight.shape[2:]), strides=list(node.strides), pads=list(node.pads),
            dilations=list(node.dilations), group=node.groups))
    elif isinstance(node, AvgPool):
        nodes.append(helper.make_node(
            "AveragePool", [x4], [y4], name=f"/{node.name}/AveragePool", kernel_shape=list(node.kernel),
            strides=list(node.strides), pads=list(node.pads), count_include_pad=int(node.count_include_pad)))
    else:
        add_param(node.weight_name, node.weight)
        add_param(node.bias_name, node.bias)
        stats = [add_const(fresh(f"{node.name}_{k}"), getattr(node, k)) for k in ("mean", "var")]
        nodes.append(helper.make_node("BatchNormalization", [x4, node.weight_name, node.bias_name, *stats], [y4],
                                      name=f"/{node.name}/BatchNormalization", epsilon=float(node.epsilon)))
    nodes.append(helper.make_node("Flatten", [y4], [out], name=f"/{node.name}/Flatten", axis=1))
    return nodes


def save_onnx(graph: Graph, path: str | os.PathLike, *, dtype: str = "float32") -> None:
    """Write ``graph`` as an ONNX file (atomically)."""
    from hwbp.io import atomic_write_bytes

    atomic_write_bytes(path, graph_to_onnx_bytes(graph, dtype=dtype))
