"""Bad input answered with exit 2 (1 for a failed verification) and one line; nothing written."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from hwbp.cli import EXAMPLE_MODEL, main
from hwbp.errors import BatchError
from hwbp.io import load_batch, load_model
from hwbp.types import Batch

MODEL = str(EXAMPLE_MODEL)


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, expect: int = 2) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == expect, err
    assert len(err) == 1 and err[0].startswith("hwbp: error: "), err
    return err[0]


@pytest.fixture
def read_only(tmp_path: Path) -> Path:
    """A directory that takes no new file, even for root (root ignores mode bits, so
    then a path under /proc, which refuses new files)."""
    if os.geteuid() == 0:
        return Path("/proc/hwbp-read-only")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d


def test_random_batch_memory_bound(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["verify", MODEL, "--random-batch", "1000000000"]))
    assert "1000000000 samples needs" in line and "GiB" in line and "at most" in line


@pytest.mark.slow
def test_train_diverging_lr_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.onnx"
    line = one_line_error(capsys, main(["train", MODEL, "--backend", "oracle", "--lr", "1e300", "-o", str(out)]))
    assert "diverged" in line and "1e+300" in line
    assert not list(tmp_path.iterdir())


def test_train_read_only_output_fails_before_training(read_only: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import hwbp.train

    def no_training(*a: object, **k: object) -> None:
        raise AssertionError("training started although the output cannot be written")

    monkeypatch.setattr(hwbp.train, "train", no_training)
    line = one_line_error(capsys, main(["train", MODEL, "--backend", "oracle", "-o", str(read_only / "t.onnx")]))
    assert "cannot write" in line


def test_verify_report_and_read_only_plot_leave_nothing(tmp_path: Path, read_only: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", MODEL, "--loss", "ce", "--report", str(tmp_path / "ok.json"),
                 "--plot", str(read_only / "p.png")])
    assert "--plot" in one_line_error(capsys, code)
    assert not list(tmp_path.iterdir())


def test_write_all_or_none(tmp_path: Path, read_only: Path) -> None:
    """The writer itself: a failing second file leaves the first one unwritten."""
    from hwbp.errors import ConfigError
    from hwbp.io import atomic_write_all

    with pytest.raises(ConfigError):
        atomic_write_all({tmp_path / "a.json": b"{}", read_only / "b.png": b"x"})
    assert not list(tmp_path.iterdir())


def test_huge_beta(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["verify", MODEL, "--beta", "1e308"]))
    assert "beta" in line and "1e+308" in line


def test_nan_cosine_is_not_reported_as_minus_one() -> None:
    from hwbp.types import Gradients
    from hwbp.verify.compare import compare

    nan = np.full((2, 2), np.nan)
    c = compare(Gradients({"w": nan}, {"p": nan}), Gradients({"w": np.ones((2, 2))}, {"p": np.ones((2, 2))}))
    assert np.isnan(c.min_cosine) and not c.passed


def test_steps_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["verify", MODEL, "--steps", str(10 ** 12)]))
    assert "--steps" in line and "1e+06" in line


def _batch_file(tmp_path: Path, y: np.ndarray, n: int = 4) -> str:
    path = tmp_path / "b.npz"
    np.savez(path, x=np.zeros((n, 64)), y=y)
    return str(path)


@pytest.mark.parametrize("y,match", [
    (np.array([1.0, 2.0, 3.0, 4.0]), r"float64 values of shape \(4,\).*must be integers"),
    (np.array([[1], [2], [3], [4]]), r"shape \(4, 1\) \(a column\).*reshape"),
])
def test_ce_label_layout_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], y: np.ndarray,
                                 match: str) -> None:
    import re

    line = one_line_error(capsys, main(["verify", MODEL, "--loss", "ce", "--batch", _batch_file(tmp_path, y)]))
    assert re.search(match, line), line


@pytest.mark.parametrize("row,match", [
    ([1.5, -0.5] + [0.0] * 8, "negative entry"),
    ([0.5, 0.2] + [0.0] * 8, "sums to 0.7"),
])
def test_ce_targets_must_be_probabilities(tmp_path: Path, capsys: pytest.CaptureFixture[str], row: list,
                                          match: str) -> None:
    y = np.tile(np.eye(10)[0], (4, 1))
    y[2] = row
    line = one_line_error(capsys, main(["verify", MODEL, "--loss", "ce", "--batch", _batch_file(tmp_path, y)]))
    assert "row 2" in line and match in line


def test_ce_probability_rows_accepted() -> None:
    y = np.full((3, 4), 0.25)
    assert Batch.for_model({"x": 2}, 4, np.zeros((3, 2)), y, loss="ce").size == 3


def test_load_batch_follows_the_graph_loss(tmp_path: Path) -> None:
    graph = load_model(MODEL).with_loss("ce")
    path = _batch_file(tmp_path, np.array([0, 3, 9, 1]))
    np.testing.assert_array_equal(load_batch(path, graph).y, np.eye(10)[[0, 3, 9, 1]])
    with pytest.raises(BatchError, match="shape"):  # an explicit mse still wants (batch, n_out)
        load_batch(path, graph, loss="mse")


def test_no_progress_bar_without_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    class NotATerminal(io.StringIO):
        def isatty(self) -> bool:
            return False

    err = NotATerminal()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["train", MODEL, "--backend", "oracle", "-o", str(tmp_path / "t.onnx")]) == 0
    assert err.getvalue() == ""


def test_memory_error_is_bad_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever the bounds miss: running out of memory is one line and exit 2."""
    def too_big(*a: object, **k: object) -> None:
        raise MemoryError

    monkeypatch.setattr("hwbp.io.random_batch", too_big)
    assert "out of memory" in one_line_error(capsys, main(["verify", MODEL]))


