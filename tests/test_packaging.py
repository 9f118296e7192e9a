"""The wheel: built from a copy of the sources, it holds the package and its SPICE cells
(no tests), declares the backend and target entry points, and, installed into a fresh
virtual environment, runs ``hwbp compile --target spice`` and ``hwbp verify --backend
spice`` from a directory outside the repository."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from spice_helpers import require_ngspice

ROOT = Path(__file__).resolve().parents[1]
CELLS = sorted(str(p.relative_to(ROOT / "circuits")) for p in (ROOT / "circuits").glob("*/*.cir"))


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` (offline, no build isolation) of a copy of the package sources, so
    that nothing (build/, *.egg-info) is written into the repository."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("hwbp", "circuits"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp / "dist"), str(src)], cwd=tmp, env=_clean_env())
    (whl,) = (tmp / "dist").glob("hwbp-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    # the circuit library circuits/ ships once, as hwbp/circuits/ (behavioral and transistor cells)
    cells = sorted(n[len("hwbp/circuits/"):] for n in names if n.startswith("hwbp/circuits/") and n.endswith(".cir"))
    assert CELLS and cells == CELLS
    assert any(c.startswith("behavioral/") for c in cells) and any(c.startswith("sky130/") for c in cells)
    assert not [n for n in names if n.startswith("hwbp/targets/spice/cells/")]
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n]
    assert all(n.startswith(("hwbp/", "hwbp-")) for n in names), sorted(n.split("/")[0] for n in names)
    (ep_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    eps = configparser.ConfigParser()
    eps.read_string(zipfile.ZipFile(wheel).read(ep_name).decode())
    assert {"reference", "spice"} <= set(eps["hwbp.backends"])
    assert {"equations", "spice"} <= set(eps["hwbp.targets"])
    assert eps["console_scripts"]["hwbp"].strip() == "hwbp.cli:main"
    # the conformance suite ships as a library with its pytest plugin
    assert {"hwbp/testing/__init__.py", "hwbp/testing/test_conformance.py", "hwbp/testing/__main__.py",
            "hwbp/testing/plugin.py"} <= set(names)
    assert eps["pytest11"]["hwbp.testing.plugin"].strip() == "hwbp.testing.plugin"


@pytest.mark.slow
def test_wheel_installs_and_runs_spice_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    require_ngspice()
    venv = tmp_path / "venv"
    env = _clean_env()
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=env)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         cwd=tmp_path, env=env)
    # third-party packages (numpy, onnx, ...) from this environment, by path only: its
    # .pth files (among them an editable hwbp) are not processed for a path added this way
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path, env=env).stdout.strip())
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy2(ROOT / "examples" / "mlp_digits.onnx", work / "model.onnx")
    where = _run([str(py), "-c", "import hwbp, sys; print(hwbp.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), f"hwbp imported from {where}, not from the fresh venv"
    hwbp = str(venv / "bin" / "hwbp")
    _run([hwbp, "compile", "model.onnx", "--target", "spice", "-o", "netlists"], cwd=work, env=env)
    assert sorted(p.name for p in (work / "netlists" / "cells").glob("*.cir"))
    assert list((work / "netlists").glob("*.cir"))
    out = _run([hwbp, "verify", "model.onnx", "--backend", "spice", "--report", "op.json"], cwd=work, env=env)
    assert "PASSED" in out.stdout and (work / "op.json").is_file()
    # the shipped conformance suite, for one backend, from the installed wheel (its pytest
    # plugin found through the entry point); the fast cases of the .op profiles
    out = _run([str(py), "-m", "pytest", "--pyargs", "hwbp.testing", "--backend", "spice", "-q", "-p", "no:xdist",
                "-m", "not slow", "-k", "op-differential and (mlp-tanh or conv2d)"], cwd=work, env=env)
    assert " passed" in out.stdout and "failed" not in out.stdout
