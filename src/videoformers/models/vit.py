"""Image Vision Transformer (Dosovitskiy et al., ICLR 2021) in the layouts open checkpoints use.

This is the image model that UniFormerV2 (seed 000, Sec. 3) arms with video modules, and it is a
complete image classifier on its own. One class covers the two families of open ViT checkpoints:

* **CLIP** (Radford et al. 2021; OpenAI ``visual.*``, HF ``CLIPVisionModel``): patch convolution
  without bias, a LayerNorm *before* the blocks (``ln_pre``), QuickGELU, LayerNorm eps 1e-5, the
  class token normed by ``ln_post`` and optionally projected to the image-text space (``proj``).
* **timm / DeiT** (Touvron et al. 2021): patch convolution with bias, no pre-norm, exact GELU,
  eps 1e-6, a final LayerNorm, the class token fed to the classifier.

Our parameter names follow timm (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``norm_pre``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``);
:func:`convert_vit_state_dict` maps the OpenAI and HF layouts onto them without importing either
library, and :meth:`VisionTransformer.convert_state_dict` additionally resamples the positional
embedding to the model's grid, so a checkpoint trained at 224 px loads into a 336 px model and
vice versa. At run time the positional embedding is also interpolated when an input of another
size arrives (bicubic, as timm), so the model accepts any size that is a multiple of the patch.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` on batch-first
tokens with one packed qkv projection (``layers.Attention``).
"""

from __future__ import annotations

import math
import re
from typing import Callable, Literal, Mapping, TypedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..registry import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, ModelCard, Unpack, register_model
from .layers import (
    Attention,
    DropPath,
    LayerNorm,
    LayerScale,
    Linear,
    Mlp,
    QuickGELU,
    check_input,
    stochastic_depth_rates,
    to_ntuple,
    trunc_normal_init,
)

__all__ = [
    "VisionTransformer",
    "Block",
    "PatchEmbed",
    "resample_pos_embed",
    "convert_vit_state_dict",
    "get_act_layer",
    "InplaceQuickGELU",
    "VisionTransformerOptions",
]

ActName = Literal["gelu", "quick_gelu"]


