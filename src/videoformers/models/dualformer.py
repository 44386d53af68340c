"""DualFormer: Local-Global Stratified Transformer for Efficient Video Recognition (ECCV 2022).

Liang, Zhou, Zimmermann, Yan. https://arxiv.org/abs/2112.04674.

A four-stage hierarchy (Sec. 3.1, Fig. 3): a 2x4x4 patch embedding, then stages at strides
(2,4,4), (2,8,8), (2,16,16), (2,32,32), joined by 1x2x2 patch merging. Inside a stage, blocks
alternate (Sec. 3.2, and the authors' code, which counts single blocks: even index = local, odd =
global):

- **LW-MSA** (Eq. 1-2): self-attention inside non-overlapping (8,7,7) windows;
- **GP-MSA** (Eq. 3, Fig. 4): every token queries a small set of *global priors*, made by pyramid
  downsampling with depth-wise convolutions (kernel = stride): a fine level that pools the map to
  the pyramid size (8,7,7) and, in stages 1-2, a coarse level to (4,4,4), factorised into a
  spatial (1,7,7) conv -> BatchNorm -> ReLU -> a second conv, as in the authors' code. The priors
  are concatenated, layer-normalised and projected to keys/values;
- **PEG** (Eq. 4): a depth-wise 3x3x3 convolution with a residual, after the first block of each
  stage (the only positional information).

Head: final LayerNorm, global average pooling, dropout 0.5, linear (MMAction2 ``I3DHead``).

Where this implementation follows the authors' code rather than the paper's text
(``sail-sg/dualformer@058c10c``, checked for parity to 1e-5):

- the coarse (4,4,4) level exists in stages 1-2 only; stage 3 pools to (8,7,7) only; stage 4 has
  pyramid size (16,7,7), i.e. no pooling at 32x224: plain global attention (Table 1 lists two
  scales in stages 1-3 and one in stage 4);
- the stage-1 coarse factorisation is (1,7,7) then (4,2,2), not (1,14,14) then (4,1,1);
- LayerNorm eps 1e-5, exact GELU, no relative position bias.

Any input size (the authors' code needs frames divisible by 16 and sides by 224):

- the patch embedding and merging pad odd sizes at the end instead of dropping tokens;
- LW-MSA windows larger than the feature map shrink to it; maps that do not tile are zero-padded
  and the padded keys are masked out of the attention (the padded queries are discarded), so
  real tokens see exactly their (partial) window; no mask is built when nothing is padded;
- GP-MSA pooling kernels are derived from the feature size the model is built for
  (``num_frames``, ``img_size``): kernel = max(1, size // pyramid size) per axis. A model built for
  one size accepts others: a pooling window that does not tile is zero-padded (padded positions
  add nothing to the weighted sum), so every real token reaches some prior.

Model contract: ``forward_features`` is the last stage's map after the final LayerNorm,
``(B, C4, T/2, H/32, W/32)``; the four stages are the intermediates (strides 4, 8, 16, 32; time halved).

Performance: activations stay channels-last ``(B, T, H, W, C)`` for the whole network (every
point-wise op is a ``Linear``), windows are made by one reshape/permute copy each way, attention
goes through :func:`~torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.loading import inflate_weight
from ..ops import Conv3d, Linear
from ..registry import IMAGENET_MEAN, IMAGENET_STD, ModelCard, build_model, register_model
from .contract import FeatureInfo, ModelContract, check_output_fmt, feature_take_indices, take_map
from .layers import (
    Attention, Block, LayerNorm, PatchEmbed, check_input, create_classifier, pad_to_multiple, run_blocks,
    stochastic_depth_rates, to_ntuple, trunc_normal_init, window_partition, window_reverse,
)

__all__ = [
    "DualFormer",
    "LWAttention",
    "GPAttention",
    "CoarsePyramid",
    "PEG",
    "DualFormerStage",
    "dualformer_tiny",
    "dualformer_small",
    "dualformer_base",
]

Size3 = tuple[int, int, int]

# The spatial kernel of the first (spatial) conv of the coarse pyramid in the authors' code.
_COARSE_SPATIAL = 7


def _pool_kernel(feat: Size3, pysize: Size3) -> Size3:
    """Kernel = stride of a pooling conv mapping ``feat`` to ``pysize`` priors (at least 1)."""
    return tuple(max(1, f // p) for f, p in zip(feat, pysize))  # type: ignore[return-value]


def _strided_pool(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A kernel = stride conv on ``(B, C, T, H, W)``; a map that does not tile is zero-padded
    (the authors' code silently drops the remainder, or crashes when the map is smaller)."""
    return conv(pad_to_multiple(x.movedim(1, -1), conv.kernel_size).movedim(-1, 1))


