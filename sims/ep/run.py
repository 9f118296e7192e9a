"""Equilibrium propagation against the dyadic pair under ONE noise model (see nets.py).

    python sims/ep/run.py            # about 10 min on 2 shared cores; writes sims/ep/
    python sims/ep/run.py --quick -o DIR

Network: 64-32-10 (``tanh``, weights of variance 0.25/fan-in, seed 0) on scikit-learn's
digits; the gradient study uses the first 16 training samples.  Hardware: unit_V = 0.1 V,
rails at ±1 V (±10 units), kT/C noise at 300 K for C = 10 fF, 100 fF, 1 pF (σ from
:mod:`hwbp.hardware`), Euler-Maruyama dt = 0.05 τ, every phase 40 τ long (long enough
for the noise-free state of every method to settle, see ``settle_tau``), mismatch 0 or
1 % per device.  Methods: ``dyadic`` (one phase), ``ep-one-sided`` (free + nudged),
``ep-symmetric`` (free + two nudged).  Per (method, C, mismatch, β):

- ``snr_db`` = −10 log10(mean over 3 noise seeds of rel_err²), rel_err to the exact
  gradient of the network the circuit realizes (torch: backprop; implicit
  differentiation for EP);
- ``bias_rel_err``: the same without noise (EP's finite-β bias, the dyadic pair's
  mismatch bias);
- ``phases``, ``time_tau`` (phases × 40 τ) and ``settle_tau``: noise-free, the time at
  which the estimate gets and stays within 1e-3 (relative) of its own final value,
  phases added;
- ``swing``: the difference of the node voltages the gradient is read from, per unit
  of gradient, in units (β, β, 2β).

Then each method trains its network for one epoch on digits (batch 16, SGD lr 0.2,
β = 0.3, C = 100 fF, no mismatch, phases of 20 τ at dt = 0.1 τ): ``training.csv`` (test accuracy, with backprop on the
feed-forward network as the reference).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from nets import Net, dyadic_gradient, ep_gradient, ep_reference, ff_reference, rel_err  # noqa: E402

UNIT_V, RAIL_V, T_PHASE, DT = 0.1, 1.0, 40.0, 0.05
T_TRAIN, DT_TRAIN = 20.0, 0.1
CAPS_F = (1e-14, 1e-13, 1e-12)
BETAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
METHODS = {"dyadic": 1, "ep-one-sided": 2, "ep-symmetric": 3}
COLUMNS = ["method", "C_F", "sigma_units", "mismatch", "beta", "swing", "phases", "time_tau", "settle_tau",
           "snr_db", "bias_rel_err", "rel_err_rms"]


def sigma_units(c_f: float) -> float:
    """kT/C rms at 300 K in units of unit_V (hwbp's hardware model)."""
    from hwbp.hardware import hardware_from_mapping

    hw = hardware_from_mapping({"unit_V": UNIT_V, "noise": {"temperature_K": 300.0, "capacitance_F": c_f},
                                "rails": {"v_V": RAIL_V}})
    return hw.noise.sigma_V / UNIT_V


def estimate(method: str, nets: tuple, x, y, beta: float, sigma: float, rng, t_phase: float = T_PHASE,
             dt: float = DT) -> dict:
    """One gradient of ``method`` (``nets``: EP net, forward and backward devices of the pair)."""
    kw = dict(t_phase=t_phase, dt=dt, sigma=sigma, rail=RAIL_V / UNIT_V, rng=rng)
    if method == "dyadic":
        return dyadic_gradient(nets[1], nets[2], x, y, beta, **kw)
    return ep_gradient(nets[0], x, y, beta, symmetric=method == "ep-symmetric", **kw)


def settle_time(method: str, nets: tuple, x, y, beta: float) -> float:
    """Noise-free: total time (phases added) after which the estimate stays within 1e-3 of
    its final value (per-phase length scanned on a grid from 1 τ to 40 τ)."""
    final = estimate(method, nets, x, y, beta, 0.0, None)
    for t in (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40):
        if rel_err(estimate(method, nets, x, y, beta, 0.0, None, t_phase=float(t)), final) <= 1e-3:
            return float(t) * METHODS[method]
    return float("nan")


def study(x, y, caps, betas, seeds: int, mismatches=(0.0, 0.01)) -> list[dict]:
    """The rows of ``results.csv``."""
    base = Net.random(x.shape[1], 32, y.shape[1], 0, gain=0.5)
    rows = []
    settle: dict = {}
    for mm in mismatches:
        rng = np.random.default_rng(11)
        ep_net = base.mismatched(mm, rng) if mm else base
        fwd = base.mismatched(mm, rng) if mm else base
        bwd = base.mismatched(mm, rng) if mm else base
        nets = (ep_net, fwd, bwd)
        refs = {"dyadic": ff_reference(fwd, x, y)}
        refs["ep-one-sided"] = refs["ep-symmetric"] = ep_reference(ep_net, x, y)
        for method, phases in METHODS.items():
            for b in betas:  # noise-free settling, measured without mismatch
                if (method, b) not in settle:
                    settle[(method, b)] = settle_time(method, nets, x, y, b)
            for c in (caps if mm == 0 else caps[1:2]):
                sig = sigma_units(c)
                for b in betas:
                    bias = rel_err(estimate(method, nets, x, y, b, 0.0, None), refs[method])
                    errs = [rel_err(estimate(method, nets, x, y, b, sig, np.random.default_rng(100 + s)),
                                    refs[method]) ** 2 for s in range(seeds)]
                    rows.append({"method": method, "C_F": c, "sigma_units": sig, "mismatch": mm, "beta": b,
                                 "swing": 2 * b if method == "ep-symmetric" else b, "phases": phases,
                                 "time_tau": phases * T_PHASE, "settle_tau": settle[(method, b)],
                                 "snr_db": float(-10 * np.log10(np.mean(errs))), "bias_rel_err": bias,
                                 "rel_err_rms": float(np.sqrt(np.mean(errs)))})
                    print({k: rows[-1][k] for k in ("method", "C_F", "mismatch", "beta", "snr_db", "bias_rel_err")},
                          file=sys.stderr, flush=True)
    return rows


def training(data, epochs: int, beta: float = 0.3, lr: float = 0.2, c_f: float = 1e-13) -> list[dict]:
    """Each method trains its own network (SGD, batch 16) under kT/C noise (phases of
    ``T_TRAIN`` τ, Euler-Maruyama step ``DT_TRAIN``); test accuracy."""
    sig = sigma_units(c_f)
    eye = np.eye(10)
    out = []
    for method in ("backprop", "dyadic", "ep-one-sided", "ep-symmetric"):
        net = Net.random(data.x_train.shape[1], 32, 10, 0, gain=0.5)
        rng = np.random.default_rng(5)
        t0 = time.perf_counter()
        for _ in range(epochs):
            order = rng.permutation(len(data.x_train))
            for i in range(len(order) // 16):
                idx = order[16 * i:16 * (i + 1)]
                x, y = data.x_train[idx], eye[data.y_train[idx]]
                if method == "backprop":
                    g = ff_reference(net, x, y)
                else:
                    g = estimate(method, (net, net, net), x, y, beta, sig, rng, t_phase=T_TRAIN, dt=DT_TRAIN)
                for k in g:
                    setattr(net, k, getattr(net, k) - lr * g[k])
        if method in ("backprop", "dyadic"):
            pred = np.tanh(data.x_test @ net.w1.T + net.b1) @ net.w2.T + net.b2
        else:
            from nets import ep_free_state

            pred = ep_free_state(net, data.x_test, eye[data.y_test])[1]
        out.append({"method": method, "epochs": epochs, "beta": beta if method != "backprop" else 0,
                    "C_F": c_f if method != "backprop" else 0,
                    "test_acc": float((pred.argmax(1) == data.y_test).mean()), "wall_s": time.perf_counter() - t0})
        print(out[-1], file=sys.stderr, flush=True)
    return out


def _csv(rows: list[dict], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in cols])
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    from hwbp.data import load_dataset
    from hwbp.io import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one C, three betas, two seeds, no training")
    p.add_argument("-o", "--out", metavar="DIR", help="output directory (default: sims/ep; --quick: a scratch one)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs (default: 1)")
    p.add_argument("--train-only", action="store_true",
                   help="keep OUT/results.csv (the gradient study) and run the training, the table and figures")
    args = p.parse_args(argv)
    if args.out is None:
        import tempfile

        args.out = tempfile.mkdtemp(prefix="hwbp-ep-quick-") if args.quick else str(HERE)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("digits")
    x, y = data.x_train[:16], np.eye(10)[data.y_train[:16]]
    t0 = time.perf_counter()
    if args.train_only:
        with open(out / "results.csv", newline="") as fh:
            rows = [{k: (v if k == "method" else int(v) if k == "phases" else float(v)) for k, v in r.items()}
                    for r in csv.DictReader(fh)]
    else:
        rows = study(x, y, CAPS_F[1:2] if args.quick else CAPS_F, BETAS[1::2] if args.quick else BETAS,
                     2 if args.quick else 3)
        atomic_write_text(out / "results.csv", _csv(rows, COLUMNS))
    train = [] if args.quick else training(data, args.epochs)
    if train:
        atomic_write_text(out / "training.csv", _csv(train, ["method", "epochs", "beta", "C_F", "test_acc", "wall_s"]))
    from figures import write_figures
    from report import report

    write_figures(out, rows)
    command = "python sims/ep/run.py" + ("" if not (argv or sys.argv[1:]) else " " + " ".join(argv or sys.argv[1:]))
    atomic_write_text(out / "results.md", report(rows, train, command, time.perf_counter() - t0))
    print(f"wrote {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
