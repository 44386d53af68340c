"""Video transforms on tensors (no torchvision, no PIL).

A clip is ``(C, T, H, W)``; a batch is ``(B, C, T, H, W)`` and may live on the GPU. Every random
transform draws its parameters once per clip and applies them to all ``T`` frames (a flip flips every
frame, a crop cuts the same box out of every frame, RandAugment applies the same ops with the same
magnitudes), as the papers do; on a batch each clip draws its own parameters.

Geometric transforms keep the dtype (``uint8`` in, ``uint8`` out: torch's antialiased uint8 resize is
the fast path on CPU). Photometric transforms work on float in ``[0, 1]`` and convert ``uint8``
themselves. :class:`Normalize` comes last, followed only by :class:`RandomErasing`.

Randomness comes from torch's global RNG (or ``generator=``), which DataLoader seeds per worker.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "Compose",
    "resized_crop",
    "scale_jitter_crop_box",
    "random_resized_crop_box",
    "short_side_crop_boxes",
    "ScaleJitterCrop",
    "RandomResizedCrop",
    "ResizeCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "RandAugment",
    "Normalize",
    "RandomErasing",
    "ToFloat",
    "frames_to_clip",
]

Box = tuple[int, int, int, int]  # top, left, height, width


def _check_clip(x: torch.Tensor, name: str) -> None:
    if x.dim() not in (4, 5):
        raise ValueError(f"{name} expects a clip (C, T, H, W) or a batch (B, C, T, H, W), got shape {tuple(x.shape)}")


def _per_clip(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    if x.dim() == 5:
        return torch.stack([fn(c) for c in x])
    return fn(x)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise ValueError(f"expected uint8 or float pixels, got {x.dtype}")
    return x


def _rand(generator: torch.Generator | None = None) -> float:
    return float(torch.rand((), generator=generator))


def _uniform(a: float, b: float, generator: torch.Generator | None = None) -> float:
    return a + (b - a) * _rand(generator)


def _randint(a: int, b: int, generator: torch.Generator | None = None) -> int:
    """Uniform integer in ``[a, b]`` inclusive."""
    return int(torch.randint(a, b + 1, (), generator=generator))


def frames_to_clip(frames: torch.Tensor) -> torch.Tensor:
    """Decoder output ``(T, H, W, 3)`` -> ``(3, T, H, W)`` (a view, no copy)."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected decoded frames (T, H, W, 3), got shape {tuple(frames.shape)}")
    return frames.permute(3, 0, 1, 2)


class Compose:
    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = [t for t in transforms if t is not None]

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose(\n  {inner}\n)"


class ToFloat:
    """``uint8`` in ``[0, 255]`` -> contiguous float32 in ``[0, 1]``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            return _as_float(x)
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        return out.copy_(x).div_(255.0)

    def __repr__(self) -> str:
        return "ToFloat()"


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------


def resized_crop(x: torch.Tensor, box: Box, size: tuple[int, int] | int, antialias: bool = True) -> torch.Tensor:
    """Cut ``box`` = (top, left, height, width) out of every frame of a clip ``(C, T, H, W)`` and resize it
    to ``size`` with (antialiased) bilinear interpolation. Keeps the dtype."""
    _check_clip(x, "resized_crop")
    if x.dim() == 5:
        return torch.stack([resized_crop(c, box, size, antialias) for c in x])
    size = (size, size) if isinstance(size, int) else tuple(size)
    top, left, h, w = box
    H, W = x.shape[-2:]
    if not (0 <= top and 0 <= left and h > 0 and w > 0 and top + h <= H and left + w <= W):
        raise ValueError(f"crop box {box} is outside the {H}x{W} frame")
    crop = x[..., top:top + h, left:left + w].permute(1, 0, 2, 3)  # (T, C, h, w): frames as the batch
    if (h, w) == size:
        return crop.permute(1, 0, 2, 3)
    if crop.dtype == torch.uint8 and crop.device.type != "cpu":
        out = F.interpolate(crop.float(), size=size, mode="bilinear", align_corners=False, antialias=antialias)
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    else:
        # On CPU, uint8 input in the decoder's (T, H, W, C) memory layout takes torch's vectorised
        # antialiased uint8 kernel; converting to float first is ~3x slower.
        if crop.dtype == torch.uint8:
            crop = crop.contiguous(memory_format=torch.channels_last)
        out = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return out.permute(1, 0, 2, 3)


def scale_jitter_crop_box(
    height: int, width: int, size: int, scale_range: tuple[int, int], generator: torch.Generator | None = None
) -> Box:
    """Box for "resize the short side to a random ``s`` in ``scale_range``, then take a random
    ``size x size`` crop" (UniFormer / PySlowFast training, UniFormer TPAMI Sec. 6.2), expressed in the original
    frame's coordinates so only the crop is resized."""
    s = _randint(int(scale_range[0]), int(scale_range[1]), generator)
    factor = s / min(height, width)
    ch = min(height, max(1, round(size / factor)))
    cw = min(width, max(1, round(size / factor)))
    top = _randint(0, height - ch, generator)
    left = _randint(0, width - cw, generator)
    return top, left, ch, cw


