"""IR node types: small frozen dataclasses whose docstrings give their equations.

Every node has a unique ``name`` and produces one vector per sample.  Parameter
arrays are stored as read-only float64 copies, so a node can never be mutated after
construction.  Shapes follow the PyTorch convention: a Dense weight is ``(out, in)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from hwbp.errors import ModelError

__all__ = ["Node", "Input", "Dense", "Activation", "Add", "Loss", "Conv", "AvgPool", "BatchNorm",
           "frozen_array"]


def frozen_array(value: object, what: str = "array") -> np.ndarray:
    """Return a read-only, C-contiguous float64 copy of ``value``; ``what`` names it
    in the error message.

    Raises
    ------
    ModelError
        If ``value`` is not numeric.
    """
    try:
        arr = np.array(value, dtype=np.float64, order="C", copy=True)
    except (TypeError, ValueError) as exc:
        dtype = getattr(value, "dtype", type(value).__name__)
        raise ModelError(f"{what}: expected a numeric array, got {dtype} ({exc})") from None
    arr.setflags(write=False)
    return arr


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ModelError(f"{what} must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, eq=False)
class Node:
    """Base class of IR nodes.

    Attributes
    ----------
    name : str
        Unique name within the graph.
    """

    name: str
    #: Registry key used by serialization (set by each subclass).
    kind: ClassVar[str] = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the nodes this node reads."""
        return ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ModelError(f"{type(self).__name__} node has an empty or non-string name: {self.name!r}")


@dataclass(frozen=True, eq=False)
class Input(Node):
    """Network input, clamped to the data: ``x = x_data``, shape ``(size,)`` per sample."""

    size: int = 0
    kind: ClassVar[str] = "input"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)):
            raise ModelError(f"input {self.name!r}: size must be an integer, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))


class _Parameters:
    """``weight_name`` and ``bias_name`` of a node with a weight and a bias: its own
    ``<name>.weight`` / ``<name>.bias``, or the parameter it shares (``weight_param``,
    ``bias_param``: tied weights)."""

    name: str
    weight_param: str | None
    bias_param: str | None

    @property
    def weight_name(self) -> str:
        """Parameter name of the weight (matrix or kernel)."""
        return self.weight_param or f"{self.name}.weight"

    @property
    def bias_name(self) -> str:
        """Parameter name of the bias."""
        return self.bias_param or f"{self.name}.bias"


@dataclass(frozen=True, eq=False)
class Dense(_Parameters, Node):
    """Affine map ``y = g W x + b`` with ``W`` of shape ``(out, in)``, ``b`` of ``(out,)``
    and a fixed (untrained) scalar gain ``g`` (default 1).

    The parameters are named ``<name>.weight`` and ``<name>.bias``, or
    ``weight_param`` / ``bias_param`` where given: Dense nodes that give the same
    parameter name share ONE parameter (a layer applied several times; tied
    weights), whose gradient is the sum of every use's gradient.  Tied nodes must
    hold equal arrays (checked by graph lint).  A bias-free layer (``has_bias=False``,
    e.g. ``nn.Linear(..., bias=False)``) keeps ``bias`` at zeros but has no bias
    *parameter*: :meth:`hwbp.ir.Graph.parameters`, the lowering, the oracle and the
    exporters leave it out, so no gradient of it is ever reported.
    The gain carries the scale factors of a parameterization (``1/sqrt(fan_in)``,
    ``1/sqrt(N L)``, ...) so that every backend realizes the same model; it is not a
    parameter, and ``dL/dW = g * dL/dy xᵀ``.
    """

    source: str = ""
    weight: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros((0, 0))))
    bias: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros(0)))
    has_bias: bool = True
    weight_param: str | None = None
    bias_param: str | None = None
    gain: float = 1.0
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.has_bias, (bool, np.bool_)):
            raise ModelError(f"dense {self.name!r}: has_bias must be true or false, got {self.has_bias!r}")
        object.__setattr__(self, "has_bias", bool(self.has_bias))
        gain = _number(self.gain, f"dense {self.name!r}: gain")
        if not (np.isfinite(gain) and gain != 0):
            raise ModelError(f"dense {self.name!r}: gain must be finite and non-zero, got {gain}")
        object.__setattr__(self, "gain", gain)
        object.__setattr__(self, "weight", frozen_array(self.weight, f"dense {self.name!r}: weight"))
        object.__setattr__(self, "bias", frozen_array(self.bias, f"dense {self.name!r}: bias"))
        if not self.has_bias and np.any(self.bias != 0):
            raise ModelError(f"dense {self.name!r}: a bias-free layer (has_bias false) must have a zero bias")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)


