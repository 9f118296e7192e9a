"""The Lava target: the conjugate-pair dynamics as Lava processes (see backend.py)."""
