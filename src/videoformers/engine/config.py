"""Typed run configuration: YAML files and recipes mapped onto dataclasses, plus dotted overrides.

A run is described by these sections, each a dataclass::

    model:  ModelConfig    which registered model, its common knobs and architecture overrides
    data:   DataConfig     (owned by :mod:`videoformers.data.config`) lists, sampling, augmentation
    optim:  OptimConfig    optimiser, learning rates, schedule, weight decay rules
    train:  TrainConfig    epochs, batch, precision, distribution, regularisers, checkpoints, logs
    eval:   EvalConfig     checkpoint to test, split, multi-view averaging
    seg:    SegConfig      semantic segmentation pipeline (data.dataset=ade20k)
    pose:   PoseConfig     top-down pose pipeline (data.dataset=coco_keypoints)

``load_config("demo", ["data.num_frames=8", "optim.lr=1e-3"])`` reads a shipped recipe (or a YAML
path), follows its ``_base_`` chain, applies the overrides and returns a :class:`Config`.
Every key is checked against the dataclass fields and every value against the field's type: a
typo or a wrong type is a :class:`ConfigError` (a ``ValueError``) that names the key and lists
the valid ones.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from videoformers.data.config import DataConfig, PoseConfig, SegConfig

__all__ = [
    "Config",
    "ConfigError",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "DataConfig",
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "list_recipes",
    "recipe_path",
    "dump_config",
]


class ConfigError(ValueError):
    """An unknown key, a value of the wrong type or an unreadable config file."""


@dataclass
class ModelConfig:
    """Which model to build; ``None`` fields are filled from the data section or the builder default."""

    name: str = "uniformer_small"
    num_classes: int | None = None          # None -> the dataset's number of classes
    num_frames: int | None = None           # None -> data.num_frames
    img_size: int | None = None             # None -> data.img_size
    drop_path_rate: float | None = None     # stochastic depth; None -> the builder's default
    grad_checkpointing: bool = False        # model.set_grad_checkpointing(True): less memory, ~30% slower
    pretrained: str | None = None           # checkpoint to initialise from (any layout load_checkpoint reads), or a
                                            # released file by name (model.tag, videoformers.list_pretrained())
    pretrained_strict: bool = False         # False: report missing/unexpected keys, drop a mismatched head
    pretrained_min_loaded: float = 0.5      # non-strict: fewer of the model's tensors loaded than this is an error
                                            # (another model's checkpoint); 0 allows any
    overrides: dict[str, Any] = field(default_factory=dict)  # passed straight to create_model


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (stepped per iteration, i.e. per optimiser step)."""

    name: str = "adamw"                     # "adamw" | "sgd"
    lr: float = 1e-4                        # peak learning rate at total batch ``lr_scale_ref``
    lr_scale_ref: int | None = None         # linear scaling: lr * total_batch / lr_scale_ref (None: no scaling)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9                   # SGD
    nesterov: bool = False                  # SGD
    sched: str = "cosine"                   # "cosine" | "constant" | "step" (x gamma at each milestone epoch,
                                            # mmcv 'step': UniFormer pose) | "poly" ((1 - t)^poly_power to min_lr,
                                            # mmcv 'poly': UniFormer segmentation)
    milestones: list[float] = field(default_factory=list)  # "step": epochs (from 0) where the lr is multiplied by gamma
    gamma: float = 0.1                      # "step"
    poly_power: float = 1.0                 # "poly" (UperNet's power 1.0; the authors' Semantic FPN uses cosine)
    cosine_after_warmup: bool = True        # True: cosine over [warmup, end] (PySlowFast); False: cosine over
                                            # the whole run multiplied by the warm-up ramp (Scenic 'compound')
    warmup_epochs: float = 0.0              # linear warm-up, may be fractional (ViViT: 2.5)
    warmup_start_lr: float = 0.0            # lr at step 0 of the warm-up
    min_lr: float = 0.0                     # lr at the end of the cosine
    layer_decay: float | None = None        # layer-wise lr decay for ViT-based models (e.g. 0.75)
    backbone_lr_mult: float = 1.0           # lr multiplier for everything but the head; 0 freezes the backbone
    head_lr_mult: float = 1.0               # lr multiplier for the classifier (DualFormer: 10 = 1e-3 vs 1e-4)
    head_keys: list[str] = field(default_factory=list)  # name prefixes of head params (default: model.head_prefix)
    no_weight_decay_keys: list[str] = field(default_factory=lambda: [
        "pos_embed", "positional_embedding", "cls_token", "class_embedding", "temporal_cls_token",
        "time_embed", "temporal_embed", "query_token", "token",
    ])                                      # parameter names (suffix of the last component) without weight
                                            # decay; all 1-D params (norms, biases) never get decay
    no_weight_decay_modules: list[str] = field(default_factory=list)  # module names whose params get no
                                            # decay (DualFormer: pos_block)
    clip_grad: float | None = None          # max global grad norm (None: no clipping)


