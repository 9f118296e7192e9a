"""Running ngspice: a batch (subprocess) runner and a shared-library runner.

Both take a :class:`~hwbp.targets.spice.model.Circuit` and return the same node
voltages:

``batch`` (default)
    ``ngspice -b deck.cir -r out.raw`` in a subprocess with a timeout; the raw file
    is read with :mod:`hwbp.targets.spice.raw`.  Several ``.op`` samples run in one
    process through a ``.control`` block that re-values the stimulus sources.
``shared``
    The ngspice shared library (``libngspice``) through PySpice (in
    :mod:`hwbp.targets.spice.shared`), loaded once per
    process; circuits are loaded from text and vectors read from memory.  Fast for
    repeated simulation (training loops).  Analyses run in ngspice's background
    thread so that a wall-clock limit can halt them; the library stays usable.

ngspice's DC iteration is bounded by ``itl1`` (from the circuit) and its adaptive gmin
and source stepping (``gminsteps = srcsteps = 1``, its defaults: other values select
SPICE3's fixed stepping, which fails circuits the adaptive one solves); a ``.op`` that
needs the transient fallback after both failed is an error (:func:`classify`).

ngspice reports problems as text.  :func:`classify` turns that text into one
:class:`~hwbp.errors.BackendError` naming the analysis and what to change; notes
and warnings that do not stop the analysis are ignored.  No partial results are
returned.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from hwbp.errors import BackendError, ConfigError
from hwbp.targets.spice.model import Circuit
from hwbp.targets.spice.raw import parse_raw
from hwbp.targets.spice.writer import NgspiceWriter

if TYPE_CHECKING:
    from hwbp.targets.spice.shared import SharedRunner

__all__ = ["MODES", "APT_HINT", "find_ngspice", "classify", "BatchRunner", "get_runner"]

MODES = ("batch", "shared")
#: How to install ngspice on Debian/Ubuntu.
APT_HINT = "apt-get install -y ngspice libngspice0 libngspice0-dev"

#: (pattern, what went wrong, what to change).
_FAILURES: tuple[tuple[re.Pattern, str, str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), what, fix)
    for p, what, fix in (
        (r"transient op failed", "no DC solution (gmin, source stepping and transient op all failed)",
         "look for loops of voltage sources or nodes without a DC path to ground; raise itl1 or loosen reltol"),
        (r"timestep too small", "timestep too small",
         "loosen tran_reltol, shorten the duration, or check the circuit for stiff or discontinuous elements"),
        (r"singular matrix", "singular matrix",
         "every node needs a DC path to ground; check custom cells and 0-width layers"),
        (r"(gmin stepping failed|source stepping failed|iteration limit reached|no convergence|"
         r"failed to converge|too many iterations)",
         "no convergence", "raise itl1, loosen reltol/vntol_v/abstol_a, or reduce weights that saturate"),
        (r"(unknown subckt|could not find|unable to find definition|undefined|unknown (device|parameter))",
         "netlist error", "check the netlist and custom cells"),
        (r"(^|\s)error\b", "error", "check the netlist and the options"),
        (r"(doAnalyses|simulation\(s\) aborted)", "analysis aborted", "see the ngspice message"),
    )
)
#: ngspice's DC fallback after gmin and source stepping failed: its result is only an
#: approximate operating point, so a ``.op`` that needed it is a failure.
_TRAN_OP = re.compile(r"transient op (started|finished)", re.IGNORECASE)
_SINGULAR = re.compile(r"singular matrix:?\s*(check node \S+)?", re.IGNORECASE)
#: How long a halted background analysis may take to stop (s).
_HALT_GRACE_S = 10.0
#: Messages that look alarming but do not stop an analysis.
_BENIGN = re.compile(r"^(note:|warning:|\s*$|ngspice-\d+ done|circuit:|doing analysis|no\. of data|"
                     r"reference value|total |dram|maximum ngspice|current ngspice|shared ngspice|text \(code\)|"
                     r"stack =|library pages|binary raw file|ascii raw file|using sparse|initial transient)",
                     re.IGNORECASE)


def _match(lines: Sequence[str]) -> tuple[str, str, str] | None:
    for pattern, what, fix in _FAILURES:
        for ln in lines:
            if pattern.search(ln):
                return what, fix, ln
    return None


def classify(text: str, analysis: str, where: str) -> None:
    """Raise :class:`BackendError` if ngspice's output ``text`` reports a failure of
    ``analysis``; ``where`` names the circuit.

    Notes and warnings from which ngspice recovered (e.g. a singular Jacobian during
    gmin stepping that a later step solved) are not failures.  For ``.op`` the fallback
    to a transient operating point after gmin and source stepping failed is one when
    ngspice reported a singular node inside a cell instance: that node has no DC path
    to ground and its value is arbitrary.

    Raises
    ------
    BackendError
        One line naming ``analysis``, ``where``, the cause and what to change.
    """
    lines = [ln.strip() for ln in re.sub(r"(?i)(warning:|note:)", r"\n\1", text).splitlines() if ln.strip()]
    if analysis == ".op" and any(_TRAN_OP.search(ln) for ln in lines):
        # a singular node inside a cell instance (``x...`` subcircuit node) has no DC path at
        # all, so the transient fallback's value there is arbitrary
        nodes = [m.group(1) for m in map(_SINGULAR.search, lines) if m is not None and m.group(1)]
        inner = [n for n in nodes if "." in n]
        if inner:
            raise BackendError(f"ngspice {analysis} of {where}: singular matrix: a node has no DC path to ground "
                               f"({inner[0]}); check custom cells (every internal node needs a DC path to ground)")
    hard = [ln for ln in lines if not ln.lower().startswith(("note:", "warning:"))]
    found = _match(hard)
    if found is not None:
        what, fix, ln = found
        if what in ("netlist error", "error", "analysis aborted") or what.startswith("no DC solution"):
            # a more specific cause may have been reported as a warning just before
            what, fix, _ = _match(lines) or found
        raise BackendError(f"ngspice {analysis} of {where}: {what} ({ln[:160]}); {fix}")


def missing_results(text: str, analysis: str, where: str, detail: str) -> BackendError:
    """The error for an analysis that produced no (or too few) results, explained by
    the most specific message in ``text``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    found = _match(lines)
    if found is None:
        return BackendError(f"ngspice {analysis} of {where}: {detail}; check the netlist and the options")
    what, fix, ln = found
    return BackendError(f"ngspice {analysis} of {where}: {detail}: {what} ({ln[:160]}); {fix}")


