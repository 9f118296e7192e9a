"""Classical RK4 across coupled Brian2 groups, one stage per Brian2 time step.

Brian2 evaluates summed variables once per time step, before the groups advance, so
its built-in ``rk4`` holds every input from other groups fixed over the four stages:
fourth order inside a group, first order across groups.  The conjugate-pair dynamics
couple every population to its neighbours through summed variables, so hwbp realizes
the classical RK4 of the whole network instead: the clock runs at ``h/4`` and each
clock tick is one stage.  The synapses re-sum their inputs from the stage state at
every tick, and each group then takes the stage:

* the differential equation ``dv/dt = F : unit`` becomes the subexpression
  ``f_v = F : unit/second`` (the slope at the stage state), the stage state ``v``
  (what the synapses read), the state ``v_0`` at the start of the step and the
  weighted slope sum ``k_v``;
* stage ``c = t_in_timesteps % 4`` runs ``v = v_0 + (h/2) f_v`` (c = 0, 1),
  ``v = v_0 + h f_v`` (c = 2) and ``v = v_0 + (h/6)(k1 + 2 k2 + 2 k3 + k4)``
  (c = 3), so every fourth tick ``v`` is the RK4 state of the whole network.

Every slope of a group is taken before any of its variables moves (the slopes of
``T`` read ``xbar`` through the loss port).  The function has no imports besides
:mod:`re`, and the emitted stand-alone script carries its source verbatim.
"""

from __future__ import annotations

import re

__all__ = ["rk4_stages", "RK4_STAGES"]

#: Clock ticks per RK4 step.
RK4_STAGES = 4


def rk4_stages(equations: str) -> tuple[str, str]:
    """Rewrite Brian2 model ``equations`` for one RK4 stage per clock tick.

    Each ``dv/dt = F : unit`` becomes the slope ``f_v = F``, the stage state ``v`` (what
    the synapses read), the step's start ``v_0`` and the slope sum ``k_v``; the stage
    ``c = t_in_timesteps % 4`` sets ``v = v_0 + h/2 f_v`` (c = 0, 1), ``v_0 + h f_v``
    (c = 2), ``v_0 + h/6 (k1 + 2 k2 + 2 k3 + k4)`` (c = 3).

    Parameters
    ----------
    equations : str
        Brian2 equations; each ``dv/dt = F : unit`` line is rewritten, every other line
        is kept.

    Returns
    -------
    equations : str
        The equations without differential equations (as above).
    code : str
        The stage update, to run every clock tick after the synaptic sums
        (``group.run_regularly(code, when="groups")``); it reads the RK4 step ``h``
        (seconds) from the namespace.
    """
    kept, state = [], []
    for line in equations.splitlines():
        m = re.match(r"\s*d(\w+)/dt\s*=\s*(.+?)\s*:\s*([^#]+?)\s*(#.*)?$", line)
        if m is None:
            kept.append(line)
            continue
        var, rhs, unit = m.group(1), m.group(2), m.group(3)
        state.append(var)
        kept += [f"f_{var} = {rhs} : {unit}/second  # slope d{var}/dt at the stage state",
                 f"{var} : {unit}  # stage state", f"{var}_0 : {unit}  # state at the start of the step",
                 f"k_{var} : {unit}/second  # k1 + 2 k2 + 2 k3 + k4 so far"]
    code = ["stage = t_in_timesteps % 4"]
    code += [f"slope_{v} = f_{v}" for v in state]
    for v in state:
        code += [f"{v}_0 = int(stage == 0) * {v} + int(stage > 0) * {v}_0",
                 f"k_{v} = int(stage > 0) * k_{v} + (1 + int(stage == 1) + int(stage == 2)) * slope_{v}",
                 f"{v} = {v}_0 + h * ((0.5 * int(stage < 2) + int(stage == 2)) * slope_{v} "
                 f"+ int(stage == 3) * k_{v} / 6)"]
    return "\n".join(kept), "\n".join(code)
