"""Structured terms at scale: convolutions run as convolutions and pooling / batch norm
as sparse matrices in the simulator, the readout and the oracle, never as dense
matrices; checked against the layouts' own entries and torch autograd."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import require_torch, torch_gradients, torch_onnx_bytes
from hwbp.importers.onnx import load_onnx_bytes
from hwbp.ir import Activation, AvgPool, BatchNorm, Conv, Dense, Graph, Input
from hwbp.lower import lower
from hwbp.lower.operators import ConvOperator
from hwbp.lower.structured import avgpool_layout, batchnorm_layout, conv_layout
from hwbp.lower.system import term_matrix
from hwbp.types import Batch
from hwbp.verify.compare import Tolerances
from hwbp.verify.run import verify

TOL = 1e-12

GEOMETRIES = [  # in_shape, weight shape, strides, pads, dilations, groups
    ((2, 6, 5), (4, 2, 3, 3), (2, 1), (1, 2, 1, 2), (1, 1), 1),
    ((4, 7, 7), (6, 2, 3, 3), (1, 1), (1, 1, 1, 1), (2, 2), 2),
    ((3, 10), (5, 3, 4), (2,), (2, 2), (1,), 1),
    ((2, 5, 6), (2, 1, 2, 3), (1, 2), (0, 1, 2, 0), (2, 1), 2),
]


def _dense(lay, theta):
    """The matrix from the layout's entries, summed entry by entry (no operator code)."""
    w = np.zeros(lay.shape)
    vals = lay.scale * np.where(lay.index >= 0, np.asarray(theta).reshape(-1)[lay.index], 1.0)
    np.add.at(w, (lay.rows, lay.cols), vals)
    return w


@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
def test_conv_operator_matches_the_layout_entries(geo: int) -> None:
    ins, ws, st, pd, dl, g = GEOMETRIES[geo]
    rng = np.random.default_rng(geo)
    conv = Conv("c", source="x", in_shape=ins, weight=rng.standard_normal(ws), strides=st, pads=pd, dilations=dl,
                groups=g)
    lay = conv_layout(conv)
    op = lay.operator(conv.weight)
    assert isinstance(op, ConvOperator) and op.shape == lay.shape and op.nnz == lay.rows.size
    dense = _dense(lay, conv.weight)
    u, e = rng.standard_normal((5, lay.shape[1])), rng.standard_normal((5, lay.shape[0]))
    np.testing.assert_allclose(u @ op.T, u @ dense.T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(e @ op, e @ dense, rtol=1e-13, atol=1e-13)
    outer = e.T @ u
    want = np.bincount(lay.index, weights=outer[lay.rows, lay.cols], minlength=conv.weight.size)
    np.testing.assert_allclose(lay.weight_gradient(e, u, conv.weight.size), want, rtol=1e-13, atol=1e-13)
    # negative control: a different kernel is a different operator
    assert not np.allclose(u @ lay.operator(conv.weight + 0.1).T, u @ dense.T)


def test_pooling_and_batchnorm_are_sparse_matrices() -> None:
    rng = np.random.default_rng(3)
    pool = AvgPool("p", source="x", in_shape=(3, 5, 6), kernel=(3, 2), strides=(2, 2), pads=(1, 0, 1, 1),
                   count_include_pad=False)
    bn = BatchNorm("b", source="x", in_shape=(3, 4), weight=rng.uniform(0.5, 1.5, 3), bias=rng.standard_normal(3),
                   mean=rng.standard_normal(3), var=rng.uniform(0.5, 2, 3), epsilon=1e-3)
    for lay, theta in ((avgpool_layout(pool), None), (batchnorm_layout(bn), bn.weight)):
        op = lay.operator(theta)
        assert sp.issparse(op) and op.nnz == lay.rows.size
        dense = _dense(lay, theta if theta is not None else np.zeros(1))
        u, e = rng.standard_normal((4, lay.shape[1])), rng.standard_normal((4, lay.shape[0]))
        np.testing.assert_allclose(u @ op.T, u @ dense.T, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(e @ op, e @ dense, rtol=1e-14, atol=1e-14)
    lay = batchnorm_layout(bn)
    u, e = rng.standard_normal((4, 12)), rng.standard_normal((4, 12))
    want = np.bincount(lay.index, weights=lay.scale * (e.T @ u)[lay.rows, lay.cols], minlength=3)
    np.testing.assert_allclose(lay.weight_gradient(e, u, 3), want, rtol=1e-14, atol=1e-14)


def _cnn_graph(channels: int, rng: np.random.Generator) -> Graph:
    """3x32x32 -> conv(channels, 3x3, pad 1) -> relu -> conv -> relu -> avgpool 2 -> dense 10."""
    c1 = Conv("c1", source="x", in_shape=(3, 32, 32), weight=rng.standard_normal((channels, 3, 3, 3)) * 0.2,
              bias=rng.standard_normal(channels) * 0.1, strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1))
    c2 = Conv("c2", source="a1", in_shape=c1.out_shape, weight=rng.standard_normal((channels, channels, 3, 3)) * 0.05,
              bias=rng.standard_normal(channels) * 0.1, strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1))
    pool = AvgPool("p", source="a2", in_shape=c2.out_shape, kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))
    fc = Dense("fc", source="p", weight=rng.standard_normal((10, channels * 256)) * 0.02, bias=np.zeros(10))
    nodes = (Input("x", 3 * 32 * 32), c1, Activation("a1", source="c1", function="relu"), c2,
             Activation("a2", source="c2", function="relu"), pool, fc)
    return Graph(nodes, "fc", "cnn").with_loss("mse")


