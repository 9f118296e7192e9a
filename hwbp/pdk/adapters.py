"""Unit <-> volt adapters of the synapse, node pair and MSE loss port: each file replaces a
behavioral cell of :mod:`hwbp.targets.spice` (same subcircuit name and ports, in units: 1 V
of a node is one unit) by the SKY130 cell of ``circuits/sky130/`` (its subcircuits renamed
``sky130_...``) behind ideal controlled sources that state the scaling:

- inputs are presented as ``V = vcm + vu * value`` (vu V per unit around vcm = 0.8 V);
- output currents are held at vcm and injected into the behavioral summing node as
  ``I / (I_unit * R)`` (I_unit: the cell's current per unit, R: ``hwbp_r``);
- node voltages are read back as ``(V - vcm) / vu``.

The synapse's weight is programmed as the cell's stored voltage ``vw = vtw*atanh(tw*w/wmax)``
from ``w = g * hwbp_r`` and the network's full-scale weight ``hwbp_wmax`` (a global
``.param``: the largest |w| of the network, one weight DAC range for the chip).
"""

from __future__ import annotations

from hwbp.errors import ConfigError
from hwbp.pdk.cells import get_block
from hwbp.pdk.sky130 import VCM_V, VDD_V

__all__ = ["synapse_text", "input_synapse_text", "node_text", "loss_text", "LOSS_IU_MAX_A", "LOSS_RS_MIN_OHM",
           "NODE_DRIVE_NOTE"]

#: The loss port's unit current (A per unit of sensitivity drive) is at most this; above
#: beta = 0.25 it shrinks as 0.25 uA/beta, so the degeneration stays at >= 556 kohm.
LOSS_IU_MAX_A = 1e-6
LOSS_RS_MIN_OHM = 100e3


def _renamed(subckt: str, text: str) -> str:
    return text.replace(subckt, subckt.replace("hwbp_", "sky130_", 1))


def _params(params: dict[str, float]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in params.items())


def _synapse_core() -> tuple[str, str, str]:
    """The renamed synapse cell, its instance parameters with the weight map, and the
    F gain that turns its current into units."""
    spec = get_block("synapse")
    body = _renamed("hwbp_synapse", spec.path.read_text(encoding="ascii"))
    vtw, tw, iu = spec.calib["vtw"], spec.calib["tw"], spec.calib["iu_A"]
    inst = f"{_params(dict(spec.params))} vw={{{vtw!r}*atanh({tw!r}*g*hwbp_r/hwbp_wmax)}}"
    # the cell gives iu*(w/wmax)*x (A); the behavioral synapse gives w*x/R
    gain = f"{{hwbp_wmax/({iu!r}*hwbp_r)}}"
    return body, inst, gain


def synapse_text() -> str:
    """The file replacing ``hwbp_synapse`` (pre post gate sens, parameter g in S)."""
    body, inst, gain = _synapse_core()
    vu = get_block("synapse").params["vu"]
    return body + "\n".join([
        f"* adapter: units <-> volts around vcm ({VCM_V} V), vu = {vu!r} V/unit; w = g*hwbp_r programmed "
        "as the cell's vw",
        ".subckt hwbp_synapse pre post gate sens params: g=0",
        f"Ep px vcm pre 0 {vu!r}",
        f"Eg gx vcm gate 0 {vu!r}",
        "Vpo po vcm 0",
        f"Fpo 0 post Vpo {gain}",
        "Vso so vcm 0",
        f"Fso 0 sens Vso {gain}",
        f"Xc px po gx so sky130_synapse {inst}",
        ".ends hwbp_synapse",
    ]) + "\n"


def input_synapse_text(with_cell: bool = True) -> str:
    """The file replacing ``hwbp_synapse_fwd`` (pre post, parameter g): the synapse cell's
    forward half alone (``hwbp_synapse_fwd`` of the same file; an input has no sensitivity
    node).
    ``with_cell=False`` leaves out the cell's subcircuits (when :func:`synapse_text` is in
    the same netlist)."""
    body, inst, gain = _synapse_core()
    body = body if with_cell else ""
    vu = get_block("synapse").params["vu"]
    return body + "\n".join([
        f"* adapter: units <-> volts around vcm ({VCM_V} V), vu = {vu!r} V/unit; the forward half",
        ".subckt hwbp_synapse_fwd pre post params: g=0",
        f"Ep px vcm pre 0 {vu!r}",
        "Vpo po vcm 0",
        f"Fpo 0 post Vpo {gain}",
        f"Xc px po sky130_synapse_fwd {inst}",
        ".ends hwbp_synapse_fwd",
    ]) + "\n"


