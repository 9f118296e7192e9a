"""The depth benchmark: physical (dyadic) gradients against backprop, PC and PC-ALM.

    python sims/depth/run.py                 # default size (see --help), into sims/depth/
    python sims/depth/run.py --quick -o out  # CI size: digits, depths 4 and 8, one seed
    python sims/depth/run.py --data DIR      # MNIST / Fashion-MNIST IDX files in DIR
    python sims/depth/run.py --scheduler tcp://host:8786   # an existing Dask cluster

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
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from runs import METHODS, credit_run, train_run  # noqa: E402

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
    p.add_argument("-o", "--out", default=str(HERE), metavar="DIR", help="output directory (default: sims/depth)")
    p.add_argument("--no-figures", action="store_true", help="write the CSVs and the table only")
    args = p.parse_args(argv)
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
    if args.workers == 0 and not args.scheduler:
        return [train_run(*r) for r in runs], [credit_run(*c) for c in credit]
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
        client.upload_file(str(HERE / "runs.py"))
        futs = [client.submit(credit_run, *c, pure=False) for c in credit]
        futs += [client.submit(train_run, *r, pure=False) for r in runs]
        total, done = len(futs), 0
        for _ in as_completed(futs):
            done += 1
            if sys.stderr.isatty():
                print(f"\r{done}/{total} runs", end="", file=sys.stderr)
        return [f.result() for f in futs[len(credit):]], [f.result() for f in futs[:len(credit)]]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in r.items() if k in columns})
    return buf.getvalue()


def machine() -> str:
    """One line: OS, CPU model and count."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


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


def main(argv: list[str] | None = None) -> int:
    from hwbp.io import atomic_write_text

    args = parse_args(argv)
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
