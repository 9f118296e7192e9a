"""The depth benchmark's command (quick size), in-process and over a real Dask LocalCluster."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sims" / "depth"))

COLUMNS = "dataset,activation,depth,width,method,seed,T,test_acc,grad_cosine,wall_s".split(",")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_quick_benchmark_in_process(tmp_path) -> None:
    import run

    assert run.main(["--quick", "--workers", "0", "-o", str(tmp_path)]) == 0
    with open(tmp_path / "results.csv") as fh:
        assert fh.readline().strip().split(",") == COLUMNS
    rows = _rows(tmp_path / "results.csv")
    assert len(rows) == 2 * 2 * 4  # activations x depths x methods, one seed
    by = {(r["activation"], r["depth"], r["method"]): r for r in rows}
    for act in ("relu", "tanh"):
        for depth in ("4", "8"):
            bp, dy = by[(act, depth, "bp")], by[(act, depth, "dyadic")]
            assert float(dy["grad_cosine"]) >= 0.999999 and dy["T"] == str(2 * int(depth))
            assert abs(float(dy["test_acc"]) - float(bp["test_acc"])) < 1e-12  # same training curve
            assert float(by[(act, depth, "pc")]["grad_cosine"]) < 0.9999
    table = (tmp_path / "results.md").read_text()
    assert "command: `python sims/depth/run.py --quick" in table and "machine: " in table
    for name in ("accuracy_vs_depth.png", "cosine_vs_depth.png", "cosine_vs_budget.png", "credit_arrival.png",
                 "layer_credit.png"):
        assert (tmp_path / name).stat().st_size > 1000
    budget = _rows(tmp_path / "budget.csv")
    dyadic_2L = [float(r["grad_cosine"]) for r in budget if r["method"] == "dyadic-rest" and r["T"] == "16"]
    short = [float(r["grad_cosine"]) for r in budget if r["method"] == "dyadic-rest" and r["T"] == "15"]
    assert dyadic_2L and min(dyadic_2L) > 1 - 1e-12 and max(short) < 0.9999
    arrival = _rows(tmp_path / "arrival.csv")
    rest = {int(r["layer"]): int(r["arrival"]) for r in arrival
            if r["method"] == "dyadic-rest" and r["depth"] == "8" and r["activation"] == "tanh"}
    assert rest[1] <= 16 and rest[1] > rest[8]  # ballistic: the first layer gets credit last


@pytest.mark.slow
def test_benchmark_over_local_cluster_matches_in_process(tmp_path) -> None:
    import run

    args = ["--quick", "--depths", "3", "--credit-depths", "3", "--activations", "tanh", "--methods", "bp", "pc-alm",
            "--no-figures"]
    assert run.main(args + ["--workers", "0", "-o", str(tmp_path / "a")]) == 0
    assert run.main(args + ["--workers", "1", "-o", str(tmp_path / "b")]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(_rows(tmp_path / "a" / "results.csv")) == strip(_rows(tmp_path / "b" / "results.csv"))
    assert _rows(tmp_path / "a" / "budget.csv") == _rows(tmp_path / "b" / "budget.csv")


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_dyadic_gradient_is_backprop_at_depth_128(activation) -> None:
    """T = 2L unit steps from the forward pass at depth 128, width 32, on a batch of 64
    digits: cosine to backprop >= 0.999999 (the bound of the benchmark)."""
    import runs
    from hwbp.data import load_dataset
    from hwbp.models import depth_resmlp
    from hwbp.oracle import exact_gradients
    from hwbp.train import get_source, gradient_cosine

    data = load_dataset("digits")
    graph = depth_resmlp(data.n_features, 32, data.n_classes, 128, activation=activation, seed=0).with_loss("mse")
    batch = runs.heldout_batch(data, data.n_classes)
    grads = runs.source_for("dyadic", 128)(graph, batch).parameters
    assert gradient_cosine(grads, exact_gradients(graph, batch).parameters) >= 0.999999
    short = get_source("reference", options={"steps": 127}, initial="forward-manifold")(graph, batch).parameters
    # L - 1 steps: layer 1 has no credit yet
    assert gradient_cosine(short, exact_gradients(graph, batch).parameters) < 0.999999


def test_committed_results_cover_the_default_size() -> None:
    """The committed table is the default size, and its dyadic rows meet the bound."""
    rows = _rows(ROOT / "sims" / "depth" / "results.csv")
    assert {int(r["depth"]) for r in rows} == {8, 16, 32, 64, 128}
    assert {r["dataset"] for r in rows} == {"mnist5k", "digits"} and {r["activation"] for r in rows} == {"relu", "tanh"}
    assert {r["method"] for r in rows} == {"bp", "dyadic", "pc", "pc-alm"}
    assert {r["seed"] for r in rows} == {"0", "1", "2"}
    assert len(rows) == 2 * 2 * 5 * 4 * 3
    assert min(float(r["grad_cosine"]) for r in rows if r["method"] == "dyadic") >= 0.999999
    header = (ROOT / "sims" / "depth" / "results.md").read_text().splitlines()[2]
    assert header == "- command: `python sims/depth/run.py`"
