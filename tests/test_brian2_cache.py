"""Brian2's Cython cache persists across processes: by default in the user's cache
directory (``$XDG_CACHE_HOME/hwbp/brian2/cython``, else ``~/.cache/...``), under
``--build-dir`` when given; a second ``hwbp verify --backend brian2 --codegen cython``
of the same model compiles nothing (no new or rewritten extension module)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwbp.targets.brian2.backend import Brian2Backend, cython_cache_dir

ROOT = Path(__file__).resolve().parent.parent


def test_cache_directory_follows_xdg_and_build_dir(tmp_path, monkeypatch):
    be = Brian2Backend()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cython_cache_dir() == tmp_path / "xdg" / "hwbp" / "brian2" / "cython"
    assert be.cache_dir(be.options({})) == cython_cache_dir()
    assert be.cache_dir(be.options({"build_dir": str(tmp_path / "b")})) == tmp_path / "b" / "cython"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored, as the XDG rules say
    assert cython_cache_dir() == Path.home() / ".cache" / "hwbp" / "brian2" / "cython"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cython_cache_dir() == Path.home() / ".cache" / "hwbp" / "brian2" / "cython"


def _verify(env: dict) -> None:
    """One ``hwbp verify --codegen cython`` in a new process (checked ok)."""
    out = subprocess.run([sys.executable, "-m", "hwbp", "verify", str(ROOT / "examples" / "mlp_digits.onnx"),
                          "--loss", "ce", "--backend", "brian2", "--codegen", "cython", "--random-batch", "1",
                          "--dt", "0.1"], env=env, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow
def test_second_cython_verify_is_a_cache_hit(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(ROOT)}
    cache = tmp_path / "xdg" / "hwbp" / "brian2" / "cython"
    _verify(env)
    built = sorted(cache.rglob("*.so"))
    assert built, "the first run put no compiled extension into the user's cache"
    mtimes = {p: p.stat().st_mtime_ns for p in built}
    _verify(env)
    assert sorted(cache.rglob("*.so")) == built  # nothing compiled again
    assert {p: p.stat().st_mtime_ns for p in built} == mtimes
    assert not list(Path.cwd().glob("*.so"))
