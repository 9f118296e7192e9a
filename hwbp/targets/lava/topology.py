"""What the Lava processes realize, and the term table their network is wired from.

Pure Python (Lava is imported only to read the processes' activation codes), so the
backend, the emitter, the float and fixed-point runners and on-chip learning all use
it without importing one another.
"""

from __future__ import annotations

import math

from hwbp.errors import ConfigError
from hwbp.lower.system import DynamicsSystem

__all__ = ["LAVA_ACTIVATIONS", "term_table", "check_realizable"]

#: The activations the Lava processes realize (``f`` and source-side ``φ``): the names of
#: the processes' activation codes (``lavaproc.processes.ACTIVATION_CODES``, which imports
#: Lava), here without Lava for the backend's declared support.
LAVA_ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu", "leaky_relu", "softplus")


def term_table(system: DynamicsSystem) -> dict[tuple[str, int], tuple[str, int, int]]:
    """``(population, k) -> (source, n_in, n_out)`` of every term."""
    sizes = {i.name: i.size for i in system.inputs} | {p.name: p.size for p in system.populations}
    return {(p.name, k): (t.source, sizes[t.source], p.size) for p in system.populations for k, t in enumerate(p.terms)}


def check_realizable(system: DynamicsSystem) -> None:
    """Refuse, in one line, a term the Lava processes do not realize.

    Realized: dense (or absent) weights, ``f`` and the source-side ``φ`` from the
    processes' activation codes, any finite fixed gain.  Not realized: structured
    weights (:class:`~hwbp.lower.system.Layout`: convolution, pooling, batch norm),
    other activations (gelu, elu, silu, clip, ...), and a gain, ``φ`` or bias on a
    weightless term.

    Raises
    ------
    ConfigError
        Naming the population, the term and what is not realized.
    """
    from hwbp.targets.lava.compat import import_lava

    import_lava()
    from hwbp.targets.lava.lavaproc.processes import ACTIVATION_CODES

    valid = ", ".join(ACTIVATION_CODES)
    for p in system.populations:
        for k, t in enumerate(p.terms):
            where = f"lava: population {p.name!r}, term {k}"
            if t.layout is not None:
                raise ConfigError(f"{where}: structured weights (convolution, pooling, batch norm) are not realized "
                                  f"by the Lava processes; use dense layers or --backend reference")
            for what, act in (("activation", t.activation), ("source-side activation", t.source_activation)):
                if act not in ACTIVATION_CODES:
                    raise ConfigError(f"{where}: {what} {act!r} has no Lava process model; valid: {valid}")
            if t.high is not None:
                raise ConfigError(f"{where}: an upper bound (clip high={t.high:g}) is not realized by the Lava "
                                  f"processes")
            if not math.isfinite(t.gain):
                raise ConfigError(f"{where}: the gain must be a finite number, got {t.gain!r}")
            if t.weight is None and (t.bias is not None or t.gain != 1.0 or t.source_activation != "identity"):
                raise ConfigError(f"{where}: a term without a weight passes its source through; a bias, gain or "
                                  f"source-side activation on it is not realized by the Lava processes")
