"""UniFormerV2: arming image ViTs with video UniFormer (Li et al., ICLR 2023, arXiv 2211.09552).

An open image ViT (:class:`videoformers.models.vit.VisionTransformer`: CLIP, DeiT, timm) is
turned into a video model with three additions (Fig. 2):

* **Local UniBlock** (Sec. 3.1, Eq. 1-3 and 6): before the ViT block's spatial attention, a
  local temporal MHRA (LT-MHRA) ``BN -> V (point-wise, C -> C/1.5) -> A (depth-wise temporal
  3x1x1 convolution, the learnable affinity a^{i-j}) -> U (point-wise, zero-initialised)`` updates
  the patch tokens (not the class token). ``local_mhra="double"`` adds a second one after the
  spatial attention (the authors' Something-Something recipe, after ST-Adapter; Table 9b).
* **Global UniBlock** (Sec. 3.2, Eq. 8-12): ``X^C = DPE(X^L) + X^L`` (depth-wise 3x3x3),
  ``X^ST = C_MHRA(LN(q), LN(X^C))`` (a learnable, zero-initialised query attends over all
  ``T x (1 + H x W)`` tokens) and ``X^G = FFN(LN(X^ST)) + X^ST``. Output projections are
  zero-initialised (Appendix A), so at initialisation the video token stays 0.
* **Multi-stage fusion** (Sec. 3.3, Fig. 3): ``sequential`` (default: the previous stage's video
  token is the next stage's query), ``parallel`` (one query per stage, outputs concatenated and
  projected by ``U_F``), ``hierarchical_kv`` (the previous token joins the keys/values) and
  ``hierarchical_q`` (the previous token joins the queries). The final representation is
  ``Z = alpha * F + (1 - alpha) * F_C`` with ``alpha = sigmoid(a)`` per channel, ``F_C`` the last
  block's class token averaged over time, then ``LN -> dropout -> Linear``.
* **Temporal downsampling** (Sec. 3): a ``3 x p x p`` patch embedding with temporal stride 2,
  initialised from the 2-D kernel on the central frame.

Model contract: ``forward_features`` returns what the head reads, the contexts ``X^C`` of the global
UniBlocks (Eq. 8), ``(B, S, T', 1 + H'*W', C)`` (one per global layer, plus the last block's tokens
when it is not one); ``forward_head`` runs the global UniBlocks, the multi-stage fusion and the
classifier. The backbone blocks are the intermediates, as ``(B, C, T', H', W')`` maps.

Layout and speed: tokens stay batch-first ``(B*T, 1 + H*W, C)``; spatial attention uses one packed
qkv and SDPA; the LT-MHRA point-wise convolutions are ``Linear`` layers on the channels-last
tokens (its BatchNorm is folded into ``V`` in eval) and its temporal convolution is three shifted
multiply-adds; the global block's keys/values are read without a frame-major permute (softmax
over keys does not depend on their order).

Architecture presets (``preset=``): the authors' builder defaults match none of their released
models, so the two released families are named configurations (:data:`PRESETS`): ``"kinetics"`` (no local UniBlocks, no
temporal downsampling, global UniBlocks on the last 4 layers: every Kinetics/MiT/K710 model) and
``"ssv2"`` (double local UniBlocks, temporal downsampling, global UniBlocks on the last 2/3 of the
layers: 8 for B, 16 for L; drop path 0.2 / 0.4). Every knob is an explicit argument as well.

Checkpoints: :meth:`UniFormerV2.convert_state_dict` maps the authors' PySlowFast layout (flat
``backbone.*`` ``.pyth`` files or ``{"model_state": ...}``), MMAction2's (``backbone.transformer.norm``,
``cls_head.fc_cls``), and image-ViT checkpoints (OpenAI CLIP ``visual.*``, HF ``CLIPVisionModel``,
timm/DeiT) whose patch kernel is inflated on the central frame and whose image head is dropped.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Literal, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..checkpoints.loading import inflate_weight
from ..checkpoints.vit_layouts import convert_vit_state_dict, resample_pos_embed
from ..ops import Conv3d, Linear, linear
from ..registry import KINETICS_MEAN, KINETICS_STD, ModelCard, build_model, register_model
from .contract import FeatureInfo, ModelContract, check_output_fmt, feature_take_indices, take_map
from .layers import (
    Attention, Block, InplaceQuickGELU, LayerNorm, PatchEmbed, QuickGELU, check_input, create_classifier,
    drop_path, get_act_layer, stochastic_depth_rates, to_ntuple, trunc_normal_init,
)

__all__ = [
    "UniFormerV2",
    "LocalTemporalMHRA",
    "LocalUniBlock",
    "GlobalUniBlock",
    "QueryCrossAttention",
    "PRESETS",
    "FUSIONS",
    "preset_config",
]

Fusion = Literal["sequential", "parallel", "hierarchical_kv", "hierarchical_q"]
FUSIONS: tuple[str, ...] = ("sequential", "parallel", "hierarchical_kv", "hierarchical_q")
LocalMode = Literal["none", "single", "double"]


def _records_grad(*ts: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def _drop_path_video(x: torch.Tensor, p: float, training: bool, frames: int) -> torch.Tensor:
    """Stochastic depth per *video* on frame-batched tokens ``(B*T, ...)``.

    The authors' timm DropPath on sequence-first ``(L, B*T, C)`` tensors drops token positions
    across the whole batch; the paper means per-sample stochastic depth, and a video is the sample.
    """
    if p == 0.0 or not training:
        return x
    return drop_path(x.reshape(-1, frames, *x.shape[1:]), p, True).reshape(x.shape)


def _add_to_patches(x: torch.Tensor, branch: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``x`` with ``branch`` added to its patch tokens ``x[:, 1:]`` (class tokens untouched)."""
    if _records_grad(x, branch) or torch.compiler.is_compiling():  # (dynamo rejects a strided out=)
        return torch.cat([x[:, :1], x[:, 1:] + branch], dim=1)
    if inplace:
        x[:, 1:].add_(branch)
        return x
    out = torch.empty_like(x)
    out[:, :1] = x[:, :1]
    torch.add(x[:, 1:], branch, out=out[:, 1:])
    return out


