"""``videoformers convert``: any supported checkpoint layout in, our layout out, as safetensors with metadata.

    videoformers convert SRC DST.safetensors --model NAME [--labels NAME|FILE] [--num-classes N]
                         [--override key=value ...] [--reorder-labels NAME|FILE] [--dtype fp16|bf16]

``SRC`` is anything :func:`videoformers.load_checkpoint` reads: the authors' releases (PySlowFast
``.pyth``, the UniFormer/UniFormerV2 ``.pth``), MMAction2 (``backbone.``/``cls_head.``), HF/CLIP/timm
layouts, a training checkpoint of ``videoformers train`` (its model name, overrides, class names and
data settings are picked up), or our own layout. The output holds our state dict and, as safetensors
metadata (strings, JSON where structured):

``format``          ``"videoformers"``, ``format_version`` ``"1"``
``model_name``      the registered model
``overrides``       JSON object of builder overrides (``num_classes``, ``depth``, ...)
``mean`` / ``std``  JSON lists, on ``[0, 1]`` pixels
``labels``          JSON list of class names in logit order (when known)
``preprocess``      JSON object: ``num_frames``, ``img_size``, ``short_side``, ``sampling``,
                    ``frame_interval``, ``num_clips``, ``num_crops`` (when known)
``source``          the file name it was converted from

``create_model(name, pretrained=DST)`` loads the result (strict); :func:`load_converted` builds the
model from the file alone, and :func:`load_model` does the same for any checkpoint kind.

Label order. A head trained with one class order and read with another gives confident nonsense.
``--labels`` records the order the checkpoint's head was trained with (e.g.
``kinetics400_uniformer`` for the UniFormer authors' K400 heads); ``--reorder-labels kinetics400``
additionally permutes the classifier rows into that order (every class must be present in both).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from videoformers.checkpoints import CheckpointError, load_checkpoint, read_checkpoint, unwrap_state_dict
from videoformers.registry import create_model, get_model_card

__all__ = [
    "CheckpointInfo",
    "convert_checkpoint",
    "load_converted",
    "load_model",
    "read_metadata",
    "reorder_classes",
    "parse_overrides",
]

FORMAT = "videoformers"
FORMAT_VERSION = "1"
_PREPROCESS_KEYS = ("num_frames", "img_size", "short_side", "sampling", "frame_interval", "num_clips", "num_crops")
_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
           "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


@dataclass
class CheckpointInfo:
    """What a checkpoint says about the model it holds (metadata of a converted file or a training
    checkpoint); ``None`` where it says nothing."""

    model_name: str | None = None
    overrides: dict = field(default_factory=dict)
    labels: list[str] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    preprocess: dict = field(default_factory=dict)
    kind: str = "state_dict"  # "converted" | "training" | "state_dict"
    path: str | None = None

    def to_metadata(self, source: str | None = None) -> dict[str, str]:
        from videoformers import __version__

        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "videoformers_version": __version__,
                "model_name": str(self.model_name), "overrides": json.dumps(_jsonable(self.overrides))}
        if self.mean is not None:
            meta["mean"] = json.dumps([float(v) for v in self.mean])
        if self.std is not None:
            meta["std"] = json.dumps([float(v) for v in self.std])
        if self.labels is not None:
            meta["labels"] = json.dumps(list(self.labels), ensure_ascii=False)
        if self.preprocess:
            meta["preprocess"] = json.dumps(_jsonable(self.preprocess))
        if source:
            meta["source"] = source
        return meta


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return v


def _json_field(meta: Mapping[str, str], key: str, path: str) -> Any:
    if key not in meta:
        return None
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata field {key!r} is not valid JSON ({e})") from None


def _info_from_metadata(meta: Mapping[str, str], path: str) -> CheckpointInfo:
    overrides = _json_field(meta, "overrides", path) or {}
    mean, std = _json_field(meta, "mean", path), _json_field(meta, "std", path)
    return CheckpointInfo(
        model_name=meta.get("model_name"),
        overrides=dict(overrides),
        labels=_json_field(meta, "labels", path),
        mean=tuple(mean) if mean else None,
        std=tuple(std) if std else None,
        preprocess=dict(_json_field(meta, "preprocess", path) or {}),
        kind="converted",
        path=path,
    )


def read_metadata(path: str | os.PathLike) -> CheckpointInfo:
    """The :class:`CheckpointInfo` of a file written by :func:`convert_checkpoint` (tensors are not read)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:
        raise CheckpointError(f"cannot read safetensors file {path}: {e}") from e
    if meta.get("format") != FORMAT or not meta.get("model_name"):
        raise CheckpointError(f"{path} has no videoformers metadata (write it with `videoformers convert`)")
    return _info_from_metadata(meta, path)


