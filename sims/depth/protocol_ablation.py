"""PC-ALM on the paper's cell (width 32, depth 32, ReLU, T = 2L, Fashion-MNIST) under
variations of the protocol, beside the committed protocol rows:

- multipliers read after the last dual update (``post_dual``) instead of before it;
- bias-free layers (cosine over the weights, the only parameters);
- more training steps (the cosine is a mean over the run's steps).

    python sims/depth/protocol_ablation.py [--steps 40] [--long-steps 200] [-o sims/depth/protocol]

Writes ``ablation.csv`` (the columns of ``results.csv`` plus ``variant``) and
``ablation.md`` into the output directory, rewriting both after every run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from protocol_runs import COLUMNS, _ci  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from hwbp.io import atomic_write_text
    from protocol_runs import run_task
    from run import _csv, machine

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="training steps per run (default: 40)")
    p.add_argument("--long-steps", type=int, default=200, help="steps of the longer run, seed 0 (default: 200)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("-o", "--out", default=str(HERE / "protocol"), metavar="DIR")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = [("post_dual", dict(timing="post_dual"), s, args.steps) for s in range(args.seeds)]
    plan += [("bias-free", dict(bias=False), s, args.steps) for s in range(args.seeds)]
    plan += [(f"{args.long_steps} steps", {}, 0, args.long_steps)]
    rows = []
    t0 = time.perf_counter()
    command = "python sims/depth/protocol_ablation.py" + "".join(" " + a for a in (sys.argv[1:] if argv is None
                                                                                  else argv))
    for variant, kw, seed, steps in plan:
        r = run_task("fashion-mnist", "relu", 32, "pc-alm", seed, steps, **kw)
        rows.append({**r, "variant": variant})
        print(f"{variant} seed {seed}: cosine (weights) {r['cosine_weights']:.4f}, {r['wall_s']:.0f} s",
              file=sys.stderr, flush=True)
        atomic_write_text(out / "ablation.csv", _csv(rows, ["variant"] + COLUMNS))
        lines = ["# PC-ALM on the paper's cell: protocol variations", "",
                 f"- command: `{command}`", f"- machine: {machine()}; wall time {(time.perf_counter() - t0) / 60:.1f} "
                 "min (shared machine)",
                 "- width 32, depth 32, ReLU, T = 64, Fashion-MNIST standardized, batch 64, eta = 1/lambda_max; "
                 "cosine to backprop on each training batch, mean over the run's steps; the protocol's own rows "
                 "(multipliers pre_dual_energy, biases) are in results.md", "",
                 "| variant | seeds | steps | cosine (weights) | cosine (biases) |", "|---|---:|---:|---:|---:|"]
        for v in dict.fromkeys(x["variant"] for x in rows):
            g = [x for x in rows if x["variant"] == v]
            arr = lambda c: np.array([x[c] for x in g], dtype=float)  # noqa: E731
            lines.append(f"| {v} | {len(g)} | {g[0]['steps']} | {_ci(arr('cosine_weights'))} | "
                         f"{_ci(arr('cosine_bias'))} |")
        atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
