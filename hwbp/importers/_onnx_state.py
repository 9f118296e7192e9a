"""Per-import state of the ONNX importer: constants, computed tensors, IR nodes."""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Mapping, NamedTuple, NoReturn

import numpy as np
import onnx
from onnx import numpy_helper

from hwbp.errors import (
    HwbpError,
    ModelError,
    ModelFormatError,
    ShapeError,
    UnsupportedOpError,
)
from hwbp.ir.nodes import Dense, Node

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
    """A computed tensor: the IR node holding it, its rank, its width per sample and
    its per-sample shape (``(C, *S)`` of a ``[batch, C, *S]`` tensor, flattened
    row-major in the IR; ``()`` when only the width is known)."""

    node: str
    rank: int
    size: int
    shape: tuple[int, ...] = ()


def _attr_float(value: float) -> float:
    """An ONNX float attribute (stored as float32) as the shortest decimal that
    round-trips through float32, e.g. ``0.2f`` -> ``0.2``."""
    return float(str(np.float32(value)))


def _clean(name: str) -> str:
    """An ONNX name as an IR name: ``/block1/fc/Gemm`` -> ``block1.fc.Gemm``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", name.strip("/").replace("/", ".")).strip("._")


class _Importer:
    """State of one import: constants, computed tensors and the IR nodes made so far."""

    def __init__(self, source: str, graph: onnx.GraphProto, base_dir: str | None = None) -> None:
        self.source = source
        #: Directory of the model file (external data are read only from inside it).
        self.base_dir = base_dir
        #: The ONNX node that produced each tensor, by tensor name (for pattern matching).
        self.producers: dict[str, onnx.NodeProto] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, _Value] = {}
        self.nodes: dict[str, Node] = {}
        self.used: set[str] = set(_RESERVED)
        #: Tensors produced directly by a Gemm/MatMul, by tensor name -> Dense name.
        self.fusable: dict[str, str] = {}
        #: Initializer name -> IR parameter name, for initializers that became parameters.
        self.params: dict[str, str] = {}
        #: Initializer name -> the (out, in) weight its first Dense use made of it.
        self.tied_values: dict[str, np.ndarray] = {}
        #: The graph input's static batch size (0 when symbolic).
        self.batch_dim = 0
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
            from hwbp.importers.onnx_external import read_external

            return read_external(proto, self.base_dir, f"{self.source}: {what}")
        if proto.data_type not in _NUMERIC_TYPES:
            known = proto.data_type in _TP.DataType.values()
            dtype = _TP.DataType.Name(proto.data_type) if known else proto.data_type
            raise ModelFormatError(f"{self.source}: {what} has unsupported element type {dtype}")
        try:
            with np.errstate(all="ignore"):  # non-finite values are reported by Graph lint
                return np.asarray(numpy_helper.to_array(proto), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise ModelFormatError(f"{self.source}: {what} is corrupted: {' '.join(str(exc).split())}") from None

    def dynamic(self, node: onnx.NodeProto, index: int, *, any_rank: bool = False) -> _Value:
        """Input ``index`` of ``node``, which must be a computed tensor of rank <= 2
        (of any rank with ``any_rank``, for elementwise ops)."""
        name = node.input[index] if index < len(node.input) else ""
        if name in self.consts:
            self.fail(node, f"input #{index} {name!r} is a constant; expected a computed tensor")
        if name not in self.values:
            self.fail(node, f"input #{index} {name!r} is not produced by any preceding node", ModelError)
        value = self.values[name]
        if value.rank > 2 and not any_rank:
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

    def emit(self, node: onnx.NodeProto, ir: Node, rank: int, size: int, shape: tuple[int, ...] = ()) -> None:
        """Record IR node ``ir`` as the value of ``node``'s output."""
        self.nodes[ir.name] = ir
        self.values[node.output[0]] = _Value(ir.name, rank, size, shape)

    def dense(self, node: onnx.NodeProto, x: _Value, weight: np.ndarray, bias: np.ndarray, wname: str,
              bname: str = "", has_bias: bool = True, gain: float = 1.0) -> None:
        """Emit ``y = gain * weight @ x + bias`` (``weight`` is ``(out, in)``; ``gain`` a
        fixed scale, e.g. Gemm's ``alpha``); ``wname`` and ``bname`` are the initializers
        they come from (a second use ties to the first); ``has_bias=False`` makes a
        bias-free layer (no bias parameter; a later ``Add`` may give it one)."""
        if weight.shape[1] != x.size:
            self.fail(node, f"weight {wname!r} (as (out, in) = {weight.shape}) expects {weight.shape[1]} "
                            f"inputs but the input has {x.size}", ShapeError)
        bias = self.bias(node, bias, weight.shape[0])
        prefix = wname[: -len(".weight")] if wname.endswith(".weight") else ""
        name = self.unique(prefix, "") if _clean(prefix) else self.node_name(node)
        # a weight initializer read by several nodes is one (tied) parameter
        wparam = self.params.get(wname)
        first = self.tied_values.setdefault(wname, weight)
        if first is not weight and not (first.shape == weight.shape and np.array_equal(first, weight)):
            how = "transposed" if first.shape == weight.T.shape and np.array_equal(first, weight.T) else "rescaled"
            self.fail(node, f"weight {wname!r} is used {how} here and as it is elsewhere; a tied parameter "
                            "must be used the same way by every node (transposed ties are not supported)")
        bparam = self.params.get(bname) if bname else None
        ir = Dense(name, source=x.node, weight=weight, bias=bias, has_bias=has_bias, gain=gain, weight_param=wparam,
                   bias_param=bparam)
        self.params.setdefault(wname, ir.weight_name)
        if bname:
            self.params.setdefault(bname, ir.bias_name)
        self.emit(node, ir, x.rank, weight.shape[0])
        self.fusable[node.output[0]] = name

    def bias(self, node: onnx.NodeProto, b: np.ndarray, n_out: int) -> np.ndarray:
        """``b`` broadcast to ``(n_out,)``: accepts ``(n_out,)``, ``(1, n_out)``, scalars and ``(1,)``."""
        flat = b[0] if b.ndim == 2 and b.shape[0] == 1 else b
        if flat.shape in ((), (1,)):
            return np.full(n_out, float(flat.reshape(())))
        if flat.shape != (n_out,):
            self.fail(node, f"bias of shape {b.shape} does not broadcast to ({n_out},) per sample", ShapeError)
        return flat



Handler = Callable[[_Importer, onnx.NodeProto], None]
