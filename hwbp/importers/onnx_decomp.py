"""Exporter decompositions of supported activations, recognized as the activation.

torch's dynamo exporter writes ``nn.Softplus`` (``beta=1``, ``threshold=t``) as

    s = Softplus(a);  c = Greater(a, t);  y = Where(c, a, s)

i.e. ``y = a`` where ``a > t``.  hwbp reads ``y`` as ``Softplus(a)``: the two differ
by ``log(1 + exp(-a)) < exp(-t)`` in value and ``sigmoid(-a) < exp(-t)`` in slope, and
only where ``a > t``; thresholds below 20 (torch's default; ``exp(-20) = 2.1e-9``)
are refused.  ``Greater`` and ``Where`` are accepted in this pattern only.
"""

from __future__ import annotations

import numpy as np
import onnx

from hwbp.errors import ModelError
from hwbp.importers._onnx_state import _Importer

__all__ = ["MIN_SOFTPLUS_THRESHOLD"]

#: Smallest Softplus threshold read as plain Softplus (torch's default).
MIN_SOFTPLUS_THRESHOLD = 20.0
_ONLY = "supported only in torch's Softplus pattern Where(Greater(a, t), a, Softplus(a))"


def _greater(imp: _Importer, node: onnx.NodeProto) -> None:
    """``Greater(a, t)`` with a computed ``a`` and a constant scalar ``t``: no IR node;
    :func:`_where` checks the pattern it belongs to."""
    imp.attrs(node, {})
    if len(node.input) != 2:
        imp.fail(node, f"expected 2 inputs, got {len(node.input)}", ModelError)
    imp.dynamic(node, 0)
    t = imp.const(node, 1, "threshold")
    if t.size != 1:
        imp.fail(node, f"threshold of shape {t.shape} is not a scalar; Greater is {_ONLY}")


def _where(imp: _Importer, node: onnx.NodeProto) -> None:
    """``Where(Greater(a, t), a, Softplus(a))`` -> the Softplus node."""
    imp.attrs(node, {})
    if len(node.input) != 3:
        imp.fail(node, f"expected 3 inputs, got {len(node.input)}", ModelError)
    cond, then, other = node.input
    greater = imp.producers.get(cond)
    soft = imp.producers.get(other)
    if (greater is None or greater.op_type != "Greater" or soft is None or soft.op_type != "Softplus"
            or not (greater.input[0] == then == soft.input[0])):
        imp.fail(node, f"Where is {_ONLY}")
    t = float(np.asarray(imp.consts[greater.input[1]]).reshape(()))
    if not t >= MIN_SOFTPLUS_THRESHOLD:
        imp.fail(node, f"Softplus threshold {t:g} < {MIN_SOFTPLUS_THRESHOLD:g} is not supported "
                       "(hwbp's softplus has no threshold; export with the default threshold=20)")
    imp.values[node.output[0]] = imp.values[other]
