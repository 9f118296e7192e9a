"""notebooks/lava_deploy.ipynb runs from top to bottom (compile, deploy, verify, sweep)."""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lava_notebook_runs() -> None:
    try:
        import nbclient
        import nbformat
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("nbclient/nbformat missing under CI")
        pytest.skip("nbclient not installed")
    nb = nbformat.read(ROOT / "notebooks" / "lava_deploy.ipynb", as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    try:
        client.execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "fc1.weight" in text and "lava_steps" in text and "min cosine" in text
