"""Handlers of convolutional and normalizing ONNX ops, and of elementwise ops that
need more than one attribute: ``Conv``, ``AveragePool``, ``GlobalAveragePool``,
``ReduceMean`` over the spatial axes, ``BatchNormalization``, ``Reshape``, ``Dropout``, ``Gelu``, ``Clip`` and ``Mul``
(``x * Sigmoid(x)``, as SiLU is exported).

Tensors ``[batch, C, *S]`` are flattened row-major per sample in the IR (see
:mod:`hwbp.lower.structured`); a value's per-sample shape travels with it
(:class:`~hwbp.importers._onnx_state._Value`), so ``Reshape`` and ``Flatten`` make no node.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np
import onnx

from hwbp.errors import ModelError, ShapeError
from hwbp.importers._onnx_state import Handler, _attr_float, _Importer, _Value
from hwbp.ir.nodes import Activation, AvgPool, BatchNorm, Conv, window_output

__all__ = ["SPATIAL_HANDLERS"]

_AP = onnx.AttributeProto


def _attrs(imp: _Importer, node: onnx.NodeProto, defaults: Mapping[str, object]) -> dict[str, object]:
    """Attributes of ``node`` over ``defaults`` (ints, floats, int lists, strings)."""
    out = dict(defaults)
    kinds = {int: _AP.INT, float: _AP.FLOAT, tuple: _AP.INTS, str: _AP.STRING}
    for attr in node.attribute:
        if attr.name not in defaults:
            imp.fail(node, f"unsupported attribute {attr.name!r}")
        if attr.type != kinds[type(defaults[attr.name])]:
            imp.fail(node, f"attribute {attr.name!r} has the wrong type", ModelError)
        value = onnx.helper.get_attribute_value(attr)
        out[attr.name] = (value.decode("utf-8", "replace") if isinstance(value, bytes)
                          else tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else value)
    return out


def _spatial_input(imp: _Importer, node: onnx.NodeProto) -> _Value:
    """Input 0 of ``node``: a ``[batch, C, S]`` or ``[batch, C, H, W]`` tensor of known shape."""
    if not node.input:
        imp.fail(node, "expected an input", ModelError)
    x = imp.dynamic(node, 0, any_rank=True)
    if x.rank not in (3, 4) or len(x.shape) != x.rank - 1:
        imp.fail(node, f"input must be [batch, C, L] or [batch, C, H, W] of known shape, got a "
                       f"{x.rank}-D tensor", ShapeError)
    return x


def _pads(imp: _Importer, node: onnx.NodeProto, at: dict, spatial: tuple[int, ...], kernel: tuple[int, ...],
          strides: tuple[int, ...], dilations: tuple[int, ...]) -> tuple[int, ...]:
    d = len(spatial)
    auto = at["auto_pad"]
    if auto in ("NOTSET", ""):
        pads = at["pads"] or (0,) * (2 * d)
        if len(pads) != 2 * d:
            imp.fail(node, f"pads {pads} must have {2 * d} entries", ShapeError)
        return tuple(pads)
    if auto == "VALID":
        return (0,) * (2 * d)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        lo, hi = [], []
        for n, k, s, dl in zip(spatial, kernel, strides, dilations):
            total = max((-(-n // s) - 1) * s + (k - 1) * dl + 1 - n, 0)
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
        return tuple(lo + hi)
    imp.fail(node, f"auto_pad={auto!r} is not supported")


def _geometry(imp: _Importer, node: onnx.NodeProto, d: int, **values: tuple[int, ...]) -> None:
    """Check window attributes: ``strides``/``dilations``/``kernel`` are ``d`` positive
    integers, ``pads`` ``2 d`` non-negative ones."""
    for label, v in values.items():
        n = 2 * d if label == "pads" else d
        low = 0 if label == "pads" else 1
        if len(v) != n or any(x < low for x in v):
            imp.fail(node, f"{label} {list(v)} must be {n} {'non-negative' if low == 0 else 'positive'} "
                           f"integers for a {d}-D input", ShapeError)


def _conv(imp: _Importer, node: onnx.NodeProto) -> None:
    at = _attrs(imp, node, {"auto_pad": "NOTSET", "dilations": (), "group": 1, "kernel_shape": (),
                            "pads": (), "strides": ()})
    x = _spatial_input(imp, node)
    if len(node.input) not in (2, 3):
        imp.fail(node, f"expected 2 or 3 inputs, got {len(node.input)}", ModelError)
    w = imp.const(node, 1, "kernel")
    d = x.rank - 2
    if w.ndim != d + 2:
        imp.fail(node, f"kernel {node.input[1]!r} of shape {w.shape} does not fit a {x.rank}-D input", ShapeError)
    kernel = tuple(int(k) for k in w.shape[2:])
    if at["kernel_shape"] and tuple(at["kernel_shape"]) != kernel:
        imp.fail(node, f"kernel_shape {at['kernel_shape']} differs from the kernel's shape {kernel}", ShapeError)
    strides = tuple(at["strides"]) or (1,) * d
    dilations = tuple(at["dilations"]) or (1,) * d
    _geometry(imp, node, d, strides=strides, dilations=dilations, kernel=kernel)
    pads = _pads(imp, node, at, x.shape[1:], kernel, strides, dilations)
    _geometry(imp, node, d, pads=pads)
    if at["group"] < 1 or x.shape[0] % at["group"] or w.shape[0] % at["group"] or w.shape[1] * at["group"] != x.shape[0]:
        imp.fail(node, f"kernel of shape {w.shape} with group={at['group']} does not fit {x.shape[0]} input "
                       f"channels", ShapeError)
    has_b = len(node.input) == 3 and node.input[2] != ""
    bias = imp.const(node, 2, "bias") if has_b else np.zeros(0)  # no bias: no parameter
    wname = node.input[1]
    prefix = wname[: -len(".weight")] if wname.endswith(".weight") else ""
    name = imp.unique(prefix, "") if prefix.strip("._/") else imp.node_name(node)
    try:
        ir = Conv(name, source=x.node, in_shape=x.shape, weight=w, bias=bias.reshape(-1), strides=strides, pads=pads,
                  dilations=dilations, groups=int(at["group"]),
                  weight_param=imp.params.get(wname), bias_param=imp.params.get(node.input[2]) if has_b else None)
    except ModelError as exc:
        imp.fail(node, str(exc), type(exc))
    imp.params.setdefault(wname, ir.weight_name)
    if has_b:
        imp.params.setdefault(node.input[2], ir.bias_name)
    _emit_spatial(imp, node, ir, ir.out_shape)


def _emit_spatial(imp: _Importer, node: onnx.NodeProto, ir, out_shape: tuple[int, ...]) -> None:
    if any(n < 1 for n in out_shape):
        imp.fail(node, f"window larger than the padded input (output shape {out_shape})", ShapeError)
    imp.emit(node, ir, len(out_shape) + 1, int(np.prod(out_shape)), tuple(out_shape))


def _average_pool(imp: _Importer, node: onnx.NodeProto) -> None:
    at = _attrs(imp, node, {"auto_pad": "NOTSET", "ceil_mode": 0, "count_include_pad": 0, "dilations": (),
                            "kernel_shape": (), "pads": (), "strides": ()})
    x = _spatial_input(imp, node)
    d = x.rank - 2
    kernel = tuple(at["kernel_shape"])
    if at["ceil_mode"] != 0:
        imp.fail(node, "ceil_mode=1 is not supported (only 0)")
    if any(v != 1 for v in at["dilations"]):
        imp.fail(node, f"dilations {at['dilations']} are not supported (only 1)")
    strides = tuple(at["strides"]) or (1,) * d
    _geometry(imp, node, d, strides=strides, kernel=kernel)
    pads = _pads(imp, node, at, x.shape[1:], kernel, strides, (1,) * d)
    _geometry(imp, node, d, pads=pads)
    ir = AvgPool(imp.node_name(node), source=x.node, in_shape=x.shape, kernel=kernel, strides=strides, pads=pads,
                 count_include_pad=bool(at["count_include_pad"]))
    out = (x.shape[0],) + tuple(window_output(n, k, s, pads[i], pads[d + i])
                                for i, (n, k, s) in enumerate(zip(x.shape[1:], kernel, strides)))
    _emit_spatial(imp, node, ir, out)


def _global_average_pool(imp: _Importer, node: onnx.NodeProto) -> None:
    _attrs(imp, node, {})
    x = _spatial_input(imp, node)
    d = x.rank - 2
    ir = AvgPool(imp.node_name(node), source=x.node, in_shape=x.shape, kernel=x.shape[1:], strides=(1,) * d,
                 pads=(0,) * (2 * d))
    _emit_spatial(imp, node, ir, (x.shape[0],) + (1,) * d)


def _reduce_mean(imp: _Importer, node: onnx.NodeProto) -> None:
    """``ReduceMean`` over every spatial axis of ``[batch, C, *S]`` (torch's
    ``AdaptiveAvgPool2d(1)`` and ``x.mean((2, 3))`` under the default exporter): a
    global average pool, with or without the kept unit axes."""
    at = _attrs(imp, node, {"axes": (), "keepdims": 1, "noop_with_empty_axes": 0})
    x = _spatial_input(imp, node)
    axes = tuple(at["axes"])
    if len(node.input) > 1 and node.input[1]:
        axes = tuple(int(a) for a in imp.const(node, 1, "axes").reshape(-1))
    norm = sorted(a + x.rank if a < 0 else a for a in axes)
    d = x.rank - 2
    if norm != list(range(2, x.rank)):
        imp.fail(node, f"ReduceMean over axes {list(axes)} of a {x.rank}-D tensor is not supported; only over "
                       f"every spatial axis ({list(range(2, x.rank))}: global average pooling)")
    ir = AvgPool(imp.node_name(node), source=x.node, in_shape=x.shape, kernel=x.shape[1:], strides=(1,) * d,
                 pads=(0,) * (2 * d))
    if at["keepdims"]:
        _emit_spatial(imp, node, ir, (x.shape[0],) + (1,) * d)
    else:
        imp.emit(node, ir, 2, x.shape[0], (x.shape[0],))


def _batch_norm(imp: _Importer, node: onnx.NodeProto) -> None:
    at = _attrs(imp, node, {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0, "spatial": 1})
    if at["training_mode"] != 0 or at["spatial"] != 1:
        imp.fail(node, "only inference form (training_mode=0, spatial=1) is supported")
    if len(node.input) != 5:
        imp.fail(node, f"expected 5 inputs, got {len(node.input)}", ModelError)
    x = imp.dynamic(node, 0, any_rank=True)
    shape = x.shape if x.rank > 2 else (x.size,)
    gamma, beta, mean, var = (imp.const(node, i, w).reshape(-1) for i, w in
                              enumerate(("scale", "bias", "running mean", "running variance"), start=1))
    wname = node.input[1]
    prefix = wname[: -len(".weight")] if wname.endswith(".weight") else ""
    name = imp.unique(prefix, "") if prefix.strip("._/") else imp.node_name(node)
    try:
        ir = BatchNorm(name, source=x.node, in_shape=shape, weight=gamma, bias=beta, mean=mean, var=var,
                       epsilon=_attr_float(at["epsilon"]))
    except ModelError as exc:
        imp.fail(node, str(exc), type(exc))
    imp.emit(node, ir, x.rank, x.size, x.shape)


def _reshape(imp: _Importer, node: onnx.NodeProto) -> None:
    at = _attrs(imp, node, {"allowzero": 0})
    if len(node.input) != 2:
        imp.fail(node, f"expected 2 inputs, got {len(node.input)}", ModelError)
    x = imp.dynamic(node, 0, any_rank=True)
    target = [int(v) for v in imp.const(node, 1, "shape").reshape(-1)]
    batch = getattr(imp, "batch_dim", 0)
    if len(target) < 2 or (at["allowzero"] and 0 in target) or target[0] not in (-1, 0) + ((batch,) if batch else ()):
        imp.fail(node, f"only reshapes to [batch, ...] (first entry -1, 0 or the input's batch size) are "
                       f"supported, got {target}")
    rest = target[1:]
    if rest.count(-1) > 1 or any(v < -1 or v == 0 for v in rest):
        imp.fail(node, f"shape {target} is not supported (per-sample sizes must be positive, at most one -1)")
    known = int(np.prod([v for v in rest if v != -1]))
    if -1 in rest:
        if x.size % known:
            imp.fail(node, f"cannot reshape {x.size} values per sample to {target}; to import the tensor "
                           f"before it, pass --output {node.input[0]}", ShapeError)
        rest[rest.index(-1)] = x.size // known
    if int(np.prod(rest)) != x.size:
        imp.fail(node, f"cannot reshape {x.size} values per sample to {target}; to import the tensor before "
                       f"it, pass --output {node.input[0]}", ShapeError)
    imp.values[node.output[0]] = x._replace(rank=len(target), shape=tuple(rest))


def _dropout(imp: _Importer, node: onnx.NodeProto) -> None:
    _attrs(imp, node, {"seed": 0})
    if len(node.input) == 3 and node.input[2]:
        mode = imp.consts.get(node.input[2])
        if mode is None or np.any(mode):
            imp.fail(node, "training_mode must be a constant false (dropout is the identity at inference)")
    imp.values[node.output[0]] = imp.dynamic(node, 0, any_rank=True)


def _elementwise(imp: _Importer, node: onnx.NodeProto, x: _Value, function: str, alpha: float = 0.01) -> None:
    ir = Activation(imp.node_name(node), source=x.node, function=function, alpha=alpha)
    imp.emit(node, ir, x.rank, x.size, x.shape)


def _gelu(imp: _Importer, node: onnx.NodeProto) -> None:
    at = _attrs(imp, node, {"approximate": "none"})
    if at["approximate"] not in ("none", "tanh"):
        imp.fail(node, f"approximate={at['approximate']!r} is not supported (none or tanh)")
    _elementwise(imp, node, imp.dynamic(node, 0, any_rank=True), "gelu" if at["approximate"] == "none" else "gelu_tanh")


#: Clip bounds with an activation of their own (other bounds: ``clip``).
_CLIPS = {(-1.0, 1.0): "hardtanh", (0.0, 6.0): "relu6"}


def _clip(imp: _Importer, node: onnx.NodeProto) -> None:
    at = _attrs(imp, node, {"min": -3.4028234663852886e38, "max": 3.4028234663852886e38})
    lo, hi = at["min"], at["max"]
    if len(node.input) > 1 and node.input[1]:
        lo = float(imp.const(node, 1, "min").reshape(()))
    if len(node.input) > 2 and node.input[2]:
        hi = float(imp.const(node, 2, "max").reshape(()))
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        imp.fail(node, f"Clip bounds must be finite with min < max, got [{lo:g}, {hi:g}]", ModelError)
    x = imp.dynamic(node, 0, any_rank=True)
    function = _CLIPS.get((lo, hi))
    if function is not None:
        _elementwise(imp, node, x, function)
        return
    ir = Activation(imp.node_name(node), source=x.node, function="clip", alpha=lo, high=hi)
    imp.emit(node, ir, x.rank, x.size, x.shape)


def _mul(imp: _Importer, node: onnx.NodeProto) -> None:
    """``x * Sigmoid(x)`` (how SiLU is exported) becomes one ``silu`` activation."""
    _attrs(imp, node, {})
    if len(node.input) == 2 and all(i in imp.values for i in node.input):
        a, b = (imp.dynamic(node, i, any_rank=True) for i in (0, 1))
        for u, s in ((a, b), (b, a)):
            sig = imp.nodes.get(s.node)
            if isinstance(sig, Activation) and sig.function == "sigmoid" and sig.source == u.node:
                _elementwise(imp, node, u, "silu")
                return
    imp.fail(node, "Mul is supported only as x * Sigmoid(x) (SiLU)")


#: Handler per op type (merged into the importer's table).
SPATIAL_HANDLERS: Mapping[str, Handler] = MappingProxyType({
    "AveragePool": _average_pool,
    "BatchNormalization": _batch_norm,
    "Clip": _clip,
    "Conv": _conv,
    "Dropout": _dropout,
    "Gelu": _gelu,
    "GlobalAveragePool": _global_average_pool,
    "ReduceMean": _reduce_mean,
    "Mul": _mul,
    "Reshape": _reshape,
})
