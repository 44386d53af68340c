"""Light-weight UniFormer: the hourglass H-UniFormer block, UniFormer-XXS / -XS (TPAMI Sec. 5).

The **H-UniFormer block** (TPAMI Sec. 5.1) shrinks the tokens that go through global MHRA and FFN
and recovers them afterwards, so that stages 3-4 cost roughly half:

1. a learnable **score token** ``s`` joins the tokens; its attention to token ``j``, averaged over
   heads, is the importance ``A_j`` (Eq. 9). From the second block of stage 3 on the importance is a
   running mean with the previous block's, ``A = (1 - m) A_pre + m A`` with ``m = 0.5``
   (``A = (A + A_pre) / 2``);
2. **token shrinking**: the top ``ratio * N`` tokens (0.5 by default) are kept, the rest are fused
   into one *representative token* weighted by their scores;
3. global MHRA and FFN run on ``[s; kept; representative]``;
4. **token recovering**: the kept tokens return to their positions and every dropped token receives
   the representative token's update, so the spatiotemporal layout is intact for the next DPE.

The score token passes through all blocks of stages 3-4 (a linear layer widens it between
stages) and has its own classifier. In training the model returns ``(logits, score_logits)``
and both are supervised (the engine sums the two cross-entropies, as the authors' training
does); in eval it returns ``logits``.

Everything is batched (``argsort`` + ``gather``/``scatter``); the score token's attention row is
computed from the same q/k as the fused SDPA call, so no attention matrix is materialised.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ..ops import Linear
from ..registry import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD, ModelCard, build_model, register_model
from .layers import LayerScale, create_classifier, trunc_normal_init
from .uniformer import BlockType, GlobalUniFormerBlock, UniFormer

__all__ = ["HUniFormerBlock", "HUniFormer"]


def _gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class HUniFormerBlock(GlobalUniFormerBlock):
    """Hourglass UniFormer block (TPAMI Sec. 5.1): global MHRA + FFN on shrunk tokens, then recovery.

    ``shrink_ratio=1`` keeps every token: the block is then a plain global UniFormer block on
    ``[s; X]`` that also (re)computes the scores. ``fast_update_scale`` selects how layer scale
    applies to the update broadcast to dropped tokens: ``"gamma_3"`` (a separate gamma ``ls3``, the
    authors' image code) or ``"branch"`` (the two branch gammas, the authors' video code).
    """

    def __init__(self, dim: int, dims: int, num_heads: int, mlp_ratio: float = 3.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, layer_scale_init_value: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, shrink_ratio: float = 0.5, score_momentum: float = 0.5,
                 pool_scores: bool = False, fast_update_scale: str = "gamma_3") -> None:
        super().__init__(dim, dims, num_heads, mlp_ratio, qkv_bias, drop_path, layer_scale_init_value, drop, attn_drop)
        if not 0.0 < shrink_ratio <= 1.0:
            raise ValueError(f"shrink_ratio must be in (0, 1], got {shrink_ratio}")
        self.shrink_ratio = float(shrink_ratio)
        self.score_momentum = float(score_momentum)
        self.pool_scores = pool_scores
        self.dims = dims
        self.fast_update_scale = fast_update_scale
        if layer_scale_init_value is not None and shrink_ratio < 1.0 and fast_update_scale == "gamma_3":
            self.ls3: nn.Module | None = LayerScale(dim, layer_scale_init_value)
        else:
            self.ls3 = None

    def _attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MHRA output and the score token's (index 0) attention row, averaged over heads (Eq. 9)."""
        a = self.attn
        B, N, _ = x.shape
        q, k, v = a.qkv(x).view(B, N, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=a.attn_drop if self.training else 0.0, scale=a.scale)
        out = a.proj_drop(a.proj(out.transpose(1, 2).reshape(B, N, a.num_heads * a.head_dim)))
        # One query row, in at least fp32 (the authors compute attention with autocast disabled).
        dt = torch.promote_types(q.dtype, torch.float32)
        row = (q[:, :, :1].to(dt) @ k.to(dt).transpose(-2, -1)) * a.scale
        return out, row.softmax(-1).mean(1).squeeze(1)

    def _branches(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both residual branches on ``seq``; returns (new seq, score row, update of the last token)."""
        y, row = self._attention(self.norm1(seq))
        fast = self.ls1(y[:, -1:]) if self.fast_update_scale == "branch" else y[:, -1:]
        seq = seq + self.drop_path1(self.ls1(y))
        z = self.mlp(self.norm2(seq))
        fast = fast + (self.ls2(z[:, -1:]) if self.fast_update_scale == "branch" else z[:, -1:])
        seq = seq + self.drop_path2(self.ls2(z))
        return seq, row, fast

    def forward(self, x: torch.Tensor, score_token: torch.Tensor, scores: torch.Tensor | None):  # type: ignore[override]
        """``x``: channels-last grid ``(B, *S, C)``; ``score_token`` ``(B, 1, C)``; ``scores`` ``(B, N)``
        or None (first block). Returns the updated grid, score token and scores."""
        x = self.pos_embed(x)
        B, *S, C = x.shape
        tokens = x.reshape(B, -1, C)
        N = tokens.shape[1]
        m = self.score_momentum
        if self.shrink_ratio >= 1.0 or scores is None:
            seq, row, _ = self._branches(torch.cat([score_token, tokens], 1))
            new = row[:, 1:]
            scores = new if scores is None else (1 - m) * scores + m * new
            score_token, tokens = seq[:, :1], seq[:, 1:]
        else:
            n_keep = int(N * self.shrink_ratio)
            order = scores.argsort(dim=1, descending=True)
            keep, drop = order[:, :n_keep], order[:, n_keep:]
            dropped = _gather_tokens(tokens, drop)
            w = scores.gather(1, drop)
            representative = (w / w.sum(1, keepdim=True)).unsqueeze(-1).mul(dropped).sum(1, keepdim=True)
            seq, row, fast = self._branches(torch.cat([score_token, _gather_tokens(tokens, keep), representative], 1))
            if self.ls3 is not None:
                fast = self.ls3(fast)
            # Recovery: dropped tokens get the representative token's update, kept ones return home.
            # (under autocast the branch outputs may come back in another dtype than the tokens)
            tokens = (tokens + fast).scatter(1, keep.unsqueeze(-1).expand(-1, -1, C), seq[:, 1:-1].to(tokens.dtype))
            kept_scores = (1 - m) * scores.gather(1, keep) + m * row[:, 1:-1].to(scores.dtype)
            scores = scores.scatter(1, keep, kept_scores)
            score_token = seq[:, :1]
        x = tokens.view(B, *S, C)
        if self.pool_scores:
            # Stage 3 -> 4: average-pool the score map like the 2x2 patch merging, keeping its sum.
            total = scores.sum(1, keepdim=True)
            grid = scores.view(B, 1, *S)
            pooled = F.avg_pool3d(grid, (1, 2, 2)) if self.dims == 3 else F.avg_pool2d(grid, 2)
            scores = pooled.flatten(1)
            scores = scores * (total / scores.sum(1, keepdim=True))
        return x, score_token, scores


class HUniFormer(UniFormer):
    """Light-weight UniFormer (TPAMI Sec. 5.2, Tables 11-12): UniFormer stages 1-2 with a conv stem,
    H-UniFormer blocks in stages 3-4, a score token with its own head."""

    classifier_prefixes = ("head.", "head_cls.")  # the distillation-token classifier

    export_note = ("models that pick tokens by score (H-UniFormer's token shrinking) break exact ties "
                   "differently in onnxruntime, and untrained weights make ties")

    def __init__(self, dims: int = 3, num_classes: int = 400, depth: Sequence[int] = (2, 5, 8, 2),
                 embed_dim: Sequence[int] = (56, 112, 224, 448), head_dim: int = 28,
                 mlp_ratio: float | Sequence[float] = 3.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, shrink_ratio: float = 0.5,
                 score_momentum: float = 0.5, layer_scale_init_value: float | None = None,
                 fast_update_scale: str = "gamma_3", in_chans: int = 3, num_frames: int | None = None,
                 img_size: int | Sequence[int] = 224, dense: bool = False) -> None:
        # Read by _make_block, which the base constructor calls: plain attributes may precede Module.__init__.
        self.shrink_ratio, self.score_momentum, self.fast_update_scale = shrink_ratio, score_momentum, fast_update_scale
        super().__init__(dims=dims, num_classes=num_classes, in_chans=in_chans, depth=depth, embed_dim=embed_dim,
                         head_dim=head_dim, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, conv_stem=True,
                         layer_scale_init_value=layer_scale_init_value, num_frames=num_frames, img_size=img_size)
        # The score token s (Sec. 5.1): learnable, widened between stages 3 and 4, own classifier.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim[2]))
        self.cls_upsample = Linear(embed_dim[2], embed_dim[3])
        self.norm_cls = nn.LayerNorm(embed_dim[3])
        self.head_cls = create_classifier(embed_dim[3], num_classes)
        for mod in (self.cls_upsample, self.norm_cls, self.head_cls):
            mod.apply(trunc_normal_init)
        if dense:  # the light dense backbone (see to_dense_backbone), once the score-token parts exist
            self.to_dense_backbone()

    def _make_block(self, stage: int, index: int, kind: BlockType, dim: int, **block_kwargs) -> nn.Module:
        """Stages 1-2 as in UniFormer; stages 3-4 are H-UniFormer blocks (Sec. 5.1). The first block of
        stage 3 has no scores yet and keeps every token; the last one pools the scores for stage 4."""
        if stage < 2:
            return super()._make_block(stage, index, kind, dim, **block_kwargs)
        del block_kwargs["window_size"]  # always None: H-UniFormer has no windowed stage 3
        return HUniFormerBlock(
            dim, self.dims, **block_kwargs, shrink_ratio=1.0 if (stage, index) == (2, 0) else self.shrink_ratio,
            score_momentum=self.score_momentum, pool_scores=(stage == 2 and index == self.depth[2] - 1),
            fast_update_scale=self.fast_update_scale,
        )

    def no_weight_decay(self) -> set[str]:
        return {"cls_token"}

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        self.head_cls = create_classifier(self.num_features, num_classes, like=self.cls_token)

    def _run_hourglass(self, s: int, x: torch.Tensor, token: torch.Tensor, scores):
        n_ckpt = self.grad_checkpointing[s]
        for i, blk in enumerate(getattr(self, f"blocks{s + 1}")):
            if i < n_ckpt and torch.is_grad_enabled():
                x, token, scores = cp.checkpoint(blk, x, token, scores, use_reentrant=False)
            else:
                x, token, scores = blk(x, token, scores)
        return x, token, scores

    def _forward_stages(self, x: torch.Tensor, take=(), channels_first: bool = True, stop: int = 3,
                        return_score_token: bool = False):
        """As :meth:`UniFormer._forward_stages`; stages 3-4 carry the score token and the token scores."""
        self._check(x)
        feats: list[torch.Tensor] = []
        x = self.pos_drop(self.patch_embed1(x))
        token = scores = None
        for s in range(min(stop, self.num_stages - 1) + 1):
            if s:
                x = getattr(self, f"patch_embed{s + 1}")(x.movedim(-1, 1))
            if s < 2:
                x = self._run_stage(s, x)
            else:
                if s == 2:
                    # A copy, not an expand view: no-grad views of a parameter still report requires_grad.
                    token = self.cls_token.repeat(x.shape[0], 1, 1)
                else:
                    token = self.cls_upsample(token)
                x, token, scores = self._run_hourglass(s, x, token, scores)
            if s in take:
                f, x = self._take(s, x, channels_first)
                feats.append(f)
        return (x, feats, token) if return_score_token else (x, feats)

    def to_dense_backbone(self, out_indices: Sequence[int] | None = None) -> None:
        """The authors' light dense backbone (``object_detection/`` and ``semantic_segmentation/``
        ``.../backbones/uniformer_light.py``): as :meth:`UniFormer.to_dense_backbone` (``norm1`` ..
        ``norm4`` on the stage maps; no final BatchNorm, classifiers or score-token LayerNorm). The score
        token still runs through stages 3-4, since it picks the tokens that are kept (Sec. 5.1)."""
        super().to_dense_backbone(out_indices)
        self.norm_cls = nn.Identity()

    def forward_features(self, x: torch.Tensor, return_score_token: bool = False):  # type: ignore[override]
        """Final feature map after the last BatchNorm (and the score token if asked)."""
        x, _, token = self._forward_stages(x, return_score_token=True)
        feats = self._final_norm(x)
        return (feats, token) if return_score_token else feats

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        feats, token = self.forward_features(x, return_score_token=True)
        logits = self.forward_head(feats)
        if self.training:
            return logits, self.head_cls(self.norm_cls(token.squeeze(1)))
        return logits


# --------------------------------------------------------------------------- builders
_PAPER = "UniFormer (TPAMI 2023, arXiv 2201.09450), Sec. 5 light-weight H-UniFormer"
_VIDEO_NOTE = ("Table 12 params (10.4M / 16.7M) are reproduced with a 1000-class head (10.37M / 16.72M); with "
               "the 400-class Kinetics head the model has 9.83M / 16.10M.")


@register_model(ModelCard(
    name="uniformer_xxs", family="uniformer", paper=_PAPER, table="Table 12 (K400)", input_size=(3, 16, 160, 160),
    num_classes=400, mean=KINETICS_MEAN, std=KINETICS_STD, paper_params_m=10.4, paper_gflops=6.9,
    extra_flops=(((3, 4, 128, 128), 1.0), ((3, 8, 160, 160), 3.3), ((3, 32, 160, 160), 15.4)), notes=_VIDEO_NOTE,
))
def uniformer_xxs(**kwargs) -> HUniFormer:
    """UniFormer-XXS video (depths 2-5-8-2, dims 56-112-224-448, head_dim 28, MLP ratio 3).

    The authors' 4- and 8-frame 128 px configs use ``layer_scale_init_value=0.1``."""
    model_args = dict(dims=3, num_frames=16, img_size=160, depth=(2, 5, 8, 2), embed_dim=(56, 112, 224, 448), head_dim=28,
                      drop_path_rate=0.05, fast_update_scale="branch")
    return build_model(HUniFormer, model_args, kwargs)


