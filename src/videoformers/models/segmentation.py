"""Semantic segmentation with a UniFormer backbone: Semantic FPN and UperNet (UniFormer TPAMI Sec. 6.4).

The authors (Sense-X/UniFormer ``semantic_segmentation/``) train two mmseg systems on ADE20K:

* **Semantic FPN** (Kirillov et al., "Panoptic Feature Pyramid Networks", arXiv 1901.02446, Sec. 3 and
  Fig. 3; TPAMI Table 8): an FPN neck (lateral 1x1 + top-down nearest up-sampling + 3x3 output convs,
  256 channels, 4 levels), then per level a stack of ``conv3x3-BN-ReLU (+ 2x bilinear up-sampling)`` down
  to stride 4 (128 channels), summed, dropout 0.1, a 1x1 classifier (mmseg ``FPN`` + ``FPNHead``, the
  authors' ``fpn_seg/configs/_base_/models/fpn_uniformer.py``).
* **UperNet** (Xiao et al., "Unified Perceptual Parsing", arXiv 1807.10221, Sec. 3 and Fig. 4; TPAMI
  Table 9): a pyramid pooling module on the last level (pool scales 1, 2, 3, 6), FPN fusion of all levels
  with 512 channels, concatenation at stride 4, a 3x3 bottleneck and a 1x1 classifier (mmseg
  ``UPerHead``); an auxiliary FCN head on stage 3 (one 3x3 conv with 256 channels, loss weight 0.4) used
  in training only (the authors' ``configs/_base_/models/upernet_uniformer.py``).

Window attention (TPAMI Sec. 4.3): both systems are trained with global stage-3 attention and the "h32"
rows of Tables 8-9 test the same weights with hybrid blocks (window 32, pattern ``"wwwg"``); the
authors' ``test_config_h32.py`` rebuilds the backbone with ``hybrid=True, window_size=32`` and loads the
globally trained checkpoint. :class:`UniFormerSegmentor` reproduces this with ``test_window_size`` /
``test_window_pattern``: :meth:`UniFormerSegmentor.train` switches the backbone to the training
attention and :meth:`UniFormerSegmentor.eval` to the test attention (through the backbone's
``set_window_attention``). The ``*_h32`` model names carry that setting.

``forward(x)`` returns per-pixel logits at the input size, ``(B, K, H, W)`` (bilinear, ``align_corners=False``
as mmseg's ``resize``); in training with an auxiliary head it returns ``(main, aux)``, both at the input
size, so the loss compares them with the label map directly (the authors' decode heads resize their
stride-4 logits to the label size inside the loss: the same computation).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import IMAGENET_MEAN, IMAGENET_STD, ModelCard, build_model, register_model

__all__ = [
    "ConvBNReLU",
    "FPNNeck",
    "SemanticFPNHead",
    "PPM",
    "UPerHead",
    "FCNHead",
    "UniFormerSegmentor",
    "HEADS",
]

HEADS = ("semfpn", "upernet")


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    # mmseg's ``resize`` with align_corners=False, the setting of every head in the authors' configs.
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Sequential):
    """mmcv's ``ConvModule`` with ``norm_cfg=BN``: a bias-free conv, BatchNorm, ReLU (the authors' heads
    use SyncBN; the engine converts with ``train.sync_bn``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class FPNNeck(nn.Module):
    """Feature pyramid network (Lin et al. 2017, as mmseg's ``FPN`` with ``num_outs`` = number of inputs):
    lateral 1x1 convs to ``out_channels``, top-down pathway with nearest up-sampling added to the finer
    level, a 3x3 conv on every merged level. No norms or activations (mmseg's defaults)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("FPNNeck needs at least one input level")
        self.in_channels, self.out_channels = list(in_channels), int(out_channels)
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f"FPNNeck expects {len(self.lateral_convs)} maps, got {len(feats)}")
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):
            # nearest to the finer map's exact size (not a fixed x2): sizes need not be even
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
        return [conv(x) for conv, x in zip(self.fpn_convs, lat)]


class SemanticFPNHead(nn.Module):
    """The Semantic FPN branch (Kirillov et al. 2019, Sec. 3 / Fig. 3; mmseg ``FPNHead``): level ``i`` at
    stride ``s_i`` goes through ``max(1, log2(s_i / s_0))`` ``conv3x3-BN-ReLU`` blocks, each followed by a
    2x bilinear up-sampling while the level is coarser than ``s_0``; the levels are summed, then dropout
    and a 1x1 classifier give logits at stride ``s_0``."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 128,
                 feature_strides: Sequence[int] = (4, 8, 16, 32), dropout: float = 0.1) -> None:
        super().__init__()
        if len(in_channels) != len(feature_strides):
            raise ValueError(f"in_channels {list(in_channels)} and feature_strides {list(feature_strides)} "
                             "must have one entry per level")
        if list(feature_strides) != sorted(feature_strides):
            raise ValueError(f"feature_strides must increase, got {list(feature_strides)}")
        self.feature_strides = [int(s) for s in feature_strides]
        self.scale_heads = nn.ModuleList()
        s0 = self.feature_strides[0]
        for c, s in zip(in_channels, self.feature_strides):
            n = max(1, (s // s0).bit_length() - 1)
            layers: list[nn.Module] = []
            for k in range(n):
                layers.append(ConvBNReLU(c if k == 0 else channels, channels, 3))
                if s != s0:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*layers))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.scale_heads[0](feats[0])
        for head, f in zip(self.scale_heads[1:], feats[1:]):
            # the x2 steps give 2^k * (H/s) which differs from H/4 by rounding when H is not a multiple of s
            out = out + _resize(head(f), out.shape[-2:])
        return self.conv_seg(self.dropout(out))


