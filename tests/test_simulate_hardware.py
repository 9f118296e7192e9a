"""``hwbp simulate --hardware FILE.toml --seed S`` writes the state of the device
instance that ``hwbp verify --hardware FILE.toml --seed S`` runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwbp.cli import main
from hwbp.hardware import load_hardware
from hwbp.io import load_batch, load_model
from hwbp.verify.run import verify

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "mlp_digits.onnx"
HW = ROOT / "examples" / "hardware"


def _batch(tmp_path: Path) -> Path:
    with np.load(ROOT / "examples" / "digits_batch.npz") as z:
        np.savez(tmp_path / "b.npz", x=z["x"][:4], y=z["y"][:4])
    return tmp_path / "b.npz"


def test_simulate_writes_the_instance_verify_runs(tmp_path: Path, capsys) -> None:
    b = _batch(tmp_path)
    graph = load_model(MODEL).with_loss("ce")
    batch = load_batch(b, graph)
    for seed in (3, 4):
        out = tmp_path / f"s{seed}"
        assert main(["simulate", str(MODEL), "--loss", "ce", "--batch", str(b), "--hardware", str(HW / "typical.toml"),
                     "--seed", str(seed), "-o", str(out)]) == 0
        v = verify(graph, batch, hardware=load_hardware(HW / "typical.toml"), seed=seed)
        with np.load(out / "state.npz") as z:
            for name, t in v.result.state.tension.items():
                np.testing.assert_array_equal(z[f"tension/{name}"], t)
            for k, g in v.physical.parameters.items():
                np.testing.assert_array_equal(z[f"grad/{k}"], g)
    with np.load(tmp_path / "s3" / "state.npz") as a, np.load(tmp_path / "s4" / "state.npz") as c:
        assert not np.array_equal(a["grad/fc1.weight"], c["grad/fc1.weight"])  # another instance
    assert main(["simulate", str(MODEL), "--loss", "ce", "--batch", str(b), "-o", str(tmp_path / "ideal")]) == 0
    with np.load(tmp_path / "ideal" / "state.npz") as z, np.load(tmp_path / "s3" / "state.npz") as a:
        assert not np.array_equal(z["grad/fc1.weight"], a["grad/fc1.weight"])  # the instance is not the ideal net


def test_simulate_hardware_bad_input_writes_nothing(tmp_path: Path, capsys) -> None:
    b = _batch(tmp_path)
    out = tmp_path / "o"
    assert main(["simulate", str(MODEL), "--batch", str(b), "--hardware", str(HW / "noisy.toml"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noise needs --mode continuous" in err[0]
    assert main(["simulate", str(MODEL), "--batch", str(b), "--hardware", str(tmp_path / "none.toml"),
                 "-o", str(out)]) == 2
    assert not out.exists()
