"""The ngspice shared library (through PySpice) as a runner: fast repeated
simulation in one process, for training loops.  Never sent ``quit`` (that ends the
Python process); a bad netlist raises and the instance stays usable; analyses run in
ngspice's background thread under a time limit."""

from __future__ import annotations

import logging
import threading
import time
from typing import Mapping, Sequence

import numpy as np

from hwbp.errors import BackendError, ConfigError
from hwbp.targets.spice.model import Circuit
from hwbp.targets.spice.diagnose import (
    APT_HINT, HALT_GRACE_S, alter_commands, check_timeout, classify, timeout_error, tran_options,
)
from hwbp.targets.spice.writer import SWEEP_NODE, NgspiceWriter

__all__ = ["SharedRunner"]


class SharedRunner:
    """ngspice as a shared library (through PySpice), one instance per process.

    Parameters
    ----------
    timeout_s : float
        Wall-clock limit of one analysis (s); at the limit the analysis is halted,
        the circuit dropped and a :class:`BackendError` raised.
    """

    mode = "shared"
    _ng = None

    def __init__(self, timeout_s: float = 600.0) -> None:
        self.timeout_s = check_timeout(timeout_s)
        self.writer = NgspiceWriter()
        self.ng = self._library()

    @classmethod
    def _library(cls):
        if cls._ng is None:
            try:
                for name in ("PySpice", "PySpice.Spice.NgSpice.Shared"):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
                from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi
            except ImportError:
                raise BackendError("spice mode 'shared' needs PySpice (pip install -c constraints.txt "
                                   "PySpice==1.5) and libngspice0") from None

            class _Shared(NgSpiceShared):
                # ngspice calls this from its background thread with ``exited`` false when an
                # analysis starts and true when it ends (PySpice 1.5 returns None here)
                @staticmethod
                def _background_thread_running(exited, ngspice_id, user_data):  # type: ignore[override]
                    self = ffi.from_handle(user_data)
                    self._is_running = not exited
                    if exited:
                        self.hwbp_idle.set()
                    return 0

            try:
                ng = _Shared.new_instance()
            except (OSError, NameError) as exc:
                raise BackendError(f"cannot load the ngspice shared library ({exc}); install it: {APT_HINT}") from None
            ng.hwbp_idle = threading.Event()
            ng.hwbp_idle.set()
            cls._ng = ng
        return cls._ng

    def _running(self) -> bool:
        return not self.ng.hwbp_idle.is_set() or bool(self.ng._ngspice_shared.ngSpice_running())

    def _wait(self, deadline: float) -> bool:
        """Wait for the background thread until ``deadline`` (monotonic s); whether it ended."""
        if not self.ng.hwbp_idle.wait(max(0.0, deadline - time.monotonic())):
            return False
        # the thread reports its end just before it clears its running flag
        while self._running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(1e-4)
        return True

    def _halt(self) -> bool:
        """Halt the background analysis and drop the circuit; whether ngspice is idle."""
        if self._running():
            self.ng._ngspice_shared.ngSpice_Command(b"bg_halt")
            if not self._wait(time.monotonic() + HALT_GRACE_S):
                return False
        self.reset()
        return True

    def _ensure_idle(self, analysis: str, where: str) -> None:
        if self._running() and not self._halt():
            raise BackendError(f"ngspice {analysis} of {where}: the shared library is still busy with an analysis "
                               f"that timed out; restart the process or use --spice-mode batch")

    def run_analysis(self, cmd: str, analysis: str, where: str) -> str:
        """Run the analysis command ``cmd`` (``op``, ``tran ...``) in ngspice's background
        thread within :attr:`timeout_s`; raise on a timeout or a reported failure."""
        self._ensure_idle(analysis, where)
        self._clear()
        self.ng.hwbp_idle.clear()
        rc = self.ng._ngspice_shared.ngSpice_Command(f"bg_{cmd}".encode("ascii"))
        if rc:
            self.ng.hwbp_idle.set()
            raise BackendError(f"ngspice {analysis} of {where}: command {cmd.split()[0]!r} returned {rc}")
        if not self._wait(time.monotonic() + self.timeout_s):
            if not self._halt():
                raise BackendError(f"ngspice {analysis} of {where} timed out after {self.timeout_s:g} s and could "
                                   f"not be halted; restart the process or use --spice-mode batch")
            raise timeout_error(analysis, where, self.timeout_s)
        text = self._output()
        classify(text, analysis, where)
        return text

    def _output(self) -> str:
        return "\n".join(list(self.ng._stdout) + list(self.ng._stderr))

    def _clear(self) -> None:
        self.ng._stdout.clear()
        self.ng._stderr.clear()

    def command(self, cmd: str, analysis: str, where: str) -> str:
        """Run one ngspice command (never ``quit``); raise on a reported failure."""
        if cmd.strip().lower().startswith(("quit", "exit")):
            raise ConfigError("the shared ngspice library must not be sent 'quit'")
        self._clear()
        rc = self.ng._ngspice_shared.ngSpice_Command(cmd.encode("ascii"))
        text = self._output()
        if rc:
            raise BackendError(f"ngspice {analysis} of {where}: command {cmd.split()[0]!r} returned {rc}")
        classify(text, analysis, where)
        return text

    def load(self, deck: str, analysis: str, where: str) -> None:
        """Replace the loaded circuit by ``deck``; a bad deck raises and leaves the
        library usable for the next one."""
        from PySpice.Spice.NgSpice.Shared import FFI, ffi

        self._ensure_idle(analysis, where)
        self.reset()
        lines = [ffi.new("char[]", ln.encode("ascii")) for ln in deck.splitlines()] + [ffi.new("char[]", b"")]
        arr = ffi.new("char *[]", lines + [FFI.NULL])
        self._clear()
        rc = self.ng._ngspice_shared.ngSpice_Circ(arr)
        text = self._output()
        try:
            if rc:
                raise BackendError(f"ngspice {analysis} of {where}: the netlist was rejected (code {rc})")
            classify(text, analysis, where)
            if "circuit not parsed" in text.lower() or "no circuit loaded" in text.lower():
                raise BackendError(f"ngspice {analysis} of {where}: the netlist could not be parsed")
        except BackendError:
            self.reset()
            raise

    def reset(self) -> None:
        """Drop every loaded circuit and plot (keeps memory flat across many runs)."""
        self._clear()
        for cmd in ("destroy all", "remcirc"):
            self.ng._ngspice_shared.ngSpice_Command(cmd.encode("ascii"))
        # 'remcirc' on an empty list prints an error; nothing to keep from it
        self._clear()

    def vectors(self, names: Sequence[str], analysis: str, where: str) -> np.ndarray:
        """The named vectors of the current plot, ``(points, len(names))``."""
        from PySpice.Spice.NgSpice.Shared import ffi

        plot = self.ng._ngspice_shared.ngSpice_CurPlot()
        plot = ffi.string(plot).decode("ascii")
        cols = []
        for n in names:
            info = self.ng._ngspice_shared.ngGet_Vec_Info(f"{plot}.{n.lower()}".encode("ascii"))
            if info == ffi.NULL or info.v_realdata == ffi.NULL:
                raise BackendError(f"ngspice {analysis} of {where}: no result for node {n!r}")
            cols.append(np.frombuffer(ffi.buffer(info.v_realdata, info.v_length * 8), dtype=np.float64).copy())
        return np.stack(cols, axis=1)

    def op(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str],
           deck: str | None = None) -> np.ndarray:
        """DC operating points: ``(len(stimuli), len(nodes))`` node voltages (V).

        Several samples are one ``.dc`` sweep over the sample index (stimulus sources
        ``pwl`` of it; the matrix is ordered once), as in the batch runner.  ``deck`` (the
        circuit's text with ``stimuli[0]``) skips writing it again; the samples are then
        applied with ``alter`` and one ``op`` each."""
        where = circuit.title
        if deck is None and len(stimuli) > 1:
            return self._op_sweep(circuit, stimuli, nodes)
        if deck is None:
            deck = self.writer.write(circuit, stimulus=stimuli[0], analyses=(), save=nodes)
        self.load(deck, ".op", where)
        out = []
        prev: Mapping[str, float] = stimuli[0]
        try:
            for k, stim in enumerate(stimuli):
                for cmd in (alter_commands(prev, stim) if k else []):
                    self.command(cmd, ".op", where)
                self.run_analysis("op", ".op", where)
                out.append(self.vectors(nodes, ".op", where)[0])
                self.command("destroy", ".op", where)
                prev = stim
        finally:
            self.reset()
        return np.array(out)

    def _op_sweep(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]], nodes: Sequence[str]) -> np.ndarray:
        where = circuit.title
        names = [k for k in stimuli[0] if any(s[k] != stimuli[0][k] for s in stimuli)]
        sweep = {k: [float(s[k]) for s in stimuli] for k in names}
        n = len(stimuli)
        self.load(self.writer.write(circuit, stimulus=stimuli[0], analyses=(), save=nodes, sweep=sweep), ".op", where)
        try:
            self.run_analysis(f"dc v{SWEEP_NODE} 0 {n - 1} 1", ".op", where)  # names are lower case
            out = self.vectors(nodes, ".op", where)
        finally:
            self.reset()
        if out.shape[0] != n:
            raise BackendError(f"ngspice .op of {where}: the sweep over {n} samples stopped after {out.shape[0]}")
        return out

    def info(self) -> dict[str, str]:
        """Which ngspice runs: the shared library and its version line."""
        import re

        try:
            text = self.command("version -s", "version", "ngspice")
        except BackendError:
            text = ""
        m = re.search(r"ngspice-(\S+)", text)
        return {"ngspice": "libngspice (shared library, through PySpice)",
                "ngspice_version": f"ngspice-{m.group(1)}" if m else "unknown"}

    def tran_many(self, circuit: Circuit, stimuli: Sequence[Mapping[str, float]],
                  initials: Sequence[Mapping[str, float]], step_s: float, stop_s: float, nodes: Sequence[str],
                  reltol: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`tran` for each sample in turn (one library, one analysis at a time)."""
        return [self.tran(circuit, s, i, step_s, stop_s, nodes, reltol) for s, i in zip(stimuli, initials)]

    def tran(self, circuit: Circuit, stimulus: Mapping[str, float], initial: Mapping[str, float],
             step_s: float, stop_s: float, nodes: Sequence[str], reltol: float) -> tuple[np.ndarray, np.ndarray]:
        """Transient from ``initial`` node voltages: ``(t (s), (len(t), len(nodes)) V)``."""
        where = circuit.title
        deck = self.writer.write(circuit, stimulus=stimulus, analyses=(), save=nodes, initial=initial,
                                 extra_options=tran_options(step_s, reltol))
        self.load(deck, ".tran", where)
        try:
            self.run_analysis(f"tran {step_s!r} {stop_s!r} 0 {step_s!r}", ".tran", where)
            t = self.vectors(["time"], ".tran", where)[:, 0]
            return t, self.vectors(nodes, ".tran", where)
        finally:
            self.reset()
