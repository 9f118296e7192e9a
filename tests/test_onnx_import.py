"""ONNX import: the shipped digits example, PyTorch exports, bad input, native round trip."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwbp.errors import HwbpError, ModelError, ModelFormatError, ShapeError, UnsupportedOpError
from hwbp.importers import SUPPORTED_OPS, load_onnx, load_onnx_bytes
from hwbp.ir import Activation, Add, Dense, graph_from_bytes, graph_to_bytes
from hwbp.oracle import forward

from conftest import require_torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_ONNX = EXAMPLES / "mlp_digits.onnx"
EXAMPLE_BATCH = EXAMPLES / "digits_batch.npz"


@pytest.fixture(scope="module")
def example_bytes() -> bytes:
    return EXAMPLE_ONNX.read_bytes()


@pytest.fixture(scope="module")
def digits_batch() -> dict[str, np.ndarray]:
    with np.load(EXAMPLE_BATCH, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def run(graph, x: np.ndarray) -> np.ndarray:
    return forward(graph, {graph.inputs[0].name: x})[graph.output]


def assert_one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


# ------------------------------------------------------------ the shipped example
def test_example_imports_with_torch_layout(example_bytes: bytes) -> None:
    g = load_onnx(EXAMPLE_ONNX)
    assert g.name == "main_graph"
    assert [type(n).__name__ for n in g.nodes] == ["Input", "Dense", "Activation", "Dense", "Activation", "Dense"]
    assert g.inputs[0].name == "x" and g.inputs[0].size == 64
    assert sorted(g.parameters()) == sorted(f"fc{i}.{k}" for i in (1, 2, 3) for k in ("weight", "bias"))
    assert g.output == "fc3" and g.size("fc3") == 10
    assert load_onnx_bytes(example_bytes, name="digits").name == "digits"


def test_example_matches_numpy_evaluation(example_bytes: bytes, digits_batch: dict[str, np.ndarray]) -> None:
    g = load_onnx_bytes(example_bytes, source=str(EXAMPLE_ONNX))
    model = onnx.load_from_string(example_bytes)
    p = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert all(a.dtype == np.float32 for a in p.values())
    w = {k: v.astype(np.float64) for k, v in p.items()}
    x = digits_batch["x"]
    assert x.shape == (32, 64) and x.dtype == np.float64
    assert digits_batch["y"].shape == (32, 10) and np.all(digits_batch["y"].sum(axis=1) == 1)
    h = np.tanh(x @ w["fc1.weight"].T + w["fc1.bias"])
    h = np.tanh(h @ w["fc2.weight"].T + w["fc2.bias"])
    ref = h @ w["fc3.weight"].T + w["fc3.bias"]
    got = run(g, x)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    # The trained network classifies the shipped batch well.
    assert np.mean(got.argmax(axis=1) == digits_batch["y"].argmax(axis=1)) >= 0.9


def test_example_matches_onnx_reference_evaluator(example_bytes: bytes, digits_batch: dict[str, np.ndarray]) -> None:
    import onnx.reference as reference
    x = digits_batch["x"]
    (ref,) = reference.ReferenceEvaluator(onnx.load_from_string(example_bytes)).run(None, {"x": x.astype(np.float32)})
    np.testing.assert_allclose(run(load_onnx_bytes(example_bytes), x), ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ native round trip
def test_native_round_trip_is_exact(example_bytes: bytes, digits_batch: dict[str, np.ndarray]) -> None:
    g = load_onnx_bytes(example_bytes)
    blob = graph_to_bytes(g)
    g2 = graph_from_bytes(blob)
    assert [n.name for n in g2.nodes] == [n.name for n in g.nodes]
    x = digits_batch["x"]
    assert np.array_equal(run(g2, x), run(g, x))
    assert graph_to_bytes(g2) == blob


# -------------------------------------------------------------------- torch exports
def torch_onnx(model, n: int) -> bytes:
    torch = require_torch()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy (TorchScript) exporter
        torch.onnx.export(model, (torch.zeros(1, n, dtype=torch.float64),), buf, dynamo=False,
                          input_names=["x"], output_names=["y"])
    return buf.getvalue()


def check_against_torch(model, n: int) -> object:
    """Export ``model`` (float64), import it, and compare outputs with torch's on random inputs."""
    torch = require_torch()
    model = model.double().eval()
    data = torch_onnx(model, n)
    assert onnx.load_from_string(data).graph.initializer[0].data_type == TensorProto.DOUBLE
    g = load_onnx_bytes(data, source="torch.onnx")
    x = np.random.default_rng(1).standard_normal((7, n)) * 2.0
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(g, x), ref, rtol=1e-10, atol=1e-10)
    return g


