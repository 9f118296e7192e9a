"""The per-instance comparison table printed by ``hwbp verify --hardware``."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["format_instance"]


def _num(value: float | None, fmt: str) -> str:
    return "inf/nan" if value is None else format(value, fmt)


def format_instance(section: Mapping[str, Any]) -> str:
    """Cosine and rel_err of each parameter against (a) the nominal network and (b) the
    instance's own forward network, the totals, loss and accuracy."""
    nom, own = section["nominal"], section["own"]
    rows = [("parameter", "cos(a) nominal", "rel_err(a)", "cos(b) own", "rel_err(b)")]
    for name in nom["parameters"]:
        a, b = nom["parameters"][name], own["parameters"][name]
        rows.append((name, _num(a["cosine"], ".6f"), _num(a["rel_err"], ".2e"), _num(b["cosine"], ".6f"),
                     _num(b["rel_err"], ".2e")))
    rows.append(("total", _num(nom["total"]["cosine"], ".6f"), _num(nom["total"]["rel_err"], ".2e"),
                 _num(own["total"]["cosine"], ".6f"), _num(own["total"]["rel_err"], ".2e")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    loss, acc = section["loss"], section["accuracy"]
    lines += [
        "",
        f"hardware instance seed={section['seed']}  non-idealities: {', '.join(section['features']) or 'none'}",
        f"loss: circuit {_num(loss['physical'], '.6g')}, nominal {_num(loss['nominal'], '.6g')}, "
        f"own forward {_num(loss['own'], '.6g')};  accuracy: circuit {acc['physical']:.4f}, "
        f"nominal {acc['nominal']:.4f}",
    ]
    return "\n".join(lines)