def test_cifar_sized_cnn_operators_hold_the_kernel_not_the_matrix() -> None:
    """3x32x32 -> 64 -> 64 channels: the convolution matrices have 1.8 M and 37.7 M
    structural non-zeros (a dense second layer would be 32 GiB); the operators hold
    the kernels only, and no entry array is ever built for them."""
    system = lower(_cnn_graph(64, np.random.default_rng(0)))
    seen = {}
    for pop in system.populations:
        for t in pop.terms:
            if t.layout is None:
                continue
            w, _ = term_matrix(system.parameters, t)
            seen[t.weight or "pool"] = w
            if t.weight is not None:  # a convolution
                assert isinstance(w, ConvOperator)
                assert w.nbytes <= 3 * system.parameters[t.weight].nbytes
            else:
                assert sp.issparse(w) and w.nnz == 64 * 16 * 16 * 4
            assert t.layout.conv is None or t.layout._entries is None
    assert seen["c1.weight"].nnz == 64 * 3 * 30 ** 2 * 9 + 64 * 3 * 2 * 30 * 6 * 2 + 64 * 3 * 4 * 4
    assert seen["c2.weight"].nnz == 64 * 64 * (30 ** 2 * 9 + 2 * 30 * 6 * 2 + 4 * 4)
    assert seen["c2.weight"].shape == (65536, 65536)


def test_cnn_verifies_in_bounded_memory() -> None:
    """3x32x32 -> 16 -> 16 channels, batch 2: a dense second layer would be 2 GiB; the
    whole steady verify (simulation, readout, oracle) allocates under 64 MiB."""
    rng = np.random.default_rng(1)
    g = _cnn_graph(16, rng)
    batch = Batch({"x": rng.standard_normal((2, 3072))}, rng.standard_normal((2, 10)))
    tracemalloc.start()
    try:
        v = verify(g, batch, backend="reference", options={"mode": "steady"},
                   tolerances=Tolerances(max_rel_err=TOL, min_cosine=1 - TOL))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert v.passed, v.comparison.max_rel_err
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_torch_exported_cnn_gradients_match_autograd() -> None:
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(4)
    shape = (3, 10, 10)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 25, 4))

        def forward(self, x):
            return self.body(x.reshape((-1,) + shape))

    model = Net().double().eval()
    g = load_onnx_bytes(torch_onnx_bytes(model, 300), source="cnn.onnx").with_loss("mse")
    rng = np.random.default_rng(2)
    batch = Batch({g.inputs[0].name: rng.standard_normal((4, 300))}, rng.standard_normal((4, 4)))
    ref = torch_gradients(model, batch.x[g.inputs[0].name], batch.y)
    for mode in ("steady", "unit-step"):
        v = verify(g, batch, backend="reference", options={"mode": mode},
                   tolerances=Tolerances(max_rel_err=TOL, min_cosine=1 - TOL))
        assert v.passed, (mode, v.comparison.max_rel_err)
        assert sorted(v.physical.parameters) == sorted(ref)
        for k, want in ref.items():
            rel = np.linalg.norm(v.physical.parameters[k] - want) / np.linalg.norm(want)
            assert rel <= TOL, (mode, k, rel)
