"""On-chip learning: whole training epochs inside one Lava run.

Each epoch is one run of ``blocks * (2L + 1)`` Lava steps: block ``k`` clamps
mini-batch ``k`` (the input and loss processes hold the epoch's shuffled samples),
the populations reset, settle for ``2L`` unit steps, and at the block's last step
every term applies ``ΔW = -(lr / batch) g e φ(u)ᵀ`` and ``Δb = -(lr / batch) sum e``
with its own gate signal ``e``, input ``u``, fixed gain ``g`` and source-side
activation ``φ`` (plain SGD, local to the synapse).  In fixed
point the weights stay integers from epoch to epoch (stochastic rounding of ``ΔW``;
rule 8 of :mod:`hwbp.targets.lava.lavaproc.fixed_models`).  The host only feeds the
samples and, after each epoch, reads the weights back to measure test accuracy.
The last incomplete mini-batch of an epoch is dropped (every block has one size).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from hwbp.errors import ConfigError
from hwbp.ir.graph import Graph
from hwbp.lower.lowerer import lower
from hwbp.targets.lava.compat import import_lava

__all__ = ["train_on_chip"]


def train_on_chip(graph: Graph, x: np.ndarray, labels: np.ndarray, config: Any, options: Any, *, beta: float = 1.0,
                  x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, progress: bool = True,
                  desc: str = "training") -> Any:
    """Train ``graph`` on ``(x, labels)`` inside Lava (see the module docstring).

    Returns
    -------
    hwbp.train.TrainResult
        The trained graph (float parameters; fixed point: ``W_int * 2**exp``), no
        per-step losses (the chip reports none), test accuracy per epoch.
    """
    import_lava()
    from hwbp.targets.lava.topology import check_realizable, term_table
    from hwbp.targets.lava.fixed import FixedFormat, fixed_spec
    from hwbp.targets.lava.lavaproc.fixed_models import ETA_BITS, FIXED_MODELS
    from hwbp.targets.lava.lavaproc.processes import FLOAT_MODELS
    from hwbp.targets.lava.network import build_network, run_network
    from hwbp.targets.lava.run_float import float_spec
    from hwbp.initial import initial_state
    from hwbp.train.loop import TrainResult, accuracy
    from hwbp.types import Batch

    if config.optimizer != "sgd":
        print(f"{desc}: on-chip learning is plain SGD (ΔW = -lr e uᵀ); --optimizer {config.optimizer} does not "
              f"apply", file=sys.stderr)
    system = lower(graph, beta=beta)
    check_realizable(system)
    uses: dict[str, int] = {}
    for t in (t for p in system.populations for t in p.terms if t.weight is not None):
        uses[t.weight] = uses.get(t.weight, 0) + 1
    if options.precision == "fixed" and any(t.gain == 0 for p in system.populations for t in p.terms
                                            if t.weight is not None):
        raise ConfigError("fixed-point on-chip learning folds each gain into its weight; a gain of 0 cannot be "
                          "unfolded: use --precision float")
    tied = sorted(n for n, c in uses.items() if c > 1)
    if tied:
        raise ConfigError(f"on-chip learning keeps one weight per term; {tied[0]!r} is used by {uses[tied[0]]} terms "
                          f"(tied weights): train on the host (without --on-chip)")
    fixed = options.precision == "fixed"
    fmt = FixedFormat.for_system(system, options) if fixed else None
    B = config.batch_size
    blocks = len(x) // B
    if blocks < 1:
        raise ConfigError(f"on-chip learning needs at least one full mini-batch: {len(x)} samples < --batch-size {B}")
    steps = options.unit_steps(system.depth)
    period = steps + 1
    n_out = system.population(system.loss.population).size
    name = system.inputs[0].name
    keys = [(p.name, k) for p in system.populations for k, t in enumerate(p.terms) if t.weight is not None]
    terms = {(p.name, k): t for p in system.populations for k, t in enumerate(p.terms)}
    weights = {k: (fmt.weight[k] if fixed else np.array(system.parameters[terms[k].weight])) for k in keys}
    biases = {k: (fmt.bias[k] if fixed else (None if terms[k].bias is None else
                                             np.array(system.parameters[terms[k].bias]))) for k in keys}
    rng = np.random.default_rng(config.seed)
    test_acc: list[float] = []
    for epoch in range(config.epochs):
        order = rng.permutation(len(x))[:blocks * B]
        xs = x[order].reshape(blocks, B, -1)
        ys = np.eye(n_out)[labels[order]].reshape(blocks, B, n_out)
        first = Batch({name: xs[0]}, ys[0])
        start = initial_state(system, first, "zeros")
        spec = fixed_spec(fmt, system, first, start, steps) if fixed else float_spec(system, first, start, steps,
                                                                                     options.step)
        enc = fmt.to_int if fixed else (lambda v: np.asarray(v, dtype=np.float64))
        spec.inputs[name] = enc(xs)
        spec.target[system.loss.population] = enc(ys)
        spec.input_params["period"] = period
        for pop in spec.pop_params.values():
            pop["period"] = period
        for i, key in enumerate(keys):
            prm = dict(spec.term_params[key])
            prm.update(learn=True, period=period, has_bias=terms[key].bias is not None)
            if fixed:
                g = terms[key].gain  # folded into W_int: its update carries g twice (rule 8)
                bits = ETA_BITS + 2 * max(0, int(np.ceil(-np.log2(abs(g)))))
                prm.update(eta_int=int(np.rint(config.lr / B * g * g * 2 ** bits)),
                           eta_bias_int=int(np.rint(config.lr / B * 2 ** bits)), eta_bits=bits, exp=fmt.exp[key],
                           weight_bits=fmt.weight_bits, seed=config.seed * 7919 + epoch * 104729 + i)
            else:
                prm.update(eta=config.lr / B)
            spec.term_params[key] = prm
            spec.weight[key], spec.bias[key] = weights[key], biases[key]

        def read(net):
            return ({k: np.asarray(net.terms[k].weight.get()) for k in keys},
                    {k: np.asarray(net.terms[k].bias.get()) for k in keys})

        net = build_network(term_table(system), spec)
        w_new, b_new = run_network(net, blocks * period, tag="fixed_pt" if fixed else "floating_pt",
                                   models=FIXED_MODELS if fixed else FLOAT_MODELS, timeout_s=options.timeout_s,
                                   read=read)
        for k in keys:
            weights[k] = w_new[k].astype(np.int64) if fixed else w_new[k]
            if biases[k] is not None:
                biases[k] = b_new[k].astype(np.int64) if fixed else b_new[k]
        params = {}
        for k in keys:
            t = terms[k]
            params[t.weight] = weights[k] * 2.0 ** fmt.exp[k] / t.gain if fixed else weights[k]
            if t.bias is not None:
                params[t.bias] = fmt.to_float(biases[k]) if fixed else biases[k]
        graph = graph.with_parameters(params)
        if x_test is not None and y_test is not None:
            test_acc.append(accuracy(graph, x_test, y_test))
            if progress:
                print(f"{desc}: epoch {epoch + 1}: test accuracy {test_acc[-1]:.4f} (on-chip)", file=sys.stderr)
    return TrainResult(graph, (), tuple(test_acc))