@dataclass
class TrainConfig:
    """The training loop. ``batch_size`` is per process; the total batch is
    ``batch_size * world_size * accum_steps``."""

    epochs: int = 30
    batch_size: int = 8
    accum_steps: int = 1                    # gradient accumulation (micro-batches per optimiser step)
    output_dir: str = "runs/default"        # checkpoints, logs, curves, metrics, predictions
    seed: int = 0
    device: str = "auto"                    # "auto" | "cpu" | "cuda" (cuda:LOCAL_RANK under torchrun)
    amp: str = "none"                       # "none" | "bf16" | "fp16" (fp16 uses a GradScaler)
    compile: bool = False                   # torch.compile the model
    fsdp: bool = False                      # FSDP2 fully_shard per block (large ViT-based models, torchrun)
    sync_bn: bool = False                   # BatchNorm statistics across processes (UniFormer uses BN)
    find_unused_parameters: bool = False    # DDP option for models with branches unused in a step
    label_smoothing: float = 0.0
    mixup: float = 0.0                      # mixup alpha (0: off)
    cutmix: float = 0.0                     # cutmix alpha (0: off)
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    output_weights: list[float] | None = None  # weights of the losses of a model returning several logits
                                            # (light UniFormer: head + score token); None -> equal, mean
    ema_decay: float | None = None          # exponential moving average of the weights (e.g. 0.9998)
    eval_every: int = 1                     # validate every N epochs (0: only at the end)
    final_eval: bool = True                 # evaluate the best checkpoint at the end -> metrics.json etc.
    save_every_steps: int = 0               # also write checkpoint_last.pth every N optimiser steps (0: per epoch)
    stop_after_steps: int | None = None     # save and stop after this many optimiser steps (time-boxing)
    log_every: int = 10                     # optimiser steps between log.jsonl records
    resume: str | None = None               # checkpoint path, or "auto" for output_dir/checkpoint_last.pth
    progress: bool = True                   # progress bar with throughput and ETA (rank 0)
    tensorboard: bool = True                # TensorBoard events (a warning, once, when it is not installed)
    overwrite: bool = False                 # True: train into an output_dir that holds another run (else an error
                                            # unless resuming: train.resume=auto)
    max_train_batches: int | None = None    # cap batches per epoch (quick experiments)


@dataclass
class EvalConfig:
    """Testing: which weights, which split, how views are combined."""

    checkpoint: str | None = None           # weights to evaluate (``videoformers eval CONFIG checkpoint=PATH``)
    split: str = "val"                      # "val" | "test"
    batch_size: int | None = None           # videos per batch (each with V views); None -> train.batch_size
    view_average: str = "logits"            # "logits" | "probs": how clips x crops are combined
    use_ema: bool = True                    # evaluate EMA weights when the checkpoint has them
    max_batches: int | None = None          # cap (quick checks)
    output_dir: str | None = None           # where eval writes; None -> <train.output_dir>/eval/<split>-<checkpoint>/
    dtype: str | None = None                # "fp32" | "bf16" | "fp16" (autocast) | "int8" (dynamic quantisation of
                                            # the linear layers, CPU); None -> train.amp's precision


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)


_SECTIONS = ("model", "data", "optim", "train", "eval", "seg", "pose")
# Bare keys accepted on the command line for convenience.
_ALIASES = {"checkpoint": "eval.checkpoint", "output_dir": "train.output_dir", "resume": "train.resume"}


# --------------------------------------------------------------------------------------------
# type checking / coercion
# --------------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise :class:`ConfigError` naming ``key``."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected a bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an int, got {value!r} ({type(value).__name__})")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a float, got {value!r} ({type(value).__name__})")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r} ({type(value).__name__})")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list like {_type_name(tp)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values ({_type_name(tp)}), got {list(value)!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list ({_type_name(tp)}), got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _section_types() -> dict[str, type]:
    return {f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)}


def _check_keys(section: str, given: dict, cls: type) -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    for k in given:
        if k not in valid:
            raise ConfigError(
                f"unknown key '{section}.{k}'; valid keys of '{section}' are: {', '.join(valid)}"
            )


