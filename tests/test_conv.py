"""Convolutional and normalized networks: Conv (1-D, 2-D, strides, padding, dilation,
groups), average pooling, batch normalization, dropout and the new activations, from
torch export to gradients on the reference and SPICE backends."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import require_torch, torch_gradients, torch_onnx_bytes
from hwbp.cli import main
from hwbp.errors import ShapeError, UnsupportedOpError
from hwbp.exporters.onnx import graph_to_onnx_bytes
from hwbp.importers.onnx import load_onnx, load_onnx_bytes
from hwbp.ir import AvgPool, BatchNorm, Conv, Graph, Input, graph_from_bytes, graph_to_bytes
from hwbp.lower import lower
from hwbp.lower.structured import avgpool_layout, conv_layout
from hwbp.oracle import exact_gradients
from hwbp.oracle.finite_diff import finite_difference_gradients
from hwbp.types import Batch
from hwbp.verify.run import verify

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Reference backend (unit-step, 2L steps) against torch float64 autograd.
REF_TOL = 1e-12
#: SPICE .op against torch float64 autograd (solver tolerance; measured ~1e-13).
OP_TOL = 1e-10


def export(model, n_in: int, *, dynamo: bool = False) -> bytes:
    """ONNX bytes of ``model`` (without constant folding, so batch normalization stays a node)."""
    return torch_onnx_bytes(model, n_in, dynamo=dynamo, constant_folding=False)


def _seq(shape: tuple[int, ...], *layers):
    torch = require_torch()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(*layers)

        def forward(self, x):
            return self.body(x.reshape((-1,) + shape))

    return Net()


def _cases():
    """(id, builder) of torch models exercising every supported op and option."""
    torch = require_torch()
    nn = torch.nn

    def bn(c: int, d: int):
        layer = (nn.BatchNorm1d if d == 1 else nn.BatchNorm2d)(c)
        with torch.no_grad():  # non-trivial running statistics and affine parameters
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.3, 0.3)
        return layer

    return [
        ("conv2d-stride-pad-gelu", lambda: _seq((2, 6, 5), nn.Conv2d(2, 4, 3, stride=(2, 1), padding=(1, 2)),
                                                 nn.GELU(), nn.Flatten(), nn.Linear(4 * 3 * 7, 3))),
        ("conv2d-groups-dilation-bn-silu", lambda: _seq((4, 7, 7), nn.Conv2d(4, 6, 3, groups=2, dilation=2, padding=1),
                                                        bn(6, 2), nn.SiLU(), nn.AvgPool2d(2, stride=1),
                                                        nn.Flatten(), nn.Linear(6 * 4 * 4, 2))),
        ("conv1d-elu-pool-pad", lambda: _seq((3, 10), nn.Conv1d(3, 5, 4, stride=2, padding=2), nn.ELU(0.7),
                                             nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
                                             nn.Flatten(), nn.Dropout(0.3), nn.Linear(5 * 3, 3))),
        ("conv1d-bn-softsign-gap", lambda: _seq((2, 9), nn.Conv1d(2, 4, 3), bn(4, 1), nn.Softsign(),
                                                nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 2))),
        ("conv2d-gelu-tanh-hardtanh-gap", lambda: _seq((1, 6, 6), nn.Conv2d(1, 3, 2), nn.GELU(approximate="tanh"),
                                                       nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Hardtanh(),
                                                       nn.Hardtanh(-0.8, 0.6),
                                                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
                                                       nn.ReLU6())),
        ("mlp-batchnorm1d", lambda: _seq((5,), nn.Linear(5, 6), bn(6, 1), nn.Tanh(), nn.Linear(6, 2))),
    ]


CASE_IDS = ["conv2d-stride-pad-gelu", "conv2d-groups-dilation-bn-silu", "conv1d-elu-pool-pad",
            "conv1d-bn-softsign-gap", "conv2d-gelu-tanh-hardtanh-gap", "mlp-batchnorm1d"]


def _model(case: str):
    torch = require_torch()
    torch.manual_seed(sum(map(ord, case)))
    return dict(_cases())[case]().double().eval()


def _batch(g: Graph, n: int = 3, seed: int = 5) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch({g.inputs[0].name: rng.standard_normal((n, g.inputs[0].size))},
                 rng.standard_normal((n, g.size(g.output))))


def _assert_close(got: dict, want: dict, tol: float) -> None:
    assert sorted(got) == sorted(want)
    for k, w in want.items():
        rel = np.linalg.norm(got[k] - w) / np.linalg.norm(w)
        assert rel <= tol, f"{k}: rel_err {rel:.2e} > {tol:.0e}"


@pytest.mark.parametrize("case", CASE_IDS)
def test_torch_models_match_autograd_on_reference(case: str) -> None:
    model = _model(case)
    n_in = {"conv2d-stride-pad-gelu": 60, "conv2d-groups-dilation-bn-silu": 196, "conv1d-elu-pool-pad": 30,
            "conv1d-bn-softsign-gap": 18, "conv2d-gelu-tanh-hardtanh-gap": 36, "mlp-batchnorm1d": 5}[case]
    g = load_onnx_bytes(export(model, n_in), source=f"{case}.onnx").with_loss("mse")
    batch = _batch(g)
    ref = torch_gradients(model, batch.x[g.inputs[0].name], batch.y)
    _assert_close(exact_gradients(g, batch).parameters, ref, REF_TOL)
    v = verify(g, batch, backend="reference", tolerances=__import__("hwbp.verify.compare", fromlist=["x"])
               .Tolerances(max_rel_err=REF_TOL, min_cosine=1 - REF_TOL))
    assert v.passed, v.comparison.max_rel_err
    _assert_close(dict(v.physical.parameters), ref, REF_TOL)


def test_batchnorm_has_gamma_and_beta_gradients_not_a_folded_weight() -> None:
    model = _model("conv2d-groups-dilation-bn-silu")
    g = load_onnx_bytes(export(model, 196), source="bn.onnx")
    assert any(isinstance(n, BatchNorm) for n in g.nodes)
    assert {"body.1.weight", "body.1.bias"} <= set(g.parameters())
    assert not any("running" in k for k in g.parameters())


def test_conv_gradient_is_the_sum_over_positions() -> None:
    """The kernel is one parameter: its gradient from the layout readout equals the
    sum, over every output position, of that position's local gradient."""
    rng = np.random.default_rng(0)
    conv = Conv("c", source="x", in_shape=(2, 5, 4), weight=rng.standard_normal((3, 2, 2, 3)),
                bias=rng.standard_normal(3), strides=(1, 1), pads=(0, 1, 1, 0), dilations=(1, 1))
    lay = conv_layout(conv)
    u = rng.standard_normal((4, 40))
    e = rng.standard_normal((4, lay.shape[0]))
    outer = e.T @ u
    by_entry = np.zeros(conv.weight.size)
    for m in range(lay.rows.size):  # one use per structural non-zero
        by_entry[lay.index[m]] += outer[lay.rows[m], lay.cols[m]]
    np.testing.assert_allclose(lay.weight_gradient(e, u, conv.weight.size), by_entry, rtol=1e-14, atol=1e-14)
    assert lay.rows.size > conv.weight.size  # many uses per kernel entry
    np.testing.assert_array_equal(lay.matrix(conv.weight) != 0, lay.mask())