@pytest.mark.parametrize("act", ["ReLU", "Tanh", "Sigmoid", "LeakyReLU", "Softplus"])
def test_torch_sequential_mlp(act: str) -> None:
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(0)

    def make() -> object:
        return nn.LeakyReLU(0.2) if act == "LeakyReLU" else getattr(nn, act)()

    model = nn.Sequential(nn.Linear(5, 8), make(), nn.Linear(8, 6), make(), nn.Linear(6, 3))
    g = check_against_torch(model, 5)
    acts = [n for n in g.nodes if isinstance(n, Activation)]
    expected = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "LeakyReLU": "leaky_relu",
                "Softplus": "softplus"}[act]
    assert len(acts) == 2 and all(a.function == expected for a in acts)
    if act == "LeakyReLU":
        assert all(a.alpha == 0.2 for a in acts)
    assert sorted(g.parameters())[:2] == ["0.bias", "0.weight"]


def test_torch_residual_mlp() -> None:
    torch = require_torch()
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.fc = nn.Linear(width, width)

        def forward(self, x):
            return x + torch.tanh(self.fc(x))

    class ResMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Linear(4, 6)
            self.blocks = nn.Sequential(Block(6), Block(6))
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(self.blocks(torch.tanh(self.stem(x))))

    torch.manual_seed(1)
    g = check_against_torch(ResMLP(), 4)
    adds = [n for n in g.nodes if isinstance(n, Add)]
    assert len(adds) == 2
    assert {"blocks.0.fc.weight", "blocks.1.fc.bias", "head.weight"} <= set(g.parameters())


def test_torch_flatten_and_linear_without_bias() -> None:
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(2)
    g = check_against_torch(nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)), 6)
    assert sum(isinstance(n, Dense) for n in g.nodes) == 2
    g = check_against_torch(nn.Sequential(nn.Linear(6, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False)), 6)
    dense = [n for n in g.nodes if isinstance(n, Dense)]
    assert len(dense) == 2 and all(not d.bias.any() for d in dense)


def test_torch_matmul_plus_bias_parameter() -> None:
    torch = require_torch()
    nn = torch.nn

    class Affine(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(5, 7))
            self.b1 = nn.Parameter(torch.randn(7))
            self.w2 = nn.Parameter(torch.randn(7, 3))
            self.b2 = nn.Parameter(torch.randn(3))

        def forward(self, x):
            return torch.sigmoid(x @ self.w1 + self.b1) @ self.w2 + self.b2

    torch.manual_seed(3)
    model = Affine()
    g = check_against_torch(model, 5)
    dense = [n for n in g.nodes if isinstance(n, Dense)]
    assert len(dense) == 2 and not any(isinstance(n, Add) for n in g.nodes)  # MatMul+Add fused
    np.testing.assert_array_equal(dense[0].weight, model.w1.detach().numpy().T)
    np.testing.assert_array_equal(dense[0].bias, model.b1.detach().numpy())


# ------------------------------------------------------------- hand-built ONNX models
def make_model(nodes, inits, inputs=None, outputs=None, name: str = "hand") -> bytes:
    inputs = inputs if inputs is not None else [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]
    outputs = outputs if outputs is not None else [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def init(name: str, arr) -> TensorProto:
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name=name)


W = np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0


