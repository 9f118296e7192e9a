"""Property-based fuzzing of the command line (in process, ``hwbp.cli.main``).

Mutated model files (ONNX bytes flipped, cut or grown; ONNX protos with changed ops,
attributes, shapes, element types and external-data entries; native archives with
changed JSON), mutated batch files and random flag combinations go to ``verify``,
``simulate`` and ``compile``.  Properties: the exit code is 0, 1 or 2 (never 3, a
defect), an error is one line, and nothing is left half-written: no temporary file
ever remains, a failed command writes nothing, and what a successful one writes
reads back.

``HWBP_FUZZ_EXAMPLES`` (default 1002, a third per test below) sets how many inputs a run
feeds; the runs are derandomized, so CI sees the same inputs every time
(``HWBP_FUZZ_RANDOM=1`` draws new ones, to hunt for more; ``HWBP_FUZZ_LOG=FILE``
records each run's exit code, arguments and last stderr line, ``HWBP_FUZZ_KEEP=DIR``
keeps the inputs of runs that exit 1 or 3).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwbp.cli import main
from hwbp.exporters.onnx import graph_to_onnx_bytes
from hwbp.ir.serialize import graph_to_bytes
from hwbp.models import random_mlp, random_resmlp

EXAMPLES = int(os.environ.get("HWBP_FUZZ_EXAMPLES", "1002"))
FUZZ = settings(max_examples=max(1, EXAMPLES // 3), deadline=None,
                derandomize=not os.environ.get("HWBP_FUZZ_RANDOM"), database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)

_MLP = random_mlp([3, 4, 2], activation="tanh", seed=0, name="fuzz")
_RES = random_resmlp(3, 4, 2, 1, activation="sigmoid", seed=1, name="fuzzres")
BASE_MODELS = {
    "mlp.onnx": graph_to_onnx_bytes(_MLP),
    "res.onnx": graph_to_onnx_bytes(_RES),
    "mlp.hwbp": graph_to_bytes(_MLP),
}
OPS = ["Gemm", "MatMul", "Add", "Relu", "Tanh", "Sigmoid", "LeakyRelu", "Softplus", "Identity", "Flatten",
       "Constant", "Cast", "Reshape", "Greater", "Where", "Softmax", "Conv", "", "Gemm\n.end"]
FLOATS = [0.0, -1.0, 1.0, 0.5, 1e-320, 1e-200, 1e308, -1e308, float("nan"), float("inf"), 3.4e38, 1e100]


def _batch_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# ------------------------------------------------------------------ strategies
@st.composite
def byte_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "cut", "grow", "splice", "same"]))
    b = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
    elif kind == "cut":
        b = b[: draw(st.integers(0, len(b)))]
    elif kind == "grow":
        b += draw(st.binary(max_size=64))
    elif kind == "splice":
        i = draw(st.integers(0, len(b)))
        b[i:i] = draw(st.binary(min_size=1, max_size=32))
    return bytes(b)


@st.composite
def onnx_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """Structured changes of a valid ONNX model (ops, attributes, tensors, I/O)."""
    m = onnx.ModelProto()
    m.ParseFromString(data)
    g = m.graph
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["op", "attr", "dims", "dtype", "raw", "external", "input", "output",
                                     "drop", "dup", "opset", "value"]))
        node = g.node[draw(st.integers(0, len(g.node) - 1))] if len(g.node) else None
        init = g.initializer[draw(st.integers(0, len(g.initializer) - 1))] if len(g.initializer) else None
        if kind == "op" and node is not None:
            node.op_type = draw(st.sampled_from(OPS))
        elif kind == "attr" and node is not None:
            a = node.attribute.add()
            a.name = draw(st.sampled_from(["alpha", "beta", "transA", "transB", "axis", "to", "bogus"]))
            if draw(st.booleans()):
                a.type, a.i = onnx.AttributeProto.INT, draw(st.integers(-3, 3))
            else:
                a.type, a.f = onnx.AttributeProto.FLOAT, draw(st.sampled_from(FLOATS))
        elif kind == "dims" and init is not None:
            del init.dims[:]
            init.dims.extend(draw(st.lists(st.integers(-2, 6), max_size=3)))
        elif kind == "dtype" and init is not None:
            init.data_type = draw(st.integers(0, 25))
        elif kind == "raw" and init is not None:
            init.raw_data = draw(st.binary(max_size=80))
        elif kind == "external" and init is not None:
            init.data_location = onnx.TensorProto.EXTERNAL
            init.ClearField("raw_data")
            for key, value in draw(st.lists(st.tuples(
                    st.sampled_from(["location", "offset", "length", "checksum", "basepath"]),
                    st.sampled_from(["w.bin", "../w.bin", "/etc/passwd", "", "0", "-4", "12", "99999999",
                                     "1e3", "x\\y", "m.onnx"])), max_size=4)):
                e = init.external_data.add()
                e.key, e.value = key, value
        elif kind == "input" and node is not None and node.input:
            node.input[draw(st.integers(0, len(node.input) - 1))] = draw(
                st.sampled_from(["", "missing", g.input[0].name, *(i.name for i in g.initializer)]))
        elif kind == "output":
            if draw(st.booleans()) and len(g.output):
                g.output[0].name = draw(st.sampled_from(["nope", g.input[0].name, *(n.output[0] for n in g.node)]))
            else:
                o = g.output.add()
                o.name = draw(st.sampled_from(["extra", *(n.output[0] for n in g.node)]))
        elif kind == "drop" and node is not None:
            g.node.remove(node)
        elif kind == "dup" and node is not None:
            g.node.append(node)
        elif kind == "opset":
            m.opset_import[0].version = draw(st.integers(1, 30))
        elif kind == "value" and init is not None:
            try:
                arr = onnx.numpy_helper.to_array(init).astype(np.float32)
            except Exception:  # an earlier mutation made the tensor unreadable (any onnx error)
                continue
            if arr.size:
                with np.errstate(over="ignore"):  # 1e308 as float32 is inf: also a case to feed
                    arr.reshape(-1)[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from(FLOATS))
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    return m.SerializeToString()


@st.composite
def hwbp_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """Changes of a native archive's graph.json (fields, kinds, values)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    doc = json.loads(members["graph.json"])
    node = doc["nodes"][draw(st.integers(0, len(doc["nodes"]) - 1))]
    key = draw(st.sampled_from(sorted(node) + ["has_bias", "bogus", "size", "function", "alpha", "sources"]))
    node[key] = draw(st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.sampled_from(FLOATS),
                               st.text(max_size=8), st.lists(st.text(max_size=3), max_size=2),
                               st.just({"array": "arrays/99.npy"}), st.just({"array": "graph.json"})))
    members["graph.json"] = json.dumps(doc).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


