"""The training loop: mini-batches, gradients from a source, optimizer updates."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from hwbp.errors import ConfigError, TrainingDivergedError
from hwbp.ir.graph import Graph
from hwbp.train.optim import make_optimizer
from hwbp.train.sources import GradientSource
from hwbp.types import Batch

__all__ = ["TrainConfig", "TrainResult", "train", "accuracy", "load_digits_split"]

#: Largest parameter magnitude training may reach: the trained model is exported as float32.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TrainConfig:
    """Training options: ``epochs``, mini-batch size, optimizer (``adam``/``sgd``),
    learning rate, shuffling seed."""

    epochs: int = 1
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a positive finite number, got {self.lr}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """The trained graph and per-step history (``loss``) and per-epoch ``test_accuracy``."""

    graph: Graph
    loss: tuple[float, ...]
    test_accuracy: tuple[float, ...]


def accuracy(graph: Graph, x: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose largest output is the true class."""
    from hwbp.oracle.backprop import forward

    out = forward(graph, {graph.inputs[0].name: x})[graph.output]
    return float(np.mean(np.argmax(out, axis=1) == labels))


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits /16, split as ``examples/make_mlp_digits.py`` does
    (``test_size=0.2``, stratified, ``random_state=0``): ``x_tr, x_te, y_tr, y_te``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float64) / 16.0
    y = d.target.astype(np.int64)
    return tuple(train_test_split(x, y, test_size=0.2, random_state=0, stratify=y))  # type: ignore[return-value]


def train(graph: Graph, x: np.ndarray, labels: np.ndarray, source: GradientSource, config: TrainConfig = TrainConfig(),
          *, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, progress: bool | None = None,
          desc: str = "training") -> TrainResult:
    """Train ``graph`` (with its loss port) on ``(x, labels)`` with gradients from ``source``.

    Each step takes a shuffled mini-batch, asks ``source`` for the gradients of the
    batch-mean loss, and applies the optimizer.  The progress bar (``progress``;
    default: when stderr is a terminal) shows the running loss and accuracy.

    Raises
    ------
    TrainingDivergedError
        As soon as a loss or a parameter is not finite (the learning rate is too large).
    """
    if progress is None:
        progress = sys.stderr.isatty()
    if graph.loss is None:
        raise ConfigError("train: the graph needs a loss port (Graph.with_loss)")
    n_out = graph.size(graph.output)
    name = graph.inputs[0].name
    opt = make_optimizer(config.optimizer, config.lr)
    params = {k: np.array(v) for k, v in graph.parameters().items()}
    state = opt.init(params)
    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    test_acc: list[float] = []
    steps = int(np.ceil(len(x) / config.batch_size))
    for epoch in range(config.epochs):
        order = rng.permutation(len(x))
        bar = tqdm(range(steps), desc=f"{desc} epoch {epoch + 1}/{config.epochs}", unit="step",
                   disable=not progress, file=sys.stderr, leave=True)
        correct = seen = 0
        for s in bar:
            idx = order[s * config.batch_size:(s + 1) * config.batch_size]
            batch = Batch({name: x[idx]}, np.eye(n_out)[labels[idx]])
            grads = source(graph, batch)
            losses.append(grads.loss)
            correct += int(round(accuracy(graph, x[idx], labels[idx]) * len(idx)))
            seen += len(idx)
            params = opt.update(params, grads.parameters, state)
            bad = sorted(k for k, v in params.items() if not np.all(np.abs(v) <= _FLOAT32_MAX))
            if bad or not np.isfinite(grads.loss):
                what = f"parameter {bad[0]!r} is not finite or beyond float32" if bad else "the loss is not finite"
                raise TrainingDivergedError(f"training diverged at epoch {epoch + 1}, step {s + 1}: {what} "
                                            f"(learning rate {config.lr:g} too large?); nothing written")
            graph = graph.with_parameters(params)
            bar.set_postfix(loss=f"{grads.loss:.4f}", acc=f"{correct / seen:.3f}")
        if x_test is not None and y_test is not None:
            test_acc.append(accuracy(graph, x_test, y_test))
            if progress:
                print(f"{desc}: epoch {epoch + 1}: test accuracy {test_acc[-1]:.4f}", file=sys.stderr)
    return TrainResult(graph, tuple(losses), tuple(test_acc))
