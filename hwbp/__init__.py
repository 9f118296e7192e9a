"""hwbp: compile neural networks into local conjugate-pair dynamics whose steady-state
tension is the exact backprop gradient, and verify them on simulators and circuits.

Pipeline: model file -> :mod:`hwbp.importers` -> :class:`hwbp.ir.Graph` ->
:func:`hwbp.lower.lower` -> :class:`hwbp.lower.DynamicsSystem` -> backends
(:mod:`hwbp.sim`, :mod:`hwbp.targets`) -> :func:`hwbp.verify.verify` against
:func:`hwbp.oracle.exact_gradients`.
"""

__version__ = "0.1.0"