def node_text() -> str:
    """The file replacing ``hwbp_neuron_pair`` (xp xm xb tn fd sd): the summing nodes fd and
    sd keep their behavioral R to ground; their voltages drive the physical pair, limited to
    the supply rails (:data:`NODE_DRIVE_NOTE`)."""
    spec = get_block("node")
    body = _renamed("hwbp_neuron_pair", spec.path.read_text(encoding="ascii"))
    vu = spec.params["vu"]
    lim = f"max(0, min({VDD_V!r}, V(vcm)+{vu!r}*V({{}})))"
    return body + "\n".join([
        f"* adapter: units <-> volts around vcm ({VCM_V} V), vu = {vu!r} V/unit; drive range "
        f"{-VCM_V / vu:g} to {(VDD_V - VCM_V) / vu:g} units",
        *(f"* {ln}" for ln in NODE_DRIVE_NOTE),
        ".subckt hwbp_neuron_pair xp xm xb tn fd sd",
        "Rfd fd 0 {hwbp_r}",
        "Rsd sd 0 {hwbp_r}",
        f"Bfd fx 0 V={lim.format('fd')}",
        f"Bsd sx 0 V={lim.format('sd')}",
        f"Xc px mx bx tx fx sx sky130_neuron_pair {_params(dict(spec.params))}",
        f"Exp xp 0 px vcm {1 / vu!r}",
        f"Exm xm 0 mx vcm {1 / vu!r}",
        f"Exb xb 0 bx vcm {1 / vu!r}",
        f"Etn tn 0 tx vcm {1 / vu!r}",
        ".ends hwbp_neuron_pair",
    ]) + "\n"


#: Why the node pair's drive voltages are limited to the rails (written into the netlist).
NODE_DRIVE_NOTE = (
    f"the drives fd, sd present vcm + vu*value within the supply rails (0 to {VDD_V} V), as a drive stage on the",
    "chip's supply does (inside the rails the limit changes nothing);",
    "without that limit an early Newton iterate puts hundreds of volts on the capacitor nodes, where the poly",
    "leak's fitted voltage coefficient drives its resistance to zero and negative (~480 V across the body at the",
    "default sizing): a singular matrix at the node pair once the synapses' large current gains feed it.",
)


def loss_iu_A(beta: float) -> float:
    """The loss port's unit current (A per unit of sensitivity drive) at ``beta``."""
    return min(LOSS_IU_MAX_A, 0.25e-6 / abs(beta)) if beta != 0 else LOSS_IU_MAX_A


def loss_text(beta: float) -> str:
    """The file replacing ``hwbp_loss_mse`` (xb y sd) at loss strength ``beta``: the cell's
    transconductance realizes beta (its degeneration), its unit current is :func:`loss_iu_A`."""
    spec = get_block("loss")
    p = dict(spec.params)
    if not beta > 0:
        raise ConfigError(f"--pdk-cells loss: the transistor loss port realizes beta > 0, got {beta!r}")
    p.update(beta=float(beta), iu=loss_iu_A(beta))
    rs = 2 * p["kx"] * p["vu"] / (p["beta"] * p["iu"]) - p["rgm"]
    if rs < LOSS_RS_MIN_OHM:  # cannot happen with loss_iu_A; a guard for edited parameters
        raise ConfigError(f"--pdk-cells loss: beta {beta!r} needs a degeneration of {rs:.3g} ohm "
                          f"(< {LOSS_RS_MIN_OHM:g}); lower beta or the port's unit current")
    body = _renamed("hwbp_loss_mse", spec.path.read_text(encoding="ascii"))
    vu = p["vu"]
    return body + "\n".join([
        f"* adapter: units <-> volts around vcm ({VCM_V} V), vu = {vu!r} V/unit, unit current {p['iu']!r} A",
        ".subckt hwbp_loss_mse xb y sd",
        f"Ex xx vcm xb 0 {vu!r}",
        f"Ey yx vcm y 0 {vu!r}",
        "Vs sx vcm 0",
        f"Fs 0 sd Vs {{1/({p['iu']!r}*hwbp_r)}}",
        f"Xc xx yx sx sky130_loss_mse {_params(p)}",
        ".ends hwbp_loss_mse",
    ]) + "\n"
