"""Exception hierarchy of hwbp.

Every error the toolkit raises for bad input derives from :class:`HwbpError` and
also from the matching built-in exception, so callers may catch either.  Messages
are one line and say what was wrong and where.
"""

from __future__ import annotations

__all__ = [
    "HwbpError",
    "ModelError",
    "ShapeError",
    "UnsupportedOpError",
    "ModelFormatError",
    "BatchError",
    "StateError",
    "ConfigError",
    "BackendError",
    "TrainingDivergedError",
    "ModelNote",
]


class HwbpError(Exception):
    """Base class of every error raised by hwbp."""


class ModelError(HwbpError, ValueError):
    """A model (graph) is invalid: unknown inputs, cycles, non-finite weights, ..."""


class ShapeError(ModelError):
    """An array has the wrong shape or dtype for the node that holds or receives it."""


class UnsupportedOpError(ModelError):
    """A model uses an operator hwbp cannot represent."""


class ModelFormatError(HwbpError, ValueError):
    """A model file cannot be read: truncated, corrupted, or of an unknown format."""


class BatchError(HwbpError, ValueError):
    """An input/target batch does not fit the model."""


class StateError(HwbpError, ValueError):
    """A saved state (``hwbp simulate``'s ``state.npz``) cannot be read or does not fit the model."""


class ConfigError(HwbpError, ValueError):
    """An option has an invalid value or an invalid combination with other options."""


class BackendError(HwbpError, RuntimeError):
    """An external simulator or tool failed or is missing."""


class TrainingDivergedError(HwbpError, ArithmeticError):
    """Training produced a non-finite loss or parameter (e.g. a learning rate too large)."""


class ModelNote(UserWarning):
    """A choice made while loading a model that the user should know of (e.g. which of
    several outputs was taken); the command line prints it as one ``hwbp: note:`` line."""