# --------------------------------------------------------------------------------------------------
# PEG (the patch embedding and merging are layers.PatchEmbed with pad=True)
# --------------------------------------------------------------------------------------------------
class PEG(nn.Module):
    """Position Encoding Generator, Eq. 4: ``DWConv3x3x3(X) + X`` on ``(B, T, H, W, C)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = Conv3d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The permuted view is channels_last_3d in memory, which oneDNN convolves directly.
        return x + self.proj(x.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)


# --------------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------------
class LWAttention(Attention):
    """Local-Window based MSA (Sec. 3.2, Eq. 1-2) on ``(B, T, H, W, C)`` tokens.

    Self-attention inside non-overlapping ``window_size`` windows (no shift, no relative bias).
    Windows shrink to the map where the map is smaller; maps that do not tile are zero-padded at
    the end and the padded keys are masked, so each real token attends to the real tokens of its
    window only. Parameters (``qkv``, ``proj``) are those of :class:`layers.Attention`.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Sequence[int] = (8, 7, 7), qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.window_size = to_ntuple(window_size, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        B, T, H, W, C = x.shape
        window = tuple(min(w, s) for w, s in zip(self.window_size, (T, H, W)))
        win, grid = window_partition(x, window)
        mask = None
        if any(g * w != s for g, w, s in zip(grid, window, (T, H, W))):
            mask = self._key_mask((T, H, W), window, grid, x.device)
            mask = mask.unsqueeze(0).expand(B, -1, -1).reshape(win.shape[0], 1, 1, win.shape[1])
        return window_reverse(super().forward(win, mask), B, grid, window, (T, H, W))

    @staticmethod
    def _key_mask(size: Size3, window: Size3, grid: Size3, device: torch.device) -> torch.Tensor:
        """``(num_windows, window_volume)`` booleans: True where the key is a real token."""
        valid = [(torch.arange(g * w, device=device) < s).view(g, w) for s, w, g in zip(size, window, grid)]
        vt, vh, vw = valid
        m = vt[:, None, None, :, None, None] & vh[None, :, None, None, :, None] & vw[None, None, :, None, None, :]
        return m.reshape(grid[0] * grid[1] * grid[2], -1)

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, num_heads={self.num_heads}"


class CoarsePyramid(nn.Module):
    """Coarse level of the pyramid downsampling (Sec. 3.2 "factorize the depth-wise convolution",
    Eq. 3), as factorised in the authors' code: depth-wise conv (1,7,7)/s(1,7,7) -> BatchNorm ->
    ReLU -> depth-wise conv with kernel = stride = (total kernel) / (1,7,7).

    ``kernel`` is the total pooling kernel. When its spatial side is not a multiple of 7 (other
    input sizes) the first conv takes the whole spatial kernel and the second is (kt,1,1), so the
    product of the two is always ``kernel``.
    """

    def __init__(self, dim: int, kernel: Size3) -> None:
        super().__init__()
        kt, kh, kw = kernel
        sh = _COARSE_SPATIAL if kh % _COARSE_SPATIAL == 0 else kh
        sw = _COARSE_SPATIAL if kw % _COARSE_SPATIAL == 0 else kw
        k1, k2 = (1, sh, sw), (kt, kh // sh, kw // sw)
        self.conv1 = Conv3d(dim, dim, kernel_size=k1, stride=k1, groups=dim)
        self.bn = nn.BatchNorm3d(dim)
        self.conv2 = Conv3d(dim, dim, kernel_size=k2, stride=k2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _strided_pool(self.conv2, F.relu(self.bn(_strided_pool(self.conv1, x))))


class GPAttention(nn.Module):
    """Global-Pyramid based MSA (Sec. 3.2, Eq. 3, Fig. 4) on ``(B, T, H, W, C)`` tokens.

    Queries are all tokens. Keys/values come from global priors: the map pooled by a depth-wise
    conv (kernel = stride = ``feat_size // fine_pysize``) and, if ``coarse_pysize`` is given, by
    :class:`CoarsePyramid`; the priors are concatenated, layer-normalised (``norm``) and projected
    by ``kv``. When the fine kernel is 1 (the map is no larger than the pyramid, e.g. stage 4) there
    is no pooling and this is plain global self-attention, as in the authors' code.
    """

    def __init__(self, dim: int, num_heads: int, feat_size: Sequence[int], fine_pysize: Sequence[int] | None = (8, 7, 7),
                 coarse_pysize: Sequence[int] | None = (4, 4, 4), qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attn_drop = float(attn_drop)
        self.q = Linear(dim, dim, bias=qkv_bias)
        self.kv = Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()
        feat = to_ntuple(feat_size, 3)
        self.fine_kernel = _pool_kernel(feat, to_ntuple(fine_pysize, 3)) if fine_pysize is not None else (1, 1, 1)
        self.fine: nn.Conv3d | None = None
        self.coarse: CoarsePyramid | None = None
        self.norm: nn.LayerNorm | None = None
        if math.prod(self.fine_kernel) > 1:
            self.fine = Conv3d(dim, dim, kernel_size=self.fine_kernel, stride=self.fine_kernel, groups=dim)
            if coarse_pysize is not None:
                self.coarse = CoarsePyramid(dim, _pool_kernel(feat, to_ntuple(coarse_pysize, 3)))
            self.norm = LayerNorm(dim)

    def priors(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, G, C)`` key/value inputs for ``(B, T, H, W, C)`` tokens."""
        if self.fine is None:
            return x.flatten(1, 3)
        xc = x.permute(0, 4, 1, 2, 3)
        levels = [_strided_pool(self.fine, xc).flatten(2)]
        if self.coarse is not None:
            levels.append(self.coarse(xc).flatten(2))
        return self.norm(torch.cat(levels, dim=2).transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H, W, C = x.shape
        h, d = self.num_heads, self.head_dim
        q = self.q(x).view(B, T * H * W, h, d).transpose(1, 2)
        kv = self.kv(self.priors(x))
        k, v = kv.view(B, -1, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        out = out.transpose(1, 2).reshape(B, T, H, W, C)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, fine_kernel={self.fine_kernel}"


# --------------------------------------------------------------------------------------------------
# Blocks, stages, model
# --------------------------------------------------------------------------------------------------
def _block(dim: int, num_heads: int, kind: Literal["local", "global"], feat_size: Sequence[int],
           window_size: Sequence[int], fine_pysize: Sequence[int] | None, coarse_pysize: Sequence[int] | None,
           mlp_ratio: float, qkv_bias: bool, drop: float, attn_drop: float, drop_path: float) -> Block:
    """Pre-LN transformer block (Eq. 1) with LW-MSA (``kind="local"``) or GP-MSA (``"global"``)."""
    if kind == "local":
        attn: nn.Module = LWAttention(dim, num_heads, window_size, qkv_bias, attn_drop, drop)
    elif kind == "global":
        attn = GPAttention(dim, num_heads, feat_size, fine_pysize, coarse_pysize, qkv_bias, attn_drop, drop)
    else:
        raise ValueError(f"kind must be 'local' or 'global', got {kind!r}")
    return Block(dim, attn, int(dim * mlp_ratio), norm_layer=LayerNorm, drop=drop, drop_path=drop_path)


class DualFormerStage(nn.Module):
    """Optional patch merging, then ``depth`` blocks alternating LW-MSA (even index) and GP-MSA
    (odd index), with the PEG after the first block (the authors' code)."""

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, feat_size: Sequence[int], downsample: bool,
                 window_size: Sequence[int], fine_pysize: Sequence[int] | None, coarse_pysize: Sequence[int] | None,
                 mlp_ratio: float, qkv_bias: bool, drop: float, attn_drop: float, drop_path: Sequence[float]) -> None:
        super().__init__()
        self.downsample = PatchEmbed(in_dim, dim, (1, 2, 2), norm_layer=LayerNorm, pad=True) if downsample else None
        self.pos_drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            _block(dim, num_heads, "local" if j % 2 == 0 else "global", feat_size, window_size, fine_pysize,
                   coarse_pysize, mlp_ratio, qkv_bias, drop, attn_drop, drop_path[j])
            for j in range(depth)
        )
        self.peg = PEG(dim)
        self.grad_checkpointing = 0  # the first n blocks recompute their activations in backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last tokens ``(B, T, H, W, C)`` (the previous stage's) -> this stage's."""
        if self.downsample is not None:
            x = self.downsample(x.movedim(-1, 1))
        x = run_blocks(self.blocks[:1], self.pos_drop(x), self.grad_checkpointing)
        return run_blocks(self.blocks[1:], self.peg(x), max(self.grad_checkpointing - 1, 0))


class DualFormer(ModelContract, nn.Module):
    """DualFormer video classifier (Sec. 3, Table 1): ``(B, C, T, H, W)`` -> logits ``(B, num_classes)``.

    ``num_frames``/``img_size`` fix the GP-MSA pooling kernels (derived from the feature sizes
    they give); other input sizes run too (see the module docstring). ``embed_dim`` and
    ``num_heads`` are per stage, or one int for stage 1 doubled at every stage.
    ``fine_pysizes``/``coarse_pysizes`` are the per-stage pyramid sizes (``None``: no such level).

    The pooling kernels are parameter shapes: the authors' checkpoints (trained at 32x224) load
    into a model built for ``num_frames=32, img_size=224`` (the default), which then also runs on
    other clip lengths and crops.
    """

    def __init__(
        self,
        num_classes: int = 400,
        num_frames: int = 32,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        patch_size: Sequence[int] = (2, 4, 4),
        embed_dim: int | Sequence[int] = 64,
        depth: Sequence[int] = (2, 2, 10, 4),
        num_heads: int | Sequence[int] = 2,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        window_size: Sequence[int] = (8, 7, 7),
        fine_pysizes: Sequence[Sequence[int] | None] = ((8, 7, 7), (8, 7, 7), (8, 7, 7), (16, 7, 7)),
        coarse_pysizes: Sequence[Sequence[int] | None] = ((4, 4, 4), (4, 4, 4), None, None),
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        head_drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        depth = tuple(int(d) for d in depth)
        n = len(depth)
        dims = tuple(embed_dim * 2**i for i in range(n)) if isinstance(embed_dim, int) else tuple(embed_dim)
        heads = tuple(num_heads * 2**i for i in range(n)) if isinstance(num_heads, int) else tuple(num_heads)
        if not (len(dims) == len(heads) == len(fine_pysizes) == len(coarse_pysizes) == n):
            raise ValueError(
                f"per-stage settings must have {n} entries (depth={depth}): embed_dim={dims}, num_heads={heads}, "
                f"fine_pysizes={fine_pysizes}, coarse_pysizes={coarse_pysizes}"
            )
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = dims[-1]
        self.embed_dims = dims
        h, w = to_ntuple(img_size, 2)
        self.patch_size = to_ntuple(patch_size, 3)
        # Feature size of every stage for the configured input (ceil: the embeddings pad).
        size = tuple(-(-s // p) for s, p in zip((num_frames, h, w), self.patch_size))
        self.feat_sizes: list[Size3] = []
        for i in range(n):
            if i:
                size = (size[0], -(-size[1] // 2), -(-size[2] // 2))
            self.feat_sizes.append(size)  # type: ignore[arg-type]

        self.patch_embed = PatchEmbed(in_chans, dims[0], self.patch_size, norm_layer=LayerNorm, pad=True)
        dpr = stochastic_depth_rates(drop_path_rate, depth)
        self.stages = nn.ModuleList(
            DualFormerStage(
                dims[i - 1] if i else dims[0], dims[i], depth[i], heads[i], self.feat_sizes[i], downsample=i > 0,
                window_size=window_size,
                fine_pysize=fine_pysizes[i], coarse_pysize=coarse_pysizes[i], mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                drop=drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i],
            )
            for i in range(n)
        )
        self.num_stages = n  # fewer after prune_intermediate_layers
        self.grad_checkpointing = (0,) * n
        self.feature_info = FeatureInfo(
            dict(num_chs=dims[i], reduction=self.patch_size[1] * 2**i, temporal_reduction=self.patch_size[0],
                 module=f"stages.{i}")
            for i in range(n)
        )
        self.norm = LayerNorm(dims[-1])
        self.head_drop = nn.Dropout(head_drop_rate) if head_drop_rate > 0 else nn.Identity()
        self.head = create_classifier(dims[-1], num_classes)
        self.apply(trunc_normal_init)
        self._init_head()

    def _init_head(self) -> None:
        # MMAction2 I3DHead: normal(0.01), zero bias.
        if isinstance(self.head, nn.Linear):
            nn.init.normal_(self.head.weight, std=0.01)
            nn.init.zeros_(self.head.bias)

    # ---------------------------------------------------------------- model contract
    def _stage_depths(self) -> tuple[int, ...]:
        return tuple(len(s.blocks) for s in self.stages)

    def _on_grad_checkpointing(self) -> None:
        for s, n in zip(self.stages, self.grad_checkpointing):
            s.grad_checkpointing = n

    def _forward_stages(self, x: torch.Tensor, take: Sequence[int] = (), channels_first: bool = True,
                        stop: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        check_input(x, ndim=5, channels=self.in_chans, layout="(B, C, T, H, W)",
                    model=getattr(self, "model_name", type(self).__name__))
        x = self.patch_embed(x)
        feats = []
        last = self.num_stages - 1 if stop is None else min(stop, self.num_stages - 1)
        for i in range(last + 1):
            x = self.stages[i](x)
            if i in take:
                f, x = take_map(x, channels_first)
                feats.append(f)
        return x, feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised last-stage features ``(B, C, T/2, H/32, W/32)`` (a channels-last view)."""
        return self.norm(self._forward_stages(x)[0]).permute(0, 4, 1, 2, 3)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              output_fmt: str = "NCTHW", intermediates_only: bool = False):
        """Stage outputs (see :mod:`videoformers.models.contract`); ``norm`` applies the final LayerNorm to
        the last stage's map."""
        cf = check_output_fmt(output_fmt, video=True)
        take, last = feature_take_indices(self.num_stages, indices)
        x, feats = self._forward_stages(x, take, cf, last if intermediates_only else None)
        if norm and len(self.stages) - 1 in take:
            feats[-1], x = take_map(self.norm(x), cf)  # the head reads a view of the returned map
            if intermediates_only:
                return feats
            return (feats[-1] if cf else x.permute(0, 4, 1, 2, 3)), feats
        if intermediates_only:
            return feats
        return self.norm(x).permute(0, 4, 1, 2, 3), feats

    def prune_intermediate_layers(self, indices: int | Sequence[int] | None = None, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take, last = feature_take_indices(self.num_stages, indices)
        self.stages = self.stages[: last + 1]
        self.num_stages = last + 1
        self.grad_checkpointing = self.grad_checkpointing[: last + 1]
        if prune_norm or last < len(self.feature_info) - 1:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.mean(dim=(2, 3, 4)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ---------------------------------------------------------------- checkpoints
    def convert_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The authors' checkpoint layout (``sail-sg/dualformer``, after ``load_checkpoint`` stripped
        MMAction2's ``backbone.`` and mapped ``cls_head.fc_cls.`` to ``head.``) -> ours; a no-op on
        ours. Also inflates the authors' 2D ImageNet checkpoints (same key names, 2D kernels) to 3D
        as their ``inflate_weights`` does: kernels repeated over time and divided by its length
        (patch embedding, PEG, fine pooling; the coarse spatial conv gains a time axis of 1) and
        the coarse second conv set to an average (ones / volume, zero bias) — where shapes allow;
        others are left for the loader to report.
        """
        if any(k.startswith(("patch_embeds.", "blocks.", "pos_block.")) for k in sd):
            sd = {nk: v for k, v in sd.items() if (nk := _authors_key(k)) is not None}
        target = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            dst = target.get(k)
            if dst is not None and v.ndim == 4 and dst.ndim == 5 and v.shape[:2] == dst.shape[:2] and v.shape[2:] == dst.shape[3:]:
                v = inflate_weight(v, dst.shape[2], "average")
            out[k] = v
        stem = sd.get("patch_embed.proj.weight")
        if stem is not None and stem.ndim == 4:  # a 2D checkpoint: no learned coarse second conv
            for k, dst in target.items():
                if ".attn.coarse.conv2." in k:
                    out[k] = torch.full_like(dst, 1.0 / math.prod(dst.shape[2:])) if k.endswith("weight") else torch.zeros_like(dst)
        return out


def _authors_key(k: str) -> str | None:
    """One key of the authors' DualFormer layout -> ours (``None``: not part of the classifier)."""
    parts = k.split(".")
    if parts[0] == "patch_embeds":
        i = int(parts[1])
        return ".".join((["patch_embed"] if i == 0 else ["stages", str(i), "downsample"]) + parts[2:])
    if parts[0] == "pos_block":  # pos_block.{i}.proj.0.* -> stages.{i}.peg.proj.*
        return ".".join(["stages", parts[1], "peg", "proj"] + parts[4:])
    if parts[0] == "blocks":
        rest = ".".join(parts[3:])
        for old, new in (("attn.sr.", "attn.fine."), ("attn.lr.0.", "attn.coarse.conv1."),
                         ("attn.lr.1.", "attn.coarse.bn."), ("attn.lr.3.", "attn.coarse.conv2.")):
            if rest.startswith(old):
                rest = new + rest[len(old):]
        return f"stages.{parts[1]}.blocks.{parts[2]}.{rest}"
    if k.startswith("cls_head.token_linear."):
        return None  # token-labelling auxiliary head (training only)
    return k


# --------------------------------------------------------------------------------------------------
# Registered variants (Table 1; drop path from the authors' K400 configs)
# --------------------------------------------------------------------------------------------------
_PAPER = "DualFormer: Local-Global Stratified Transformer for Efficient Video Recognition (ECCV 2022)"
_NOTES = (
    "K400 IN-1K. Params exclude the head (as the paper). GFLOPs per view (the paper prints 4 views). "
    "Pixels in [0, 1] normalised with ImageNet mean/std (MMAction2's 0-255 values / 255). "
    "Tables 3/5 give T 28 GFLOPs/view at 16x224; the authors' code built for 16 frames counts 29.9 "
    "(27.8 when run at 16 frames with the 32-frame pooling kernels)."
)


def _card(name: str, params: float, gflops: float) -> ModelCard:
    return ModelCard(
        name=name, family="dualformer", paper=_PAPER, table="Table 2 (K400, 32x2, 4x1 views)",
        input_size=(3, 32, 224, 224), num_classes=400, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        paper_params_m=params, paper_gflops=gflops, notes=_NOTES, params_exclude_head=True,
    )


@register_model(_card("dualformer_tiny", 21.8, 59.9))
def dualformer_tiny(**kwargs) -> DualFormer:
    """DualFormer-T: dims 64-128-256-512, heads 2-4-8-16, depths 2-2-10-4, drop path 0.1."""
    return build_model(DualFormer, dict(embed_dim=64, depth=(2, 2, 10, 4), num_heads=2, drop_path_rate=0.1), kwargs)


@register_model(_card("dualformer_small", 48.9, 158.3))
def dualformer_small(**kwargs) -> DualFormer:
    """DualFormer-S: dims 96-192-384-768, heads 3-6-12-24, depths 2-2-18-2, drop path 0.2."""
    return build_model(DualFormer, dict(embed_dim=96, depth=(2, 2, 18, 2), num_heads=3, drop_path_rate=0.2), kwargs)


@register_model(_card("dualformer_base", 86.8, 267.4))
def dualformer_base(**kwargs) -> DualFormer:
    """DualFormer-B: dims 128-256-512-1024, heads 4-8-16-32, depths 2-2-18-2, drop path 0.3."""
    return build_model(DualFormer, dict(embed_dim=128, depth=(2, 2, 18, 2), num_heads=4, drop_path_rate=0.3), kwargs)
