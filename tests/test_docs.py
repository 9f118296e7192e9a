"""Documentation that runs: every ``hwbp`` command in the code blocks of the README and of
the documentation pages (``docs/``), verbatim, and every notebook in ``notebooks/``, each in
a temporary directory outside the tree; the documentation site builds in strict mode."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
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


README = (ROOT / "README.md").read_text(encoding="utf-8")
#: The README and every page of the documentation site.
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _doc_commands() -> list[str]:
    """Every example command of :data:`DOC_FILES`, each once, in order of appearance."""
    seen: dict[str, None] = {}
    for path in DOC_FILES:
        for command in readme_commands(path.read_text(encoding="utf-8")):
            seen.setdefault(command, None)
    return list(seen)


README_COMMANDS = _doc_commands()


def test_the_readme_has_examples() -> None:
    assert "make test" in README and "make demo" in README
    assert any("--mode continuous --solver rk4 --dt 0.01 --initial random" in c for c in readme_commands(README))
    assert len(README_COMMANDS) >= 6, README_COMMANDS


def test_the_readme_links_resolve() -> None:
    """Every relative link of the README (the landing page) names a file of the tree."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    assert links
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, missing


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


def test_every_page_is_in_the_nav() -> None:
    """A page missing from ``mkdocs.yml``'s nav would only be an INFO line of mkdocs; the
    strict build's ``omitted_files: warn`` turns it into a failure, checked here without a build."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert pages
    assert not [p for p in pages if f": {p}" not in nav]
    assert "omitted_files: warn" in nav


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the docs extra's pinned tools need Python >= 3.11")
def test_the_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (what ``make docs`` runs) into a temporary directory: any
    warning (a broken link or anchor, a page outside the nav, a docstring mkdocstrings
    cannot read) fails; the API reference and the notebooks are rendered."""
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "--site-dir", str(site)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert "WARNING" not in log, log
    api = (site / "api" / "verify.html").read_text(encoding="utf-8")
    for anchor in ("hwbp.verify.verify", "hwbp.verify.read_gradients", "hwbp.verify.Verification"):
        assert f'id="{anchor}"' in api, anchor
    for page in (site / "api").glob("*.html"):  # Sphinx roles are rewritten by docs/_ext/sphinx_roles.py
        assert ":class:" not in page.read_text(encoding="utf-8"), page.name
    for notebook in NOTEBOOKS:
        assert (site / "notebooks" / f"{notebook.stem}.html").is_file(), notebook.name
