"""ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021), Models 1-4, in PyTorch.

* Embeddings (Sec. 3.2): *tubelet embedding* (a ``t x h x w`` 3D patch, default ``2 x 16 x 16``, one
  ``Conv3d``) or *uniform frame sampling* (``n_t`` frames sampled uniformly, each cut into 2D ``h x w``
  patches by one ``Conv2d``). Tokens are ordered time-major, then height, then width.
* Model 1, spatio-temporal attention (Sec. 3.3): a ViT over all ``n_t * n_h * n_w`` tokens; one
  positional embedding over all tokens (plus a CLS token with classifier ``token``).
* Model 2, factorised encoder: a spatial encoder shared over time (own CLS token, own positional
  embedding over ``1 + n_h * n_w`` tokens, own final LayerNorm) gives one vector per time index; a
  temporal encoder (``L_t = 4`` blocks by default, own CLS, own positional embedding over
  ``1 + n_t`` tokens, own final LayerNorm) mixes them.
* Model 3, factorised self-attention (Eqs. 4-6): in every block spatial MSA, then temporal MSA, then
  the MLP, each pre-LN with a residual. No CLS token; global average pooling.
* Model 4, factorised dot-product attention (Eq. 7 and Fig. 6): one q/k/v projection; half of the
  heads attend over time (at each spatial location), the other half over space (within each
  frame), their outputs are concatenated and go through one output projection. No CLS token.

The blocks are pre-LN (Eqs. 2-3), LayerNorm eps 1e-6 and the tanh-approximated GELU of the authors'
Flax code (``flax.linen.gelu``; HF's ``gelu_fast``), so weights from scenic/HF drop in unchanged.
Attention is computed by :func:`torch.nn.functional.scaled_dot_product_attention`; the factorised
variants reshape tokens so that space or time is the sequence axis (no loops over tokens or frames).

Inputs are ``(B, C, T, H, W)`` float, normalised like the authors' pipeline (pixels in ``[0, 1]``
mapped to ``[-1, 1]``, i.e. mean = std = 0.5). HF ``VivitForVideoClassification`` takes
``(B, T, C, H, W)``: feed ``x.permute(0, 2, 1, 3, 4)`` of theirs to ours; its checkpoints load through
:meth:`ViViT.convert_state_dict` (``videoformers.load_checkpoint`` calls it).

Multi-head output (Sec. 4.3, Epic-Kitchens verb + noun on one backbone): ``num_classes`` may be an
``int`` (``forward`` returns a tensor ``(B, K)``), a tuple/list of ints (``head`` is a
``ModuleList``; ``forward`` returns a tuple of ``(B, K_i)`` tensors) or a ``{name: K}`` mapping
(``head`` is a ``ModuleDict``; ``forward`` returns ``{name: (B, K_name)}``), e.g.
``create_model("vivit_base_factorised_encoder", num_classes={"verb": 97, "noun": 300})``.
The authors' code uses one dense layer of ``sum(K_i)`` outputs split afterwards; separate linear
heads are the same function.

Initialisation from image ViTs (Sec. 3.4): :meth:`ViViT.load_image_pretrained` /
:func:`init_from_image_vit` (timm/DeiT, HF ``ViTModel`` and Google ``.npz`` files, see
:mod:`videoformers.checkpoints.vit_layouts`).

Model contract: ``forward_features`` gives the tokens after the final LayerNorm; the encoder blocks
are the intermediates (Model 2: the spatial encoder's), as ``(B, d, n_t, n_h, n_w)`` maps.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Callable, Literal, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.vit_layouts import HF_TOP_KEYS, convert_hf_blocks, resample_pos_embed
from ..ops import Linear
from ..registry import ModelCard, build_model, register_model
from .contract import (
    FeatureInfo, ModelContract, check_output_fmt, feature_take_indices, run_blocks_taking, take_map, take_tokens,
)
from .layers import (
    Attention,
    Block,
    DropPath,
    Mlp,
    PatchEmbed,
    check_input,
    create_classifier,
    run_blocks,
    stochastic_depth_rates,
    to_ntuple,
)

__all__ = [
    "ViViT",
    "TubeletEmbed",
    "FrameEmbed",
    "FactorisedSelfAttentionBlock",
    "FactorisedDotProductAttention",
    "TransformerEncoder",
    "uniform_frame_indices",
    "init_from_image_vit",
    "VIVIT_SIZES",
    "MODEL_TYPES",
]

ModelType = Literal["spatiotemporal", "factorised_encoder", "factorised_self_attention", "factorised_dot_product"]
MODEL_TYPES: tuple[str, ...] = (
    "spatiotemporal",
    "factorised_encoder",
    "factorised_self_attention",
    "factorised_dot_product",
)
NumClasses = int | Sequence[int] | Mapping[str, int]

# Sec. 4.1: ViT-B / L / H (layers, heads, width); MLP width 4d as in ViT.
VIVIT_SIZES: dict[str, dict[str, int]] = {
    "base": dict(embed_dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16, mlp_dim=5120),
}


def uniform_frame_indices(num_frames: int, num_samples: int) -> torch.Tensor:
    """Sec. 3.2 "uniform frame sampling": ``num_samples`` frame indices spread evenly over the clip.

    Index ``i`` is ``round((i + 1) * T / (n + 1))`` (clamped to ``T - 1``), as in the authors'
    ``sample_frames_uniformly``; ``n == T`` keeps every frame.
    """
    if num_samples > num_frames:
        raise ValueError(f"cannot sample {num_samples} frames uniformly from a {num_frames}-frame clip")
    if num_samples == num_frames:
        return torch.arange(num_frames)
    step = num_frames / (num_samples + 1)
    idx = torch.round(torch.arange(1, num_samples + 1, dtype=torch.float64) * step).long()
    return idx.clamp_(max=num_frames - 1)


def _lecun_normal_(w: torch.Tensor) -> None:
    # Flax's default kernel init (the authors' embedding conv): truncated normal, variance 1/fan_in.
    fan_in = w[0].numel()
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # std of N(0,1) truncated to [-2, 2]
    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


class TubeletEmbed(PatchEmbed):
    """Sec. 3.2 tubelet embedding: non-overlapping ``t x h x w`` tubes linearly projected to ``d``
    (:class:`~videoformers.models.layers.PatchEmbed` with kernel = stride = tubelet). ``n_t = floor(T / t)`` etc."""

    def __init__(self, in_chans: int, embed_dim: int, tubelet_size: Sequence[int] = (2, 16, 16)) -> None:
        super().__init__(in_chans, embed_dim, to_ntuple(tubelet_size, 3))
        self.tubelet_size = self.patch_size

    def grid(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        kt, kh, kw = self.tubelet_size
        return t // kt, h // kh, w // kw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, n_t, n_h * n_w, d)``."""
        return super().forward(x).flatten(2, 3)


