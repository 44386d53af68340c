"""UniFormer + FPN as a detection backbone (TPAMI Sec. 6.3, Tables 5 and 7), for existing detectors.

No detector is written here. :func:`uniformer_fpn_backbone` returns the module torchvision's
detectors take as ``backbone`` (``torchvision.models.detection.MaskRCNN(backbone, num_classes=91)``,
``FasterRCNN``, ...): it has an ``out_channels`` attribute and its forward returns an
``OrderedDict[str, Tensor]`` of maps ``'0'`` .. ``'3'`` (strides 4, 8, 16, 32) and ``'pool'`` (stride 64),
as torchvision's ``BackboneWithFPN``. The trunk is the authors' dense UniFormer backbone (``features_only``:
LayerNorm on every stage output) with hybrid h14 stage 3 by default (window 14 and every fourth block
global, as in all the authors' COCO configs, ``object_detection/exp/*_hybrid_*/config.py``); the neck
is the FPN of Lin et al. ("Feature Pyramid Networks for Object Detection", arXiv 1612.03144) as
MMDetection's ``FPN(in_channels=[64, 128, 320, 512], out_channels=256, num_outs=5)`` that the authors use
(``object_detection/configs/_base_/models/mask_rcnn_uniformer_fpn.py``): 1x1 lateral convolutions,
nearest-neighbour top-down addition, 3x3 output convolutions, and a fifth level by stride-2
max-pooling of the last one (``add_extra_convs=False``; torchvision's ``LastLevelMaxPool``).

For MMDetection users, :func:`mmdet_state_dict` writes the weights in the layout their configs load
(``backbone.`` + the authors' backbone keys, ``neck.lateral_convs.i.conv`` / ``neck.fpn_convs.i.conv``);
see docs/dense.md, "Detection with MMDetection".
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FPNConfig", "FPN", "UniFormerFPNBackbone", "uniformer_fpn_backbone", "mmdet_state_dict"]


class _ConvModule(nn.Module):
    """A convolution under MMCV's ``ConvModule`` key names (``<name>.conv.weight``), so that the neck's
    weights read as MMDetection's FPN."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@dataclass(frozen=True)
class FPNConfig:
    """The neck's hyper-parameters (MMDetection ``FPN`` names): ``in_channels`` per input level,
    ``out_channels`` (256 in every UniFormer detection config) and ``extra_pool`` (the fifth, stride-2
    max-pooled level that RPN anchors of stride 64 use: ``num_outs=5``)."""

    in_channels: tuple[int, ...]
    out_channels: int = 256
    extra_pool: bool = True

    def __post_init__(self) -> None:
        if not self.in_channels or any(int(c) <= 0 for c in self.in_channels):
            raise ValueError(f"FPNConfig.in_channels must be positive channel counts, got {self.in_channels}")
        if self.out_channels <= 0:
            raise ValueError(f"FPNConfig.out_channels must be positive, got {self.out_channels}")


