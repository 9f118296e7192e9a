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

    plot(rows)


def plot(rows: list[dict]) -> None:
    """bits.png: rel_err against the nominal network's backprop (a) for weight and readout
    bits.  Against the instance's own network (b) weight quantization with tied devices
    is exact (round-off, stated in the panel, not drawn: it would stretch the axis to
    1e-16 and flatten what matters)."""
    from hwbp.style import context, figure

    own = max(r["rel_err_own"] for r in rows if r["part"].startswith("weights/"))
    with context():
        fig, axes = figure(1, 2, panel=(5.0, 3.8))
        ax1, ax2 = axes[0]
        for part, marker in (("weights/tensor", "o-"), ("weights/column", "s--")):
            rs = [r for r in rows if r["part"] == part]
            ax1.semilogy([r["bits"] for r in rs], [r["rel_err_nominal"] for r in rs], marker,
                         label=f"{part.split('/')[1]} full scale")
        said = "0 (exact)" if own == 0 else f"<= {own:.1e} (round-off)"
        ax1.text(0.03, 0.04, f"vs own network (b): rel_err {said} at every width", transform=ax1.transAxes,
                 fontsize=7)
        for rng, marker in ((4.0, "o-"), (1.0, "s--")):
            rs = [r for r in rows if r["part"] == f"readout+-{rng:g}V"]
            ax2.semilogy([r["bits"] for r in rs], [r["rel_err_nominal"] for r in rs], marker,
                         label=f"ADC over +-{rng:g} V")
        ax1.set(xlabel="weight resolution (bits)", ylabel="gradient rel_err vs nominal (a) (1)",
                title="weight quantization (tied devices)")
        ax2.set(xlabel="readout ADC resolution (bits)", ylabel="gradient rel_err vs nominal (a) (1)",
                title="tension readout quantization")
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3, which="both")
        ax1.legend(loc="upper right")
        ax2.legend(loc="center right")
    save(fig, "bits")


if __name__ == "__main__":
    main()