class PPM(nn.Module):
    """Pyramid pooling module (Zhao et al., PSPNet; UperNet Sec. 3.1): adaptive average pooling to each
    scale, ``conv1x1-BN-ReLU``, bilinear up-sampling back to the map."""

    def __init__(self, in_channels: int, channels: int, pool_scales: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(int(s)), ConvBNReLU(in_channels, channels, 1))
                                    for s in pool_scales)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [_resize(stage(x), x.shape[-2:]) for stage in self.stages]


class UPerHead(nn.Module):
    """UperNet's decoder (Xiao et al. 2018, Sec. 3.1 / Fig. 4; mmseg ``UPerHead``): PPM on the last
    level concatenated with it and fused by a 3x3 ``conv-BN-ReLU`` (the top of the pyramid), 1x1 laterals
    on the other levels, top-down bilinear addition, 3x3 convs on the merged levels, every level up-sampled
    to stride 4, concatenated, a 3x3 fusion conv, dropout and a 1x1 classifier."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        in_channels = list(in_channels)
        self.psp_modules = PPM(in_channels[-1], channels, pool_scales)
        self.bottleneck = ConvBNReLU(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvBNReLU(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        top = feats[-1]
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats[:-1])]
        lat.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + _resize(lat[i], lat[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, lat[:-1])] + [lat[-1]]
        size = outs[0].shape[-2:]
        fused = self.fpn_bottleneck(torch.cat([_resize(o, size) for o in outs], dim=1))
        return self.conv_seg(self.dropout(fused))


class FCNHead(nn.Module):
    """The auxiliary head of UperNet (mmseg ``FCNHead`` with ``num_convs=1``, ``concat_input=False``):
    ``conv3x3-BN-ReLU``, dropout, 1x1 classifier on one level (stage 3 in the authors' config)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, num_convs: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(ConvBNReLU(in_channels if i == 0 else channels, channels, 3)
                                     for i in range(num_convs)))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.convs(x)))


