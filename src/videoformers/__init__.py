"""videoformers: efficient video transformers (UniFormer, UniFormerV2, ViViT, DualFormer) in PyTorch."""

from .analysis import build_on_meta, count_flops, count_params
from .checkpoints import CheckpointError, LoadReport, load_checkpoint
from .registry import ModelCard, create_model, get_model_card, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "LoadReport",
    "ModelCard",
    "build_on_meta",
    "count_flops",
    "count_params",
    "create_model",
    "get_model_card",
    "list_models",
    "load_checkpoint",
    "register_model",
]
