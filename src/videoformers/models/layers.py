"""The model vocabulary shared by every family: attention (through SDPA), the pre-norm transformer
``Block``, ``PatchEmbed``, ``LayerScale``, window partition, DropPath, MLP, norms, classifier heads,
checkpointed block runs and input checks.

Keeping them in one place means one fast attention path, one block, one stochastic-depth
implementation and one set of input checks for all papers. The CPU kernels they compute with
(oneDNN linear/conv) live in :mod:`videoformers.ops`.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..ops import Conv3d, Linear

__all__ = [
    "Attention",
    "Block",
    "PatchEmbed",
    "DropPath",
    "Mlp",
    "QuickGELU",
    "InplaceQuickGELU",
    "get_act_layer",
    "LayerScale",
    "LayerNorm",
    "drop_path",
    "to_ntuple",
    "pad_to_multiple",
    "window_partition",
    "window_reverse",
    "run_blocks",
    "create_classifier",
    "check_input",
    "trunc_normal_",
    "trunc_normal_init",
    "stochastic_depth_rates",
]


def to_ntuple(x: int | Sequence[int], n: int) -> tuple[int, ...]:
    if isinstance(x, (int, float)):
        return (int(x),) * n
    t = tuple(int(v) for v in x)
    if len(t) != n:
        raise ValueError(f"expected {n} values, got {t}")
    return t


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al. 2016): drop the residual branch per sample."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask.div_(keep)


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the GELU approximation OpenAI CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


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
    """``"gelu"`` (timm/DeiT), ``"gelu_tanh"`` (Flax's default, ViViT) or ``"quick_gelu"`` (OpenAI
    CLIP's ``x * sigmoid(1.702 x)``; in place in inference, see :class:`InplaceQuickGELU`: use it only
    where its input is a temporary, such as the FFN's hidden layer). A callable is returned as is."""
    if callable(act):
        return act
    if act == "gelu":
        return nn.GELU
    if act == "gelu_tanh":
        return lambda: nn.GELU(approximate="tanh")
    if act == "quick_gelu":
        return InplaceQuickGELU
    raise ValueError(f"unknown activation {act!r}; use 'gelu', 'gelu_tanh' or 'quick_gelu'")


class LayerNorm(nn.LayerNorm):
    """LayerNorm that normalises in fp32 and casts back (CLIP's ``LayerNorm`` subclass)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return super().forward(x)
        return F.layer_norm(
            x.float(), self.normalized_shape, self.weight.float() if self.weight is not None else None,
            self.bias.float() if self.bias is not None else None, self.eps,
        ).to(x.dtype)


class LayerScale(nn.Module):
    """Per-channel learnable residual scale (CaiT), applied on the last dimension."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """Two-layer feed-forward network (the FFN of every transformer block)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = Linear(hidden_features, out_features, bias=bias)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, C)`` tokens, computed by
    :func:`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient kernels on
    GPU, the fused kernel on CPU).

    ``qkv`` is one packed ``Linear(C, 3 * heads * head_dim)`` in q, k, v order, as in timm and the
    UniFormer code; ``proj`` maps back to ``C``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int | None = None,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
            head_dim = dim // num_heads
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.scale = qk_scale or head_dim**-0.5
        inner = num_heads * head_dim
        self.qkv = Linear(dim, 3 * inner, bias=qkv_bias)
        self.attn_drop = float(attn_drop)
        self.proj = Linear(inner, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, N, _ = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        x = x.transpose(1, 2).reshape(B, N, self.num_heads * self.head_dim)
        return self.proj_drop(self.proj(x))


def _residual_add(x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``x + branch``, in place when no graph is being recorded. Only for ``x`` the caller owns.

    In inference the new activation would otherwise be a fresh multi-MB allocation per residual;
    on CPU such allocations are page-faulted in every time. While autograd records, ``x`` may be
    saved by the norm that consumed it, so the out-of-place add is kept.
    """
    if torch.is_grad_enabled() and (x.requires_grad or branch.requires_grad):
        return x + branch
    return x.add_(branch)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + DropPath(LS(Attn(Norm(x))))``, then
    ``x + DropPath(LS(MLP(Norm(x))))`` (ViT, Dosovitskiy et al., ICLR 2021, Eq. 2-3).

    The attention is a module given by the caller (:class:`Attention`, ViViT's factorised
    dot-product attention, DualFormer's LW-MSA / GP-MSA, UniFormer's MHRA), so every family's
    block is this one. ``init_values`` adds CaiT layer scale (``ls1``/``ls2``); stochastic depth is
    per sample. Subclasses change how a branch is computed by overriding :meth:`attention_branch`
    / :meth:`mlp_branch` (UniFormer's local block normalises channels-first with BatchNorm).
    """

    def __init__(
        self,
        dim: int,
        attn: nn.Module,
        mlp_hidden: int,
        *,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        drop: float = 0.0,
        drop_path: float = 0.0,
        init_values: float | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn
        self.ls1 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, mlp_hidden, act_layer=act_layer, drop=drop)
        self.ls2 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def attention_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls1(self.attn(self.norm1(x)))

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The first add allocates (the caller's tensor is never modified); the second reuses it.
        x = x + self.drop_path1(self.attention_branch(x))
        return _residual_add(x, self.drop_path2(self.mlp_branch(x)))


def pad_to_multiple(x: torch.Tensor, multiple: Sequence[int]) -> torch.Tensor:
    """Zero-pad the trailing ``len(multiple)`` axes before the channel axis of a channels-last
    ``(B, *S, C)`` tensor, at their end, to multiples of ``multiple``."""
    S = x.shape[-1 - len(multiple):-1]
    pads = [(-s) % m for s, m in zip(S, multiple)]
    if not any(pads):
        return x
    arg = [0, 0]
    for p in reversed(pads):
        arg += [0, p]
    return F.pad(x, arg)


class PatchEmbed(nn.Module):
    """Patch / tubelet embedding: a convolution with kernel ``patch_size`` (stride = kernel unless
    given), optionally normalised. The one embedding of every family: ViT's ``p x p`` patches, ViViT's
    ``t x h x w`` tubelets (Sec. 3.2), UniFormer's stems and 1x2x2 downsampling (TPAMI Sec. 4),
    UniFormerV2's ``3 x p x p`` temporal downsampling (Sec. 3), DualFormer's patch embedding and
    merging (Sec. 3.1).

    Input is channels-first ``(B, C, [T,] H, W)`` (a channels-last view is fine: the stages pass
    ``x.movedim(-1, 1)`` of their tokens); output is channels-last ``(B, [T',] H', W', D)``.
    ``pad=True`` zero-pads sizes that are not multiples of the kernel at their end (DualFormer's any
    input size) instead of dropping the remainder.

    A kernel = stride convolution on a channels-last input is a matmul over (patch, channels): it
    runs as space-to-depth plus one GEMM (the conv weight viewed as a Linear weight), which on CPU
    beats the convolution kernels on such inputs.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: Sequence[int], stride: Sequence[int] | None = None,
                 padding: Sequence[int] | int = 0, *, bias: bool = True,
                 norm_layer: Callable[[int], nn.Module] | None = None, pad: bool = False) -> None:
        super().__init__()
        self.patch_size = tuple(int(p) for p in patch_size)
        self.dims = len(self.patch_size)
        if self.dims not in (2, 3):
            raise ValueError(f"patch_size needs 2 or 3 values, got {patch_size}")
        self.stride = self.patch_size if stride is None else to_ntuple(stride, self.dims)
        self.padding = to_ntuple(padding, self.dims)
        conv = Conv3d if self.dims == 3 else nn.Conv2d
        self.proj = conv(in_chans, embed_dim, self.patch_size, self.stride, self.padding, bias=bias)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else nn.Identity()
        self.pad = pad
        self._gemm = self.stride == self.patch_size and not any(self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = pad_to_multiple(x.movedim(1, -1), self.patch_size).movedim(-1, 1)
        if self._gemm and x.dim() == 5 and x.shape[1] > 3 and not x.is_contiguous() and \
                x.is_contiguous(memory_format=torch.channels_last_3d):
            from ..ops import linear

            B, C, T, H, W = x.shape
            pt, ph, pw = self.patch_size
            xl = x.permute(0, 2, 3, 4, 1)[:, : T - T % pt, : H - H % ph, : W - W % pw]
            xl = xl.reshape(B, T // pt, pt, H // ph, ph, W // pw, pw, C).permute(0, 1, 3, 5, 2, 4, 6, 7)
            xl = xl.reshape(B, T // pt, H // ph, W // pw, pt * ph * pw * C)
            w = self.proj.weight.permute(0, 2, 3, 4, 1).reshape(self.proj.out_channels, -1)
            return self.norm(linear(xl, w, self.proj.bias))
        return self.norm(self.proj(x).movedim(1, -1))


def window_partition(x: torch.Tensor, window: Sequence[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Cut a channels-last grid ``(B, *S, C)`` into non-overlapping windows: returns
    ``(B * num_windows, prod(window), C)`` and the number of windows per axis. Sizes that do not
    tile are zero-padded at their end (:func:`pad_to_multiple`); one reshape/permute copy, no loop,
    so all windows go through one batched SDPA call. Undone by :func:`window_reverse`."""
    x = pad_to_multiple(x, window)
    B, *S, C = x.shape
    d = len(S)
    grid = tuple(s // w for s, w in zip(S, window))
    # (B, n1, w1, n2, w2, ..., C) -> (B, n1, n2, ..., w1, w2, ..., C)
    shape = [B] + [v for pair in zip(grid, window) for v in pair] + [C]
    perm = [0] + [1 + 2 * i for i in range(d)] + [2 + 2 * i for i in range(d)] + [1 + 2 * d]
    return x.view(shape).permute(perm).reshape(-1, math.prod(window), C), grid


def window_reverse(windows: torch.Tensor, batch: int, grid: Sequence[int], window: Sequence[int],
                   size: Sequence[int]) -> torch.Tensor:
    """The inverse of :func:`window_partition`: ``(B * num_windows, prod(window), C)`` -> ``(B, *size, C)``
    (padding cropped)."""
    d, C = len(grid), windows.shape[-1]
    # (B, n1, n2, ..., w1, w2, ..., C) -> (B, n1, w1, n2, w2, ..., C)
    perm = [0] + [v for i in range(d) for v in (1 + i, 1 + d + i)] + [1 + 2 * d]
    x = windows.view([batch, *grid, *window, C]).permute(perm).reshape(batch, *(g * w for g, w in zip(grid, window)), C)
    if any(g * w != s for g, w, s in zip(grid, window, size)):
        x = x[(slice(None),) + tuple(slice(0, s) for s in size)]
    return x


def run_blocks(blocks: Sequence[nn.Module], x: torch.Tensor, checkpoint: int | bool = 0, *args) -> torch.Tensor:
    """``x`` through ``blocks`` in order (extra positional ``args`` passed to every block); the first
    ``checkpoint`` blocks (all with ``True``) recompute their activations in backward (non-reentrant
    gradient checkpointing), when a graph is being recorded."""
    n = len(blocks) if checkpoint is True else int(checkpoint)
    record = n > 0 and torch.is_grad_enabled()
    for i, blk in enumerate(blocks):
        x = cp.checkpoint(blk, x, *args, use_reentrant=False) if record and i < n else blk(x, *args)
    return x


def create_classifier(num_features: int, num_classes: "int | Sequence[int] | Mapping[str, int]",
                      like: torch.Tensor | None = None) -> nn.Module:
    """The linear classifier of every family: ``Linear(num_features, num_classes)``, ``Identity`` for
    ``num_classes == 0`` (the model then returns pre-logits), a ``ModuleList`` / ``ModuleDict`` of
    linear heads for a sequence / ``{name: classes}`` mapping (multi-head, e.g. ViViT's Epic-Kitchens
    verb and noun). Built on ``like``'s device and dtype (a model's parameter) when given."""
    factory = {} if like is None else dict(device=like.device, dtype=like.dtype)
    if isinstance(num_classes, Mapping):
        if not num_classes:
            raise ValueError("num_classes mapping is empty")
        return nn.ModuleDict({str(k): Linear(num_features, int(v), **factory) for k, v in num_classes.items()})
    if isinstance(num_classes, (list, tuple)):
        if not num_classes:
            raise ValueError("num_classes sequence is empty")
        return nn.ModuleList(Linear(num_features, int(v), **factory) for v in num_classes)
    n = int(num_classes)
    return Linear(num_features, n, **factory) if n > 0 else nn.Identity()


def check_input(
    x: torch.Tensor,
    *,
    ndim: int,
    channels: int,
    multiple_of: Sequence[int] | None = None,
    min_size: Sequence[int] | None = None,
    layout: str,
    model: str,
) -> None:
    """Raise ``ValueError`` naming the expected shape when ``x`` cannot be fed to the model.

    ``multiple_of``/``min_size`` apply to the trailing ``len(...)`` dimensions (e.g. ``(H, W)``).
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{model}: expected a tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(
            f"{model}: expected a {ndim}-D input of shape {layout}, got a {x.ndim}-D tensor of shape {tuple(x.shape)}"
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{model}: expected {channels} channels in dim 1 of {layout}, got shape {tuple(x.shape)}"
            + (" (is the input channels-last, e.g. (B, T, H, W, C)? permute it)" if x.shape[-1] == channels else "")
        )
    if not x.is_floating_point():
        raise ValueError(f"{model}: expected a float tensor (normalised pixels), got {x.dtype}")
    dims = x.shape[ndim - len(multiple_of or min_size or ()):]
    if multiple_of is not None:
        bad = [(d, m) for d, m in zip(dims, multiple_of) if m > 1 and d % m]
        if bad:
            raise ValueError(
                f"{model}: trailing sizes {tuple(dims)} of input {tuple(x.shape)} must be multiples of "
                f"{tuple(multiple_of)} (layout {layout})"
            )
    if min_size is not None:
        if any(d < m for d, m in zip(dims, min_size)):
            raise ValueError(
                f"{model}: trailing sizes {tuple(dims)} of input {tuple(x.shape)} must be at least {tuple(min_size)}"
            )


@torch.no_grad()
def trunc_normal_(tensor: torch.Tensor, std: float = 0.02, a: float | None = None, b: float | None = None) -> torch.Tensor:
    """Truncated normal N(0, std^2) on [a, b] (default +-2 std) by inverse-CDF sampling.

    Same distribution as ``nn.init.trunc_normal_``, which in recent torch redraws by rejection
    and takes ~10x longer (seconds per model at construction time).
    """
    if tensor.is_meta:  # no values to draw; the meta kernels of erfinv/clamp cost ~10 ms a call
        return tensor
    a = -2 * std if a is None else a
    b = 2 * std if b is None else b
    lo, hi = (math.erf(v / (std * math.sqrt(2.0))) for v in (a, b))
    tensor.uniform_(lo, hi).erfinv_().mul_(std * math.sqrt(2.0)).clamp_(a, b)
    return tensor


def trunc_normal_init(module: nn.Module, std: float = 0.02) -> None:
    """timm's ViT init for Linear (truncated normal, zero bias) and LayerNorm (ones/zeros)."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def stochastic_depth_rates(drop_path_rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Linearly increasing drop-path rates over all blocks, split per stage."""
    total = sum(depths)
    rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    out, start = [], 0
    for d in depths:
        out.append(rates[start : start + d])
        start += d
    return out
