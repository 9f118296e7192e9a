"""One error class per kind of bad input: registries of a model's functions, and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwbp.cli import main
from hwbp.errors import BatchError, HwbpError, ModelError, StateError
from hwbp.io import load_state, save_model
from hwbp.ir.activations import get_activation
from hwbp.ir.losses import get_loss
from hwbp.models import random_mlp


@pytest.mark.parametrize("lookup,name", [(get_activation, "gelu2"), (get_loss, "hinge")])
def test_unknown_activation_and_loss_raise_the_same_class(lookup, name: str) -> None:
    with pytest.raises(ModelError, match=rf"unknown \w+ '{name}' in node 'n'; valid: ") as info:
        lookup(name, where="node 'n'")
    assert isinstance(info.value, ValueError) and isinstance(info.value, HwbpError)


def test_state_error_is_a_value_error_like_batch_error() -> None:
    for cls in (StateError, BatchError):
        assert issubclass(cls, HwbpError) and issubclass(cls, ValueError)


def _write(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case,fragment", [
    ("missing", "state file not found"),
    ("garbage", "not a readable .npz state file"),
    ("unmatched", "matching 'activation/<population>' and 'tension/<population>'"),
    ("nonfinite", "must be finite numbers"),
])
def test_load_state_errors_are_state_errors(tmp_path: Path, case: str, fragment: str) -> None:
    path = tmp_path / f"{case}.npz"
    if case == "garbage":
        path.write_bytes(b"not a zip archive")
    elif case == "unmatched":
        _write(path, **{"activation/h": np.zeros((1, 2))})
    elif case == "nonfinite":
        _write(path, **{"activation/h": np.full((1, 2), np.nan), "tension/h": np.zeros((1, 2))})
    with pytest.raises(StateError, match=fragment) as info:
        load_state(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_state_file_is_exit_2_on_one_line(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.hwbp"
    save_model(random_mlp([2, 3, 1], seed=0), model)
    bad = _write(tmp_path / "bad.npz", **{"activation/h": np.zeros((1, 2))})
    assert main(["verify", str(model), "--initial", str(bad), "--report", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hwbp: error: ") and "bad.npz" in err and "\n" not in err
    assert not (tmp_path / "r.json").exists()
