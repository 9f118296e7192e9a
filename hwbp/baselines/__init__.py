"""Local-learning baselines that the physical gradients are compared with:
predictive coding (PC) and augmented-Lagrangian predictive coding (PC-ALM)."""

from hwbp.baselines.pc import PCResult, pc_alm_relax, pc_gradients, pc_relax

__all__ = ["PCResult", "pc_relax", "pc_alm_relax", "pc_gradients"]