# ------------------------------------------------------------------------------------------------
# Training checkpoints of ``videoformers train``
# ------------------------------------------------------------------------------------------------


def _is_training_checkpoint(obj: Any) -> bool:
    return isinstance(obj, Mapping) and "model" in obj and isinstance(obj.get("model"), Mapping) and (
        "model_name" in obj or "config" in obj)


def _accepts(model_name: str) -> frozenset[str]:
    from videoformers.registry import _entry

    return _entry(model_name).accepts


def _info_from_training(obj: Mapping, path: str) -> CheckpointInfo:
    """Model name, builder overrides, classes and data settings recorded by the training engine
    (mirrors ``engine.trainer.build_model``: the data section's frames/size fill the builder's)."""
    cfg = obj.get("config") or {}
    mcfg = cfg.get("model") or {}
    dcfg = cfg.get("data") or {}
    name = obj.get("model_name") or mcfg.get("name")
    if not name:
        raise CheckpointError(f"{path}: training checkpoint without a model name")
    accepts = _accepts(name)
    overrides = dict(mcfg.get("overrides") or {})
    common = {
        "num_classes": obj.get("num_classes") or mcfg.get("num_classes"),
        "num_frames": mcfg.get("num_frames") or dcfg.get("num_frames"),
        "img_size": mcfg.get("img_size") or dcfg.get("img_size"),
    }
    for k, v in common.items():
        if v is not None and k not in overrides and k in accepts:
            overrides[k] = v
    pre = {}
    for src, dst in (("num_frames", "num_frames"), ("img_size", "img_size"), ("test_scale", "short_side"),
                     ("sampling", "sampling"), ("frame_interval", "frame_interval"),
                     ("test_num_clips", "num_clips"), ("test_num_crops", "num_crops")):
        if dcfg.get(src) is not None:
            pre[dst] = dcfg[src]
    classes = obj.get("classes")
    return CheckpointInfo(
        model_name=name,
        overrides=overrides,
        labels=list(classes) if classes else None,
        mean=tuple(dcfg["mean"]) if dcfg.get("mean") else None,
        std=tuple(dcfg["std"]) if dcfg.get("std") else None,
        preprocess=pre,
        kind="training",
        path=path,
    )


def inspect_checkpoint(path: str | os.PathLike) -> tuple[Any, CheckpointInfo]:
    """Read ``path`` once; returns (loaded object, what it says about its model)."""
    path = os.fspath(path)
    obj, meta = read_checkpoint(path)
    if meta.get("format") == FORMAT:
        return obj, _info_from_metadata(meta, path)
    if _is_training_checkpoint(obj):
        return obj, _info_from_training(obj, path)
    return obj, CheckpointInfo(path=path)


# ------------------------------------------------------------------------------------------------
# Building models
# ------------------------------------------------------------------------------------------------


def _head_keys(model: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(model, "classifier_prefixes", (getattr(model, "head_prefix", "head."),)))