# --------------------------------------------------------------------------- local UniBlock
class LocalTemporalMHRA(nn.Module):
    """LT-MHRA (Sec. 3.1, Eq. 4-6): ``U(A(V(BN(X))))`` over a ``t x 1 x 1`` temporal tube.

    ``V`` and ``U`` are point-wise projections (``Linear`` on channels-last tokens), ``A`` is the
    per-channel learnable local affinity ``a^{i-j}`` (a depth-wise ``t x 1 x 1`` convolution,
    zero-padded in time). ``U`` is zero-initialised (Appendix A) so the branch starts as 0.
    Parameter names: ``norm`` (BN), ``v``, ``affinity`` (``Conv3d`` weights, as the authors'),
    ``u``.
    """

    def __init__(self, dim: int, dw_reduction: float = 1.5, kernel_size: int = 3) -> None:
        super().__init__()
        hidden = int(dim // dw_reduction)
        self.kernel_size = kernel_size
        self.norm = nn.BatchNorm1d(dim)
        self.v = Linear(dim, hidden)
        self.affinity = Conv3d(hidden, hidden, (kernel_size, 1, 1), padding=(kernel_size // 2, 0, 0), groups=hidden)
        self.u = Linear(hidden, dim)
        nn.init.zeros_(self.u.weight)
        nn.init.zeros_(self.u.bias)

    def _project_v(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.norm
        if self.training or bn.running_mean is None:
            c = x.shape[-1]
            x = bn(x.reshape(-1, c)).reshape(x.shape)
            return self.v(x)
        # Eval BN is a per-channel affine: fold it into V (one pass over the tokens fewer).
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        return linear(x, self.v.weight * scale, torch.addmv(self.v.bias, self.v.weight, shift))

    def _temporal(self, h: torch.Tensor) -> torch.Tensor:
        """Depth-wise temporal convolution on ``(B, T, N, C')`` as shifted multiply-adds."""
        k, c = self.kernel_size, self.kernel_size // 2
        w = self.affinity.weight.view(-1, k).to(h.dtype)
        bias = self.affinity.bias
        out = torch.addcmul(bias.to(h.dtype), h, w[:, c]) if bias is not None else h * w[:, c]
        T = h.shape[1]
        for j in range(k):
            off = j - c
            if off == 0 or abs(off) >= T:
                continue
            if off < 0:
                out[:, -off:].addcmul_(h[:, : T + off], w[:, j])
            else:
                out[:, : T - off].addcmul_(h[:, off:], w[:, j])
        return out

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """Patch tokens ``(B*T, N, C)`` (any strides) -> the branch ``(B*T, N, C)``."""
        BT, N, _ = x.shape
        h = self._project_v(x)
        h = self._temporal(h.view(BT // frames, frames, N, -1))
        return self.u(h).view(BT, N, -1)


class LocalUniBlock(Block):
    """Local UniBlock (Sec. 3.1, Eq. 1-3): ``LT-MHRA -> ViT block (GS-MHRA, FFN)``.

    The ViT block's parameters keep their image names (``norm1``, ``attn``, ``norm2``, ``mlp``)
    so image checkpoints load unchanged; ``lmhra1`` runs before the spatial attention and, with
    ``local_mhra="double"``, ``lmhra2`` after it. Tokens are ``(B*T, 1 + H*W, C)``; LT-MHRA
    updates only the patch tokens. With ``local_mhra="none"`` this is the plain ViT block
    applied per frame.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, act_layer=QuickGELU, norm_eps: float = 1e-5,
                 local_mhra: LocalMode = "none", dw_reduction: float = 1.5, local_kernel_size: int = 3,
                 init_values: float | None = None) -> None:
        super().__init__(dim, Attention(dim, num_heads, qkv_bias=qkv_bias), int(dim * mlp_ratio), act_layer=act_layer,
                         norm_layer=partial(LayerNorm, eps=norm_eps), init_values=init_values or None)
        if local_mhra not in ("none", "single", "double"):
            raise ValueError(f"local_mhra must be 'none', 'single' or 'double', got {local_mhra!r}")
        self.drop_path_rate = float(drop_path)
        self.lmhra1 = LocalTemporalMHRA(dim, dw_reduction, local_kernel_size) if local_mhra != "none" else None
        self.lmhra2 = LocalTemporalMHRA(dim, dw_reduction, local_kernel_size) if local_mhra == "double" else None
        self.grad_checkpointing = False

    def _local(self, x: torch.Tensor, lmhra: LocalTemporalMHRA, frames: int, inplace: bool) -> torch.Tensor:
        branch = _drop_path_video(lmhra(x[:, 1:], frames), self.drop_path_rate, self.training, frames)
        return _add_to_patches(x, branch, inplace)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        p, training = self.drop_path_rate, self.training
        ckpt = self.grad_checkpointing and torch.is_grad_enabled()
        if self.lmhra1 is not None:
            x = self._local(x, self.lmhra1, frames, inplace=False)  # never writes into the caller's tensor
            attn = cp.checkpoint(self.attention_branch, x, use_reentrant=False) if ckpt else self.attention_branch(x)
            x = _residual(x, _drop_path_video(attn, p, training, frames))
        else:
            attn = cp.checkpoint(self.attention_branch, x, use_reentrant=False) if ckpt else self.attention_branch(x)
            x = x + _drop_path_video(attn, p, training, frames)
        if self.lmhra2 is not None:
            x = self._local(x, self.lmhra2, frames, inplace=True)
        mlp = cp.checkpoint(self.mlp_branch, x, use_reentrant=False) if ckpt else self.mlp_branch(x)
        return _residual(x, _drop_path_video(mlp, p, training, frames))


def _residual(x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``x + branch`` into ``x`` when nothing is recorded (``x`` is always ours here)."""
    return x + branch if _records_grad(x, branch) else x.add_(branch)


# --------------------------------------------------------------------------- global UniBlock
class QueryCrossAttention(nn.Module):
    """Query-based cross MHRA (Sec. 3.2, Eq. 12): ``Concat_n(A^C_n(q, X) V_n(X)) U``.

    ``A^C_n`` is a softmax over all context tokens of ``Q_n(q)^T K_n(X) / sqrt(d)``; computed by
    SDPA with batch-first ``(B, L, C)`` context. ``q`` and the packed ``kv`` projections are
    separate ``Linear`` layers so the (few) queries and the (many) context tokens are projected
    independently; ``proj`` (``U``) is zero-initialised.
    """

    def __init__(self, dim: int, num_heads: int, factorized: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.factorized = factorized
        self.q = Linear(dim, dim)
        self.kv = Linear(dim, 2 * dim)
        self.proj = Linear(dim, dim)
        # The authors' init of nn.MultiheadAttention's packed in_proj: Xavier over the (3C, C)
        # matrix, zero bias; zero output projection.
        bound = (6.0 / (dim + 3 * dim)) ** 0.5
        for lin in (self.q, self.kv):
            nn.init.uniform_(lin.weight, -bound, bound)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, q: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, Q, C = q.shape
        L = context.shape[1]
        h, d = self.num_heads, self.head_dim
        if self.factorized:
            return self._forward_factorized(q, context)
        q = self.q(q).view(B, Q, h, d).transpose(1, 2)
        k, v = self.kv(context).view(B, L, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, Q, C))

    def _forward_factorized(self, q: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The same function without projecting the context to keys and values.

        With few queries, ``Q_n(q)^T (W_k x + b_k) = (W_k^T Q_n(q))^T x + const`` (the constant
        cancels in the softmax) and ``sum_j A_j (W_v x_j + b_v) = W_v (sum_j A_j x_j) + b_v``
        (the affinities sum to 1). Cost per context token: ``2 * Q * heads * C`` multiply-adds
        instead of ``2 * C^2`` (64x fewer for B/16); FLOP counts drop accordingly, which is why it
        is opt-in (``global_attn="factorized"``) and the default keeps the paper's computation.
        """
        B, Q, C = q.shape
        h, d = self.num_heads, self.head_dim
        w_k, w_v = self.kv.weight[:C].view(h, d, C), self.kv.weight[C:].view(h, d, C)
        qh = self.q(q).view(B, Q, h, d) * d**-0.5
        qk = torch.einsum("bqhd,hdc->bqhc", qh, w_k.to(qh.dtype)).reshape(B, Q * h, C)
        attn = torch.bmm(qk.to(context.dtype), context.transpose(1, 2)).softmax(dim=-1)  # (B, Q*h, L)
        agg = torch.bmm(attn, context).view(B, Q, h, C)
        out = torch.einsum("bqhc,hdc->bqhd", agg, w_v.to(agg.dtype)) + self.kv.bias[C:].view(h, d).to(agg.dtype)
        return self.proj(out.reshape(B, Q, C))


class GlobalFFN(nn.Module):
    """The global block's FFN: ``fc1 -> QuickGELU -> dropout -> fc2`` (dropout once, as the authors)."""

    def __init__(self, dim: int, hidden: int, act_layer=QuickGELU, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.act = act_layer()
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.fc2 = Linear(hidden, dim)
        nn.init.xavier_uniform_(self.fc1.weight)
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class GlobalUniBlock(nn.Module):
    """Global UniBlock (Sec. 3.2): ``X^C = DPE(X^L) + X^L``; ``X^ST = q + C_MHRA(LN(q), LN(X^C))``;
    ``X^G = X^ST + FFN(LN(X^ST))``.

    DPE is a depth-wise 3x3x3 convolution over the patch tokens of every frame (the per-frame
    class tokens join the context without it). The context is all ``T x (1 + H x W)`` tokens of
    the local UniBlock's output, which itself is not modified. ``extra_context`` (hierarchical KV
    fusion) appends tokens to the context.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, mlp_dropout: float = 0.5,
                 drop_path: float = 0.0, act_layer=QuickGELU, dpe_kernel_size: int = 3,
                 factorized_attn: bool = False) -> None:
        super().__init__()
        self.dpe = Conv3d(dim, dim, dpe_kernel_size, padding=dpe_kernel_size // 2, groups=dim)
        nn.init.zeros_(self.dpe.bias)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = QueryCrossAttention(dim, num_heads, factorized_attn)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = GlobalFFN(dim, round(mlp_ratio * dim), act_layer, mlp_dropout)
        self.drop_path_rate = float(drop_path)

    def context(self, x: torch.Tensor, frames: int, grid: tuple[int, int]) -> torch.Tensor:
        """``X^C``: the local tokens ``(B*T, 1 + H*W, C)`` with DPE added to the patch tokens,
        returned as ``(B, T, 1 + H*W, C)``."""
        BT, L, C = x.shape
        B = BT // frames
        patches = x[:, 1:].reshape(B, frames, grid[0], grid[1], C).permute(0, 4, 1, 2, 3)
        pos = self.dpe(patches).permute(0, 2, 3, 4, 1).reshape(BT, L - 1, C)
        ctx = _add_to_patches(x, pos, inplace=False)
        return ctx.view(B, frames, L, C)

    def forward(self, q: torch.Tensor, ctx: torch.Tensor, extra_context: torch.Tensor | None = None) -> torch.Tensor:
        """``q`` ``(B, Q, C)`` attends over the context ``(B, T, 1 + H*W, C)`` (from :meth:`context`) and
        the ``extra_context`` tokens ``(B, E, C)`` placed before it."""
        kv = self.norm_kv(ctx).flatten(1, 2)  # LayerNorm is per token: normalising the parts is the same
        if extra_context is not None:
            kv = torch.cat([self.norm_kv(extra_context), kv], dim=1)
        p = self.drop_path_rate
        q = q + drop_path(self.attn(self.norm_q(q), kv), p, self.training)
        return q + drop_path(self.mlp(self.norm2(q)), p, self.training)


# --------------------------------------------------------------------------- model
class UniFormerV2(ModelContract, nn.Module):
    """UniFormerV2 video classifier: an image ViT with local/global UniBlocks.

    Args:
        img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, qkv_bias: the image ViT
            (CLIP B/16: 224/16/768/12/12; L/14: 224/14/1024/24/16).
        act_layer, norm_eps, pre_norm, patch_bias, init_values: ViT flavour (CLIP:
            ``"quick_gelu"``, 1e-5, ``ln_pre``, no patch bias; timm/DeiT: ``"gelu"``, 1e-6, no
            pre-norm, patch bias; DeiT-III: layer scale ``init_values``).
            :meth:`from_vit` reads them off an image model.
        num_classes: classifier outputs (``0``: ``forward`` returns the fused features).
        num_frames: frames the model is meant for (informational: any ``T`` is accepted).
        local_mhra: ``"none"``, ``"single"`` (LT-MHRA before the spatial attention) or
            ``"double"`` (another after it).
        dw_reduction: LT-MHRA bottleneck ``C -> int(C // dw_reduction)``; ``local_kernel_size``
            its temporal kernel.
        temporal_downsample: ``3 x p x p`` patch embedding with temporal stride 2 (``kernel_t``).
        global_layers: blocks (0-based) followed by a global UniBlock, or an ``int`` n for the
            last n blocks.
        global_num_heads, global_mlp_ratio, global_mlp_dropout: global UniBlock sizes and the
            dropout inside its FFN.
        fusion: multi-stage fusion (Sec. 3.3): ``"sequential"``, ``"parallel"``,
            ``"hierarchical_kv"`` or ``"hierarchical_q"``.
        global_attn: ``"standard"`` (keys/values projected, as Eq. 12 reads; the papers' FLOPs)
            or ``"factorized"`` (the same function, 5-8% faster: the query is folded into the key
            projection, see :meth:`QueryCrossAttention._forward_factorized`).
        drop_path_rate: stochastic depth of the backbone blocks (linear 0 -> rate).
        global_drop_path_rate: stochastic depth of the global UniBlocks (linear 0 -> rate).
        drop_rate: dropout before the classifier (the authors' ``cls_dropout``, 0.5).
        frozen: freeze the image ViT (patch/pos/class embeddings, pre-norm, ViT block weights;
            LT-MHRA stays trainable) and classify the video token ``F`` alone, as the authors'
            frozen-backbone models (no ``alpha``). Without local UniBlocks the frozen backbone
            runs without recording gradients.
        grad_checkpointing: recompute the attention and FFN branches of the backbone blocks in
            backward (``checkpoint_num`` limits it to the first n blocks, as the authors).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 400,
        num_frames: int = 8,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        act_layer: str = "quick_gelu",
        norm_eps: float = 1e-5,
        pre_norm: bool = True,
        patch_bias: bool = False,
        init_values: float | None = None,
        local_mhra: LocalMode = "none",
        dw_reduction: float = 1.5,
        local_kernel_size: int = 3,
        temporal_downsample: bool = False,
        kernel_t: int = 3,
        global_layers: int | Sequence[int] = 4,
        global_num_heads: int | None = None,
        global_mlp_ratio: float = 4.0,
        global_mlp_dropout: float | Sequence[float] = 0.5,
        fusion: Fusion = "sequential",
        global_attn: Literal["standard", "factorized"] = "standard",
        drop_path_rate: float = 0.0,
        global_drop_path_rate: float = 0.0,
        drop_rate: float = 0.5,
        frozen: bool = False,
        grad_checkpointing: bool = False,
        checkpoint_num: int | None = None,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if global_attn not in ("standard", "factorized"):
            raise ValueError(f"global_attn must be 'standard' or 'factorized', got {global_attn!r}")
        self.img_size = to_ntuple(img_size, 2)
        self.patch_size = int(patch_size)
        if any(s % self.patch_size for s in self.img_size):
            raise ValueError(f"img_size {self.img_size} must be a multiple of patch_size {patch_size}")
        self.grid_size = (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)
        self.in_chans, self.num_classes, self.num_frames = in_chans, num_classes, num_frames
        self.embed_dim = self.num_features = embed_dim
        self.depth = depth
        self.fusion = fusion
        self.frozen = frozen
        self.local_mhra = local_mhra
        self.num_prefix_tokens = 1
        self.num_blocks = depth  # fewer after prune_intermediate_layers
        self.grad_checkpointing = (0,)
        act = get_act_layer(act_layer)

        if isinstance(global_layers, int):
            if not 0 <= global_layers <= depth:
                raise ValueError(f"global_layers={global_layers} must be in [0, depth={depth}]")
            global_layers = tuple(range(depth - global_layers, depth))
        self.global_layers = tuple(sorted(int(i) for i in global_layers))
        if len(set(self.global_layers)) != len(self.global_layers) or any(not 0 <= i < depth for i in self.global_layers):
            raise ValueError(f"global_layers must be distinct block indices in [0, {depth}), got {global_layers}")
        if not self.global_layers:
            raise ValueError("UniFormerV2 needs at least one global UniBlock (global_layers)")
        n_global = len(self.global_layers)
        self._stage_of = {b: j for j, b in enumerate(self.global_layers)}

        # --- image ViT (names follow videoformers.models.vit so image checkpoints load)
        kt, st = (kernel_t, 2) if temporal_downsample else (1, 1)
        p = self.patch_size
        self.patch_embed = PatchEmbed(in_chans, embed_dim, (kt, p, p), (st, p, p), ((kt - 1) // 2, 0, 0), bias=patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], embed_dim))
        self.norm_pre = LayerNorm(embed_dim, eps=norm_eps) if pre_norm else nn.Identity()
        dpr = stochastic_depth_rates(drop_path_rate, [depth])[0]
        self.blocks = nn.ModuleList([
            LocalUniBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, dpr[i], act, norm_eps, local_mhra,
                          dw_reduction, local_kernel_size, init_values)
            for i in range(depth)
        ])
        self.feature_info = FeatureInfo(
            dict(num_chs=embed_dim, reduction=self.patch_size, temporal_reduction=st, module=f"blocks.{i}")
            for i in range(depth)
        )

        # --- global UniBlocks and multi-stage fusion
        n_query = 1 if fusion == "sequential" else n_global
        self.query = nn.Parameter(torch.zeros(1, n_query, embed_dim))  # zero-initialised (Sec. 3.2)
        gdpr = stochastic_depth_rates(global_drop_path_rate, [n_global])[0]
        mlp_drops = list(global_mlp_dropout) if isinstance(global_mlp_dropout, (list, tuple)) else [global_mlp_dropout] * n_global
        if len(mlp_drops) != n_global:
            raise ValueError(f"global_mlp_dropout has {len(mlp_drops)} values for {n_global} global blocks")
        self.global_blocks = nn.ModuleList([
            GlobalUniBlock(embed_dim, global_num_heads or num_heads, global_mlp_ratio, mlp_drops[j], gdpr[j],
                           InplaceQuickGELU, factorized_attn=global_attn == "factorized")
            for j in range(n_global)
        ])
        if fusion == "parallel":
            # U_F: Concat(X^G_1..X^G_N) -> C. Initialised to the mean of the stage tokens: a zero
            # U_F would, together with the zero-initialised global blocks, receive no gradient.
            self.fusion_proj = Linear(n_global * embed_dim, embed_dim)
            with torch.no_grad():
                self.fusion_proj.weight.copy_(torch.eye(embed_dim).repeat(1, n_global) / n_global)
                self.fusion_proj.bias.zero_()
        else:
            self.fusion_proj = None
        # Z = sigmoid(alpha) * F + (1 - sigmoid(alpha)) * F_C, alpha per channel, init 0 (Sec. 3.3).
        self.alpha = None if frozen else nn.Parameter(torch.zeros(embed_dim))
        self.fc_norm = nn.LayerNorm(embed_dim)
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = create_classifier(embed_dim, num_classes)

        self._init_backbone()
        if frozen:
            self.freeze_backbone()
        if grad_checkpointing:
            self.set_grad_checkpointing(True if checkpoint_num is None else int(checkpoint_num))

    def _init_backbone(self) -> None:
        # timm's ViT init for a model trained from scratch; new modules keep their own inits
        # (zero U / out-projections / query / alpha, the authors' Xavier in the global blocks).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for blk in self.blocks:
            for m in (blk.norm1, blk.attn, blk.norm2, blk.mlp):
                m.apply(trunc_normal_init)

    # ------------------------------------------------------------------ helpers
    def backbone_parameter_names(self) -> list[str]:
        """Parameters of the image ViT (what ``frozen`` freezes; LT-MHRA excluded)."""
        names = []
        for n, _ in self.named_parameters():
            if n.startswith(("patch_embed.", "cls_token", "pos_embed", "norm_pre.")) or (
                n.startswith("blocks.") and ".lmhra" not in n
            ):
                names.append(n)
        return names

    def freeze_backbone(self, freeze: bool = True) -> None:
        """Train only the new modules (LT-MHRA, global UniBlocks, fusion, head)."""
        names = set(self.backbone_parameter_names())
        for n, p in self.named_parameters():
            if n in names:
                p.requires_grad_(not freeze)

    @property
    def backbone_frozen(self) -> bool:
        names = set(self.backbone_parameter_names())
        return not any(p.requires_grad for n, p in self.named_parameters() if n in names)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "query", "alpha"}

    def _stage_depths(self) -> tuple[int, ...]:
        return (len(self.blocks),)

    def _on_grad_checkpointing(self) -> None:
        # The blocks recompute their attention/FFN branches (the LT-MHRA updates stay recorded).
        for i, blk in enumerate(self.blocks):
            blk.grad_checkpointing = i < self.grad_checkpointing[0]

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        if tuple(grid) == self.grid_size:
            return self.pos_embed
        return resample_pos_embed(self.pos_embed, grid, self.grid_size, self.num_prefix_tokens)

    def _check(self, x: torch.Tensor) -> None:
        p = self.patch_size
        check_input(x, ndim=5, channels=self.in_chans, multiple_of=(p, p), min_size=(1, p, p),
                    layout="(B, C, T, H, W)", model=getattr(self, "model_name", type(self).__name__))

    # ------------------------------------------------------------------ forward
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, int, tuple[int, int]]:
        """Video ``(B, C, T, H, W)`` -> per-frame tokens ``(B*T', 1 + H'*W', C)`` after ``ln_pre``."""
        self._check(x)
        grid_cl = self.patch_embed(x)  # (B, T', H', W', C)
        B, T, Hp, Wp, C = grid_cl.shape
        tokens = grid_cl.reshape(B * T, Hp * Wp, C)
        cls = self.cls_token.to(tokens.dtype)
        if _records_grad(tokens, cls) or torch.jit.is_tracing() or torch.compiler.is_compiling():
            # (a traced slice write would bake the example batch size into the graph)
            out = torch.cat([cls.expand(B * T, -1, -1), tokens], dim=1)
            out = out + self.pos_embed_for((Hp, Wp)).to(tokens.dtype)
        else:  # one buffer, no concatenation copy
            out = torch.empty(B * T, Hp * Wp + 1, C, dtype=tokens.dtype, device=tokens.device)
            out[:, :1] = cls
            out[:, 1:] = tokens
            out += self.pos_embed_for((Hp, Wp)).to(tokens.dtype)
        return self.norm_pre(out), T, (Hp, Wp)

    def _forward_blocks(self, x: torch.Tensor, take: Sequence[int] = (), channels_first: bool = True,
                        stop: int | None = None, contexts: bool = True):
        """Embedding and blocks ``0..stop``: the contexts of the global UniBlocks (``contexts``) and, for
        the blocks in ``take``, (map ``(B, C, T', H', W')``, per-frame class tokens ``(B, T', C)``)."""
        B = x.shape[0]
        no_backbone_grad = self.frozen and self.local_mhra == "none" and self.backbone_frozen
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and not no_backbone_grad):
            x, frames, grid = self.embed(x)
        last = self.num_blocks - 1 if stop is None else min(stop, self.num_blocks - 1)
        ctxs: list[torch.Tensor] = []
        feats: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i in range(last + 1):
            with torch.set_grad_enabled(grad and not no_backbone_grad):
                x = self.blocks[i](x, frames)
            if i in take:
                L, C = x.shape[1:]
                tok = x.view(B, frames, L, C)
                f, cont = take_map(tok[:, :, 1:].reshape(B, frames, *grid, C), channels_first)
                feats.append((f, tok[:, :, 0]))
                x = torch.cat([tok[:, :, :1], cont.reshape(B, frames, -1, C)], dim=2).view(B * frames, L, C)
            if contexts:
                j = self._stage_of.get(i)
                if j is not None:
                    ctxs.append(self.global_blocks[j].context(x, frames, grid))
                elif i == self.depth - 1:  # F_C reads the last block's class tokens
                    ctxs.append(x.view(B, frames, *x.shape[1:]))
        return ctxs, feats

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Video -> the contexts ``X^C`` the global UniBlocks attend to, ``(B, S, T', 1 + H'*W', C)``."""
        return torch.stack(self._forward_blocks(x)[0], dim=1)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              output_fmt: str = "NCTHW", intermediates_only: bool = False,
                              return_prefix_tokens: bool = False):
        """Backbone block outputs as ``(B, C, T', H', W')`` maps; with ``return_prefix_tokens`` each entry is
        ``(map, per-frame class tokens (B, T', C))``. ``norm`` is accepted for the contract: the backbone
        has no final norm on its tokens (CLIP's ``ln_post`` is not used)."""
        cf = check_output_fmt(output_fmt, video=True)
        take, last = feature_take_indices(self.num_blocks, indices)
        ctxs, feats = self._forward_blocks(x, take, cf, last if intermediates_only else None,
                                           contexts=not intermediates_only)
        out = [f if not return_prefix_tokens else (f, p) for f, p in feats]
        if intermediates_only:
            return out
        return torch.stack(ctxs, dim=1), out

    def prune_intermediate_layers(self, indices: int | Sequence[int] | None = None, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Keep the blocks up to the last index; the global UniBlocks and the classifier go (the video
        token needs blocks that are pruned), so only ``forward_intermediates`` remains."""
        take, last = feature_take_indices(self.num_blocks, indices)
        self.blocks = self.blocks[: last + 1]
        self.num_blocks = last + 1
        self.grad_checkpointing = (min(self.grad_checkpointing[0], last + 1),)
        self.global_blocks = nn.ModuleList()
        self._stage_of = {}
        self.fusion_proj = None
        self.reset_classifier(0)
        return take

    def _global_step(self, j: int, ctx: torch.Tensor, state: dict) -> None:
        g = self.global_blocks[j]
        B = ctx.shape[0]
        if self.fusion == "sequential":
            state["q"] = g(state["q"], ctx)
            return
        q_j = self.query[:, j : j + 1].repeat(B, 1, 1)
        prev = state.get("prev")
        if self.fusion == "parallel":
            state.setdefault("outs", []).append(g(q_j, ctx))
        elif self.fusion == "hierarchical_kv":  # X^G_i = G_i(q_i, [X^G_{i-1}, X^L_i])
            state["prev"] = g(q_j, ctx, extra_context=prev)
        else:  # hierarchical_q: X^G_i = G_i([X^G_{i-1}, q_i], X^L_i), the two outputs averaged
            qs = q_j if prev is None else torch.cat([prev, q_j], dim=1)
            state["prev"] = g(qs, ctx).mean(1, keepdim=True)

    def _video_token(self, state: dict) -> torch.Tensor:
        if self.fusion == "sequential":
            return state["q"][:, 0]
        if self.fusion == "parallel":
            return self.fusion_proj(torch.cat([o[:, 0] for o in state["outs"]], dim=-1))
        return state["prev"][:, 0]

    def forward_fusion(self, x: torch.Tensor) -> torch.Tensor:
        """Global UniBlocks over the contexts ``x`` (from :meth:`forward_features`) and the multi-stage
        fusion (Sec. 3.3): ``Z = alpha * F + (1 - alpha) * F_C`` (``F`` alone when ``frozen``), ``(B, C)``."""
        return self._fuse(x.unbind(1))

    def _fuse(self, ctxs: Sequence[torch.Tensor]) -> torch.Tensor:
        if not len(self.global_blocks):
            raise RuntimeError("this UniFormerV2 was pruned to its backbone: use forward_intermediates")
        B = ctxs[0].shape[0]
        state: dict = {"q": self.query.repeat(B, 1, 1)}  # a copy: module inputs must not be views of leaves
        for j in range(len(self.global_blocks)):
            self._global_step(j, ctxs[j], state)
        video = self._video_token(state)
        if self.alpha is not None:
            frame_cls = ctxs[-1][:, :, 0].mean(1).to(video.dtype)  # F_C (DPE leaves the class tokens alone)
            video = torch.lerp(frame_cls, video, torch.sigmoid(self.alpha).to(video.dtype))
        return video

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """:meth:`forward_fusion`, then ``LN -> dropout -> Linear``."""
        x = self.head_drop(self.fc_norm(self.forward_fusion(x)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # forward_head(forward_features(x)) without stacking the contexts into one tensor (a copy)
        z = self._fuse(self._forward_blocks(x)[0])
        x = self.head_drop(self.fc_norm(z))
        return self.head(x)

    # ------------------------------------------------------------------ checkpoints
    def convert_state_dict(self, sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The authors' / MMAction2 / image-ViT / our layout -> ours, fitted to this model.

        - PySlowFast ``.pyth`` (flat ``backbone.*``; ``model_state`` is unwrapped by the loader):
          ``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre``,
          ``transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc,
          mlp.c_proj, lmhra{1,2}.pos_embed.{0,1,2,3}}``, ``transformer.temporal_cls_token``,
          ``transformer.dpe.J``, ``transformer.dec.J.{attn.in_proj_*, attn.out_proj, ln_1,
          ln_3, ln_2, mlp.c_fc, mlp.c_proj}``, ``transformer.balance`` (our ``alpha =
          -balance``: the authors weight the class-token path by ``sigmoid(balance)``),
          ``transformer.proj.{0,2}`` (LayerNorm, Linear).
        - MMAction2: ``backbone.transformer.norm`` (our ``fc_norm``) and ``cls_head.fc_cls``.
        - An image ViT (OpenAI CLIP, HF CLIP, timm/DeiT, ours): its image-only parts (final norm,
          ``proj``, image classifier) are dropped and the 2-D patch kernel is inflated on the
          central frame (Sec. 3; ``frames`` of zeros around it) when the model downsamples in time.
        - The positional embedding is resampled to this model's grid.
        """
        sd = dict(sd)
        if any(k.startswith("backbone.") for k in sd):  # authors' .pyth / MMAction2, not flattened by the loader
            sd = {
                (k[len("backbone."):] if k.startswith("backbone.")
                 else self.head_prefix + k[len("cls_head.fc_cls."):] if k.startswith("cls_head.fc_cls.") else k): v
                for k, v in sd.items()
            }
        video_keys = ("transformer.dec.", "transformer.dpe.", "transformer.temporal_cls_token", "transformer.balance",
                      "transformer.proj.", "transformer.norm.", "global_blocks.", "query", "alpha", "fc_norm.")
        is_image = not any(k.startswith(video_keys) for k in sd)

        out: dict[str, torch.Tensor] = {}
        rest: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            if k == "transformer.temporal_cls_token":
                out["query"] = v.reshape(1, -1, v.shape[-1])
            elif k == "transformer.balance":
                out["alpha"] = -v
            elif k.startswith("transformer.proj.0."):
                out["fc_norm." + k.rsplit(".", 1)[1]] = v
            elif k.startswith("transformer.proj.2."):
                out[self.head_prefix + k.rsplit(".", 1)[1]] = v
            elif k.startswith("transformer.norm."):
                out["fc_norm." + k.rsplit(".", 1)[1]] = v
            elif m := re.match(r"transformer\.dpe\.(\d+)\.(weight|bias)$", k):
                out[f"global_blocks.{m.group(1)}.dpe.{m.group(2)}"] = v
            elif m := re.match(r"transformer\.dec\.(\d+)\.(.+)$", k):
                j, name = m.groups()
                pre = f"global_blocks.{j}."
                if name in ("attn.in_proj_weight", "attn.in_proj_bias"):
                    leaf = name.rsplit("_", 1)[1]
                    d = v.shape[0] // 3
                    out[pre + "attn.q." + leaf] = v[:d]
                    out[pre + "attn.kv." + leaf] = v[d:]
                else:
                    for src, dst in (("attn.out_proj.", "attn.proj."), ("ln_1.", "norm_q."), ("ln_3.", "norm_kv."),
                                     ("ln_2.", "norm2."), ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")):
                        if name.startswith(src):
                            out[pre + dst + name[len(src):]] = v
                            break
                    else:
                        out[k] = v
            elif m := re.match(r"transformer\.resblocks\.(\d+)\.(lmhra[12])\.pos_embed\.(\d)\.(.+)$", k):
                i, which, idx, leaf = m.groups()
                name = {"0": "norm", "1": "v", "2": "affinity", "3": "u"}[idx]
                if name in ("v", "u") and leaf == "weight":
                    v = v.reshape(v.shape[0], v.shape[1])
                out[f"blocks.{i}.{which}.{name}.{leaf}"] = v
            else:
                rest[k] = v
        out.update(convert_vit_state_dict(rest))

        if is_image:  # image classifier, final norm and CLIP projection have no place in the video model
            for k in [k for k in out if k.startswith(("head.", "norm.", "embed_proj.", "fc_norm.", "head_dist."))]:
                del out[k]
        if "pos_embed" in out and out["pos_embed"].shape[1] != self.pos_embed.shape[1]:
            out["pos_embed"] = resample_pos_embed(out["pos_embed"], self.grid_size, None, self.num_prefix_tokens)
        w = out.get("patch_embed.proj.weight")
        kt = self.patch_embed.patch_size[0]
        if w is not None and w.ndim == 5 and w.shape[2] == 1:
            w = w[:, :, 0]
        if w is not None and w.ndim == 4:
            # Central-frame inflation (Sec. 3): identical to the image model on the sampled frames.
            out["patch_embed.proj.weight"] = inflate_weight(w, kt, "center")
        elif w is not None and w.shape[2] != kt:
            raise ValueError(f"cannot map a patch kernel with {w.shape[2]} time steps onto one with {kt}")
        if "query" in out and out["query"].shape != self.query.shape and self.query.shape[1] > 1 and out["query"].shape[1] == 1:
            out["query"] = out["query"].expand_as(self.query).clone()  # sequential checkpoint -> one query per stage
        if self.alpha is None:
            out.pop("alpha", None)
        return out

    @classmethod
    def from_vit(cls, vit: nn.Module, **kwargs) -> "UniFormerV2":
        """Arm an image :class:`~videoformers.models.vit.VisionTransformer` (any flavour, with its
        weights) as UniFormerV2: the video model gets the ViT's architecture and weights, the
        new modules their zero-initialised state, so every frame's class token after the last
        block equals the image model's for that frame (Sec. 3; with temporal downsampling, for
        the frames the central-frame kernel samples). ``kwargs`` are the video options
        (``local_mhra``, ``temporal_downsample``, ``global_layers``, ``num_classes``, ...).
        """
        blk = vit.blocks[0]
        act = blk.mlp.act
        arch = dict(
            img_size=vit.img_size, patch_size=vit.patch_size, in_chans=vit.in_chans, embed_dim=vit.embed_dim,
            depth=len(vit.blocks), num_heads=blk.attn.num_heads, mlp_ratio=blk.mlp.fc1.out_features / vit.embed_dim,
            qkv_bias=blk.attn.qkv.bias is not None,
            act_layer="quick_gelu" if isinstance(act, QuickGELU) else "gelu" if isinstance(act, nn.GELU) else type(act),
            norm_eps=blk.norm1.eps, pre_norm=not isinstance(vit.norm_pre, nn.Identity),
            patch_bias=vit.patch_embed.proj.bias is not None,
            init_values=float(blk.ls1.gamma.detach().flatten()[0]) if hasattr(blk.ls1, "gamma") else None,
        )
        arch.update(kwargs)
        model = cls(**arch)
        model.load_image_pretrained(vit.state_dict())
        return model

    def load_image_pretrained(self, source, strict: bool = True):
        """Initialise the backbone from an image-ViT checkpoint (CLIP, HF CLIP, timm, DeiT).

        Every image-ViT tensor must be used and only the new video modules (LT-MHRA, global
        UniBlocks, query, fusion, head) may stay at their initialisation; ``strict`` raises
        :class:`videoformers.CheckpointError` otherwise. Returns the :class:`LoadReport`.
        """
        from ..checkpoints import CheckpointError, load_checkpoint

        report = load_checkpoint(self, source, strict=False, inflate="center", min_loaded=0.2)  # the video modules are new
        new = ("blocks.", "global_blocks.", "query", "alpha", "fusion_proj.", "fc_norm.", "head.")
        bad_missing = [k for k in report.missing if not k.startswith(new) or (k.startswith("blocks.") and ".lmhra" not in k)]
        if strict and (bad_missing or report.unexpected or report.mismatched):
            raise CheckpointError(f"image checkpoint does not fit the UniFormerV2 backbone:\n{report}", report)
        return report


# --------------------------------------------------------------------------- presets and builders
#: Architecture presets of the two released model families (the word "recipe" is kept for the YAML
#: training configurations).
PRESETS: dict[str, dict] = {
    # Every released Kinetics-400/600/700/710 and MiT model (the authors' run.sh files).
    "kinetics": dict(local_mhra="none", temporal_downsample=False, global_layers=4, drop_path_rate=0.0,
                     global_drop_path_rate=0.0),
    # Something-Something V1/V2: "all designs", global blocks on the last 8 (B) / 16 (L) layers.
    "ssv2": dict(local_mhra="double", temporal_downsample=True, global_layers="two_thirds", drop_path_rate=0.2,
                 global_drop_path_rate=0.4),
}


def preset_config(preset: str | None, depth: int) -> dict:
    """The arguments a named preset sets (``None``: none), for a backbone of ``depth`` blocks."""
    if preset is None:
        return {}
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or None")
    cfg = dict(PRESETS[preset])
    if cfg.get("global_layers") == "two_thirds":
        cfg["global_layers"] = depth * 2 // 3
    return cfg


def _create(model_args: dict, preset: str | None, kwargs: dict) -> UniFormerV2:
    """``model_args`` (the image ViT and the input) plus the preset's arguments, the user's on top."""
    depth = kwargs.get("depth", model_args["depth"])
    return build_model(UniFormerV2, {**model_args, **preset_config(preset, depth)}, kwargs)


_PAPER = "UniFormerV2 (Li et al., ICLR 2023, arXiv 2211.09552)"
_NOTE_K = ("Kinetics preset (no local UniBlocks, no temporal downsampling, global UniBlocks on the last 4 "
           "layers): every released Kinetics/MiT/K710 model. Params/GFLOPs are the authors' model measured "
           "(per view; the paper prints GFLOPs x 3 crops x 4 clips). Input normalised with mean 0.45 / std 0.225.")
_NOTE_S = ("Something-Something preset (double local UniBlocks, 3x16x16 temporal downsampling, global UniBlocks "
           "on the last 2/3 of the layers, drop path 0.2/0.4). Params/GFLOPs are the authors' model measured "
           "(per view; the paper prints x 3 crops x 1 clip).")


def _card(name, frames, size, classes, params, gflops, notes, extra=()) -> ModelCard:
    return ModelCard(name=name, family="uniformerv2", paper=_PAPER, table="Tables 1-4 (authors' released configs)",
                     input_size=(3, frames, size, size), num_classes=classes, mean=KINETICS_MEAN, std=KINETICS_STD,
                     paper_params_m=params, paper_gflops=gflops, notes=notes, extra_flops=extra)


_B16 = dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12)
_L14 = dict(img_size=224, patch_size=14, embed_dim=1024, depth=24, num_heads=16)


@register_model(_card("uniformerv2_b16", 8, 224, 400, 114.6, 148.1, _NOTE_K,
                      extra=(((3, 16, 224, 224), 296.2), ((3, 32, 224, 224), 592.4))))
def uniformerv2_b16(preset: str | None = "kinetics", **kwargs) -> UniFormerV2:
    """UniFormerV2-B/16: CLIP ViT-B/16 armed; Kinetics preset by default (``preset="ssv2"`` for the other)."""
    return _create(dict(**_B16, num_frames=8), preset, kwargs)


@register_model(_card("uniformerv2_l14", 8, 224, 400, 354.1, 665.6, _NOTE_K,
                      extra=(((3, 16, 224, 224), 1331.2), ((3, 32, 224, 224), 2662.4))))
def uniformerv2_l14(preset: str | None = "kinetics", **kwargs) -> UniFormerV2:
    """UniFormerV2-L/14: CLIP ViT-L/14 armed; Kinetics preset by default."""
    return _create(dict(**_L14, num_frames=8), preset, kwargs)


@register_model(_card("uniformerv2_l14_336", 8, 336, 400, 354.4, 1567.0, _NOTE_K + " 32x336: 6268 GFLOPs.",
                      extra=(((3, 32, 336, 336), 6268.0), ((3, 64, 336, 336), 12535.6))))
def uniformerv2_l14_336(preset: str | None = "kinetics", **kwargs) -> UniFormerV2:
    """UniFormerV2-L/14@336: CLIP ViT-L/14@336px armed; Kinetics preset by default."""
    return _create(dict(**_L14, num_frames=8) | dict(img_size=336), preset, kwargs)


@register_model(_card("uniformerv2_b16_ssv2", 16, 224, 174, 163.0, 187.2, _NOTE_S,
                      extra=(((3, 32, 224, 224), 374.4),)))
def uniformerv2_b16_ssv2(preset: str | None = "ssv2", **kwargs) -> UniFormerV2:
    """UniFormerV2-B/16 with the Something-Something preset (16 frames -> 8 after the 3x16x16 embedding)."""
    return _create(dict(**_B16, num_frames=16, num_classes=174), preset, kwargs)


@register_model(_card("uniformerv2_l14_ssv2", 16, 224, 174, 573.9, 858.2, _NOTE_S,
                      extra=(((3, 32, 224, 224), 1716.2),)))
def uniformerv2_l14_ssv2(preset: str | None = "ssv2", **kwargs) -> UniFormerV2:
    """UniFormerV2-L/14 with the Something-Something preset (global UniBlocks on the last 16 layers)."""
    return _create(dict(**_L14, num_frames=16, num_classes=174), preset, kwargs)
