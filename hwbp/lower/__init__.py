"""Lowering of the graph IR to local conjugate-pair dynamics."""

from hwbp.lower.lowerer import Lowerer, LoweringContext, lower
from hwbp.lower.system import (
    Coupling, DynamicsSystem, InputPort, Layout, LossPort, Population, Term, TiedParameter, dense_term_matrix,
    term_matrix,
)

__all__ = [
    "Lowerer", "LoweringContext", "lower", "Coupling", "DynamicsSystem", "InputPort", "LossPort",
    "Population", "Term", "TiedParameter", "Layout", "term_matrix", "dense_term_matrix",
]
