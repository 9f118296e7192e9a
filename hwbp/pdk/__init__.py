"""Transistor-level circuits on an open PDK: where the PDK's models are, the testbenches of
the cells in ``circuits/sky130/``, their measurement, and the characterization that turns
the measurements into a hardware model (:mod:`hwbp.hardware`)."""
