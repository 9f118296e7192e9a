"""Verification: read gradients from the tension and compare them with the oracle."""

from hwbp.verify.compare import Comparison, Metrics, Tolerances, compare, metrics
from hwbp.verify.readout import read_gradients, readout_routes
from hwbp.verify.run import SCHEMA, Verification, build_report, error_curve, verify

__all__ = [
    "Comparison", "Metrics", "Tolerances", "compare", "metrics", "read_gradients", "readout_routes",
    "SCHEMA", "Verification", "build_report", "error_curve", "verify",
]