def test_constant_node_weights_gemm_transb0_alpha_beta_and_unnamed_nodes() -> None:
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(W.T.copy())),
        helper.make_node("Constant", [], ["b"], value_floats=[1.0, 2.0, 3.0]),
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], alpha=2.0, beta=0.5),
        helper.make_node("Identity", ["h"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["r"]),
        helper.make_node("Relu", ["r"], ["loss"]),
        helper.make_node("Add", ["r", "loss"], ["y"]),
    ]
    g = load_onnx_bytes(make_model(nodes, []))
    names = [n.name for n in g.nodes]
    assert len(set(names)) == len(names) and all(names) and "loss" not in names
    g.with_loss("mse")  # the reserved name stays free
    x = np.random.default_rng(0).standard_normal((5, 4))
    r = np.maximum(2.0 * x @ W.T.astype(np.float64) + 0.5 * np.array([1.0, 2.0, 3.0]), 0)
    np.testing.assert_allclose(run(g, x), 2 * r, rtol=1e-12)


def test_gemm_without_bias_and_one_dim_input() -> None:
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="g")]
    g = load_onnx_bytes(make_model(nodes, [init("w", W)]))
    assert not g.node("g").bias.any()
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    one_d = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])]
    g = load_onnx_bytes(make_model(nodes, [init("w", W.T)], inputs=one_d))
    assert g.inputs[0].size == 4 and g.size(g.output) == 3


def test_initializer_listed_as_graph_input_is_not_dynamic() -> None:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
              helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 4])]
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)]
    g = load_onnx_bytes(make_model(nodes, [init("w", W)], inputs=inputs))
    assert [n.name for n in g.inputs] == ["x"]


def test_load_onnx_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(make_model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], [init("w", W)]))
    assert load_onnx(path).size(load_onnx(path).output) == 3
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ModelFormatError) as err:
        load_onnx(path)
    assert_one_line(err, str(path))


# ---------------------------------------------------------------------- bad input
def test_truncated_example_is_a_format_error(example_bytes: bytes) -> None:
    with pytest.raises(ModelFormatError) as err:
        load_onnx_bytes(example_bytes[: len(example_bytes) // 2], source="half.onnx")
    assert_one_line(err, "half.onnx")


@pytest.mark.parametrize("seed", range(5))
def test_garbage_bytes_are_a_format_error(seed: int) -> None:
    data = np.random.default_rng(seed).bytes(2000)
    with pytest.raises(ModelFormatError) as err:
        load_onnx_bytes(data, source="junk.bin")
    assert_one_line(err, "junk.bin")


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04", b"hello world\n"])
def test_other_non_onnx_bytes_are_a_format_error(data: bytes) -> None:
    with pytest.raises(ModelFormatError) as err:
        load_onnx_bytes(data, source="other")
    assert_one_line(err, "other")


def test_unsupported_op_names_op_and_node() -> None:
    nodes = [
        helper.make_node("MaxPool", ["x"], ["c"], name="/pool/MaxPool", kernel_shape=[2, 2]),
        helper.make_node("Relu", ["c"], ["y"], name="/relu/Relu"),
    ]
    data = make_model(nodes, [], inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])])
    with pytest.raises(UnsupportedOpError) as err:
        load_onnx_bytes(data, source="model.onnx")
    assert_one_line(err, "model.onnx", "'MaxPool'", "'/pool/MaxPool'", "supported: " + ", ".join(SUPPORTED_OPS))


def test_nan_weight_is_a_model_error(example_bytes: bytes) -> None:
    model = onnx.load_from_string(example_bytes)
    for t in model.graph.initializer:
        if t.name == "fc2.weight":
            arr = numpy_helper.to_array(t).copy()
            arr[3, 5] = np.nan
            t.CopyFrom(numpy_helper.from_array(arr, name=t.name))
    with pytest.raises(ModelError) as err:
        load_onnx_bytes(model.SerializeToString(), source="nan.onnx")
    assert_one_line(err, "nan.onnx", "fc2", "non-finite")


