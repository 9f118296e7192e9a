"""Recognize exporters' decompositions of supported activations before import.

PyTorch's exporters write some elementwise functions as small subgraphs; this pass
rewrites each one into the single op it computes, so the importer's handlers see
that op (nothing else changes; a subgraph whose intermediate tensors are used
elsewhere is left alone and reported by the importer as usual):

* Softsign (both exporters): ``Div(x, Add(Abs(x), 1))`` -> ``Softsign(x)``;
* GELU, erf form (TorchScript exporter below opset 20):
  ``Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)`` -> ``Gelu(x)``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["fuse_decompositions"]


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for t in graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL and int(np.prod(t.dims)) <= 1:
            try:
                out[t.name] = numpy_helper.to_array(t).astype(np.float64)
            except (ValueError, TypeError):
                pass
    for n in graph.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value" and n.output:
            try:
                out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t).astype(np.float64)
            except (ValueError, TypeError):
                pass
    return out


def _is(consts: dict[str, np.ndarray], name: str, value: float, rtol: float = 0.0) -> bool:
    v = consts.get(name)
    return v is not None and v.size == 1 and bool(np.isclose(float(v.reshape(())), value, rtol=rtol, atol=0.0))


def fuse_decompositions(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes of ``graph`` with every recognized decomposition replaced by its op."""
    nodes = list(graph.node)
    consts = _constants(graph)
    producer = {o: n for n in nodes for o in n.output}
    uses = Counter(i for n in nodes for i in n.input if i)
    uses.update(o.name for o in graph.output)
    drop: set[int] = set()
    replace: dict[int, onnx.NodeProto] = {}

    def prod(name: str, op: str) -> onnx.NodeProto | None:
        n = producer.get(name)
        return n if n is not None and n.op_type == op and n.domain in ("", "ai.onnx") and uses[name] == 1 else None

    def other(n: onnx.NodeProto, name: str) -> str:
        return n.input[1] if n.input[0] == name else n.input[0]

    for n in nodes:
        if n.op_type == "Div" and len(n.input) == 2:  # softsign
            x, d = n.input
            add = prod(d, "Add")
            if add is None or len(add.input) != 2:
                continue
            for a in add.input:
                ab = prod(a, "Abs")
                if ab is not None and ab.input[0] == x and _is(consts, other(add, a), 1.0):
                    drop.update(id(m) for m in (add, ab))
                    replace[id(n)] = helper.make_node("Softsign", [x], list(n.output), name=n.name)
        elif n.op_type == "Mul" and len(n.input) == 2:  # gelu, erf form
            for half_in in n.input:
                if not _is(consts, other(n, half_in), 0.5):
                    continue
                inner = prod(half_in, "Mul")
                if inner is None or len(inner.input) != 2:
                    continue
                for s in inner.input:
                    add = prod(s, "Add")
                    x = other(inner, s)
                    if add is None or len(add.input) != 2:
                        continue
                    erf_out = next((i for i in add.input if prod(i, "Erf") is not None), None)
                    if erf_out is None or not _is(consts, other(add, erf_out), 1.0):
                        continue
                    div = prod(producer[erf_out].input[0], "Div")
                    if div is None or div.input[0] != x or not _is(consts, div.input[1], float(np.sqrt(2.0)), 1e-6):
                        continue
                    drop.update(id(m) for m in (inner, add, producer[erf_out], div))
                    replace[id(n)] = helper.make_node("Gelu", [x], list(n.output), name=n.name)
    if not replace:
        return nodes
    return [replace.get(id(n), n) for n in nodes if id(n) not in drop]
