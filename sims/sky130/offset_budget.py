"""Synapse offset budget: what per-synapse output offset a network tolerates, and what device
area the SKY130 synapse cell would need to give it (reference backend, no ngspice).

For the digits MLP (``examples/mlp_digits.onnx``, ``--loss ce``, ``examples/digits_batch.npz``)
and the 4-8-3 tanh MLP of the transistor-level tests (seed 0, MSE, random batch of 2), at
beta = 1: the minimum over tensors of the cosine against exact backprop of the nominal
network (:func:`hwbp.verify.run.verify` with a hardware instance, as ``hwbp verify
--hardware`` does) against the synapse offset sigma ``[synapses] offset_fwd_sigma =
offset_bwd_sigma`` (correlation 0), over several instance seeds, with every other term of the
derived model (``sims/sky130/characterization/hardware.toml``) either off (``offsets alone``)
or as derived (``all terms``).  Sigma 0 is the other terms alone.

Writes ``offset_budget.csv`` (one row per network, mode, sigma and seed; header lines ``#``
with the command and the CPU time), ``offset_budget.md`` (rebuilt from the CSV alone:
``--report``) and ``offset_budget.png``.

Usage: ``.venv/bin/python sims/sky130/offset_budget.py [--seeds N] [--report] [-o DIR]``
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from hwbp.hardware import hardware_from_mapping  # noqa: E402
from hwbp.io import load_batch, load_model, random_batch  # noqa: E402
from hwbp.models import random_mlp  # noqa: E402
from hwbp.pdk.cells import cell_area_um2, get_block  # noqa: E402
from hwbp.verify.run import verify  # noqa: E402

MODEL_TOML = HERE / "characterization" / "hardware.toml"
#: offset sigmas swept (units of the synapse's full-scale output); 0 = the other terms alone
SIGMAS = (0.0, *[float(f"{s:.3g}") for s in np.logspace(-5, math.log10(0.3), 14)])
NETS = ("digits", "mlp483")
MODES = ("offsets alone", "all terms")
#: at sigma 0, the derived model without one section: what the other terms' error comes from
DROPS = ("cells", "mismatch", "nodes", "loss")
TARGET = 0.99
#: below this min cosine at sigma 0 (the other terms alone), no relative criterion is given
RELATIVE_FLOOR = 0.9
KEYS = ["net", "mode", "sigma", "seed", "min_cosine", "worst_tensor"]
#: the upper pairs' and the PMOS loads' parameters of circuits/sky130/hwbp_synapse.cir
UPPER, LOADS = ("w", "l"), ("wp", "lp")


def network(name: str):
    """``(graph, batch)`` of network ``name`` (``digits`` or ``mlp483``)."""
    if name == "digits":
        graph = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
        return graph, load_batch(ROOT / "examples" / "digits_batch.npz", graph, loss="ce")
    graph = random_mlp([4, 8, 3], activation="tanh", seed=0).with_loss("mse")
    return graph, random_batch(graph, 2, seed=0)


def hardware(mode: str, sigma: float, model_toml: Path = MODEL_TOML):
    """The hardware model at synapse offset ``sigma`` (both directions, correlation 0), the
    derived model's other terms off (``offsets alone``), as derived (``all terms``) or as derived
    but one section (``all terms without [SECTION]``)."""
    syn = {"offset_fwd_sigma": sigma, "offset_bwd_sigma": sigma, "offset_correlation": 0.0}
    if mode == "offsets alone":
        return hardware_from_mapping({"synapses": syn})
    data = tomllib.loads(model_toml.read_text())
    data["synapses"] = syn
    if mode.startswith("all terms without "):
        data.pop(mode.removeprefix("all terms without ").strip("[]"))
    return hardware_from_mapping(data)


def point(graph, batch, mode: str, sigma: float, seed: int) -> tuple[float, str]:
    """Minimum cosine over tensors (against exact backprop of the nominal network) and its
    tensor, for instance ``seed`` of :func:`hardware` (reference backend, beta = 1)."""
    v = verify(graph, batch, backend="reference", hardware=hardware(mode, sigma), instance_seed=seed)
    cos = {k: float(m["cosine"]) for k, m in v.report["parameters"].items()}
    worst = min(cos, key=cos.__getitem__)
    return cos[worst], worst


def sweep(seeds: int, sigmas: Sequence[float] = SIGMAS) -> list[dict[str, Any]]:
    """Every (network, mode, sigma, seed) row of the study."""
    from tqdm import tqdm

    rows = []
    for net in NETS:
        graph, batch = network(net)
        jobs = [(m, s, k) for m in MODES for s in sigmas for k in range(seeds)]
        jobs += [(f"all terms without [{d}]", 0.0, k) for d in DROPS for k in range(seeds)]
        for mode, sigma, seed in tqdm(jobs, desc=net, unit="instance"):
            c, t = point(graph, batch, mode, sigma, seed)
            rows.append({"net": net, "mode": mode, "sigma": sigma, "seed": seed, "min_cosine": c, "worst_tensor": t})
    return rows


def write_csv(path: Path, rows: Sequence[dict], header: Sequence[str]) -> None:
    with path.open("w", newline="") as fh:
        for h in header:
            fh.write(f"# {h}\n")
        w = csv.DictWriter(fh, KEYS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})


def read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """``(header lines, rows)`` of :func:`write_csv`'s file."""
    lines = path.read_text().splitlines()
    header = [ln[2:] for ln in lines if ln.startswith("# ")]
    rows = list(csv.DictReader([ln for ln in lines if not ln.startswith("#")]))
    for r in rows:
        r.update(sigma=float(r["sigma"]), seed=int(r["seed"]), min_cosine=float(r["min_cosine"]))
    return header, rows


