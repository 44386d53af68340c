"""Checkpoint reading, layout conversion (authors' / MMAction2 / timm / CLIP / HF -> ours) and 2D->3D inflation."""

from .loading import (
    CheckpointError,
    LoadReport,
    inflate_weight,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint_atomic,
    unwrap_state_dict,
)

__all__ = [
    "CheckpointError",
    "LoadReport",
    "inflate_weight",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint_atomic",
    "unwrap_state_dict",
]
