"""Which DC solve a transistor-level network gets (``--pdk-solve``), and the checks of its
options: one ngspice ``.op`` of the whole circuit (``monolithic``), the partitioned fixed
point of :mod:`hwbp.pdk.partition` (``partitioned``), or the one that suits the circuit
(``auto``, the default: :func:`choose_solve`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hwbp.errors import ConfigError
from hwbp.targets.spice.model import Circuit, SynapseArray

__all__ = ["PDK_SOLVES", "AUTO_PARTITION_SYNAPSES", "PARTITION_TOL", "PARTITION_SWEEPS", "PARTITION_GROUP",
           "SYNAPSE_CELLS", "check_solve", "is_transistor_synapse", "count_synapses", "choose_solve"]

#: The DC solves of ``--pdk-solve``: one ngspice ``.op`` of the whole circuit, or the
#: partitioned fixed point of this module (needs transistor synapses, ``.op`` only), or the
#: one of the two that suits the circuit (``auto``, the default: :func:`choose_solve`).
PDK_SOLVES = ("auto", "monolithic", "partitioned")
#: ``--pdk-solve auto`` solves partitioned above this many transistor synapse instances: one
#: ngspice ``.op``'s subcircuit expansion grows as the square of the instances (25: 15 s, 50:
#: 57 s of expansion, 3,392 would need ~54 GB), while the 4-8-3 MLP's 56 solve faster whole.
AUTO_PARTITION_SYNAPSES = 200
#: Default convergence tolerance: the largest change of a held current in the last sweep,
#: relative to the largest held current.
PARTITION_TOL = 1e-8
#: Default most sweeps (forward and backward) before the solve is an error.
PARTITION_SWEEPS = 8
#: Default most synapse evaluations (sweep points) per ngspice process (each process also
#: loads the PDK's models, ~4 s of CPU).
PARTITION_GROUP = 700
#: Synapse cells behind the adapters (:mod:`hwbp.pdk.adapters`): the full and the input synapse.
SYNAPSE_CELLS = ("hwbp_synapse", "hwbp_synapse_fwd")


def check_solve(opts: Any, kinds: Sequence[str]) -> None:
    """Raise :class:`ConfigError` (one line) if the spice backend's options ``opts`` ask for
    what the partitioned solve cannot do, or set its options without it (``kinds``: the
    transistor-level cell kinds)."""
    if opts.pdk_solve == "partitioned":
        if opts.analysis != "op" or "syn" not in kinds:
            raise ConfigError(f"--pdk-solve partitioned solves .op with transistor synapses; got --analysis "
                              f"{opts.analysis} and --pdk-cells {','.join(kinds)} (use --pdk-solve monolithic)")
        if opts.mc_seed is not None:
            raise ConfigError("--pdk-solve partitioned evaluates every synapse on one instance of the cell, exact for "
                              "nominal devices; --mc-seed gives each its own: use --pdk-solve monolithic")
    elif opts.pdk_solve == "monolithic" and ((opts.pdk_group, opts.pdk_tol, opts.pdk_sweeps)
                                             != (PARTITION_GROUP, PARTITION_TOL, PARTITION_SWEEPS)):
        raise ConfigError("--pdk-group, --pdk-tol (and the API's pdk_sweeps) apply to --pdk-solve partitioned "
                          "(or auto), not monolithic")
    if not (isinstance(opts.pdk_tol, (int, float)) and 0 < opts.pdk_tol < 1):
        raise ConfigError(f"--pdk-tol must be in (0, 1) (a relative change), got {opts.pdk_tol!r}")
    if not (isinstance(opts.pdk_group, int) and opts.pdk_group >= 1):
        raise ConfigError(f"--pdk-group must be an integer >= 1 (synapses per ngspice process), got {opts.pdk_group!r}")
    if not (isinstance(opts.pdk_sweeps, int) and opts.pdk_sweeps >= 1):
        raise ConfigError(f"pdk_sweeps must be an integer >= 1, got {opts.pdk_sweeps!r}")


def is_transistor_synapse(item: Any) -> bool:
    """Whether a circuit item is an array of transistor synapses that the partitioned solve
    cuts out (:data:`SYNAPSE_CELLS`, without a hardware model's separate backward devices)."""
    return isinstance(item, SynapseArray) and item.cell in SYNAPSE_CELLS and item.backward_s is None


def count_synapses(circuit: Circuit) -> int:
    """The transistor synapse instances of ``circuit`` (:func:`is_transistor_synapse`)."""
    n = 0
    for sec in circuit.sections:
        for it in sec.items:
            if is_transistor_synapse(it):
                n += int(np.count_nonzero(it.mask)) if it.mask is not None else len(it.pre) * len(it.post)
    return n


def choose_solve(opts: Any, circuit: Circuit) -> str:
    """The DC solve ``--pdk-solve`` asks for: ``monolithic`` or ``partitioned`` as given;
    ``auto``: partitioned for an ``.op`` with more than :data:`AUTO_PARTITION_SYNAPSES`
    transistor synapses and no Monte Carlo draw (the partitioned solve is exact for nominal
    devices only), else monolithic."""
    if opts.pdk_solve != "auto":
        return str(opts.pdk_solve)
    big = count_synapses(circuit) > AUTO_PARTITION_SYNAPSES
    return "partitioned" if big and opts.analysis == "op" and opts.mc_seed is None else "monolithic"