def _our_layout(model: nn.Module, obj: Any) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under our key names (unwrapped, MMAction2-stripped, converted)."""
    from videoformers.checkpoints.loading import _mmaction_to_flat

    sd = unwrap_state_dict(obj)
    sd = _mmaction_to_flat(sd, getattr(model, "head_prefix", "head."))
    convert = getattr(model, "convert_state_dict", None)
    return convert(sd) if callable(convert) else sd


def _head_rows(model: nn.Module, obj: Any) -> int | None:
    """Rows of the checkpoint's classifier when they differ from ``model``'s (e.g. a K600 checkpoint
    for a K400-default builder), else ``None``."""
    head = getattr(model, "head_prefix", "head.") + "weight"
    target = model.state_dict().get(head)
    if target is None:
        return None
    try:
        sd = _our_layout(model, obj)
    except Exception:
        return None
    w = sd.get(head)
    if w is None or w.ndim != 2 or w.shape[0] == target.shape[0]:
        return None
    return int(w.shape[0])


def load_model(
    checkpoint: str | os.PathLike,
    model_name: str | None = None,
    *,
    strict: bool = True,
    **overrides,
) -> tuple[nn.Module, CheckpointInfo]:
    """Build the model a checkpoint holds and load it; returns ``(model in eval mode, info)``.

    * a file from ``videoformers convert``: model name and overrides come from its metadata;
    * a training checkpoint of ``videoformers train``: from its recorded config;
    * any other layout: ``model_name`` is required; ``num_classes`` is taken from the checkpoint's
      classifier when not given.

    ``overrides`` update the recorded ones (e.g. ``num_frames`` for another clip length).
    """
    obj, info = inspect_checkpoint(checkpoint)
    name = info.model_name or model_name
    if name is None:
        raise ValueError(f"{checkpoint} does not say which model it holds: pass a model name (--model)")
    if model_name is not None and info.model_name is not None and model_name != info.model_name:
        raise ValueError(f"{checkpoint} holds {info.model_name!r}, not {model_name!r}")
    ov = {**info.overrides, **overrides}
    # Build on the meta device (no memory, no init); rebuild once if the classifier size differs.
    with torch.device("meta"):
        model = create_model(name, **ov)
    if "num_classes" not in ov:
        n = _head_rows(model, obj)
        if n is not None:
            ov["num_classes"] = n
            with torch.device("meta"):
                model = create_model(name, **ov)
    info.model_name, info.overrides = name, ov
    if strict:
        load_checkpoint(model, obj, strict=True)  # every tensor comes from the checkpoint
    else:
        model = create_model(name, **ov)  # real initialisation for what the checkpoint lacks
        model.load_report = load_checkpoint(model, obj, strict=False)  # type: ignore[attr-defined]
    model.eval()
    _attach(model, info)
    return model, info


def _attach(model: nn.Module, info: CheckpointInfo) -> None:
    """Record the checkpoint's label map and normalisation on the model for the tools to use."""
    card = getattr(model, "model_card", None)
    mean = tuple(info.mean) if info.mean else (tuple(card.mean) if card else None)
    std = tuple(info.std) if info.std else (tuple(card.std) if card else None)
    model.label_names = list(info.labels) if info.labels else None  # type: ignore[attr-defined]
    model.data_mean, model.data_std = mean, std  # type: ignore[attr-defined]
    model.preprocess_config = dict(info.preprocess)  # type: ignore[attr-defined]
    model.checkpoint_info = info  # type: ignore[attr-defined]


def load_converted(path: str | os.PathLike, **overrides) -> nn.Module:
    """Build and load the model of a file written by :func:`convert_checkpoint`, from the file alone.

    The model carries ``label_names``, ``data_mean``/``data_std`` and ``preprocess_config`` from the
    metadata (and ``model_card`` / ``model_name`` as every registered model)."""
    info = read_metadata(path)
    model = create_model(info.model_name, pretrained=os.fspath(path), **{**info.overrides, **overrides}).eval()
    info.overrides = {**info.overrides, **overrides}
    _attach(model, info)
    return model


# ------------------------------------------------------------------------------------------------
# Converting
# ------------------------------------------------------------------------------------------------