class FPN(nn.Module):
    """Feature pyramid network (Lin et al., arXiv 1612.03144, Sec. 3): laterals ``1x1``, top-down
    nearest upsampling to the lateral's size (so odd map sizes work), ``3x3`` smoothing; optionally a
    max-pooled extra level. Input: the list of maps fine to coarse; output: the list of pyramid maps.

    Initialisation as MMDetection's ``ConvModule`` (Kaiming-uniform, zero bias) would give; the
    detectors' own ``init_weights`` decide in practice.
    """

    def __init__(self, config: FPNConfig) -> None:
        super().__init__()
        self.config = config
        c = config.out_channels
        self.lateral_convs = nn.ModuleList(_ConvModule(int(i), c, 1) for i in config.in_channels)
        self.fpn_convs = nn.ModuleList(_ConvModule(c, c, 3) for _ in config.in_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f"FPN expects {len(self.lateral_convs)} maps, got {len(feats)}")
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            # not in place: autograd needs the lateral it already used
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:],
                                                              mode="nearest")
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)]
        if self.config.extra_pool:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class UniFormerFPNBackbone(nn.Module):
    """UniFormer dense backbone + FPN with torchvision's detector-backbone interface.

    ``body``: the ``features_only`` UniFormer (four LayerNorm-ed stage maps); ``fpn``: :class:`FPN`;
    ``out_channels``: what torchvision's RPN / RoI heads read. Forward: ``(B, 3, H, W)`` (any size of at
    least 32; torchvision's transform pads batches to multiples of 32) -> ``OrderedDict`` with keys
    ``'0'``, ``'1'``, ``'2'``, ``'3'``, ``'pool'``.
    """

    def __init__(self, body: nn.Module, config: FPNConfig) -> None:
        super().__init__()
        if len(config.in_channels) != len(body.feature_info):
            raise ValueError(f"FPN has {len(config.in_channels)} inputs but the backbone returns "
                             f"{len(body.feature_info)} maps")
        self.body = body
        self.fpn = FPN(config)
        self.out_channels = config.out_channels
        self.strides = [int(r) for r in body.feature_info.reduction()] + ([2 * body.feature_info.reduction()[-1]]
                                                                          if config.extra_pool else [])

    def set_window_attention(self, window_size: int | None, window_pattern: str = "w") -> None:
        """Stage 3 global / window / hybrid (TPAMI Sec. 4.3; see
        :meth:`videoformers.models.uniformer.UniFormer.set_window_attention`)."""
        self.body.set_window_attention(window_size, window_pattern)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        outs = self.fpn(self.body(x))
        names = [str(i) for i in range(len(self.body.feature_info))] + (["pool"] if self.fpn.config.extra_pool else [])
        return OrderedDict(zip(names, outs))


def uniformer_fpn_backbone(name: str = "uniformer_small_image", pretrained: "str | os.PathLike | dict | None" = None,
                           window_size: int | None = 14, window_pattern: str = "wwwg", out_channels: int = 256,
                           extra_pool: bool = True, **overrides) -> UniFormerFPNBackbone:
    """UniFormer-S/B (``uniformer_small_image`` / ``uniformer_base_image``) + FPN for a detector.

    Defaults are the authors' Mask R-CNN / Cascade Mask R-CNN setting (TPAMI Table 5, 7): hybrid h14
    stage 3 (``window_size=14, window_pattern="wwwg"``), FPN with 256 channels and the max-pooled fifth
    level. ``pretrained``: an ImageNet checkpoint (ours or the authors' layout; its classifier and final
    BatchNorm are ignored, ``norm1..4`` start at their init) or a dense checkpoint of the authors'
    (``backbone.`` keys; a detector's other keys are ignored), loaded strictly into the backbone; the
    report is ``module.body.model.pretrained_report``. ``overrides`` go to :func:`videoformers.create_model`
    (e.g. ``drop_path_rate=0.2`` for S, ``0.3`` for B as in their configs).
    """
    from ..registry import create_model

    body = create_model(name, pretrained=pretrained, features_only=True, out_indices=(0, 1, 2, 3), dense=True,
                        window_size=window_size, window_pattern=window_pattern, **overrides)
    config = FPNConfig(in_channels=tuple(body.feature_info.channels()), out_channels=out_channels,
                       extra_pool=extra_pool)
    return UniFormerFPNBackbone(body, config)


def mmdet_state_dict(module: UniFormerFPNBackbone, neck: bool = True) -> "OrderedDict[str, torch.Tensor]":
    """The weights as an MMDetection detector holds them: ``backbone.<the authors' UniFormer keys>``
    (:meth:`~videoformers.models.uniformer.UniFormer.authors_state_dict`) and, with ``neck``,
    ``neck.lateral_convs.<i>.conv.*`` / ``neck.fpn_convs.<i>.conv.*`` of their ``FPN``. Save it as
    ``torch.save({"state_dict": sd}, path)`` and give it as ``load_from=path`` (the detector's heads
    then start from their init, as MMDetection reports)."""
    if not isinstance(module, UniFormerFPNBackbone):
        raise TypeError(f"mmdet_state_dict needs a UniFormerFPNBackbone, got {type(module).__name__}")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in module.body.model.authors_state_dict().items():
        out["backbone." + k] = v
    if neck:
        for k, v in module.fpn.state_dict().items():
            out["neck." + k] = v
    return out