def test_oracle_conv_pool_bn_match_finite_differences() -> None:
    rng = np.random.default_rng(1)
    conv = Conv("c", source="x", in_shape=(2, 4, 4), weight=rng.standard_normal((4, 1, 2, 2)),
                bias=rng.standard_normal(4), strides=(2, 1), pads=(1, 0, 0, 1), dilations=(1, 1), groups=2)
    bn = BatchNorm("bn", source="c", in_shape=conv.out_shape, weight=rng.uniform(0.5, 1.5, 4),
                   bias=rng.standard_normal(4), mean=rng.standard_normal(4), var=rng.uniform(0.5, 2, 4))
    pool = AvgPool("p", source="bn", in_shape=conv.out_shape, kernel=(2, 2), strides=(1, 1), pads=(0, 0, 1, 1),
                   count_include_pad=False)
    g = Graph((Input("x", 32), conv, bn, pool), "p").with_loss("mse")
    batch = _batch(g, n=2)
    exact = exact_gradients(g, batch).parameters
    fd = finite_difference_gradients(g, batch)
    for k in exact:  # central differences of step 1e-6: truncation ~1e-8 relative on these O(1-10) values
        np.testing.assert_allclose(exact[k], fd[k], rtol=1e-7, atol=1e-8, err_msg=k)


