"""Top-down human pose estimation with a UniFormer backbone (UniFormer TPAMI Sec. 6.5, Table 10).

The authors (``pose_estimation/`` of Sense-X/UniFormer, mmpose ``TopDown`` + ``TopDownSimpleHead``) put
the head of *Simple Baselines for Human Pose Estimation and Tracking* (Xiao et al., ECCV 2018,
arXiv 1804.06208, Sec. 2) on the last stage of the image backbone: three 4x4 stride-2 transposed
convolutions with 256 channels, each followed by BatchNorm and ReLU, then a 1x1 convolution to one
heatmap per keypoint. The stage-4 map has stride 32, so the heatmaps have 1/4 of the input resolution
(64x48 for a 256x192 crop). Every stage-3 block is global in training and testing (Sec. 4.3: the inputs
are small; TPAMI Table 22).

Registered models: ``uniformer_small_pose`` and ``uniformer_base_pose``. One name serves all three input
sizes of Table 10: ``img_size=(H, W)`` is ``(256, 192)`` by default, ``(384, 288)`` or ``(448, 320)`` as
overrides (the network itself is size-agnostic; ``img_size`` sets the card and the backbone's record).
``forward(x)`` with ``x`` ``(B, 3, H, W)`` returns heatmaps ``(B, K, H/4, W/4)``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ..data.keypoints import COCO_FLIP_PAIRS, COCO_KEYPOINTS, COCO_SKELETON
from ..registry import IMAGENET_MEAN, IMAGENET_STD, ModelCard, build_model, create_model, register_model

__all__ = ["TopdownHeatmapSimpleHead", "UniFormerPose", "COCO_KEYPOINTS", "COCO_FLIP_PAIRS", "COCO_SKELETON"]

class TopdownHeatmapSimpleHead(nn.Module):
    """The SimpleBaseline head (Xiao et al. 2018, Sec. 2; mmpose ``TopDownSimpleHead``).

    ``num_deconv`` times ``ConvTranspose2d(k=4, s=2, p=1, bias=False) -> BatchNorm2d -> ReLU``, then a 1x1
    convolution to ``num_keypoints`` heatmaps. Initialised as mmpose does (normal std 0.001 for the
    (de)convolutions, BN weight 1), so the untrained heatmaps are near zero, the MSE target's background.
    """

    def __init__(self, in_channels: int, num_keypoints: int = 17, num_deconv: int = 3,
                 deconv_channels: int | Sequence[int] = 256, deconv_kernel: int = 4) -> None:
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
        if num_deconv < 0:
            raise ValueError(f"num_deconv must be >= 0, got {num_deconv}")
        chans = ((deconv_channels,) * num_deconv if isinstance(deconv_channels, int) else tuple(deconv_channels))
        if len(chans) != num_deconv:
            raise ValueError(f"deconv_channels has {len(chans)} entries for {num_deconv} deconvolutions")
        # mmpose's _get_deconv_cfg: the padding / output padding that exactly doubles the map for k in {2, 3, 4}
        pads = {4: (1, 0), 3: (1, 1), 2: (0, 0)}
        if deconv_kernel not in pads:
            raise ValueError(f"deconv_kernel must be 2, 3 or 4, got {deconv_kernel}")
        pad, out_pad = pads[deconv_kernel]
        layers: list[nn.Module] = []
        c = in_channels
        for planes in chans:
            layers += [nn.ConvTranspose2d(c, planes, deconv_kernel, stride=2, padding=pad, output_padding=out_pad,
                                          bias=False),
                       nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
            c = planes
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(c, num_keypoints, 1)
        self.num_keypoints = num_keypoints
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))


class UniFormerPose(nn.Module):
    """UniFormer image backbone (stage 4, stride 32, global stage 3) + :class:`TopdownHeatmapSimpleHead`.

    Args:
        backbone: a registered image UniFormer (``uniformer_small_image``, ``uniformer_base_image``), built
            with ``create_model(backbone, features_only=True, out_indices=(3,))``.
        num_classes: the number of keypoints K (17 for COCO); named so that the engine's
            ``model.num_classes`` sets it.
        img_size: ``(H, W)`` of the person crops (Table 10: 256x192, 384x288, 448x320). Any multiple of 32
            runs; this records what the model is meant for.
        drop_path_rate: stochastic depth of the backbone (authors' configs: S 0.2; B 0.4 / 0.5 / 0.55 at
            256x192 / 384x288 / 448x320).
        backbone_pretrained: an ImageNet checkpoint for the backbone (any layout
            :func:`videoformers.load_checkpoint` reads), loaded non-strictly: the classifier it carries is
            dropped with the rest of what follows stage 4.
        backbone_overrides: further backbone arguments (``depth``, ``embed_dim``, ``head_dim``... for tiny
            test models).
        num_deconv, deconv_channels: the head (3 x 256 in the paper).
    """

    def __init__(self, backbone: str = "uniformer_small_image", num_classes: int = 17,
                 img_size: int | Sequence[int] = (256, 192), drop_path_rate: float = 0.2,
                 backbone_pretrained: str | None = None, backbone_overrides: dict | None = None,
                 num_deconv: int = 3, deconv_channels: int | Sequence[int] = 256) -> None:
        super().__init__()
        h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        if h % 32 or w % 32 or h <= 0 or w <= 0:
            raise ValueError(f"img_size {(h, w)}: height and width must be positive multiples of 32 "
                             "(the backbone's stride)")
        self.img_size = (h, w)
        overrides = dict(backbone_overrides or {})
        overrides.setdefault("drop_path_rate", drop_path_rate)
        overrides.setdefault("img_size", (h, w))
        if backbone_pretrained and torch.empty(0).is_meta:
            # Built on the meta device (a checkpoint is about to fill every tensor): nothing to load into.
            backbone_pretrained = None
        self.backbone = create_model(backbone, pretrained=backbone_pretrained, strict=False, features_only=True,
                                     out_indices=(3,), **overrides)
        self.pretrained_report = getattr(self.backbone.model, "pretrained_report", None)
        in_ch = self.backbone.feature_info.channels()[-1]
        self.head = TopdownHeatmapSimpleHead(in_ch, num_classes, num_deconv, deconv_channels)
        self.num_classes = num_classes
        self.num_keypoints = num_classes
        self.reduction = self.backbone.feature_info.reduction()[-1] // 2 ** num_deconv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"UniFormerPose expects (B, 3, H, W) crops with H, W multiples of 32, got {tuple(x.shape)}")
        return self.head(self.backbone(x)[-1])

    def convert_state_dict(self, sd: dict) -> dict:
        """A checkpoint in this model's layout, called by :func:`videoformers.load_checkpoint` after it has
        stripped an mmpose/MMAction2 ``backbone.`` prefix: our own files arrive as ``model.*`` + ``head.*``;
        the authors' mmpose ``TopDown`` files as bare backbone keys + ``keypoint_head.*`` (same head layout),
        an ImageNet file as bare backbone keys with its classifier (``head.weight``: the backbone ignores it).
        Backbone keys go through the image UniFormer's own conversion."""
        out, bb = {}, {}
        for k, v in sd.items():
            if k.startswith("backbone.model."):
                out[k] = v
            elif k.startswith("model."):
                bb[k[len("model."):]] = v
            elif k.startswith("keypoint_head."):
                out["head." + k[len("keypoint_head."):]] = v
            elif k.startswith(("head.deconv_layers.", "head.final_layer.")):
                out[k] = v
            else:
                bb[k] = v
        conv = getattr(self.backbone.model, "convert_state_dict", None)
        if bb and callable(conv):
            bb = conv(bb)
        out.update({f"backbone.model.{k}": v for k, v in bb.items()})
        return out

    @property
    def checkpoint_ignored_prefixes(self) -> tuple[str, ...]:
        """The backbone's (an ImageNet classifier, the authors' unused ``norm1``..``norm3``...), in our keys."""
        return tuple(f"backbone.model.{p}" for p in getattr(self.backbone.model, "checkpoint_ignored_prefixes", ()))

    @property
    def checkpoint_new_prefixes(self) -> tuple[str, ...]:
        return tuple(f"backbone.model.{p}" for p in getattr(self.backbone.model, "checkpoint_new_prefixes", ()))

    def no_weight_decay(self) -> set[str]:
        inner = getattr(self.backbone.model, "no_weight_decay", None)
        return {f"backbone.model.{n}" for n in inner()} if callable(inner) else set()


