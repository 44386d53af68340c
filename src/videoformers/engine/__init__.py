"""Training and evaluation engine: configs and recipes, the DDP/FSDP2/AMP training loop, exact
resume, multi-view evaluation, metrics and plots, and the ``videoformers demo`` job.

Typical use::

    from videoformers.engine import load_config, train, evaluate_checkpoint
    cfg = load_config("demo", ["train.epochs=5", "train.output_dir=runs/x"])
    summary = train(cfg)
"""

from .config import (
    Config,
    ConfigError,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_to_dict,
    list_recipes,
    load_config,
)
from .run import evaluate_checkpoint, train
from .trainer import BrokenDataError, Trainer

__all__ = [
    "BrokenDataError",
    "Config",
    "ConfigError",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "Trainer",
    "config_to_dict",
    "evaluate_checkpoint",
    "list_recipes",
    "load_config",
    "train",
]
