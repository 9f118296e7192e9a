"""Graph IR: frozen node types, the validated :class:`Graph`, activations, losses,
and the native (pickle-free) serialization format."""

from hwbp.ir.activations import ACTIVATIONS, ActivationFn, get_activation
from hwbp.ir.graph import Graph
from hwbp.ir.losses import LOSSES, LossFn, get_loss
from hwbp.ir.nodes import Activation, Add, AvgPool, BatchNorm, Conv, Dense, Input, Loss, Node
from hwbp.ir.serialize import graph_from_bytes, graph_to_bytes

__all__ = [
    "ACTIVATIONS", "ActivationFn", "get_activation", "Graph", "LOSSES", "LossFn", "get_loss",
    "Activation", "Add", "Dense", "Input", "Loss", "Node", "graph_from_bytes", "graph_to_bytes",
    "Conv", "AvgPool", "BatchNorm",
]
