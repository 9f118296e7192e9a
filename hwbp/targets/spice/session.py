"""A persistent ngspice process (``ngspice -p``, commands on its standard input): one netlist
parsed and expanded once, then solved again and again with changed source values (``alter``
and ``op``).  The partitioned DC solve (:mod:`hwbp.pdk.partition`) solves its network deck
this way: expanding a transistor-level netlist's subcircuits takes most of a one-shot run's
time (measured: ~90 % of the digits MLP's network deck), a re-solve a few seconds.
"""

from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from hwbp.errors import BackendError
from hwbp.targets.spice.diagnose import classify, find_ngspice, missing_results, timeout_error
from hwbp.targets.spice.raw import parse_raw

__all__ = ["Session"]

_MARK = "hwbp_session_done"


class Session:
    """One ngspice process holding ``files[main]`` (a deck without analyses; its ``.save``
    lines choose what :meth:`op` returns).  Use as a context manager; the process ends on exit.

    Parameters
    ----------
    files : Mapping[str, str]
        File name -> text, written into a fresh directory (the deck, a ``.spiceinit``).
    main : str
        The deck ngspice loads.
    where : str
        The circuit's title, for messages.
    timeout_s : float
        Wall-clock limit of loading the deck and of each :meth:`op` (s).
    executable : str, optional
        ngspice to run (see :func:`~hwbp.targets.spice.diagnose.find_ngspice`).
    """

    def __init__(self, files: Mapping[str, str], main: str, where: str, timeout_s: float,
                 executable: str | None = None) -> None:
        self.where, self.timeout_s = where, float(timeout_s)
        self.exe = find_ngspice(executable)
        self._tmp = tempfile.TemporaryDirectory(prefix="hwbp-session-")
        for name, text in files.items():
            (Path(self._tmp.name) / name).write_text(text, encoding="ascii")
        env = dict(os.environ, SPICE_ASCIIRAWFILE="0")
        self._proc = subprocess.Popen([self.exe, "-p", main], cwd=self._tmp.name, env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._count = 0
        self._values: dict[str, float] = {}
        self._run(["set noaskquit", "set filetype=binary"], "loading")

    def _read(self) -> None:
        for line in self._proc.stdout:  # type: ignore[union-attr]
            self._lines.put(line)
        self._lines.put(None)

    def _run(self, commands: Sequence[str], what: str) -> str:
        """Send ``commands`` and wait for them to finish; ngspice's output text."""
        self._count += 1
        mark = f"{_MARK}_{self._count}"
        try:
            self._proc.stdin.write("\n".join([*commands, f"echo {mark}", ""]))  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            raise BackendError(f"ngspice {what} of {self.where}: the process ended") from None
        out: list[str] = []
        while True:
            try:
                line = self._lines.get(timeout=self.timeout_s)
            except queue.Empty:
                raise timeout_error(".op", self.where, self.timeout_s) from None
            if line is None:
                raise BackendError(f"ngspice {what} of {self.where}: the process ended "
                                   f"({''.join(out[-3:]).strip()[:160] or 'no output'})")
            if line.strip() == mark:
                return "".join(out)
            out.append(line)

    def op(self, values: Mapping[str, float], nodes: Sequence[str]) -> np.ndarray:
        """The operating point with the sources named in ``values`` set to them (V or A; the
        others as last set): the ``nodes`` voltages (V)."""
        cmds = [f"alter {k.lower()} dc = {float(v)!r}" for k, v in values.items() if self._values.get(k) != v]
        raw = Path(self._tmp.name) / "out.raw"
        raw.unlink(missing_ok=True)
        text = self._run([*cmds, "op", "write out.raw", "destroy all"], ".op")
        classify(text, ".op", self.where)
        self._values.update(values)
        if not raw.is_file():
            raise missing_results(text, ".op", self.where, "no results were written")
        vec = parse_raw(raw.read_bytes(), f"raw file of {self.where}")[0].vectors
        return np.array([vec[n.lower()][0] for n in nodes])

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._proc.stdin.write("quit\n")  # type: ignore[union-attr]
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._tmp.cleanup()