class FrameEmbed(PatchEmbed):
    """Sec. 3.2 uniform frame sampling: ``n_t`` frames sampled uniformly from the clip, each embedded
    independently with ViT's 2D patch embedding (a ``1 x h x w`` kernel = stride)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: Sequence[int], num_sampled_frames: int) -> None:
        super().__init__(in_chans, embed_dim, (1, *to_ntuple(patch_size, 2)))
        self.num_sampled_frames = int(num_sampled_frames)

    def grid(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        return (self.num_sampled_frames if t >= self.num_sampled_frames else 0,
                h // self.patch_size[1], w // self.patch_size[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` -> ``(B, n_t, n_h * n_w, d)``."""
        idx = uniform_frame_indices(x.shape[2], self.num_sampled_frames).to(x.device)
        return super().forward(x.index_select(2, idx)).flatten(2, 3)


class FactorisedDotProductAttention(nn.Module):
    """Model 4 (Sec. 3.3, Fig. 6): multi-head attention whose heads are split between the axes.

    q, k, v come from one packed projection (same parameters as Model 1, so Model 1 and image-ViT
    weights load unchanged). The first half of the heads attends over time (the ``n_t`` tokens at
    the same spatial index), the second half over space (the ``n_h * n_w`` tokens of the same
    frame) -- the authors' head order. Outputs are concatenated over heads and projected once.
    Both halves run as batched SDPA calls: the other axis is folded into the batch.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_temporal_tokens: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if num_heads % 2:
            raise ValueError(f"factorised dot-product attention needs an even number of heads, got {num_heads}")
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.num_temporal_tokens = int(num_temporal_tokens)
        self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = float(attn_drop)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        nt, H, hd = self.num_temporal_tokens, self.num_heads, self.head_dim
        hw, h = N // nt, H // 2
        q, k, v = self.qkv(x).view(B, nt, hw, 3, H, hd).permute(3, 0, 4, 1, 2, 5).unbind(0)  # (B, H, nt, hw, hd)
        p = self.attn_drop if self.training else 0.0

        def over_time(t: torch.Tensor) -> torch.Tensor:  # (B, h, nt, hw, hd) -> (B, h*hw, nt, hd)
            return t[:, :h].transpose(2, 3).reshape(B, h * hw, nt, hd)

        def over_space(t: torch.Tensor) -> torch.Tensor:  # (B, h, nt, hw, hd) -> (B, h*nt, hw, hd)
            return t[:, h:].reshape(B, (H - h) * nt, hw, hd)

        yt = F.scaled_dot_product_attention(over_time(q), over_time(k), over_time(v), dropout_p=p)
        ys = F.scaled_dot_product_attention(over_space(q), over_space(k), over_space(v), dropout_p=p)
        yt = yt.view(B, h, hw, nt, hd).transpose(2, 3)
        ys = ys.view(B, H - h, nt, hw, hd)
        y = torch.cat([yt, ys], dim=1).permute(0, 2, 3, 1, 4).reshape(B, N, C)
        return self.proj_drop(self.proj(y))


class FactorisedSelfAttentionBlock(nn.Module):
    """Model 3 block (Sec. 3.3, Eqs. 4-6): spatial MSA, temporal MSA, then the MLP, each pre-LN with
    its own residual.

    ``norm1``/``attn`` are the spatial LayerNorm/MSA and ``norm2``/``mlp`` the MLP part, named as in
    an image ViT block so that those weights load one-to-one; ``temporal_norm``/``temporal_attn``
    are the extra temporal MSA. ``order="time_space"`` runs the temporal MSA first (the paper finds
    no difference; the authors' code makes it a config choice).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        num_temporal_tokens: int,
        order: Literal["space_time", "time_space"] = "space_time",
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Callable[[], nn.Module] = partial(nn.GELU, approximate="tanh"),
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
    ) -> None:
        super().__init__()
        if order not in ("space_time", "time_space"):
            raise ValueError(f"attention_order must be 'space_time' or 'time_space', got {order!r}")
        self.order = order
        self.num_temporal_tokens = int(num_temporal_tokens)
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.temporal_norm = norm_layer(dim)
        self.temporal_attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, mlp_dim, act_layer=act_layer, drop=drop)

    def _space(self, x: torch.Tensor) -> torch.Tensor:  # Eq. 4: frames are the batch
        B, N, C = x.shape
        xs = x.reshape(B * self.num_temporal_tokens, N // self.num_temporal_tokens, C)
        return (xs + self.drop_path(self.attn(self.norm1(xs)))).reshape(B, N, C)

    def _time(self, x: torch.Tensor) -> torch.Tensor:  # Eq. 5: spatial locations are the batch
        B, N, C = x.shape
        nt = self.num_temporal_tokens
        xt = x.view(B, nt, N // nt, C).transpose(1, 2).reshape(B * (N // nt), nt, C)
        xt = xt + self.drop_path(self.temporal_attn(self.temporal_norm(xt)))
        return xt.view(B, N // nt, nt, C).transpose(1, 2).reshape(B, N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "space_time":
            x = self._time(self._space(x))
        else:
            x = self._space(self._time(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))  # Eq. 6


class TransformerEncoder(nn.Module):
    """A ViT encoder over a token sequence (Eq. 1 then Eqs. 2-3): optional CLS token, learned 1D
    positional embedding added after the CLS token is prepended, ``depth`` blocks, final LayerNorm.

    Model 2 uses two of these (``spatial`` and ``temporal``); ``forward`` returns the pooled
    representation (the CLS token or the mean of all tokens), ``forward_tokens`` all of them.
    """

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        classifier: Literal["token", "gap"] = "token",
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path_rates: Sequence[float] | None = None,
        act_layer: Callable[[], nn.Module] = partial(nn.GELU, approximate="tanh"),
        norm_layer: Callable[[int], nn.Module] = partial(nn.LayerNorm, eps=1e-6),
    ) -> None:
        super().__init__()
        self.classifier = classifier
        self.grad_checkpointing = 0
        if classifier == "token":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        else:
            self.register_parameter("cls_token", None)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + (classifier == "token"), dim))
        self.pos_drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        dpr = list(drop_path_rates) if drop_path_rates is not None else [0.0] * depth
        self.blocks = nn.ModuleList(
            Block(dim, Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop), mlp_dim,
                  act_layer=act_layer, norm_layer=norm_layer, drop=drop, drop_path=dpr[i])
            for i in range(depth)
        )
        self.norm = norm_layer(dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1: the CLS token prepended, then the positional embedding added."""
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return self.pos_drop(x + self.pos_embed.to(x.dtype))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(run_blocks(self.blocks, self.embed(x), self.grad_checkpointing))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if self.classifier == "token" else x.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_tokens(x))


class ViViT(ModelContract, nn.Module):
    """ViViT Models 1-4 (Sec. 3.3) with tubelet or uniform-frame embedding (Sec. 3.2).

    Args:
        model_type: ``"spatiotemporal"`` (Model 1), ``"factorised_encoder"`` (Model 2),
            ``"factorised_self_attention"`` (Model 3) or ``"factorised_dot_product"`` (Model 4).
        num_classes: ``int``, a tuple of ints or a ``{name: int}`` mapping (multi-head, see the
            module docstring); 0 gives no classifier (``forward`` returns pre-logits).
        num_frames, img_size: input clip size the positional embeddings are built for.
        embedding: ``"tubelet"`` (3D patches of ``tubelet_size = (t, h, w)``) or ``"frame"``
            (``num_sampled_frames`` frames, 2D patches of ``tubelet_size[1:]``; by default
            ``num_frames // t`` frames, i.e. as many tokens as the tubelet model).
        embed_dim, depth, num_heads, mlp_dim: the transformer (Sec. 4.1 sizes B/L/H). For Model 2
            ``depth`` is the spatial encoder's ``L_s`` and ``temporal_depth`` its ``L_t``;
            ``temporal_depth=0`` is Table 2's average-pooling baseline (the ``h_i`` are averaged);
            default 4. The ``temporal_*`` options belong to Model 2 and ``attention_order`` to
            Model 3: given to another model type they raise ``ValueError``.
        classifier: ``"token"`` (CLS token) or ``"gap"`` (global average pooling). Models 1 and 2
            allow both (default ``token``); Models 3 and 4 have no CLS token (``gap`` only).
        attention_order: Model 3 only, ``"space_time"`` (paper) or ``"time_space"``.
        norm_eps, gelu: LayerNorm epsilon (1e-6, Flax's default) and the GELU form (``"tanh"``,
            the authors'; ``"exact"`` to match timm ViTs).
    """

    def __init__(
        self,
        model_type: ModelType = "spatiotemporal",
        num_classes: NumClasses = 400,
        num_frames: int = 32,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        embedding: Literal["tubelet", "frame"] = "tubelet",
        tubelet_size: Sequence[int] = (2, 16, 16),
        num_sampled_frames: int | None = None,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        temporal_depth: int | None = None,
        temporal_num_heads: int | None = None,
        temporal_mlp_dim: int | None = None,
        classifier: Literal["token", "gap"] | None = None,
        attention_order: Literal["space_time", "time_space"] | None = None,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        gelu: Literal["tanh", "exact"] = "tanh",
    ) -> None:
        super().__init__()
        if model_type not in MODEL_TYPES:
            raise ValueError(f"unknown ViViT model_type {model_type!r}; choose from {MODEL_TYPES}")
        factorised_attn = model_type in ("factorised_self_attention", "factorised_dot_product")
        # Options of one model type only: refused elsewhere instead of silently ignored.
        own = {"temporal_depth": (temporal_depth, "factorised_encoder"),
               "temporal_num_heads": (temporal_num_heads, "factorised_encoder"),
               "temporal_mlp_dim": (temporal_mlp_dim, "factorised_encoder"),
               "attention_order": (attention_order, "factorised_self_attention")}
        for opt, (value, owner) in own.items():
            if value is not None and model_type != owner:
                raise ValueError(f"{opt}={value!r} is an option of ViViT {owner} only, not of {model_type}")
        temporal_depth = 4 if temporal_depth is None else temporal_depth
        attention_order = attention_order or "space_time"
        if classifier is None:
            classifier = "gap" if factorised_attn else "token"
        if classifier not in ("token", "gap"):
            raise ValueError(f"classifier must be 'token' or 'gap', got {classifier!r}")
        if factorised_attn and classifier == "token":
            raise ValueError(
                f"ViViT {model_type} has no classification token (Sec. 3.3: it would be ambiguous when "
                "reshaping tokens between space and time); use classifier='gap'"
            )
        if gelu not in ("tanh", "exact"):
            raise ValueError(f"gelu must be 'tanh' or 'exact', got {gelu!r}")
        if embedding not in ("tubelet", "frame"):
            raise ValueError(f"embedding must be 'tubelet' or 'frame', got {embedding!r}")
        self.model_type = model_type
        self.classifier = classifier
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_frames = int(num_frames)
        self.img_size = to_ntuple(img_size, 2)
        self.embed_dim = self.num_features = embed_dim
        act_layer = partial(nn.GELU, approximate="tanh" if gelu == "tanh" else "none")
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)

        tubelet = to_ntuple(tubelet_size, 3)
        bad = [(s, p) for s, p in zip(self.img_size, tubelet[1:]) if s % p]
        if bad:  # the stride-p convolution would silently drop the last s % p pixel rows / columns
            s, p = bad[0]
            raise ValueError(f"img_size={self.img_size}: {s} px is not a multiple of the {p}-px patch "
                             f"({s % p} px would be dropped); use {s - s % p} or {s - s % p + p}")
        if embedding == "tubelet":
            self.patch_embed: nn.Module = TubeletEmbed(in_chans, embed_dim, tubelet)
        else:
            n = num_sampled_frames if num_sampled_frames is not None else max(self.num_frames // tubelet[0], 1)
            if n > self.num_frames:
                raise ValueError(f"num_sampled_frames={n} exceeds num_frames={self.num_frames}")
            self.patch_embed = FrameEmbed(in_chans, embed_dim, tubelet[1:], n)
        self.grid = self.patch_embed.grid(self.num_frames, *self.img_size)
        nt, nh, nw = self.grid
        if min(self.grid) < 1:
            raise ValueError(
                f"input {self.num_frames}x{self.img_size[0]}x{self.img_size[1]} gives no tokens with "
                f"tubelet/patch size {tubelet}"
            )
        num_patches = nt * nh * nw

        if model_type == "factorised_encoder":
            self.spatial = TransformerEncoder(
                nh * nw, embed_dim, depth, num_heads, mlp_dim, classifier, qkv_bias, drop_rate, attn_drop_rate,
                stochastic_depth_rates(drop_path_rate, [depth])[0], act_layer, norm_layer,
            )
            # temporal_depth=0 is Table 2's "average pooling baseline": the h_i are averaged instead.
            self.temporal = TransformerEncoder(
                nt, embed_dim, temporal_depth, temporal_num_heads or num_heads, temporal_mlp_dim or mlp_dim,
                classifier, qkv_bias, drop_rate, attn_drop_rate,
                stochastic_depth_rates(drop_path_rate, [temporal_depth])[0], act_layer, norm_layer,
            ) if temporal_depth > 0 else None
        else:
            if classifier == "token":
                self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            else:
                self.register_parameter("cls_token", None)
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + (classifier == "token"), embed_dim))
            self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
            dpr = stochastic_depth_rates(drop_path_rate, [depth])[0]
            if model_type == "factorised_self_attention":
                blocks = [
                    FactorisedSelfAttentionBlock(embed_dim, num_heads, mlp_dim, nt, attention_order, qkv_bias, drop_rate,
                                                 attn_drop_rate, dpr[i], act_layer, norm_layer)
                    for i in range(depth)
                ]
            else:
                attn_layer = (partial(FactorisedDotProductAttention, num_temporal_tokens=nt)
                              if model_type == "factorised_dot_product" else Attention)
                blocks = [
                    Block(embed_dim, attn_layer(embed_dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop_rate,
                                                proj_drop=drop_rate),
                          mlp_dim, act_layer=act_layer, norm_layer=norm_layer, drop=drop_rate, drop_path=dpr[i])
                    for i in range(depth)
                ]
            self.blocks = nn.ModuleList(blocks)
            self.norm = norm_layer(embed_dim)
        self.num_prefix_tokens = int(classifier == "token")
        self.num_blocks = depth  # fewer after prune_intermediate_layers
        self.grad_checkpointing = (0,) * len(self._stage_depths())
        t_red = tubelet[0] if embedding == "tubelet" else max(self.num_frames // nt, 1)
        self.feature_info = FeatureInfo(
            dict(num_chs=embed_dim, reduction=tubelet[1], temporal_reduction=t_red,
                 module=f"{'spatial.' if model_type == 'factorised_encoder' else ''}blocks.{i}")
            for i in range(depth)
        )
        self.head = create_classifier(embed_dim, num_classes)
        self.init_weights()

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self) -> None:
        """The authors' initialisation: Xavier-uniform linear layers (per q/k/v part), MLP biases
        N(0, 1e-6), LeCun-normal embedding, positional embeddings N(0, 0.02), zero CLS tokens and a
        zero-initialised classifier (``output_projection`` in scenic)."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if name.endswith("qkv"):
                    d = m.weight.shape[0] // 3
                    bound = math.sqrt(6.0 / (d + m.weight.shape[1]))
                    nn.init.uniform_(m.weight, -bound, bound)
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    if ".mlp." in f".{name}.":
                        nn.init.normal_(m.bias, std=1e-6)
                    else:
                        nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.Conv3d)):
                _lecun_normal_(m.weight)
                nn.init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith("pos_embed"):
                nn.init.normal_(p, std=0.02)
            elif name.endswith("cls_token"):
                nn.init.zeros_(p)
        self._init_head()

    def _heads(self) -> list[nn.Linear]:
        if isinstance(self.head, nn.Linear):
            return [self.head]
        if isinstance(self.head, nn.ModuleDict):
            return list(self.head.values())
        if isinstance(self.head, nn.ModuleList):
            return list(self.head)
        return []

    def _stage_depths(self) -> tuple[int, ...]:
        if self.model_type == "factorised_encoder":
            return len(self.spatial.blocks), (len(self.temporal.blocks) if self.temporal is not None else 0)
        return (len(self.blocks),)

    def _on_grad_checkpointing(self) -> None:
        if self.model_type == "factorised_encoder":
            self.spatial.grad_checkpointing = self.grad_checkpointing[0]
            if self.temporal is not None:
                self.temporal.grad_checkpointing = self.grad_checkpointing[1]

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.endswith(("pos_embed", "cls_token"))}

    def _init_head(self) -> None:
        """The authors' zero-initialised classifier (``output_projection`` in scenic)."""
        with torch.no_grad():
            for m in self._heads():
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def load_image_pretrained(self, source, **options):
        """Initialise from an image ViT (Sec. 3.4): :func:`init_from_image_vit` with ``options``."""
        return init_from_image_vit(self, source, **options)

    # ------------------------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """Checked input -> embedded tokens ``(B, n_t, n_h * n_w, d)``."""
        name = getattr(self, "model_name", f"ViViT({self.model_type})")
        check_input(x, ndim=5, channels=self.in_chans, layout="(B, C, T, H, W)", model=name)
        grid = self.patch_embed.grid(*x.shape[2:])
        if grid != self.grid:
            T, (H, W) = self.num_frames, self.img_size
            raise ValueError(
                f"{name}: expected input of shape (B, {self.in_chans}, {T}, {H}, {W}) (layout (B, C, T, H, W)), "
                f"which gives a {self.grid[0]}x{self.grid[1]}x{self.grid[2]} token grid; got {tuple(x.shape)} "
                f"giving {grid[0]}x{grid[1]}x{grid[2]}. Re-initialise the positional embeddings for other sizes."
            )
        return self.patch_embed(x)  # (B, n_t, n_h*n_w, d)

    def forward_spatial(self, x: torch.Tensor) -> torch.Tensor:
        """Model 2 only: the spatial encoder's per-time-index representations ``h_i`` ``(B, n_t, d)``
        (the encoded CLS token of each frame, or the mean of its tokens with ``gap``)."""
        if self.model_type != "factorised_encoder":
            raise RuntimeError("forward_spatial exists for the factorised encoder (Model 2) only")
        x = self._embed(x)
        B, nt, hw, C = x.shape
        return self.spatial(x.reshape(B * nt, hw, C)).view(B, nt, C)

    def _forward_blocks(self, x: torch.Tensor, take: Sequence[int] = (), channels_first: bool = True,
                        stop: int | None = None):
        """Embedding and blocks ``0..stop`` (Model 2: of the spatial encoder): the tokens after the last
        one, before the final norm, and for the blocks in ``take`` (map, prefix tokens)."""
        x = self._embed(x)
        B, nt, hw, C = x.shape
        fe = self.model_type == "factorised_encoder"
        enc = self.spatial if fe else self
        x = enc.embed(x.reshape(B * nt, hw, C)) if fe else self.embed(x.flatten(1, 2))
        last = self.num_blocks - 1 if stop is None else min(stop, self.num_blocks - 1)
        n_ckpt = self.grad_checkpointing[0]
        def take_fn(x: torch.Tensor):
            f, prefix, x = self._take(x, channels_first)
            return (f, prefix), x

        return run_blocks_taking(enc.blocks[: last + 1], x, n_ckpt, take, take_fn)

    def _take(self, x: torch.Tensor, channels_first: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Block tokens -> (map, prefix tokens, the tokens to continue from, rebuilt from the map)."""
        if self.model_type != "factorised_encoder":
            return take_tokens(x, self.num_prefix_tokens, self.grid, channels_first)
        # frames are the batch: one clip map (B, C, n_t, h, w) from the B*n_t frames' tokens
        P, (nt, nh, nw), C = self.num_prefix_tokens, self.grid, x.shape[-1]
        B = x.shape[0] // nt
        f, cont = take_map(x[:, P:].reshape(B, nt, nh, nw, C), channels_first)
        return f, x[:, :P].reshape(B, nt * P, C), torch.cat([x[:, :P], cont.reshape(B * nt, nh * nw, C)], dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Models 1, 3, 4: Eq. 1, the CLS token prepended then the positional embedding added."""
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return self.pos_drop(x + self.pos_embed.to(x.dtype))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the final LayerNorm: ``(B, [1 +] n_t*n_h*n_w, d)`` for Models 1, 3, 4 and the
        temporal encoder's ``(B, [1 +] n_t, d)`` for Model 2 (the CLS token first with ``token``;
        the spatial representations ``(B, n_t, d)`` when Model 2 has no temporal encoder)."""
        if self.model_type == "factorised_encoder":
            h = self.forward_spatial(x)
            return h if self.temporal is None else self.temporal.forward_tokens(h)
        return self.norm(self._forward_blocks(x)[0])

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              output_fmt: str = "NCTHW", intermediates_only: bool = False,
                              return_prefix_tokens: bool = False):
        """Block outputs (Model 2: the spatial encoder's) as ``(B, d, n_t, n_h, n_w)`` maps; ``norm`` applies
        the final LayerNorm (Model 2: the spatial encoder's); with ``return_prefix_tokens`` each entry is
        ``(map, CLS tokens)`` (``(B, 1, d)``; Model 2 ``(B, n_t, d)``, one per frame; empty without a CLS
        token)."""
        cf = check_output_fmt(output_fmt, video=True)
        take, last = feature_take_indices(self.num_blocks, indices)
        fe = self.model_type == "factorised_encoder"
        ln = self.spatial.norm if fe else self.norm
        tokens, feats = self._forward_blocks(x, take, cf, last if intermediates_only else None)
        normed = None
        if norm:
            for j, i in enumerate(take):
                if i == self.num_blocks - 1 and not intermediates_only:
                    # from the normalised tokens the head reads, so that the map stays in the graph
                    f, p, normed = self._take(ln(tokens), cf)
                    feats[j] = (f, p)
                else:
                    f, p = feats[j]
                    feats[j] = (ln(f.movedim(1, -1)).movedim(-1, 1) if cf else ln(f), ln(p))
        out = [(f, p) if return_prefix_tokens else f for f, p in feats]
        if intermediates_only:
            return out
        normed = ln(tokens) if normed is None else normed
        if fe:
            h = self.spatial.pool(normed).view(x.shape[0], self.grid[0], -1)
            return (h if self.temporal is None else self.temporal.forward_tokens(h)), out
        return normed, out

    def prune_intermediate_layers(self, indices: int | Sequence[int] | None = None, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take, last = feature_take_indices(self.num_blocks, indices)
        enc = self.spatial if self.model_type == "factorised_encoder" else self
        enc.blocks = enc.blocks[: last + 1]
        self.num_blocks = last + 1
        if self.model_type == "factorised_encoder":
            self.temporal = None  # it reads the spatial encoder's pooled output, which pruning changes
        if prune_norm:
            enc.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        self.grad_checkpointing = tuple(min(c, d) for c, d in zip(self.grad_checkpointing, self._stage_depths()))
        return take

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        """Pool (CLS token or mean over tokens) and classify; returns a tensor, a tuple or a dict
        of logits following ``num_classes``."""
        avg_baseline = self.model_type == "factorised_encoder" and self.temporal is None
        x = x[:, 0] if self.classifier == "token" and not avg_baseline else x.mean(dim=1)
        if pre_logits:
            return x
        if isinstance(self.head, nn.ModuleDict):
            return {k: h(x) for k, h in self.head.items()}
        if isinstance(self.head, nn.ModuleList):
            return tuple(h(x) for h in self.head)
        return self.head(x)

    def forward(self, x: torch.Tensor):
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------------------------------
    def convert_state_dict(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """HF ``VivitForVideoClassification``/``VivitModel`` checkpoints (transformers 4.x or 5.x
        names) -> ours; a no-op on our own layout.

        The weights need no transposition: HF permutes its ``(B, T, C, H, W)`` input to
        ``(B, C, T, H, W)`` before the same ``Conv3d``. q/k/v are packed into ``attn.qkv``
        (q, k, v order), ``classifier`` -> ``head``; ``VivitModel``'s tanh ``pooler`` (not part of
        ViViT) is dropped. HF implements Model 1 with a CLS token only.
        """
        keys = list(sd)
        hf = any(k.startswith("vivit.") for k in keys) or "embeddings.patch_embeddings.projection.weight" in sd
        if not hf:
            return dict(sd)
        flat = {(k[len("vivit."):] if k.startswith("vivit.") else k): v for k, v in sd.items()}
        out, _, leftover = convert_hf_blocks(flat, "blocks.")
        for k in leftover:
            if k in HF_TOP_KEYS and not k.startswith("pooler."):  # the same top-level names as HF's ViT
                out[HF_TOP_KEYS[k]] = flat[k]
            elif not k.startswith("pooler."):
                out[k] = flat[k]  # left for load_checkpoint to report by name
        return out


# ----------------------------------------------------------------------------------------------
# Initialisation from an image ViT (Sec. 3.4)


def _resize_pos_grid(grid: torch.Tensor, src: tuple[int, int], dst: tuple[int, int], mode: str) -> torch.Tensor:
    """``(1, gh*gw, D)`` -> ``(1, nh*nw, D)``: ``"bilinear"`` is the authors' ``resize``
    (``scipy.ndimage.zoom(order=1)``, corner to corner), ``"bicubic"`` timm's interpolation."""
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"pos_interpolation must be 'bilinear' or 'bicubic', got {mode!r}")
    return resample_pos_embed(grid, dst, src, num_prefix_tokens=0, mode=mode, align_corners=mode == "bilinear",
                              antialias=False)


