"""Exporters of the graph IR to third-party model formats (currently ONNX)."""

from hwbp.exporters.onnx import graph_to_onnx_bytes, save_onnx

__all__ = ["graph_to_onnx_bytes", "save_onnx"]
