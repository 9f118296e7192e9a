"""What runners of ngspice share: reading its messages, finding its binary, small
command helpers.  Both :mod:`hwbp.targets.spice.ngspice` (subprocess) and
:mod:`hwbp.targets.spice.shared` (shared library) import from here, never from each
other.

ngspice reports problems as text.  :func:`classify` turns that text into one
:class:`~hwbp.errors.BackendError` naming the analysis and what to change; notes
and warnings that do not stop the analysis are ignored.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from hwbp.errors import BackendError, ConfigError

__all__ = ["APT_HINT", "NGSPICE_ENV", "HALT_GRACE_S", "classify", "missing_results", "find_ngspice",
           "ngspice_version", "check_timeout", "timeout_error", "alter_commands", "tran_options"]

#: Environment variable naming the ngspice executable when ``--ngspice`` is not given.
NGSPICE_ENV = "HWBP_NGSPICE"

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
HALT_GRACE_S = 10.0


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


def find_ngspice(executable: str | None = None) -> str:
    """Absolute path of the ngspice executable: ``executable`` (a path or a name on
    PATH), else the environment variable :data:`NGSPICE_ENV`, else ``ngspice`` on
    PATH; a BackendError says what was looked for and how to install it."""
    where = "--ngspice"
    if executable is None:
        executable = os.environ.get(NGSPICE_ENV) or None
        where = NGSPICE_ENV
    if executable is None:
        path = shutil.which("ngspice")
        if path is None:
            raise BackendError(f"ngspice executable not found on PATH; install it: {APT_HINT}, or point "
                               f"--ngspice or {NGSPICE_ENV} at a build")
        return os.path.abspath(path)
    path = shutil.which(executable)
    if path is None:
        raise BackendError(f"{where}: ngspice executable {executable!r} not found or not executable; give the path "
                           f"of a build, or install one: {APT_HINT}")
    return os.path.abspath(path)


def ngspice_version(executable: str) -> str:
    """The version line of the ngspice at ``executable`` (e.g. ``ngspice-39``), read
    once per binary (path and modification time)."""
    p = Path(executable)
    try:
        stamp = p.stat().st_mtime_ns
    except OSError:
        return "unknown"
    return _version(str(p), stamp)


class OutputLimitExceeded(Exception):
    """A subprocess printed more than :func:`run_bounded` would keep."""


def run_bounded(cmd: Sequence[str], *, timeout_s: float, limit_bytes: int, cwd: str | None = None,
                env: Mapping[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run ``cmd`` (stdin closed) and return (exit status, stdout, stderr), keeping at
    most ``limit_bytes`` of output in memory: a program that prints more is killed
    (:class:`OutputLimitExceeded`), one that runs past ``timeout_s`` seconds too
    (:class:`subprocess.TimeoutExpired`)."""
    import selectors
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fd_out, fd_err = proc.stdout.fileno(), proc.stderr.fileno()  # type: ignore[union-attr]
    out: dict[int, list[bytes]] = {fd_out: [], fd_err: []}
    total = 0
    deadline = time.monotonic() + timeout_s
    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        sel.register(f, selectors.EVENT_READ)  # type: ignore[arg-type]
    try:
        open_pipes = 2
        while open_pipes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(cmd, timeout_s)
            for key, _ in sel.select(timeout=left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                out[key.fd].append(chunk)
                total += len(chunk)
                if total > limit_bytes:
                    raise OutputLimitExceeded(f"{cmd[0]} printed more than {limit_bytes} bytes")
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        sel.close()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    return code, b"".join(out[fd_out]), b"".join(out[fd_err])


@lru_cache(maxsize=8)
def _version(executable: str, stamp: int) -> str:
    try:
        _, stdout, _ = run_bounded([executable, "-v"], timeout_s=30, limit_bytes=1 << 16)
    except (OSError, subprocess.TimeoutExpired, OutputLimitExceeded):
        return "unknown"
    m = re.search(r"ngspice-(\S+)", stdout.decode("utf-8", "replace"))
    return f"ngspice-{m.group(1)}" if m else "unknown"


def check_timeout(timeout_s: float) -> float:
    try:
        t = float(timeout_s)
    except (TypeError, ValueError):
        raise ConfigError(f"ngspice timeout_s must be a number of seconds, got {timeout_s!r}") from None
    if not (t > 0 and np.isfinite(t)):
        raise ConfigError(f"ngspice timeout_s must be a finite number of seconds > 0, got {timeout_s!r}; "
                          f"set --timeout")
    return t


def timeout_error(analysis: str, where: str, timeout_s: float) -> BackendError:
    fix = ("shorten the duration, loosen tran_reltol or reduce weights that make the circuit stiff"
           if analysis == ".tran" else "simulate a smaller batch/network or check it converges")
    return BackendError(f"ngspice {analysis} of {where} timed out after {timeout_s:g} s; raise --timeout or {fix}")


def alter_commands(prev: Mapping[str, float], new: Mapping[str, float]) -> list[str]:
    return [f"alter {k.lower()} dc = {float(v)!r}" for k, v in new.items() if prev.get(k) != v]


def tran_options(step_s: float, reltol: float) -> dict[str, str]:
    # no 'interp': ngspice 39 then writes more points than its raw header declares
    return {"reltol": repr(float(reltol))}
