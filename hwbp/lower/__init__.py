"""Lowering of the graph IR to local conjugate-pair dynamics."""

from hwbp.lower.lowerer import Lowerer, LoweringContext, lower
from hwbp.lower.system import (
    Coupling, DynamicsSystem, InputPort, LossPort, Population, Term, TiedParameter,
)

__all__ = [
    "Lowerer", "LoweringContext", "lower", "Coupling", "DynamicsSystem", "InputPort", "LossPort",
    "Population", "Term", "TiedParameter",
]
