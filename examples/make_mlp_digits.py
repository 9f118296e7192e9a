"""Train a small MLP on scikit-learn's digits and export it as ONNX.

Writes, into ``--out-dir`` (default: this script's directory):

* ``mlp_digits.onnx``: a 64-32-32-10 tanh MLP (linear output layer, logits), laid
  out as PyTorch's exporter writes an ``nn.Module`` with ``fc1``/``fc2``/``fc3``
  ``nn.Linear`` layers (Gemm with ``transB=1``, weights ``fc1.weight`` ...), opset 17,
  float32 tensors, input ``x`` of shape ``[batch, 64]``, output ``logits``;
* ``digits_batch.npz``: ``x``, the first 32 test samples (float64, ``(32, 64)``), and
  ``y``, their one-hot labels (float64, ``(32, 10)``).

Everything is deterministic (fixed seeds, fixed split, full-batch Adam for a fixed
number of epochs, no timestamps), so rerunning the script on the same machine gives
byte-identical files.  The gradients come from :func:`hwbp.oracle.exact_gradients`
with the softmax cross-entropy loss.

Usage::

    python examples/make_mlp_digits.py [--out-dir DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

try:
    import hwbp  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import onnx
from onnx import TensorProto, helper, numpy_helper

from hwbp.importers import load_onnx_bytes
from hwbp.io import atomic_write_bytes
from hwbp.ir import Graph
from hwbp.models import random_mlp
from hwbp.oracle import exact_gradients, forward
from hwbp.train import load_digits_split
from hwbp.types import Batch

SIZES = (64, 32, 32, 10)
SEED = 0
EPOCHS = 400
LEARNING_RATE = 0.01
N_BATCH_SAMPLES = 32



def one_hot(labels: np.ndarray, n: int = SIZES[-1]) -> np.ndarray:
    """``(batch, n)`` float64 one-hot rows of integer ``labels``."""
    return np.eye(n)[labels]


def train(x: np.ndarray, labels: np.ndarray, epochs: int) -> Graph:
    """Full-batch Adam on the mean softmax cross-entropy; returns the trained graph."""
    graph = random_mlp(SIZES, activation="tanh", output_activation="identity", seed=SEED, name="mlp_digits")
    graph = graph.with_loss("ce")
    batch = Batch({"x": x}, one_hot(labels))
    params = {k: v.copy() for k, v in graph.parameters().items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        grads = exact_gradients(graph, batch).parameters
        for k in params:
            g = grads[k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            m_hat = m[k] / (1 - beta1**step)
            v_hat = v[k] / (1 - beta2**step)
            params[k] = params[k] - LEARNING_RATE * m_hat / (np.sqrt(v_hat) + eps)
        graph = graph.with_parameters(params)
    return graph


def to_onnx(graph: Graph) -> bytes:
    """The trained MLP as ONNX bytes, in the layout of PyTorch's TorchScript exporter."""
    params = graph.parameters()
    n_layers = len(SIZES) - 1
    initializers, nodes = [], []
    src = "x"
    for i in range(1, n_layers + 1):
        for kind in ("weight", "bias"):
            key = f"fc{i}.{kind}"
            initializers.append(numpy_helper.from_array(params[key].astype(np.float32), name=key))
        out = "logits" if i == n_layers else f"/fc{i}/Gemm_output_0"
        nodes.append(helper.make_node(
            "Gemm", [src, f"fc{i}.weight", f"fc{i}.bias"], [out], name=f"/fc{i}/Gemm",
            alpha=1.0, beta=1.0, transB=1,
        ))
        src = out
        if i < n_layers:
            act = f"/act{i}/Tanh_output_0"
            nodes.append(helper.make_node("Tanh", [src], [act], name=f"/act{i}/Tanh"))
            src = act
    g = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SIZES[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", SIZES[-1]])],
        initializer=initializers,
    )
    model = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17)], producer_name="hwbp-examples", ir_version=8
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (as :func:`numpy.savez` writes) with fixed member timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    return buf.getvalue()



def accuracy(graph: Graph, x: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose largest logit is the true class."""
    logits = forward(graph, {graph.inputs[0].name: x})[graph.output]
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent,
                        help="directory for mlp_digits.onnx and digits_batch.npz (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="full-batch Adam steps (default: %(default)s)")
    args = parser.parse_args(argv)

    x_tr, x_te, y_tr, y_te = load_digits_split()  # hwbp's digits split (80/20, stratified, seed 0)
    trained = train(x_tr, y_tr, args.epochs)
    onnx_bytes = to_onnx(trained)
    exported = load_onnx_bytes(onnx_bytes, source="mlp_digits.onnx")  # float32 weights, as shipped
    print(f"train accuracy: {accuracy(exported, x_tr, y_tr):.4f} ({len(y_tr)} samples)")
    print(f"test accuracy:  {accuracy(exported, x_te, y_te):.4f} ({len(y_te)} samples)")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out_dir / "mlp_digits.onnx", onnx_bytes)
    batch = {"x": x_te[:N_BATCH_SAMPLES], "y": one_hot(y_te[:N_BATCH_SAMPLES])}
    atomic_write_bytes(args.out_dir / "digits_batch.npz", npz_bytes(batch))
    print(f"wrote {args.out_dir / 'mlp_digits.onnx'} and {args.out_dir / 'digits_batch.npz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