def stats(rows: Sequence[dict]) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Per (network, mode): sigma and the 5th, 50th, 95th percentile of the min cosine."""
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for net in NETS:
        for mode in MODES:
            sub = [r for r in rows if r["net"] == net and r["mode"] == mode]
            sig = sorted({r["sigma"] for r in sub})
            vals = [np.array([r["min_cosine"] for r in sub if r["sigma"] == s]) for s in sig]
            out[net, mode] = {"sigma": np.array(sig), **{f"p{q}": np.array([np.percentile(v, q) for v in vals])
                                                         for q in (5, 50, 95)}}
    return out


def tolerated(sigma: np.ndarray, cos: np.ndarray, target: float = TARGET) -> tuple[float, float]:
    """``(grid, crossing)``: the largest swept sigma > 0 up to which ``cos`` stays >= ``target``
    at every sigma (nan: not even the smallest, or at sigma 0), and the sigma where the curve
    crosses ``target`` between that grid point and the next, interpolated in log sigma
    (``grid`` itself when none follows)."""
    ok = cos >= target
    if not ok[0] or len(ok) < 2 or not ok[1]:
        return math.nan, math.nan
    i = int(np.argmin(ok)) - 1 if not ok.all() else len(ok) - 1
    if i == len(ok) - 1:
        return float(sigma[i]), float(sigma[i])
    x0, x1 = math.log(sigma[i]), math.log(sigma[i + 1])
    f = (cos[i] - target) / (cos[i] - cos[i + 1])
    return float(sigma[i]), float(math.exp(x0 + f * (x1 - x0)))


def measured_sigma(model_toml: Path = MODEL_TOML) -> tuple[float, float]:
    """The synapse cell's measured offset sigmas ``(forward, backward)``."""
    syn = tomllib.loads(model_toml.read_text())["synapses"]
    return float(syn["offset_fwd_sigma"]), float(syn["offset_bwd_sigma"])


def area(factor: float, parts: Sequence[tuple[str, str]]) -> float:
    """The synapse cell's device area (um^2) with the W*L of the devices ``parts`` (pairs of
    parameter names) scaled by ``factor`` (W and L each by its square root: the same W/L)."""
    spec = get_block("synapse")
    p = dict(spec.params)
    base = {"w": 4.0, "l": 2.0, "wp": 13.0, "lp": 2.0}
    for wk, lk in parts:
        p[wk] = p.get(wk, base[wk]) * math.sqrt(factor)
        p[lk] = p.get(lk, base[lk]) * math.sqrt(factor)
    return cell_area_um2(spec.path, spec.subckt, p)["total"]


