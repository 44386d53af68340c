"""Build the authors' DualFormer from a local clone of ``sail-sg/dualformer``.

Benchmarking / fixture-making glue, not part of the library: the authors' backbone file
(``mmaction/models/backbones/dualformer.py``) is executed *at runtime* from the clone on disk;
nothing of theirs is copied here. It imports ``timm``, ``mmcv`` and ``mmaction`` helpers; where
those cannot be imported, torch-only stand-ins are put into ``sys.modules`` first:

- ``timm.models.layers``: ``DropPath`` (timm semantics: per-sample, rescaled by the keep
  probability, identity in eval, ``drop_prob`` attribute) and ``trunc_normal_``
  (``torch.nn.init.trunc_normal_``);
- ``mmcv.runner.load_checkpoint`` (non-strict ``load_state_dict`` of the unwrapped state dict);
- ``mmaction.utils.get_root_logger`` (``logging.getLogger``);
- the file's relative ``from ..builder import BACKBONES`` resolves to a private package whose
  ``BACKBONES.register_module()`` returns the class unchanged.

The returned module is backbone + the MMAction2 ``I3DHead`` the configs use (global average
pooling, dropout 0.5, ``fc_cls``), so its ``state_dict()`` has the keys of the authors'
checkpoints (``backbone.*``, ``cls_head.fc_cls.*``) and ``forward`` maps ``(B, C, T, H, W)`` to
logits. The head is rewritten here (three lines) because importing MMAction2's head pulls in
mmcv's whole runner.

Example::

    python -c "import sys, torch; sys.path.insert(0, '.');
    from benchmarks.official.dualformer import build_official
    m = build_official('/tmp/dualformer_ref', 'dualformer_tiny', video_size=(16, 224, 224)).eval()
    print(m(torch.randn(1, 3, 16, 224, 224)).shape)"
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import logging
import os
import sys
import types
from typing import Any

import torch
import torch.nn as nn

__all__ = ["OFFICIAL_FILE", "OFFICIAL_CONFIGS", "install_shim", "load_official_module", "build_official", "OfficialDualFormer"]

#: The backbone file inside the authors' repository.
OFFICIAL_FILE = "mmaction/models/backbones/dualformer.py"

_TINY = dict(
    video_size=(32, 224, 224),
    patch_size=(2, 4, 4),
    in_chans=3,
    num_classes=1000,  # unused by the backbone; the head has its own
    qk_scale=None,
    drop_rate=0.0,
    attn_drop_rate=0.0,
    drop_path_rate=0.1,
    embed_dims=[64, 128, 256, 512],
    num_heads=[2, 4, 8, 16],
    mlp_ratios=[4, 4, 4, 4],
    qkv_bias=True,
    depths=[2, 2, 10, 4],
    temporal_pooling=[-1, 1, 1, 1],
    local_sizes=[(8, 7, 7)] * 4,
    fine_pysizes=[(8, 7, 7)] * 3 + [(16, 7, 7)],
)

#: The backbone settings of ``configs/_base_/models/dualformer/dualformer_{tiny,small,base}.py``
#: with the K400 recipes' drop-path rates.
OFFICIAL_CONFIGS: dict[str, dict[str, Any]] = {
    "dualformer_tiny": _TINY,
    "dualformer_small": {**_TINY, "embed_dims": [96, 192, 384, 768], "num_heads": [3, 6, 12, 24],
                         "depths": [2, 2, 18, 2], "drop_path_rate": 0.2},
    "dualformer_base": {**_TINY, "embed_dims": [128, 256, 512, 1024], "num_heads": [4, 8, 16, 32],
                        "depths": [2, 2, 18, 2], "drop_path_rate": 0.3},
}

_PKG = "_df_official"
_counter = itertools.count()


# --------------------------------------------------------------------------------------------------
# torch-only shim
# --------------------------------------------------------------------------------------------------
class _TimmDropPath(nn.Module):
    """timm's ``DropPath``: drop the residual branch per sample, scale the kept ones by 1/keep."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def _mmcv_load_checkpoint(model: nn.Module, filename: str, map_location: str = "cpu", strict: bool = False,
                          logger: Any = None) -> dict:
    ckpt = torch.load(filename, map_location=map_location, weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(ckpt, dict) and key in ckpt:
            ckpt = ckpt[key]
    model.load_state_dict(ckpt, strict=strict)
    return ckpt


class _Registry:
    def register_module(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], type):
            return args[0]
        return lambda cls: cls


