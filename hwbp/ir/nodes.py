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

__all__ = ["Node", "Input", "Dense", "Activation", "Add", "Loss", "frozen_array"]


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


@dataclass(frozen=True, eq=False)
class Dense(Node):
    """Affine map ``y = W x + b`` with ``W`` of shape ``(out, in)`` and ``b`` of ``(out,)``.

    The parameters are named ``<name>.weight`` and ``<name>.bias``.  A bias-free
    layer (``has_bias=False``, e.g. ``nn.Linear(..., bias=False)``) keeps ``bias`` at
    zeros but has no bias *parameter*: :meth:`hwbp.ir.Graph.parameters`, the lowering,
    the oracle and the exporters leave it out, so no gradient of it is ever reported.
    """

    source: str = ""
    weight: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros((0, 0))))
    bias: np.ndarray = field(default_factory=lambda: frozen_array(np.zeros(0)))
    has_bias: bool = True
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.has_bias, (bool, np.bool_)):
            raise ModelError(f"dense {self.name!r}: has_bias must be true or false, got {self.has_bias!r}")
        object.__setattr__(self, "has_bias", bool(self.has_bias))
        object.__setattr__(self, "weight", frozen_array(self.weight, f"dense {self.name!r}: weight"))
        object.__setattr__(self, "bias", frozen_array(self.bias, f"dense {self.name!r}: bias"))
        if not self.has_bias and np.any(self.bias != 0):
            raise ModelError(f"dense {self.name!r}: a bias-free layer (has_bias false) must have a zero bias")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)

    @property
    def weight_name(self) -> str:
        """Parameter name of the weight matrix."""
        return f"{self.name}.weight"

    @property
    def bias_name(self) -> str:
        """Parameter name of the bias vector."""
        return f"{self.name}.bias"


@dataclass(frozen=True, eq=False)
class Activation(Node):
    """Elementwise nonlinearity ``y = f(x)``; ``function`` names an entry of
    :data:`hwbp.ir.activations.ACTIVATIONS` and ``alpha`` is its slope parameter
    (used by ``leaky_relu`` only: ``f(x) = x if x > 0 else alpha x``)."""

    source: str = ""
    function: str = "identity"
    alpha: float = 0.01
    kind: ClassVar[str] = "activation"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "alpha", _number(self.alpha, f"activation {self.name!r}: alpha"))

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