@torch.no_grad()
def init_from_image_vit(
    model: ViViT,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    tubelet_init: Literal["average", "central"] = "central",
    temporal_attn_init: Literal["zero", "copy_spatial", "zero_proj"] = "zero",
    *,
    layout: Literal["auto", "timm", "hf", "npz"] = "auto",
    pos_interpolation: Literal["bilinear", "bicubic"] = "bilinear",
    vit_grid: tuple[int, int] | None = None,
):
    """Initialise ``model`` from an image ViT checkpoint (ViViT Sec. 3.4); returns a
    :class:`videoformers.LoadReport` (``missing``: model tensors left at their initialisation, e.g.
    the classifier and Model 2's temporal encoder; ``unexpected``: checkpoint tensors not used, e.g.
    the image classifier).

    ``source`` is a path or a state dict in timm/DeiT, HF ``ViTModel``/``ViTForImageClassification``
    or Google ``.npz`` layout (:mod:`videoformers.checkpoints.vit_layouts`).

    * Positional embeddings: the image grid (interpolated to the new ``n_h x n_w`` when the
      resolution differs -- ``pos_interpolation="bilinear"`` is the authors' ``resize``, corner to
      corner; ``"bicubic"`` is timm's) is repeated over the ``n_t`` time indices (the authors'
      ``tile``), so every token at the same spatial index starts with the same embedding. The CLS
      row is kept when both models have a CLS token. Model 2's spatial encoder takes the image
      grid as is (no repetition); its temporal encoder stays at its initialisation.
    * Tubelet kernel (Eqs. 8-9): ``tubelet_init="average"`` is filter inflation (the 2D kernel
      repeated over ``t`` and divided by ``t``), ``"central"`` puts it at temporal index ``t // 2``
      with zeros elsewhere (the paper's best, the authors' configs). Frame embedding copies it.
    * Blocks are copied one-to-one (Model 2: into the spatial encoder, whose CLS token is also
      copied -- the authors' code leaves it at zero because of a name mismatch).
    * Model 3's temporal MSA: ``"zero"`` sets all its weights and biases to zero (the paper: Eq. 5
      is then a residual connection); ``"copy_spatial"`` copies the spatial MSA (the authors'
      code default). Note: with *all* temporal MSA weights zero, its gradients are zero too except
      for the output bias (the values and the output projection are zero, so each blocks the
      other's gradient), so the temporal attention cannot learn; ``"zero_proj"`` copies the spatial
      q/k/v and zeros only the output projection -- also a residual at initialisation, but trainable.
      The temporal LayerNorm stays at ones/zeros in every mode (as in the authors' code).

    ``vit_grid`` gives the image ViT's patch grid when its positional embedding is not square.
    """
    from ..checkpoints.loading import LoadReport, inflate_weight
    from ..checkpoints.vit_layouts import load_image_vit

    if tubelet_init not in ("average", "central"):
        raise ValueError(f"tubelet_init must be 'average' or 'central', got {tubelet_init!r}")
    if temporal_attn_init not in ("zero", "copy_spatial", "zero_proj"):
        raise ValueError(f"temporal_attn_init must be 'zero', 'copy_spatial' or 'zero_proj', got {temporal_attn_init!r}")
    vit = load_image_vit(source, layout=layout)
    scaled = sorted(k for k in vit if k.endswith((".ls1.gamma", ".ls2.gamma")))
    if scaled:
        raise ValueError(f"the image ViT has layer scale ({scaled[0]}, ...), which ViViT's blocks do not have: "
                         "its blocks would compute something else")
    target = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    fe = model.model_type == "factorised_encoder"
    enc = "spatial." if fe else ""

    # Patch / tubelet embedding (Eqs. 8-9).
    w2d = vit["patch_embed.proj.weight"]
    dst_w = target["patch_embed.proj.weight"]
    if dst_w.ndim == 5:
        if w2d.shape[:2] != dst_w.shape[:2] or w2d.shape[2:] != dst_w.shape[3:]:
            raise ValueError(f"image patch kernel {tuple(w2d.shape)} does not fit the tubelet kernel {tuple(dst_w.shape)}")
        w = inflate_weight(w2d, dst_w.shape[2], "average" if tubelet_init == "average" else "center")
    else:
        w = w2d
    new["patch_embed.proj.weight"] = w
    new["patch_embed.proj.bias"] = vit["patch_embed.proj.bias"]
    used |= {"patch_embed.proj.weight", "patch_embed.proj.bias"}

    # Positional embedding: spatial grid (resized), repeated over time.
    pe = vit["pos_embed"]
    n_img = pe.shape[1]
    has_cls_row = "cls_token" in vit or int(round(math.sqrt(n_img))) ** 2 != n_img
    grid_pe = pe[:, 1:] if has_cls_row else pe
    if vit_grid is None:
        g = int(round(math.sqrt(grid_pe.shape[1])))
        if g * g != grid_pe.shape[1]:
            raise ValueError(f"image pos_embed has {grid_pe.shape[1]} grid rows, not a square; pass vit_grid=(gh, gw)")
        vit_grid = (g, g)
    nt, nh, nw = model.grid
    grid_pe = _resize_pos_grid(grid_pe, tuple(vit_grid), (nh, nw), pos_interpolation)
    pos_key = f"{enc}pos_embed"
    model_has_cls = f"{enc}cls_token" in target
    tokens = grid_pe if fe else grid_pe.repeat(1, nt, 1)  # t-major: the whole grid once per time index
    if model_has_cls:
        cls_row = pe[:, :1] if has_cls_row else target[pos_key][:, :1]
        tokens = torch.cat([cls_row, tokens], dim=1)
        if "cls_token" in vit:
            new[f"{enc}cls_token"] = vit["cls_token"]
            used.add("cls_token")
    new[pos_key] = tokens
    used.add("pos_embed")

    # Transformer blocks and the final norm.
    depth = len(model.spatial.blocks if fe else model.blocks)
    vit_depth = 1 + max((int(k.split(".")[1]) for k in vit if k.startswith("blocks.")), default=-1)
    if vit_depth != depth:
        raise ValueError(f"the image ViT has {vit_depth} blocks, the ViViT {'spatial encoder ' if fe else ''}has {depth}")
    for k, v in vit.items():
        if k.startswith("blocks.") or k.startswith("norm."):
            new[enc + k] = v
            used.add(k)
    if model.model_type == "factorised_self_attention":
        for i in range(depth):
            p = f"blocks.{i}."
            for part in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias"):
                src = new[f"{p}attn.{part}"]
                zero = temporal_attn_init == "zero" or (temporal_attn_init == "zero_proj" and part.startswith("proj"))
                new[f"{p}temporal_attn.{part}"] = torch.zeros_like(src) if zero else src.clone()

    report = LoadReport()
    for k, v in new.items():
        if k not in target:
            raise ValueError(f"internal: {k} is not a parameter of this ViViT")
        if v.shape != target[k].shape:
            report.mismatched.append((k, tuple(v.shape), tuple(target[k].shape)))
    if report.mismatched:
        raise ValueError("image ViT does not fit this ViViT (embed_dim/heads/mlp_dim/patch size must match):\n"
                         + "\n".join(f"{k}: checkpoint {s} vs model {d}" for k, s, d in report.mismatched))
    model.load_state_dict({k: v.to(target[k].dtype) for k, v in new.items()}, strict=False)
    report.loaded = len(new)
    report.missing = [k for k in target if k not in new]
    report.unexpected = [k for k in vit if k not in used]
    return report