def _module(name: str, **attrs: Any) -> types.ModuleType:
    """The module ``name`` from ``sys.modules`` (created as an empty package if absent), with the
    given attributes added where it lacks them (another loader's shim is left as it is)."""
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        mod.__path__ = []
        mod.__df_shim__ = True
        sys.modules[name] = mod
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(_module(parent), child, mod)
    for k, v in attrs.items():
        if not hasattr(mod, k):
            setattr(mod, k, v)
    return mod


def _importable(name: str) -> bool:
    if name in sys.modules:
        return True
    try:
        importlib.import_module(name)
        return True
    except Exception:  # ImportError, or a broken install (timm without torchvision)
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            if not getattr(sys.modules[key], "__df_shim__", False):
                del sys.modules[key]
        return False


def install_shim() -> dict[str, str]:
    """Make the authors' imports resolvable; returns ``{package: "real" | "shim"}``."""
    used: dict[str, str] = {}
    if _importable("timm.models.layers"):
        used["timm"] = "real"
    else:
        _module("timm.models.layers", DropPath=_TimmDropPath, trunc_normal_=nn.init.trunc_normal_)
        used["timm"] = "shim"
    if _importable("mmcv.runner"):
        used["mmcv"] = "real"
    else:
        _module("mmcv.runner", load_checkpoint=_mmcv_load_checkpoint)
        used["mmcv"] = "shim"
    if _importable("mmaction.utils"):
        used["mmaction"] = "real"
    else:
        _module("mmaction.utils", get_root_logger=lambda *a, **k: logging.getLogger("mmaction"))
        used["mmaction"] = "shim"
    _module(_PKG + ".builder", BACKBONES=_Registry())
    _module(_PKG + ".backbones")
    return used


def load_official_module(repo: str) -> types.ModuleType:
    """Execute the authors' backbone file from the clone at ``repo`` as a fresh module."""
    path = os.path.join(repo, OFFICIAL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {repo!r} a clone of sail-sg/dualformer?")
    install_shim()
    name = f"{_PKG}.backbones.dualformer_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = _PKG + ".backbones"
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------------------------------
# backbone + I3D head
# --------------------------------------------------------------------------------------------------
class _I3DHead(nn.Module):
    """MMAction2 ``I3DHead(spatial_type='avg')``: AdaptiveAvgPool3d(1) -> Dropout -> ``fc_cls``."""

    def __init__(self, in_channels: int, num_classes: int, dropout_ratio: float = 0.5) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc_cls.weight, std=0.01)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_cls(self.dropout(self.avg_pool(x)).flatten(1))


class OfficialDualFormer(nn.Module):
    """``Recognizer3D`` reduced to inference: ``cls_head(backbone(x))``."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(x))


def build_official(repo: str, name: str = "dualformer_tiny", *, num_classes: int = 400,
                   dropout_ratio: float = 0.5, init_weights: bool = True, **overrides: Any) -> OfficialDualFormer:
    """The authors' ``DualFormer`` backbone (``OFFICIAL_CONFIGS[name]`` updated with ``overrides``,
    which use the authors' constructor names: ``video_size``, ``embed_dims``, ``depths``, ...; our
    ``num_frames`` / ``img_size`` are translated into ``video_size``) plus
    the I3D head, from the clone at ``repo``.

    ``init_weights`` runs the backbone's own ``init_weights()`` (trunc-normal Linear, as MMAction2
    does when building); the shape of every tensor is independent of it.
    """
    if name not in OFFICIAL_CONFIGS:
        raise ValueError(f"unknown official model {name!r}; known: {sorted(OFFICIAL_CONFIGS)}")
    cfg = {**OFFICIAL_CONFIGS[name], **overrides}
    if "num_frames" in cfg or "img_size" in cfg:  # our names (benchmarks/compare_official.py) -> theirs
        t, h, w = cfg["video_size"]
        size = cfg.pop("img_size", None)
        cfg["video_size"] = (cfg.pop("num_frames", t), size or h, size or w)
    # The authors' constructor writes patch_size[0] into temporal_pooling[0]: hand it a fresh list.
    for key in ("embed_dims", "num_heads", "mlp_ratios", "depths", "temporal_pooling", "local_sizes", "fine_pysizes"):
        cfg[key] = list(cfg[key])
    mod = load_official_module(repo)
    backbone = mod.DualFormer(**cfg)
    if init_weights:
        backbone.init_weights()
    head = _I3DHead(cfg["embed_dims"][-1], num_classes, dropout_ratio)
    return OfficialDualFormer(backbone, head)