def test_mismatched_gemm_weight_shape_is_a_shape_error(example_bytes: bytes) -> None:
    model = onnx.load_from_string(example_bytes)
    for t in model.graph.initializer:
        if t.name == "fc2.weight":
            t.CopyFrom(init(t.name, np.zeros((32, 31))))
    with pytest.raises(ShapeError) as err:
        load_onnx_bytes(model.SerializeToString(), source="bad.onnx")
    assert_one_line(err, "bad.onnx", "/fc2/Gemm")


def bad_models() -> list[tuple[str, bytes, type[HwbpError], str]]:
    x3 = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4])]
    two_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                  helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])]
    ext = init("w", W)
    ext.data_location = TensorProto.EXTERNAL
    ext.ClearField("raw_data")
    ext.external_data.add(key="location", value="../../etc/passwd")
    gemm_w = [init("w", W)]
    return [
        ("transA", make_model([helper.make_node("Gemm", ["x", "w"], ["y"], transA=1, name="gA")], gemm_w),
         UnsupportedOpError, "'gA'"),
        ("dynamic weight", make_model([helper.make_node("Relu", ["x"], ["r"]),
                                       helper.make_node("Gemm", ["x", "r"], ["y"], name="gd")], []),
         UnsupportedOpError, "'gd'"),
        ("flatten 3-D at axis 2", make_model([helper.make_node("Flatten", ["x"], ["f"], name="fl", axis=2),
                                    helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)], [init("w", np.ones((3, 8)))],
                                   inputs=x3), UnsupportedOpError, "'fl'"),
        ("flatten axis 0", make_model([helper.make_node("Flatten", ["x"], ["f"], axis=0, name="fl0"),
                                       helper.make_node("Relu", ["f"], ["y"])], []), UnsupportedOpError, "'fl0'"),
        ("bias shape", make_model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="gb")],
                                  gemm_w + [init("b", np.ones(4))]), ShapeError, "'gb'"),
        ("add broadcast", make_model([helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
                                      helper.make_node("Add", ["x", "h"], ["y"], name="addb")], gemm_w),
         ShapeError, "'addb'"),
        ("add constant", make_model([helper.make_node("Relu", ["x"], ["r"]),
                                     helper.make_node("Add", ["r", "c"], ["y"], name="addc")], [init("c", np.ones(4))]),
         UnsupportedOpError, "'addc'"),
        ("unknown attribute", make_model([helper.make_node("Relu", ["x"], ["y"], name="rl", foo=1)], []),
         UnsupportedOpError, "'foo'"),
        ("foreign domain", make_model([helper.make_node("FusedGemm", ["x", "w"], ["y"], name="fg",
                                                        domain="com.microsoft")], gemm_w),
         UnsupportedOpError, "'fg'"),
        ("two inputs", make_model([helper.make_node("Add", ["x", "z"], ["y"])], [], inputs=two_inputs),
         ModelError, "exactly one"),
        ("symbolic width", make_model([helper.make_node("Relu", ["x"], ["y"])], [],
                                      inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "M"])]),
         ModelError, "'x'"),
        ("unknown tensor", make_model([helper.make_node("Relu", ["nowhere"], ["y"], name="r0")], []),
         ModelError, "'r0'"),
        ("output is input", make_model([helper.make_node("Identity", ["x"], ["y"])], []),
         ModelError, "hand.onnx"),
        ("external data", make_model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], [ext]),
         ModelFormatError, "external"),
    ]


@pytest.mark.parametrize("label,data,cls,needle", bad_models(), ids=[b[0] for b in bad_models()])
def test_bad_models(label: str, data: bytes, cls: type[HwbpError], needle: str) -> None:
    with pytest.raises(cls) as err:
        load_onnx_bytes(data, source="hand.onnx")
    assert_one_line(err, "hand.onnx", needle)


def test_torch_float32_export() -> None:
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy (TorchScript) exporter
        torch.onnx.export(model, (torch.zeros(1, 5),), buf, dynamo=False, input_names=["x"], output_names=["y"])
    g = load_onnx_bytes(buf.getvalue())
    x = np.random.default_rng(4).standard_normal((6, 5))
    with torch.no_grad():
        ref = model(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(run(g, x), ref, rtol=1e-5, atol=1e-5)
