"""Train a small convolutional network on scikit-learn's digits with PyTorch and export it.

Writes ``cnn_digits.onnx`` into ``--out-dir`` (default: this script's directory): the
network ::

    x [batch, 64] -> reshape [batch, 1, 8, 8] -> Conv2d(1 -> 4, 3x3, padding 1) -> ReLU
      -> AvgPool2d(2) -> flatten [batch, 64] -> Linear(64 -> 10) (logits)

exported by ``torch.onnx.export(..., dynamo=False)`` (float32 weights, opset 17, input
``x`` of shape ``[batch, 64]``, output ``logits``), so it reads ``examples/digits_batch.npz``
like the MLP example.  Training: full-batch Adam on the softmax cross-entropy for a
fixed number of steps, seeded, on one thread, so reruns on one machine give the same
file.  Needs torch (``pip install -e .[torch]``).

Usage::

    python examples/make_cnn_digits.py [--out-dir DIR] [--steps N]
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

import numpy as np

try:
    import hwbp  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


SEED = 0
STEPS = 300
LEARNING_RATE = 0.02



def make_model():
    """The (untrained) PyTorch module, seeded."""
    import torch
    from torch import nn

    class CNN(nn.Module):
        """Conv(1 -> 4, 3x3, pad 1) -> ReLU -> AvgPool(2) -> Linear(64 -> 10) on 8x8 digits."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.act = nn.ReLU()
            self.pool = nn.AvgPool2d(2)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(self.flatten(self.pool(self.act(self.conv(x.reshape(-1, 1, 8, 8))))))

    torch.manual_seed(SEED)
    return CNN()


def train(model, x: np.ndarray, labels: np.ndarray, steps: int):
    """Full-batch Adam on the mean softmax cross-entropy."""
    import torch

    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(labels)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return model.eval()


def to_onnx(model) -> bytes:
    """The module as ONNX bytes (TorchScript exporter, float32, opset 17)."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 64),), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    return buf.getvalue()



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent,
                        help="directory for cnn_digits.onnx (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=STEPS, help="full-batch Adam steps (default: %(default)s)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from hwbp.importers import load_onnx_bytes
    from hwbp.io import atomic_write_bytes
    from hwbp.train import load_digits_split
    from hwbp.train.loop import accuracy

    x_tr, x_te, y_tr, y_te = load_digits_split()  # hwbp's digits split (80/20, stratified, seed 0)
    model = train(make_model(), x_tr, y_tr, args.steps)
    data = to_onnx(model)
    graph = load_onnx_bytes(data, source="cnn_digits.onnx")
    print(f"train accuracy: {accuracy(graph, x_tr, y_tr):.4f} ({len(y_tr)} samples)")
    print(f"test accuracy:  {accuracy(graph, x_te, y_te):.4f} ({len(y_te)} samples)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out_dir / "cnn_digits.onnx", data)
    print(f"wrote {args.out_dir / 'cnn_digits.onnx'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
