"""Documentation that runs: every ``hwbp`` command in the README's code blocks, verbatim,
and every notebook in ``notebooks/``, each in a temporary directory outside the tree."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from hwbp.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: A synopsis line, not an example: it holds placeholders or alternatives.
SYNOPSIS = re.compile(r"\[|\||\.\.\.|\b[A-Z]{2,}\b")


def readme_commands(text: str) -> list[str]:
    """The ``hwbp ...`` example lines of the fenced code blocks of ``text`` (continuation
    backslashes joined; synopsis lines with placeholders such as ``MODEL`` or ``[...]``
    left out)."""
    commands: list[str] = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("hwbp ") and not SYNOPSIS.search(line):
                commands.append(" ".join(line.split()))
    return commands


README_COMMANDS = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_examples() -> None:
    assert len(README_COMMANDS) >= 6, README_COMMANDS
    assert any("--mode continuous --solver rk4 --dt 0.01 --initial random" in c for c in README_COMMANDS)


def test_synopsis_lines_are_told_from_examples() -> None:
    text = "```\nhwbp verify MODEL [--loss mse|ce]\nhwbp compile m.onnx --target spice \\\n    -o d/\n```\n"
    assert readme_commands(text) == ["hwbp compile m.onnx --target spice -o d/"]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch) -> Path:
    """A working directory outside the tree holding a copy of ``examples/``."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("command", README_COMMANDS, ids=[f"{i}-{c.split()[1]}" for i, c in enumerate(README_COMMANDS)])
def test_readme_command_runs(command: str, sandbox: Path) -> None:
    code = main(shlex.split(command)[1:])
    assert code == 0, f"{command!r} exited {code}"


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(notebook: Path, tmp_path: Path, monkeypatch) -> None:
    """Executed with nbclient in a copy of ``notebooks/`` next to copies of ``examples/`` and ``sims/``
    (the notebooks' relative paths), importing this checkout's ``hwbp``."""
    import nbformat
    from nbclient import NotebookClient

    for name in ("notebooks", "examples", "sims"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(tmp_path / "notebooks" / notebook.name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
