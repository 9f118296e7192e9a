"""Ops that leave a ``[batch, n]`` tensor's values as they are, imported as aliases (no
IR node): ``Cast`` to a floating-point type (skl2onnx casts the input to float) and
``Reshape`` to ``[-1, n]`` / ``[0, n]`` (skl2onnx's regressor output)."""

from __future__ import annotations

import onnx

from hwbp.errors import ModelError
from hwbp.importers._onnx_state import _Importer

__all__: list[str] = []

_TP = onnx.TensorProto
#: Cast targets that keep float64 values as hwbp computes them (it computes in float64).
_FLOAT_TARGETS = {_TP.FLOAT: "FLOAT", _TP.DOUBLE: "DOUBLE"}


def _cast(imp: _Importer, node: onnx.NodeProto) -> None:
    at = imp.attrs(node, {"to": 0, "saturate": 1})
    if len(node.input) != 1:
        imp.fail(node, f"expected 1 input, got {len(node.input)}", ModelError)
    to = int(at["to"])  # type: ignore[call-overload]
    if to not in _FLOAT_TARGETS:
        name = _TP.DataType.Name(to) if to in _TP.DataType.values() else str(to)
        imp.fail(node, f"Cast to {name} is not supported on the path to the output (only FLOAT or DOUBLE)")
    imp.values[node.output[0]] = imp.dynamic(node, 0)