def _init_head(module: nn.Module) -> None:
    # mmseg's decode heads: normal(0, 0.01) classifier, kaiming convs (mmcv ConvModule), unit BN.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class UniFormerSegmentor(nn.Module):
    """UniFormer backbone (4 stage maps, strides 4/8/16/32) + Semantic FPN or UperNet (see the module docstring).

    Args:
        head: ``"semfpn"`` (FPN neck + Semantic FPN head) or ``"upernet"`` (UPerHead + auxiliary FCN head).
        num_classes: classes of the per-pixel classifier (ADE20K: 150).
        backbone: a registered image UniFormer (``uniformer_small_image``, ``uniformer_base_image``, ...).
        depth, embed_dim, head_dim: backbone overrides (``None``: the registered model's).
        drop_path_rate: stochastic depth of the backbone (TPAMI Sec. 6.4: 0.1/0.2 Semantic FPN S/B,
            0.25/0.4 UperNet S/B).
        window_size, window_pattern: stage-3 attention used in training (and in testing unless
            ``test_window_size`` is given); ``None``: global.
        test_window_size, test_window_pattern: stage-3 attention in ``eval()`` mode (the paper's h32:
            32 and ``"wwwg"``); needs the backbone's ``set_window_attention``.
        neck_channels: FPN channels (256); head_channels: Semantic FPN 128 / UperNet 512;
        aux_channels: auxiliary FCN channels (256; 0 disables the auxiliary head); aux_in_index: its stage.
        dropout: dropout before the classifiers (0.1).
        backbone_pretrained: ImageNet weights for the backbone (``"in1k"``: the registered release of
            ``backbone``; or a checkpoint path), as the authors' ``pretrained_path``.
    """

    def __init__(self, head: str = "semfpn", num_classes: int = 150, backbone: str = "uniformer_small_image",
                 depth: Sequence[int] | None = None, embed_dim: Sequence[int] | None = None,
                 head_dim: int | None = None, drop_path_rate: float = 0.1, window_size: int | None = None,
                 window_pattern: str = "wwwg", test_window_size: int | None = None, test_window_pattern: str = "wwwg",
                 neck_channels: int = 256, head_channels: int | None = None, aux_channels: int = 256,
                 aux_in_index: int = 2, dropout: float = 0.1, backbone_pretrained: str | None = None) -> None:
        super().__init__()
        from ..registry import create_model

        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.head_type, self.num_classes = head, int(num_classes)
        overrides: dict = {"drop_path_rate": drop_path_rate}
        for k, v in (("depth", depth), ("embed_dim", embed_dim), ("head_dim", head_dim)):
            if v is not None:
                overrides[k] = tuple(v) if isinstance(v, (list, tuple)) else v
        if window_size is not None:
            overrides.update(window_size=int(window_size), window_pattern=window_pattern)
        if backbone_pretrained and torch.empty(0).is_meta:
            backbone_pretrained = None  # built on the meta device: a checkpoint is about to fill every tensor
        # ImageNet weights (``in1k`` = the registered release, or a file) loaded non-strictly: the classifier and
        # final norm they carry are dropped, the dense stage norms (absent from them) keep their init.
        self.backbone = create_model(backbone, pretrained=backbone_pretrained, strict=False, features_only=True,
                                     out_indices=(0, 1, 2, 3), **overrides)
        self.pretrained_report = getattr(self.backbone.model, "pretrained_report", None)
        self.train_window = (None if window_size is None else int(window_size), window_pattern)
        self.test_window = (self.train_window if test_window_size is None
                            else (int(test_window_size), test_window_pattern))
        if self.test_window != self.train_window and not hasattr(self.backbone, "set_window_attention") \
                and not hasattr(getattr(self.backbone, "model", None), "set_window_attention"):
            raise ValueError(f"{backbone}: test_window_size needs a backbone with set_window_attention() "
                             "(train global / test hybrid, TPAMI Sec. 4.3)")
        chs = list(self.backbone.feature_info.channels())
        strides = list(self.backbone.feature_info.reduction())
        self.feature_strides = strides
        if head == "semfpn":
            self.neck: nn.Module = FPNNeck(chs, neck_channels)
            self.decode_head: nn.Module = SemanticFPNHead([neck_channels] * len(chs), self.num_classes,
                                                          head_channels or 128, strides, dropout)
            self.aux_head: nn.Module | None = None
        else:
            self.neck = nn.Identity()
            self.decode_head = UPerHead(chs, self.num_classes, head_channels or 512, dropout=dropout)
            self.aux_head = FCNHead(chs[aux_in_index], self.num_classes, aux_channels, dropout=dropout) \
                if aux_channels else None
        self.aux_in_index = int(aux_in_index)
        for m in (self.neck, self.decode_head, self.aux_head):
            if m is not None:
                _init_head(m)
        self._window_state: tuple | None = None
        self._apply_window(self.train_window)

    # ------------------------------------------------------------------ train / test attention
    def _apply_window(self, setting: tuple) -> None:
        if setting == self._window_state:
            return
        target = (self.backbone if hasattr(self.backbone, "set_window_attention")
                  else getattr(self.backbone, "model", None))
        if target is not None and hasattr(target, "set_window_attention"):
            target.set_window_attention(*setting)
            self._window_state = setting
        elif setting == self.train_window:
            self._window_state = setting  # built that way

    def train(self, mode: bool = True) -> "UniFormerSegmentor":
        """Also switches stage-3 attention: training attention in train mode, ``test_window_*`` in eval."""
        super().train(mode)
        self._apply_window(self.train_window if mode else self.test_window)
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor):
        if x.ndim != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        # Sizes that are not multiples of 32 (the UperNet test resize, e.g. 512x683) are floored by the
        # dense backbone's strided patch convolutions, as the authors'; the logits are resized to the input.
        size = x.shape[-2:]
        feats = self.backbone(x)
        main = _resize(self.decode_head(self.neck(feats)), size)
        if self.training and self.aux_head is not None:
            return main, _resize(self.aux_head(feats[self.aux_in_index]), size)
        return main

    #: every tensor with a row per class (what fine-tuning to another ``num_classes`` re-initialises)
    classifier_prefixes = ("decode_head.conv_seg.", "aux_head.conv_seg.")
    _OWN = ("backbone.", "neck.", "decode_head.", "aux_head.")

    def convert_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Keys in this model's layout. :func:`videoformers.load_checkpoint` strips an MMAction2-style
        ``backbone.`` prefix before calling this, which turns ours (``backbone.model.*``) into ``model.*``;
        those get it back. Bare backbone keys (an ImageNet or the authors' mmseg ``backbone.*`` weights)
        go to the backbone through its own converter. Our layout passes through unchanged."""
        inner = getattr(self.backbone, "model", None)
        out: dict[str, torch.Tensor] = {}
        bare: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            if k.startswith(self._OWN):
                out[k] = v
            elif k.startswith("model."):
                out["backbone." + k] = v
            else:
                bare[k] = v
        if bare:
            conv = getattr(inner, "convert_state_dict", None)
            bare = conv(bare) if callable(conv) else bare
            out.update({f"backbone.model.{k}": v for k, v in bare.items()})
        return out

    def no_weight_decay(self) -> set[str]:
        inner = getattr(self.backbone, "model", None)
        nwd = inner.no_weight_decay() if inner is not None and hasattr(inner, "no_weight_decay") else set()
        return {f"backbone.model.{n}" for n in nwd}

    def set_grad_checkpointing(self, enable=True) -> None:
        inner = getattr(self.backbone, "model", None)
        if inner is None or not hasattr(inner, "set_grad_checkpointing"):
            raise ValueError("the backbone has no set_grad_checkpointing()")
        inner.set_grad_checkpointing(enable)


# --------------------------------------------------------------------------- builders
_PAPER = "UniFormer (TPAMI 2023, arXiv 2201.09450)"
_NOTES_FLOPS = ("FLOPs at 512x2048 as the paper; the authors counted with mmcv (which skips attention matmuls) "
                "and added the matmuls by hand (Sense-X/UniFormer issue #50).")


def _card(name: str, table: str, params: float, gflops: float, notes: str) -> ModelCard:
    return ModelCard(name=name, family="uniformer", paper=_PAPER, table=table, input_size=(3, 512, 2048),
                     num_classes=150, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper_params_m=params,
                     paper_gflops=gflops, notes=f"{notes} {_NOTES_FLOPS}", task="segmentation")


_T8 = "TPAMI Table 8 (ADE20K, Semantic FPN 80k)"
_T9 = "TPAMI Table 9 (ADE20K, UperNet 160k)"
_H32 = dict(test_window_size=32, test_window_pattern="wwwg")


@register_model(_card("uniformer_small_semfpn", _T8, 25.0, 247.0, "Global stage-3 attention (train and test)."))
def uniformer_small_semfpn(**kwargs) -> UniFormerSegmentor:
    """UniFormer-S + Semantic FPN (the authors' ``fpn_seg/exp/fpn_global_small``)."""
    return build_model(UniFormerSegmentor, dict(head="semfpn", backbone="uniformer_small_image", drop_path_rate=0.1),
                       kwargs)


@register_model(_card("uniformer_small_semfpn_h32", _T8, 25.0, 199.0,
                      "Trained global, tested hybrid h32 (window 32, 'wwwg'); Table 21 prints the same 199G."))
def uniformer_small_semfpn_h32(**kwargs) -> UniFormerSegmentor:
    """UniFormer-S + Semantic FPN, hybrid h32 at test (``test_config_h32.py``)."""
    return build_model(UniFormerSegmentor, dict(head="semfpn", backbone="uniformer_small_image", drop_path_rate=0.1,
                                                 **_H32), kwargs)


@register_model(_card("uniformer_base_semfpn", _T8, 54.0, 471.0, "Global stage-3 attention."))
def uniformer_base_semfpn(**kwargs) -> UniFormerSegmentor:
    """UniFormer-B + Semantic FPN (``fpn_seg/exp/fpn_global_base``)."""
    return build_model(UniFormerSegmentor, dict(head="semfpn", backbone="uniformer_base_image", drop_path_rate=0.2),
                       kwargs)


@register_model(_card("uniformer_base_semfpn_h32", _T8, 54.0, 350.0, "Trained global, tested hybrid h32."))
def uniformer_base_semfpn_h32(**kwargs) -> UniFormerSegmentor:
    """UniFormer-B + Semantic FPN, hybrid h32 at test."""
    return build_model(UniFormerSegmentor, dict(head="semfpn", backbone="uniformer_base_image", drop_path_rate=0.2,
                                                 **_H32), kwargs)


@register_model(_card("uniformer_small_upernet", _T9, 52.0, 1008.0,
                      "Global stage-3 attention; Table 21 prints 1004G for the same model."))
def uniformer_small_upernet(**kwargs) -> UniFormerSegmentor:
    """UniFormer-S + UperNet (``exp/upernet_global_small``)."""
    return build_model(UniFormerSegmentor, dict(head="upernet", backbone="uniformer_small_image", drop_path_rate=0.25),
                       kwargs)


@register_model(_card("uniformer_small_upernet_h32", _T9, 52.0, 955.0, "Trained global, tested hybrid h32."))
def uniformer_small_upernet_h32(**kwargs) -> UniFormerSegmentor:
    """UniFormer-S + UperNet, hybrid h32 at test (``exp/upernet_global_small/test_config_h32.py``)."""
    return build_model(UniFormerSegmentor, dict(head="upernet", backbone="uniformer_small_image", drop_path_rate=0.25,
                                                 **_H32), kwargs)


@register_model(_card("uniformer_base_upernet", _T9, 80.0, 1227.0, "Global stage-3 attention."))
def uniformer_base_upernet(**kwargs) -> UniFormerSegmentor:
    """UniFormer-B + UperNet (``exp/upernet_global_base``)."""
    return build_model(UniFormerSegmentor, dict(head="upernet", backbone="uniformer_base_image", drop_path_rate=0.4),
                       kwargs)


@register_model(_card("uniformer_base_upernet_h32", _T9, 80.0, 1106.0, "Trained global, tested hybrid h32."))
def uniformer_base_upernet_h32(**kwargs) -> UniFormerSegmentor:
    """UniFormer-B + UperNet, hybrid h32 at test."""
    return build_model(UniFormerSegmentor, dict(head="upernet", backbone="uniformer_base_image", drop_path_rate=0.4,
                                                 **_H32), kwargs)