def random_resized_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Box:
    """Inception-style RandomResizedCrop box: area fraction in ``scale``, log-uniform aspect ``ratio``;
    10 tries, then the largest centred crop with a valid aspect ratio."""
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * _uniform(scale[0], scale[1], generator)
        ar = math.exp(_uniform(log_r[0], log_r[1], generator))
        w = round(math.sqrt(target * ar))
        h = round(math.sqrt(target / ar))
        if 0 < w <= width and 0 < h <= height:
            return _randint(0, height - h, generator), _randint(0, width - w, generator), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def short_side_crop_boxes(height: int, width: int, short_side: int, size: int, num_crops: int = 1) -> list[Box]:
    """Boxes for "resize the short side to ``short_side``, then take ``num_crops`` (1: centre, 3: start /
    centre / end along the long side, PySlowFast's three-crop test) ``size x size`` crops", in the
    original frame's coordinates."""
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    factor = max(short_side, size) / min(height, width)
    ch = min(height, max(1, round(size / factor)))
    cw = min(width, max(1, round(size / factor)))
    cy, cx = (height - ch) // 2, (width - cw) // 2
    if num_crops == 1:
        return [(cy, cx, ch, cw)]
    if height > width:
        return [(0, cx, ch, cw), (cy, cx, ch, cw), (height - ch, cx, ch, cw)]
    return [(cy, 0, ch, cw), (cy, cx, ch, cw), (cy, width - cw, ch, cw)]


class ScaleJitterCrop:
    """Random short-side scale in ``scale_range`` + random ``size`` crop (training; PySlowFast)."""

    def __init__(self, size: int, scale_range: tuple[int, int] = (256, 320), generator: torch.Generator | None = None):
        self.size, self.scale_range, self.generator = int(size), tuple(scale_range), generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "ScaleJitterCrop")
        H, W = x.shape[-2:]
        return _per_clip(x, lambda c: resized_crop(c, scale_jitter_crop_box(H, W, self.size, self.scale_range,
                                                                           self.generator), self.size))

    def __repr__(self) -> str:
        return f"ScaleJitterCrop(size={self.size}, scale_range={self.scale_range})"


class RandomResizedCrop:
    """RandomResizedCrop (area ``scale``, aspect ``ratio``) to ``size x size``; one box per clip."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), generator: torch.Generator | None = None):
        self.size, self.scale, self.ratio, self.generator = int(size), tuple(scale), tuple(ratio), generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "RandomResizedCrop")
        H, W = x.shape[-2:]
        return _per_clip(x, lambda c: resized_crop(c, random_resized_crop_box(H, W, self.scale, self.ratio,
                                                                              self.generator), self.size))

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={tuple(round(r, 3) for r in self.ratio)})"


class ResizeCrop:
    """Test-time view(s): short side -> ``short_side``, then a centre crop (``num_crops=1``) or three crops
    (``num_crops=3``). A clip ``(C, T, H, W)`` gives ``(num_crops, C, T, size, size)``; a batch gives
    ``(B, num_crops, C, T, size, size)``."""

    def __init__(self, size: int, short_side: int | None = None, num_crops: int = 1):
        self.size = int(size)
        self.short_side = int(short_side or size)
        self.num_crops = int(num_crops)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "ResizeCrop")
        H, W = x.shape[-2:]
        boxes = short_side_crop_boxes(H, W, self.short_side, self.size, self.num_crops)
        return _per_clip(x, lambda c: torch.stack([resized_crop(c, b, self.size) for b in boxes]))

    def __repr__(self) -> str:
        return f"ResizeCrop(size={self.size}, short_side={self.short_side}, num_crops={self.num_crops})"


class RandomHorizontalFlip:
    """Flip all frames of a clip (or none) with probability ``p``. Keep it off for Something-Something,
    where left and right are part of the label."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p, self.generator = float(p), generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "RandomHorizontalFlip")
        if x.dim() == 4:
            return x.flip(-1) if _rand(self.generator) < self.p else x
        flip = torch.rand(x.shape[0], generator=self.generator) < self.p
        if not flip.any():
            return x
        out = x.clone()
        idx = flip.nonzero().flatten().to(x.device)
        out[idx] = x[idx].flip(-1)
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


