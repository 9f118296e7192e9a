"""Training with gradients the physical system computes (circuit-in-the-loop)."""

from hwbp.train.loop import TrainConfig, TrainResult, accuracy, gradient_cosine, load_digits_split, train
from hwbp.train.optim import OPTIMIZERS, Adam, SGD, make_optimizer
from hwbp.train.sources import BaselineSource, DynamicsSource, get_source, source_names, source_options

__all__ = [
    "TrainConfig", "TrainResult", "accuracy", "gradient_cosine", "load_digits_split", "train", "OPTIMIZERS", "Adam", "SGD",
    "make_optimizer", "DynamicsSource", "BaselineSource", "get_source", "source_names", "source_options",
]
