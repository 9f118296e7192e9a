"""Exact-gradient oracle: reverse-mode backprop over the IR, and finite differences."""

from hwbp.oracle.backprop import exact_gradients, forward
from hwbp.oracle.derivatives import MissingOracleError, oracle_activation, oracle_loss
from hwbp.oracle.finite_diff import batch_loss, finite_difference_gradients

__all__ = [
    "exact_gradients", "forward", "batch_loss", "finite_difference_gradients",
    "oracle_activation", "oracle_loss", "MissingOracleError",
]
