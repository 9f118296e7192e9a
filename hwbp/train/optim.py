"""Optimizers that apply gradients to a parameter dict (numpy, float64).

An optimizer's configuration is a frozen dataclass; its running state (moments,
step count) lives in a separate :class:`OptimizerState` returned by ``init``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from hwbp.errors import ConfigError

__all__ = ["OptimizerState", "SGD", "Adam", "OPTIMIZERS", "make_optimizer"]

Params = Mapping[str, np.ndarray]


@dataclass
class OptimizerState:
    """Running state: step count and per-parameter moment arrays."""

    step: int = 0
    m: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with optional momentum: ``θ <- θ - lr * (μ m + g)``."""

    lr: float = 0.1
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 <= self.momentum < 1):
            raise ConfigError(f"sgd needs lr > 0 and 0 <= momentum < 1, got lr={self.lr}, momentum={self.momentum}")

    def init(self, params: Params) -> OptimizerState:
        return OptimizerState(0, {k: np.zeros_like(v) for k, v in params.items()})

    def update(self, params: Params, grads: Params, state: OptimizerState) -> dict[str, np.ndarray]:
        """New parameters (``state`` is advanced in place)."""
        state.step += 1
        out = {}
        for k, p in params.items():
            state.m[k] = self.momentum * state.m[k] + grads[k]
            out[k] = p - self.lr * state.m[k]
        return out


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba) with bias correction."""

    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0):
            raise ConfigError(f"adam needs lr > 0, 0 <= beta1, beta2 < 1, eps > 0; got {self}")

    def init(self, params: Params) -> OptimizerState:
        return OptimizerState(0, {k: np.zeros_like(v) for k, v in params.items()},
                              {k: np.zeros_like(v) for k, v in params.items()})

    def update(self, params: Params, grads: Params, state: OptimizerState) -> dict[str, np.ndarray]:
        """New parameters (``state`` is advanced in place)."""
        state.step += 1
        t = state.step
        out = {}
        for k, p in params.items():
            g = grads[k]
            state.m[k] = self.beta1 * state.m[k] + (1 - self.beta1) * g
            state.v[k] = self.beta2 * state.v[k] + (1 - self.beta2) * g * g
            m_hat = state.m[k] / (1 - self.beta1 ** t)
            v_hat = state.v[k] / (1 - self.beta2 ** t)
            out[k] = p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return out


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, lr: float) -> SGD | Adam:
    """The optimizer ``name`` with learning rate ``lr``; the error lists the valid names."""
    try:
        return OPTIMIZERS[name](lr=lr)
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}") from None
