"""On-chip learning in Lava against host-side updates and backprop: digits MLP
(examples/mlp_digits.onnx re-initialized with --seed), 3 epochs, mini-batch 32, plain
SGD with the same learning rate, the same seed and the same sample order.

Runs (test accuracy after each epoch):

* ``backprop``: host SGD with exact gradients (the oracle);
* ``lava float, host updates``: host SGD with the gradients the float Lava processes
  produce (one Lava run per mini-batch);
* ``lava float, on-chip``: the float processes update their own weights;
* ``lava fixed 8-bit, on-chip``: the fixed-point processes, 8-bit weights, stochastic
  rounding of the updates.

On-chip runs drop the last incomplete mini-batch of each epoch (44 of 45 batches).
Writes ``sims/lava_onchip.md``.

Usage::

    .venv/bin/python sims/lava_onchip.py [--epochs 3] [--lr 0.1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outdir import add_out_arg, output_dir  # noqa: E402
from hwbp.io import load_model  # noqa: E402
from hwbp.models import random_init  # noqa: E402
from hwbp.train import TrainConfig, get_source, load_digits_split, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    add_out_arg(ap)
    args = ap.parse_args()
    out = output_dir(ap, args, ROOT / "sims", "lava_onchip")
    graph = random_init(load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce"), seed=args.seed)
    x_tr, x_te, y_tr, y_te = load_digits_split()
    cfg = TrainConfig(args.epochs, 32, "sgd", args.lr, args.seed)
    runs = [("backprop (host SGD)", "oracle", {}),
            ("lava float, host updates", "lava", {}),
            ("lava float, on-chip", "lava", {"on_chip": True}),
            ("lava fixed 8-bit, on-chip", "lava", {"on_chip": True, "precision": "fixed", "weight_bits": 8})]
    rows = []
    for label, source, opts in runs:
        t0 = time.perf_counter()
        res = train(graph, x_tr, y_tr, get_source(source, options=opts), cfg, x_test=x_te, y_test=y_te,
                    progress=False, desc=label)
        rows.append((label, res.test_accuracy, time.perf_counter() - t0))
        print(f"{label}: {' '.join(f'{a:.4f}' for a in res.test_accuracy)} ({rows[-1][2]:.0f} s)", flush=True)
    head = "| run | " + " | ".join(f"epoch {i + 1}" for i in range(args.epochs)) + " | wall s |"
    lines = [f"# On-chip learning in Lava: digits MLP, {args.epochs} epochs, SGD lr {args.lr}, batch 32, "
             f"seed {args.seed}", "", "Test accuracy (360 samples) after each epoch.", "", head,
             "|" + "---|" * (args.epochs + 2)]
    for label, acc, wall in rows:
        lines.append(f"| {label} | " + " | ".join(f"{a:.4f}" for a in acc) + f" | {wall:.0f} |")
    lines += ["", "Wall times on a shared 2-core machine (guidance only). On-chip runs drop the last incomplete "
              "mini-batch of each epoch.", ""]
    (out / "lava_onchip.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
