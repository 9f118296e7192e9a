"""Shared helper of the Lava tests: a numpy replay of fixed-point on-chip learning."""

from __future__ import annotations

import dataclasses

import numpy as np

from hwbp.initial import initial_state
from hwbp.ir.graph import Graph
from hwbp.lower import lower
from hwbp.types import Batch


def replay_fixed_on_chip(graph: Graph, x: np.ndarray, labels: np.ndarray, cfg, opts, n_out: int = 3):
    """One epoch of fixed-point on-chip learning replayed with the numpy integer model
    (``numpy_model``), the documented update rule (``learn_fixed``, the gain folded into
    ``W_int`` so the rate carries ``g**2``) and the same random draws.  Returns
    ``(system, format after the epoch, weighted term keys)``."""
    from hwbp.targets.lava.fixed import FixedFormat, numpy_model
    from hwbp.targets.lava.lavaproc.fixed_models import ETA_BITS, learn_fixed, source_fixed, to_payload

    system = lower(graph)
    fmt = FixedFormat.for_system(system, opts)
    order = np.random.default_rng(cfg.seed).permutation(len(x))
    keys = [(p.name, k) for p in system.populations for k, t in enumerate(p.terms) if t.weight is not None]
    terms = {key: system.population(key[0]).terms[key[1]] for key in keys}
    rngs = {key: np.random.default_rng(cfg.seed * 7919 + i) for i, key in enumerate(keys)}
    B = cfg.batch_size
    for blk in range(len(x) // B):
        idx = order[blk * B:(blk + 1) * B]
        batch = Batch({"x": x[idx]}, np.eye(n_out)[labels[idx]])
        m, _, gates = numpy_model(fmt, system, batch, initial_state(system, batch, "zeros"), 2 * system.depth)
        w, b = dict(fmt.weight), dict(fmt.bias)
        for key in keys:
            t = terms[key]
            bits = ETA_BITS + 2 * max(0, int(np.ceil(-np.log2(t.gain))))
            src = fmt.to_int(batch.x[t.source]) if t.source == "x" else m[t.source]
            prm = {**fmt.term_params[key], "eta_int": int(np.rint(cfg.lr / B * t.gain ** 2 * 2 ** bits)),
                   "eta_bias_int": int(np.rint(cfg.lr / B * 2 ** bits)), "eta_bits": bits, "exp": fmt.exp[key],
                   "weight_bits": opts.weight_bits, "has_bias": True}
            phi_msg = source_fixed(to_payload(src, fmt.shift, fmt.payload_bits), prm)[0]
            w[key], b[key] = learn_fixed(w[key], b[key], gates[key], phi_msg, prm, rngs[key])
        fmt = dataclasses.replace(fmt, weight=w, bias=b)
    return system, fmt, keys
