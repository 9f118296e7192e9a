"""Importers of third-party model formats into the graph IR (currently ONNX)."""

from hwbp.importers.onnx import SUPPORTED_OPS, load_onnx, load_onnx_bytes

__all__ = ["SUPPORTED_OPS", "load_onnx", "load_onnx_bytes"]
