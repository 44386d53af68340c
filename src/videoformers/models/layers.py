"""Layers shared by every model family: attention (through SDPA), DropPath, MLP, norms, checks.

Keeping them in one place means one fast attention path, one stochastic-depth implementation and
one set of input checks for all papers.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "Linear",
    "linear",
    "Conv3d",
    "conv3d",
    "onednn_linear_enabled",
    "Attention",
    "DropPath",
    "Mlp",
    "QuickGELU",
    "LayerScale",
    "LayerNorm",
    "drop_path",
    "to_ntuple",
    "check_input",
    "trunc_normal_",
    "trunc_normal_init",
    "channels_last_linear",
    "stochastic_depth_rates",
]


# ---------------------------------------------------------------------------------------------
# Linear layers through oneDNN on CPU.
#
# PyTorch runs an fp32 ``F.linear`` on x86 CPUs through MKL's sgemm. On AMD CPUs MKL dispatches to a
# generic code path: on the 2-core AMD EPYC (AVX-512) this library is developed on, sgemm reaches
# ~80-95 GFLOP/s per core where oneDNN's JIT kernels (also bundled with every CPU build of torch,
# used by inductor) reach ~200 (benchmarks/linear_backends.py). Every transformer in this
# library spends 80-90% of its CPU time in linear layers, so they go through oneDNN whenever that is
# safe: plain fp32 CPU tensors, no autocast, no compile/trace/export, no Python dispatch mode (a
# FLOP counter or fake-tensor mode then sees the ordinary ``aten.linear``). Results equal F.linear's
# up to fp32 summation order. ``VIDEOFORMERS_ONEDNN=0`` (or ``torch.backends.mkldnn.flags(
# enabled=False)``) turns it off, for the 3-D convolutions below too.
# ---------------------------------------------------------------------------------------------

def _onednn_op():
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _onednn_op()
_ONEDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")
_ENV_ENABLED = os.environ.get("VIDEOFORMERS_ONEDNN", "1").strip().lower() not in ("0", "false", "off", "no")
_PLAIN = (torch.Tensor, nn.Parameter)


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 spelling
        return torch.is_autocast_cpu_enabled()


def onednn_linear_enabled() -> bool:
    """Whether :func:`linear` may use oneDNN at all (op present, not switched off)."""
    return _ONEDNN_LINEAR is not None and _ENV_ENABLED and torch.backends.mkldnn.enabled


def _onednn_safe(*tensors: torch.Tensor | None) -> bool:
    """Plain fp32 CPU tensors outside autocast / compile / tracing / export / dispatch modes."""
    for t in tensors:
        if t is None:
            continue
        if type(t) not in _PLAIN:
            return False  # DTensor (FSDP), fake/functional tensors, other subclasses
        if t.device.type != "cpu" or t.dtype != torch.float32:
            return False
    if not torch.backends.mkldnn.enabled or _autocast_on():
        return False
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    if torch.onnx.is_in_onnx_export():
        return False
    from torch.utils._python_dispatch import _get_current_dispatch_mode
    return _get_current_dispatch_mode() is None


def _use_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    return _ONEDNN_LINEAR is not None and _ENV_ENABLED and x.numel() > 0 and _onednn_safe(x, weight, bias)


class _OneDNNLinear(torch.autograd.Function):
    """``y = x W^T + b`` and its three backward GEMMs, all on oneDNN (saves what F.linear saves)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _ONEDNN_LINEAR(x, weight, bias, "none", [], "")

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        g = grad.reshape(-1, weight.shape[0])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:  # dX = g W: a linear layer with weight W^T
            gx = _ONEDNN_LINEAR(g, weight.t().contiguous(), None, "none", [], "").view(x.shape)
        if ctx.needs_input_grad[1]:  # dW = g^T X: a linear layer on the transposed operands
            gw = _ONEDNN_LINEAR(g.t(), x.reshape(-1, x.shape[-1]).t(), None, "none", [], "")
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` that takes oneDNN's GEMM on CPU when safe (see the comment above)."""
    if not _use_onednn(x, weight, bias):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)):
        return _OneDNNLinear.apply(x, weight, bias)
    return _ONEDNN_LINEAR(x, weight, bias, "none", [], "")


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) computed by :func:`linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> torch.Tensor:
    """``F.conv3d`` (zero padding given as numbers) that calls oneDNN directly on CPU when safe.

    For some 3-D convolutions PyTorch's CPU dispatcher picks its generic ``slow_conv3d`` although
    oneDNN is available: e.g. the 3-channel video stem of H-UniFormer (``3 -> 32``, kernel 3, on
    16x160x160: 32 ms against 5 ms through oneDNN, one thread) and UniFormer's ``1 x 2 x 2`` patch
    embeddings. Whole models gain 2-5% at inference (UniFormer-XS/S, DualFormer-T).
    ``torch.mkldnn_convolution`` has its own autograd formula; results equal F.conv3d's up to fp32
    summation order.
    """
    if not (_ONEDNN_CONV and _ENV_ENABLED and x.dim() == 5 and x.numel() > 0 and _onednn_safe(x, weight, bias)):
        return F.conv3d(x, weight, bias, stride, padding, dilation, groups)
    t = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (int(v),) * 3  # noqa: E731
    return torch.mkldnn_convolution(x, weight, bias, t(padding), t(stride), t(dilation), groups)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters and state-dict keys) computed by :func:`conv3d`."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(x, weight, bias)
        return conv3d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


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


def channels_last_linear(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Apply a token-wise layer (Linear, LayerNorm, Mlp) to the channel axis of ``(B, C, *S)``.

    A 1x1(x1) convolution is a matmul over channels; done as ``Linear`` on a channels-last view
    it avoids PyTorch's slow CPU path for point-wise ``Conv3d``. When ``x`` is already in
    channels-last memory format both ``movedim`` calls are free views.
    """
    return layer(x.movedim(1, -1)).movedim(-1, 1)


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
