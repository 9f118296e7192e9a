"""SPICE target: analog RC netlists of the conjugate-pair dynamics and ngspice co-simulation."""