def test_pooling_layout_against_oracle_forward() -> None:
    from hwbp.oracle.spatial import avgpool_forward

    rng = np.random.default_rng(2)
    for include in (True, False):
        pool = AvgPool("p", source="x", in_shape=(3, 5, 6), kernel=(3, 2), strides=(2, 2), pads=(1, 0, 1, 1),
                       count_include_pad=include)
        x = rng.standard_normal((2, 90))
        want = avgpool_forward(pool, x.reshape(2, 3, 5, 6)).reshape(2, -1)
        np.testing.assert_allclose(x @ avgpool_layout(pool).matrix(None).T, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("case", ["conv2d-stride-pad-gelu", "conv1d-elu-pool-pad",
                                  pytest.param("conv2d-groups-dilation-bn-silu", marks=pytest.mark.slow),
                                  pytest.param("conv1d-bn-softsign-gap", marks=pytest.mark.slow),
                                  pytest.param("conv2d-gelu-tanh-hardtanh-gap", marks=pytest.mark.slow)])
def test_spice_op_matches_torch(case: str) -> None:
    model = _model(case)
    n_in = {"conv2d-stride-pad-gelu": 60, "conv2d-groups-dilation-bn-silu": 196, "conv1d-elu-pool-pad": 30,
            "conv1d-bn-softsign-gap": 18, "conv2d-gelu-tanh-hardtanh-gap": 36}
    g = load_onnx_bytes(export(model, n_in[case]), source=f"{case}.onnx").with_loss("mse")
    batch = _batch(g, n=2)
    ref = torch_gradients(model, batch.x[g.inputs[0].name], batch.y)
    v = verify(g, batch, backend="spice", options={"analysis": "op"})
    assert v.passed
    _assert_close(dict(v.physical.parameters), ref, OP_TOL)


@pytest.mark.slow
def test_default_torch_export_of_a_cnn_matches_autograd() -> None:
    model = _model("conv2d-stride-pad-gelu")
    g = load_onnx_bytes(export(model, 60, dynamo=True), source="dynamo.onnx").with_loss("mse")
    batch = _batch(g, n=2)
    ref = torch_gradients(model, batch.x[g.inputs[0].name], batch.y)
    _assert_close(exact_gradients(g, batch).parameters, ref, REF_TOL)
    _assert_close(dict(verify(g, batch, backend="reference").physical.parameters), ref, REF_TOL)
    _assert_close(dict(verify(g, batch, backend="spice", options={"analysis": "op"}).physical.parameters), ref, OP_TOL)


def test_cnn_graph_round_trips_native_and_onnx() -> None:
    model = _model("conv1d-elu-pool-pad")
    g = load_onnx_bytes(export(model, 30), source="c.onnx").with_loss("mse")
    batch = _batch(g)
    want = exact_gradients(g, batch).parameters
    native = graph_from_bytes(graph_to_bytes(g))
    back = load_onnx_bytes(graph_to_onnx_bytes(g, dtype="float64")).with_loss("mse")
    b2 = Batch({back.inputs[0].name: batch.x[g.inputs[0].name]}, batch.y)
    for other, bt in ((native, batch), (back, b2)):
        got = exact_gradients(other, bt).parameters
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_maxpool_is_refused_with_op_and_node() -> None:
    torch = require_torch()
    model = _seq((1, 4, 4), torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.MaxPool2d(2), torch.nn.Flatten()).double()
    with pytest.raises(UnsupportedOpError) as err:
        load_onnx_bytes(export(model, 16), source="mp.onnx")
    msg = str(err.value)
    assert "\n" not in msg and "'MaxPool'" in msg and "MaxPool" in msg.split("at node")[1]


def test_bad_conv_geometry_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="conv 'c'"):
        Graph((Input("x", 16), Conv("c", source="x", in_shape=(1, 4, 4), weight=np.ones((2, 1, 5, 5)),
                                    bias=np.zeros(2), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1))), "c")
    with pytest.raises(ShapeError, match="holds 16 values"):
        Graph((Input("x", 15), Conv("c", source="x", in_shape=(1, 4, 4), weight=np.ones((2, 1, 3, 3)),
                                    bias=np.zeros(2), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1))), "c")


