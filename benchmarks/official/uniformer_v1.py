"""Build the authors' UniFormer V1 models from a local clone of ``Sense-X/UniFormer``.

This is benchmarking / fixture-making glue, not part of the library: it imports the authors' model
files *at runtime* from a clone on disk (nothing of theirs is copied here). Their files import
``timm``, PySlowFast (``slowfast``) and MMDetection/MMCV helpers; where those cannot be imported, a
small torch-only stand-in is injected into ``sys.modules`` first:

- ``timm.models.layers``: ``DropPath`` (``_shim.TimmDropPath``: ``videoformers.models.layers.DropPath``
  under timm's ``drop_prob`` name), ``to_2tuple``,
  ``trunc_normal_`` (``torch.nn.init.trunc_normal_``, same signature); ``timm.models.registry.register_model``
  (identity decorator); ``timm.models.vision_transformer._cfg`` (returns a dict of its kwargs);
- ``slowfast.utils.logging.get_logger`` (``logging.getLogger``) and, for the relative
  ``from .build import MODEL_REGISTRY``, a private package whose ``build.MODEL_REGISTRY.register()``
  is an identity decorator;
- ``mmdet.utils`` / ``mmseg.utils`` / ``mmpose.utils`` ``.get_root_logger``, ``mmcv_custom.load_checkpoint``
  (plain non-strict ``load_state_dict``), ``..builder.BACKBONES.register_module()`` (the relative import of
  the detection, segmentation and pose backbones) and ``mmdet.models.builder`` / ``mmseg.models.builder``
  ``.BACKBONES`` (the absolute import of the light dense backbones) for the dense-task backbones.

Every build executes the model file afresh (a new module object), so the files' module-level state
(``layer_scale`` set by ``uniformer_base_ls``/``uniformer_large_ls``, the light models' ``global_attn``,
``init_value``) never leaks from one build into the next.

Example (timings against our implementation)::

    from benchmarks.official.uniformer_v1 import build_official
    m = build_official("/tmp/ref_uniformer", "uniformer_small", num_frames=8).eval()
    logits = m(torch.randn(1, 3, 8, 224, 224))       # plain tensor, no PySlowFast list
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import logging
import os
import sys
import types
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn as nn

try:
    from ._shim import SLOWFAST_LOGGING, TIMM_LAYERS, Registry, provide, stand_in
except ImportError:  # executed as a file rather than as benchmarks.official.uniformer_v1
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from benchmarks.official._shim import SLOWFAST_LOGGING, TIMM_LAYERS, Registry, provide, stand_in

__all__ = [
    "OFFICIAL_FILES",
    "OFFICIAL_NAMES",
    "install_shim",
    "load_official_module",
    "video_cfg",
    "build_official",
    "build_official_dense",
    "DENSE_CLASSES",
]

#: Paths (inside the authors' repository) of the model files this loader knows.
OFFICIAL_FILES: dict[str, str] = {
    "video": "video_classification/slowfast/models/uniformer.py",
    "video_light": "video_classification/slowfast/models/uniformer_light_fp32.py",
    "video_light_ls": "video_classification/slowfast/models/uniformer_light_ls_fp32.py",
    "image": "image_classification/models/uniformer.py",
    "image_tl": "image_classification/token_labeling/tlt/models/uniformer.py",
    "image_light": "image_classification/models/uniformer_light.py",
    "det": "object_detection/mmdet/models/backbones/uniformer.py",
    "seg": "semantic_segmentation/mmseg/models/backbones/uniformer.py",
    "pose": "pose_estimation/mmpose/models/backbones/uniformer.py",
    "det_light": "object_detection/mmdet/models/backbones/uniformer_light.py",
    "seg_light": "semantic_segmentation/mmseg/models/backbones/uniformer_light.py",
}
_DENSE_DIRS = ("object_detection/", "semantic_segmentation/", "pose_estimation/")

# Private package names the files are executed under. The video files do ``from .build import
# MODEL_REGISTRY`` and the detection backbone ``from ..builder import BACKBONES``, so the packages
# below provide ``build`` and ``builder`` modules.
_PKG = "_uf_official"
_VIDEO_PKG = _PKG + ".slowfast_models"
_DET_PKG = _PKG + ".backbones"
_counter = itertools.count()


# --------------------------------------------------------------------------------------------------
# torch-only shim (the rule for real vs stand-in modules lives in ``_shim``)
# --------------------------------------------------------------------------------------------------
def _mmcv_load_checkpoint(model: nn.Module, filename: str, map_location: str = "cpu", strict: bool = False, logger: Any = None) -> dict:
    ckpt = torch.load(filename, map_location=map_location, weights_only=False)
    for key in ("state_dict", "model", "model_state"):
        if isinstance(ckpt, dict) and key in ckpt:
            ckpt = ckpt[key]
    model.load_state_dict(ckpt, strict=strict)
    return ckpt


def install_shim(force: bool = False) -> dict[str, str]:
    """Make the authors' imports resolvable; returns ``{module: "real" | "shim"}``.

    Real ``timm``/``slowfast``/``mmdet``/``mmcv_custom`` are used when importable unless ``force``
    (see ``benchmarks/official/_shim.py`` for how stand-ins coexist with the other loaders').
    """
    used = {
        "timm": provide("timm", {
            "timm.models.layers": TIMM_LAYERS,
            "timm.models.registry": {"register_model": lambda fn: fn},
            "timm.models.vision_transformer": {"_cfg": lambda url="", **kw: {"url": url, **kw}},
        }, force),
        "slowfast": provide("slowfast.utils.logging", {"slowfast.utils.logging": SLOWFAST_LOGGING}, force),
        "mmdet": provide(("mmdet.utils", "mmdet.models.builder"), {
            "mmdet.utils": {"get_root_logger": lambda *a, **k: logging.getLogger("mmdet")},
            "mmdet.models.builder": {"BACKBONES": Registry()},
        }, force),
        "mmseg": provide(("mmseg.utils", "mmseg.models.builder"), {
            "mmseg.utils": {"get_root_logger": lambda *a, **k: logging.getLogger("mmseg")},
            "mmseg.models.builder": {"BACKBONES": Registry()},
        }, force),
        "mmpose": provide("mmpose.utils", {
            "mmpose.utils": {"get_root_logger": lambda *a, **k: logging.getLogger("mmpose")},
        }, force),
        "mmcv_custom": provide("mmcv_custom", {"mmcv_custom": {"load_checkpoint": _mmcv_load_checkpoint}}, force),
    }
    # private packages for the relative imports (always ours: they only hold registries)
    stand_in(_PKG + ".builder", BACKBONES=Registry())
    stand_in(_VIDEO_PKG + ".build", MODEL_REGISTRY=Registry())
    stand_in(_DET_PKG)
    return used


def load_official_module(repo: str, which: str) -> types.ModuleType:
    """Execute one of the authors' model files (``OFFICIAL_FILES[which]`` or a repo-relative path)
    from the clone at ``repo`` as a fresh module and return it."""
    install_shim()
    rel = OFFICIAL_FILES.get(which, which)
    path = os.path.join(repo, rel)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {repo!r} a clone of Sense-X/UniFormer?")
    pkg = _VIDEO_PKG if rel.startswith("video_classification/") else _DET_PKG if rel.startswith(_DENSE_DIRS) else _PKG
    stem = os.path.splitext(os.path.basename(rel))[0]
    name = f"{pkg}.{stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = pkg
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------------------------------
# PySlowFast-style cfg for the video models
# --------------------------------------------------------------------------------------------------
def video_cfg(
    *,
    depth: list[int],
    embed_dim: list[int],
    head_dim: int,
    mlp_ratio: float | list[float] = 4,
    num_classes: int = 400,
    img_size: int = 224,
    num_frames: int = 8,
    drop_path_rate: float = 0.1,
    prune_ratio: list | None = None,
    trade_off: list | None = None,
    init_value: float | None = None,
    split: bool = False,
    std: bool = False,
) -> SimpleNamespace:
    """Namespace with exactly the cfg fields the authors' video models read.

    Defaults follow ``slowfast/config/defaults.py`` (QKV_BIAS True, QKV_SCALE None, dropouts 0, the
    default PRUNE_RATIO/TRADE_OFF). ``INIT_VALUE`` is not in their defaults although the layer-scale
    light model reads it (the exp_light LS yamls set 0.1); pass ``init_value`` for that model, it is
    omitted otherwise. ``mlp_ratio`` must be a 4-list for the light models (they index it).
    """
    default_prune = [[], [], [1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
    uf = SimpleNamespace(
        DEPTH=list(depth),
        EMBED_DIM=list(embed_dim),
        HEAD_DIM=head_dim,
        MLP_RATIO=mlp_ratio,
        QKV_BIAS=True,
        QKV_SCALE=None,
        REPRESENTATION_SIZE=None,
        DROPOUT_RATE=0.0,
        ATTENTION_DROPOUT_RATE=0.0,
        DROP_DEPTH_RATE=drop_path_rate,
        PRETRAIN_NAME=None,
        SPLIT=split,
        STD=std,
        PRUNE_RATIO=prune_ratio if prune_ratio is not None else default_prune,
        TRADE_OFF=trade_off if trade_off is not None else default_prune,
    )
    if init_value is not None:
        uf.INIT_VALUE = init_value
    return SimpleNamespace(
        UNIFORMER=uf,
        MODEL=SimpleNamespace(NUM_CLASSES=num_classes, USE_CHECKPOINT=False, CHECKPOINT_NUM=[0, 0, 0, 0]),
        DATA=SimpleNamespace(TRAIN_CROP_SIZE=img_size, INPUT_CHANNEL_NUM=[3], NUM_FRAMES=num_frames),
    )


def _tensor_input(cls: type) -> type:
    """Subclass of a PySlowFast model whose ``forward`` takes a tensor instead of ``[tensor]``.

    A subclass rather than a wrapper keeps the authors' state-dict keys unchanged.
    """

    def forward(self, x: torch.Tensor):
        if isinstance(x, (list, tuple)):
            return cls.forward(self, x)
        return cls.forward(self, [x])

    return type(cls.__name__ + "TensorInput", (cls,), {"forward": forward, "__module__": cls.__module__})


# --------------------------------------------------------------------------------------------------
# named builds
# --------------------------------------------------------------------------------------------------
_S = dict(depth=[3, 4, 8, 3], embed_dim=[64, 128, 320, 512], head_dim=64)
_B = dict(depth=[5, 8, 20, 7], embed_dim=[64, 128, 320, 512], head_dim=64)
_XXS = dict(depth=[2, 5, 8, 2], embed_dim=[56, 112, 224, 448], head_dim=28)
_XS = dict(depth=[3, 5, 9, 3], embed_dim=[64, 128, 256, 512], head_dim=32)

#: name -> (kind, file key, builder or class name, defaults). Default drop_path_rate = the paper's
#: training value (irrelevant in eval mode).
OFFICIAL_NAMES: dict[str, tuple[str, str, str, dict]] = {
    "uniformer_small": ("video", "video", "Uniformer", dict(_S, num_classes=400, img_size=224, num_frames=8, drop_path_rate=0.1)),
    "uniformer_base": ("video", "video", "Uniformer", dict(_B, num_classes=400, img_size=224, num_frames=8, drop_path_rate=0.3)),
    "uniformer_xxs": (
        "video",
        "video_light",
        "Uniformer_light_fp32",
        dict(
            _XXS,
            mlp_ratio=[3, 3, 3, 3],
            num_classes=400,
            img_size=160,
            num_frames=8,
            drop_path_rate=0.05,
            # PRUNE_RATIO / TRADE_OFF: the defaults.py values (stage 3 [1, 0.5 x 7], stage 4 [0.5 x 3])
        ),
    ),
    "uniformer_xs": (
        "video",
        "video_light",
        "Uniformer_light_fp32",
        dict(
            _XS,
            mlp_ratio=[3, 3, 3, 3],
            num_classes=400,
            img_size=192,
            num_frames=32,
            drop_path_rate=0.1,
            prune_ratio=[[], [], [1] + [0.5] * 8, [0.5] * 3],
            trade_off=[[], [], [1] + [0.5] * 8, [0.5] * 3],
        ),
    ),
    "uniformer_small_image": ("image", "image", "uniformer_small", dict(num_classes=1000, img_size=224, drop_path_rate=0.1)),
    "uniformer_small_plus_image": ("image", "image", "uniformer_small_plus", dict(num_classes=1000, img_size=224, drop_path_rate=0.1)),
    "uniformer_base_image": ("image", "image", "uniformer_base", dict(num_classes=1000, img_size=224, drop_path_rate=0.3)),
    "uniformer_large_image": ("image", "image_tl", "uniformer_large_ls", dict(num_classes=1000, img_size=224, drop_path_rate=0.4)),
    "uniformer_xxs_image": ("image_light", "image_light", "uniformer_xxs", dict(num_classes=1000, img_size=224, drop_path_rate=0.0)),
    "uniformer_xs_image": ("image_light", "image_light", "uniformer_xs", dict(num_classes=1000, img_size=224, drop_path_rate=0.1)),
}

_OVERRIDES = ("num_classes", "img_size", "num_frames", "drop_path_rate")


def build_official(repo: str, name: str, quiet: bool = True, **overrides: Any) -> nn.Module:
    """Build the authors' model ``name`` from the clone at ``repo`` (randomly initialised, train mode).

    Names: ``uniformer_small``/``uniformer_base`` (video, ``Uniformer``), ``uniformer_xxs``/``uniformer_xs``
    (video light, ``Uniformer_light_fp32`` with ``MLP_RATIO=[3,3,3,3]``), ``uniformer_{small,small_plus,base}_image``
    (``image_classification/models/uniformer.py``), ``uniformer_large_image`` (token-labeling
    ``uniformer_large_ls``: layer scale + aux head), ``uniformer_{xxs,xs}_image`` (``uniformer_light.py``).
    Overrides: ``num_classes``, ``img_size``, ``num_frames``, ``drop_path_rate``.

    Video models take a plain ``(B, C, T, H, W)`` tensor (the list input PySlowFast uses is
    wrapped inside); image models ``(B, C, H, W)``. ``img_size`` must equal the input size for
    the non-light image models (their ``PatchEmbed`` asserts it); for video it is bookkeeping only,
    and the light image models have no such argument (it is accepted and ignored). ``num_frames``
    does not change any video architecture (it is recorded as ``model.num_frames``). ``quiet``
    swallows the authors' build-time ``print``s (one per layer-scale block).
    """
    if name not in OFFICIAL_NAMES:
        raise KeyError(f"unknown official model {name!r}; known: {sorted(OFFICIAL_NAMES)}")
    unknown = set(overrides) - set(_OVERRIDES)
    if unknown:
        raise TypeError(f"unknown overrides {sorted(unknown)}; allowed: {_OVERRIDES}")
    kind, file_key, builder, defaults = OFFICIAL_NAMES[name]
    args = {**defaults, **overrides}
    mod = load_official_module(repo, file_key)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        model = _build(mod, kind, builder, args)
    model.official_name = name
    model.official_file = OFFICIAL_FILES[file_key]
    return model


#: Dense-task backbones: file key -> class name (built with the authors' own keyword arguments).
DENSE_CLASSES: dict[str, str] = {"det": "UniFormer", "seg": "UniFormer", "pose": "UniFormer",
                                 "det_light": "UniFormer_Light", "seg_light": "UniFormer_Light"}


def build_official_dense(repo: str, which: str, quiet: bool = True, **kwargs: Any) -> nn.Module:
    """The authors' dense-task backbone ``which`` (``det``, ``seg``, ``pose``, ``det_light``,
    ``seg_light``; see :data:`OFFICIAL_FILES`) built as their MMDetection / MMSegmentation / MMPose
    configs do: ``UniFormer(**kwargs)`` (e.g. ``layers=[3, 4, 8, 3], head_dim=64, hybrid=True,
    window_size=14``) or ``UniFormer_Light(**kwargs)``. Randomly initialised, train mode; the detection
    and segmentation backbones return the four normalised stage maps, the pose one the last only.
    ``UniFormer_Light.train`` returns ``None``: call ``model.eval()`` on its own line, not chained."""
    if which not in DENSE_CLASSES:
        raise KeyError(f"unknown dense backbone {which!r}; known: {sorted(DENSE_CLASSES)}")
    mod = load_official_module(repo, which)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        model = getattr(mod, DENSE_CLASSES[which])(**kwargs)
    model.official_file = OFFICIAL_FILES[which]
    return model


def _build(mod: types.ModuleType, kind: str, builder: str, args: dict) -> nn.Module:
    if kind == "video":
        cfg = video_cfg(**args)
        model = _tensor_input(getattr(mod, builder))(cfg)
        model.num_frames = int(args["num_frames"])
    elif kind == "image":
        model = getattr(mod, builder)(num_classes=args["num_classes"], img_size=args["img_size"], drop_path_rate=args["drop_path_rate"])
    else:  # light image models take no img_size
        model = getattr(mod, builder)(num_classes=args["num_classes"], drop_path_rate=args["drop_path_rate"])
    return model


if __name__ == "__main__":  # quick manual check: python -m benchmarks.official.uniformer_v1 /tmp/ref_uniformer
    repo = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ref_uniformer"
    print(install_shim())
    for n, (kind, *_rest) in OFFICIAL_NAMES.items():
        small = {"img_size": 64} if kind != "image_light" else {}
        m = build_official(repo, n, num_classes=10, **small).eval()
        shape = (1, 3, 8, 64, 64) if kind == "video" else (1, 3, 128, 128) if kind == "image_light" else (1, 3, 64, 64)
        with torch.no_grad():
            y = m(torch.randn(shape))
        n_params = sum(p.numel() for p in m.parameters())
        print(f"{n:28s} {type(m).__name__:32s} params={n_params / 1e6:7.3f}M in={tuple(shape)} out={tuple(y.shape)}")
