"""Run a network compiled by ``hwbp compile --target lava`` in Lava's CPU simulator and
check its gradients against the exact ones.

The network runs as one Lava process (``lavaproc/fused.py``: every population and
term in one process model), which exchanges the batch, the start state, the parameters
and the results with this program through its host pipes (``lavaproc/host.py``: one
message each way), as ``hwbp verify --backend lava`` does on its kept runtime.

This file is copied verbatim into the output directory next to ``params.npz`` (the
topology as JSON text, every parameter array, the default batch and the exact
gradients of the network on it, computed at compile time by hwbp's backprop oracle;
no pickle), ``selfcheck.py`` (the comparison, numpy only), ``lavaproc/`` (the
processes and ProcessModels) and ``lava_compat.py`` (Python 3.11 support for
lava-nc 0.10.0).  It needs only numpy and lava-nc::

    python run_lava.py [--batch BATCH.npz] [--steps N]

``BATCH.npz`` holds ``x`` (or one array per input) and ``y``; without it the batch
stored at compile time is used.  The gradient of each parameter is
``dl/dW = g mean_b e φ(u)ᵀ / beta`` (``g`` the term's fixed gain, ``φ`` its
source-side activation) built from the gate signals ``e`` that the term processes
produced (a parameter used by several terms, tied weights, gets the sum of every
use's); each population's sensitivity is its tension / beta.  The program prints the
table of ``hwbp verify`` (rel_err, cosine, max_abs_err per tensor) and PASSED or
FAILED, and exits 1 when FAILED.  On a batch other than the stored one there is no
reference: it prints the gradients' norms and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def load() -> tuple[dict, dict]:
    """Topology and arrays from ``params.npz``."""
    with np.load(HERE / "params.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("topology"))), arrays


def params_of(arrays: dict, prefix: str) -> dict:
    """Process parameters stored under ``prefix`` (0-d arrays become Python scalars)."""
    out = {}
    for key, value in arrays.items():
        if key.startswith(prefix):
            out[key[len(prefix):]] = value.item() if value.ndim == 0 else value
    return out


def batch_of(top: dict, arrays: dict, path: str | None) -> tuple[dict, np.ndarray]:
    """Inputs by name and targets: the file's, or the batch stored at compile time."""
    if path is None:
        return params_of(arrays, "check/x/"), arrays["check/y"]
    with np.load(path, allow_pickle=False) as z:
        data = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    names = [i["name"] for i in top["inputs"]]
    x = {names[0]: data["x"]} if "x" in data and len(names) == 1 else {n: data[n] for n in names}
    return x, data["y"]


def main(argv: list[str] | None = None) -> int:
    """Build the processes, run ``steps + 1`` Lava steps, print the gradient table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", help="npz with x (or one array per input) and y")
    ap.add_argument("--steps", type=int, help="unit steps of the dynamics (default: compiled)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    # Lava's model discovery executes the modules next to a Process's module as top-level
    # scripts, where fixed_models' package-relative import cannot resolve; the models are
    # given explicitly (exception_proc_model_map), so its warning is noise
    warnings.filterwarnings("ignore", message="Cannot import module", category=UserWarning)
    import lava_compat
    import selfcheck

    lava_compat.install()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from lavaproc.fused import FUSED_FIXED_MODELS, FUSED_FLOAT_MODELS, NetworkProcess, network_layout
    from lavaproc.host import recv_network, send_network
    from lavaproc.processes import activation

    top, arrays = load()
    fixed = top["precision"] == "fixed"
    scale = 2.0 ** -top["S"] if fixed else 1.0
    top_int = (1 << (top["state_bits"] - 1)) - 1 if fixed else 0

    def enc(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return np.clip(np.rint(v / scale), -top_int - 1, top_int).astype(np.int64) if fixed else v

    x, y = batch_of(top, arrays, args.batch)
    steps = top["steps"] if args.steps is None else args.steps
    B = len(y)
    xs = {i["name"]: enc(x[i["name"]]) for i in top["inputs"]}
    state, targets, weights, biases, pop_rows, term_rows = {}, {}, {}, {}, [], []
    for p in top["populations"]:
        state[p["name"]] = enc(np.zeros((B, p["size"])))
        targets[p["name"]] = enc(y) if p["name"] == top["loss_population"] else state[p["name"]]
        pop_rows.append((p["name"], p["size"], params_of(arrays, f"pop/{p['name']}/")))
        for k, t in enumerate(p["terms"]):
            prm = params_of(arrays, f"term/{p['name']}/{k}/")
            w, b = prm.pop("weight", None), prm.pop("bias", None)
            weights[(p["name"], k)], biases[(p["name"], k)] = w, b
            term_rows.append(((p["name"], k), t["source"], t["n_in"], p["size"], w is not None, prm))
    # the whole network as one process model (lavaproc/fused.py); one host message each way
    layout = network_layout(B, steps, [(i["name"], i["size"], params_of(arrays, "input/")) for i in top["inputs"]],
                            pop_rows, term_rows)
    net = NetworkProcess(layout=layout, name="network")
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if fixed else "floating_pt",
                       exception_proc_model_map=FUSED_FIXED_MODELS if fixed else FUSED_FLOAT_MODELS)
    net.create_runtime(run_cfg=cfg)
    try:
        send_network(net, layout, xs, state, state, targets, weights, biases)
        net.run(condition=RunSteps(num_steps=steps + 1))
        got_means, got_tensions, got_gates = recv_network(net, layout)
        means = {n: np.asarray(v, dtype=np.float64) * scale for n, v in got_means.items()}
        tensions = {n: np.asarray(v, dtype=np.float64) * scale for n, v in got_tensions.items()}
        rows: dict[str, np.ndarray] = {}

        def add(name: str, g: np.ndarray) -> None:
            rows[name] = rows[name] + g if name in rows else g

        for p in top["populations"]:
            for k, t in enumerate(p["terms"]):
                if t["weight"] is None:
                    continue
                e = np.asarray(got_gates[(p["name"], k)], dtype=np.float64) * scale / top["beta"]
                u = means[t["source"]] if t["source"] in means else x[t["source"]]
                phi = t.get("source_activation", "identity")
                if phi != "identity":
                    u = activation(phi, u, t["source_alpha"])[0]
                add(t["weight"], t.get("gain", 1.0) * (e.T @ u) / B)
                if t["bias"] is not None:
                    add(t["bias"], e.sum(axis=0) / B)
    finally:
        net.stop()
    print(f"{top['model']}: {top['precision']} Lava models, {steps} unit steps ({steps + 1} Lava steps), "
          f"batch {B}, loss {top['loss']}, beta {top['beta']:g}")
    got = dict(rows)
    got.update({f"dl/d[{n}]": t / top["beta"] for n, t in tensions.items()})
    if not selfcheck.same_batch(x, y, params_of(arrays, "check/x/"), arrays["check/y"]):
        print("no exact gradients stored for this batch (they are for the batch hwbp compile stored; give it "
              "--batch to check another): parameter, shape, |grad|")
        for name, g in rows.items():
            print(f"{name:<24}{'x'.join(map(str, g.shape)):<12}{np.linalg.norm(g):>14.6e}")
        return 0
    table, passed = selfcheck.check(got, params_of(arrays, "check/grad/"), top["rtol"], top["min_cosine"])
    print(table)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
