"""The physics of hwbp as functions: the drive of the conjugate-pair dynamics
(:mod:`hwbp.dynamics.drive`) over the terms' resolved operands
(:mod:`hwbp.dynamics.operands`), the one definition that every simulator, readout,
hardware comparison and backend evaluates."""

from hwbp.dynamics.drive import (
    Drive, TermForward, drive, forward_pass, loss_drive, output_gate, term_activate, term_backward, term_forward,
    term_gate, term_gated, term_input, term_linear,
)
from hwbp.dynamics.operands import SYSTEM, TermOp, operands, term_operands

__all__ = ["TermOp", "TermForward", "Drive", "term_operands", "operands", "term_input", "term_linear",
           "term_activate", "term_gated", "term_forward", "output_gate", "term_gate", "term_backward", "loss_drive",
           "drive", "forward_pass", "SYSTEM"]
