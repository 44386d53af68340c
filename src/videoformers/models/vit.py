"""Image Vision Transformer (Dosovitskiy et al., ICLR 2021) in the layouts open checkpoints use.

This is the image model that UniFormerV2 (ICLR 2023, arXiv 2211.09552, Sec. 3) arms with video modules, and it is a
complete image classifier on its own. One class covers the two families of open ViT checkpoints:

* **CLIP** (Radford et al. 2021; OpenAI ``visual.*``, HF ``CLIPVisionModel``): patch convolution
  without bias, a LayerNorm *before* the blocks (``ln_pre``), QuickGELU, LayerNorm eps 1e-5, the
  class token normed by ``ln_post`` and optionally projected to the image-text space (``proj``).
* **timm / DeiT** (Touvron et al. 2021): patch convolution with bias, no pre-norm, exact GELU,
  eps 1e-6, a final LayerNorm, the class token fed to the classifier.

Our parameter names follow timm (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``norm_pre``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``);
:func:`videoformers.checkpoints.vit_layouts.convert_vit_state_dict` maps the OpenAI and HF layouts
onto them without importing either library, and :meth:`VisionTransformer.convert_state_dict` resamples the positional
embedding to the model's grid, so a checkpoint trained at 224 px loads into a 336 px model and
vice versa. At run time the positional embedding is also interpolated when an input of another
size arrives (bicubic, as timm), so the model accepts any size that is a multiple of the patch.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` on batch-first
tokens with one packed qkv projection (``layers.Attention``).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Literal, Mapping, Sequence

import torch
import torch.nn as nn

from ..checkpoints.vit_layouts import convert_vit_state_dict, resample_pos_embed
from ..ops import Linear
from ..registry import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ModelCard, build_model, register_model
from .contract import FeatureInfo, ModelContract, check_output_fmt, feature_take_indices, run_blocks_taking, take_tokens
from .layers import (
    Attention, Block, LayerNorm, PatchEmbed, check_input, create_classifier, get_act_layer,
    stochastic_depth_rates, to_ntuple, trunc_normal_init,
)

__all__ = ["VisionTransformer"]

ActName = Literal["gelu", "quick_gelu"]


class VisionTransformer(ModelContract, nn.Module):
    """ViT image classifier (Dosovitskiy et al. 2021) with the switches CLIP and timm/DeiT need.

    Args:
        img_size: training resolution; sets the positional-embedding grid (other sizes are
            interpolated at run time).
        patch_size: patch side ``p``.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer width/depth.
        num_classes: classifier outputs; ``0`` makes ``forward`` return pooled features.
        pre_norm: LayerNorm after the embeddings (CLIP's ``ln_pre``).
        final_norm: LayerNorm after the blocks (timm's ``norm`` / CLIP's ``ln_post``).
        patch_bias: bias in the patch projection (timm: yes, CLIP: no).
        act_layer: ``"gelu"`` (timm) or ``"quick_gelu"`` (OpenAI CLIP).
        norm_eps: LayerNorm epsilon (timm 1e-6, CLIP 1e-5).
        proj_dim: CLIP's image-text projection (``proj``); the pooled token is projected to this
            width before the classifier. ``None`` (default): no projection.
        global_pool: ``"token"`` (class token) or ``"avg"`` (mean of the patch tokens).
        init_values: layer-scale init (DeiT-III); ``None`` disables it.
        drop_rate, attn_drop_rate, drop_path_rate: dropout, attention dropout, stochastic depth
            (linear over blocks).

    Model contract: ``forward_features`` gives all tokens ``(B, 1 + N, D)`` after the final norm;
    the blocks are the intermediates, as ``(B, D, H/p, W/p)`` maps (class token on request).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        pre_norm: bool = False,
        final_norm: bool = True,
        patch_bias: bool = True,
        act_layer: ActName | Callable[[], nn.Module] = "gelu",
        norm_eps: float = 1e-6,
        proj_dim: int | None = None,
        global_pool: Literal["token", "avg"] = "token",
        init_values: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        self.img_size = to_ntuple(img_size, 2)
        self.patch_size = int(patch_size)
        if any(s % self.patch_size for s in self.img_size):
            raise ValueError(f"img_size {self.img_size} must be a multiple of patch_size {patch_size}")
        self.grid_size = (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)
        self.in_chans = in_chans
        self.embed_dim = self.num_features = embed_dim
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_prefix_tokens = 1
        self.grad_checkpointing = (0,)
        self.num_blocks = depth  # fewer after prune_intermediate_layers
        act = get_act_layer(act_layer)
        norm_layer = partial(LayerNorm, eps=norm_eps)

        self.patch_embed = PatchEmbed(in_chans, embed_dim, (self.patch_size,) * 2, bias=patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], embed_dim))
        self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.norm_pre = norm_layer(embed_dim) if pre_norm else nn.Identity()
        dpr = stochastic_depth_rates(drop_path_rate, [depth])[0]
        self.blocks = nn.ModuleList([
            Block(embed_dim, Attention(embed_dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop_rate,
                                       proj_drop=drop_rate),
                  int(embed_dim * mlp_ratio), act_layer=act, norm_layer=norm_layer, drop=drop_rate, drop_path=dpr[i],
                  init_values=init_values or None)
            for i in range(depth)
        ])
        self.feature_info = FeatureInfo(
            dict(num_chs=embed_dim, reduction=self.patch_size, temporal_reduction=1, module=f"blocks.{i}")
            for i in range(depth)
        )
        self.norm = norm_layer(embed_dim) if final_norm else nn.Identity()
        self.embed_proj = Linear(embed_dim, proj_dim, bias=False) if proj_dim else None
        if proj_dim:
            self.num_features = proj_dim
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = create_classifier(self.num_features, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """timm's ViT init: trunc-normal(0.02) linears and positional embedding, 1e-6 class token."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.apply(trunc_normal_init)

    # ------------------------------------------------------------------ contract
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def _stage_depths(self) -> tuple[int, ...]:
        return (len(self.blocks),)

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The positional embedding for a ``grid`` of patches (interpolated if not the native one)."""
        if tuple(grid) == self.grid_size:
            return self.pos_embed
        return resample_pos_embed(self.pos_embed, grid, self.grid_size, self.num_prefix_tokens)

    def _check(self, x: torch.Tensor) -> None:
        check_input(x, ndim=4, channels=self.in_chans, multiple_of=(self.patch_size, self.patch_size),
                    min_size=(self.patch_size, self.patch_size), layout="(B, C, H, W)",
                    model=getattr(self, "model_name", type(self).__name__))

    def _forward_blocks(self, x: torch.Tensor, take: Sequence[int] = (), channels_first: bool = True,
                        stop: int | None = None):
        """Embeddings and blocks ``0..stop``: the tokens ``(B, 1 + N, D)`` after the last one (before the
        final norm: HF CLIP's ``last_hidden_state``) and, for the blocks in ``take``, (map, class token)."""
        self._check(x)
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        x = self.patch_embed(x).flatten(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = self.norm_pre(self.pos_drop(x + self.pos_embed_for(grid).to(x.dtype)))
        stop = self.num_blocks - 1 if stop is None else min(stop, self.num_blocks - 1)
        def take_fn(x: torch.Tensor):
            f, prefix, x = take_tokens(x, self.num_prefix_tokens, grid, channels_first)
            return (f, prefix), x

        return run_blocks_taking(self.blocks[: stop + 1], x, self.grad_checkpointing[0], take, take_fn)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> all tokens ``(B, 1 + HW/p^2, D)`` after the final norm."""
        return self.norm(self._forward_blocks(x)[0])

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False,
                              return_prefix_tokens: bool = False):
        """Block outputs as ``(B, D, H/p, W/p)`` maps (``norm``: the final norm applied to each, as timm);
        with ``return_prefix_tokens`` each entry is ``(map, class token (B, 1, D))``."""
        cf = check_output_fmt(output_fmt, video=False)
        take, last = feature_take_indices(self.num_blocks, indices)
        x, feats = self._forward_blocks(x, take, cf, last if intermediates_only else None)
        final = None
        if norm:
            grid = feats[0][0].shape[2:] if cf else feats[0][0].shape[1:3]
            for j, i in enumerate(take):
                if i == self.num_blocks - 1 and not intermediates_only:
                    # from the normalised tokens the head reads, so that the map stays in the graph
                    f, p, final = take_tokens(self.norm(x), self.num_prefix_tokens, grid, cf)
                else:  # the final norm applied to an earlier block's tokens (timm's norm=True)
                    f, p = feats[j]
                    f, p, _ = take_tokens(self.norm(torch.cat([p, (f.flatten(2).transpose(1, 2) if cf
                                                                    else f.flatten(1, 2))], dim=1)),
                                          self.num_prefix_tokens, grid, cf)
                feats[j] = (f, p)
        out = [(f, p) if return_prefix_tokens else f for f, p in feats]
        if intermediates_only:
            return out
        return (self.norm(x) if final is None else final), out

    def prune_intermediate_layers(self, indices: int | Sequence[int] | None = None, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take, last = feature_take_indices(self.num_blocks, indices)
        self.blocks = self.blocks[: last + 1]
        self.num_blocks = last + 1
        self.grad_checkpointing = (min(self.grad_checkpointing[0], last + 1),)
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.embed_proj = None
            self.num_features = self.embed_dim
            self.reset_classifier(0)
        return take

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, self.num_prefix_tokens:].mean(1) if self.global_pool == "avg" else x[:, 0]
        if self.embed_proj is not None:
            x = self.embed_proj(x)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------ checkpoints
    def convert_state_dict(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """OpenAI CLIP / HF CLIP / timm / DeiT / our layout -> ours, fitted to this model.

        On top of :func:`convert_vit_state_dict`: the positional embedding is resampled to this
        model's grid; CLIP's ``ln_post`` and ``proj`` are dropped when the model was built without
        a final norm / ``proj_dim`` (the UniFormerV2 way of using CLIP); a 5-D patch kernel with a
        single time step (a video checkpoint's) is squeezed.
        """
        out = convert_vit_state_dict(sd)
        if "pos_embed" in out and out["pos_embed"].shape[1] != self.pos_embed.shape[1]:
            out["pos_embed"] = resample_pos_embed(out["pos_embed"], self.grid_size, None, self.num_prefix_tokens)
        if self.embed_proj is None:
            out.pop("embed_proj.weight", None)
        if isinstance(self.norm, nn.Identity):
            for k in [k for k in out if k.startswith("norm.")]:
                del out[k]
        w = out.get("patch_embed.proj.weight")
        if w is not None and w.ndim == 5 and w.shape[2] == 1:
            out["patch_embed.proj.weight"] = w[:, :, 0]
        return out


# --------------------------------------------------------------------------- builders
# OpenAI CLIP's image tower: ln_pre, QuickGELU, eps 1e-5, no patch bias (ln_post is the final norm).
_CLIP_FLAVOUR = dict(pre_norm=True, patch_bias=False, act_layer="quick_gelu", norm_eps=1e-5)
_B16 = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12)
_L14 = dict(patch_size=14, embed_dim=1024, depth=24, num_heads=16)
_CLIP_PAPER = "CLIP image encoder (Radford et al., ICML 2021); used by UniFormerV2 (ICLR 2023, arXiv 2211.09552)"


def _clip_card(name: str, notes: str, size: int = 224) -> ModelCard:
    return ModelCard(
        name=name, family="vit", paper=_CLIP_PAPER, table="CLIP Table 19 (architecture)", input_size=(3, size, size),
        num_classes=1000, mean=CLIP_MEAN, std=CLIP_STD, notes=notes,
    )


@register_model(_clip_card(
    "vit_base_patch16_clip_224",
    "OpenAI CLIP ViT-B/16 image tower (ln_pre, QuickGELU, eps 1e-5, ln_post as the final norm). Loads OpenAI "
    "`visual.*` / HF CLIPVisionModel / timm checkpoints; build with num_classes=0 for CLIP features and "
    "proj_dim=512 to keep CLIP's image-text projection. 85.8M params without head, 17.6 GFLOPs.",
))
def vit_base_patch16_clip_224(**kwargs) -> VisionTransformer:
    """CLIP ViT-B/16 image encoder as an image classifier."""
    return build_model(VisionTransformer, dict(**_B16, **_CLIP_FLAVOUR, img_size=224), kwargs)


@register_model(_clip_card(
    "vit_large_patch14_clip_224",
    "OpenAI CLIP ViT-L/14 image tower (24 blocks, width 1024, 16 heads, patch 14). Same options as the B/16. "
    "303.2M params without head, 81.0 GFLOPs.",
))
def vit_large_patch14_clip_224(**kwargs) -> VisionTransformer:
    """CLIP ViT-L/14 image encoder as an image classifier."""
    return build_model(VisionTransformer, dict(**_L14, **_CLIP_FLAVOUR, img_size=224), kwargs)


@register_model(_clip_card("vit_large_patch14_clip_336", "OpenAI CLIP ViT-L/14@336px image tower.", size=336))
def vit_large_patch14_clip_336(**kwargs) -> VisionTransformer:
    """CLIP ViT-L/14@336 image encoder as an image classifier."""
    return build_model(VisionTransformer, dict(**_L14, **_CLIP_FLAVOUR, img_size=336), kwargs)


@register_model(ModelCard(
    name="vit_base_patch16_224", family="vit", paper="ViT (Dosovitskiy et al., ICLR 2021) / DeiT (Touvron et al., ICML 2021)",
    table="DeiT Table 1 (DeiT-B)", input_size=(3, 224, 224), num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    paper_params_m=86.6, paper_gflops=17.6,
    notes="timm/DeiT layout: GELU, eps 1e-6, patch bias, final norm, class-token head. Loads timm and DeiT "
          "checkpoints (`model` wrapper unwrapped by the loader).",
))
def vit_base_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-B/16 in the timm/DeiT layout (the :class:`VisionTransformer` defaults)."""
    return build_model(VisionTransformer, dict(**_B16, img_size=224), kwargs)
