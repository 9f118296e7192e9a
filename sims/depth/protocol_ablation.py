"""PC-ALM on the paper's cell (width 32, depth 32, ReLU, T = 2L, Fashion-MNIST) under
variations of the protocol, beside the protocol's own rows (``protocol/cell/results.csv``):

- ``eta-ref``: the inference step the reference code reads for this cell from its frozen
  per-cell table (``--eta-ref``, default 0.23589: 1/λ_max, the median over its three
  seeds) instead of the ``1/λ_max`` computed for each run;
- ``bias``: layers with biases (starting at 0; the reference's model has none);
- ``post-dual``: multipliers read after the last dual update instead of before it.

    python sims/depth/protocol_ablation.py [--variants eta-ref bias post-dual] [--steps N]
        [--seeds 3] [--workers 2] [-o sims/depth/protocol]
    python sims/depth/protocol_ablation.py --table-only   # the table again, beside the cell's current rows

Every run trains one epoch (937 steps) unless ``--steps`` says otherwise.  Writes
``ablation.csv`` (the columns of ``results.csv`` plus ``variant``) and ``ablation.md``
into the output directory, rewriting both after every run.
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

VARIANTS = {"eta-ref": "η = the reference's frozen value", "bias": "with biases",
            "post-dual": "multipliers after the last dual update"}


def _run(variant: str, seed: int, steps: int | None, eta_ref: float) -> dict:
    from protocol_runs import run_task

    kw = {"eta-ref": dict(eta=eta_ref), "bias": dict(bias=True), "post-dual": dict(timing="post_dual")}[variant]
    return {**run_task("fashion-mnist", "relu", 32, "pc-alm", seed, steps, **kw), "variant": variant}


def _table(rows: list[dict], protocol: list[dict], head: list[str]) -> str:
    import numpy as np

    lines = head + ["", "| variant | seeds | steps | η | cosine (weights), end | cosine (weights), mean over steps | "
                    "cosine (biases), end | test acc (%) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    groups = [("protocol (cell/results.csv)", protocol)] + [
        (VARIANTS[v], [x for x in rows if x["variant"] == v]) for v in dict.fromkeys(x["variant"] for x in rows)]
    for name, g in groups:
        if not g:
            continue
        arr = lambda c: np.array([float(x.get(c, "nan")) for x in g], dtype=float)  # noqa: E731
        lines.append(f"| {name} | {len(g)} | {int(arr('steps')[0])} | {arr('eta').mean():.4f} | "
                     f"{_ci(arr('cosine_weights'))} | {_ci(arr('cosine_weights_mean'))} | "
                     f"{_ci(arr('cosine_bias'))} | {_ci(100 * arr('test_acc'))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from figures import read_csv
    from run import _csv, machine

    from hwbp.io import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=["eta-ref", "bias"])
    p.add_argument("--steps", type=int, help="training steps per run (default: one epoch)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--eta-ref", type=float, default=0.23588549900873967,
                   help="eta of the eta-ref variant (default: the reference's frozen value for this cell)")
    p.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    p.add_argument("-o", "--out", default=str(HERE / "protocol"), metavar="DIR")
    p.add_argument("--table-only", action="store_true",
                   help="rebuild ablation.md from OUT/ablation.csv and the cell's current rows; run nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cell = HERE / "protocol" / "cell" / "results.csv"
    protocol = [r for r in read_csv(cell) if r["method"] == "pc-alm" and r["depth"] == 32
                and r["activation"] == "relu"] if cell.exists() else []
    if args.table_only:
        md = (out / "ablation.md").read_text().splitlines()
        rows = read_csv(out / "ablation.csv")
        head = [line for line in md if not line.startswith("|") and line.strip()]
        head = head[:1] + [""] + head[1:] + ["- table rebuilt beside the cell's final rows by `python "
                                             "sims/depth/protocol_ablation.py --table-only`"]
        atomic_write_text(out / "ablation.md", _table(rows, protocol, head))
        return 0
    plan = [(v, s) for s in range(args.seeds) for v in args.variants]  # seed by seed: a cut-short run keeps both
    command = "python sims/depth/protocol_ablation.py" + "".join(" " + a for a in (sys.argv[1:] if argv is None
                                                                                  else argv))
    rows: list[dict] = []
    t0 = time.perf_counter()

    def write() -> None:
        atomic_write_text(out / "ablation.csv", _csv(rows, ["variant"] + COLUMNS))
        head = ["# PC-ALM on the paper's cell: protocol variations", "",
                f"- command: `{command}`",
                f"- machine: {machine()}; {args.workers} processes; wall time {(time.perf_counter() - t0) / 60:.1f} "
                "min (shared machine)", f"- runs: {len(rows)} of {len(plan)}",
                "- width 32, depth 32, ReLU, T = 64, Fashion-MNIST standardized, batch 64, bias-free, "
                "eta = 1/lambda_max of each run's cell unless the variant sets it, multipliers pre_dual_energy; "
                "cosine 'end': at the weights the run ends with, on the fixed batch of 64 training images (the "
                "reference code's definition); 'mean over steps': on each training batch, mean over the run; "
                "mean ± 95 % interval over seeds (Student t)"]
        atomic_write_text(out / "ablation.md", _table(rows, protocol, head))

    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        futures = [pool.submit(_run, v, s, args.steps, args.eta_ref) for v, s in plan]
        for f in as_completed(futures):
            r = f.result()
            rows.append(r)
            rows.sort(key=lambda x: (list(VARIANTS).index(x["variant"]), x["seed"]))
            print(f"{r['variant']} seed {r['seed']}: cosine (weights) end {r['cosine_weights']:.4f}, mean "
                  f"{r['cosine_weights_mean']:.4f}, {r['wall_s']:.0f} s", file=sys.stderr, flush=True)
            write()
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