@pytest.mark.parametrize("fn", ["relu6", "hardtanh", "clip", "elu", "gelu", "gelu_tanh", "silu", "softsign"])
def test_activation_derivatives_follow_torch_at_kinks(fn: str) -> None:
    torch = require_torch()
    from hwbp.ir.activations import get_activation

    F = torch.nn.functional
    ref = {"relu6": F.relu6, "hardtanh": F.hardtanh, "clip": lambda t: F.hardtanh(t, -0.5, 1.0),
           "elu": lambda t: F.elu(t, 0.7), "gelu": F.gelu,
           "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu, "softsign": F.softsign}[fn]
    a = np.array([-6.0, -1.0, -0.5, 0.0, 0.3, 1.0, 6.0, 7.5])
    t = torch.tensor(a, requires_grad=True)
    ref(t).sum().backward()
    act = get_activation(fn)
    p = (-0.5, 1.0) if fn == "clip" else 0.7
    y = act.f(a, p)
    np.testing.assert_allclose(y, ref(torch.tensor(a)).detach().numpy(), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(act.df(a, y, p), t.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_cnn_digits_example_verifies_on_reference_and_matches_torch(tmp_path: Path) -> None:
    torch = require_torch()
    g = load_onnx(EXAMPLES / "cnn_digits.onnx").with_loss("ce")
    assert [type(n).__name__ for n in g.nodes] == ["Input", "Conv", "Activation", "AvgPool", "Dense", "Loss"]
    data = np.load(EXAMPLES / "digits_batch.npz")
    batch = Batch({g.inputs[0].name: data["x"]}, data["y"])
    # the same network in torch, with the file's weights
    p = {k: torch.tensor(v, requires_grad=True) for k, v in g.parameters().items()}
    x = torch.tensor(data["x"]).reshape(-1, 1, 8, 8)
    h = torch.nn.functional.avg_pool2d(torch.relu(torch.nn.functional.conv2d(x, p["conv.weight"], p["conv.bias"],
                                                                             padding=1)), 2)
    logits = h.flatten(1) @ p["fc.weight"].T + p["fc.bias"]
    (-(torch.tensor(data["y"]) * torch.log_softmax(logits, 1)).sum(1).mean()).backward()
    ref = {k: v.grad.numpy() for k, v in p.items()}
    _assert_close(exact_gradients(g, batch).parameters, ref, REF_TOL)
    assert main(["verify", str(EXAMPLES / "cnn_digits.onnx"), "--batch", str(EXAMPLES / "digits_batch.npz"),
                 "--loss", "ce", "--rtol", "1e-12", "--min-cosine", "0.999999999999"]) == 0
    v = verify(g, batch, backend="reference")
    _assert_close(dict(v.physical.parameters), ref, REF_TOL)


@pytest.mark.slow
def test_cnn_digits_example_verifies_on_spice_op() -> None:
    assert main(["verify", str(EXAMPLES / "cnn_digits.onnx"), "--batch", str(EXAMPLES / "digits_batch.npz"),
                 "--loss", "ce", "--backend", "spice", "--analysis", "op", "--rtol", "1e-10"]) == 0


def test_cnn_digits_netlist_size() -> None:
    """The documented netlist size (docs/models.md): 330 neuron pairs, 2,832 synapses."""
    from hwbp.targets.spice.build import build_circuit

    system = lower(load_onnx(EXAMPLES / "cnn_digits.onnx").with_loss("ce"))
    assert [(p.name, p.size) for p in system.populations] == [("act", 256), ("pool", 64), ("fc", 10)]
    c = build_circuit(system)
    # conv: 4 channels x 484 taps inside the 8x8 input; pool: 256; fc: 640
    assert c.synapse_count == 4 * 484 + 256 + 640


@pytest.mark.parametrize("opset", [17, 20])
def test_exporter_decompositions_of_softsign_and_gelu_are_recognized(opset: int) -> None:
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(4)
    model = _seq((4,), nn.Linear(4, 5), nn.Softsign(), nn.Linear(5, 5), nn.GELU(), nn.Linear(5, 2)).double().eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 4, dtype=torch.float64),), buf, dynamo=False, opset_version=opset)
    g = load_onnx_bytes(buf.getvalue(), source="d.onnx").with_loss("mse")
    assert sorted(n.function for n in g.nodes if type(n).__name__ == "Activation") == ["gelu", "softsign"]
    batch = _batch(g)
    _assert_close(exact_gradients(g, batch).parameters, torch_gradients(model, batch.x[g.inputs[0].name], batch.y),
                  REF_TOL)