@register_model(ModelCard(
    name="uniformer_xs", family="uniformer", paper=_PAPER, table="Table 12 (K400)", input_size=(3, 32, 192, 192),
    num_classes=400, mean=KINETICS_MEAN, std=KINETICS_STD, paper_params_m=16.7, paper_gflops=34.2, notes=_VIDEO_NOTE,
))
def uniformer_xs(**kwargs) -> HUniFormer:
    """UniFormer-XS video (depths 3-5-9-3, dims 64-128-256-512, head_dim 32, MLP ratio 3)."""
    model_args = dict(dims=3, num_frames=32, img_size=192, depth=(3, 5, 9, 3), embed_dim=(64, 128, 256, 512), head_dim=32,
                      drop_path_rate=0.1, fast_update_scale="branch")
    return build_model(HUniFormer, model_args, kwargs)


@register_model(ModelCard(
    name="uniformer_xxs_image", family="uniformer", paper=_PAPER, table="Table 11 (ImageNet-1K)",
    input_size=(3, 224, 224), num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper_params_m=10.2,
    paper_gflops=1.3, extra_flops=(((3, 128, 128), 0.43), ((3, 160, 160), 0.67), ((3, 192, 192), 0.96)),
))
def uniformer_xxs_image(**kwargs) -> HUniFormer:
    """UniFormer-XXS image model."""
    model_args = dict(dims=2, num_classes=1000, depth=(2, 5, 8, 2), embed_dim=(56, 112, 224, 448), head_dim=28,
                      drop_path_rate=0.0, fast_update_scale="gamma_3")
    return build_model(HUniFormer, model_args, kwargs)


@register_model(ModelCard(
    name="uniformer_xs_image", family="uniformer", paper=_PAPER, table="Table 11 (ImageNet-1K)",
    input_size=(3, 224, 224), num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper_params_m=16.5,
    paper_gflops=2.0,
))
def uniformer_xs_image(**kwargs) -> HUniFormer:
    """UniFormer-XS image model."""
    model_args = dict(dims=2, num_classes=1000, depth=(3, 5, 9, 3), embed_dim=(64, 128, 256, 512), head_dim=32,
                      drop_path_rate=0.1, fast_update_scale="gamma_3")
    return build_model(HUniFormer, model_args, kwargs)
