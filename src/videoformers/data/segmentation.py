"""Semantic segmentation data: an ADE20K-layout image folder, the mmseg pipeline the UniFormer authors
trained with (TPAMI Sec. 6.4; Sense-X/UniFormer ``semantic_segmentation/configs/_base_/datasets/ade20k.py``)
and a generated shapes data set in the same layout.

Layout (ADEChallengeData2016)::

    root/images/training/*.jpg        root/annotations/training/*.png      (same stems)
    root/images/validation/*.jpg      root/annotations/validation/*.png
    root/classes.txt                  (optional: one class name a line, in label order)

Annotations are single-channel PNGs of class ids. With ``reduce_zero_label`` (ADE20K) id 0 ("other")
becomes the ignore index 255 and ids 1..K become 0..K-1, as mmseg's ``LoadAnnotations(reduce_zero_label=True)``.

Training transforms (mmseg, in the authors' order): ``Resize(img_scale, ratio_range)`` keeping the aspect
ratio, ``RandomCrop(crop_size, cat_max_ratio)``, ``RandomFlip(0.5)``, ``PhotoMetricDistortion``,
``Normalize``, ``Pad(crop_size, img 0, label 255)``. Every random draw uses the global ``random`` /
``numpy`` generators, which the engine seeds per item (deterministic, resumable training).
Validation items are the whole normalised image and its full-resolution label: the evaluator resizes the
image to each test scale (keep ratio; sizes need not be multiples of 32) and compares logits resized back
to the label's size, as mmseg does.
"""

from __future__ import annotations

import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import SegConfig

