"""The training loop: mini-batches, gradients from a source, optimizer updates,
optional gradient cosine to backprop, checkpoints that resume exactly."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from hwbp.errors import ConfigError, TrainingDivergedError
from hwbp.ir.graph import Graph
from hwbp.train.optim import make_optimizer
from hwbp.train.sources import GradientSource
from hwbp.types import Batch

__all__ = ["TrainConfig", "TrainResult", "train", "accuracy", "load_digits_split", "gradient_cosine"]

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
    """The trained graph and its history: per step ``loss`` (batch-mean loss before the
    update) and ``cosine`` (to backprop, when tracked), per epoch ``test_accuracy``."""

    graph: Graph
    loss: tuple[float, ...]
    test_accuracy: tuple[float, ...]
    cosine: tuple[float, ...] = ()


def accuracy(graph: Graph, x: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose largest output is the true class."""
    from hwbp.oracle.backprop import forward

    out = forward(graph, {graph.inputs[0].name: x})[graph.output]
    return float(np.mean(np.argmax(out, axis=1) == labels))


def gradient_cosine(a, b) -> float:
    """Cosine between two parameter-gradient sets (all tensors of ``b`` concatenated
    in sorted-name order); 1.0 when both vanish, 0.0 when only one does.  Each vector
    is scaled by its largest entry first, so tiny gradients (1e-200) do not underflow."""
    va = np.concatenate([np.ravel(a[k]) for k in sorted(b)]).astype(np.float64)
    vb = np.concatenate([np.ravel(b[k]) for k in sorted(b)]).astype(np.float64)
    sa, sb = np.abs(va).max(initial=0.0), np.abs(vb).max(initial=0.0)
    if sa == 0 or sb == 0:
        return 1.0 if sa == sb else 0.0
    va, vb = va / sa, vb / sb
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(va @ vb / (na * nb))


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits /16, split as ``examples/make_mlp_digits.py`` does
    (``test_size=0.2``, stratified, ``random_state=0``): ``x_tr, x_te, y_tr, y_te``."""
    from hwbp.data import load_dataset

    d = load_dataset("digits")
    return d.x_train, d.x_test, d.y_train, d.y_test


def _targets(graph: Graph, labels: np.ndarray, n_out: int) -> np.ndarray:
    return np.eye(n_out)[labels]


def train(graph: Graph, x: np.ndarray, labels: np.ndarray, source: GradientSource, config: TrainConfig = TrainConfig(),
          *, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, progress: bool | None = None,
          desc: str = "training", track_cosine: bool = False, checkpoint: str | None = None,
          checkpoint_every: int = 0, resume: str | None = None, max_steps: int | None = None) -> TrainResult:
    """Train ``graph`` (with its loss port) on ``(x, labels)`` with gradients from ``source``.

    Each step takes a shuffled mini-batch (one-hot targets), asks ``source`` for the
    gradients of the batch-mean loss, and applies the optimizer.  The progress bar
    shows the running loss and accuracy (and the cosine to backprop).

    Parameters
    ----------
    graph, x, labels, source, config
        Model (with a loss port), training data, gradient source, options.
    x_test, y_test : numpy.ndarray, optional
        Test data; the accuracy is measured after every epoch.
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).
    track_cosine : bool
        Also compute the exact backprop gradient of every step and record the cosine.
    checkpoint : str, optional
        ``.npz`` file written at the end of every epoch (and every ``checkpoint_every``
        steps when > 0).
    resume : str, optional
        A checkpoint to continue from (same model structure and data).
    max_steps : int, optional
        Stop after this many optimizer steps in this call (a checkpoint is written).

    Raises
    ------
    TrainingDivergedError
        As soon as a loss or a parameter is not finite (the learning rate is too large).
    """
    from hwbp.oracle.backprop import exact_gradients
    from hwbp.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    if progress is None:
        progress = sys.stderr.isatty()
    if graph.loss is None:
        raise ConfigError("train: the graph needs a loss port (Graph.with_loss)")
    on_chip = getattr(source, "train_on_chip", None)  # a backend that trains inside itself
    if on_chip is not None:
        done = on_chip(graph, x, labels, config, x_test=x_test, y_test=y_test, progress=progress, desc=desc)
        if done is not None:
            return done
    n_out = graph.size(graph.output)
    name = graph.inputs[0].name
    opt = make_optimizer(config.optimizer, config.lr)
    params = {k: np.array(v) for k, v in graph.parameters().items()}
    state = opt.init(params)
    rng = np.random.default_rng(config.seed)
    hist: dict[str, list] = {"loss": [], "cosine": [], "test_accuracy": []}
    start_epoch, start_step, order = 0, 0, None
    if resume is not None:
        ck = load_checkpoint(resume)
        if set(ck.params) != set(params) or any(ck.params[k].shape != params[k].shape for k in params):
            raise ConfigError(f"--resume {resume}: its parameters do not fit the model {graph.name!r}")
        if ck.config and ck.config != asdict(config):
            raise ConfigError(f"--resume {resume}: written with other training options {ck.config}")
        params = {k: np.array(v) for k, v in ck.params.items()}
        state.step, state.m, state.v = ck.opt_step, dict(ck.opt_m), dict(ck.opt_v) if ck.opt_v else state.v
        rng.bit_generator.state = ck.rng_state
        start_epoch, start_step, order = ck.epoch, ck.step_in_epoch, ck.order
        hist = {k: list(ck.history.get(k, [])) for k in hist}
        graph = graph.with_parameters(params)
    steps = int(np.ceil(len(x) / config.batch_size))
    done = 0

    def save(epoch: int, step: int, order: np.ndarray) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, Checkpoint(params, state.step, state.m, state.v, rng.bit_generator.state,
                                                   epoch, step, order, hist, asdict(config)))

    for epoch in range(start_epoch, config.epochs):
        if order is None or epoch != start_epoch or start_step == 0:
            order = rng.permutation(len(x))
        first = start_step if epoch == start_epoch else 0
        bar = tqdm(range(first, steps), desc=f"{desc} epoch {epoch + 1}/{config.epochs}", unit="step",
                   disable=not progress, file=sys.stderr, leave=True, initial=first, total=steps)
        correct = seen = 0
        for s in bar:
            idx = order[s * config.batch_size:(s + 1) * config.batch_size]
            batch = Batch({name: x[idx]}, _targets(graph, labels[idx], n_out))
            grads = source(graph, batch)
            hist["loss"].append(float(grads.loss))
            post = {"loss": f"{grads.loss:.4f}"}
            if track_cosine:
                hist["cosine"].append(gradient_cosine(grads.parameters, exact_gradients(graph, batch).parameters))
                post["cos"] = f"{hist['cosine'][-1]:.6f}"
            correct += int(round(accuracy(graph, x[idx], labels[idx]) * len(idx)))
            seen += len(idx)
            post["acc"] = f"{correct / seen:.3f}"
            params = opt.update(params, grads.parameters, state)
            bad = sorted(k for k, v in params.items() if not np.all(np.abs(v) <= _FLOAT32_MAX))
            if bad or not np.isfinite(grads.loss):
                what = f"parameter {bad[0]!r} is not finite or beyond float32" if bad else "the loss is not finite"
                raise TrainingDivergedError(f"training diverged at epoch {epoch + 1}, step {s + 1}: {what} "
                                            f"(learning rate {config.lr:g} too large?); nothing written")
            graph = graph.with_parameters(params)
            bar.set_postfix(post)
            done += 1
            if (checkpoint_every and done % checkpoint_every == 0) or done == max_steps:
                save(epoch, s + 1, order)
            if done == max_steps:
                bar.close()
                return TrainResult(graph, tuple(hist["loss"]), tuple(hist["test_accuracy"]), tuple(hist["cosine"]))
        if x_test is not None and y_test is not None:
            hist["test_accuracy"].append(accuracy(graph, x_test, y_test))
            if progress:
                print(f"{desc}: epoch {epoch + 1}: test accuracy {hist['test_accuracy'][-1]:.4f}", file=sys.stderr)
        save(epoch + 1, 0, order)
    return TrainResult(graph, tuple(hist["loss"]), tuple(hist["test_accuracy"]), tuple(hist["cosine"]))
