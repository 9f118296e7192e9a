"""The verification table printed by ``hwbp verify`` (a pure function of the report)."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["format_table"]


def _num(value: float | None, fmt: str) -> str:
    return "inf/nan" if value is None else format(value, fmt)


def format_table(report: Mapping[str, Any]) -> str:
    """The verification table printed by ``hwbp verify``."""
    rows = [("tensor", "shape", "rel_err", "cosine", "max_abs_err")]
    for kind in ("parameters", "populations"):
        for name, m in report[kind].items():
            label = name if kind == "parameters" else f"dl/d[{name}]"
            rows.append((label, "x".join(map(str, m["shape"])), _num(m["rel_err"], ".2e"),
                         _num(m["cosine"], ".9f"), _num(m["max_abs_err"], ".2e")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    settle = ", ".join(f"{k}={v}" for k, v in report["settle"].items())
    tol = report["tolerances"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines += [
        "",
        f"backend={report['backend']}  loss={report['loss']}  beta={report['beta']:g}  L={report['depth']}"
        f"  batch={report['batch_size']}  ({settle})",
        f"{verdict}: max rel_err {_num(report['max_rel_err'], '.3g')} (tol {tol['max_rel_err']:g}), "
        f"min cosine {_num(report['min_cosine'], '.12g')} (tol {tol['min_cosine']:.12g})",
    ]
    if report.get("events"):
        from hwbp.verify.events import format_events

        lines += ["", format_events(report["events"])]
    return "\n".join(lines)