@pytest.mark.parametrize("init", [pytest.param("model", marks=pytest.mark.slow), "random"])
def test_cli_trains_the_cnn_and_writes_it_back(tmp_path: Path, init: str) -> None:
    out = tmp_path / "cnn.onnx"
    assert main(["train", str(EXAMPLES / "cnn_digits.onnx"), "--backend", "reference", "--epochs", "1",
                 "--batch-size", "512", "--init", init, "--lr", "0.003", "-o", str(out)]) == 0
    before, after = load_onnx(EXAMPLES / "cnn_digits.onnx"), load_onnx(out)
    assert [type(n).__name__ for n in after.nodes] == [type(n).__name__ for n in before.nodes]
    assert sorted(after.parameters()) == sorted(before.parameters())
    assert not np.allclose(after.parameters()["conv.weight"], before.parameters()["conv.weight"])
    native = load_onnx(out)  # the ONNX file; the .hwbp next to it holds the same graph
    from hwbp.io import load_model

    np.testing.assert_allclose(load_model(out.with_suffix(".hwbp")).parameters()["conv.weight"],
                               native.parameters()["conv.weight"], rtol=1e-6)


def _dropout_model(training: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="/fc/Gemm", transB=1),
             helper.make_node("Dropout", ["h", "ratio", "mode"], ["d"], name="/drop/Dropout", seed=3),
             helper.make_node("Tanh", ["d"], ["y"], name="/act/Tanh")]
    inits = [numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "w"),
             numpy_helper.from_array(np.zeros(3, dtype=np.float32), "b"),
             numpy_helper.from_array(np.array(0.5, dtype=np.float32), "ratio"),
             numpy_helper.from_array(np.array(training), "mode")]
    g = helper.make_graph(nodes, "d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_dropout_is_the_identity_at_inference_and_refused_in_training() -> None:
    g = load_onnx_bytes(_dropout_model(False), source="d.onnx")
    assert [type(n).__name__ for n in g.nodes] == ["Input", "Dense", "Activation"]
    with pytest.raises(UnsupportedOpError, match=r"'/drop/Dropout' \(Dropout\): training_mode"):
        load_onnx_bytes(_dropout_model(True), source="d.onnx")


def test_every_new_node_and_activation_round_trips_through_onnx_export() -> None:
    from hwbp.ir import Activation, Dense
    from hwbp.oracle import forward

    rng = np.random.default_rng(8)
    conv = Conv("conv", source="x", in_shape=(2, 5, 5), weight=rng.standard_normal((4, 1, 3, 2)) * 0.5,
                bias=rng.standard_normal(4), strides=(2, 1), pads=(1, 0, 1, 1), dilations=(1, 2), groups=2)
    shape = conv.out_shape
    n = int(np.prod(shape))
    nodes = [Input("x", 50), conv,
             BatchNorm("bn", source="conv", in_shape=shape, weight=rng.uniform(0.5, 1.5, 4), bias=rng.standard_normal(4),
                       mean=rng.standard_normal(4), var=rng.uniform(0.5, 2, 4), epsilon=1e-3)]
    src = "bn"
    for k, fn in enumerate(["gelu", "gelu_tanh", "silu", "softsign", "hardtanh", "relu6", "elu", "clip"]):
        nodes.append(Activation(f"a{k}", source=src, function=fn, alpha=0.8 if fn != "clip" else -0.3,
                                high=0.9 if fn == "clip" else None))
        src = f"a{k}"
    nodes += [AvgPool("pool", source=src, in_shape=shape, kernel=(2, 2), strides=(1, 1), pads=(0, 0, 0, 0)),
              Dense("fc", source="pool", weight=rng.standard_normal((3, 4 * (shape[1] - 1) * (shape[2] - 1))) * 0.3,
                    bias=rng.standard_normal(3))]
    g = Graph(tuple(nodes), "fc", "all_ops")
    back = load_onnx_bytes(graph_to_onnx_bytes(g, dtype="float64"), source="all.onnx")
    assert sorted(back.parameters()) == sorted(g.parameters())
    x = rng.standard_normal((3, 50)) * 2
    want = forward(g, {"x": x})["fc"]
    got = forward(back, {back.inputs[0].name: x})[back.output]
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)
    assert n == 4 * 3 * 4


