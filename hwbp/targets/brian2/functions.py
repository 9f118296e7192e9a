"""Functions the Brian2 equations need beyond Brian2's own: ``hwbp_erfc`` (for gelu).

:func:`erfc_function` builds the Brian2 ``Function`` with an implementation for each
code-generation target (numpy through :func:`math.erfc`, Cython and C++ through the C
library's ``erfc``).  It imports nothing but :mod:`math` and numpy, so the emitted
stand-alone script carries its source verbatim.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["erfc_function", "FUNCTION_NAMES"]

#: Names the equations may call, by builder.
FUNCTION_NAMES = ("hwbp_erfc",)


def erfc_function(b2: Any) -> Any:
    """The complementary error function as a Brian2 ``Function`` (dimensionless)."""

    @b2.implementation("cpp", "double hwbp_erfc(double x) { return erfc(x); }")
    @b2.implementation("cython", "from libc.math cimport erfc as _libm_erfc\n"
                                 "cdef double hwbp_erfc(double x):\n    return _libm_erfc(x)\n")
    @b2.check_units(x=1, result=1)
    def hwbp_erfc(x):
        return np.vectorize(math.erfc, otypes=[float])(x)

    return hwbp_erfc