# ----------------------------------------------------------------------------------------------
# Registry: vivit_{base,large,huge}_{spatiotemporal,factorised_encoder,factorised_self_attention,
# factorised_dot_product}

_PAPER = "ViViT: A Video Vision Transformer (Arnab et al., ICCV 2021)"
_MEAN = (0.5, 0.5, 0.5)  # the authors' zero-centring: [0, 1] pixels -> [-1, 1]
_STD = (0.5, 0.5, 0.5)

# Table 2 (ViViT-B/16x2, 32x224, K400): (GFLOPs, params M) per model; Table 5: L/16x2 Model 1 at 224.
_PAPER_NUMBERS: dict[tuple[str, str], tuple[float | None, float | None, str]] = {
    ("base", "spatiotemporal"): (455.2, 88.9, "Table 2"),
    ("base", "factorised_encoder"): (284.4, 115.1, "Table 2"),
    ("base", "factorised_self_attention"): (372.3, 117.3, "Table 2"),
    ("base", "factorised_dot_product"): (277.1, 88.9, "Table 2"),
    ("large", "spatiotemporal"): (1446.0, None, "Table 5"),
}
_EXTRA_FLOPS = {("large", "spatiotemporal"): (((3, 32, 288, 288), 2919.0), ((3, 32, 320, 320), 3992.0))}