def _spatial_model(op: str, attrs: dict, inits: dict, x_shape=(1, 2, 5, 5), extra_inputs=()) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node(op, ["x", *extra_inputs], ["s"], name=f"/bad/{op}", **attrs),
             helper.make_node("Flatten", ["s"], ["y"], name="/flat/Flatten")]
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=tensors)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


_K = {"k": np.ones((4, 2, 3, 3), dtype=np.float32)}


@pytest.mark.parametrize("op,attrs,inits,extra,needle", [
    ("Conv", {"strides": [1]}, _K, ["k"], "strides [1] must be 2 positive"),
    ("Conv", {"strides": [0, 1]}, _K, ["k"], "strides [0, 1]"),
    ("Conv", {"pads": [-1, 0, 0, 0]}, _K, ["k"], "pads [-1, 0, 0, 0]"),
    ("Conv", {"pads": [1, 1]}, _K, ["k"], "pads (1, 1) must have 4 entries"),
    ("Conv", {"group": 3}, _K, ["k"], "group=3"),
    ("Conv", {"dilations": [4, 4]}, _K, ["k"], "window larger"),
    ("Conv", {"auto_pad": "BOGUS"}, _K, ["k"], "auto_pad='BOGUS'"),
    ("Conv", {}, {"k": np.ones((4, 2, 3), dtype=np.float32)}, ["k"], "does not fit a 4-D input"),
    ("AveragePool", {"kernel_shape": [2]}, {}, [], "kernel [2] must be 2 positive"),
    ("AveragePool", {"kernel_shape": [2, 2], "ceil_mode": 1}, {}, [], "ceil_mode=1"),
    ("AveragePool", {"kernel_shape": [9, 9]}, {}, [], "window larger"),
    ("MaxPool", {"kernel_shape": [2, 2]}, {}, [], "unsupported op 'MaxPool'"),
    ("BatchNormalization", {"training_mode": 1}, {k: np.ones(2, dtype=np.float32) for k in "abcd"},
     list("abcd"), "training_mode=0"),
    ("Reshape", {}, {"sh": np.array([2, -1], dtype=np.int64)}, ["sh"], "only reshapes to [batch, ...]"),
    ("Clip", {}, {"lo": np.array(2.0, dtype=np.float32), "hi": np.array(-2.0, dtype=np.float32)}, ["lo", "hi"],
     "min < max, got [2, -2]"),
    ("Gelu", {"approximate": "fast"}, {}, [], "approximate='fast'"),
])
def test_bad_spatial_ops_are_one_line_errors(op, attrs, inits, extra, needle) -> None:
    from hwbp.errors import HwbpError

    with pytest.raises(HwbpError) as err:
        load_onnx_bytes(_spatial_model(op, attrs, inits, extra_inputs=extra), source="bad.onnx")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("bad.onnx") and needle in msg, msg


@pytest.mark.parametrize("include", [True, False])
def test_average_pooling_with_padding_matches_torch(include: bool) -> None:
    torch = require_torch()
    from hwbp.oracle.spatial import avgpool_forward

    rng = np.random.default_rng(3)
    pool = AvgPool("p", source="x", in_shape=(2, 5, 6), kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
                   count_include_pad=include)
    x = rng.standard_normal((2, 2, 5, 6))
    want = torch.nn.functional.avg_pool2d(torch.tensor(x), 3, stride=2, padding=1, count_include_pad=include).numpy()
    np.testing.assert_allclose(avgpool_forward(pool, x), want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(x.reshape(2, -1) @ avgpool_layout(pool).matrix(None).T, want.reshape(2, -1),
                               rtol=1e-14, atol=1e-15)