def test_overflow_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Inputs near float64's limit overflow in the forward pass: one line, exit 2 (found by the fuzz test)."""
    path = tmp_path / "b.npz"
    np.savez(path, x=np.full((2, 64), 1e308), y=np.zeros((2, 10)))
    assert "numerical overflow" in one_line_error(capsys, main(["verify", MODEL, "--batch", str(path)]))


@pytest.mark.parametrize("damage", ["truncated", "npy", "no_meta"])
def test_resume_of_a_damaged_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     damage: str) -> None:
    ck = tmp_path / "ck.npz"
    buf = io.BytesIO()
    if damage == "npy":
        np.save(buf, np.zeros(3))
    else:
        np.savez(buf, **({"order": np.arange(4)} if damage == "no_meta" else
                         {"meta": np.frombuffer(b'{"format": 1}', np.uint8), "order": np.arange(400)}))
    data = buf.getvalue()
    ck.write_bytes(data[: len(data) // 2] if damage == "truncated" else data)
    out = tmp_path / "t.onnx"
    line = one_line_error(capsys, main(["train", MODEL, "--backend", "oracle", "--resume", str(ck), "-o", str(out)]))
    assert f"--resume {ck}" in line
    assert not out.exists()


def test_a_flooding_ngspice_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    import time

    from hwbp.targets.spice.diagnose import ngspice_version

    flood = tmp_path / "flood.sh"
    flood.write_text('#!/bin/sh\nexec yes "ngspice-99 flood"\n')
    flood.chmod(0o755)
    t0 = time.monotonic()
    assert ngspice_version(str(flood)) == "unknown"  # 64 KiB kept, then the probe gives up
    assert time.monotonic() - t0 < 20
    assert ngspice_version(shutil.which("ngspice")).startswith("ngspice-")
    line = one_line_error(capsys, main(["verify", MODEL, "--backend", "spice", "--ngspice", str(flood),
                                        "--random-batch", "2"]))
    assert "printed more than 256 MiB" in line


def test_lava_step_limit(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["verify", MODEL, "--backend", "lava", "--dt", "1e-300"]))
    assert "--dt 1e-300 over the default duration makes 3.6e+301 steps, more than 1e+06" in line
    line = one_line_error(capsys, main(["verify", MODEL, "--backend", "lava", "--steps", "10000000"]))
    assert "--steps makes 1e+07 steps" in line


def test_a_failed_write_leaves_no_directory(tmp_path: Path) -> None:
    from hwbp.errors import ConfigError
    from hwbp.io import atomic_write_all

    with pytest.raises(ConfigError, match="File name too long"):
        atomic_write_all({tmp_path / "new" / "deeper" / ("a" * 300): b"1"})
    assert not (tmp_path / "new").exists()


def test_brian2_compile_of_a_long_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hwbp.io import save_model
    from hwbp.models import random_mlp

    save_model(random_mlp([3, 4, 2], name="a" * 250), tmp_path / "m.hwbp")
    assert main(["compile", str(tmp_path / "m.hwbp"), "--target", "brian2", "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a" * 100 + "_brian2.npz", "a" * 100 + "_brian2.py"]


@pytest.mark.parametrize("argv", [
    ["verify", MODEL, "--random-batch", "x"], ["verify", MODEL, "--bogus"], ["sweep", "x.toml", "-o", "o", "--workers", "0"],
    ["frob"], ["verify", MODEL, "--loss", "foo"], ["verify"], ["compile", MODEL, "--target", "nope", "-o", "x"],
])
def test_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    line = one_line_error(capsys, code)
    assert "_count" not in line and "usage:" not in line


@pytest.mark.slow
def test_lava_time_out_leaves_no_shared_memory(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "hwbp", "verify", MODEL, "--backend", "lava", "--steps", "200000",
                        "--timeout", "3"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "did not finish within 3 s" in err[0], err  # no leaked shared_memory warning
