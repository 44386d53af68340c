"""Kernel backends used by the models (oneDNN on CPU)."""

from .onednn import Conv3d, Linear, conv3d, linear, onednn_linear_enabled

__all__ = ["Linear", "linear", "Conv3d", "conv3d", "onednn_linear_enabled"]