_PAPER = "UniFormer (TPAMI 2023, arXiv 2201.09450)"


def _pose_card(name: str, params: float, gflops: float, extra: tuple) -> ModelCard:
    return ModelCard(
        name=name, family="uniformer", paper=_PAPER, table="TPAMI Table 10 (COCO pose, top-down)",
        input_size=(3, 256, 192), num_classes=17, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper_params_m=params,
        paper_gflops=gflops, extra_flops=extra, task="pose",
        notes="Top-down SimpleBaseline head (3 deconvs x 256 + 1x1) on stage 4, global stage 3; heatmaps at 1/4 "
              "of the (H, W) crop; img_size=(384, 288) / (448, 320) for the larger rows of Table 10.",
    )


@register_model(_pose_card("uniformer_small_pose", 25.2, 4.7, (((3, 384, 288), 11.1), ((3, 448, 320), 14.8))))
def uniformer_small_pose(**kwargs) -> UniFormerPose:
    """UniFormer-S + SimpleBaseline head (authors' ``top_down_*_global_small`` configs, drop path 0.2)."""
    return build_model(UniFormerPose, dict(backbone="uniformer_small_image", drop_path_rate=0.2), kwargs)


@register_model(_pose_card("uniformer_base_pose", 53.5, 9.2, (((3, 384, 288), 22.1), ((3, 448, 320), 29.6))))
def uniformer_base_pose(**kwargs) -> UniFormerPose:
    """UniFormer-B + SimpleBaseline head (authors' ``top_down_256x192_global_base``: drop path 0.4)."""
    return build_model(UniFormerPose, dict(backbone="uniformer_base_image", drop_path_rate=0.4), kwargs)
