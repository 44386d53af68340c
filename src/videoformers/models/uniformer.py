"""UniFormer: unifying convolution and self-attention (Li et al., ICLR 2022 / TPAMI 2023).

One implementation serves the image (2D) and video (3D) backbones of seed papers 001 and 002:

* **UniFormer block** (001 Sec. 3.1, Eq. 1-3): ``X = DPE(X) + X``; ``Y = MHRA(Norm(X)) + X``;
  ``Z = FFN(Norm(Y)) + Y``.
* **DPE** (Sec. 3.4): depth-wise 3x3(x3) convolution with zero padding, added as a residual.
* **Local MHRA** (Sec. 3.2, Eq. 5-6): ``BN -> V (point-wise) -> A (depth-wise 5x5(x5), the
  learnable local affinity) -> U (point-wise)``; stages 1-2.
* **Global MHRA** (Sec. 3.3, Eq. 7): ``LN -> multi-head self-attention over all T*H*W tokens``;
  stages 3-4. Optionally computed inside windows (Sec. 4.3, "window" / "hybrid" blocks for
  high-resolution input), all windows batched into one SDPA call.
* **Backbones** (Sec. 4, Table 1): four stages at strides 4/8/16/32; the video stem is a
  3x4x4 convolution with stride 2x4x4 (the only temporal down-sampling), later stems 1x2x2.

Tensors move between blocks channels-last (``(B, T, H, W, C)`` / ``(B, H, W, C)``): point-wise
convolutions become ``nn.Linear`` (PyTorch's point-wise ``Conv3d`` takes a slow CPU path),
depth-wise convolutions get the fast channels-last kernels, and global attention reads its tokens
without a copy. The authors' checkpoints load through :meth:`UniFormer.convert_state_dict`.
"""

from __future__ import annotations

import re
from typing import Callable, Literal, Sequence, TypedDict, TypeVar

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..registry import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD, ModelCard, Unpack, register_model
from .layers import (
    Attention,
    Conv3d,
    DropPath,
    Linear,
    Mlp,
    check_input,
    stochastic_depth_rates,
    to_ntuple,
    trunc_normal_init,
)

__all__ = [
    "UniFormer",
    "LocalMHRA",
    "GlobalMHRA",
    "LocalUniFormerBlock",
    "GlobalUniFormerBlock",
    "PatchEmbed",
    "ConvStem",
    "channels_first",
    "UniFormerCommonOptions",
    "UniFormerOptions",
]

BlockType = Literal["local", "global", "window"]
M = TypeVar("M", bound=nn.Module)