__all__ = [
    "SegFolderDataset",
    "LabelRangeError",
    "rescale_size",
    "train_transform",
    "photometric_distortion",
    "random_crop",
    "make_shapes_dataset",
    "IMAGE_EXTENSIONS",
    "SPLIT_DIRS",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_DIRS = {"train": "training", "val": "validation", "test": "validation"}


class LabelRangeError(ValueError):
    """An annotation holds class ids the model has no output for (a data error, never skipped)."""


def rescale_size(w: int, h: int, scale: Sequence[int]) -> tuple[int, int]:
    """mmcv's ``rescale_size`` with a ``(long, short)`` scale: the largest factor that fits the long side
    in ``max(scale)`` and the short side in ``min(scale)``; returns ``(new_w, new_h)``."""
    long_max, short_max = max(scale), min(scale)
    factor = min(long_max / max(h, w), short_max / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


def _resize_img(img: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    # OpenCV's INTER_LINEAR (what mmcv.imresize uses): half-pixel centres, no antialiasing, rounded to uint8;
    # PIL's BILINEAR would low-pass when shrinking, a different image at ratio < 1.
    if (img.shape[1], img.shape[0]) == tuple(size_wh):
        return img
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float()
    t = torch.nn.functional.interpolate(t, size=(size_wh[1], size_wh[0]), mode="bilinear", align_corners=False)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _resize_label(lab: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if (lab.shape[1], lab.shape[0]) == tuple(size_wh):
        return lab
    return np.asarray(Image.fromarray(lab).resize(size_wh, Image.NEAREST))


def random_crop(img: np.ndarray, lab: np.ndarray, crop_hw: Sequence[int], cat_max_ratio: float = 1.0,
                ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """mmseg ``RandomCrop``: up to 10 draws until no single class covers ``cat_max_ratio`` or more of the
    crop's labelled pixels (a crop with one class only is accepted at the last draw)."""
    ch, cw = crop_hw
    h, w = lab.shape

    def draw():
        y = np.random.randint(0, max(h - ch, 0) + 1)
        x = np.random.randint(0, max(w - cw, 0) + 1)
        return y, x

    y, x = draw()
    if cat_max_ratio < 1.0:
        for _ in range(10):
            sub = lab[y:y + ch, x:x + cw]
            _, cnt = np.unique(sub[sub != ignore_index], return_counts=True)
            if len(cnt) > 1 and cnt.max() / cnt.sum() < cat_max_ratio:
                break
            y, x = draw()
    return img[y:y + ch, x:x + cw], lab[y:y + ch, x:x + cw]


def _rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    from matplotlib.colors import rgb_to_hsv

    return rgb_to_hsv(img / 255.0)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb

    return hsv_to_rgb(hsv) * 255.0


def photometric_distortion(img: np.ndarray, brightness_delta: int = 32, contrast_range=(0.5, 1.5),
                           saturation_range=(0.5, 1.5), hue_delta: int = 18) -> np.ndarray:
    """mmseg ``PhotoMetricDistortion``: each step with probability 1/2 -- brightness (+-32), contrast
    (x0.5-1.5) before or after (random) saturation (x0.5-1.5) and hue (+-18 of OpenCV's 180 hue steps),
    clipped to [0, 255] after each step. ``img``: uint8 RGB ``(H, W, 3)``; returns float32."""
    out = img.astype(np.float32)

    def convert(x, alpha=1.0, beta=0.0):  # mmseg truncates to uint8 after every step
        return np.clip(x * alpha + beta, 0, 255).astype(np.uint8).astype(np.float32)

    if np.random.randint(2):
        out = convert(out, beta=np.random.uniform(-brightness_delta, brightness_delta))
    mode = np.random.randint(2)
    if mode == 1 and np.random.randint(2):
        out = convert(out, alpha=np.random.uniform(*contrast_range))
    sat, hue = np.random.randint(2), np.random.randint(2)
    if sat or hue:
        hsv = _rgb_to_hsv(out)
        if sat:
            hsv[..., 1] = np.clip(hsv[..., 1] * np.random.uniform(*saturation_range), 0, 1)
        if hue:
            hsv[..., 0] = (hsv[..., 0] + np.random.randint(-hue_delta, hue_delta + 1) / 180.0) % 1.0
        out = np.clip(_hsv_to_rgb(hsv), 0, 255).astype(np.uint8).astype(np.float32)
    if mode == 0 and np.random.randint(2):
        out = convert(out, alpha=np.random.uniform(*contrast_range))
    return out.astype(np.float32)


def _normalize(img: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    # mean/std on [0, 1] pixels (the engine's convention) = mmseg's 123.675/58.395 ... on [0, 255]
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1) / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def train_transform(img: np.ndarray, lab: np.ndarray, cfg: SegConfig, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' mmseg training pipeline on a uint8 RGB image and its (reduced) label map; returns the
    normalised ``(3, crop_h, crop_w)`` image and the ``(crop_h, crop_w)`` long label (255 in the padding)."""
    h, w = lab.shape
    r = np.random.random_sample() * (cfg.ratio_range[1] - cfg.ratio_range[0]) + cfg.ratio_range[0]
    scale = (int(cfg.img_scale[0] * r), int(cfg.img_scale[1] * r))
    size = rescale_size(w, h, scale)
    img, lab = _resize_img(img, size), _resize_label(lab, size)
    img, lab = random_crop(img, lab, cfg.crop_size, cfg.cat_max_ratio, cfg.ignore_index)
    if np.random.rand() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    imgf = photometric_distortion(img) if cfg.photometric else img.astype(np.float32)
    x = _normalize(imgf, mean, std)
    y = torch.from_numpy(np.array(lab, dtype=np.int64))
    ch, cw = cfg.crop_size
    ph, pw = ch - x.shape[1], cw - x.shape[2]
    if ph > 0 or pw > 0:  # mmseg Pad: after Normalize, so the image padding is 0 in normalised units
        x = torch.nn.functional.pad(x, (0, max(pw, 0), 0, max(ph, 0)), value=0.0)
        y = torch.nn.functional.pad(y, (0, max(pw, 0), 0, max(ph, 0)), value=cfg.ignore_index)
    return x, y


@dataclass
class _Item:
    image: str
    label: str


class SegFolderDataset(Dataset):
    """ADE20K-layout folder (see the module docstring) for ``split`` ``"train"`` / ``"val"``.

    Items: ``{"image": (3, H, W) float, "label": (H, W) long (255 = ignore), "index": int,
    "num_skipped": int, "path": str}``; training items are crops of ``cfg.crop_size``, validation items the
    whole image. An unreadable image or annotation is replaced by another sample (counted in
    ``num_skipped`` and :meth:`skip_stats`, as the video datasets do); a label id out of range raises
    :class:`LabelRangeError`.
    """

    max_consecutive_failures = 20

    def __init__(self, root: str | os.PathLike, split: str, cfg: SegConfig | None = None,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 num_classes: int | None = None, classes: Sequence[str] | None = None,
                 max_broken_fraction: float = 0.1) -> None:
        from .datasets import _SkipLog

        if split not in SPLIT_DIRS:
            raise ValueError(f"split must be one of {sorted(SPLIT_DIRS)}, got {split!r}")
        self.cfg = cfg or SegConfig()
        self.root, self.split, self.train = Path(root), split, split == "train"
        self.mean, self.std = tuple(mean), tuple(std)
        self.max_broken_fraction = float(max_broken_fraction)
        sub = SPLIT_DIRS[split]
        img_dir, ann_dir = self.root / "images" / sub, self.root / "annotations" / sub
        for d in (img_dir, ann_dir):
            if not d.is_dir():
                raise ValueError(f"ADE20K-layout folder {self.root}: missing {d} (expected images/{{training,"
                                 f"validation}}/*.jpg and annotations/{{training,validation}}/*.png)")
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {img_dir}")
        anns = {p.stem: p for p in ann_dir.iterdir() if p.suffix.lower() == ".png"}
        missing = [p.name for p in images if p.stem not in anns]
        if missing:
            raise ValueError(f"{len(missing)} image(s) in {img_dir} have no annotation {ann_dir}/<stem>.png: "
                             + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        self.items = [_Item(str(p), str(anns[p.stem])) for p in images]
        self.paths = [it.image for it in self.items]
        if classes is None:
            cf = self.cfg.classes_file
            path = (self.root / cf) if cf else self.root / "classes.txt"
            if cf and not path.is_file():
                raise ValueError(f"seg.classes_file {path} does not exist")
            if path.is_file():
                classes = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        self.classes = list(classes) if classes else None
        self.num_classes = int(num_classes or (len(self.classes) if self.classes else 0))
        self._skips = _SkipLog()
        self.num_broken = self.num_attempts = 0
        self.broken_files: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.items)

    def check_labels(self, num_classes: int) -> None:
        """Labels are checked against ``num_classes`` as each annotation is read (scanning every PNG up
        front would cost a pass over the data set)."""
        if self.classes and len(self.classes) != num_classes:
            raise ValueError(f"{self.root}: {len(self.classes)} class names but num_classes={num_classes}")
        self.num_classes = int(num_classes)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The RGB uint8 image and the reduced label map (uint8, 255 = ignore) of item ``i``."""
        from PIL import Image

        it = self.items[i]
        with Image.open(it.image) as im:
            img = np.asarray(im.convert("RGB"))
        with Image.open(it.label) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise LabelRangeError(f"annotation {it.label} has mode {im.mode}: expected a single-channel "
                                      "PNG of class ids")
            lab = np.asarray(im).astype(np.int64)
        if lab.shape != img.shape[:2]:
            raise LabelRangeError(f"annotation {it.label} is {lab.shape[1]}x{lab.shape[0]} but image {it.image} "
                                  f"is {img.shape[1]}x{img.shape[0]}")
        ign = self.cfg.ignore_index
        if self.cfg.reduce_zero_label:
            keep_ignore = lab == ign
            lab = lab - 1
            lab[(lab < 0) | keep_ignore] = ign
        if self.num_classes:
            bad = (lab != ign) & ((lab < 0) | (lab >= self.num_classes))
            if bad.any():
                vals = np.unique(lab[bad] + (1 if self.cfg.reduce_zero_label else 0))[:10].tolist()
                ok = f"1..{self.num_classes}" if self.cfg.reduce_zero_label else f"0..{self.num_classes - 1}"
                raise LabelRangeError(
                    f"annotation {it.label} holds class id(s) {vals} outside {ok}"
                    f" (num_classes={self.num_classes}, reduce_zero_label={self.cfg.reduce_zero_label}, "
                    f"ignore {ign})")
        return img, lab.astype(np.uint8)

    def __getitem__(self, index: int) -> dict:
        index = int(index) % len(self)
        skipped, i = 0, index
        while True:
            self.num_attempts += 1
            try:
                img, lab = self.load(i)
            except LabelRangeError:
                raise
            except Exception as e:  # noqa: BLE001 - an unreadable file costs that sample
                reason = f"{type(e).__name__}: {e}"
            else:
                break
            skipped += 1
            self._broken(self.items[i].image, reason, skipped)
            i = self._another(i)
        if self.train:
            x, y = train_transform(img, lab, self.cfg, self.mean, self.std)
        else:
            x = _normalize(img, self.mean, self.std)
            y = torch.from_numpy(np.array(lab, dtype=np.int64))
        return {"image": x, "label": y, "index": i, "num_skipped": skipped, "path": self.items[i].image}

    def _another(self, i: int) -> int:
        n = len(self)
        if self.train and n > 1:
            j = random.randrange(n - 1)
            return j if j < i else j + 1
        return (i + 1) % n

    def _broken(self, path: str, reason: str, consecutive: int) -> None:
        from .datasets import BrokenDataError

        self.num_broken += 1
        if path not in self.broken_files:
            self.broken_files[path] = reason
            self._skips.add(path, reason)
            log.warning("skipping unreadable image %s (%s)", path, reason)
        n, k = self.num_attempts, self.num_broken
        too_many = consecutive >= min(self.max_consecutive_failures, len(self))
        if not too_many and n >= 20 and k / n > self.max_broken_fraction + 2 * math.sqrt(0.25 / n):
            too_many = True
        if too_many:
            ex = "; ".join(f"{p} ({r})" for p, r in list(self.broken_files.items())[:3])
            raise BrokenDataError(f"{k} of {n} image reads failed in {self.root} ({self.split}): the data looks "
                                  f"mostly broken. Examples: {ex}")

    def skip_stats(self, reset: bool = False) -> dict:
        if reset:
            self.broken_files.clear()
        return self._skips.stats(reset=reset)


# --------------------------------------------------------------------------- generated data
_SHAPES = ("circle", "rectangle", "triangle", "ellipse", "diamond", "cross")


def _class_palette(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    # Evenly spaced hues, alternating brightness: neighbouring classes stay apart in colour.
    from matplotlib.colors import hsv_to_rgb

    hues = (np.arange(num_classes) / num_classes + rng.uniform(0, 1.0 / num_classes)) % 1.0
    vals = np.where(np.arange(num_classes) % 2 == 0, 0.95, 0.7)
    return (hsv_to_rgb(np.stack([hues, np.full(num_classes, 0.85), vals], -1)) * 255).astype(np.float32)


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    if kind == "triangle":
        n, rr = 3, [r] * 3
    elif kind == "diamond":
        n, rr = 4, [r, 0.6 * r, r, 0.6 * r]
    elif kind == "cross":
        pts = []
        for k in range(12):  # a plus sign as a 12-gon
            a = angle + k * math.pi / 6
            rad = r if k % 3 == 1 else 0.45 * r / math.cos(math.pi / 6)
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    else:
        return None
    return [(cx + rr[k] * math.cos(angle + 2 * math.pi * k / n), cy + rr[k] * math.sin(angle + 2 * math.pi * k / n))
            for k in range(n)]


def _draw_sample(rng: np.random.Generator, h: int, w: int, palette: np.ndarray, max_shapes: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageDraw

    K = len(palette)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Textured background: a low-frequency colour field plus grey noise (class 0 = "other").
    bg = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.02, 0.12), rng.uniform(0.02, 0.12), rng.uniform(0, 2 * math.pi)
        bg[..., c] = 110 + 50 * np.sin(fx * xx + ph) * np.cos(fy * yy)
    bg += rng.normal(0, 12, (h, w, 1))
    img = bg
    label = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        k = int(rng.integers(K))
        kind = _SHAPES[k % len(_SHAPES)]
        r = rng.uniform(0.12, 0.3) * min(h, w)
        cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
        angle = rng.uniform(0, 2 * math.pi)
        mask_im = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(mask_im)
        pts = _polygon(kind, cx, cy, r, angle)
        if pts is not None:
            d.polygon(pts, fill=255)
        elif kind == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        elif kind == "rectangle":
            d.rectangle([cx - r, cy - 0.7 * r, cx + r, cy + 0.7 * r], fill=255)
        else:  # ellipse
            d.ellipse([cx - r, cy - 0.55 * r, cx + r, cy + 0.55 * r], fill=255)
        mask = np.asarray(mask_im) > 127
        # Per-class colour (+ per-shape jitter) and a per-class stripe texture (orientation, period).
        theta = math.pi * (k % 4) / 4
        period = 4 + 2 * (k % 3)
        stripes = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
        col = palette[k] + rng.normal(0, 10, 3)
        tex = col[None, None, :] * (0.85 + 0.15 * stripes[..., None])
        img = np.where(mask[..., None], tex, img)
        label[mask] = k + 1
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    return img, label


def make_shapes_dataset(out_dir: str | os.PathLike, n_train: int = 200, n_val: int = 40,
                        size: int | Sequence[int] = 64, num_classes: int = 6, seed: int = 0,
                        max_shapes: int = 3) -> Path:
    """Write a generated ADE20K-layout data set: shapes (circle, rectangle, triangle, ellipse, diamond,
    cross; the shape follows the class) with a per-class colour and stripe texture on textured backgrounds.
    Annotations are PNG class ids: 0 = background ("other", ignored with ``reduce_zero_label``), 1..K the
    classes; images are JPEG (quality 95). ``size`` is an int or ``(H, W)``. Returns ``out_dir``."""
    from PIL import Image

    if num_classes < 1 or num_classes > 254:
        raise ValueError(f"num_classes must be in 1..254 (PNG ids 1..K, 0 = background), got {num_classes}")
    if n_train < 0 or n_val < 0:
        raise ValueError("n_train and n_val must be >= 0")
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(h, w) < 8:
        raise ValueError(f"size {h}x{w} is too small (>= 8 pixels a side)")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    palette = _class_palette(num_classes, rng)
    for split, n in (("training", n_train), ("validation", n_val)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, lab = _draw_sample(rng, h, w, palette, max_shapes)
            stem = f"shapes_{split}_{i:05d}"
            Image.fromarray(img).save(out / "images" / split / f"{stem}.jpg", quality=95)
            Image.fromarray(lab).save(out / "annotations" / split / f"{stem}.png")
    names = [f"{_SHAPES[k % len(_SHAPES)]}_{k}" for k in range(num_classes)]
    (out / "classes.txt").write_text("\n".join(names) + "\n")
    return out


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m videoformers.data.segmentation",
                                 description="Write a generated ADE20K-layout data set of shapes (make_shapes_dataset).")
    ap.add_argument("out_dir")
    ap.add_argument("--train", type=int, default=200, help="training images")
    ap.add_argument("--val", type=int, default=40, help="validation images")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--classes", type=int, default=6, help="shape classes (label 0 is the background, 'other')")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    root = make_shapes_dataset(a.out_dir, a.train, a.val, a.size, a.classes, seed=a.seed)
    print(f"wrote {root}: images/{{training,validation}}, annotations/{{training,validation}}")


if __name__ == "__main__":
    _main()