_NOTES = {
    "spatiotemporal": "Model 1. ",
    "factorised_encoder": "Model 2, L_t = 4 temporal blocks (Sec. 4.2). ",
    "factorised_self_attention": "Model 3 (no CLS token, GAP). ",
    "factorised_dot_product": "Model 4 (no CLS token, GAP; first half of the heads over time). ",
}
# count_params / count_flops (meta device, fvcore convention incl. LayerNorm) at 32x224, 400 classes.
_MEASURED = {
    ("base", "spatiotemporal"): (88.954, 451.83),
    ("base", "factorised_encoder"): (115.063, 283.65),
    ("base", "factorised_self_attention"): (117.319, 371.54),
    ("base", "factorised_dot_product"): (88.952, 276.48),
    ("large", "spatiotemporal"): (307.509, 1436.76),
}
_ACCOUNTING = (
    "Params/GFLOPs at 32x224, tubelet 2x16x16, 400 classes (1000 classes would add 0.46 M params and miss "
    "Table 2); the paper's FLOPs are multiply-adds. Measured GFLOPs are 0.2-0.8% below the paper, "
    "consistent with element-wise work (softmax, GELU, bias/residual adds) that the fvcore-style count "
    "ignores: Model 1's 12x12x3137^2 softmax logits (1.4 G) account for most of its larger 3.4 G gap."
)


