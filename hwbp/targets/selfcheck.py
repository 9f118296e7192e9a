"""The self-check of the stand-alone programs (``run_lava.py``, the Brian2 script).

At compile time :func:`reference_arrays` stores, next to the parameters, the batch the
program runs by default and the exact gradients of its network on that batch, computed
by hwbp's backprop oracle (:func:`hwbp.oracle.backprop.exact_gradients`, which shares
no code with the dynamics).  The program compares what its simulator produced with
them and prints the table of ``hwbp verify`` (per tensor ``rel_err``, ``cosine``,
``max_abs_err``) and PASSED or FAILED.

:func:`check` and its helpers below use only numpy: the programs carry their source
(``selfcheck.py`` beside ``run_lava.py``; pasted into the Brian2 script), so they run
with nothing but their simulator and numpy installed.  A weight altered in the
parameter file changes the simulated gradients but not the stored reference, so the
check FAILS.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["check", "reference_arrays", "same_batch"]


def _metrics(g: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(rel_err, cosine, max_abs_err) of ``g`` against ``ref``, as ``hwbp verify``
    defines them (rel_err 0 when both are zero, inf when only ``ref`` is)."""
    g = np.asarray(g, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if g.shape != ref.shape:
        return float("inf"), 0.0, float("inf")
    diff = g - ref
    n_ref, n_g, n_diff = float(np.linalg.norm(ref)), float(np.linalg.norm(g)), float(np.linalg.norm(diff))
    rel = n_diff / n_ref if n_ref > 0 else (0.0 if n_g == 0 else float("inf"))
    if n_diff == 0:
        cos = 1.0
    elif n_ref > 0 and n_g > 0:
        cos = float(np.clip(np.vdot(g, ref) / (n_g * n_ref), -1.0, 1.0))
    else:
        cos = 1.0 if n_ref == n_g == 0 else 0.0
    return rel, cos, float(np.max(np.abs(diff))) if diff.size else 0.0


def check(got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], rtol: float,
          min_cosine: float) -> tuple[str, bool]:
    """The verification table of ``got`` against ``expected`` (tensor name -> array;
    population sensitivities are named ``dl/d[name]``) and whether every tensor passed:
    ``rel_err <= rtol`` and ``cosine >= min_cosine``.  A tensor missing on either side
    fails."""
    rows = [("tensor", "shape", "rel_err", "cosine", "max_abs_err")]
    worst_rel, worst_cos, passed = 0.0, 1.0, True
    names = list(expected) + [n for n in got if n not in expected]
    for name in sorted(names, key=lambda n: n.startswith("dl/d[")):  # parameters first, as hwbp verify
        if name in got and name in expected:
            rel, cos, mx = _metrics(got[name], expected[name])
            shape = "x".join(map(str, np.shape(expected[name])))
        else:
            rel, cos, mx, shape = float("inf"), 0.0, float("inf"), "missing"
        ok = bool(rel <= rtol and cos >= min_cosine)
        passed &= ok
        worst_rel, worst_cos = max(worst_rel, rel), min(worst_cos, cos)
        rows.append((name, shape, f"{rel:.2e}", f"{cos:.9f}", f"{mx:.2e}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdict = "PASSED" if passed else "FAILED"
    lines += ["", f"{verdict}: max rel_err {worst_rel:.3g} (tol {rtol:g}), min cosine {worst_cos:.12g} "
                  f"(tol {min_cosine:.12g}) against the exact gradients stored at compile time"]
    return "\n".join(lines), passed


def same_batch(x: Mapping[str, np.ndarray], y: np.ndarray, ref_x: Mapping[str, np.ndarray],
               ref_y: np.ndarray) -> bool:
    """Whether a batch is the one the stored reference was computed on."""
    return (set(x) == set(ref_x) and all(np.array_equal(np.asarray(x[k], np.float64), ref_x[k]) for k in x)
            and np.array_equal(np.asarray(y, np.float64), ref_y))


def reference_arrays(graph: Any, batch: Any, prefix: str = "check/") -> dict[str, np.ndarray]:
    """The arrays a program's self-check needs (hwbp side, at compile time): the batch
    (``x/<input>``, ``y``) and the exact gradients of ``graph`` on it, per parameter
    (``grad/<name>``) and per population (``grad/dl/d[<name>]``, per sample), all
    float64, under ``prefix``."""
    from hwbp.lower.lowerer import lower
    from hwbp.oracle.backprop import exact_gradients

    exact = exact_gradients(graph, batch)
    system = lower(graph)
    out = {f"{prefix}x/{k}": np.asarray(v, np.float64) for k, v in batch.x.items()}
    out[f"{prefix}y"] = np.asarray(batch.y, np.float64)
    for k in system.parameters:
        out[f"{prefix}grad/{k}"] = np.asarray(exact.parameters[k], np.float64)
    for p in system.populations:
        if p.name in exact.activations:
            out[f"{prefix}grad/dl/d[{p.name}]"] = np.asarray(exact.activations[p.name], np.float64)
    return out
