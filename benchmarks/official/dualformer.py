"""Build the authors' DualFormer from a local clone of ``sail-sg/dualformer``.

Benchmarking / fixture-making glue, not part of the library: the authors' backbone file
(``mmaction/models/backbones/dualformer.py``) is executed *at runtime* from the clone on disk;
nothing of theirs is copied here. It imports ``timm``, ``mmcv`` and ``mmaction`` helpers; where
those cannot be imported, torch-only stand-ins are put into ``sys.modules`` first:

- ``timm.models.layers``: ``DropPath`` (``_shim.TimmDropPath``, timm semantics: per-sample,
  rescaled by the keep probability, identity in eval, ``drop_prob`` attribute) and ``trunc_normal_``
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

import importlib.util
import itertools
import logging
import os
import sys
import types
from typing import Any

import torch
import torch.nn as nn

try:
    from ._shim import TIMM_LAYERS, Registry, provide, stand_in
except ImportError:  # executed as a file (benchmarks/dualformer_vs_official.py loads it by path)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from benchmarks.official._shim import TIMM_LAYERS, Registry, provide, stand_in

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
def _mmcv_load_checkpoint(model: nn.Module, filename: str, map_location: str = "cpu", strict: bool = False,
                          logger: Any = None) -> dict:
    ckpt = torch.load(filename, map_location=map_location, weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(ckpt, dict) and key in ckpt:
            ckpt = ckpt[key]
    model.load_state_dict(ckpt, strict=strict)
    return ckpt


def install_shim() -> dict[str, str]:
    """Make the authors' imports resolvable; returns ``{package: "real" | "shim"}`` (see
    ``benchmarks/official/_shim.py`` for how stand-ins coexist with the other loaders')."""
    used = {
        "timm": provide("timm.models.layers", {"timm.models.layers": TIMM_LAYERS}),
        "mmcv": provide("mmcv.runner", {"mmcv.runner": {"load_checkpoint": _mmcv_load_checkpoint}}),
        "mmaction": provide("mmaction.utils", {
            "mmaction.utils": {"get_root_logger": lambda *a, **k: logging.getLogger("mmaction")}}),
    }
    stand_in(_PKG + ".builder", BACKBONES=Registry())
    stand_in(_PKG + ".backbones")
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
