"""Model registry (timm-style) and model cards.

Every builder is registered with a :class:`ModelCard` that records where the model comes from
(paper and table), what input it expects (frames, size, normalisation) and the numbers the paper
prints (params and GFLOPs, one multiply-add = one FLOP, per view). ``videoformers models``
compares those numbers with what :func:`videoformers.count_params` / :func:`count_flops` measure.
"""

from __future__ import annotations

import fnmatch
import os
import inspect
import typing
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
import torch.nn as nn

__all__ = [
    "ModelCard",
    "register_model",
    "accepted_overrides",
    "build_model",
    "model_arguments",
    "list_models",
    "create_model",
    "get_model_card",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "CLIP_MEAN",
    "CLIP_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PySlowFast's defaults, used by the UniFormer video code (on [0, 1] pixels).
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelCard:
    """What a user needs to know to feed a registered model and to check it against its paper.

    ``input_size`` is ``(C, T, H, W)`` for video models and ``(C, H, W)`` for image models.
    ``paper_gflops`` is per view (papers print ``GFLOPs x views``; we divide the views out).
    """

    name: str
    family: str
    paper: str
    table: str
    input_size: tuple[int, ...]
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    paper_params_m: float | None = None
    paper_gflops: float | None = None
    notes: str = ""
    # Extra (input_size, paper GFLOPs) pairs the paper also reports for this architecture.
    extra_flops: tuple[tuple[tuple[int, ...], float], ...] = ()
    # Whether paper_params_m excludes the classifier (DualFormer reports backbone-only params).
    params_exclude_head: bool = False
    # What the model's forward returns: "classification" (logits (B, num_classes), the model contract of
    # videoformers.models.contract), "segmentation" (per-pixel logits (B, K, H, W)), "pose" (heatmaps
    # (B, K, H/4, W/4)). The engine's task (videoformers.engine.tasks) must match it.
    task: str = "classification"

    @property
    def is_video(self) -> bool:
        return len(self.input_size) == 4

    @property
    def num_frames(self) -> int | None:
        return self.input_size[1] if self.is_video else None

    @property
    def img_size(self) -> int:
        return self.input_size[-1]

    def with_overrides(self, **overrides) -> "ModelCard":
        """The card as seen after ``create_model(name, **overrides)`` changed the input or classes.

        Reads ``num_frames``, ``img_size`` and ``num_classes``. A ``None`` value counts as not
        overridden.
        """
        overrides = {k: v for k, v in overrides.items() if v is not None}
        size = list(self.input_size)
        if "num_frames" in overrides and self.is_video:
            size[1] = int(overrides["num_frames"])
        if "img_size" in overrides:
            s = overrides["img_size"]
            h, w = (s, s) if isinstance(s, int) else tuple(s)
            size[-2], size[-1] = int(h), int(w)
        changes: dict = {"input_size": tuple(size)}
        if "num_classes" in overrides:
            nc = overrides["num_classes"]
            # Multi-head models (e.g. ViViT's Epic-Kitchens verb/noun heads) take a tuple or a
            # {name: classes} mapping; the card records it as a tuple (of ints or (name, int) pairs).
            if isinstance(nc, dict):
                changes["num_classes"] = tuple((str(k), int(v)) for k, v in nc.items())
            elif isinstance(nc, (list, tuple)):
                changes["num_classes"] = tuple(int(v) for v in nc)
            else:
                changes["num_classes"] = int(nc)
        return replace(self, **changes)


@dataclass
class _Entry:
    builder: Callable[..., nn.Module]
    card: ModelCard
    accepts: frozenset[str] = field(default_factory=frozenset)


_REGISTRY: dict[str, _Entry] = {}


def model_arguments(cls: type) -> frozenset[str]:
    """The keyword arguments of ``cls``'s constructor: the overrides its builders accept."""
    params = inspect.signature(cls.__init__).parameters.values()
    return frozenset(p.name for p in params if p.name != "self"
                     and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


def build_model(cls: type, model_args: dict, overrides: dict) -> nn.Module:
    """The one family builder: ``cls(**model_args)`` with the user's ``overrides`` on top.

    ``model_args`` are the paper's hyper-parameters of one registered model; an override that is not
    an argument of ``cls`` raises ``TypeError`` naming the valid ones.
    """
    valid = model_arguments(cls)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown override(s) {unknown}; valid ones are {sorted(valid)}")
    return cls(**{**model_args, **overrides})


def _builder_class(fn: Callable[..., nn.Module]) -> type:
    # Model modules use ``from __future__ import annotations``: the annotation is a string until resolved.
    cls = typing.get_type_hints(fn).get("return")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"builder {fn.__qualname__} must annotate the model class it returns (-> SomeModel), "
                        f"got {cls!r}")
    return cls


def register_model(card: ModelCard) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering the builder ``fn`` under ``card.name`` (which must be ``fn``'s name, so that
    every registered model is a grep-able ``def``).

    A builder is ``def name(**kwargs) -> ModelClass``: the paper's hyper-parameters as one ``model_args``
    dict passed with ``kwargs`` to :func:`build_model`. The overrides it accepts are ``ModelClass``'s
    constructor arguments plus any keyword parameter of its own (UniFormerV2's ``preset``).
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if card.name in _REGISTRY:
            raise ValueError(f"model {card.name!r} is registered twice")
        if fn.__name__ != card.name:
            raise ValueError(f"builder {fn.__name__!r} registers {card.name!r}: the def must carry the model's name")
        cls = _builder_class(fn)
        own = {p.name for p in inspect.signature(fn).parameters.values()
               if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
        _REGISTRY[card.name] = _Entry(fn, card, model_arguments(cls) | own)
        fn.model_card = card  # type: ignore[attr-defined]
        return fn

    return deco


def accepted_overrides(name: str) -> frozenset[str]:
    """The overrides ``create_model(name, ...)`` accepts."""
    return _entry(name).accepts


def _ensure_models_imported() -> None:
    # Importing the models package registers every family.
    import videoformers.models  # noqa: F401


def list_models(pattern: str | None = None, family: str | None = None, task: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell-style wildcard (``"uniformer_*"``), ``task``
    one of the cards' tasks (``"classification"``, ``"segmentation"``, ``"pose"``)."""
    _ensure_models_imported()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if family:
        names = [n for n in names if _REGISTRY[n].card.family == family]
    if task:
        names = [n for n in names if _REGISTRY[n].card.task == task]
    return names


def _entry(name: str) -> _Entry:
    _ensure_models_imported()
    if name not in _REGISTRY:
        close = [n for n in sorted(_REGISTRY) if name.split("_")[0] in n][:10]
        hint = f" Similar: {', '.join(close)}." if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} See videoformers.list_models().")
    return _REGISTRY[name]


def get_model_card(name: str) -> ModelCard:
    return _entry(name).card


def create_model(
    name: str,
    pretrained: "str | os.PathLike | dict | None" = None,
    *,
    strict: bool = True,
    features_only: bool = False,
    out_indices: "int | Sequence[int] | None" = None,
    **overrides,
) -> nn.Module:
    """Build a registered model; ``overrides`` use the papers' hyper-parameter names.

    ``pretrained`` is a checkpoint path in any supported layout (ours, the authors', MMAction2,
    safetensors written by ``videoformers convert``), loaded with :func:`videoformers.load_checkpoint`,
    or ``True``: the released weights ``name`` names, ``"model.tag"`` (the model's default release without
    a tag; see :func:`videoformers.list_pretrained`), fetched and cached by
    :func:`videoformers.checkpoints.zoo.download`. A tag sets the release's classes and overrides (with
    ``pretrained`` left out: that architecture, untrained), and the model carries its ``pretrained_cfg``,
    ``label_names`` and ``preprocess_config``. The built model carries its card as ``model.model_card``.
    ``features_only=True`` returns a :class:`~videoformers.models.contract.FeatureExtractor`: a module
    whose forward gives the list of feature maps of ``out_indices`` (all stages / blocks by default),
    with their ``feature_info``.
    """
    from videoformers.checkpoints.zoo import get_pretrained, list_pretrained, split_name

    name, tag = split_name(name)
    entry = _entry(name)
    released = None
    if isinstance(pretrained, str) and tag is None and not os.path.exists(pretrained) \
            and f"{name}.{pretrained}" in list_pretrained():  # create_model("uniformer_small", pretrained="k400_16x8")
        tag, pretrained = pretrained, True
    keeps_all = True  # every tensor of the model comes from the file (built on the meta device)
    if tag is not None or pretrained is True:
        released = get_pretrained(name, tag)
        head = {} if released.num_classes is None else {"num_classes": released.num_classes}
        if pretrained is True:
            wanted = overrides.get("num_classes", released.num_classes)
            # An image encoder leaves the video modules at their init; another number of classes leaves the
            # classifier (fine-tuning), except a K710 head, whose rows of K400/600/700 are kept.
            keeps_all = released.init is None and (wanted == released.num_classes or (
                released.num_classes == 710 and wanted in (400, 600, 700)))
        overrides = {**released.overrides, **head, **overrides}
    unknown = sorted(set(overrides) - entry.accepts)
    if unknown:
        raise TypeError(
            f"{name}: unknown override(s) {unknown}; valid ones are {sorted(entry.accepts)}"
        )
    if out_indices is not None and not features_only:
        raise TypeError(f"{name}: out_indices needs features_only=True")
    if features_only and pretrained not in (None, False) and "dense" in entry.accepts and "dense" not in overrides \
            and not entry.card.is_video:
        # The dense-task backbone (norm1..4, no classifier) is what the file is loaded into: an ImageNet
        # checkpoint then reports head/norm as ignored, an authors' mmdet/mmseg/mmpose one loads whole.
        overrides = {**overrides, "dense": True}
    if pretrained is False:
        pretrained = None
    if isinstance(pretrained, (str, os.PathLike)) and os.fspath(pretrained).endswith(".safetensors") \
            and os.path.isfile(pretrained) and released is None and not features_only:
        # A file written by `videoformers convert`: its recorded overrides, labels and preprocessing apply.
        from videoformers.tools.convert import inspect_checkpoint, load_model

        info = inspect_checkpoint(pretrained)[1]
        if info.kind == "converted":
            model, _ = load_model(pretrained, name, strict=strict, **overrides)
            model.model_overrides = {**info.overrides, **overrides}
            return model
    if pretrained is not None and strict and keeps_all:
        # Every tensor comes from the checkpoint: skip random init by building on the meta device.
        with torch.device("meta"):
            model = entry.builder(**overrides)
    else:
        model = entry.builder(**overrides)
    model.model_card = entry.card.with_overrides(**overrides)
    model.model_name = name
    model.model_overrides = dict(overrides)  # what save_pretrained records
    how = None
    if pretrained is True:
        from videoformers.checkpoints.zoo import load_released

        report, how = load_released(model, released, strict=strict)
        model.pretrained_report = report
        if how == "head_dropped":
            import warnings

            dropped = sorted(k for k in model.state_dict() if k.startswith(tuple(model.classifier_prefixes)))
            warnings.warn(f"{name}.{released.tag}: {released.num_classes}-class classifier left out for "
                          f"num_classes={overrides['num_classes']}; re-initialised: {', '.join(dropped)}", stacklevel=2)
    elif pretrained is not None:
        from videoformers.checkpoints import load_checkpoint
        from videoformers.checkpoints.zoo import fetch_source

        model.pretrained_report = load_checkpoint(model, fetch_source(name, pretrained), strict=strict)
    if released is not None:
        _attach_release(model, released)
        if how == "k710_mapped":  # the kept rows are in that Kinetics set's own (MMAction2, alphabetical) order
            from videoformers.labels import get_labels

            model.label_names = get_labels(f"kinetics{model.num_classes}")
        elif how in ("head_dropped", "image_init"):
            model.label_names = None  # no class names belong to a new head
    if features_only:
        from videoformers.models.contract import FeatureExtractor

        model = FeatureExtractor(model, out_indices)
        model.model_name = name
    return model


def _attach_release(model: nn.Module, released) -> None:
    """What a released file says about its model: class names in logit order, test preprocessing."""
    model.pretrained_cfg = released
    model.pretrained_tag = released.tag
    if released.labels:
        from videoformers.labels import get_labels

        model.label_names = get_labels(released.labels)
    model.preprocess_config = dict(released.preprocess)