def find_ngspice(executable: str = "ngspice") -> str:
    """Path of the ngspice executable, or a BackendError saying how to install it."""
    path = shutil.which(executable)
    if path is None:
        raise BackendError(f"ngspice executable {executable!r} not found on PATH; install it: {APT_HINT}")
    return path


def _check_timeout(timeout_s: float) -> float:
    try:
        t = float(timeout_s)
    except (TypeError, ValueError):
        raise ConfigError(f"ngspice timeout_s must be a number of seconds, got {timeout_s!r}") from None
    if not (t > 0 and np.isfinite(t)):
        raise ConfigError(f"ngspice timeout_s must be a finite number of seconds > 0, got {timeout_s!r}; "
                          f"set --timeout")
    return t


def _timeout_error(analysis: str, where: str, timeout_s: float) -> BackendError:
    fix = ("shorten the duration, loosen tran_reltol or reduce weights that make the circuit stiff"
           if analysis == ".tran" else "simulate a smaller batch/network or check it converges")
    return BackendError(f"ngspice {analysis} of {where} timed out after {timeout_s:g} s; raise --timeout or {fix}")


def _alter_commands(prev: Mapping[str, float], new: Mapping[str, float]) -> list[str]:
    return [f"alter {k.lower()} dc = {float(v)!r}" for k, v in new.items() if prev.get(k) != v]


