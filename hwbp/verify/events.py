"""Event counts of an event-driven run (``--event-threshold``) for the report and the
printed summary: events sent per sender (a population's or input's forward messages, a
term's backward gates), per sample, beside the messages a clock-driven run sends (every
value every step) and their ratio."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["events_section", "format_events"]


def events_section(stats: Mapping[str, Any], batch_size: int) -> dict[str, Any] | None:
    """The report's ``events`` section from a run's ``stats`` (``events_by`` and
    ``clock_by``), or None for a run without events.

    Per sender and in total: ``events`` and ``clock`` (messages of a clock-driven run
    of the same steps) per sample, and ``ratio = events / clock``."""
    by, clock = stats.get("events_by"), stats.get("clock_by")
    if by is None or clock is None:
        return None
    n = max(1, int(batch_size))

    def entry(e: float, c: float) -> dict[str, float | None]:
        return {"events": e / n, "clock": c / n, "ratio": (e / c) if c else None}

    senders = {k: entry(float(by[k]), float(clock.get(k, 0))) for k in by}
    total = entry(float(sum(by.values())), float(sum(clock.get(k, 0) for k in by)))
    return {"per_sample": senders, "total": total}


def format_events(section: Mapping[str, Any]) -> str:
    """The events table printed under the verification table."""
    rows = [("sender", "events/sample", "clock-driven/sample", "ratio")]
    for name, m in [*section["per_sample"].items(), ("total", section["total"])]:
        ratio = "-" if m["ratio"] is None else f"{m['ratio']:.3g}"
        rows.append((name, f"{m['events']:.6g}", f"{m['clock']:.6g}", ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, lines[1])
    return "\n".join(["events sent (clock-driven: every value every step)", *lines])
