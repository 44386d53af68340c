"""CPU kernel backend: linear layers and 3-D convolutions through oneDNN where PyTorch would not.

Kept apart from the model vocabulary (:mod:`videoformers.models.layers`): models use
:class:`Linear` / :class:`Conv3d` (drop-in ``nn.Linear`` / ``nn.Conv3d`` subclasses with the same
state-dict keys) and get the fast CPU path for free; everywhere else (GPU, autocast, compile, export,
meta, FLOP counting) they are the plain PyTorch ops.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Linear", "linear", "Conv3d", "conv3d", "onednn_linear_enabled", "linear_backend"]


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
#
# Whether oneDNN wins depends on the CPU: x2 on that AMD EPYC, x1.1 on an Intel Xeon with AVX-512/AMX
# where MKL takes its fast path (issue 20). So the default (``VIDEOFORMERS_ONEDNN=auto``) measures it:
# at the first eligible linear layer of a process, a transformer-sized GEMM (392 tokens x 768 -> 768, the
# tokens of an 8x7x7 stage) runs through both backends, alternating, and oneDNN is kept only if it is at
# least 5% faster than F.linear at the process's thread count (~20 ms, once; :func:`linear_backend`
# tells what was chosen and why). ``VIDEOFORMERS_ONEDNN=1`` forces oneDNN without measuring.
# ---------------------------------------------------------------------------------------------

def _onednn_op():
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _onednn_op()
_ONEDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")
_ENV_MODE = os.environ.get("VIDEOFORMERS_ONEDNN", "auto").strip().lower()
_ENV_ENABLED = _ENV_MODE not in ("0", "false", "off", "no")
_FORCED = _ENV_MODE in ("1", "true", "on", "yes")
_AUTO: dict | None = None  # the measured choice, once per process: {"onednn": bool, "speedup": float, ...}
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


def _measure() -> dict:
    """Time F.linear (MKL / PyTorch's default) against oneDNN on one transformer-sized GEMM."""
    import time

    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(392, 768, generator=g), torch.randn(768, 768, generator=g), torch.zeros(768)
    best = {"mkl": float("inf"), "onednn": float("inf")}
    with torch.no_grad():
        for _ in range(2):  # warm-up: oneDNN JIT-compiles its kernel on first use
            F.linear(x, w, b)
            _ONEDNN_LINEAR(x, w, b, "none", [], "")
        for _ in range(5):  # alternating, best of 5: robust to a noisy neighbour
            t0 = time.perf_counter()
            F.linear(x, w, b)
            t1 = time.perf_counter()
            _ONEDNN_LINEAR(x, w, b, "none", [], "")
            t2 = time.perf_counter()
            best["mkl"] = min(best["mkl"], t1 - t0)
            best["onednn"] = min(best["onednn"], t2 - t1)
    speedup = best["mkl"] / max(best["onednn"], 1e-12)
    gflop = 2 * 392 * 768 * 768 / 1e9
    return {"onednn": speedup >= 1.05, "speedup": speedup, "threads": torch.get_num_threads(),
            "gflops_mkl": gflop / best["mkl"], "gflops_onednn": gflop / best["onednn"], "how": "measured"}


def linear_backend() -> dict:
    """Which GEMM :func:`linear` uses on CPU fp32 and why: ``{"onednn": bool, "how": "measured" | "forced"
    | "disabled" | "unavailable", "speedup": oneDNN over F.linear (measured), "gflops_*": ...}``."""
    global _AUTO
    if _ONEDNN_LINEAR is None:
        return {"onednn": False, "how": "unavailable"}
    if not _ENV_ENABLED or not torch.backends.mkldnn.enabled:
        return {"onednn": False, "how": "disabled"}
    if _FORCED:
        return {"onednn": True, "how": "forced"}
    if _AUTO is None:
        _AUTO = _measure()
    return _AUTO


def _use_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if not (_ONEDNN_LINEAR is not None and _ENV_ENABLED and x.numel() > 0 and _onednn_safe(x, weight, bias)):
        return False
    return _FORCED or (_AUTO["onednn"] if _AUTO is not None else linear_backend()["onednn"])


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