def reorder_classes(state_dict: Mapping[str, torch.Tensor], src_labels: Sequence[str], dst_labels: Sequence[str],
                    prefixes: Sequence[str] = ("head.",)) -> dict[str, torch.Tensor]:
    """Permute the classifier rows (keys under ``prefixes`` whose first dim is the class count) from the
    order ``src_labels`` to ``dst_labels``; both must name the same classes."""
    src, dst = list(src_labels), list(dst_labels)
    if len(src) != len(dst) or set(src) != set(dst):
        missing = sorted(set(dst) - set(src))[:5]
        extra = sorted(set(src) - set(dst))[:5]
        raise ValueError(f"cannot reorder {len(src)} classes into {len(dst)}: the label maps name different classes "
                         f"(only in the target: {missing}, only in the source: {extra})")
    pos = {name: i for i, name in enumerate(src)}
    perm = torch.tensor([pos[name] for name in dst])
    out = dict(state_dict)
    n = 0
    for k, v in state_dict.items():
        if k.startswith(tuple(prefixes)) and v.ndim >= 1 and v.shape[0] == len(src):
            out[k] = v.index_select(0, perm)
            n += 1
    if n == 0:
        raise ValueError(f"no classifier tensor with {len(src)} rows under {list(prefixes)} to reorder")
    return out


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    model_name: str | None = None,
    *,
    labels: "str | Sequence[str] | None" = None,
    reorder_labels: "str | Sequence[str] | None" = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    preprocess: Mapping[str, Any] | None = None,
    dtype: "str | torch.dtype | None" = None,
    **overrides,
) -> CheckpointInfo:
    """Convert ``src`` (any supported layout) to our layout in ``dst`` (``.safetensors``) with metadata.

    ``labels`` (a label-map name, a file or a list) records the class order of the checkpoint's head
    (default: what the checkpoint records, if anything); ``reorder_labels`` permutes the head rows
    into another order and records that one. ``mean``/``std`` default to the checkpoint's or the
    model card's; ``preprocess`` adds sampling settings (see the module docstring). ``dtype``
    (``"fp16"``/``"bf16"``) casts floating-point tensors. Every tensor of the model must come from
    ``src`` (strict). Returns the written :class:`CheckpointInfo`.
    """
    from videoformers.labels import get_labels

    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"the output must be a .safetensors file, got {dst}")
    model, info = load_model(src, model_name, **overrides)
    sd = {k: v.detach() for k, v in model.state_dict().items()}

    label_list = info.labels
    if labels is not None:
        label_list = get_labels(labels) if isinstance(labels, (str, os.PathLike)) else list(labels)
    head = getattr(model, "num_classes", None)
    if label_list is not None and isinstance(head, int) and head > 0 and len(label_list) != head:
        raise ValueError(f"{len(label_list)} labels given but the classifier has {head} outputs")
    if reorder_labels is not None:
        if label_list is None:
            raise ValueError("--reorder-labels needs the checkpoint's current order (--labels)")
        target = get_labels(reorder_labels) if isinstance(reorder_labels, (str, os.PathLike)) else list(reorder_labels)
        sd = reorder_classes(sd, label_list, target, _head_keys(model))
        label_list = target

    card = get_model_card(info.model_name)  # type: ignore[arg-type]
    if isinstance(head, int) and "num_classes" not in info.overrides and "num_classes" in _accepts(info.model_name):
        info.overrides["num_classes"] = head  # explicit: the file does not depend on the builder's default
    info.labels = label_list
    info.mean = tuple(mean) if mean is not None else (info.mean or tuple(card.mean))
    info.std = tuple(std) if std is not None else (info.std or tuple(card.std))
    if preprocess:
        unknown = sorted(set(preprocess) - set(_PREPROCESS_KEYS))
        if unknown:
            raise ValueError(f"unknown preprocess keys {unknown}; valid: {list(_PREPROCESS_KEYS)}")
        info.preprocess = {**info.preprocess, **dict(preprocess)}

    if dtype is not None:
        dt = _DTYPES.get(dtype, None) if isinstance(dtype, str) else dtype
        if dt is None:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
        sd = {k: v.to(dt) if v.is_floating_point() else v for k, v in sd.items()}
    # safetensors refuses tensors sharing memory (tied weights, views): give every entry its own copy.
    tensors = {k: v.contiguous().clone() for k, v in sd.items()}

    from videoformers.checkpoints import save_checkpoint_atomic

    save_checkpoint_atomic((tensors, info.to_metadata(source=os.path.basename(os.fspath(src)))), dst)
    info.kind, info.path = "converted", os.fspath(dst)
    return info


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def parse_overrides(pairs: Sequence[str]) -> dict:
    """``["depth=[1,1,1,1]", "num_classes=10"]`` -> ``{"depth": [1, 1, 1, 1], "num_classes": 10}``
    (values are parsed as YAML, so numbers, lists and booleans work)."""
    import yaml

    out: dict = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"override {p!r} is not key=value")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise ValueError(f"override {p!r}: cannot parse the value ({e})") from None
    return out