def config_from_dict(d: dict) -> Config:
    """Build a :class:`Config` from nested plain data, checking every key and type."""
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping of sections {list(_SECTIONS)}, got {type(d).__name__}")
    unknown = [k for k in d if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; valid sections are: {', '.join(_SECTIONS)}")
    sections = {}
    for name, cls in _section_types().items():
        given = d.get(name) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"section '{name}' must be a mapping, got {given!r}")
        _check_keys(name, given, cls)
        types_ = _field_types(cls)
        kwargs = {k: _coerce(v, types_[k], f"{name}.{k}") for k, v in given.items()}
        try:
            sections[name] = cls(**kwargs)
        except ConfigError:
            raise
        except (ValueError, TypeError) as e:  # a section's own checks (DataConfig.validate)
            raise ConfigError(str(e)) from None
    cfg = Config(**sections)
    check_ranges(cfg)
    return cfg


# key -> (low, high, low_open, high_open); None: unbounded. A value outside is an error at load time,
# before any work: a negative clip_grad flips the gradients, epochs <= 0 "trains" and writes metrics.
_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "model.num_classes": (1, None, False, False),
    "model.num_frames": (1, None, False, False),
    "model.img_size": (1, None, False, False),
    "model.drop_path_rate": (0.0, 1.0, False, True),
    "model.pretrained_min_loaded": (0.0, 1.0, False, False),
    "optim.lr": (0.0, None, True, False),
    "optim.lr_scale_ref": (1, None, False, False),
    "optim.weight_decay": (0.0, None, False, False),
    "optim.eps": (0.0, None, True, False),
    "optim.momentum": (0.0, 1.0, False, True),
    "optim.warmup_epochs": (0.0, None, False, False),
    "optim.warmup_start_lr": (0.0, None, False, False),
    "optim.min_lr": (0.0, None, False, False),
    "optim.layer_decay": (0.0, 1.0, True, False),
    "optim.backbone_lr_mult": (0.0, None, False, False),
    "optim.head_lr_mult": (0.0, None, False, False),
    "optim.clip_grad": (0.0, None, True, False),
    "train.epochs": (1, None, False, False),
    "train.batch_size": (1, None, False, False),
    "train.accum_steps": (1, None, False, False),
    "train.label_smoothing": (0.0, 1.0, False, True),
    "train.mixup": (0.0, None, False, False),
    "train.cutmix": (0.0, None, False, False),
    "train.mixup_prob": (0.0, 1.0, False, False),
    "train.mixup_switch_prob": (0.0, 1.0, False, False),
    "train.ema_decay": (0.0, 1.0, True, True),
    "train.eval_every": (0, None, False, False),
    "train.save_every_steps": (0, None, False, False),
    "train.stop_after_steps": (1, None, False, False),
    "train.log_every": (0, None, False, False),
    "train.max_train_batches": (1, None, False, False),
    "eval.batch_size": (1, None, False, False),
    "eval.max_batches": (1, None, False, False),
}
_CHOICES: dict[str, tuple] = {
    "optim.name": ("adamw", "sgd"),
    "optim.sched": ("cosine", "constant", "step", "poly"),
    "train.amp": ("none", "bf16", "fp16"),
    "eval.split": ("val", "test"),
    "eval.view_average": ("logits", "probs"),
    "eval.dtype": (None, "fp32", "bf16", "fp16", "int8"),
}


