"""The PC-ALM protocol of the depth study: ResChain against hwbp's own PC / PC-ALM and
the oracle, the linear cells' exactness, the eta computation, the table's shape, and
the quick run's scratch directory."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from hwbp.baselines import pc_alm_relax, pc_gradients, pc_relax
from hwbp.baselines.chain import ResChain
from hwbp.baselines.protocol import cosines, protocol_eta, standardize
from hwbp.lower import lower
from hwbp.models import depth_resmlp
from hwbp.oracle import exact_gradients
from hwbp.types import Batch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sims" / "depth"))


def _cell(act: str, depth: int = 5, bias: bool = True, seed: int = 1):
    g = depth_resmlp(12, 6, 4, depth, activation=act, seed=seed, bias=bias).with_loss("mse")
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((5, 12)), np.eye(4)[rng.integers(0, 4, 5)]
    return g, ResChain.from_graph(g, bias=bias), x, y


def _rel(a: dict, b: dict) -> float:
    va = np.concatenate([np.ravel(a[k]) for k in sorted(b)])
    vb = np.concatenate([np.ravel(b[k]) for k in sorted(b)])
    return float(np.linalg.norm(va - vb) / np.linalg.norm(vb))


def _named(chain: ResChain, g: dict, depth: int) -> dict:
    """ResChain's stacked gradients under the graph's parameter names."""
    out = {"layer1.weight": g["w1"], f"layer{depth}.weight": g["wl"]}
    out.update({f"layer{k + 2}.weight": g["wm"][k] for k in range(depth - 2)})
    if chain.bias:
        out.update({"layer1.bias": g["b1"], f"layer{depth}.bias": g["bl"]})
        out.update({f"layer{k + 2}.bias": g["bm"][k] for k in range(depth - 2)})
    return out


@pytest.mark.parametrize("act", ["relu", "tanh", "identity"])
@pytest.mark.parametrize("bias", [True, False])
def test_chain_matches_the_oracle_and_hwbp_pc(act, bias) -> None:
    graph, chain, x, y = _cell(act, bias=bias)
    batch = Batch({"x": x}, y)
    exact = exact_gradients(graph, batch).parameters
    assert sorted(exact) == sorted(_named(chain, chain.backprop(x, y)[0], 5))
    assert _rel(_named(chain, chain.backprop(x, y)[0], 5), exact) < 1e-13
    system = lower(graph)
    for alpha in (0.0, 1.0):
        relax = pc_alm_relax(system, batch, steps=7, eta=0.3, alpha=alpha) if alpha else \
            pc_relax(system, batch, steps=7, eta=0.3)
        ref = pc_gradients(system, batch, relax).parameters
        got = _named(chain, chain.pc(x, y, 7, 0.3, alpha=alpha, timing="post_dual"), 5)
        assert _rel(got, ref) < 1e-12
        assert _rel(got, exact) > 1e-3  # and neither is backprop at T = 7


def test_pre_dual_energy_differs_from_post_dual() -> None:
    graph, chain, x, y = _cell("relu")
    pre, post = chain.pc(x, y, 6, 0.2, alpha=1.0), chain.pc(x, y, 6, 0.2, alpha=1.0, timing="post_dual")
    assert _rel(pre, post) > 1e-3
    batch, system = Batch({"x": x}, y), lower(graph)
    ref = pc_gradients(system, batch, pc_alm_relax(system, batch, steps=6, eta=0.2, timing="pre_dual_energy"))
    assert _rel(_named(chain, pre, 5), ref.parameters) < 1e-12
    assert _rel(chain.pc(x, y, 6, 0.2, alpha=0.0), chain.pc(x, y, 6, 0.2, alpha=0.0, timing="post_dual")) == 0


@pytest.mark.parametrize("act", ["identity", "relu"])
def test_dyadic_and_fixed_prediction_pc_are_exact_after_L_minus_1_steps(act) -> None:
    L = 6
    _, chain, x, y = _cell(act, depth=L)
    exact = chain.backprop(x, y)[0]
    for method in (chain.dyadic, chain.fixed_prediction_pc):
        assert _rel(method(x, y, L - 1), exact) < 1e-14
        assert _rel(method(x, y, L - 2), exact) > 1e-3  # not one step earlier


def test_pc_alm_on_a_linear_cell_is_exact_only_at_equilibrium() -> None:
    L = 4
    _, chain, x, y = _cell("identity", depth=L)
    exact = chain.backprop(x, y)[0]
    eta = protocol_eta(chain, x)
    at = chain.pc(x, y, 4000, eta, alpha=1.0, checkpoints=[2 * L, 4000])
    assert _rel(at[2 * L], exact) > 1e-2
    assert _rel(at[4000], exact) < 1e-9
    # PC (no multipliers) stays biased at equilibrium: its error signals carry the output's pull
    assert _rel(chain.pc(x, y, 4000, eta), exact) > 1e-3


def test_eta_is_one_over_the_largest_hessian_eigenvalue() -> None:
    """lambda_max against the eigenvalues of the PC energy's Hessian built by finite
    differences of the energy itself (linear cell: the Gauss-Newton Hessian is exact)."""
    L = 4
    _, chain, x, y = _cell("identity", depth=L)
    x, y = x[:1], y[:1]
    z0, _ = chain.forward(x)
    n = z0.size

    def energy(flat: np.ndarray) -> float:
        z = flat.reshape(z0.shape)
        mu, yhat, _, _ = chain.predict(x, z)
        return 0.5 * float(((yhat - y) ** 2).sum() + ((z - mu) ** 2).sum())

    h, eye = 1e-3, np.eye(n)
    H = np.array([[(energy(z0.ravel() + h * (eye[i] + eye[j])) - energy(z0.ravel() + h * (eye[i] - eye[j]))
                    - energy(z0.ravel() - h * (eye[i] - eye[j])) + energy(z0.ravel() - h * (eye[i] + eye[j])))
                   / (4 * h * h) for j in range(n)] for i in range(n)])
    lam = np.linalg.eigvalsh(0.5 * (H + H.T)).max()
    eta = protocol_eta(chain, x)
    assert abs(1 / eta - lam) < 1e-6 * lam
    # stable at 1/lambda_max, divergent just beyond 2/lambda_max (negative control)
    ok = chain.pc(x, y, 300, eta)
    bad = chain.pc(x, y, 300, 2.2 * eta)
    assert np.isfinite(ok["w1"]).all() and np.abs(bad["w1"]).max() > 1e6 * np.abs(ok["w1"]).max()


def test_cosines_split_weights_and_biases() -> None:
    _, chain, x, y = _cell("relu")
    g = chain.backprop(x, y)[0]
    bad = dict(g, bm=-g["bm"], b1=-g["b1"], bl=-g["bl"])
    w, b = cosines(bad, g)
    assert w == pytest.approx(1.0, abs=1e-12) and b == pytest.approx(-1.0, abs=1e-12)
    _, free, x2, y2 = _cell("relu", bias=False)
    assert np.isnan(cosines(free.backprop(x2, y2)[0], free.backprop(x2, y2)[0])[1])


def test_the_cosine_is_flattened_over_all_weights() -> None:
    """One cosine over all weights flattened together (as the reference's tree cosine),
    not the mean of per-layer cosines: scaling one layer's gradient leaves every
    per-layer cosine at 1 but moves the flattened one."""
    _, chain, x, y = _cell("relu", bias=False)
    g = chain.backprop(x, y)[0]
    scaled = dict(g, wm=10 * g["wm"])
    a = np.concatenate([np.ravel(scaled[k]) for k in ("w1", "wm", "wl")])
    b = np.concatenate([np.ravel(g[k]) for k in ("w1", "wm", "wl")])
    w, _ = cosines(scaled, g)
    assert w == pytest.approx(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), abs=1e-12)
    assert w < 0.99


def test_reference_order() -> None:
    from hwbp.baselines.protocol import BATCH, reference_order

    (order,), diag = reference_order(200, 3)
    assert len(order) == (200 // BATCH) * BATCH and len(set(order.tolist())) == len(order)
    assert len(diag) == BATCH and len(set(diag.tolist())) == BATCH
    (again,), diag2 = reference_order(200, 3)
    (other,), _ = reference_order(200, 4)
    assert (again == order).all() and (diag2 == diag).all() and not (other == order).all()
    orders, _ = reference_order(200, 3, epochs=2)
    assert (orders[0] == order).all() and not (orders[1] == order).all()


def test_train_cell_cosine_and_eta_follow_the_reference_definition() -> None:
    """The row's eta is 1/lambda_max at the initial weights on the run's first batch, its
    cosine the method's gradient against backprop's at the weights the run ends with on
    the fixed diagnostic batch, and its mean cosine the mean over the steps (rebuilt here
    step by step)."""
    from hwbp.baselines.protocol import BATCH, gradient_of, reference_order, train_cell
    from hwbp.data import load_dataset

    d = standardize(load_dataset("digits"))
    L, steps = 4, 3
    row = train_cell(d, L, 32, "relu", "pc-alm", 2, max_steps=steps)
    chain = ResChain.from_graph(depth_resmlp(d.n_features, 32, d.n_classes, L, seed=2, bias=False), bias=False)
    (order,), diag = reference_order(d.x_train.shape[0], 2)
    eta = protocol_eta(chain, d.x_train[order[:BATCH]])
    assert row["eta"] == pytest.approx(eta, rel=1e-12) and row["T"] == 2 * L and row["steps"] == steps
    eye, adam, cw = np.eye(d.n_classes), {}, []
    xd, yd = d.x_train[diag], eye[d.y_train[diag]]
    at_init = cosines(gradient_of(chain, "pc-alm", xd, yd, 2 * L, eta), chain.backprop(xd, yd)[0])[0]
    for t in range(steps):
        idx = order[t * BATCH:(t + 1) * BATCH]
        x, y = d.x_train[idx], eye[d.y_train[idx]]
        g = gradient_of(chain, "pc-alm", x, y, 2 * L, eta)
        cw.append(cosines(g, chain.backprop(x, y)[0])[0])
        chain.step(g, adam, 1e-3 * np.sqrt(32 / L), t + 1)
    end = cosines(gradient_of(chain, "pc-alm", xd, yd, 2 * L, eta), chain.backprop(xd, yd)[0])[0]
    assert row["cosine_weights"] == pytest.approx(end, abs=1e-12)
    assert row["cosine_weights_mean"] == pytest.approx(np.mean(cw), abs=1e-12)
    assert row["cosine_weights_init"] == pytest.approx(cw[0], abs=1e-12)
    assert abs(end - at_init) > 1e-6 and abs(end - np.mean(cw)) > 1e-6  # three different numbers
    assert np.isnan(row["cosine_bias"])
    fixed = train_cell(d, L, 32, "relu", "pc-alm", 2, max_steps=1, eta=0.1)
    assert fixed["eta"] == 0.1 and fixed["cosine_weights_init"] != pytest.approx(row["cosine_weights_init"])


def test_standardize_and_the_missing_fashion_mnist_message(monkeypatch) -> None:
    from hwbp.data import DatasetMissingError, load_dataset
    from hwbp.data import datasets as ds

    d = standardize(load_dataset("digits"))
    assert abs(d.x_train.mean()) < 1e-12 and abs(d.x_train.std() - 1) < 1e-12
    monkeypatch.setattr(ds, "FASHION_MNIST_DIR", "/nonexistent/fashion-mnist")
    with pytest.raises(DatasetMissingError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


PROTOCOL_COLUMNS = ["dataset", "activation", "depth", "width", "method", "seed", "bias", "T", "eta", "steps",
                    "cosine_weights", "cosine_bias", "cosine_weights_mean", "cosine_bias_mean",
                    "cosine_weights_init", "test_acc", "wall_s"]


def test_protocol_table_shape(tmp_path) -> None:
    import run

    args = ["--protocol", "pc-alm", "--quick", "--depths", "3", "4", "--workers", "0", "--no-figures",
            "--conv-steps", "40", "--conv-depths", "3", "-o", str(tmp_path)]
    assert run.main(args) == 0
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
        assert list(rows[0]) == PROTOCOL_COLUMNS
    # depths x {backprop, dyadic, pc, pc-alm} + variants at the deepest (fp-pc, se-pc; linear:
    # backprop, dyadic, pc-alm) + the linear convergence row; one seed
    assert len(rows) == 2 * 4 + 2 + 3 + 1  # (the quick size runs the variants for 5 steps)
    assert {r["method"] for r in rows} == {"backprop", "dyadic", "pc", "pc-alm", "fp-pc", "se-pc", "pc-alm-conv"}
    for r in rows:
        assert float(r["eta"]) > 0 and int(r["T"]) == {"backprop": 0, "fp-pc": int(r["depth"]) - 1,
                                                       "pc-alm-conv": 40}.get(r["method"], 2 * int(r["depth"]))
        assert r["bias"] == "0" and r["cosine_bias"] == ""  # the reference's model is bias-free
        if r["method"] in ("dyadic", "fp-pc"):
            assert float(r["cosine_weights"]) > 1 - 1e-12 and float(r["cosine_weights_mean"]) > 1 - 1e-12
        if r["method"] == "pc":
            assert float(r["cosine_weights"]) < 0.9999
    md = (tmp_path / "results.md").read_text()
    assert "command: `python sims/depth/run.py --protocol pc-alm --quick" in md and "load average" in md
    assert (tmp_path / "linear_convergence.csv").exists()
    # --merge-from: a table built from another directory's rows runs nothing and keeps them all
    other = tmp_path / "merged"
    assert run.main(args[:-1] + [str(other), "--merge", "--merge-from", str(tmp_path)]) == 0
    with open(other / "results.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    md = (other / "results.md").read_text()
    assert "runs: 0 of 0" in md and f"rows kept from earlier runs: {len(rows)}" in md
    assert (other / "linear_convergence.csv").read_text() == (tmp_path / "linear_convergence.csv").read_text()


def test_quick_run_writes_to_a_scratch_directory(tmp_path) -> None:
    import run

    a = run.parse_args(["--quick"])
    b = run.parse_args(["--quick", "--protocol", "pc-alm"])
    for args in (a, b):
        out = Path(args.out).resolve()
        assert out != (ROOT / "sims" / "depth").resolve() and ROOT.resolve() not in out.parents
        assert out.is_dir() and not any(out.iterdir())
    assert Path(run.parse_args([]).out).resolve() == (ROOT / "sims" / "depth").resolve()
    assert Path(run.parse_args(["--protocol", "pc-alm"]).out).resolve() == (ROOT / "sims" / "depth" / "protocol")
    assert run.parse_args(["--quick", "-o", str(tmp_path)]).out == str(tmp_path)


def test_hwbp_train_protocol_prints_eta_and_uses_the_protocol(tmp_path, capsys) -> None:
    from hwbp.cli import main

    out = tmp_path / "m.onnx"
    assert main(["train", "--depth", "3", "--dataset", "digits", "--backend", "pc-alm", "--protocol", "pc-alm",
                 "--activation", "identity", "-o", str(out)]) == 0  # bias-free by default, as the reference
    text = capsys.readouterr().out
    from hwbp.data import load_dataset

    d = standardize(load_dataset("digits"))
    chain = ResChain.from_graph(depth_resmlp(64, 32, 10, 3, activation="identity", seed=0, bias=False), bias=False)
    assert f"eta = 1/lambda_max = {protocol_eta(chain, d.x_train[:64]):.6g}" in text
    assert out.exists()
    from hwbp.io import load_model

    assert not any(k.endswith("bias") for k in load_model(out.with_suffix(".hwbp")).parameters())
    assert main(["train", "--backend", "pc-alm", "--protocol", "pc-alm", "-o", str(tmp_path / "x.onnx")]) == 2
    # --bias: layers with biases (only with --protocol)
    assert main(["train", "--depth", "3", "--dataset", "digits", "--backend", "oracle", "--bias",
                 "-o", str(tmp_path / "y.onnx")]) == 2


def test_baselines_doc_quotes_the_committed_cell() -> None:
    """docs/baselines.md's figures for the paper's cell are those of the committed tables."""
    import re

    from scipy.stats import t

    def rows(path: Path) -> list[dict]:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))

    def ci(v: list[float]) -> str:
        a = np.array(v)
        return f"{a.mean():.3f} ± {t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)):.3f}"

    doc = (ROOT / "docs" / "baselines.md").read_text(encoding="utf-8")
    cell = [r for r in rows(ROOT / "sims" / "depth" / "protocol" / "cell" / "results.csv")
            if r["activation"] == "relu" and r["method"] == "pc-alm"]
    end = [float(r["cosine_weights"]) for r in sorted(cell, key=lambda r: int(r["seed"]))]
    mean = [float(r["cosine_weights_mean"]) for r in cell]
    line = re.search(r"^\| PC-ALM \| ([\d., ]+) \| ([\d.± ]+) \| ([\d.± ]+) \|", doc, re.M)
    assert line is not None
    assert line.group(1).strip() == ", ".join(f"{v:.3f}" for v in end)
    assert line.group(2).strip() == ci(end) and line.group(3).strip() == ci(mean)
    ablation = rows(ROOT / "sims" / "depth" / "protocol" / "ablation.csv")
    for variant, quoted in (("bias", "with biases"), ("eta-ref", "η = 0.2359")):
        v = ci([float(r["cosine_weights"]) for r in ablation if r["variant"] == variant])
        assert f"{quoted}: {v}" in doc, (variant, v)
