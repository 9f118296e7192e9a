"""Study 2: gradient quality against weight bits and against readout (ADC) bits.

The shipped digits MLP (64-32-32-10, tanh, cross-entropy) on its 32-sample batch,
beta = 1, reference backend in steady mode.  Part A: weights quantized to 2-10 bits
(differential conductance pairs, per-tensor and per-column full scale), no other
non-ideality; deterministic, so one instance.  Part B: ideal weights, the tension and
gate readout through an ADC of 4-16 bits over +-4 V (unit_V = 1 V; at beta = 1 the
largest tension on this batch is 3.5 V, at a hidden node, rms 0.08-0.26 V), and over +-1 V
(clipping the hidden tensions: an error floor no resolution removes).  Part C: both, at sigma = 0.05 mismatch
(correlation 0), 8 instances.  Outputs: bits.csv, bits.png.

Run: python sims/codesign/bits.py   (about 20 s)
"""

from __future__ import annotations

import numpy as np

from common import markdown, parse_args, ROOT, save, write_table  # noqa: E402
from hwbp.hardware import hardware_from_mapping
from hwbp.io import load_batch, load_model
from hwbp.verify.run import verify


def _run(graph, batch, hw: dict, seed: int = 0) -> dict:
    v = verify(graph, batch, options={"mode": "steady"}, hardware=hardware_from_mapping(hw), seed=seed)
    h = v.report["hardware"]
    return {"cos_nominal": h["nominal"]["total"]["cosine"], "rel_err_nominal": h["nominal"]["total"]["rel_err"],
            "cos_own": h["own"]["total"]["cosine"], "rel_err_own": h["own"]["total"]["rel_err"]}


def main() -> None:
    parse_args('bits', __doc__)
    graph = load_model(ROOT / "examples/mlp_digits.onnx").with_loss("ce")
    batch = load_batch(ROOT / "examples/digits_batch.npz", graph, loss="ce")
    rows = []
    for scale in ("tensor", "column"):
        for bits in range(2, 11):
            rows.append({"part": f"weights/{scale}", "bits": bits,
                         **_run(graph, batch, {"weights": {"bits": bits, "scale": scale}})})
    for rng in (4.0, 1.0):
        for bits in range(4, 17, 2):
            rows.append({"part": f"readout+-{rng:g}V", "bits": bits,
                         **_run(graph, batch, {"readout": {"adc_bits": bits, "adc_range_V": rng}})})
    for bits in (4, 6, 8):
        runs = [_run(graph, batch, {"weights": {"bits": bits, "scale": "column"}, "mismatch": {"sigma": 0.05},
                                    "readout": {"adc_bits": 12, "adc_range_V": 4.0}}, seed=s) for s in range(8)]
        rows.append({"part": "w+mismatch0.05+adc12@4V", "bits": bits,
                     **{k: float(np.mean([r[k] for r in runs])) for k in runs[0]}})
    cols = ["part", "bits", "cos_nominal", "rel_err_nominal", "cos_own", "rel_err_own"]
    write_table("bits", rows, cols)
    print(markdown(rows, cols))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for part, marker in (("weights/tensor", "o-"), ("weights/column", "s-")):
        rs = [r for r in rows if r["part"] == part]
        ax1.semilogy([r["bits"] for r in rs], [r["rel_err_nominal"] for r in rs], marker, label=f"{part}: (a) nominal")
        ax1.semilogy([r["bits"] for r in rs], [max(r["rel_err_own"], 1e-17) for r in rs], marker, alpha=0.5,
                     label=f"{part}: (b) own")
    for rng in (4.0, 1.0):
        rs = [r for r in rows if r["part"] == f"readout+-{rng:g}V"]
        ax2.semilogy([r["bits"] for r in rs], [r["rel_err_nominal"] for r in rs], "o-", label=f"ADC over +-{rng:g} V")
    ax1.set(xlabel="weight bits", ylabel="gradient rel_err", title="weight quantization (tied devices)")
    ax2.set(xlabel="readout ADC bits", ylabel="gradient rel_err (vs nominal)", title="tension readout quantization")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    save(fig, "bits")


if __name__ == "__main__":
    main()
