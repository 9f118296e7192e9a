"""The depth benchmark: physical (dyadic) gradients against backprop, PC and PC-ALM.

    python sims/depth/run.py                 # default size (see --help), into sims/depth/
    python sims/depth/run.py --quick -o out  # CI size: digits, depths 4 and 8, one seed
    python sims/depth/run.py --data DIR      # MNIST / Fashion-MNIST IDX files in DIR
    python sims/depth/run.py --scheduler tcp://host:8786   # an existing Dask cluster
    python sims/depth/run.py --protocol pc-alm   # the PC-ALM protocol, into sims/depth/protocol/

``--quick`` writes into a fresh scratch directory (printed) unless ``-o`` names one, so
a quick run never overwrites the committed results.  ``--protocol pc-alm`` runs the
depth study as the PC-ALM paper's reference code does (``protocol_runs.py`` and
:mod:`hwbp.baselines.protocol`: standardized Fashion-MNIST 60k/10k, 937 steps of batch
64, eta = 1/lambda_max per cell, cosines over the weights and the biases apart).

Every training run and every credit study is one Dask task, spread over a
``distributed.LocalCluster`` (``--workers``, one thread each) unless ``--scheduler``
names a cluster; ``--workers 0`` runs them in this process.  Outputs in ``--out``:
``results.csv`` (one row per training run: dataset, activation, depth, width, method,
seed, T, test_acc, grad_cosine, wall_s), ``results.md`` (mean +- sd over seeds; its
header states the command and the machine), ``budget.csv`` / ``layers.csv`` /
``arrival.csv`` (credit studies, see ``runs.py``) and the figures (``figures.py``).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from runs import METHODS, credit_run, train_run  # noqa: E402

from hwbp.provenance import machine  # noqa: E402

RESULT_COLUMNS = ["dataset", "activation", "depth", "width", "method", "seed", "T", "test_acc", "grad_cosine",
                  "wall_s"]
CSV_COLUMNS = {
    "budget": ["dataset", "activation", "depth", "method", "T", "grad_cosine"],
    "layers": ["dataset", "activation", "depth", "method", "T", "layer", "cosine", "rel_err"],
    "arrival": ["dataset", "activation", "depth", "method", "layer", "arrival"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI size: digits, depths 4 and 8, one seed (< 2 min)")
    p.add_argument("--data", metavar="DIR", help="IDX files (MNIST or Fashion-MNIST) instead of mnist5k and digits")
    p.add_argument("--datasets", nargs="+", metavar="NAME", help="datasets (default: mnist5k digits)")
    p.add_argument("--depths", nargs="+", type=int, metavar="L", help="depths (default: 8 16 32 64 128)")
    p.add_argument("--activations", nargs="+", choices=("relu", "tanh"), default=["relu", "tanh"])
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default: 3)")
    p.add_argument("--credit-depths", nargs="+", type=int, metavar="L",
                   help="depths of the credit studies (default: the training depths)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (0: run in this process)")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="output directory (default: sims/depth, sims/depth/protocol with --protocol; "
                        "with --quick a new scratch directory)")
    p.add_argument("--protocol", choices=("pc-alm",), help="run the depth study under the PC-ALM protocol")
    p.add_argument("--dataset", default="fashion-mnist", metavar="NAME",
                   help="--protocol: fashion-mnist (Debian's dataset-fashion-mnist) or idx:DIR (default: "
                        "fashion-mnist)")
    p.add_argument("--timing", choices=("pre_dual_energy", "post_dual"), default="pre_dual_energy",
                   help="--protocol: when PC-ALM's multipliers are read (default: pre_dual_energy)")
    p.add_argument("--bias", action=argparse.BooleanOptionalAction, default=False,
                   help="--protocol: layers with biases (starting at 0); the reference's model, and the default, "
                        "is bias-free (--no-bias)")
    p.add_argument("--eta", type=float, metavar="ETA",
                   help="--protocol: the PC / PC-ALM inference step of every cell (default: 1/lambda_max of each "
                        "run's cell, computed)")
    p.add_argument("--deep-steps", type=int, nargs="+", default=[30], metavar="N",
                   help="--protocol: training steps of the cells deeper than 32, one for all or one per such depth "
                        "in increasing order (default: 30)")
    p.add_argument("--deep-seeds", type=int, default=1, metavar="S",
                   help="--protocol: seeds of those cells (default: 1)")
    p.add_argument("--variant-steps", type=int, default=100, metavar="N",
                   help="--protocol: training steps of the variants (default: 100)")
    p.add_argument("--variant-seeds", type=int, default=2, metavar="S",
                   help="--protocol: seeds of the variants (default: 2)")
    p.add_argument("--conv-steps", type=int, metavar="T",
                   help="--protocol: inference steps of PC-ALM on the linear cells (default: 20000)")
    p.add_argument("--conv-depths", nargs="+", type=int, metavar="L",
                   help="--protocol: depths of the linear-cell convergence study (default: 8 32)")
    p.add_argument("--no-variants", action="store_true", help="--protocol: skip the variants")
    p.add_argument("--merge", action="store_true",
                   help="--protocol: keep the rows of OUT/results.csv (and OUT/linear_convergence.csv) and run only "
                        "the planned runs that are not there yet; the table's header lists the earlier commands")
    p.add_argument("--merge-from", nargs="+", default=[], metavar="DIR",
                   help="--protocol, with --merge: also keep the rows of DIR/results.csv (e.g. the paper's cell "
                        "run on its own into sims/depth/protocol/cell)")
    p.add_argument("--cell-pc-seeds", type=int, metavar="S",
                   help="--protocol: seeds of PC and dyadic on the depth-32 cell (default: --seeds)")
    p.add_argument("--cell-steps", type=int, metavar="N",
                   help="--protocol: on the depth-32 ReLU cell, every method but backprop trains for its first N "
                        "steps only (default: one epoch)")
    p.add_argument("--sweep-steps", type=int, metavar="N",
                   help="--protocol: cells shallower than 32 train for their first N steps only (default: one "
                        "epoch)")
    p.add_argument("--no-figures", action="store_true", help="write the CSVs and the table only")
    args = p.parse_args(argv)
    if args.out is None:
        import tempfile

        args.out = (tempfile.mkdtemp(prefix="hwbp-depth-quick-") if args.quick
                    else str(HERE / "protocol" if args.protocol else HERE))
    if args.quick and args.protocol:
        args.dataset, args.depths = "digits", args.depths or [4, 8]
        args.seeds, args.deep_steps, args.variant_seeds, args.variant_steps = 1, [3], 1, 5
        args.conv_steps, args.conv_depths = args.conv_steps or 200, args.conv_depths or [4]
    args.conv_steps, args.conv_depths = args.conv_steps or 20000, args.conv_depths or [8, 32]
    if args.quick:
        args.datasets = args.datasets or ["digits"]
        args.depths = args.depths or [4, 8]
        args.seeds = 1 if args.seeds == 3 else args.seeds
    if args.data:
        args.datasets = [f"idx:{args.data}"]
    args.datasets = args.datasets or ["mnist5k", "digits"]
    args.depths = args.depths or [8, 16, 32, 64, 128]
    args.credit_depths = args.credit_depths or args.depths
    if args.seeds < 1 or any(d < 2 for d in args.depths + args.credit_depths):
        p.error("--seeds must be >= 1 and every depth >= 2")
    deep = sorted(d for d in args.depths if d > 32)
    if len(args.deep_steps) == 1:
        args.deep_steps = args.deep_steps * max(len(deep), 1)
    if len(args.deep_steps) != max(len(deep), 1):
        p.error(f"--deep-steps takes one value or one per depth deeper than 32 ({len(deep)} here)")
    args.deep_steps_by_depth = dict(zip(deep, args.deep_steps))
    return args


def _tasks(args: argparse.Namespace) -> tuple[list[tuple], list[tuple]]:
    runs = [(ds, act, L, m, s) for ds in args.datasets for act in args.activations for L in args.depths
            for m in args.methods for s in range(args.seeds)]
    credit = [(args.datasets[0], act, L) for act in args.activations for L in args.credit_depths]
    # longest first, so the workers finish together
    runs.sort(key=lambda r: -(r[2] ** 2 if r[3] in ("pc", "pc-alm") else r[2]))
    credit.sort(key=lambda c: -c[2])
    return runs, credit


def _execute(args: argparse.Namespace, runs: list[tuple], credit: list[tuple]) -> tuple[list, list]:
    out = _map(args, [(credit_run, c) for c in credit] + [(train_run, r) for r in runs], "runs.py")
    return out[len(credit):], out[:len(credit)]


def _map(args: argparse.Namespace, calls: list[tuple], module: str, done_cb=None) -> list:
    """``fn(*task)`` for every ``(fn, task)`` of ``calls`` (submitted in priority order), on
    Dask unless ``--workers 0``; ``done_cb(results so far)`` after each one completes."""
    if args.workers == 0 and not args.scheduler:
        out = []
        for fn, t in calls:
            out.append(fn(*t))
            if done_cb is not None:
                done_cb(out)
        return out
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    # workers import this checkout's hwbp (not another installed copy)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent.parent), str(HERE)]
                                               + [p for p in [os.environ.get("PYTHONPATH")] if p])
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        client = Client(cluster)
    try:
        client.upload_file(str(HERE / module))
        futs = [client.submit(fn, *t, pure=False, priority=-i) for i, (fn, t) in enumerate(calls)]
        total, done, t0 = len(futs), 0, time.perf_counter()
        finished = []
        for fut in as_completed(futs):
            done += 1
            r = fut.result()
            finished.append(r)
            if done_cb is not None:
                done_cb(finished)
            r = r.get("row", r)
            what = "" if "method" not in r else (
                f" {r['activation']} {r['method']} L={r['depth']} seed {r['seed']}: "
                + (f"eta = {r['eta']:.4f}, " if "eta" in r else "") + f"{r['wall_s']:.0f} s")
            print(f"{done}/{total} runs ({(time.perf_counter() - t0) / 60:.1f} min){what}", file=sys.stderr,
                  flush=True)
        return [f.result() for f in futs]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if isinstance(v, float) and v != v else f"{v:.9g}" if isinstance(v, float) else v)
                    for k, v in r.items() if k in columns})
    return buf.getvalue()


def table(rows: list[dict], command: str, wall_s: float, args: argparse.Namespace) -> str:
    """Markdown table: test accuracy and gradient cosine, mean +- sd over seeds."""
    import numpy as np

    head = [
        "# Depth benchmark: physical (dyadic) gradients vs backprop, PC and PC-ALM",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; {args.workers if not args.scheduler else 'cluster'} Dask workers; "
        f"wall time {wall_s / 60:.1f} min",
        f"- size: datasets {', '.join(args.datasets)}; activations {', '.join(args.activations)}; depths "
        f"{', '.join(map(str, args.depths))}; width 32; methods {', '.join(args.methods)}; {args.seeds} seed(s); "
        "1 epoch, batch 64, Adam lr = 1e-3 sqrt(N/L), MSE",
        "- budget T = 2L: dyadic = 2L unit steps from the forward pass (exact after L); PC and PC-ALM = 2L "
        "inference steps from the feed-forward init (rho = 1, eta = 0.2, PC-ALM alpha = 1)",
        "- grad cosine: to backprop on the first 64 test samples, at each run's trained weights",
        "",
        "| dataset | activation | L | method | test acc (%) | grad cosine | wall s/run |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["activation"], r["depth"], r["method"]), []).append(r)
    order = {m: i for i, m in enumerate(METHODS)}
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], order[k[3]])):
        g = groups[key]
        acc = np.array([r["test_acc"] for r in g]) * 100
        cos = np.array([r["grad_cosine"] for r in g])
        wall = np.mean([r["wall_s"] for r in g])
        sd = lambda a: f" ± {a.std(ddof=1):.2f}" if len(a) > 1 else ""  # noqa: E731
        cs = f" ± {cos.std(ddof=1):.2g}" if len(cos) > 1 else ""
        head.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {acc.mean():.2f}{sd(acc)} | "
                    f"{cos.mean():.6f}{cs} | {wall:.1f} |")
    return "\n".join(head) + "\n"


def main_protocol(args: argparse.Namespace, command: str) -> int:
    """``--protocol pc-alm``: the table ``results.csv`` / ``results.md`` and the figures in ``--out``."""
    from functools import partial

    from hwbp.io import atomic_write_text
    from protocol_runs import CONV_COLUMNS, COLUMNS, ORDER, convergence_run, plan, run_task, table

    tasks = plan(args.dataset, args.depths, args.seeds, args.deep_steps_by_depth, variants=not args.no_variants,
                 deep_seeds=args.deep_seeds, variant_steps=args.variant_steps, variant_seeds=args.variant_seeds,
                 bias=args.bias, cell_pc_seeds=args.cell_pc_seeds)
    if args.sweep_steps:
        tasks = [t[:5] + (args.sweep_steps,) + t[6:] if t[2] < 32 and t[1] == "relu" else t for t in tasks]
    if args.cell_steps:  # backprop keeps its full epoch: the accuracy beside which the others would stand
        tasks = [t[:5] + (args.cell_steps,) + t[6:] if t[2] == 32 and t[1] == "relu" and t[3] != "backprop"
                 and t[5] is None else t for t in tasks]
    conv = [] if args.no_variants else [(args.dataset, L, args.conv_steps) for L in args.conv_depths]
    out = Path(args.out)
    merge_dirs = [out] + [Path(d) for d in args.merge_from]
    if args.merge and any((d / "results.csv").exists() for d in merge_dirs):
        from figures import read_csv

        old = [r for d in merge_dirs if (d / "results.csv").exists() for r in read_csv(d / "results.csv")]
        have = {(r["activation"], int(r["depth"]), r["method"], int(r["seed"])) for r in old}
        tasks = [t for t in tasks if (t[1], t[2], t[3], t[4]) not in have]
        conv_have = {(int(r["depth"]), int(r["T"])) for r in old if r["method"] == "pc-alm-conv"}
        conv = [c for c in conv if (c[1], c[2]) not in conv_have]  # a new --conv-steps redoes the study
    fn = partial(run_task, timing=args.timing, eta=args.eta)
    cfn = partial(convergence_run, bias=args.bias, timing=args.timing)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    calls = [(fn, t) for t in tasks]
    calls[len(calls) - sum(t[2] > 32 for t in tasks):len(calls) - sum(t[2] > 32 for t in tasks)] = [
        (cfn, c) for c in conv]  # the linear-cell study before the deep cells
    total = len(calls)
    old_rows, old_curve, earlier = ([], [], [])
    if args.merge:
        for d in merge_dirs:
            r, c, e = _earlier(d, tasks, conv)
            old_rows, old_curve, earlier = old_rows + r, old_curve + c, earlier + e

    def write(res: list, final: bool = False) -> None:
        wall = time.perf_counter() - t0
        rows = [r["row"] if "row" in r else r for r in res] + old_rows
        curve = [c for r in res if "convergence" in r for c in r["convergence"]] + old_curve
        order = {m: i for i, m in enumerate(ORDER)}
        rows.sort(key=lambda r: (r["dataset"], r["activation"], r["depth"], order[r["method"]], r["seed"]))
        atomic_write_text(out / "results.csv", _csv(rows, COLUMNS))
        atomic_write_text(out / "results.md", table(rows, _header(args, command, wall, len(res), total, final)
                                                    + [f"- {e}" for e in earlier]
                                                    + ([f"- rows kept from earlier runs: {len(old_rows)}"]
                                                       if old_rows else [])))
        if curve:
            atomic_write_text(out / "linear_convergence.csv", _csv(curve, CONV_COLUMNS))

    res = _map(args, calls, "protocol_runs.py", done_cb=write)
    write(res, final=True)
    if not args.no_figures:
        from protocol_figures import write_protocol_figures

        write_protocol_figures(out)
    print(f"{len(res)} runs in {(time.perf_counter() - t0) / 60:.1f} min; wrote {out}/")
    return 0


def _earlier(out: Path, tasks: list[tuple], conv: list[tuple]) -> tuple[list, list, list]:
    """Rows of ``out``'s table and convergence study that the new plan does not redo, and the
    earlier runs' command lines."""
    from figures import read_csv

    redo = {(t[1], t[2], t[3], t[4]) for t in tasks} | {("identity", c[1], "pc-alm-conv", 0) for c in conv}
    rows, curve, earlier = [], [], []
    if (out / "results.csv").exists():
        for r in read_csv(out / "results.csv"):
            key = (r["activation"], int(r["depth"]), r["method"], int(r["seed"]))
            if key not in redo:
                r.update({k: int(r[k]) for k in ("depth", "width", "seed", "bias", "T", "steps")})
                rows.append(r)
    if (out / "linear_convergence.csv").exists():
        redo_c = {c[1] for c in conv}
        curve = [r for r in read_csv(out / "linear_convergence.csv") if int(r["depth"]) not in redo_c]
    if (out / "results.md").exists():
        for line in (out / "results.md").read_text().splitlines():
            if line.startswith("- command:") or line.startswith("- earlier"):
                earlier.append("earlier " + line[2:].replace("earlier ", "", 1))
            if line.startswith("- runs:") or line.startswith("- machine:"):
                earlier.append("earlier " + line[2:].replace("earlier ", "", 1))
    return rows, curve, earlier