@st.composite
def model_file(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(BASE_MODELS)))
    data = BASE_MODELS[name]
    how = draw(st.sampled_from(["valid", "valid", "valid", "bytes", "struct", "struct"]))
    if how == "bytes":
        data = draw(byte_mutation(data))
    elif how == "struct":
        data = draw(onnx_mutation(data) if name.endswith(".onnx") else hwbp_mutation(data))
    return name, data


ARRAYS = st.one_of(
    st.integers(0, 4).flatmap(lambda n: st.tuples(st.integers(0, 4), st.integers(0, 4)).map(
        lambda s: np.random.default_rng(n).standard_normal(s))),
    st.sampled_from([np.zeros((2, 3)), np.ones((2, 2)), np.array([0, 1]), np.array([[0], [1]]), np.array([0.5, 1.0]),
                     np.array([[np.nan, 0, 0], [0, 0, 0]]), np.array([[1e308, -1e308, 0]] * 2),
                     np.array([[-1.0, 2.0], [0.5, 0.5]]), np.array([3, -1]), np.array(["a", "b"]),
                     np.zeros((2, 3), dtype=np.complex128), np.zeros((2, 3, 1)), np.zeros(()),
                     np.array([[True, False], [False, True]])]),
)


@st.composite
def batch_file(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # near-valid for the 3 -> 2 models: x (n, 3), y (n, 2) or labels
        n = draw(st.integers(1, 4))
        x = np.full((n, 3), draw(st.sampled_from(FLOATS[:8])))
        y = draw(st.sampled_from([np.eye(2)[np.arange(n) % 2], np.arange(n) % 2, np.full((n, 2), 0.5),
                                  np.full((n, 2), draw(st.sampled_from(FLOATS))), (np.arange(n) % 2)[:, None]]))
        arrays = {"x": x, "y": y}
    else:
        arrays = {k: draw(ARRAYS) for k in draw(st.lists(st.sampled_from(["x", "y", "x/x", "x/other", "z"]),
                                                         max_size=3, unique=True))}
    data = _batch_bytes(arrays)
    return draw(byte_mutation(data)) if draw(st.integers(0, 4)) == 0 else data


NUMS = st.sampled_from(["0", "1", "-1", "2", "1e308", "-1e308", "nan", "inf", "1e-320", "0.5", "1000000000000",
                        "abc", ""])
RUN_FLAGS = st.lists(st.one_of(
    st.tuples(st.just("--loss"), st.sampled_from(["mse", "ce", "hinge"])),
    st.tuples(st.just("--beta"), NUMS),
    st.tuples(st.just("--random-batch"), st.sampled_from(["0", "1", "3", "1000000000", "-2"])),
    st.tuples(st.just("--seed"), st.sampled_from(["0", "7", "-1", "99999999999999999999"])),
    st.tuples(st.just("--mode"), st.sampled_from(["unit-step", "continuous", "steady", "bogus"])),
    st.tuples(st.just("--steps"), NUMS),
    st.tuples(st.just("--duration"), NUMS),
    st.tuples(st.just("--dt"), NUMS),
    st.tuples(st.just("--solver"), st.sampled_from(["euler", "rk4", "exponential", "x"])),
    st.tuples(st.just("--initial"), st.sampled_from(["zeros", "random", "forward-manifold", "bogus", "s.npz"])),
    st.tuples(st.just("--tau"), NUMS),
    st.tuples(st.just("--output"), st.sampled_from(["output", "nope", "x"])),
), max_size=3)
VERIFY_FLAGS = st.lists(st.one_of(
    st.tuples(st.just("--rtol"), NUMS),
    st.tuples(st.just("--min-cosine"), NUMS),
    st.tuples(st.just("--report"), st.sampled_from(["out/r.json", "out/r.txt", "out", "out/sub/r.json"])),
    st.tuples(st.just("--plot"), st.sampled_from(["out/p.png", "out/p.pdf"])),
), max_size=2)
COMPILE_FLAGS = st.lists(st.one_of(
    st.tuples(st.just("--target"), st.sampled_from(["equations", "spice", "spice", "spice", "nope"])),
    st.tuples(st.just("--r-ohm"), NUMS),
    st.tuples(st.just("--c-f"), NUMS),
    st.tuples(st.just("--sample"), NUMS),
    st.tuples(st.just("--dialect"), st.sampled_from(["ngspice", "spice3", "x"])),
    st.tuples(st.just("--loss"), st.sampled_from(["mse", "ce"])),
    st.tuples(st.just("--beta"), NUMS),
), max_size=4)


# ------------------------------------------------------------------ the property
def run_cli(tmp: Path, argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: a malformed flag
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(cwd)
    return code, err.getvalue()


def check(tmp: Path, argv: list[str]) -> None:
    before = {p for p in tmp.rglob("*")}
    code, err = run_cli(tmp, argv)
    if os.environ.get("HWBP_FUZZ_LOG"):
        last = err.splitlines()[-1] if err.strip() else ""
        with open(os.environ["HWBP_FUZZ_LOG"], "a") as fh:
            fh.write(f"{code}\t{argv}\t{last}\n")
    if code in (1, 3) and os.environ.get("HWBP_FUZZ_KEEP"):
        shutil.copytree(tmp, Path(os.environ["HWBP_FUZZ_KEEP"]) / f"{code}_{tmp.name}")
    assert code in (0, 1, 2), f"exit {code} for {argv}:\n{err}"
    lines = [ln for ln in err.splitlines() if not ln.startswith("hwbp: note:")]
    if code == 2 and lines and not lines[0].startswith("usage:"):
        assert len(lines) == 1 and lines[0].startswith("hwbp: error: "), (argv, err)
    new = {p for p in tmp.rglob("*")} - before
    leftovers = [p for p in new if p.name.endswith(".tmp") or p.name.startswith(".hwbp-probe.")]
    assert not leftovers, (argv, leftovers)
    files = [p for p in new if p.is_file()]
    if code not in (0, 1):
        assert not files, (argv, err, files)
    for p in files:  # whatever was written is whole
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npz":
            with np.load(p) as z:
                [z[k] for k in z.files]
        elif p.suffix == ".png":
            assert p.read_bytes().startswith(b"\x89PNG")


@contextlib.contextmanager
def workdir():
    d = Path(tempfile.mkdtemp(prefix="hwbp-fuzz-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def flat(pairs: list[tuple[str, str]]) -> list[str]:
    return [s for pair in pairs for s in pair]


@pytest.mark.slow
@FUZZ
@given(model=model_file(), flags=RUN_FLAGS, vflags=VERIFY_FLAGS)
def test_fuzz_verify(model: tuple[str, bytes], flags: list, vflags: list) -> None:
    with workdir() as tmp:
        (tmp / model[0]).write_bytes(model[1])
        (tmp / "s.npz").write_bytes(_batch_bytes({"activation/fc2": np.zeros((1, 2))}))
        check(tmp, ["verify", model[0], *flat(flags), *flat(vflags)])


@pytest.mark.slow
@FUZZ
@given(model=model_file(), batch=batch_file(), flags=RUN_FLAGS, command=st.sampled_from(["verify", "simulate"]))
def test_fuzz_batch_files(model: tuple[str, bytes], batch: bytes, flags: list, command: str) -> None:
    with workdir() as tmp:
        (tmp / model[0]).write_bytes(model[1])
        (tmp / "b.npz").write_bytes(batch)
        flags = [f for f in flags if f[0] != "--random-batch"]
        extra = ["-o", "out"] if command == "simulate" else []
        check(tmp, [command, model[0], "--batch", "b.npz", *flat(flags), *extra])


@pytest.mark.slow
@FUZZ
@given(model=model_file(), flags=COMPILE_FLAGS, batch=st.one_of(st.none(), batch_file()))
def test_fuzz_compile(model: tuple[str, bytes], flags: list, batch: bytes | None) -> None:
    with workdir() as tmp:
        (tmp / model[0]).write_bytes(model[1])
        extra = []
        if batch is not None:
            (tmp / "b.npz").write_bytes(batch)
            extra = ["--batch", "b.npz"]
        check(tmp, ["compile", model[0], *flat(flags), *extra, "-o", "out"])