def _card(size: str, model_type: str) -> ModelCard:
    gflops, params, table = _PAPER_NUMBERS.get((size, model_type), (None, None, "Sec. 4.1 (sizes); no paper numbers"))
    return ModelCard(
        name=f"vivit_{size}_{model_type}",
        family="vivit",
        paper=_PAPER,
        table=table,
        input_size=(3, 32, 224, 224),
        num_classes=400,
        mean=_MEAN,
        std=_STD,
        paper_params_m=params,
        paper_gflops=gflops,
        notes=_NOTES[model_type]
        + (f"Measured {_MEASURED[size, model_type][0]} M params, {_MEASURED[size, model_type][1]} GFLOPs. "
           if (size, model_type) in _MEASURED else "")
        + _ACCOUNTING,
        extra_flops=_EXTRA_FLOPS.get((size, model_type), ()),
    )


def _create(size: str, model_type: str, kwargs: dict) -> ViViT:
    return build_model(ViViT, dict(model_type=model_type, **VIVIT_SIZES[size]), kwargs)


@register_model(_card("base", "spatiotemporal"))
def vivit_base_spatiotemporal(**kwargs) -> ViViT:
    """ViViT-B/16x2 Model 1 (spatio-temporal attention over all tokens); d=768, L=12, heads=12, MLP 3072; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("base", "spatiotemporal", kwargs)


@register_model(_card("base", "factorised_encoder"))
def vivit_base_factorised_encoder(**kwargs) -> ViViT:
    """ViViT-B/16x2 Model 2 (factorised encoder: spatial then L_t = 4 temporal blocks); d=768, L=12, heads=12, MLP 3072; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("base", "factorised_encoder", kwargs)


