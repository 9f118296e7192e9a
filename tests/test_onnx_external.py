"""ONNX external data: read from inside the model's directory only, every range checked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwbp.cli import main
from hwbp.errors import ModelFormatError
from hwbp.importers import load_onnx, load_onnx_bytes
from hwbp.io import load_model

W = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


def write_model(d: Path, *, location: str = "m.onnx.data", offset: int | None = 8, length: int | None = 48,
                data: bytes | None = None, extra: dict[str, str] | None = None, dims=(3, 4)) -> Path:
    """A Gemm model whose weight ``W`` lies at ``offset`` in ``d/m.onnx.data``."""
    d.mkdir(parents=True, exist_ok=True)
    blob = b"\0" * 8 + W.astype("<f4").tobytes() if data is None else data
    (d / "m.onnx.data").write_bytes(blob)
    w = TensorProto(name="fc.weight", data_type=TensorProto.FLOAT, dims=list(dims))
    w.data_location = TensorProto.EXTERNAL
    entries = {"location": location, **({} if offset is None else {"offset": str(offset)}),
               **({} if length is None else {"length": str(length)}), **(extra or {})}
    for k, v in entries.items():
        e = w.external_data.add()
        e.key, e.value = k, v
    b = numpy_helper.from_array(np.zeros(3, np.float32), "fc.bias")
    g = helper.make_graph([helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w, b])
    path = d / "m.onnx"
    path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_reads_the_range(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    np.testing.assert_array_equal(load_model(path).parameters()["fc.weight"], W.astype(np.float64))
    np.testing.assert_array_equal(load_onnx(path).parameters()["fc.weight"], W.astype(np.float64))


def test_length_may_be_omitted(tmp_path: Path) -> None:
    path = write_model(tmp_path, length=None)
    np.testing.assert_array_equal(load_model(path).parameters()["fc.weight"], W.astype(np.float64))


@pytest.mark.parametrize("location,match", [
    ("../m.onnx.data", "relative path inside"),
    ("/etc/passwd", "relative path inside"),
    ("sub/../../x", "relative path inside"),
    ("a\\..\\b", "relative path inside"),
    ("", "relative path inside"),
    ("missing.data", "not found"),
    (".", "not found"),
])
def test_bad_locations(tmp_path: Path, location: str, match: str) -> None:
    path = write_model(tmp_path / "model", location=location)
    with pytest.raises(ModelFormatError, match=match):
        load_model(path)


def test_symlink_out_of_the_directory(tmp_path: Path) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 8 + W.astype("<f4").tobytes())
    path = write_model(tmp_path / "model", location="link.data")
    os.symlink(outside, tmp_path / "model" / "link.data")
    with pytest.raises(ModelFormatError, match="outside the model's directory"):
        load_model(path)


@pytest.mark.parametrize("kw,match", [
    ({"offset": 40}, "lies outside"),
    ({"length": 44}, "needs 48"),
    ({"offset": 8, "length": 48, "dims": (4, 4)}, "needs 64"),
    ({"offset": -1}, "non-negative integer"),
    ({"length": "1e3"}, "non-negative integer"),
    ({"length": 10 ** 30}, "non-negative integer"),
    ({"extra": {"offset": "\u00b2"}, "offset": None}, "non-negative integer"),
    ({"extra": {"basepath": "/"}}, "unknown external data key"),
])
def test_bad_ranges(tmp_path: Path, kw: dict, match: str) -> None:
    if "length" in kw and isinstance(kw["length"], str):
        path = write_model(tmp_path, length=None, extra={"length": kw["length"]})
    else:
        path = write_model(tmp_path, **kw)
    with pytest.raises(ModelFormatError, match=match):
        load_model(path)


def test_bytes_without_directory(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    with pytest.raises(ModelFormatError, match="load the model from its path"):
        load_onnx_bytes(path.read_bytes(), source="m.onnx")


def test_cli_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_model(tmp_path / "m", location="../../etc/passwd")
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "external data location" in err[0]


def test_saved_by_onnx_itself(tmp_path: Path) -> None:
    """A model saved by onnx.save_model(..., save_as_external_data=True) loads."""
    path = write_model(tmp_path / "a")
    proto = onnx.load(str(path))  # onnx reads the data back in
    out = tmp_path / "b" / "n.onnx"
    out.parent.mkdir()
    onnx.save_model(proto, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    np.testing.assert_array_equal(load_model(out).parameters()["fc.weight"], W.astype(np.float64))
