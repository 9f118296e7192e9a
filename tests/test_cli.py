"""The hwbp command line: outputs, exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwbp.cli import main
from hwbp.io import save_model
from hwbp.models import random_mlp, random_resmlp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "res.hwbp"
    save_model(random_resmlp(5, 6, 3, blocks=2, seed=1), path)
    return path


def _onnx_model(tmp_path: Path, *, op: str = "Tanh", w: np.ndarray | None = None, name: str = "m.onnx") -> Path:
    w = np.full((3, 4), 0.5, dtype=np.float32) if w is None else w
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["h"], name="fc", transB=1),
             helper.make_node(op, ["h"], ["y"], name="act")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.zeros(3, np.float32), "b")])
    path = tmp_path / name
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_verify_writes_report_and_plot(model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["verify", str(model), "--random-batch", "4", "--initial", "random",
                 "--report", str(out / "r.json"), "--plot", str(out / "r.png")])
    assert code == 0
    text = capsys.readouterr().out
    assert "PASSED" in text and "block1.fc.weight" in text
    rep = json.loads((out / "r.json").read_text())
    assert rep["schema"] == "hwbp.verify/1" and rep["passed"] and rep["model_file"] == str(model)
    assert (out / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_verify_fails_with_exit_1_before_2L(model: Path, capsys) -> None:
    assert main(["verify", str(model), "--steps", "7", "--initial", "random"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_simulate_writes_state_and_trace(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", str(model), "--mode", "unit-step", "--steps", "8", "--random-batch", "3",
                 "--trace", "-o", str(out)]) == 0
    with np.load(out / "state.npz") as z:
        keys = set(z.files)
        assert {"activation/block2", "tension/block2", "grad/head.weight"} <= keys
        assert z["tension/head"].shape == (3, 3)
    with np.load(out / "trace.npz") as z:
        assert z["t"].shape == (9,) and z["tension/head"].shape == (9, 3, 3)


def test_simulate_continuous_and_steady(model: Path, tmp_path: Path) -> None:
    for args in (["--mode", "continuous", "--duration", "2", "--dt", "0.1", "--solver", "exponential"],
                 ["--mode", "steady"]):
        out = tmp_path / args[1]
        assert main(["simulate", str(model), *args, "-o", str(out)]) == 0
        assert (out / "state.npz").is_file() and not (out / "trace.npz").exists()


def test_compile_equations_is_deterministic(model: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["compile", str(model), "--target", "equations", "-o", str(a)]) == 0
    assert main(["compile", str(model), "--target", "equations", "-o", str(b)]) == 0
    for f in ("equations.md", "equations.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    md = (a / "equations.md").read_text()
    assert "tau dT[block1]/dt" in md and "beta · ∇mse(xbar[head])" in md
    assert json.loads((a / "equations.json").read_text())["depth"] == 4


def _bad_inputs(tmp_path: Path, model: Path):
    good = _onnx_model(tmp_path)
    data = good.read_bytes()
    (tmp_path / "trunc.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 10)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, inputs=np.zeros((2, 4)), y=np.zeros((2, 3)))
    shape = tmp_path / "shape.npz"
    np.savez(shape, x=np.zeros((2, 7)), y=np.zeros((2, 3)))
    return {
        "truncated": ([str(tmp_path / "trunc.onnx")], "trunc.onnx"),
        "corrupted": ([str(tmp_path / "garbage.onnx")], "garbage.onnx"),
        "unsupported-op": ([str(_onnx_model(tmp_path, op="Erf", name="erf.onnx"))], "'Erf'"),
        "nan-weights": ([str(_onnx_model(tmp_path, w=np.full((3, 4), np.nan, np.float32), name="nan.onnx"))], "non-finite"),
        "mismatched-shapes": ([str(_onnx_model(tmp_path, w=np.ones((3, 5), np.float32), name="shp.onnx"))], "shp.onnx"),
        "batch-wrong-arrays": ([str(model), "--batch", str(wrong)], "need 'x'"),
        "batch-wrong-shape": ([str(model), "--batch", str(shape)], "must have shape (batch, 5)"),
        "missing-model": ([str(tmp_path / "nope.onnx")], "not found"),
        "unknown-format": ([str(wrong)], "unknown model format"),
    }


@pytest.mark.parametrize("case", ["truncated", "corrupted", "unsupported-op", "nan-weights", "mismatched-shapes",
                                  "batch-wrong-arrays", "batch-wrong-shape", "missing-model", "unknown-format"])
@pytest.mark.parametrize("command", ["verify", "simulate"])
def test_bad_input_exit_2_one_line_nothing_written(case, command, model, tmp_path, capsys) -> None:
    args, fragment = _bad_inputs(tmp_path, model)[case]
    out = tmp_path / "out"
    extra = ["-o", str(out)] if command == "simulate" else ["--report", str(out / "r.json")]
    assert main([command, *args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hwbp: error: ") and "\n" not in err and fragment in err, err
    assert not out.exists()


def test_console_script_runs(model: Path) -> None:
    exe = Path(sys.executable).with_name("hwbp")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hwbp.cli"]
    proc = subprocess.run([*cmd, "verify", str(model), "--loss", "ce"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "PASSED" in proc.stdout


def test_shipped_example_verifies(tmp_path: Path) -> None:
    assert main(["verify", str(EXAMPLES / "mlp_digits.onnx"), "--batch", str(EXAMPLES / "digits_batch.npz"),
                 "--loss", "ce", "--report", str(tmp_path / "r.json")]) == 0


def test_readme_command_lines(tmp_path: Path) -> None:
    onnx_file, batch = str(EXAMPLES / "mlp_digits.onnx"), str(EXAMPLES / "digits_batch.npz")
    assert main(["verify", onnx_file, "--backend", "reference", "--report", str(tmp_path / "report.json")]) == 0
    assert main(["simulate", onnx_file, "--backend", "reference", "--mode", "unit-step", "--steps", "12",
                 "--batch", batch, "-o", str(tmp_path / "sim")]) == 0
    with np.load(tmp_path / "sim" / "state.npz") as z:
        assert z["grad/fc1.weight"].shape == (32, 64)


def test_simulate_resumes_from_a_saved_state(model: Path, tmp_path: Path) -> None:
    """Three steps, then five more from the saved state, equal eight steps at once."""
    common = ["--random-batch", "3", "--initial", "random", "--seed", "4"]
    assert main(["simulate", str(model), "--steps", "3", *common, "-o", str(tmp_path / "a")]) == 0
    assert main(["simulate", str(model), "--steps", "8", *common, "-o", str(tmp_path / "all")]) == 0
    resume = ["--random-batch", "3", "--seed", "4", "--initial", str(tmp_path / "a" / "state.npz")]
    assert main(["simulate", str(model), "--steps", "5", *resume, "-o", str(tmp_path / "b")]) == 0
    with np.load(tmp_path / "b" / "state.npz") as b, np.load(tmp_path / "all" / "state.npz") as full:
        for k in full.files:
            np.testing.assert_array_equal(b[k], full[k], err_msg=k)
    assert main(["simulate", str(model), "--initial", "sideways", "-o", str(tmp_path / "c")]) == 2


def _two_input_model(path: Path) -> Path:
    from hwbp.ir import Add, Dense, Graph, Input

    rng = np.random.default_rng(0)
    g = Graph((Input("a", size=2), Input("b", size=3),
               Dense("loss", source="a", weight=rng.standard_normal((2, 2)), bias=np.zeros(2)),
               Dense("db", source="b", weight=rng.standard_normal((2, 3)), bias=np.zeros(2)),
               Add("s", sources=("loss", "db"))), "s", "two_inputs")
    save_model(g, path)
    return path


def test_multi_input_batch_and_a_node_called_loss(tmp_path: Path) -> None:
    model = _two_input_model(tmp_path / "two.hwbp")
    batch = tmp_path / "b.npz"
    np.savez(batch, **{"x/a": np.ones((4, 2)), "x/b": np.ones((4, 3)), "y": np.zeros((4, 2))})
    assert main(["verify", str(model), "--batch", str(batch), "--initial", "random"]) == 0


def test_identical_gradients_meet_the_strictest_tolerance(tmp_path: Path) -> None:
    # relu: the steady state and the oracle's own code compute the same float64 numbers
    # (a smooth activation's two independent derivative formulas differ by round-off)
    model = tmp_path / "relu.hwbp"
    save_model(random_resmlp(5, 6, 3, blocks=2, seed=1, activation="relu"), model)
    assert main(["verify", str(model), "--mode", "steady", "--rtol", "0", "--min-cosine", "1",
                 "--report", str(tmp_path / "r.json")]) == 0


def test_integer_mse_targets_are_values_not_classes(tmp_path: Path) -> None:
    from hwbp.io import load_batch, load_model

    path = tmp_path / "one.hwbp"
    save_model(random_mlp([2, 1], seed=0), path)
    np.savez(tmp_path / "b.npz", x=np.zeros((2, 2)), y=np.array([[0], [3]]))
    g = load_model(path).with_loss("mse")
    assert load_batch(tmp_path / "b.npz", g).y.tolist() == [[0.0], [3.0]]
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 2)), y=np.array([0, 1, 0]))
    g3 = random_mlp([2, 2], seed=0).with_loss("ce")
    save_model(g3, tmp_path / "two.hwbp")
    assert load_batch(tmp_path / "c.npz", g3, loss="ce").y.tolist() == [[1, 0], [0, 1], [1, 0]]


@pytest.mark.parametrize("args,fragment", [
    (["--random-batch", "0"], "random batch size must be >= 1"),
    (["--seed", "-1"], "must be >= 0"),
    (["--dt", "0.1"], "--dt applies to --mode continuous"),
    (["--mode", "steady", "--trace"], "--trace needs a trajectory"),
    (["--mode", "continuous", "--dt", "1e-300", "--duration", "1"], "increase dt"),
    (["--initial", "nowhere.npz"], "state file not found"),
])
def test_bad_options_exit_2(model: Path, args, fragment, capsys) -> None:
    try:
        code = main(["verify", str(model), *args])
    except SystemExit as exc:  # argparse rejects malformed values itself, with exit code 2
        code = exc.code
    assert code == 2
    assert fragment in capsys.readouterr().err


def test_unwritable_outputs_are_refused_before_any_work(model: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "d.json").mkdir()
    assert main(["verify", str(model), "--report", str(tmp_path / "d.json")]) == 2
    assert "is a directory" in capsys.readouterr().err
    npy = tmp_path / "x.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    assert main(["verify", str(model), "--batch", str(npy)]) == 2
    assert "not an .npz archive" in capsys.readouterr().err


def test_plot_of_a_model_without_parameters(tmp_path: Path) -> None:
    from hwbp.ir import Activation, Graph, Input

    path = tmp_path / "p.hwbp"
    save_model(Graph((Input("x", size=3), Activation("t", source="x", function="tanh")), "t"), path)
    assert main(["verify", str(path), "--plot", str(tmp_path / "p.png"), "--report", str(tmp_path / "p.json")]) == 0
    assert (tmp_path / "p.png").exists() and (tmp_path / "p.json").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--backend", "spice", "--mode", "continuous"], "--mode does not apply to --backend spice"),
    (["--backend", "spice", "--steps", "3"], "--steps does not apply to --backend spice"),
    (["--backend", "spice", "--tau", "5"], "--tau does not apply to --backend spice"),
    (["--backend", "spice", "--initial", "random"], "--initial applies to --analysis tran"),
    (["--analysis", "tran"], "--analysis does not apply to --backend reference"),
    (["--r-ohm", "-5"], "--r-ohm does not apply to --backend reference"),
])
def test_flags_of_another_backend_are_refused(model: Path, args, fragment, capsys) -> None:
    """A flag the chosen backend does not take is an error, never silently ignored."""
    assert main(["verify", str(model), *args]) == 2
    assert fragment in capsys.readouterr().err