@dataclass(frozen=True, eq=False)
class Activation(Node):
    """Elementwise nonlinearity ``y = f(x)``; ``function`` names an entry of
    :data:`hwbp.ir.activations.ACTIVATIONS` and ``alpha`` is its slope parameter
    (used by ``leaky_relu``: ``f(x) = x if x > 0 else alpha x``, and ``elu``:
    ``f(x) = x if x > 0 else alpha (exp(x) - 1)``); ``clip`` is
    ``f(x) = min(max(x, alpha), high)`` (ONNX Clip, PyTorch Hardtanh with any bounds;
    ``high`` is used by clip only and is None otherwise)."""

    source: str = ""
    function: str = "identity"
    alpha: float = 0.01
    high: float | None = None
    kind: ClassVar[str] = "activation"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "alpha", _number(self.alpha, f"activation {self.name!r}: alpha"))
        if self.high is not None:
            object.__setattr__(self, "high", _number(self.high, f"activation {self.name!r}: high"))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)


@dataclass(frozen=True, eq=False)
class Add(Node):
    """Elementwise sum ``y = sum_k x_k`` of two or more equally sized inputs (residual skip)."""

    sources: tuple[str, ...] = ()
    kind: ClassVar[str] = "add"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.sources, str) or not all(isinstance(x, str) for x in self.sources):
            raise ModelError(f"add {self.name!r}: sources must be a sequence of node names, got {self.sources!r}")
        object.__setattr__(self, "sources", tuple(self.sources))

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.sources


@dataclass(frozen=True, eq=False)
class Loss(Node):
    """Loss port ``l(x, y)`` on its input; ``function`` is ``"mse"`` or ``"ce"``
    (see :mod:`hwbp.ir.losses`).  It produces the scalar loss, not a vector."""

    source: str = ""
    function: str = "mse"
    kind: ClassVar[str] = "loss"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)


def _ints(value: object, what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be a sequence of integers, got {value!r}") from None
    if any(isinstance(v, bool) for v in value):  # type: ignore[union-attr]
        raise ModelError(f"{what} must be a sequence of integers, got {value!r}")
    return out


def window_output(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1) -> int:
    """Output length of a sliding window over ``size`` positions:
    ``floor((size + pad_lo + pad_hi - dilation (kernel - 1) - 1) / stride) + 1``."""
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True, eq=False)
class _Spatial(Node):
    """Common fields of nodes on ``[C, *spatial]`` tensors flattened row-major per sample."""

    source: str = ""
    in_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "in_shape", _ints(self.in_shape, f"{self.kind} {self.name!r}: in_shape"))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)

    def _geometry(self) -> None:
        for f in ("strides", "pads", "dilations", "kernel"):
            if hasattr(self, f):
                object.__setattr__(self, f, _ints(getattr(self, f), f"{self.kind} {self.name!r}: {f}"))