def _header(args: argparse.Namespace, command: str, wall: float, done: int, total: int, final: bool) -> list[str]:
    load = os.getloadavg()
    return [
        "# Depth study under the PC-ALM protocol: dyadic gradients vs backprop, PC and PC-ALM",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; {args.workers} Dask workers; load average at the end {load[0]:.1f} / {load[1]:.1f} "
        f"/ {load[2]:.1f} (1/5/15 min; the machine was shared with other jobs); wall time {wall / 60:.1f} min"
        f"{'' if final else ' so far'}",
        f"- data: {args.dataset}, inputs standardized (train pixel mean and sd), batch 64, one epoch = "
        "n_train // 64 steps (937 for 60k) unless `steps` is smaller; MSE to one-hot targets; Adam, "
        "lr = 1e-3 sqrt(N/L); width N = 32; depth-muP residual MLP (`depth_resmlp`)"
        + (", biases start at 0" if args.bias else ", bias-free (as the reference's model)")
        + "; the training set visited in the reference code's order (shuffled with the seed, batches drawn by a "
        "permutation seeded with it)",
        (f"- cells shallower than 32: the first {args.sweep_steps} training steps only (no test accuracy)\n"
         if args.sweep_steps else "")
        + (f"- the depth-32 ReLU cell: dyadic, PC and PC-ALM train for their first {args.cell_steps} steps only "
           "(no test accuracy; a full epoch of PC-ALM at T = 64 costs ~130 s of CPU per run, more than this "
           "shared machine gave in the time); backprop trains the full epoch\n" if args.cell_steps else "")
        + (("- cells deeper than 32: the first "
            + ", ".join(f"{n} (L = {d})" for d, n in args.deep_steps_by_depth.items())
            + f" training steps only, {args.deep_seeds or args.seeds} seed(s) (their PC runs cost seconds per step "
            "on this machine), so no test accuracy; ") if args.deep_steps_by_depth else "- ")
        + "pc-alm-conv: PC-ALM on the linear cell run to T = "
        f"{args.conv_steps} steps, at the initial weights (seed 0, first batch; no training; the whole curve "
        "against T is `linear_convergence.csv`); the variants (fp-pc, se-pc, the linear cell): the first "
        f"{args.variant_steps} training steps, {args.variant_seeds} seed(s)",
        "- T: inference steps per gradient. dyadic = T unit steps of the sensitivity field from the forward pass "
        "(exact after L - 1); PC, PC-ALM: T steps of size "
        + (f"eta = {args.eta} (set with --eta)" if args.eta else "eta = 1/lambda_max (largest eigenvalue of the PC "
           "energy's Gauss-Newton Hessian at the cell's initial weights, the run's first batch)")
        + ", rho = 1, PC-ALM alpha = 1, "
        f"multipliers {args.timing}; fp-pc: fixed-prediction PC, eta = 1; se-pc: small-error PC (loss x 1e-3)",
        "- cosine to backprop, flattened over all weights (biases apart): 'end', the reference code's "
        "definition: once, at the weights the run ends with, on a fixed batch of 64 training images (the first "
        "of the shuffled set); 'mean over steps': on each training batch at the current weights, mean over the "
        "run's steps; 'at init': the first step's",
        "- mean ± 95 % interval over seeds (Student t); test accuracy only for full-epoch cells whose backprop "
        "accuracy is clearly above chance (> 30 %)",
        f"- runs: {done} of {total}" + ("" if final else " (run in progress; this table is rewritten as runs "
                                                              "complete)"),
    ]


def main(argv: list[str] | None = None) -> int:
    from hwbp.io import atomic_write_text

    args = parse_args(argv)
    if args.protocol:
        return main_protocol(args, "python sims/depth/run.py " + " ".join(sys.argv[1:] if argv is None else argv))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, credit = _tasks(args)
    t0 = time.perf_counter()
    rows, studies = _execute(args, runs, credit)
    wall = time.perf_counter() - t0
    key = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (r["dataset"], r["activation"], r["depth"], key[r["method"]], r["seed"]))
    command = "python sims/depth/run.py" + ("" if argv is None and len(sys.argv) < 2 else " " + " ".join(
        sys.argv[1:] if argv is None else argv))
    atomic_write_text(out / "results.csv", _csv(rows, RESULT_COLUMNS))
    atomic_write_text(out / "results.md", table(rows, command, wall, args))
    for name, cols in CSV_COLUMNS.items():
        atomic_write_text(out / f"{name}.csv", _csv([r for s in studies for r in s[name]], cols))
    if not args.no_figures:
        from figures import write_figures

        write_figures(out)
    print(f"{len(rows)} training runs and {len(studies)} credit studies in {wall / 60:.1f} min; wrote {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
