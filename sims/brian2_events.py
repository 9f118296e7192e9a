"""Event-driven (sigma-delta) messaging in Brian2: gradient error against events sent.

Every population neuron sends its mean, every term its gated sensitivity, only when the
value moved by more than theta since its last event (``--event-threshold``).  For the
digits MLP (``examples/mlp_digits.onnx``, 8 digits, cross-entropy) and a residual tanh
MLP of depth 8 (width 8, 4 samples, MSE), each theta is run in Brian2 (Brian2 events:
threshold, on_pre/on_post, numpy code generation) and in the reference implementation
of the same rule (``hwbp.sim.events``); both start at zero and run exponential Euler
with dt = 0.05 tau for 12 L tau.  Reported: events per sample (Brian2), whether the
reference counted the same events, the gradient rel_err (largest over parameters) and
the smallest cosine against exact backprop, and the continuous run (no events: every
value sent every step) for comparison.

Writes ``sims/brian2_events.csv`` (all numbers), ``sims/brian2_events.md`` (table)
and ``sims/brian2_events.png`` (rel_err and cosine against events per sample).

Usage::

    .venv/bin/python sims/brian2_events.py
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from outdir import add_out_arg, output_dir  # noqa: E402
from hwbp.io import atomic_write_bytes, atomic_write_text, load_batch, load_model  # noqa: E402
from hwbp.lower import lower  # noqa: E402
from hwbp.models import random_resmlp  # noqa: E402
from hwbp.oracle import exact_gradients  # noqa: E402
from hwbp.sim.simulate import simulate_events  # noqa: E402
from hwbp.targets.brian2.backend import Brian2Backend  # noqa: E402
from hwbp.types import Batch  # noqa: E402
from hwbp.verify.compare import compare  # noqa: E402
from hwbp.verify.readout import read_gradients  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THETAS = (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-5, 1e-6)
DT = 0.05


def cases() -> dict[str, tuple]:
    """The two models with their loss-ported graphs and batches."""
    digits = load_model(ROOT / "examples" / "mlp_digits.onnx").with_loss("ce")
    full = load_batch(ROOT / "examples" / "digits_batch.npz", digits, loss="ce")
    db = Batch({"x": np.asarray(full.x["x"][:8])}, np.asarray(full.y[:8]))
    res = random_resmlp(6, 8, 3, 6, activation="tanh", seed=8, name="resmlp8").with_loss("mse")
    rng = np.random.default_rng(8)
    rb = Batch({"x": rng.standard_normal((4, 6))}, rng.standard_normal((4, 3)))
    return {"digits MLP (L=3)": (digits, db), "residual MLP (L=8)": (res, rb)}


def _score(system, state, batch, exact) -> tuple[float, float]:
    cmp = compare(read_gradients(system, state, batch), exact)
    worst = max(m.rel_err for m in cmp.parameters.values())
    cos = min(m.cosine for m in cmp.parameters.values())
    return float(worst), float(cos)


def run(build_dir: str) -> list[dict]:
    rows = []
    for label, (graph, batch) in cases().items():
        system = lower(graph)
        exact = exact_gradients(graph, batch)
        be = Brian2Backend()
        cont = be.simulate(system, batch, {"dt": DT, "build_dir": build_dir})
        err, cos = _score(system, cont.state, batch, exact)
        values = sum(p.size for p in system.populations) + sum(
            system.population(p.name).size for p in system.populations for t in p.terms
            if system.is_population(t.source))
        rows.append({"model": label, "theta": 0.0, "events_per_sample": values * cont.settle["steps"],
                     "same_as_reference": "", "rel_err": err, "min_cosine": cos, "continuous": True})
        for theta in THETAS:
            ours = be.simulate(system, batch, {"dt": DT, "event_threshold": theta, "build_dir": build_dir})
            ref = simulate_events(system, batch, threshold=theta, dt=DT)
            err, cos = _score(system, ours.state, batch, exact)
            rows.append({"model": label, "theta": theta, "events_per_sample": ours.stats["events_per_sample"],
                         "same_as_reference": ours.stats["events"] == ref.stats["events"],
                         "rel_err": err, "min_cosine": cos, "continuous": False})
            print(f"{label}: theta={theta:g} events/sample={rows[-1]['events_per_sample']:.0f} "
                  f"rel_err={err:.3g} cos={cos:.6f} same={rows[-1]['same_as_reference']}", file=sys.stderr)
    return rows


def write(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv = ["model,theta,events_per_sample,same_events_as_reference,rel_err,min_cosine"]
    md = ["# Event-driven messaging in Brian2: gradient error against events sent", "",
          "Sigma-delta messaging: a mean (forward) or gated sensitivity (backward) is sent when it moved by "
          "more than theta since its last event.  Brian2 (events, numpy code generation) and the reference "
          f"rule, exponential Euler with dt = {DT} tau for 12 L tau from rest.  Made by `sims/brian2_events.py`.",
          "", "| model | theta | events / sample | same events as reference | rel_err | min cosine |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        theta = "continuous" if r["continuous"] else f"{r['theta']:g}"
        csv.append(f"{r['model']},{theta},{r['events_per_sample']:.1f},{r['same_as_reference']},"
                   f"{r['rel_err']:.6e},{r['min_cosine']:.12f}")
        md.append(f"| {r['model']} | {theta} | {r['events_per_sample']:.0f} | {r['same_as_reference'] or '-'} | "
                  f"{r['rel_err']:.2e} | {r['min_cosine']:.9f} |")
    md += ["", "Continuous: every value sent at every step (populations' means and the gates of the terms "
           "that read a population).  As theta falls the error falls about in proportion to theta towards the "
           "continuous run's, and the events grow; theta = 0 (every change sent) is the continuous run to "
           "round-off (tests/test_events.py).  The reference implementation counts exactly the same events "
           "at every theta.", ""]
    atomic_write_text(out / "brian2_events.csv", "\n".join(csv) + "\n")
    atomic_write_text(out / "brian2_events.md", "\n".join(md))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for model, marker in zip(dict.fromkeys(r["model"] for r in rows), ("o", "s")):
        ev = [r for r in rows if r["model"] == model and not r["continuous"]]
        cont = next(r for r in rows if r["model"] == model and r["continuous"])
        x = [r["events_per_sample"] for r in ev]
        line, = ax1.loglog(x, [r["rel_err"] for r in ev], marker=marker, label=model)
        ax1.axhline(cont["rel_err"], color=line.get_color(), ls=":", lw=1)
        ax1.plot([cont["events_per_sample"]], [cont["rel_err"]], marker="*", ms=12, color=line.get_color())
        for r in ev:
            ax1.annotate(f"{r['theta']:g}", (r["events_per_sample"], r["rel_err"]), fontsize=7,
                         textcoords="offset points", xytext=(3, 3))
        ax2.semilogx(x, [1 - r["min_cosine"] for r in ev], marker=marker, label=model)
    ax2.set_yscale("log")
    ax1.set(xlabel="events per sample", ylabel="gradient rel_err (largest parameter)",
            title="error vs events (labels: theta; star: continuous)")
    ax2.set(xlabel="events per sample", ylabel="1 - cosine (smallest parameter)", title="direction")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    atomic_write_bytes(out / "brian2_events.png", buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_arg(ap)
    args = ap.parse_args(argv)
    out = output_dir(ap, args, HERE, "brian2_events")
    with tempfile.TemporaryDirectory(prefix="hwbp-brian2-") as build:
        write(run(build), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