class BatchRunner:
    """ngspice in a subprocess per run (``ngspice -b``), results through raw files.

    Parameters
    ----------
    executable : str
        ngspice command (default ``ngspice`` on PATH).
    timeout_s : float
        Wall-clock limit of one ngspice process (s).
    raw_format : {"binary", "ascii"}
        Raw file format requested from ngspice.
    """

    mode = "batch"

    def __init__(self, executable: str = "ngspice", timeout_s: float = 600.0, raw_format: str = "binary") -> None:
        if raw_format not in ("binary", "ascii"):
            raise ConfigError(f"raw_format must be 'binary' or 'ascii', got {raw_format!r}")
        self.timeout_s = _check_timeout(timeout_s)
        self.executable = executable
        self.raw_format = raw_format
        self.writer = NgspiceWriter()
        self.last_output = ""

    def _run(self, deck: str, analysis: str, where: str, use_r: bool) -> list:
        exe = find_ngspice(self.executable)
        with tempfile.TemporaryDirectory(prefix="hwbp-ngspice-") as tmp:
            cir, raw = Path(tmp) / "deck.cir", Path(tmp) / "out.raw"
            # ngspice runs in ``tmp``: a relative name needs no quoting (``tmp`` may hold spaces)
            cir.write_text(deck.replace("@RAW@", raw.name), encoding="ascii")
            cmd = [exe, "-b", str(cir)] + (["-r", str(raw)] if use_r else [])
            env = dict(os.environ, SPICE_ASCIIRAWFILE="1" if self.raw_format == "ascii" else "0")
            try:
                proc = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=self.timeout_s, env=env)
            except subprocess.TimeoutExpired:
                raise _timeout_error(analysis, where, self.timeout_s) from None
            except OSError as exc:
                raise BackendError(f"ngspice {analysis} of {where}: cannot run {exe} ({exc.strerror}); "
                                   f"install it: {APT_HINT}") from None
            text = proc.stdout.decode("utf-8", "replace") + "\n" + proc.stderr.decode("utf-8", "replace")
            classify(text, analysis, where)
            if proc.returncode != 0:
                last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(no output)"]
                raise BackendError(f"ngspice {analysis} of {where}: exit status {proc.returncode} ({last[0][:160]})")
            if not raw.is_file():
                raise missing_results(text, analysis, where, "no results were written")
            self.last_output = text
            return parse_raw(raw.read_bytes(), f"raw file of {where}")

    def op(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]) -> np.ndarray:
        """DC operating points: ``(len(stimuli), len(nodes))`` node voltages (V)."""
        fmt = "binary" if self.raw_format == "binary" else "ascii"
        commands = ["set noaskquit", f"set filetype={fmt}", "set appendwrite"]
        prev: Mapping[str, float] = stimuli[0]
        for k, stim in enumerate(stimuli):
            commands += _alter_commands(prev, stim) if k else []
            commands += ["op", "write @RAW@"]
            prev = stim
        commands.append("quit 0")
        deck = self.writer.write(circuit, stimulus=stimuli[0], analyses=(), save=nodes, control=commands)
        plots = self._run(deck, ".op", circuit.title, use_r=False)
        if len(plots) != len(stimuli):
            raise missing_results(self.last_output, ".op", circuit.title,
                                  f"{len(plots)} of {len(stimuli)} operating points solved")
        return np.array([[p.vectors[n.lower()][0] for n in nodes] for p in plots])

    def tran(self, circuit: Circuit, stimulus: Mapping[str, float], initial: Mapping[str, float],
             step_s: float, stop_s: float, nodes: Sequence[str], reltol: float) -> tuple[np.ndarray, np.ndarray]:
        """Transient from ``initial`` node voltages: ``(t (s), (len(t), len(nodes)) V)``."""
        deck = self.writer.write(circuit, stimulus=stimulus, analyses=(f".tran {step_s!r} {stop_s!r} 0 {step_s!r}",),
                                 save=nodes, initial=initial, extra_options=_tran_options(step_s, reltol))
        plots = self._run(deck, ".tran", circuit.title, use_r=True)
        if len(plots) != 1 or "time" not in plots[0].vectors:
            raise missing_results(self.last_output, ".tran", circuit.title, "no transient results")
        v = plots[0].vectors
        return v["time"], np.stack([v[n.lower()] for n in nodes], axis=1)


def _tran_options(step_s: float, reltol: float) -> dict[str, str]:
    # no 'interp': ngspice 39 then writes more points than its raw header declares
    return {"reltol": repr(float(reltol))}


def get_runner(mode: str = "batch", **options) -> "BatchRunner | SharedRunner":
    """The runner of ``mode`` (``batch`` options: executable, timeout_s, raw_format;
    ``shared`` options: timeout_s)."""
    if mode == "batch":
        return BatchRunner(**options)
    if mode == "shared":
        from hwbp.targets.spice.shared import SharedRunner

        unknown = sorted(set(options) - {"timeout_s"})
        if unknown:
            raise ConfigError(f"spice mode 'shared' has no option {unknown[0]!r}; valid: timeout_s")
        return SharedRunner(**options)
    raise ConfigError(f"unknown spice mode {mode!r}; valid: {', '.join(MODES)}")