class InplaceQuickGELU(QuickGELU):
    """QuickGELU that, when no graph is recorded, overwrites its input.

    ``x * sigmoid(1.702 x) = silu(1.702 x) / 1.702``: three in-place passes instead of three
    fresh activations the size of the FFN's hidden layer (on CPU the allocations, not the math,
    dominate: ~10x faster measured on a 1576 x 3072 tensor). Only for inputs that are
    temporaries, as the output of ``Mlp.fc1``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return super().forward(x)
        return F.silu(x.mul_(1.702), inplace=True).div_(1.702)


def get_act_layer(act: str | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """``"gelu"`` (timm/DeiT) or ``"quick_gelu"`` (OpenAI CLIP's ``x * sigmoid(1.702 x)``).

    The QuickGELU returned works in place in inference (:class:`InplaceQuickGELU`): use it only
    where its input is a temporary (the FFN's hidden layer).
    """
    if callable(act):
        return act
    if act == "gelu":
        return nn.GELU
    if act == "quick_gelu":
        return InplaceQuickGELU
    raise ValueError(f"unknown activation {act!r}; use 'gelu' or 'quick_gelu'")


def _residual_add(x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``x + branch``, in place when no graph is being recorded. Only for ``x`` the caller owns.

    In inference the new activation would otherwise be a fresh multi-MB allocation per residual;
    on CPU such allocations are page-faulted in every time. While autograd records, ``x`` may be
    saved by the norm that consumed it, so the out-of-place add is kept.
    """
    if torch.is_grad_enabled() and (x.requires_grad or branch.requires_grad):
        return x + branch
    return x.add_(branch)


class PatchEmbed(nn.Module):
    """Non-overlapping ``p x p`` patches projected to ``embed_dim`` (ViT Sec. 3.1)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768, bias: bool = True) -> None:
        super().__init__()
        self.patch_size = to_ntuple(patch_size, 2)
        self.proj = nn.Conv2d(in_chans, embed_dim, self.patch_size, self.patch_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, H/p * W/p, D)`` tokens, row-major over the grid."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + MHSA(LN(x))`` then ``x + FFN(LN(x))`` (ViT Eq. 2-3).

    ``init_values`` adds CaiT/DeiT-III layer scale (``ls1``/``ls2``); stochastic depth is
    per sample.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        init_values: float | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def attention_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls1(self.attn(self.norm1(x)))

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The first add allocates (the caller's tensor is never modified); the second reuses it.
        x = x + self.drop_path1(self.attention_branch(x))
        return _residual_add(x, self.drop_path2(self.mlp_branch(x)))


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Interpolate a ``(1, prefix + Gh*Gw, D)`` positional embedding to another grid.

    The prefix (class token) embedding is kept as is; the grid part is resized with bicubic
    interpolation (``align_corners=False``, antialiased when shrinking), as timm does. ``old_grid``
    defaults to the square grid the token count implies.
    """
    squeeze = pos_embed.ndim == 2
    if squeeze:
        pos_embed = pos_embed.unsqueeze(0)
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n = grid.shape[1]
    if old_grid is None:
        side = int(math.isqrt(n))
        if side * side != n:
            raise ValueError(f"cannot infer the grid of a positional embedding with {n} patch tokens; pass old_grid")
        old_grid = (side, side)
    new_grid = tuple(int(g) for g in new_grid)
    if tuple(old_grid) != new_grid:
        dtype = grid.dtype
        g = grid.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2).float()
        shrink = new_grid[0] < old_grid[0] or new_grid[1] < old_grid[1]
        g = F.interpolate(g, size=new_grid, mode=mode, align_corners=False, antialias=shrink and mode in ("bilinear", "bicubic"))
        grid = g.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(dtype)
    out = torch.cat([prefix, grid], dim=1)
    return out[0] if squeeze else out


# --------------------------------------------------------------------------- checkpoint layouts
_OPENAI_BLOCK = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "attn.in_proj_weight": "attn.qkv.weight",
    "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj": "attn.proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}
_HF_BLOCK = {
    "layer_norm1": "norm1",
    "layer_norm2": "norm2",
    "self_attn.out_proj": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def _rename_block_key(rest: str, table: Mapping[str, str]) -> str | None:
    for src, dst in table.items():
        if rest == src or rest.startswith(src + "."):
            return dst + rest[len(src):]
    return None


def convert_vit_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an image-ViT state dict in the OpenAI CLIP, HF CLIP or timm/DeiT layout to ours.

    - **OpenAI CLIP** (``visual.`` prefix or already stripped): ``conv1``, ``class_embedding``,
      ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.{ln_1, attn.in_proj_*,
      attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``, ``ln_post``, ``proj`` (``(D, E)``, stored
      transposed as ``embed_proj.weight``). The text tower of a full CLIP state dict is dropped.
    - **HF** ``CLIPVisionModel`` / ``CLIPModel`` (``vision_model.`` prefix in transformers 4.x and
      in ``CLIPModel``, none in 5.x ``CLIPVisionModel``): ``embeddings.*``, ``pre_layrnorm``,
      ``encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2}``
      (q, k, v concatenated into one qkv), ``post_layernorm``, ``visual_projection``.
    - **timm / DeiT / ours**: returned unchanged (``model``/``module.`` wrappers are stripped by
      :func:`videoformers.checkpoints.unwrap_state_dict` before this is called).

    Keys this function does not recognise are passed through, so the loader's report names them.
    """
    sd = dict(sd)
    if any(k.startswith("visual.") for k in sd):  # full OpenAI CLIP: keep the image tower only
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    if any(k.startswith("vision_model.") for k in sd):  # HF CLIPModel / 4.x CLIPVisionModel
        sd = {k.removeprefix("vision_model."): v for k, v in sd.items()
              if k.startswith("vision_model.") or k == "visual_projection.weight"}
    is_openai = "class_embedding" in sd or any(k.startswith("transformer.resblocks.") for k in sd)
    is_hf = "embeddings.class_embedding" in sd or any(k.startswith("encoder.layers.") for k in sd)
    if not (is_openai or is_hf):
        return sd

    out: dict[str, torch.Tensor] = {}
    hf_qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k in ("class_embedding", "embeddings.class_embedding"):
            out["cls_token"] = v.reshape(1, 1, -1)
        elif k in ("positional_embedding", "embeddings.position_embedding.weight"):
            out["pos_embed"] = v.reshape(1, v.shape[-2], v.shape[-1])
        elif k in ("conv1.weight", "embeddings.patch_embedding.weight"):
            out["patch_embed.proj.weight"] = v
        elif k == "embeddings.patch_embedding.bias":
            out["patch_embed.proj.bias"] = v
        elif k == "embeddings.position_ids":
            continue
        elif k.startswith(("ln_pre.", "pre_layrnorm.")):
            out["norm_pre." + k.split(".", 1)[1]] = v
        elif k.startswith(("ln_post.", "post_layernorm.")):
            out["norm." + k.split(".", 1)[1]] = v
        elif k == "proj":
            out["embed_proj.weight"] = v.t().contiguous()
        elif k == "visual_projection.weight":
            out["embed_proj.weight"] = v
        elif m := re.match(r"transformer\.resblocks\.(\d+)\.(.+)$", k):
            new = _rename_block_key(m.group(2), _OPENAI_BLOCK)
            out[f"blocks.{m.group(1)}.{new}" if new else k] = v
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", k):
            hf_qkv.setdefault((int(m.group(1)), m.group(3)), {})[m.group(2)] = v
        elif m := re.match(r"encoder\.layers\.(\d+)\.(.+)$", k):
            new = _rename_block_key(m.group(2), _HF_BLOCK)
            out[f"blocks.{m.group(1)}.{new}" if new else k] = v
        else:
            out[k] = v
    for (i, leaf), parts in sorted(hf_qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            for p, v in parts.items():  # incomplete: leave them for the loader to report
                out[f"encoder.layers.{i}.self_attn.{p}_proj.{leaf}"] = v
            continue
        out[f"blocks.{i}.attn.qkv.{leaf}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


# --------------------------------------------------------------------------- model
class VisionTransformer(nn.Module):
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
        self.grad_checkpointing = False
        act = get_act_layer(act_layer)

        self.patch_embed = PatchEmbed(self.patch_size, in_chans, embed_dim, bias=patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], embed_dim))
        self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.norm_pre = LayerNorm(embed_dim, eps=norm_eps) if pre_norm else nn.Identity()
        dpr = stochastic_depth_rates(drop_path_rate, [depth])[0]
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[i], init_values, act, norm_eps)
            for i in range(depth)
        ])
        self.norm = LayerNorm(embed_dim, eps=norm_eps) if final_norm else nn.Identity()
        self.embed_proj = Linear(embed_dim, proj_dim, bias=False) if proj_dim else None
        if proj_dim:
            self.num_features = proj_dim
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()

    def init_weights(self) -> None:
        """timm's ViT init: trunc-normal(0.02) linears and positional embedding, 1e-6 class token."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.apply(trunc_normal_init)

    # ------------------------------------------------------------------ helpers
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        dev = self.cls_token.device
        self.head = Linear(self.num_features, num_classes, device=dev) if num_classes > 0 else nn.Identity()

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The positional embedding for a ``grid`` of patches (interpolated if not the native one)."""
        if tuple(grid) == self.grid_size:
            return self.pos_embed
        return resample_pos_embed(self.pos_embed, grid, self.grid_size, self.num_prefix_tokens)

    def _check(self, x: torch.Tensor) -> None:
        check_input(x, ndim=4, channels=self.in_chans, multiple_of=(self.patch_size, self.patch_size),
                    min_size=(self.patch_size, self.patch_size), layout="(B, C, H, W)",
                    model=type(self).__name__)

    # ------------------------------------------------------------------ forward
    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> all tokens ``(B, 1 + HW/p^2, D)`` after the last block, before the
        final norm (HF CLIP's ``last_hidden_state``; what UniFormerV2 reads per frame)."""
        self._check(x)
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = self.pos_drop(x + self.pos_embed_for(grid).to(x.dtype))
        x = self.norm_pre(x)
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = cp.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> all tokens ``(B, 1 + HW/p^2, D)`` after the final norm."""
        return self.norm(self.forward_tokens(x))

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
class VisionTransformerOptions(TypedDict, total=False):
    """Keyword overrides of the ``vit_*`` builders (PEP 692), named and documented as in
    :class:`VisionTransformer`; one left out takes the builder's value (its size and CLIP/timm
    flavour), else the :class:`VisionTransformer` default.

    * ``num_classes``, ``in_chans``, ``img_size``, ``patch_size``: classes and input.
    * ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``, ``qkv_bias``: the transformer.
    * ``pre_norm``, ``final_norm``, ``patch_bias``, ``act_layer``, ``norm_eps``: CLIP vs timm flavour.
    * ``proj_dim``, ``global_pool``, ``init_values``: CLIP projection, pooling, layer scale.
    * ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate``: regularisation.
    """

    num_classes: int
    img_size: int | tuple[int, int]
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    qkv_bias: bool
    pre_norm: bool
    final_norm: bool
    patch_bias: bool
    act_layer: ActName
    norm_eps: float
    proj_dim: int | None
    global_pool: Literal["token", "avg"]
    init_values: float | None
    drop_rate: float
    attn_drop_rate: float
    drop_path_rate: float
    in_chans: int


# OpenAI CLIP's image tower: ln_pre, QuickGELU, eps 1e-5, no patch bias (ln_post is the final norm).
_CLIP_FLAVOUR = dict(pre_norm=True, patch_bias=False, act_layer="quick_gelu", norm_eps=1e-5)
_B16 = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12)
_L14 = dict(patch_size=14, embed_dim=1024, depth=24, num_heads=16)


def _clip_card(name: str, notes: str) -> ModelCard:
    return ModelCard(
        name=name, family="vit", paper="CLIP image encoder (Radford et al., ICML 2021); used by UniFormerV2 (seed 000)",
        table="CLIP Table 19 (architecture)", input_size=(3, 224, 224), num_classes=1000, mean=CLIP_MEAN,
        std=CLIP_STD, notes=notes,
    )


@register_model(_clip_card(
    "vit_base_patch16_clip_224",
    "OpenAI CLIP ViT-B/16 image tower (ln_pre, QuickGELU, eps 1e-5, ln_post as the final norm). Loads OpenAI "
    "`visual.*` / HF CLIPVisionModel / timm checkpoints; build with num_classes=0 for CLIP features and "
    "proj_dim=512 to keep CLIP's image-text projection. 85.8M params without head, 17.6 GFLOPs.",
))
def vit_base_patch16_clip_224(**options: Unpack[VisionTransformerOptions]) -> VisionTransformer:
    """CLIP ViT-B/16 image encoder as an image classifier."""
    return VisionTransformer(**{**_B16, **_CLIP_FLAVOUR, "img_size": 224, **options})


@register_model(_clip_card(
    "vit_large_patch14_clip_224",
    "OpenAI CLIP ViT-L/14 image tower (24 blocks, width 1024, 16 heads, patch 14). Same options as the B/16. "
    "303.2M params without head, 81.0 GFLOPs.",
))
def vit_large_patch14_clip_224(**options: Unpack[VisionTransformerOptions]) -> VisionTransformer:
    """CLIP ViT-L/14 image encoder as an image classifier."""
    return VisionTransformer(**{**_L14, **_CLIP_FLAVOUR, "img_size": 224, **options})


@register_model(ModelCard(
    name="vit_large_patch14_clip_336", family="vit",
    paper="CLIP image encoder (Radford et al., ICML 2021); used by UniFormerV2 (seed 000)",
    table="CLIP Table 19 (architecture)", input_size=(3, 336, 336), num_classes=1000, mean=CLIP_MEAN, std=CLIP_STD,
    notes="OpenAI CLIP ViT-L/14@336px image tower.",
))
def vit_large_patch14_clip_336(**options: Unpack[VisionTransformerOptions]) -> VisionTransformer:
    """CLIP ViT-L/14@336 image encoder as an image classifier."""
    return VisionTransformer(**{**_L14, **_CLIP_FLAVOUR, "img_size": 336, **options})


@register_model(ModelCard(
    name="vit_base_patch16_224", family="vit", paper="ViT (Dosovitskiy et al., ICLR 2021) / DeiT (Touvron et al., ICML 2021)",
    table="DeiT Table 1 (DeiT-B)", input_size=(3, 224, 224), num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    paper_params_m=86.6, paper_gflops=17.6,
    notes="timm/DeiT layout: GELU, eps 1e-6, patch bias, final norm, class-token head. Loads timm and DeiT "
          "checkpoints (`model` wrapper unwrapped by the loader).",
))
def vit_base_patch16_224(**options: Unpack[VisionTransformerOptions]) -> VisionTransformer:
    """ViT-B/16 in the timm/DeiT layout (the :class:`VisionTransformer` defaults)."""
    return VisionTransformer(**{**_B16, "img_size": 224, **options})
