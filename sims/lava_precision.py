"""Fixed-point Lava models: gradient cosine and rel_err against exact backprop, digits
MLP (examples/mlp_digits.onnx, cross-entropy, examples/digits_batch.npz), weight bits
4-16 x state bits 16/20/24 (payloads as wide as the state), 2L unit steps from zeros.

Writes ``sims/lava_precision.{csv,md,png}``.  The sweep uses the numpy model of the
integer arithmetic (bit-exact with the Lava processes, tests/test_lava_fixed.py); the
8-bit, 24-bit point is also run in Lava and must give the same numbers.

Usage::

    .venv/bin/python sims/lava_precision.py            # sweep, tables and figure
    .venv/bin/python sims/lava_precision.py --replot   # redraw the figure from the CSV
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outdir import add_out_arg, output_dir  # noqa: E402
from hwbp.io import load_batch, load_model  # noqa: E402
from hwbp.targets.lava.precision import figure, from_csv, sweep, to_csv, to_markdown  # noqa: E402
from hwbp.verify.plot import figure_png  # noqa: E402

TITLE = "Lava fixed point: digits MLP gradients vs exact backprop"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_arg(ap)
    ap.add_argument("--replot", action="store_true", help="only redraw the figure from lava_precision.csv")
    args = ap.parse_args(argv)
    out_dir = output_dir(ap, args, ROOT / "sims", "lava_precision", neutral=("replot",))
    if args.replot:
        csv_path = out_dir / "lava_precision.csv"
        if not csv_path.is_file():
            ap.error(f"--replot: no {csv_path}; run the sweep first")
        csv_path.with_suffix(".png").write_bytes(figure_png(figure(from_csv(csv_path.read_text()), TITLE)))
        print(csv_path.with_suffix(".png"))
        return
    graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    batch = load_batch(ROOT / "examples" / "digits_batch.npz", graph, loss="ce")
    points = sweep(graph, batch, range(4, 17), (16, 20, 24))
    (check,) = sweep(graph, batch, [8], [24], lava=True)
    (same,) = [p for p in points if (p.weight_bits, p.state_bits) == (8, 24)]
    if check != same:
        raise SystemExit(f"Lava and the numpy model differ at 8/24 bits: {check} vs {same}")
    out = out_dir / "lava_precision"
    out.with_suffix(".csv").write_text(to_csv(points))
    note = ("\nPayloads as wide as the state; cosine and rel_err of the worst parameter tensor; "
            "the 8-bit/24-bit point was also run in Lava's simulator with identical results.\n")
    out.with_suffix(".md").write_text(to_markdown(points, TITLE) + note)
    out.with_suffix(".png").write_bytes(figure_png(figure(points, TITLE)))
    print(to_markdown(points, TITLE))


if __name__ == "__main__":
    main()
