"""Batch-level Mixup (Zhang et al. 2018) / CutMix (Yun et al. 2019) with label smoothing, for video.

CutMix cuts the same spatial box out of every frame (the "tube" is the whole clip), so the label
weight is the box's area fraction. This is the DeiT/timm recipe the papers' training code uses
(UniFormer: mixup 0.8, cutmix 1.0, label smoothing 0.1 on Something-Something).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["MixupCutmix", "one_hot_smooth"]


def one_hot_smooth(y: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Label-smoothed one-hot rows: ``1 - smoothing + smoothing / K`` on the label, ``smoothing / K`` elsewhere
    (rows sum to 1)."""
    if y.dim() != 1:
        raise ValueError(f"labels must be (B,) class indices, got shape {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got min {int(y.min())} max {int(y.max())}")
    off = smoothing / num_classes
    out = torch.full((y.shape[0], num_classes), off, dtype=torch.float32, device=y.device)
    out.scatter_(1, y.long().view(-1, 1), 1.0 - smoothing + off)
    return out


class MixupCutmix:
    """``(x: (B, C, T, H, W), y: (B,) long) -> (x_mixed, y_soft (B, num_classes))``.

    With probability ``prob`` the batch is mixed with its reverse (one ``lambda`` per batch): CutMix with
    probability ``switch_prob`` when both alphas are > 0, Mixup otherwise. Labels are smoothed by
    ``label_smoothing`` and mixed with the same weight, so every row of ``y_soft`` sums to 1.
    ``cutmix_minmax`` (optional) bounds the box side as a fraction of the frame instead of drawing the
    area from Beta(alpha, alpha).
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 1000,
        cutmix_minmax: tuple[float, float] | None = None,
        generator: torch.Generator | None = None,
    ):
        if num_classes is None or int(num_classes) < 1:
            raise ValueError("MixupCutmix needs num_classes >= 1")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0")
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.prob = float(prob)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)
        self.cutmix_minmax = cutmix_minmax
        self.generator = generator

    def _rand(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _beta(self, alpha: float) -> float:
        # torch has no generator-aware Beta sampler; Beta(a, a) = Ga / (Ga + Gb) with Gamma(a, 1) draws.
        seed = int(torch.randint(0, 2**31 - 1, (), generator=self.generator))
        return float(np.random.default_rng(seed).beta(alpha, alpha))

    def _box(self, H: int, W: int, lam: float) -> tuple[int, int, int, int]:
        if self.cutmix_minmax is not None:
            lo, hi = self.cutmix_minmax
            ch = int(H * (lo + (hi - lo) * self._rand()))
            cw = int(W * (lo + (hi - lo) * self._rand()))
            cy = int(self._rand() * (H - ch + 1))
            cx = int(self._rand() * (W - cw + 1))
            return cy, cy + ch, cx, cx + cw
        ratio = math.sqrt(1.0 - lam)
        ch, cw = int(H * ratio), int(W * ratio)
        cy, cx = int(self._rand() * H), int(self._rand() * W)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, H)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, W)
        return y0, y1, x0, x1

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 5:
            raise ValueError(f"MixupCutmix expects a batch (B, C, T, H, W), got shape {tuple(x.shape)}")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must be (B,) = ({x.shape[0]},), got shape {tuple(y.shape)}")
        y1 = one_hot_smooth(y, self.num_classes, self.label_smoothing)
        lam = 1.0
        active = (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self._rand() < self.prob
        if active and x.shape[0] > 1:
            use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or self._rand() < self.switch_prob)
            x_rev = x.flip(0)
            if use_cutmix:
                lam = self._beta(self.cutmix_alpha) if self.cutmix_minmax is None else 0.0
                H, W = x.shape[-2:]
                y0, y1_, x0, x1 = self._box(H, W, lam)
                x = x.clone()
                x[..., y0:y1_, x0:x1] = x_rev[..., y0:y1_, x0:x1]
                lam = 1.0 - (y1_ - y0) * (x1 - x0) / float(H * W)  # the area actually pasted
            else:
                lam = self._beta(self.mixup_alpha)
                x = x * lam + x_rev * (1.0 - lam)
        y_soft = y1 * lam + y1.flip(0) * (1.0 - lam)
        return x, y_soft

    def __repr__(self) -> str:
        return (f"MixupCutmix(mixup_alpha={self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha}, prob={self.prob}, "
                f"switch_prob={self.switch_prob}, label_smoothing={self.label_smoothing}, num_classes={self.num_classes})")
