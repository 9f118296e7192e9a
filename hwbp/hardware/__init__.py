"""Hardware co-design: non-idealities of analog realizations and their device instances.

:class:`Hardware` (read from TOML by :func:`load_hardware`) describes a design's
non-idealities; :func:`realize` draws one device instance of it and attaches it to a
:class:`~hwbp.lower.DynamicsSystem`; :mod:`hwbp.hardware.compare` compares an
instance's gradients with the nominal network's and with its own forward network's.
"""

from hwbp.hardware.model import (
    Cells, Hardware, Loss, Mismatch, Nodes, Noise, Rails, Readout, Synapses, Weights, hardware_from_mapping,
    load_hardware,
)
from hwbp.hardware.realize import DeviceInstance, realize

__all__ = ["Hardware", "Weights", "Mismatch", "Nodes", "Synapses", "Cells", "Loss", "Noise", "Rails", "Readout",
           "load_hardware",
           "hardware_from_mapping", "DeviceInstance", "realize"]
