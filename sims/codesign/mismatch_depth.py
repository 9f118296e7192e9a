"""Study 1: gradient cosine against conductance mismatch sigma for depths 2-16, and how
exactness is lost as the forward/backward device correlation drops.

Random tanh MLPs (width 32, 8 inputs, 4 outputs, gain 1.2; MSE on a random batch of 16),
8-bit weights (per-column scale), reference backend in steady mode (the fixed point).
Part A: forward and backward devices independent (correlation 0), sigma in
{0.01, 0.02, 0.05, 0.1, 0.2}.  Part B: sigma = 0.1, correlation in {0, 0.5, 0.9, 0.99,
0.999, 1}.  12 instances per point, run as one hwbp sweep per depth on a 2-worker local
Dask cluster.  Outputs: mismatch_depth.csv, mismatch_corr.csv, mismatch_depth.png.

Run: python sims/codesign/mismatch_depth.py   (about a minute on 2 shared cores)
"""

from __future__ import annotations

import tempfile

import numpy as np

from common import markdown, parse_args, save, write_table  # noqa: E402  (sets sys.path)
from hwbp.sweep import run_sweep, spec_from_mapping

DEPTHS = (2, 4, 8, 16)
SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2)
CORRS = (0.0, 0.5, 0.9, 0.99, 0.999, 1.0)
INSTANCES = 12


def _spec(depth: int, grid: dict) -> object:
    return spec_from_mapping({
        "sweep": {"random_batch": 16, "loss": "mse", "instances": INSTANCES, "seed": 0},
        "model": {"sizes": [8] + [32] * (depth - 1) + [4], "activation": "tanh", "seed": depth, "gain": 1.2},
        "hardware": {"weights": {"bits": 8, "scale": "column"}},
        "grid": grid,
        "backends": {"reference": {"mode": "steady"}},
    }, source=f"depth{depth}")


def _agg(rows, key):
    out = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def main() -> None:
    parse_args('mismatch_depth', __doc__)
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    table_a, table_b = [], []
    try:
        for depth in DEPTHS:
            with tempfile.TemporaryDirectory() as d:
                rows = run_sweep(_spec(depth, {"mismatch.sigma": list(SIGMAS), "mismatch.correlation": [0.0]}), d,
                                 scheduler=cluster.scheduler_address, progress=False)
            for sigma, rs in sorted(_agg(rows, "mismatch.sigma").items()):
                assert not any(r["error"] for r in rs)
                table_a.append({"depth": depth, "sigma": sigma,
                                "cos_nominal": float(np.mean([r["cos_nominal"] for r in rs])),
                                "cos_own": float(np.mean([r["cos_own"] for r in rs])),
                                "cos_own_min": float(np.min([r["cos_own"] for r in rs])),
                                "rel_err_own": float(np.mean([r["rel_err_own"] for r in rs]))})
            with tempfile.TemporaryDirectory() as d:
                rows = run_sweep(_spec(depth, {"mismatch.sigma": [0.1], "mismatch.correlation": list(CORRS)}), d,
                                 scheduler=cluster.scheduler_address, progress=False)
            for rho, rs in sorted(_agg(rows, "mismatch.correlation").items()):
                table_b.append({"depth": depth, "correlation": rho,
                                "cos_own": float(np.mean([r["cos_own"] for r in rs])),
                                "rel_err_own": float(np.mean([r["rel_err_own"] for r in rs])),
                                "rel_err_own_max": float(np.max([r["rel_err_own"] for r in rs]))})
    finally:
        client.close()
        cluster.close()
    write_table("mismatch_depth", table_a, list(table_a[0]))
    write_table("mismatch_corr", table_b, list(table_b[0]))
    print(markdown(table_a, list(table_a[0])))
    print()
    print(markdown(table_b, list(table_b[0])))

    plot(table_a, table_b)


def plot(table_a: list[dict], table_b: list[dict]) -> None:
    """mismatch_depth.png: 1 - cosine against sigma, (b) and (a); and rel_err (b) against
    1 - correlation on a log axis for correlation < 1.  Correlation 1 (tied devices) is
    exact to round-off: stated in the panel, not drawn, so the axis spans what varies."""
    from hwbp.style import context, figure, legend_below

    exact = max(r["rel_err_own"] for r in table_b if r["correlation"] == 1.0)
    with context():
        fig, axes = figure(1, 3, panel=(4.2, 3.6))
        ax1, ax2, ax3 = axes[0]
        for depth in DEPTHS:
            rs = [r for r in table_a if r["depth"] == depth]
            s = [r["sigma"] for r in rs]
            ax1.loglog(s, [1 - r["cos_own"] for r in rs], "o-", label=f"L = {depth}")
            ax2.loglog(s, [1 - r["cos_nominal"] for r in rs], "o-", label=f"L = {depth}")
            rb = [r for r in table_b if r["depth"] == depth and r["correlation"] < 1.0]
            ax3.loglog([1 - r["correlation"] for r in rb], [r["rel_err_own"] for r in rb], "o-",
                       label=f"L = {depth}")
        said = "0 (exact)" if exact == 0 else f"<= {exact:.1e} (round-off)"
        ax3.text(0.03, 0.94, f"correlation 1: rel_err {said}", transform=ax3.transAxes, fontsize=7, va="top")
        ax1.set(xlabel="conductance mismatch sigma (relative)", ylabel="1 - cosine (1)",
                title="credit error vs own forward network (b)")
        ax2.set(xlabel="conductance mismatch sigma (relative)", ylabel="1 - cosine (1)",
                title="error vs nominal backprop (a)")
        ax3.set(xlabel="1 - forward/backward device correlation (1)", ylabel="rel_err (b) (1)",
                title="sigma = 0.1: rel_err (b) vs correlation")
        for ax in (ax1, ax2, ax3):
            ax.grid(alpha=0.3, which="both")
        legend_below(fig, [ax1])
    save(fig, "mismatch_depth")


if __name__ == "__main__":
    main()
