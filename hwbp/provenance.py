"""Where a result was measured: the machine line the studies and benchmarks write into
their headers."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_model", "machine"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The machine in one line: OS, architecture, CPU count and model, Python version."""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), "
            f"Python {platform.python_version()}")