@dataclass(frozen=True, eq=False)
class Conv(_Parameters, _Spatial):
    """Convolution (ONNX ``Conv``, cross-correlation) over ``d = 1`` or ``2`` spatial axes.

    Input ``x`` of shape ``in_shape = (C_in, *S)`` (flattened row-major per sample),
    kernel ``weight`` of shape ``(C_out, C_in / groups, *K)``, ``bias`` of ``(C_out,)``::

        y[o, p] = b[o] + sum_{c, k} W[o, c, k] * x[g(o) C_in/groups + c, p * s + k * dil - pad_lo]

    (terms outside the input are zero; ``g(o) = o // (C_out / groups)``).  The kernel
    is ONE parameter (``<name>.weight``) used at every output position: its gradient
    is the sum over positions.  ``pads`` is ``(lo_1, .., lo_d, hi_1, .., hi_d)``.
    ``weight_param`` / ``bias_param`` name shared parameters as for :class:`Dense`.
    An empty ``bias`` (shape ``(0,)``, the default) means the convolution has none
    (``bias=False`` in PyTorch): no bias parameter exists.
    """

    weight: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros((0, 0, 0))))
    bias: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros(0)))
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    groups: int = 1
    weight_param: str | None = None
    bias_param: str | None = None
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._geometry()
        object.__setattr__(self, "weight", frozen_array(self.weight, f"conv {self.name!r}: weight"))
        object.__setattr__(self, "bias", frozen_array(self.bias, f"conv {self.name!r}: bias"))
        object.__setattr__(self, "groups", int(_number(self.groups, f"conv {self.name!r}: groups")))

    @property
    def has_bias(self) -> bool:
        """Whether the convolution has a bias parameter."""
        return self.bias.size > 0

    @property
    def out_shape(self) -> tuple[int, ...]:
        """``(C_out, *S_out)``."""
        d = len(self.in_shape) - 1
        k = self.weight.shape[2:]
        return (int(self.weight.shape[0]),) + tuple(
            window_output(self.in_shape[1 + i], int(k[i]), self.strides[i], self.pads[i], self.pads[d + i],
                          self.dilations[i]) for i in range(d))


@dataclass(frozen=True, eq=False)
class AvgPool(_Spatial):
    """Average pooling (fixed linear map, no parameters) over ``in_shape = (C, *S)``::

        y[c, p] = (1 / n(p)) sum_{k in window} x[c, p * s + k - pad_lo]

    with ``n(p)`` the full window size when ``count_include_pad`` (ONNX
    ``count_include_pad = 1``, torch's default) and otherwise the number of window
    positions inside the input.  GlobalAveragePool is ``kernel = S``, no padding.
    """

    kernel: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    count_include_pad: bool = True
    kind: ClassVar[str] = "avgpool"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._geometry()
        object.__setattr__(self, "count_include_pad", bool(self.count_include_pad))

    @property
    def out_shape(self) -> tuple[int, ...]:
        """``(C, *S_out)``."""
        d = len(self.in_shape) - 1
        return (self.in_shape[0],) + tuple(
            window_output(self.in_shape[1 + i], self.kernel[i], self.strides[i], self.pads[i], self.pads[d + i])
            for i in range(d))


@dataclass(frozen=True, eq=False)
class BatchNorm(_Parameters, _Spatial):
    """Batch normalization in inference form, per channel ``c`` of ``in_shape = (C, *S)``::

        y[c, p] = weight[c] * (x[c, p] - mean[c]) / sqrt(var[c] + epsilon) + bias[c]

    ``weight`` (gamma) and ``bias`` (beta) are the parameters ``<name>.weight`` and
    ``<name>.bias``; ``mean`` and ``var`` are fixed running statistics.
    """

    weight: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros(0)))
    bias: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros(0)))
    mean: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros(0)))
    var: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros(0)))
    epsilon: float = 1e-5
    kind: ClassVar[str] = "batchnorm"
    #: gamma and beta are always its own (``weight_name``, ``bias_name``: never shared)
    weight_param: ClassVar[None] = None
    bias_param: ClassVar[None] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for f in ("weight", "bias", "mean", "var"):
            object.__setattr__(self, f, frozen_array(getattr(self, f), f"batchnorm {self.name!r}: {f}"))
        object.__setattr__(self, "epsilon", _number(self.epsilon, f"batchnorm {self.name!r}: epsilon"))

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Same as ``in_shape``."""
        return self.in_shape
