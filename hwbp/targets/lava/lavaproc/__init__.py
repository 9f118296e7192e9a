"""Lava processes and ProcessModels (imports only numpy and lava; no side effects)."""
