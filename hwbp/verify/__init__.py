"""Verification: read gradients from the tension and compare them with the oracle."""

from hwbp.verify.backends import BACKENDS, get_backend
from hwbp.verify.compare import Comparison, Metrics, Tolerances, compare, metrics
from hwbp.verify.readout import read_gradients
from hwbp.verify.run import SCHEMA, Verification, build_report, error_curve, verify

__all__ = [
    "BACKENDS", "get_backend", "Comparison", "Metrics", "Tolerances", "compare", "metrics",
    "read_gradients", "SCHEMA", "Verification", "build_report", "error_curve", "verify",
]
