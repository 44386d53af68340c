"""videoformers: efficient video transformers (UniFormer, UniFormerV2, ViViT, DualFormer) in PyTorch."""

from .analysis import build_on_meta, count_flops, count_params
from .checkpoints import CheckpointError, LoadReport, load_checkpoint
from .checkpoints.folders import from_pretrained, save_pretrained
from .checkpoints.zoo import get_pretrained_cfg, list_pretrained, reorder_classes
from .registry import ModelCard, create_model, get_model_card, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "LoadReport",
    "ModelCard",
    "build_on_meta",
    "count_flops",
    "count_params",
    "extract_features",
    "create_model",
    "get_model_card",
    "list_models",
    "list_pretrained",
    "save_pretrained",
    "from_pretrained",
    "get_pretrained_cfg",
    "load_checkpoint",
    "register_model",
    "reorder_classes",
]


def __getattr__(name: str):
    # The feature extractor pulls in the data pipeline: imported on first use only.
    if name == "extract_features":
        from .tools.extract import extract_features

        return extract_features
    raise AttributeError(f"module 'videoformers' has no attribute {name!r}")