@register_model(_card("base", "factorised_self_attention"))
def vivit_base_factorised_self_attention(**kwargs) -> ViViT:
    """ViViT-B/16x2 Model 3 (factorised self-attention: spatial then temporal MSA per block); d=768, L=12, heads=12, MLP 3072; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("base", "factorised_self_attention", kwargs)


@register_model(_card("base", "factorised_dot_product"))
def vivit_base_factorised_dot_product(**kwargs) -> ViViT:
    """ViViT-B/16x2 Model 4 (factorised dot-product attention: half the heads over time); d=768, L=12, heads=12, MLP 3072; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("base", "factorised_dot_product", kwargs)


@register_model(_card("large", "spatiotemporal"))
def vivit_large_spatiotemporal(**kwargs) -> ViViT:
    """ViViT-L/16x2 Model 1 (spatio-temporal attention over all tokens); d=1024, L=24, heads=16, MLP 4096; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("large", "spatiotemporal", kwargs)


@register_model(_card("large", "factorised_encoder"))
def vivit_large_factorised_encoder(**kwargs) -> ViViT:
    """ViViT-L/16x2 Model 2 (factorised encoder: spatial then L_t = 4 temporal blocks); d=1024, L=24, heads=16, MLP 4096; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("large", "factorised_encoder", kwargs)


