"""The Python 3.11 compatibility layer of lava-nc 0.10.0 (hwbp.targets.lava.compat)."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import subprocess
import sys

import pytest

from hwbp.errors import BackendError
from hwbp.targets.lava import compat

PY = sys.executable


def _source(module: str) -> str:
    spec = importlib.util.find_spec(module.rsplit(".", 1)[0])
    assert spec is not None, "lava-nc is not installed (make test installs lava-nc==0.10.0)"
    path = pathlib.Path(spec.submodule_search_locations[0]) / (module.rsplit(".", 1)[1] + ".py")
    return path.read_text()


def test_var_model_defaults_become_factories() -> None:
    src = _source("lava.magma.compiler.var_model")
    assert "= ByteEncoder()" in src  # the installed file is untouched
    out = compat.patch_source("lava.magma.compiler.var_model", src)
    assert "= ByteEncoder()" not in out and out.count("default_factory=ByteEncoder") == 8
    compile(out, "var_model.py", "exec")  # still valid Python


def test_start_method_is_forced() -> None:
    src = _source("lava.magma.runtime.message_infrastructure.multiprocessing")
    out = compat.patch_source("lava.magma.runtime.message_infrastructure.multiprocessing", src)
    assert "set_start_method('fork', force=True)" in out and "set_start_method('fork')" not in out


def test_unexpected_source_is_refused() -> None:
    with pytest.raises(BackendError, match="lava-nc 0.10.0"):
        compat.patch_source("lava.magma.compiler.var_model", "x = 1\n")


def test_other_modules_pass_through() -> None:
    assert compat.patch_source("lava.other", "a = ByteEncoder()") == "a = ByteEncoder()"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=pathlib.Path(__file__).resolve().parents[1])


def test_lava_imports_after_another_start_method() -> None:
    """In a fresh interpreter whose start method is already fixed (as dask or torch do),
    lava imports through the layer and runs on fork."""
    r = _run("import multiprocessing as mp; mp.set_start_method('spawn')\n"
             "from hwbp.targets.lava.compat import import_lava; import_lava()\n"
             "from lava.magma.compiler.var_model import CoreEncoder; import sys\n"
             "assert CoreEncoder().x is not CoreEncoder().x\n"
             "print(mp.get_start_method(), 'lava' in sys.modules)")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["fork", "True"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the defect exists on Python >= 3.11 only")
def test_without_the_layer_lava_fails() -> None:
    """Negative control: the plain import fails on this Python for the reason the layer fixes."""
    r = _run("import lava.magma.compiler.var_model")
    assert r.returncode != 0 and "mutable default" in r.stderr and "ByteEncoder" in r.stderr


def test_install_is_idempotent() -> None:
    compat.install()
    compat.install()
    assert sum(isinstance(f, compat.LavaCompatFinder) for f in sys.meta_path) == 1


def test_process_modules_have_no_side_effects() -> None:
    """Lava's model discovery imports every module next to a Process's module: those
    import only numpy, lava and the standard library, and run nothing at import."""
    folder = pathlib.Path(compat.__file__).parent / "lavaproc"
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.ImportFrom) and node.level:  # a sibling of the same folder
                    assert (folder / f"{node.module}.py").exists(), (path.name, node.module)
                    continue
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for n in names:
                    assert n.split(".")[0] in {"numpy", "lava", "__future__", "math", "typing"}, (path.name, n)
            else:
                assert isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Expr)), (
                    path.name, ast.dump(node)[:80])
                if isinstance(node, ast.Expr):
                    assert isinstance(node.value, ast.Constant), (path.name, "top-level call")