def _interval(lo, hi, lo_open, hi_open) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def check_ranges(cfg: Config) -> None:
    """Every number of ``cfg`` inside its range and every choice among its values, else a
    :class:`ConfigError` naming the key, the value and what is allowed (``None`` means "unset")."""
    for key, (lo, hi, lo_open, hi_open) in _RANGES.items():
        section, name = key.split(".")
        v = getattr(getattr(cfg, section), name, None)
        if v is None or isinstance(v, bool):
            continue
        ok = (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
        if not ok or v != v:  # v != v: NaN
            raise ConfigError(f"{key}={v!r} is out of range: expected {_interval(lo, hi, lo_open, hi_open)}")
    for key, allowed in _CHOICES.items():
        section, name = key.split(".")
        v = getattr(getattr(cfg, section), name)
        if v not in allowed:
            raise ConfigError(f"{key}={v!r}: expected one of {list(allowed)}")
    if cfg.optim.min_lr > cfg.optim.lr:
        raise ConfigError(f"optim.min_lr={cfg.optim.min_lr!r} is above optim.lr={cfg.optim.lr!r}")
    try:
        cfg.data.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples become lists) suitable for YAML/JSON and checkpoints."""

    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {name: plain(dataclasses.asdict(getattr(cfg, name))) for name in _SECTIONS}


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


# --------------------------------------------------------------------------------------------
# recipes and YAML files
# --------------------------------------------------------------------------------------------

def _recipes_dir():
    return resources.files("videoformers") / "recipes"


def list_recipes() -> dict[str, str]:
    """Shipped recipe names -> their one-line description (first comment line of the YAML)."""
    out = {}
    for entry in sorted(_recipes_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml") and not entry.name.startswith("_"):
            desc = ""
            for line in entry.read_text().splitlines():
                if line.startswith("#"):
                    desc = line.lstrip("# ").strip()
                    break
            out[entry.name[: -len(".yaml")]] = desc
    return out


def recipe_path(name: str) -> Path:
    entry = _recipes_dir() / f"{name}.yaml"
    if not entry.is_file():
        raise ConfigError(f"no recipe named {name!r}; shipped recipes: {', '.join(list_recipes())}")
    return Path(str(entry))


def _resolve(source: str, relative_to: Path | None = None) -> Path:
    p = Path(source)
    if relative_to is not None and not p.is_absolute() and (relative_to / p).is_file():
        return relative_to / p
    if p.is_file():
        return p
    if p.suffix in (".yaml", ".yml") or "/" in source:
        # A base named like "_base_: uniformer_k400.yaml" may still be a shipped recipe.
        name = p.name.rsplit(".", 1)[0] if p.suffix in (".yaml", ".yml") else None
        if name and (_recipes_dir() / f"{name}.yaml").is_file():
            return recipe_path(name)
        raise ConfigError(f"config file not found: {source}")
    return recipe_path(source)


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        # ``model.overrides`` is replaced wholesale by a child only when it says so with ``_replace_``.
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not v.get("_replace_", False):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = {kk: vv for kk, vv in v.items() if kk != "_replace_"} if isinstance(v, dict) else copy.deepcopy(v)
    return out


def _read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    if path in _seen:
        raise ConfigError(f"_base_ cycle: {' -> '.join(str(p) for p in _seen + (path,))}")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        hint = (f" (it looks like a checkpoint: pass the run's config and checkpoint={path}, e.g. "
                f"videoformers eval {path.parent / 'config.yaml'} checkpoint={path})"
                if path.suffix in (".pth", ".pt", ".pyth", ".safetensors", ".bin", ".ckpt") else "")
        raise ConfigError(f"{path} is not a YAML config: it is a binary file{hint}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(d).__name__}")
    base = d.pop("_base_", None)
    if base is None:
        return d
    bases = base if isinstance(base, list) else [base]
    merged: dict = {}
    for b in bases:
        merged = _deep_merge(merged, _read_yaml(_resolve(str(b), path.parent), _seen + (path,)))
    return _deep_merge(merged, d)


def _parse_value(raw: str, tp: Any) -> Any:
    """CLI values are YAML scalars/lists (``8``, ``1e-4``, ``[256,320]``, ``null``, ``true``);
    string fields keep the raw text so that ``data.root=001`` stays ``"001"``."""
    if raw in ("null", "None", "~"):
        return None
    base = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (typing.Union, types.UnionType) else [tp]
    if base == [str]:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_overrides(cfg_dict: dict, overrides: Sequence[str]) -> dict:
    """Apply ``section.key=value`` strings to a nested config dict (checked on the way)."""
    d = copy.deepcopy(cfg_dict)
    section_types = _section_types()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. data.num_frames=8)")
        key, raw = item.split("=", 1)
        key = key.strip()
        key = _ALIASES.get(key, key)
        parts = key.split(".")
        if parts[0] not in section_types:
            raise ConfigError(
                f"unknown key '{key}'; keys are section.field with sections {', '.join(_SECTIONS)} "
                f"(or {', '.join(_ALIASES)})"
            )
        section, cls = parts[0], section_types[parts[0]]
        if len(parts) < 2:
            raise ConfigError(f"override {item!r} names a section, not a key; e.g. {section}.{dataclasses.fields(cls)[0].name}=...")
        types_ = _field_types(cls)
        fname = parts[1]
        if fname not in types_:
            raise ConfigError(f"unknown key '{section}.{fname}'; valid keys of '{section}' are: {', '.join(types_)}")
        sec = d.setdefault(section, {}) or {}
        d[section] = sec
        if len(parts) == 2:
            sec[fname] = _parse_value(raw, types_[fname])
            _coerce(sec[fname], types_[fname], key)  # fail early with the CLI key in the message
        else:
            if typing.get_origin(types_[fname]) is not dict:
                raise ConfigError(f"'{section}.{fname}' is not a mapping; cannot set '{key}'")
            target = sec.setdefault(fname, {}) or {}
            sec[fname] = target
            for p in parts[2:-1]:
                target = target.setdefault(p, {})
            target[parts[-1]] = _parse_value(raw, Any)
    return d


def load_config(source: str | Path | dict | None = None, overrides: Sequence[str] = ()) -> Config:
    """Config from a recipe name, a YAML path or a dict, with dotted overrides applied."""
    if source is None:
        d: dict = {}
    elif isinstance(source, dict):
        d = copy.deepcopy(source)
    else:
        d = _read_yaml(_resolve(str(source)))
    return config_from_dict(apply_overrides(d, overrides))
