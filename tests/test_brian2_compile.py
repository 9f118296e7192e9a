"""``hwbp compile --target brian2``: a readable stand-alone script and its parameters,
deterministic, that runs with only brian2 and numpy and prints the verification table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hwbp.cli import main
from hwbp.io import save_model
from hwbp.lower.lowerer import lower
from hwbp.models import random_resmlp
from hwbp.oracle.backprop import exact_gradients
from hwbp.sim.simulate import simulate
from hwbp.targets.brian2.backend import REFERENCE_RTOL
from hwbp.types import Batch
from hwbp.types import Gradients
from hwbp.verify.compare import compare
from hwbp.verify.readout import read_gradients


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("b2compile")
    graph = random_resmlp(3, 4, 3, 1, activation="tanh", seed=6, name="res")
    save_model(graph, d / "res.hwbp")
    assert main(["compile", str(d / "res.hwbp"), "--loss", "ce", "--target", "brian2", "-o", str(d / "out"),
                 "--samples", "3", "--dt", "0.05"]) == 0
    return d, graph.with_loss("ce")


def test_files_are_deterministic_and_readable(compiled, tmp_path):
    d, _ = compiled
    assert main(["compile", str(d / "res.hwbp"), "--loss", "ce", "--target", "brian2", "-o", str(tmp_path),
                 "--samples", "3", "--dt", "0.05"]) == 0
    for name in ("res_brian2.py", "res_brian2.npz"):
        assert (tmp_path / name).read_bytes() == (d / "out" / name).read_bytes()
    text = (d / "out" / "res_brian2.py").read_text()
    assert "dxbar/dt = (-xbar + y0 + y1) / tau : 1" in text  # residual block: skip + f(W h + b)
    assert "gate0 = (1 - y0**2) * T : 1" in text
    assert "s0_pre = w * gate0_post : 1 (summed)" in text
    assert "beta * (1/Z - target)" in text
    assert "import hwbp" not in text and "from hwbp" not in text
    data = np.load(d / "out" / "res_brian2.npz")
    assert {"param/block1.fc.weight", "x/x", "y"} <= set(data.files) and data["y"].shape == (3, 3)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["exponential_euler", "rk4"])
def test_script_runs_alone_and_prints_exact_gradients(compiled, solver):
    d, graph = compiled
    out = d / "out"
    grads = d / f"grads_{solver}.npz"
    proc = subprocess.run([sys.executable, "-I", str(out / "res_brian2.py"), "--out", str(grads),
                           "--build-dir", str(d / "build"), "--solver", solver], capture_output=True, text=True,
                          timeout=300, cwd=d)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"{solver}, dt = 0.05 tau" in lines[0] and lines[1].split()[:2] == ["tensor", "shape"]
    assert {ln.split()[0] for ln in lines[3:-2] if not ln.startswith("dl/d[")} == set(graph.parameters())
    assert lines[-1].startswith("PASSED")
    data = np.load(out / "res_brian2.npz")
    batch = Batch.for_model({"x": 3}, 3, {"x": data["x/x"]}, data["y"], loss="ce")
    exact = exact_gradients(graph, batch)
    got = dict(np.load(grads))
    cmp = compare(Gradients(parameters=got, activations=exact.activations, loss=exact.loss), exact)
    assert cmp.max_rel_err < 1e-6
    loss = float(lines[0].rsplit("loss = ", 1)[1])
    assert loss == pytest.approx(exact.loss, rel=1e-8)
    assert not (d / "output").exists() and not (d / "build" / "standalone").exists()
    if solver == "rk4":  # the script's staged RK4 is the reference simulator's RK4, step for step
        system = lower(graph)
        ref = simulate(system, batch, mode="continuous", solver="rk4", dt=0.05, initial="zeros")
        want = read_gradients(system, ref.state, batch).parameters
        assert max(np.linalg.norm(got[k] - w) / np.linalg.norm(w) for k, w in want.items()) < REFERENCE_RTOL


def test_given_batch_is_stored(compiled, tmp_path):
    d, graph = compiled
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "b.npz", x=rng.standard_normal((5, 3)), y=np.eye(3)[[0, 1, 2, 0, 1]])
    assert main(["compile", str(d / "res.hwbp"), "--loss", "ce", "--target", "brian2", "-o", str(tmp_path / "o"),
                 "--batch", str(tmp_path / "b.npz")]) == 0
    data = np.load(tmp_path / "o" / "res_brian2.npz")
    np.testing.assert_array_equal(data["x/x"], np.load(tmp_path / "b.npz")["x"])
    assert data["y"].shape == (5, 3)
    # bad option: one-line error, exit 2
    assert main(["compile", str(d / "res.hwbp"), "--target", "brian2", "-o", str(tmp_path / "p"),
                 "--codegen", "fortran"]) == 2


@pytest.mark.slow
def test_script_of_the_depth_model_prints_exact_gradients(tmp_path):
    """Fixed gains and source-side activations (hwbp.models.depth_resmlp) in the script:
    its gradient table is backprop's."""
    from hwbp.models import depth_resmlp

    graph = depth_resmlp(4, 3, 2, 3, activation="tanh", seed=2, name="deep")
    save_model(graph, tmp_path / "deep.hwbp")
    assert main(["compile", str(tmp_path / "deep.hwbp"), "--loss", "mse", "--target", "brian2", "-o",
                 str(tmp_path / "out"), "--samples", "2", "--dt", "0.1"]) == 0
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "out" / "deep_brian2.py"), "--out",
                           str(tmp_path / "g.npz"), "--build-dir", str(tmp_path / "build")], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = np.load(tmp_path / "out" / "deep_brian2.npz")
    batch = Batch.for_model({"x": 4}, 2, {"x": data["x/x"]}, data["y"], loss="mse")
    exact = exact_gradients(graph.with_loss("mse"), batch)
    got = dict(np.load(tmp_path / "g.npz"))
    cmp = compare(Gradients(parameters=got, activations=exact.activations, loss=exact.loss), exact)
    assert cmp.max_rel_err < 1e-6