@register_model(_card("large", "factorised_self_attention"))
def vivit_large_factorised_self_attention(**kwargs) -> ViViT:
    """ViViT-L/16x2 Model 3 (factorised self-attention: spatial then temporal MSA per block); d=1024, L=24, heads=16, MLP 4096; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("large", "factorised_self_attention", kwargs)


@register_model(_card("large", "factorised_dot_product"))
def vivit_large_factorised_dot_product(**kwargs) -> ViViT:
    """ViViT-L/16x2 Model 4 (factorised dot-product attention: half the heads over time); d=1024, L=24, heads=16, MLP 4096; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("large", "factorised_dot_product", kwargs)


@register_model(_card("huge", "spatiotemporal"))
def vivit_huge_spatiotemporal(**kwargs) -> ViViT:
    """ViViT-H/16x2 Model 1 (spatio-temporal attention over all tokens); d=1280, L=32, heads=16, MLP 5120; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("huge", "spatiotemporal", kwargs)


@register_model(_card("huge", "factorised_encoder"))
def vivit_huge_factorised_encoder(**kwargs) -> ViViT:
    """ViViT-H/16x2 Model 2 (factorised encoder: spatial then L_t = 4 temporal blocks); d=1280, L=32, heads=16, MLP 5120; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("huge", "factorised_encoder", kwargs)


@register_model(_card("huge", "factorised_self_attention"))
def vivit_huge_factorised_self_attention(**kwargs) -> ViViT:
    """ViViT-H/16x2 Model 3 (factorised self-attention: spatial then temporal MSA per block); d=1280, L=32, heads=16, MLP 5120; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("huge", "factorised_self_attention", kwargs)


@register_model(_card("huge", "factorised_dot_product"))
def vivit_huge_factorised_dot_product(**kwargs) -> ViViT:
    """ViViT-H/16x2 Model 4 (factorised dot-product attention: half the heads over time); d=1280, L=32, heads=16, MLP 5120; 32x224x224, tubelet 2x16x16, 400 classes."""
    return _create("huge", "factorised_dot_product", kwargs)