# --------------------------------------------------------------------------------------------------
# Photometric
# --------------------------------------------------------------------------------------------------

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL and torchvision use


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma of ``(C=3, ...)`` as ``(1, ...)``."""
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(3, *([1] * (x.dim() - 1)))
    return (x * w).sum(0, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """``b + factor * (a - b)``, clamped: factor 1 gives ``a``, 0 gives ``b`` (PIL ImageEnhance)."""
    return (b + factor * (a - b)).clamp_(0.0, 1.0)


def adjust_brightness(x, f):
    return (x * f).clamp_(0.0, 1.0)


def adjust_contrast(x, f):
    # One mean for the whole clip: per-frame means would make contrast flicker over time.
    return _blend(x, _gray(x).mean().expand_as(x), f)


def adjust_saturation(x, f):
    return _blend(x, _gray(x).expand_as(x), f)


def adjust_hue(x, shift: float):
    """Rotate hue by ``shift`` turns (in [-0.5, 0.5]) in YIQ space."""
    if shift == 0:
        return x
    t = 2 * math.pi * shift
    c, s = math.cos(t), math.sin(t)
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          dtype=x.dtype, device=x.device)
    rot = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=x.dtype, device=x.device)
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    y = torch.einsum("ij,j...->i...", m, x)
    return y.clamp_(0.0, 1.0)


class ColorJitter:
    """Brightness, contrast and saturation factors in ``[1 - s, 1 + s]`` and a hue shift in
    ``[-hue, hue]`` (default ``s / 4``, at most 0.5 turn), drawn once per clip, in random order."""

    def __init__(self, strength: float = 0.4, hue: float | None = None, p: float = 1.0,
                 generator: torch.Generator | None = None):
        self.strength = float(strength)
        self.hue = min(0.5, self.strength / 4) if hue is None else float(hue)
        self.p, self.generator = float(p), generator

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_float(x)
        if self.strength <= 0 and self.hue <= 0 or _rand(self.generator) >= self.p:
            return x
        s, g = self.strength, self.generator
        ops = [
            lambda y: adjust_brightness(y, _uniform(max(0.0, 1 - s), 1 + s, g)),
            lambda y: adjust_contrast(y, _uniform(max(0.0, 1 - s), 1 + s, g)),
            lambda y: adjust_saturation(y, _uniform(max(0.0, 1 - s), 1 + s, g)),
            lambda y: adjust_hue(y, _uniform(-self.hue, self.hue, g)),
        ]
        for i in torch.randperm(len(ops), generator=g).tolist():
            x = ops[i](x)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "ColorJitter")
        return _per_clip(x, self._one)

    def __repr__(self) -> str:
        return f"ColorJitter(strength={self.strength}, hue={self.hue}, p={self.p})"


# --------------------------------------------------------------------------------------------------
# RandAugment, temporally consistent
# --------------------------------------------------------------------------------------------------


def _affine(x: torch.Tensor, matrix: list[list[float]], fill: float = 0.5) -> torch.Tensor:
    """Apply a 2x3 affine map (normalised coordinates, output -> input) to every frame; the area that
    comes from outside the frame is ``fill`` (mid-grey, like timm's fill colour)."""
    C, T, H, W = x.shape
    theta = torch.tensor(matrix, dtype=x.dtype, device=x.device).unsqueeze(0).expand(T, 2, 3)
    frames = x.permute(1, 0, 2, 3)  # (T, C, H, W)
    grid = F.affine_grid(theta, [T, C, H, W], align_corners=False)
    out = F.grid_sample(frames - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    return out.permute(1, 0, 2, 3).clamp_(0.0, 1.0)


def _auto_contrast(x, _):
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    flat = hi <= lo  # a flat channel stays as it is (PIL does the same)
    scale = torch.where(flat, torch.ones_like(hi), 1.0 / (hi - lo).clamp_min(1e-6))
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    return (x - lo).mul_(scale).clamp_(0.0, 1.0)


def _equalize(x, _):
    # Histogram equalisation per channel over the whole clip (one lookup table for all frames),
    # following PIL's ImageOps.equalize step rule.
    q = (x * 255).round_().long().clamp_(0, 255)
    out = torch.empty_like(x)
    for c in range(3):
        hist = torch.bincount(q[c].flatten(), minlength=256)
        nz = hist[hist > 0]
        step = (hist.sum() - nz[-1]) // 256 if nz.numel() > 1 else torch.tensor(0)
        if int(step) == 0:
            out[c] = x[c]
            continue
        lut = ((torch.cumsum(hist, 0) - hist + step // 2) // step).clamp_(0, 255)
        out[c] = lut[q[c]].to(x.dtype) / 255
    return out


def _invert(x, _):
    return 1.0 - x


def _rotate(x, deg):
    a = math.radians(deg)
    H, W = x.shape[-2:]
    # affine_grid works in normalised coordinates; correct for the aspect ratio so shapes stay round.
    return _affine(x, [[math.cos(a), -math.sin(a) * H / W, 0.0], [math.sin(a) * W / H, math.cos(a), 0.0]])


def _posterize(x, bits):
    # Keep the top ``bits`` bits of the 8-bit value: floor(v / 2^k) * 2^k with v = round(255 x).
    step = float(2 ** (8 - int(bits)))
    return torch.floor_divide((x * 255).round_(), step).mul_(step / 255)


def _solarize(x, thresh):
    return torch.where(x >= thresh, 1.0 - x, x)


def _solarize_add(x, add):
    return torch.where(x < 128 / 255, (x + add).clamp_(0.0, 1.0), x)


def _color(x, f):
    return adjust_saturation(x, f)


def _contrast(x, f):
    return adjust_contrast(x, f)


def _brightness(x, f):
    return adjust_brightness(x, f)


def _sharpness(x, f):
    # PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13) as the "degenerate" image, border kept:
    # (3x3 box sum + 4 * centre) / 13, the box sum as two separable shifted sums (faster than conv2d or
    # avg_pool2d on CPU).
    H, W = x.shape[-2:]
    if H < 3 or W < 3:
        return x
    rows = x[..., :, :-2] + x[..., :, 1:-1] + x[..., :, 2:]
    box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = (box + 4 * x[..., 1:-1, 1:-1]) / 13
    return _blend(x, degenerate, f)


def _shear_x(x, s):
    H, W = x.shape[-2:]
    return _affine(x, [[1.0, s * H / W, 0.0], [0.0, 1.0, 0.0]])


def _shear_y(x, s):
    H, W = x.shape[-2:]
    return _affine(x, [[1.0, 0.0, 0.0], [s * W / H, 1.0, 0.0]])


def _translate_x(x, frac):
    return _affine(x, [[1.0, 0.0, 2 * frac], [0.0, 1.0, 0.0]])


def _translate_y(x, frac):
    return _affine(x, [[1.0, 0.0, 0.0], [0.0, 1.0, 2 * frac]])


def _signed(v: float, g) -> float:
    return -v if _rand(g) < 0.5 else v


# (op, magnitude -> argument) for timm's "increasing" RandAugment set (rand-m*-n*-inc1), magnitudes
# on timm's 0..10 scale.
_RA_OPS: dict[str, tuple[Callable, Callable[[float, object], float]]] = {
    "AutoContrast": (_auto_contrast, lambda m, g: 0.0),
    "Equalize": (_equalize, lambda m, g: 0.0),
    "Invert": (_invert, lambda m, g: 0.0),
    "Rotate": (_rotate, lambda m, g: _signed(m / 10 * 30.0, g)),
    "PosterizeIncreasing": (_posterize, lambda m, g: 4 - int(m / 10 * 4)),
    "SolarizeIncreasing": (_solarize, lambda m, g: 1.0 - m / 10),
    "SolarizeAdd": (_solarize_add, lambda m, g: m / 10 * 110 / 255),
    "ColorIncreasing": (_color, lambda m, g: 1.0 + _signed(m / 10 * 0.9, g)),
    "ContrastIncreasing": (_contrast, lambda m, g: 1.0 + _signed(m / 10 * 0.9, g)),
    "BrightnessIncreasing": (_brightness, lambda m, g: 1.0 + _signed(m / 10 * 0.9, g)),
    "SharpnessIncreasing": (_sharpness, lambda m, g: 1.0 + _signed(m / 10 * 0.9, g)),
    "ShearX": (_shear_x, lambda m, g: _signed(m / 10 * 0.3, g)),
    "ShearY": (_shear_y, lambda m, g: _signed(m / 10 * 0.3, g)),
    "TranslateXRel": (_translate_x, lambda m, g: _signed(m / 10 * 0.45, g)),
    "TranslateYRel": (_translate_y, lambda m, g: _signed(m / 10 * 0.45, g)),
}


class RandAugment:
    """RandAugment (Cubuk et al. 2020) with ``n`` ops of magnitude ``m`` (0-10), temporally consistent:
    the ops, their magnitudes and signs are drawn once per clip and applied to every frame, as ViViT
    (ViViT Sec. 4.1, Table 7) and UniFormerV2 (``rand-m7-n4-mstd0.5-inc1``) use it. Each chosen op is applied
    with probability ``p``; ``mstd`` adds Gaussian noise to the magnitude per op (timm's ``mstd``)."""

    def __init__(self, n: int = 2, m: float = 9.0, mstd: float = 0.5, p: float = 0.5,
                 ops: Sequence[str] | None = None, generator: torch.Generator | None = None):
        self.n, self.m, self.mstd, self.p = int(n), float(m), float(mstd), float(p)
        self.ops = list(ops or _RA_OPS)
        unknown = [o for o in self.ops if o not in _RA_OPS]
        if unknown:
            raise ValueError(f"unknown RandAugment ops {unknown}; known: {list(_RA_OPS)}")
        self.generator = generator

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_float(x)
        if x.shape[0] != 3:
            raise ValueError(f"RandAugment expects 3 colour channels first (3, T, H, W), got shape {tuple(x.shape)}")
        g = self.generator
        choice = torch.randint(len(self.ops), (self.n,), generator=g).tolist()
        for i in choice:
            if _rand(g) >= self.p:
                continue
            m = self.m
            if self.mstd > 0:
                m = m + self.mstd * float(torch.randn((), generator=g))
            m = min(10.0, max(0.0, m))
            fn, arg = _RA_OPS[self.ops[i]]
            x = fn(x, arg(m, g))
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "RandAugment")
        return _per_clip(x, self._one)

    def __repr__(self) -> str:
        return f"RandAugment(n={self.n}, m={self.m}, mstd={self.mstd}, p={self.p})"


# --------------------------------------------------------------------------------------------------
# Normalisation and erasing
# --------------------------------------------------------------------------------------------------


class Normalize:
    """``(x - mean) / std`` per channel on ``[0, 1]`` pixels (``uint8`` is converted first). Use the model
    card's ``mean``/``std`` (e.g. 0.45/0.225 for UniFormer and UniFormerV2, 0.5/0.5 for ViViT)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "Normalize")
        shape = (3, 1, 1, 1)
        m = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(shape)
        s = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(shape)
        if x.dtype == torch.uint8:
            # One pass to a contiguous float tensor, then in place: (x / 255 - m) / s = x * a - b.
            out = torch.empty(x.shape, dtype=torch.float32, device=x.device).copy_(x)
            return out.mul_(1.0 / (255.0 * s)).sub_(m / s)
        x = _as_float(x)
        return (x - m.to(x.dtype)).div_(s.to(x.dtype))

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomErasing:
    """Random erasing (Zhong et al. 2020) after normalisation: with probability ``p`` one box of area
    ``scale`` and aspect ``ratio`` is filled with per-pixel Gaussian noise, the same box in every frame
    (timm's ``mode='pixel'``, the "cube" variant PySlowFast uses for video)."""

    def __init__(self, p: float = 0.25, scale=(0.02, 1 / 3), ratio=(0.3, 3.3), generator: torch.Generator | None = None):
        self.p, self.scale, self.ratio, self.generator = float(p), tuple(scale), tuple(ratio), generator

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if _rand(g) >= self.p:
            return x
        C, T, H, W = x.shape
        area = H * W
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(self.scale[0], self.scale[1], g)
            ar = math.exp(_uniform(log_r[0], log_r[1], g))
            h = int(round(math.sqrt(target * ar)))
            w = int(round(math.sqrt(target / ar)))
            if 0 < h < H and 0 < w < W:
                top, left = _randint(0, H - h, g), _randint(0, W - w, g)
                x = x.clone()
                noise = torch.randn((C, T, h, w), generator=g, dtype=x.dtype).to(x.device)
                x[..., top:top + h, left:left + w] = noise
                return x
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, "RandomErasing")
        if not x.is_floating_point():
            raise ValueError("RandomErasing works on normalised float clips; apply Normalize first")
        return _per_clip(x, self._one)

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio})"