def _fmt(x: float) -> str:
    return "none" if math.isnan(x) else f"{x:.3g}"


def report(header: Sequence[str], rows: Sequence[dict]) -> str:
    """The Markdown report, from the CSV's header and rows alone."""
    st = stats(rows)
    fwd, bwd = measured_sigma()
    meas = max(fwd, bwd)
    seeds = len({r["seed"] for r in rows})
    md = ["# Synapse offset budget: the tolerated offset and the device area it needs", ""]
    md += [f"{h}  " for h in header]
    md += ["", f"Minimum over tensors of the cosine against exact backprop of the nominal network (reference "
           f"backend, beta = 1), {seeds} instance seeds per point, against the synapse output offset sigma "
           "(`[synapses] offset_fwd_sigma = offset_bwd_sigma`, correlation 0; units of the synapse's full-scale "
           "output w*x at w = the network's largest |w|, x = 1 unit).  `offsets alone`: every other term off; "
           f"`all terms`: every other term of `{MODEL_TOML.relative_to(ROOT)}` as derived (sigma 0: those terms "
           "alone).  digits: `examples/mlp_digits.onnx --loss ce --batch examples/digits_batch.npz`; mlp483: the "
           "tanh MLP 4-8-3 of the transistor-level tests (seed 0, MSE, random batch of 2).  Figure: "
           "`offset_budget.png` (1 - min cosine against sigma, median and 5-95 % band; the command and CPU time in "
           "its PNG Description).", ""]
    md += ["| network | mode | sigma | min cos p5 | median | p95 |", "|---|---|---|---|---|---|"]
    for (net, mode), s in st.items():
        for i, sig in enumerate(s["sigma"]):
            md.append(f"| {net} | {mode} | {sig:.3g} | {s['p5'][i]:.4f} | {s['p50'][i]:.4f} | {s['p95'][i]:.4f} |")
    md += ["", "## Where the other terms' error comes from (sigma 0)", "",
           "Median (p5) min cosine at sigma 0 with every term as derived but one section left out.", "",
           "| network | all terms | " + " | ".join(f"without [{d}]" for d in DROPS) + " |",
           "|---|---|" + "---|" * len(DROPS)]
    for net in NETS:
        cells = []
        for mode in ["all terms", *[f"all terms without [{d}]" for d in DROPS]]:
            v = np.array([r["min_cosine"] for r in rows if r["net"] == net and r["mode"] == mode and r["sigma"] == 0])
            cells.append(f"{np.percentile(v, 50):.3f} ({np.percentile(v, 5):.3f})")
        md.append(f"| {net} | " + " | ".join(cells) + " |")
    md += ["", f"## Tolerated offset (min cosine >= {TARGET})", "",
           f"The largest swept sigma up to which the statistic stays >= {TARGET} at every sigma, and (in brackets) "
           "where it crosses, interpolated in log sigma.  Where the other terms alone (sigma 0) already give less "
           f"than {TARGET}, the criterion is instead that the offsets at most double 1 - cosine of sigma 0 (only where sigma 0 gives "
           f">= {RELATIVE_FLOOR}; below it the network fails without any offset and no sigma is given).  The "
           "area factor is (measured sigma / crossing sigma)^2 "
           f"by Pelgrom scaling (sigma ~ 1/sqrt(W*L)) from the measured cell's larger sigma, {meas:.3g} "
           f"(forward {fwd:.3g}, backward {bwd:.3g}) at the present size.  Cell area: the synapse is "
           f"{area(1.0, []):.0f} um^2 of devices; `upper pairs` scales the eight upper-pair devices (W*L = 8 um^2 "
           "each, both Gilbert halves) alone, `+ loads` the four PMOS mirror devices (26 um^2 each) with them, "
           "W and L each by the square root of the factor (the same W/L, bias point and currents).", "",
           "| network | mode | statistic | min cosine | tolerated sigma (crossing) | area factor | cell area, upper pairs (um^2) "
           "| cell area, + loads (um^2) |", "|---|---|---|---|---|---|---|---|"]
    for (net, mode), s in st.items():
        for q, name in (("p50", "median"), ("p5", "5th percentile")):
            base = s[q][0]
            target = TARGET if base >= TARGET else 1.0 - 2.0 * (1.0 - base) if base >= RELATIVE_FLOOR else math.nan
            g, x = tolerated(s["sigma"], s[q], target) if not math.isnan(target) else (math.nan, math.nan)
            k = (meas / x) ** 2 if not math.isnan(x) else math.nan
            a1 = _fmt(area(k, [UPPER])) if not math.isnan(k) else "none"
            a2 = _fmt(area(k, [UPPER, LOADS])) if not math.isnan(k) else "none"
            crit = (f">= {TARGET}" if target == TARGET else f">= {target:.4f} (1 - cos twice sigma 0's)"
                    if not math.isnan(target) else f"none: sigma 0 gives {base:.3f}")
            md.append(f"| {net} | {mode} | {name} | {crit} | {_fmt(g)} ({_fmt(x)}) | {_fmt(k)} | {a1} | {a2} |")
    md += ["", "`none`: no sigma meets the criterion (the other terms alone fail it, or the network tolerates less than "
           "the smallest swept sigma).", "",
           "What this does not measure: the Pelgrom factor assumes the offsets come from the scaled devices in "
           "proportion to their present share and that nothing else in the cell changes (bandwidth: larger "
           "upper pairs load the input divider and slow the step response).  The same reduction could come, "
           "untested here, from a larger volts-per-unit at the synapse's upper pairs (the input-referred pair "
           "offsets shrink with it, within the pairs' linear range), from an offset-cancelling (chopped or "
           "auto-zeroed) readout, or from a per-synapse calibration; none of these is simulated."]
    return "\n".join(md) + "\n"


