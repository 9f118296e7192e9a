"""Study 4: training on digits under conductance mismatch: circuit in the loop on the
mismatched instance against offline training transferred to it.

scikit-learn's 8x8 digits (1437 train / 360 test), MLP 64-32-10 (tanh, cross-entropy),
Adam (lr 0.01), batch 32, 8 epochs, from the same random initialization.  Hardware:
mismatch sigma in {0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0} with independent forward/backward devices
(correlation 0), 8-bit weights (per-column scale); 3 instances per sigma.

* offline: trained with exact backprop on the nominal network, then the trained
  parameters are programmed into the instance (test accuracy of the instance's own
  forward network);
* in the loop: every gradient read from the instance itself (reference simulator,
  steady mode), so training sees the devices it will run on, and its credit-assignment
  errors.

Outputs: training.csv, training.png.   Run: python sims/codesign/training.py
(about 1-2 minutes on 2 shared cores).
"""

from __future__ import annotations

import numpy as np

from common import markdown, parse_args, save, write_table  # noqa: E402
from hwbp.hardware import hardware_from_mapping
from hwbp.hardware.training import InstanceSource, instance_accuracy
from hwbp.models import random_mlp
from hwbp.train import TrainConfig, get_source, load_digits_split, train

SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
INSTANCES = 3
CONFIG = TrainConfig(epochs=8, batch_size=32, optimizer="adam", lr=0.01, seed=0)


def main() -> None:
    parse_args('training', __doc__)
    x_tr, x_te, y_tr, y_te = load_digits_split()
    graph = random_mlp([64, 32, 10], activation="tanh", seed=0).with_loss("ce")
    offline = train(graph, x_tr, y_tr, get_source("oracle"), CONFIG, progress=False).graph
    rows = []
    for sigma in SIGMAS:
        hw = hardware_from_mapping({"weights": {"bits": 8, "scale": "column"},
                                    "mismatch": {"sigma": sigma, "correlation": 0.0}})
        for k in range(INSTANCES):
            acc_off = instance_accuracy(offline, hw, k, x_te, y_te)
            loop = train(graph, x_tr, y_tr, InstanceSource(hw, k), CONFIG, progress=False).graph
            acc_loop = instance_accuracy(loop, hw, k, x_te, y_te)
            rows.append({"sigma": sigma, "instance": k, "acc_offline_transferred": acc_off,
                         "acc_in_the_loop": acc_loop})
            print(rows[-1], flush=True)
    cols = list(rows[0])
    write_table("training", rows, cols)
    summary = []
    for sigma in SIGMAS:
        rs = [r for r in rows if r["sigma"] == sigma]
        summary.append({"sigma": sigma,
                        "offline_mean": float(np.mean([r["acc_offline_transferred"] for r in rs])),
                        "offline_min": float(np.min([r["acc_offline_transferred"] for r in rs])),
                        "loop_mean": float(np.mean([r["acc_in_the_loop"] for r in rs])),
                        "loop_min": float(np.min([r["acc_in_the_loop"] for r in rs]))})
    print(markdown(summary, list(summary[0])))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    s = [r["sigma"] for r in summary]
    ax.plot(s, [r["offline_mean"] for r in summary], "o-", label="offline (backprop), transferred")
    ax.plot(s, [r["loop_mean"] for r in summary], "s-", label="circuit in the loop on the instance")
    for r in rows:
        ax.plot(r["sigma"], r["acc_offline_transferred"], ".", color="C0", alpha=0.5)
        ax.plot(r["sigma"], r["acc_in_the_loop"], ".", color="C1", alpha=0.5)
    ax.set(xlabel="conductance mismatch sigma (fwd/bwd independent)", ylabel="test accuracy of the instance",
           title=f"digits, 64-32-10, {CONFIG.epochs} epochs, {INSTANCES} instances per sigma")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "training")


if __name__ == "__main__":
    main()