def add_model_arguments(p: argparse.ArgumentParser, checkpoint_required: bool = True) -> None:
    """``--model``, ``--checkpoint``, ``--override``, ``--num-classes``/``--num-frames``/``--img-size``."""
    p.add_argument("--model", default=None, help="registered model name (optional for files that record it); "
                                                  "NAME.tag without --checkpoint: the released weights")
    p.add_argument("--checkpoint", required=checkpoint_required, default=None,
                   help="checkpoint: converted .safetensors, a training checkpoint, or any supported layout")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="builder override, e.g. depth=[1,1,1,1] (repeatable)")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--num-frames", type=int, default=None)
    p.add_argument("--img-size", type=int, default=None)


def model_from_args(args: argparse.Namespace, allow_random: bool = False, **extra) -> nn.Module:
    """The model a command's ``--checkpoint`` / ``--model NAME[.tag]`` name: a checkpoint file, else the
    released weights of ``NAME.tag`` (fetched and cached), else -- ``allow_random`` -- ``NAME`` untrained."""
    from videoformers.checkpoints.zoo import split_name
    from videoformers.registry import create_model

    ov = {**model_overrides(args), **extra}
    if args.checkpoint:
        return load_model(args.checkpoint, split_name(args.model)[0] if args.model else None, **ov)[0]
    if not args.model:
        raise SystemExit(f"{args.command}: give --checkpoint FILE or --model NAME.tag (released weights)")
    if split_name(args.model)[1] is not None:
        return create_model(args.model, pretrained=True, **ov).eval()
    if not allow_random:
        raise SystemExit(f"{args.command}: --model {args.model} names no weights: add a tag (see "
                         "videoformers.list_pretrained()) or --checkpoint FILE")
    print(f"{args.command}: no --checkpoint: {args.model} has random weights (useful for testing only)",
          file=sys.stderr)
    return create_model(args.model, **ov).eval()


def model_overrides(args: argparse.Namespace) -> dict:
    ov = parse_overrides(args.override)
    for k in ("num_classes", "num_frames", "img_size"):
        v = getattr(args, k, None)
        if v is not None:
            ov[k] = v
    return ov


def _floats(s: str | None) -> tuple[float, ...] | None:
    if s is None:
        return None
    vals = tuple(float(v) for v in s.replace(",", " ").split())
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise ValueError(f"expected 1 or 3 numbers, got {s!r}")
    return vals


def run(args: argparse.Namespace) -> int:
    pre = parse_overrides(args.preprocess)
    info = convert_checkpoint(
        args.src, args.dst, args.model, labels=args.labels, reorder_labels=args.reorder_labels,
        mean=_floats(args.mean), std=_floats(args.std), preprocess=pre or None, dtype=args.dtype,
        **model_overrides(args),
    )
    n = len(info.labels) if info.labels else None
    print(f"wrote {args.dst}: {info.model_name} {json.dumps(_jsonable(info.overrides))}"
          + (f", {n} labels" if n else ", no labels") + f", mean {list(info.mean)} std {list(info.std)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint (authors', MMAction2, HF, training) to safetensors "
                                       "in our layout with metadata",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="input checkpoint (any supported layout)")
    p.add_argument("dst", help="output .safetensors")
    p.add_argument("--model", default=None, help="registered model name (optional for training checkpoints)")
    p.add_argument("--labels", default=None, help="class order of the checkpoint's head: a label-map name "
                                                   "(videoformers.labels) or a text file")
    p.add_argument("--reorder-labels", default=None, metavar="NAME|FILE",
                   help="permute the classifier rows into this class order (and record it)")
    p.add_argument("--mean", default=None, help="input mean on [0,1] pixels, 1 or 3 numbers (default: the card's)")
    p.add_argument("--std", default=None, help="input std, 1 or 3 numbers (default: the card's)")
    p.add_argument("--preprocess", action="append", default=[], metavar="KEY=VALUE",
                   help=f"sampling metadata for predict, keys {', '.join(_PREPROCESS_KEYS)} (repeatable)")
    p.add_argument("--dtype", default=None, choices=sorted(_DTYPES), help="cast floating-point tensors")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="builder override, e.g. depth=[1,1,1,1] (repeatable)")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--num-frames", type=int, default=None)
    p.add_argument("--img-size", type=int, default=None)
    p.set_defaults(func=run)