def figure(rows: Sequence[dict], path: Path, header: Sequence[str] = ()) -> None:
    """1 - min cosine (log) against the offset sigma (log), median and 5-95 % band per network
    and mode, the measured cell's sigma marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = stats(rows)
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors = {"digits": "tab:blue", "mlp483": "tab:orange"}
    styles = {"offsets alone": "-", "all terms": "--"}
    for (net, mode), s in st.items():
        m = s["sigma"] > 0
        sig = s["sigma"][m]
        lo, med, hi = (np.clip(1.0 - s[q][m], 1e-12, None) for q in ("p95", "p50", "p5"))
        ax.plot(sig, med, styles[mode], color=colors[net], marker="o", ms=3, label=f"{net}, {mode} (median)")
        ax.fill_between(sig, lo, hi, color=colors[net], alpha=0.12 if mode == "all terms" else 0.22)
    meas = max(measured_sigma())
    ax.axvline(meas, color="k", lw=1, ls=":", label=f"measured cell (sigma {meas:.2f})")
    ax.axhline(1.0 - TARGET, color="gray", lw=1, ls="-.", label=f"cosine {TARGET}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("synapse output offset sigma (units of the full-scale synapse output w·x)")
    ax.set_ylabel("1 − min cosine over tensors (vs. nominal backprop)")
    ax.set_title("Synapse offset budget (reference backend, β = 1; bands: 5–95 % of instances)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Description": " ".join(header)})
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=32, help="instance seeds per point (default 32)")
    ap.add_argument("--report", action="store_true", help="rebuild the .md and .png from the committed CSV alone")
    ap.add_argument("-o", "--out", type=Path, default=HERE, help="output directory (default sims/sky130)")
    args = ap.parse_args(argv)
    csv_path = args.out / "offset_budget.csv"
    if not args.report:
        t0 = time.process_time()
        rows = sweep(args.seeds)
        cpu = time.process_time() - t0
        cmd = ".venv/bin/python sims/sky130/offset_budget.py" + ("" if args.seeds == 32 else f" --seeds {args.seeds}")
        header = [f"Produced by `{cmd}` (rebuild the report: `{cmd} --report`).",
                  f"CPU time: {cpu:.0f} s for {len(rows)} reference instances."]
        write_csv(csv_path, rows, header)
    header, rows = read_csv(csv_path)
    (args.out / "offset_budget.md").write_text(report(header, rows))
    figure(rows, args.out / "offset_budget.png", header)


if __name__ == "__main__":
    main()
