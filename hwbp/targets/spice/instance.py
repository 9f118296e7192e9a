"""Netlist pieces of a device instance (:mod:`hwbp.hardware`) that the shipped cells do
not parameterize: neuron pairs whose nodes each have their own R and C, and activation
cells with gain and offset errors."""

from __future__ import annotations

from typing import Mapping, Sequence

from hwbp.targets.spice.model import Element
from hwbp.targets.spice.writer import spice_number

__all__ = ["instance_neurons", "instance_act"]


def instance_neurons(tag: str, node: Mapping[str, Sequence[str]], draws, r_ohm: float, c_f: float,
                     rail_v: float | None = None) -> list[Element]:
    """The ``hwbp_neuron_pair`` cell written out in primitive elements, one neuron per
    index, with node ``x+`` of resistance ``r+ R`` (ohm) and capacitance ``c+ C`` (F) and
    node ``x-`` likewise (``draws``: a :class:`hwbp.hardware.realize.NodeDraws`, or None
    for nominal nodes).  The drive transconductances stay ``1/R`` (S), so a node settles
    to ``r± (F ± B/2)`` with time constant ``r± c± R C`` (s), as the reference simulator's
    instance dynamics.  With ``rail_v`` (V) the RC node is internal and ``x±`` is its
    value clipped to ``[-rail_v, rail_v]`` (the fixed point the reference reaches)."""
    out: list[Element] = []
    g, gh = spice_number(1.0 / r_ohm), spice_number(0.5 / r_ohm)
    for j in range(len(node["xp"])):
        xp, xm, xb, tn, fd, sd = (node[k][j] for k in ("xp", "xm", "xb", "tn", "fd", "sd"))
        s = f"{tag}_{j}"
        rp, rm, cp, cm = (1.0, 1.0, 1.0, 1.0) if draws is None else (
            float(draws.r_plus[j]), float(draws.r_minus[j]), float(draws.c_plus[j]), float(draws.c_minus[j]))
        yp, ym = (xp, xm) if rail_v is None else (f"hwbp_yp_{s}", f"hwbp_ym_{s}")
        out += [
            Element(f"Rnp_{s}", (yp, "0"), spice_number(r_ohm * rp)),
            Element(f"Cnp_{s}", (yp, "0"), spice_number(c_f * cp)),
            Element(f"Rnm_{s}", (ym, "0"), spice_number(r_ohm * rm)),
            Element(f"Cnm_{s}", (ym, "0"), spice_number(c_f * cm)),
            Element(f"Rnf_{s}", (fd, "0"), spice_number(r_ohm)),
            Element(f"Rns_{s}", (sd, "0"), spice_number(r_ohm)),
            Element(f"Gnfp_{s}", ("0", yp, fd, "0"), g),
            Element(f"Gnfm_{s}", ("0", ym, fd, "0"), g),
            Element(f"Gnsp_{s}", ("0", yp, sd, "0"), gh),
            Element(f"Gnsm_{s}", (ym, "0", sd, "0"), gh),
            Element(f"Bnb_{s}", (xb, "0"), f"V=0.5*(V({xp})+V({xm}))"),
            Element(f"Bnt_{s}", (tn, "0"), f"V=V({xp})-V({xm})"),
        ]
        if rail_v is not None:
            v = spice_number(rail_v)
            out += [Element(f"Bnrp_{s}", (xp, "0"), f"V=min(max(V({yp}),-{v}),{v})"),
                    Element(f"Bnrm_{s}", (xm, "0"), f"V=min(max(V({ym}),-{v}),{v})")]
    return out


def instance_act(tag: str, a: Sequence[str], tn: str, fd: str, gate: Sequence[str], cell_name: str, errors,
                 r_ohm: float) -> list[Element]:
    """The activation cell ``cell_name`` of each neuron of one term, wrapped with that
    neuron's cell errors ``errors = (1 + g, o, 1 + g', o')`` (per-neuron arrays):

    * the cell drives a private node held at 0 V by ``Vas`` (which senses its current
      ``f(a)/R``); ``Fa`` injects ``(1 + g)`` times that current into ``fd``, ``Ia`` the
      offset ``o/R`` (A);
    * the cell's gate output lands on a private node; ``Bag`` holds the term's gate node at
      ``(1 + g') V(gate_cell) + o' V(tn)`` (V), i.e. ``((1 + g') f'(a) + o') T``.

    ``tn`` and ``fd`` are node name prefixes (``{tn}_{j}``)."""
    gain, offset, dgain, doffset = errors
    out: list[Element] = []
    for j in range(len(a)):
        s = f"{tag}_{j}"
        fdc, gc, tnj = f"hwbp_fdc_{s}", f"hwbp_gc_{s}", f"{tn}_{j}"
        out += [
            Element(f"Xa_{s}", (a[j], tnj, fdc, gc), cell_name),
            Element(f"Vas_{s}", (fdc, "0"), "DC 0"),
            Element(f"Fa_{s}", ("0", f"{fd}_{j}"), f"Vas_{s} {spice_number(float(gain[j]))}"),
            Element(f"Ia_{s}", ("0", f"{fd}_{j}"), f"DC {spice_number(float(offset[j]) / r_ohm)}"),
            Element(f"Bag_{s}", (gate[j], "0"),
                    f"V={spice_number(float(dgain[j]))}*V({gc})+{spice_number(float(doffset[j]))}*V({tnj})"),
        ]
    return out
