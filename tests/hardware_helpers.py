"""Checks shared by the hardware-model tests."""

from __future__ import annotations

import numpy as np

from hwbp.hardware.compare import instance_forward
from hwbp.ir.losses import get_loss


def assert_output_weight_gradient_is_central_difference(inst, s, b, gr) -> None:
    """The instance oracle's gradient ``gr`` of the output population's first weight
    equals central differences (h = 1e-6) of the instance's forward pass and MSE loss."""
    loss = get_loss("mse")
    name = s.population(s.loss.population).terms[0].weight
    w0 = np.array(s.parameters[name])
    fd = np.zeros_like(w0)
    h = 1e-6
    for idx in np.ndindex(w0.shape):
        vals = []
        for sgn in (1, -1):
            w = w0.copy()
            w[idx] += sgn * h
            out = instance_forward(inst.with_parameters({name: w}), b)["x"][s.loss.population]
            vals.append(loss.value(out, b.y).mean())
        fd[idx] = (vals[0] - vals[1]) / (2 * h)
    np.testing.assert_allclose(gr.parameters[name], fd, rtol=1e-6, atol=1e-9)