def channels_first(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a channels-first module (conv, BatchNorm) on a channels-last tensor ``(B, *S, C)``.

    Both ``movedim`` calls are views: the module sees an NC(D)HW tensor in channels-last memory
    format, which the CPU/GPU conv and BN kernels handle natively (and ``SyncBatchNorm``
    conversion keeps working because the modules are the standard ones).
    """
    return module(x.movedim(-1, 1)).movedim(1, -1)


def _conv(dims: int) -> type[nn.Module]:
    return Conv3d if dims == 3 else nn.Conv2d


def _bn(dims: int) -> type[nn.Module]:
    return nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d


class DPE(nn.Module):
    """Dynamic position embedding (001 Sec. 3.4): ``X + DWConv3x3(x3)(X)`` with zero padding."""

    def __init__(self, dim: int, dims: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = _conv(dims)(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + channels_first(self.proj, x)


class LocalMHRA(nn.Module):
    """Local multi-head relation aggregator (001 Eq. 5-6).

    ``V`` is a point-wise projection, the local affinity ``A`` a learnable depth-wise
    ``5x5(x5)`` kernel shared across positions (one "head" per channel), ``U`` a point-wise
    fusion. The preceding normalisation is BatchNorm (held by the block).
    """

    def __init__(self, dim: int, dims: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.value = Linear(dim, dim)
        self.affinity = _conv(dims)(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(channels_first(self.affinity, self.value(x)))


class GlobalMHRA(Attention):
    """Global multi-head relation aggregator (001 Eq. 7): self-attention over all tokens.

    With ``window_size`` the attention runs inside non-overlapping windows (001 Sec. 4.3);
    the input is zero-padded (after the norm, as in the authors' dense-task code) to a
    multiple of the window and all windows are batched into one SDPA call.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, window_size: Sequence[int] | None = None) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.window_size = tuple(window_size) if window_size is not None else None

    def forward_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Attention on a channels-last grid ``(B, *S, C)``; returns the same shape."""
        B, *S, C = x.shape
        if self.window_size is None:
            return self.forward(x.reshape(B, -1, C)).view(B, *S, C)
        ws = [min(w, s) if w > 0 else s for w, s in zip(self.window_size[-len(S):], S)]
        pads = [(-s) % w for s, w in zip(S, ws)]
        if any(pads):
            pad_arg: list[int] = [0, 0]
            for p in reversed(pads):
                pad_arg += [0, p]
            x = F.pad(x, pad_arg)
        Sp = [s + p for s, p in zip(S, pads)]
        nw = [s // w for s, w in zip(Sp, ws)]
        # (B, n1, w1, n2, w2, ..., C) -> (B*n1*n2*..., w1*w2*..., C)
        shape = [B] + [v for pair in zip(nw, ws) for v in pair] + [C]
        d = len(S)
        perm = [0] + [1 + 2 * i for i in range(d)] + [2 + 2 * i for i in range(d)] + [1 + 2 * d]
        win = x.view(shape).permute(perm).reshape(-1, _prod(ws), C)
        out = self.forward(win)
        inv = [0] * len(perm)
        for i, p in enumerate(perm):
            inv[p] = i
        out = out.view([B] + nw + ws + [C]).permute(inv).reshape(B, *Sp, C)
        if any(pads):
            out = out[(slice(None),) + tuple(slice(0, s) for s in S)]
        return out


def _prod(v: Sequence[int]) -> int:
    n = 1
    for s in v:
        n *= s
    return n


class _UniFormerBlockBase(nn.Module):
    def __init__(self, dim: int, drop_path: float, layer_scale_init_value: float | None) -> None:
        super().__init__()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if layer_scale_init_value is not None:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def _scale(self, y: torch.Tensor, gamma: torch.Tensor | None) -> torch.Tensor:
        return y if gamma is None else y * gamma


class LocalUniFormerBlock(_UniFormerBlockBase):
    """UniFormer block with local MHRA (stages 1-2; the authors' ``CBlock``).

    Input/output channels-last ``(B, *S, C)``.
    """

    def __init__(self, dim: int, dims: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = None, drop: float = 0.0) -> None:
        super().__init__(dim, drop_path, layer_scale_init_value)
        self.pos_embed = DPE(dim, dims)
        self.norm1 = _bn(dims)(dim)
        self.attn = LocalMHRA(dim, dims)
        self.norm2 = _bn(dims)(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_embed(x)
        x = x + self.drop_path(self._scale(self.attn(channels_first(self.norm1, x)), self.gamma_1))
        return x + self.drop_path(self._scale(self.mlp(channels_first(self.norm2, x)), self.gamma_2))


class GlobalUniFormerBlock(_UniFormerBlockBase):
    """UniFormer block with global (or windowed) MHRA (stages 3-4; the authors' ``SABlock``)."""

    def __init__(self, dim: int, dims: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, layer_scale_init_value: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, window_size: Sequence[int] | None = None) -> None:
        super().__init__(dim, drop_path, layer_scale_init_value)
        self.pos_embed = DPE(dim, dims)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = GlobalMHRA(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop,
                               window_size=window_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_embed(x)
        x = x + self.drop_path(self._scale(self.attn.forward_grid(self.norm1(x)), self.gamma_1))
        return x + self.drop_path(self._scale(self.mlp(self.norm2(x)), self.gamma_2))


class PatchEmbed(nn.Module):
    """Non-overlapping stem: strided convolution + LayerNorm over channels (001 Sec. 4).

    Takes and returns channels-last tensors, except that stage 1 takes the channels-first input.
    """

    def __init__(self, in_dim: int, dim: int, dims: int, kernel: Sequence[int], stride: Sequence[int],
                 padding: Sequence[int] | int = 0, channels_first_input: bool = False) -> None:
        super().__init__()
        self.proj = _conv(dims)(in_dim, dim, tuple(kernel), tuple(stride), padding)
        self.norm = nn.LayerNorm(dim)
        self.channels_first_input = channels_first_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x) if self.channels_first_input else self.proj(x.movedim(-1, 1))
        return self.norm(x.movedim(1, -1))


class ConvStem(nn.Module):
    """Overlapping convolutional stem (UniFormer-S+/S†, light models; 001 Sec. 4, Sec. 5.2).

    ``two_layer``: ``conv3 s2 -> BN -> GELU -> conv3 s2 -> BN`` (stage 1, stride 4);
    otherwise ``conv3 s2 -> BN`` (stages 2-4). No LayerNorm, as in the authors' code.
    In 3D the first conv of the two-layer stem keeps time and the second halves it.
    """

    def __init__(self, in_dim: int, dim: int, dims: int, two_layer: bool, channels_first_input: bool = False) -> None:
        super().__init__()
        conv, bn = _conv(dims), _bn(dims)
        if two_layer:
            s1 = (1, 2, 2) if dims == 3 else 2
            s2 = (2, 2, 2) if dims == 3 else 2
            self.proj = nn.Sequential(
                conv(in_dim, dim // 2, 3, s1, 1), bn(dim // 2), nn.GELU(), conv(dim // 2, dim, 3, s2, 1), bn(dim)
            )
        else:
            s = (1, 2, 2) if dims == 3 else 2
            self.proj = nn.Sequential(conv(in_dim, dim, 3, s, 1), bn(dim))
        self.channels_first_input = channels_first_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x if self.channels_first_input else x.movedim(-1, 1))
        return x.movedim(1, -1)


class UniFormer(nn.Module):
    """UniFormer image (``dims=2``) or video (``dims=3``) backbone with a linear classifier.

    Args mirror the papers' hyper-parameters: ``depth``/``embed_dim`` per stage, ``head_dim``
    (heads = dim // head_dim in global stages), ``mlp_ratio`` (one value or one per stage),
    ``drop_path_rate`` (linear over all blocks), ``stage_types`` (``"local"``/``"global"`` per
    stage; the papers' default is ``[L, L, G, G]``), ``window_size`` and ``window_pattern`` for
    stage 3 (a string over ``{"w", "g"}`` cycled over the blocks, e.g. ``"wwwg"`` = the hybrid
    block of 001 Sec. 4.3), ``conv_stem``/``conv_downsample`` (S+ / light models),
    ``layer_scale_init_value`` (L and ``*_ls`` models), ``token_label_head`` (the auxiliary
    token-labelling head of the authors' L checkpoint: eval logits = head(mean) + 0.5 * max over
    tokens of aux_head(tokens)). Subclasses replace blocks by overriding :meth:`_make_block`.
    """

    head_prefix = "head."

    def __init__(
        self,
        dims: int = 3,
        num_classes: int = 400,
        in_chans: int = 3,
        depth: Sequence[int] = (3, 4, 8, 3),
        embed_dim: Sequence[int] = (64, 128, 320, 512),
        head_dim: int = 64,
        mlp_ratio: float | Sequence[float] = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        stage_types: Sequence[BlockType] = ("local", "local", "global", "global"),
        window_size: int | Sequence[int] | None = None,
        window_pattern: str = "w",
        conv_stem: bool = False,
        conv_downsample: bool = False,
        layer_scale_init_value: float | None = None,
        layer_scale_local: bool = True,
        token_label_head: bool = False,
        num_frames: int = 16,
        img_size: int | Sequence[int] = 224,
        stem_temporal_kernel: int = 3,
        stem_temporal_stride: int = 2,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 (image) or 3 (video), got {dims}")
        depth, embed_dim = tuple(depth), tuple(embed_dim)
        if len(depth) != 4 or len(embed_dim) != 4:
            raise ValueError(f"depth and embed_dim need 4 stages, got {depth} and {embed_dim}")
        mlp_ratios = ((float(mlp_ratio),) * 4 if isinstance(mlp_ratio, (int, float))
                      else tuple(float(m) for m in mlp_ratio))
        if len(mlp_ratios) != 4:
            raise ValueError(f"mlp_ratio needs 1 or 4 values, got {mlp_ratio}")
        self.dims = dims
        self.num_classes = num_classes
        self.depth, self.embed_dim, self.head_dim = depth, embed_dim, head_dim
        self.num_frames, self.img_size = num_frames, to_ntuple(img_size, 2)
        self.num_features = embed_dim[-1]
        self.grad_checkpointing: tuple[int, ...] = (0, 0, 0, 0)
        self.window_size = None if window_size is None else (
            to_ntuple(window_size, dims) if not isinstance(window_size, int)
            else ((0,) if dims == 3 else ()) + (window_size, window_size)
        )

        # Stems (001 Sec. 4): stride 4 then 2, 2, 2; the video stem alone strides time.
        if conv_stem:
            if dims == 3 and (stem_temporal_kernel, stem_temporal_stride) != (3, 2):
                raise ValueError("the convolutional video stem has a fixed 3x3x3 kernel with temporal stride 2")
            self.patch_embed1 = ConvStem(in_chans, embed_dim[0], dims, two_layer=True, channels_first_input=True)
        else:
            if dims == 3:
                k, s, p = (stem_temporal_kernel, 4, 4), (stem_temporal_stride, 4, 4), (stem_temporal_kernel // 2, 0, 0)
            else:
                k, s, p = (4, 4), (4, 4), (0, 0)
            self.patch_embed1 = PatchEmbed(in_chans, embed_dim[0], dims, k, s, p, channels_first_input=True)
        for i in range(1, 4):
            if conv_downsample:
                pe: nn.Module = ConvStem(embed_dim[i - 1], embed_dim[i], dims, two_layer=False)
            else:
                k = (1, 2, 2) if dims == 3 else (2, 2)
                pe = PatchEmbed(embed_dim[i - 1], embed_dim[i], dims, k, k)
            setattr(self, f"patch_embed{i + 1}", pe)

        self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        dpr = stochastic_depth_rates(drop_path_rate, depth)
        for s in range(4):
            blocks = []
            for i in range(depth[s]):
                kind = stage_types[s]
                if kind == "global" and s == 2 and self.window_size is not None:
                    kind = "window" if window_pattern[i % len(window_pattern)] == "w" else "global"
                if kind != "local" and embed_dim[s] % head_dim:
                    raise ValueError(f"embed_dim {embed_dim[s]} of stage {s + 1} is not divisible by "
                                     f"head_dim {head_dim}")
                ls = layer_scale_init_value if (kind != "local" or layer_scale_local) else None
                blocks.append(self._make_block(
                    s, i, kind, embed_dim[s], num_heads=embed_dim[s] // head_dim, mlp_ratio=mlp_ratios[s],
                    qkv_bias=qkv_bias, drop_path=dpr[s][i], layer_scale_init_value=ls, drop=drop_rate,
                    attn_drop=attn_drop_rate, window_size=self.window_size if kind == "window" else None,
                ))
            setattr(self, f"blocks{s + 1}", nn.ModuleList(blocks))

        self.norm = _bn(dims)(embed_dim[-1])
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = Linear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = Linear(embed_dim[-1], num_classes) if token_label_head else None
        self.apply(trunc_normal_init)

    def _make_block(self, stage: int, index: int, kind: BlockType, dim: int, *, num_heads: int, mlp_ratio: float,
                    qkv_bias: bool, drop_path: float, layer_scale_init_value: float | None, drop: float,
                    attn_drop: float, window_size: Sequence[int] | None) -> nn.Module:
        """Block ``index`` of ``stage`` (both 0-based) of the given kind; the constructor calls it for
        every block, so a subclass (H-UniFormer) overriding it builds its own blocks once.

        The keywords are the block arguments the constructor derived for that position (``num_heads``
        and ``window_size`` only matter to global/window blocks). Runs before ``self.apply(trunc_normal_init)``.
        """
        if kind == "local":
            return LocalUniFormerBlock(dim, self.dims, mlp_ratio, drop_path, layer_scale_init_value, drop)
        return GlobalUniFormerBlock(dim, self.dims, num_heads, mlp_ratio, qkv_bias, drop_path, layer_scale_init_value,
                                    drop, attn_drop, window_size)

    # ------------------------------------------------------------------ API
    def set_grad_checkpointing(self, enable: bool | Sequence[int] = True) -> None:
        """Recompute activations in backward: ``True`` for every block, or per-stage block counts
        ``[n1, n2, n3, n4]`` (the first ``n_i`` blocks of stage i, as the authors' CHECKPOINT_NUM)."""
        if isinstance(enable, bool):
            self.grad_checkpointing = tuple(self.depth) if enable else (0, 0, 0, 0)
        else:
            self.grad_checkpointing = to_ntuple(enable, 4)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if self.aux_head is not None:
            self.aux_head = Linear(self.num_features, num_classes)

    def no_weight_decay(self) -> set[str]:
        return set()

    def _check(self, x: torch.Tensor) -> None:
        if self.dims == 3:
            check_input(x, ndim=5, channels=self.patch_embed1_in, multiple_of=(32, 32), min_size=(32, 32),
                        layout="(B, C, T, H, W)", model=type(self).__name__ + " (video)")
        else:
            check_input(x, ndim=4, channels=self.patch_embed1_in, multiple_of=(32, 32), min_size=(32, 32),
                        layout="(B, C, H, W)", model=type(self).__name__ + " (image)")

    @property
    def patch_embed1_in(self) -> int:
        proj = self.patch_embed1.proj
        first = proj[0] if isinstance(proj, nn.Sequential) else proj
        return first.in_channels

    def _run_stage(self, s: int, x: torch.Tensor) -> torch.Tensor:
        n_ckpt = self.grad_checkpointing[s] if self.training else 0
        for i, blk in enumerate(getattr(self, f"blocks{s + 1}")):
            if i < n_ckpt and torch.is_grad_enabled():
                x = cp.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final feature map ``(B, C4, T', H/32, W/32)`` (video) after the last BatchNorm."""
        self._check(x)
        x = self.pos_drop(self.patch_embed1(x))
        x = self._run_stage(0, x)
        for s in range(1, 4):
            x = getattr(self, f"patch_embed{s + 1}")(x)
            x = self._run_stage(s, x)
        return self.norm(x.movedim(-1, 1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        tokens = x.flatten(2)
        pooled = tokens.mean(-1)
        if pre_logits:
            return pooled
        out = self.head(self.head_drop(pooled))
        if self.aux_head is not None:
            out = out + 0.5 * self.aux_head(tokens.transpose(1, 2)).max(1)[0]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ----------------------------------------------------------- checkpoints
    def convert_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map the authors' (Sense-X/UniFormer, MMAction2 after ``backbone.`` stripping) keys to ours.

        Local blocks: ``conv1`` -> ``attn.value``, ``attn`` (depth-wise) -> ``attn.affinity``,
        ``conv2`` -> ``attn.proj``; ``pos_embed`` -> ``pos_embed.proj``; point-wise conv kernels
        ``(O, I, 1, 1[, 1])`` become ``Linear`` weights ``(O, I)``; layer-scale gammas of shape
        ``(1, C, 1, 1)`` become ``(C,)``. Our own layout passes through unchanged.
        """
        out: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            k2 = k
            m = re.match(r"^(blocks\d\.\d+)\.(.*)$", k)
            if m:
                prefix, rest = m.groups()
                rest = re.sub(r"^conv1\.", "attn.value.", rest)
                rest = re.sub(r"^conv2\.", "attn.proj.", rest)
                rest = re.sub(r"^attn\.(weight|bias)$", r"attn.affinity.\1", rest)
                rest = re.sub(r"^pos_embed\.(weight|bias)$", r"pos_embed.proj.\1", rest)
                k2 = f"{prefix}.{rest}"
                if v.ndim > 2 and re.search(r"(attn\.value|attn\.proj|mlp\.fc\d)\.weight$", k2) and all(
                    s == 1 for s in v.shape[2:]
                ):
                    v = v.flatten(1)
                if re.search(r"gamma_\d$", k2) and v.ndim > 1:
                    v = v.flatten()
            out[k2] = v
        return out


# --------------------------------------------------------------------------- builders
class UniFormerCommonOptions(TypedDict, total=False):
    """Keyword overrides (PEP 692) that every UniFormer builder, full-size and light-weight, takes with the
    model class's default; named as in :class:`UniFormer`.

    * ``mlp_ratio``: FFN expansion, one value or one per stage (4 in UniFormer, 3 in the light models).
    * ``qkv_bias``: bias of the global MHRA's q/k/v projection.
    * ``drop_rate``, ``attn_drop_rate``: dropout after the stem, in the FFN/MHRA and before the head;
      dropout of the attention weights.
    * ``in_chans``: input channels.
    """

    mlp_ratio: float | Sequence[float]
    qkv_bias: bool
    drop_rate: float
    attn_drop_rate: float
    in_chans: int


class UniFormerOptions(UniFormerCommonOptions, total=False):
    """Keyword overrides shared by the ``uniformer_*`` builders of this module (PEP 692), besides the
    paper's per-model config that each builder takes as keyword-only parameters.

    * ``stage_types``: ``"local"``/``"global"`` per stage (the papers' ``[L, L, G, G]``).
    * ``window_size``, ``window_pattern``: windowed global MHRA in stage 3 (001 Sec. 4.3); the pattern
      cycles ``"w"`` (window) / ``"g"`` (global) over the blocks, ``"wwwg"`` = the hybrid block.
    """

    stage_types: Sequence[BlockType]
    window_size: int | Sequence[int] | None
    window_pattern: str


_PAPER_V = "UniFormer (ICLR 2022 video / TPAMI 2023, seeds 002/001)"
_PAPER_I = "UniFormer (TPAMI 2023, seed 001)"


def _build(model: Callable[..., M], dims: int, builder_locals: dict, **fixed) -> M:
    """``model(dims=dims, **fixed, ...)`` from a builder's ``locals()`` taken on entry: its keyword-only
    parameters (the paper's per-model config) plus its ``options`` (the ``Unpack[...]`` overrides)."""
    config = dict(builder_locals)
    options = config.pop("options")
    return model(dims=dims, **fixed, **config, **options)


def _video_card(name: str, params: float, gflops: float, table: str, frames: int = 16, extra=()) -> ModelCard:
    return ModelCard(
        name=name, family="uniformer", paper=_PAPER_V, table=table, input_size=(3, frames, 224, 224),
        num_classes=400, mean=KINETICS_MEAN, std=KINETICS_STD, paper_params_m=params, paper_gflops=gflops,
        extra_flops=extra, notes="GFLOPs per view; the paper prints GFLOPs x 4 views (1 crop x 4 clips) for Kinetics.",
    )


def _image_card(name: str, params: float, gflops: float, notes: str = "") -> ModelCard:
    return ModelCard(
        name=name, family="uniformer", paper=_PAPER_I, table="Table 2 (ImageNet-1K)", input_size=(3, 224, 224),
        num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper_params_m=params, paper_gflops=gflops, notes=notes,
    )


@register_model(_video_card("uniformer_small", 21.4, 41.8, "002 Table 1 / 001 Table 4 (K400, 16x4)"))
def uniformer_small(*, num_classes: int = 400, num_frames: int = 16, img_size: int = 224,
                    depth: Sequence[int] = (3, 4, 8, 3), embed_dim: Sequence[int] = (64, 128, 320, 512),
                    head_dim: int = 64, drop_path_rate: float = 0.1, layer_scale_init_value: float | None = None,
                    **options: Unpack[UniFormerOptions]) -> UniFormer:
    """UniFormer-S video backbone (depths 3-4-8-3, dims 64-128-320-512, head_dim 64)."""
    return _build(UniFormer, 3, locals())


@register_model(_video_card("uniformer_base", 49.8, 96.7, "002 Table 1 / 001 Table 4 (K400, 16x4)",
                            extra=(((3, 32, 224, 224), 259.0), ((3, 8, 224, 224), 40.3))))
def uniformer_base(*, num_classes: int = 400, num_frames: int = 16, img_size: int = 224,
                   depth: Sequence[int] = (5, 8, 20, 7), embed_dim: Sequence[int] = (64, 128, 320, 512),
                   head_dim: int = 64, drop_path_rate: float = 0.3, layer_scale_init_value: float | None = None,
                   **options: Unpack[UniFormerOptions]) -> UniFormer:
    """UniFormer-B video backbone (depths 5-8-20-7)."""
    return _build(UniFormer, 3, locals())


@register_model(_image_card("uniformer_small_image", 21.5, 3.6))
def uniformer_small_image(*, num_classes: int = 1000, img_size: int = 224,
                          depth: Sequence[int] = (3, 4, 8, 3), embed_dim: Sequence[int] = (64, 128, 320, 512),
                          head_dim: int = 64, drop_path_rate: float = 0.1, layer_scale_init_value: float | None = None,
                          **options: Unpack[UniFormerOptions]) -> UniFormer:
    """UniFormer-S image backbone (001 Table 1)."""
    return _build(UniFormer, 2, locals())


@register_model(_image_card("uniformer_small_plus_image", 24.0, 4.2,
                            "S+ (S-dagger): overlapping conv stems, depths 3-5-9-3, head_dim 32."))
def uniformer_small_plus_image(*, num_classes: int = 1000, img_size: int = 224,
                               depth: Sequence[int] = (3, 5, 9, 3), embed_dim: Sequence[int] = (64, 128, 320, 512),
                               head_dim: int = 32, drop_path_rate: float = 0.1,
                               layer_scale_init_value: float | None = None,
                               **options: Unpack[UniFormerOptions]) -> UniFormer:
    """UniFormer-S+ image backbone: convolutional stems (no LayerNorm), depths 3-5-9-3, head_dim 32."""
    return _build(UniFormer, 2, locals(), conv_stem=True, conv_downsample=True)


@register_model(_image_card("uniformer_base_image", 50.0, 8.3))
def uniformer_base_image(*, num_classes: int = 1000, img_size: int = 224,
                         depth: Sequence[int] = (5, 8, 20, 7), embed_dim: Sequence[int] = (64, 128, 320, 512),
                         head_dim: int = 64, drop_path_rate: float = 0.3, layer_scale_init_value: float | None = None,
                         **options: Unpack[UniFormerOptions]) -> UniFormer:
    """UniFormer-B image backbone (001 Table 1)."""
    return _build(UniFormer, 2, locals())


@register_model(_image_card("uniformer_base_ls_image", 50.0, 8.3,
                            "B with layer scale (1e-6) on the global blocks only (the authors' uniformer_base_ls)."))
def uniformer_base_ls_image(*, num_classes: int = 1000, img_size: int = 224,
                            depth: Sequence[int] = (5, 8, 20, 7), embed_dim: Sequence[int] = (64, 128, 320, 512),
                            head_dim: int = 64, drop_path_rate: float = 0.3,
                            layer_scale_init_value: float | None = 1e-6,
                            **options: Unpack[UniFormerOptions]) -> UniFormer:
    """UniFormer-B image backbone with layer scale on the global blocks (stages 3-4) only."""
    return _build(UniFormer, 2, locals(), layer_scale_local=False)


@register_model(_image_card(
    "uniformer_large_image", 100.0, 19.8,
    "L: dims 128-192-448-640, depths 5-10-24-7, layer scale 1e-6 on every block, token-labelling aux head "
    "(the authors' only L checkpoint). The paper prints 12.6G; the authors later corrected it to ~19.8G "
    "(their counter skipped checkpointed blocks).",
))
def uniformer_large_image(*, num_classes: int = 1000, img_size: int = 224,
                          depth: Sequence[int] = (5, 10, 24, 7), embed_dim: Sequence[int] = (128, 192, 448, 640),
                          head_dim: int = 64, drop_path_rate: float = 0.4,
                          layer_scale_init_value: float | None = 1e-6, token_label_head: bool = True,
                          **options: Unpack[UniFormerOptions]) -> UniFormer:
    """UniFormer-L image backbone (001 Table 1; token-labelling variant as released)."""
    return _build(UniFormer, 2, locals())
