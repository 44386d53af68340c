"""COCO keypoints for top-down pose estimation (UniFormer TPAMI Sec. 6.5, Table 10).

The UniFormer authors train with mmpose's COCO top-down pipeline (``pose_estimation/exp/*/config.py`` in
Sense-X/UniFormer), the setting of *Simple Baselines for Human Pose Estimation* (Xiao et al., arXiv
1804.06208, Sec. 3-4). This module is that pipeline written for this package:

* **Samples**: one per ground-truth person (``pycocotools.coco.COCO``): boxes are clipped to the image;
  crowd annotations, boxes of zero area and persons with no labelled keypoint are left out, as mmpose's
  ``TopDownCocoDataset`` does. A box becomes a center and a size with the input's aspect ratio, padded
  by 1.25 (:func:`box_to_center_size`).
* **Training augmentation** (the configs' ``train_pipeline``): random center shift (p 0.3, 40% of the box),
  horizontal flip (p 0.5, COCO flip pairs), half-body crop (p 0.3 when more than 8 joints are labelled),
  random scale ``N(1, 0.5)`` clipped to [0.5, 1.5] and rotation ``N(0, 40)`` clipped to +-80 degrees with
  p 0.6. All draws use the global ``numpy`` RNG, which the engine seeds per (seed, epoch, index).
* **Crop**: one affine warp (``cv2.warpAffine``, bilinear, zero border) of the rotated, scaled box to the
  input size (:func:`affine_matrix`).
* **Targets**: plain ("MSRA") Gaussian heatmaps at 1/4 resolution, sigma 2 for 64x48 (3 for the larger
  inputs), centred on the joint rounded to the heatmap grid; target weight = visibility, 0 for a joint
  whose Gaussian lies entirely outside the heatmap (:func:`encode_heatmaps`).
* **Decoding** (mmpose ``post_process='default'``, no DARK): argmax, a quarter-pixel step towards the
  higher neighbour, back through the inverse affine (:func:`decode_heatmaps`, :func:`heatmap_to_image`);
  flip test averages with the flipped image's heatmaps flipped back and shifted one pixel
  (:func:`flip_back`, mmpose ``shift_heatmap=True``).

Coordinates are in pixels throughout; a heatmap pixel ``(u, v)`` is the input pixel
``(u * W_in / W_hm, v * H_in / H_hm)`` (mmpose's non-UDP convention). Box sizes are in pixels (mmpose
divides them by 200).

:func:`make_stick_figures` writes a small COCO-format data set of stick figures for tests and the
``pose_demo`` recipe.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "COCO_KEYPOINTS", "COCO_FLIP_PAIRS", "COCO_SKELETON", "COCO_SIGMAS", "UPPER_BODY_IDS",
    "box_to_center_size", "affine_matrix", "invert_affine", "affine_points", "flip_joints", "half_body_box",
    "encode_heatmaps", "decode_heatmaps", "flip_back", "heatmap_to_image", "CocoKeypoints",
    "make_stick_figures", "KeypointsError",
]

log = logging.getLogger(__name__)

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# 0-based limbs (the json's "skeleton" is 1-based)
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
# Per-keypoint OKS constants of the COCO keypoint evaluation (pycocotools' default for 17 keypoints).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
UPPER_BODY_IDS = tuple(range(11))  # nose .. wrists (mmpose's COCO upper_body_ids)


class KeypointsError(ValueError):
    """A keypoint annotation file that cannot be used (missing, unreadable, malformed)."""


# --------------------------------------------------------------------------- geometry
def box_to_center_size(box: Sequence[float], aspect_ratio: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y, w, h)`` -> center ``(2,)`` and size ``(2,)`` in pixels: the box grown to the input's
    ``aspect_ratio`` (width / height) and padded by ``padding`` for context (mmpose ``_xywh2cs``)."""
    x, y, w, h = (float(v) for v in box)
    if aspect_ratio <= 0:
        raise ValueError(f"aspect_ratio must be > 0, got {aspect_ratio}")
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h], dtype=np.float32) * padding


def affine_matrix(center: Sequence[float], size: Sequence[float], rotation: float,
                  output_size: Sequence[int]) -> np.ndarray:
    """The 2x3 matrix taking the image region ``size`` (w, h, pixels) around ``center``, rotated by
    ``rotation`` degrees (counter-clockwise in the image, as mmpose), to an ``output_size`` (W, H) crop.

    mmpose builds it from three point pairs (``get_affine_transform``); it is the similarity
    ``p' = s R (p - c) + o`` with ``s = W / w`` and ``o`` the crop's center, which we write down directly.
    Only the box width sets the scale: the box already has the crop's aspect ratio.
    """
    w_out, h_out = float(output_size[0]), float(output_size[1])
    if size[0] <= 0:
        raise ValueError(f"box size must be positive, got {tuple(size)}")
    s = w_out / float(size[0])
    t = math.radians(float(rotation))
    c, n = math.cos(t) * s, math.sin(t) * s
    a = np.array([[c, n], [-n, c]], dtype=np.float64)
    o = np.array([w_out * 0.5, h_out * 0.5]) - a @ np.asarray(center, dtype=np.float64)
    return np.concatenate([a, o[:, None]], axis=1)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    a = np.asarray(m, dtype=np.float64)[:, :2]
    ai = np.linalg.inv(a)
    return np.concatenate([ai, (-ai @ np.asarray(m, dtype=np.float64)[:, 2])[:, None]], axis=1)


def affine_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to ``(..., 2)`` points."""
    p = np.asarray(points, dtype=np.float64)
    return p @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def flip_joints(joints: np.ndarray, visible: np.ndarray, width: int,
                pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """Mirror ``(K, 2)`` joints in an image ``width`` pixels wide (``x -> width - 1 - x``) and swap the
    left/right ``pairs``; ``visible`` ``(K,)`` is swapped with them."""
    j, v = joints.copy(), visible.copy()
    for a, b in pairs:
        j[[a, b]] = j[[b, a]]
        v[[a, b]] = v[[b, a]]
    j[:, 0] = width - 1 - j[:, 0]
    return j * (v[:, None] > 0), v


def half_body_box(joints: np.ndarray, visible: np.ndarray, aspect_ratio: float,
                  upper_ids: Sequence[int] = UPPER_BODY_IDS) -> tuple[np.ndarray, np.ndarray] | None:
    """mmpose's half-body augmentation: the box of the upper or the lower body's labelled joints, grown to
    the aspect ratio and padded by 1.5; ``None`` with fewer than two joints in the chosen half.

    The choice draws ``np.random.randn() < 0.5`` (a normal, not a uniform, as mmpose and HRNet do: the
    upper body is picked ~69% of the time) -- kept so that training matches the authors'."""
    upper = [joints[k] for k in range(len(joints)) if visible[k] > 0 and k in upper_ids]
    lower = [joints[k] for k in range(len(joints)) if visible[k] > 0 and k not in upper_ids]
    if np.random.randn() < 0.5 and len(upper) > 2:
        sel = upper
    elif len(lower) > 2:
        sel = lower
    else:
        sel = upper
    if len(sel) < 2:
        return None
    pts = np.asarray(sel, dtype=np.float32)
    center = pts.mean(axis=0)
    w, h = pts.max(axis=0) - pts.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h], dtype=np.float32) * 1.5


# --------------------------------------------------------------------------- heatmaps
def encode_heatmaps(joints: np.ndarray, visible: np.ndarray, input_size: Sequence[int],
                    heatmap_size: Sequence[int], sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Plain ("MSRA") Gaussian targets (mmpose ``TopDownGenerateTarget``, Xiao et al. Sec. 2).

    ``joints`` ``(K, 2)`` in input-crop pixels, ``visible`` ``(K,)``. Each joint's Gaussian (std ``sigma``
    heatmap pixels, peak 1, cut at 3 sigma) is centred on the joint rounded to the heatmap grid. Returns
    ``(target (K, H, W) float32, weight (K, 1) float32)``; the weight is 1 for a labelled joint whose
    Gaussian overlaps the heatmap and 0 otherwise (unlabelled, or out of the crop).
    """
    k = len(joints)
    wh, hh = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.array([input_size[0] / wh, input_size[1] / hh])
    target = np.zeros((k, hh, wh), dtype=np.float32)
    weight = (np.asarray(visible) > 0).astype(np.float32).reshape(k, 1)
    r = int(sigma * 3)
    g1 = np.arange(-r, r + 1, dtype=np.float32)
    g = np.exp(-(g1[None, :] ** 2 + g1[:, None] ** 2) / (2 * sigma ** 2))
    for j in range(k):
        if weight[j, 0] == 0:
            continue
        # int(x + 0.5): mmpose's rounding (towards zero for the negative values of joints left of the crop)
        mx, my = int(joints[j, 0] / stride[0] + 0.5), int(joints[j, 1] / stride[1] + 0.5)
        x0, y0, x1, y1 = mx - r, my - r, mx + r + 1, my + r + 1
        if x0 >= wh or y0 >= hh or x1 <= 0 or y1 <= 0:
            weight[j, 0] = 0
            continue
        gx0, gy0 = max(0, -x0), max(0, -y0)
        hx0, hy0, hx1, hy1 = max(0, x0), max(0, y0), min(wh, x1), min(hh, y1)
        target[j, hy0:hy1, hx0:hx1] = g[gy0:gy0 + hy1 - hy0, gx0:gx0 + hx1 - hx0]
    return target, weight


def decode_heatmaps(heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(N, K, H, W)`` heatmaps -> ``(coords (N, K, 2) in heatmap pixels, scores (N, K))``.

    Argmax, then a quarter pixel towards the higher neighbour along x and y (mmpose ``post_process=
    'default'``, HRNet's ``get_final_preds``; no DARK). With a Gaussian peak anywhere within half a pixel
    of a grid point this recovers it to a quarter pixel. The shift needs both neighbours, and mmpose
    requires ``1 < px < W - 1`` (so no shift in the first two columns); we follow it.
    """
    hm = heatmaps.detach().float().cpu().numpy() if isinstance(heatmaps, torch.Tensor) else np.asarray(heatmaps, np.float32)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, H, W), got shape {hm.shape}")
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, -1)
    idx = flat.argmax(axis=2)
    scores = flat.max(axis=2)
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    coords[scores <= 0] = -1  # mmpose: no positive response, no location
    px, py = coords[..., 0].astype(int), coords[..., 1].astype(int)
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    ni, ki = np.nonzero(ok)
    x, y = px[ni, ki], py[ni, ki]
    dx = hm[ni, ki, y, x + 1] - hm[ni, ki, y, x - 1]
    dy = hm[ni, ki, y + 1, x] - hm[ni, ki, y - 1, x]
    coords[ni, ki, 0] += np.sign(dx) * 0.25
    coords[ni, ki, 1] += np.sign(dy) * 0.25
    return coords, scores


def flip_back(heatmaps: torch.Tensor, pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS,
              shift: bool = True) -> torch.Tensor:
    """Heatmaps of a horizontally flipped crop -> heatmaps of the crop: mirror along W, swap the
    left/right channels; ``shift`` moves them one pixel right (mmpose ``shift_heatmap=True``: a flip maps
    pixel ``u`` to ``W - 1 - u`` in the input but the stride-4 grid is not symmetric about the center)."""
    out = heatmaps.flip(-1)
    perm = list(range(out.shape[1]))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    out = out[:, perm]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


def heatmap_to_image(coords: np.ndarray, center: np.ndarray, size: np.ndarray, rotation: np.ndarray,
                     input_size: Sequence[int], heatmap_size: Sequence[int]) -> np.ndarray:
    """``(N, K, 2)`` heatmap coordinates -> image pixels through the inverse of each crop's affine."""
    stride = np.array([input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]])
    out = np.empty(coords.shape, dtype=np.float64)
    for i in range(len(coords)):
        m = invert_affine(affine_matrix(center[i], size[i], float(rotation[i]), input_size))
        out[i] = affine_points(coords[i] * stride, m)
    return out


# --------------------------------------------------------------------------- dataset
def _load_coco(ann_file: str | os.PathLike):
    from pycocotools.coco import COCO

    path = Path(ann_file)
    if not path.is_file():
        raise KeypointsError(f"keypoint annotations {path} not found (set pose.train_ann / pose.val_ann, "
                             "relative to data.root, or write them with make_stick_figures)")
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress lines
            return COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise KeypointsError(f"{path} is not a COCO annotation file: {type(e).__name__}: {e}") from None


class CocoKeypoints(Dataset):
    """Top-down person samples of a COCO ``person_keypoints`` file (one per ground-truth person).

    Items: ``{"img": (3, H, W) float32 normalised, "target": (K, h, w), "target_weight": (K, 1),
    "center": (2,), "size": (2,), "rotation": float, "image_id": int, "score": float (box score, 1 for
    ground-truth boxes), "index": int (the sample actually returned), "num_skipped": int}``.

    An image that cannot be read is skipped: another sample is returned (random in training, the next one
    otherwise), counted in ``num_skipped`` and logged once; :meth:`skip_stats` lists the distinct files over
    all processes using the dataset.
    """

    def __init__(self, ann_file: str | os.PathLike, img_dir: str | os.PathLike, train: bool = False,
                 input_size: Sequence[int] = (192, 256), heatmap_size: Sequence[int] = (48, 64), sigma: float = 2.0,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 flip_prob: float = 0.5, half_body_prob: float = 0.3, half_body_min_joints: int = 8,
                 scale_factor: float = 0.5, rot_factor: float = 40.0, rot_prob: float = 0.6,
                 center_shift_prob: float = 0.3, padding: float = 1.25,
                 flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS) -> None:
        from .datasets import _SkipLog

        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if min(self.input_size + self.heatmap_size) <= 0:
            raise ValueError(f"input_size {input_size} and heatmap_size {heatmap_size} must be positive (W, H)")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.ann_file, self.img_dir = str(ann_file), Path(img_dir)
        self.train, self.sigma, self.padding = train, float(sigma), float(padding)
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self.flip_prob, self.half_body_prob, self.half_body_min_joints = flip_prob, half_body_prob, half_body_min_joints
        self.scale_factor, self.rot_factor, self.rot_prob = scale_factor, rot_factor, rot_prob
        self.center_shift_prob = center_shift_prob
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.coco = _load_coco(ann_file)
        cats = self.coco.loadCats(self.coco.getCatIds())
        kp_names = next((c.get("keypoints") for c in cats if c.get("keypoints")), None)
        self.keypoint_names = tuple(kp_names) if kp_names else COCO_KEYPOINTS
        self.num_keypoints = len(self.keypoint_names)
        if max((max(p) for p in self.flip_pairs), default=-1) >= self.num_keypoints:
            raise ValueError(f"flip_pairs {self.flip_pairs} name keypoints beyond the {self.num_keypoints} of {ann_file}")
        self.samples = self._collect()
        self._skips = _SkipLog()
        self._reported: set[str] = set()

    @property
    def classes(self) -> list[str]:
        return list(self.keypoint_names)

    @property
    def num_classes(self) -> int:
        return self.num_keypoints

    def _collect(self) -> list[dict]:
        k = None
        out = []
        for img_id in sorted(self.coco.getImgIds()):
            info = self.coco.loadImgs(img_id)[0]
            width, height = info.get("width"), info.get("height")
            if width is None or height is None or "file_name" not in info:
                raise KeypointsError(f"{self.ann_file}: image {img_id} lacks file_name/width/height")
            for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id, iscrowd=False)):
                if "bbox" not in ann or "keypoints" not in ann:
                    continue
                x, y, w, h = ann["bbox"]
                x1, y1 = max(0.0, x), max(0.0, y)
                x2, y2 = min(width - 1.0, x1 + max(0.0, w - 1)), min(height - 1.0, y1 + max(0.0, h - 1))
                if not (ann.get("area", 1) > 0 and x2 > x1 and y2 > y1):
                    continue
                kp = np.asarray(ann["keypoints"], dtype=np.float32)
                if kp.size % 3 or (k is not None and kp.size != 3 * k):
                    raise KeypointsError(f"{self.ann_file}: annotation {ann.get('id')} has {kp.size} keypoint values, "
                                         f"not 3 x {self.num_keypoints}")
                k = kp.size // 3
                if kp.max() <= 0 or ann.get("num_keypoints", 1) == 0:
                    continue
                kp = kp.reshape(-1, 3)
                out.append(dict(image_id=img_id, ann_id=ann.get("id"), file=info["file_name"], box=(x1, y1, x2 - x1, y2 - y1),
                                joints=kp[:, :2].copy(), visible=np.minimum(1.0, kp[:, 2]), area=float(ann.get("area", 0))))
        if k is not None and k != self.num_keypoints:
            raise KeypointsError(f"{self.ann_file}: annotations have {k} keypoints, the category names {self.num_keypoints}")
        return out

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, path: Path) -> np.ndarray:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError("unreadable or missing image")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _augment(self, s: dict, img: np.ndarray):
        joints, vis = s["joints"].copy(), s["visible"].copy()
        aspect = self.input_size[0] / self.input_size[1]
        x, y, w, h = s["box"]
        center, size = box_to_center_size((x, y, w, h), aspect, self.padding)
        rot = 0.0
        if self.train:
            # mmpose shifts the center once when it loads the annotations; we draw it per sample
            if np.random.rand() < self.center_shift_prob:
                center = center + 0.4 * (np.random.rand(2) - 0.5).astype(np.float32) * np.array([w, h], np.float32)
            if np.random.rand() <= self.flip_prob:
                img = img[:, ::-1]
                joints, vis = flip_joints(joints, vis, img.shape[1], self.flip_pairs)
                center = np.array([img.shape[1] - center[0] - 1, center[1]], np.float32)
            if vis.sum() > self.half_body_min_joints and np.random.rand() < self.half_body_prob:
                hb = half_body_box(joints, vis, aspect)
                if hb is not None:
                    center, size = hb
            sf, rf = self.scale_factor, self.rot_factor
            size = size * float(np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf))
            r = float(np.clip(np.random.randn() * rf, -2 * rf, 2 * rf))
            rot = r if np.random.rand() <= self.rot_prob else 0.0
        return img, joints, vis, center, size, rot

    def _load(self, i: int) -> dict:
        import cv2

        s = self.samples[i]
        img = self._read(self.img_dir / s["file"])
        img, joints, vis, center, size, rot = self._augment(s, img)
        m = affine_matrix(center, size, rot, self.input_size)
        crop = cv2.warpAffine(np.ascontiguousarray(img), m, self.input_size, flags=cv2.INTER_LINEAR)
        j_in = affine_points(joints, m).astype(np.float32)
        target, weight = encode_heatmaps(j_in, vis, self.input_size, self.heatmap_size, self.sigma)
        x = (crop.transpose(2, 0, 1).astype(np.float32) / 255.0 - self.mean) / self.std
        return {"img": torch.from_numpy(np.ascontiguousarray(x)), "target": torch.from_numpy(target),
                "target_weight": torch.from_numpy(weight), "center": torch.from_numpy(np.asarray(center, np.float32)),
                "size": torch.from_numpy(np.asarray(size, np.float32)), "rotation": float(rot),
                "image_id": int(s["image_id"]), "score": 1.0, "index": i}

    def __getitem__(self, index: int) -> dict:
        i, skipped = int(index), 0
        while True:
            try:
                item = self._load(i)
                item["num_skipped"] = skipped
                return item
            except (OSError, ValueError) as e:
                path = str(self.img_dir / self.samples[i]["file"])
                if path not in self._reported:
                    self._reported.add(path)
                    self._skips.add(path, f"{type(e).__name__}: {e}")
                    log.warning("skipping %s: %s", path, e)
                skipped += 1
                if skipped >= len(self):
                    raise OSError(f"no readable image among {len(self)} samples of {self.ann_file} "
                                  f"(images under {self.img_dir}); last error: {e}") from None
                i = int(torch.randint(len(self), ())) if self.train else (i + 1) % len(self)

    def skip_stats(self, reset: bool = False) -> dict:
        """Distinct unreadable images over all processes using this dataset (``count``, ``files``, ``reasons``)."""
        if reset:
            self._reported.clear()
        return self._skips.stats(reset=reset)


# --------------------------------------------------------------------------- stick figures
# A standing person in a unit frame (x right, y down; hips' midpoint at the origin, height ~1.7).
_REST = {
    "nose": (0.0, -1.45), "left_eye": (0.04, -1.49), "right_eye": (-0.04, -1.49), "left_ear": (0.09, -1.46),
    "right_ear": (-0.09, -1.46), "left_shoulder": (0.2, -1.15), "right_shoulder": (-0.2, -1.15),
    "left_hip": (0.12, 0.0), "right_hip": (-0.12, 0.0),
}


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    base = rng.uniform(40, 215, size=3)
    noise = rng.normal(0, 1, size=(max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w]
    t = rng.uniform(0, np.pi)
    stripes = np.sin((xx * np.cos(t) + yy * np.sin(t)) * rng.uniform(0.05, 0.3))[..., None]
    img = base + 25 * noise + rng.uniform(5, 25) * stripes
    return np.clip(img, 0, 255).astype(np.uint8)


def _figure(rng: np.random.Generator, height: float, cx: float, cy: float) -> np.ndarray:
    """17 COCO keypoints of a random pose: the rest skeleton with random limb angles, lean and width."""
    pts = {k: np.array(v) for k, v in _REST.items()}
    lean = rng.uniform(-0.35, 0.35)
    c, s = math.cos(lean), math.sin(lean)
    for k in list(pts):
        if "hip" not in k:
            x, y = pts[k]
            pts[k] = np.array([c * x - s * y, s * x + c * y])

    def limb(start, length, angle):  # angle from straight down, radians
        return start + length * np.array([math.sin(angle), math.cos(angle)])

    for side, sign in (("left", 1.0), ("right", -1.0)):
        up = sign * rng.uniform(-0.3, 2.4)
        pts[f"{side}_elbow"] = limb(pts[f"{side}_shoulder"], 0.32, up)
        pts[f"{side}_wrist"] = limb(pts[f"{side}_elbow"], 0.28, up + sign * rng.uniform(-0.4, 1.8))
        leg = sign * rng.uniform(-0.25, 0.7)
        pts[f"{side}_knee"] = limb(pts[f"{side}_hip"], 0.45, leg)
        pts[f"{side}_ankle"] = limb(pts[f"{side}_knee"], 0.42, leg - sign * rng.uniform(0.0, 0.8))
    kp = np.array([pts[n] for n in COCO_KEYPOINTS])
    kp[:, 0] *= rng.uniform(0.8, 1.25)
    if rng.random() < 0.5:  # facing away: left and right sides swap in the image, as for real people
        kp[:, 0] *= -1
        for a, b in COCO_FLIP_PAIRS:
            kp[[a, b]] = kp[[b, a]]
    kp -= (kp.min(0) + kp.max(0)) / 2  # centre the figure's box on (cx, cy)
    return kp * (height / 1.9) + np.array([cx, cy])


def _draw(img: np.ndarray, kp: np.ndarray, rng: np.random.Generator, thick: int) -> None:
    import cv2

    # Left limbs warm, right limbs cool: the figure itself says which side is which.
    left, right, mid = (230, 60, 40), (40, 90, 230), tuple(int(v) for v in rng.uniform(0, 255, 3))
    for a, b in COCO_SKELETON:
        if a < 5 and b < 5:
            continue
        name_a, name_b = COCO_KEYPOINTS[a], COCO_KEYPOINTS[b]
        col = left if "left" in name_a and "left" in name_b else right if "right" in name_a and "right" in name_b else mid
        cv2.line(img, tuple(int(round(v)) for v in kp[a]), tuple(int(round(v)) for v in kp[b]), col, thick, cv2.LINE_AA)
    head_r = max(2, int(round(np.linalg.norm(kp[3] - kp[4]) * 0.7)))
    cv2.circle(img, tuple(int(round(v)) for v in kp[0]), head_r, mid, -1, cv2.LINE_AA)
    for j, col in ((1, left), (2, right), (3, left), (4, right)):
        cv2.circle(img, tuple(int(round(v)) for v in kp[j]), max(1, thick // 2), col, -1, cv2.LINE_AA)


def make_stick_figures(out_dir: str | os.PathLike, n_train: int = 200, n_val: int = 50, size: int | Sequence[int] = 128,
                       seed: int = 0, max_people: int = 2) -> dict[str, Path]:
    """Write a COCO-format keypoint data set of stick figures on textured backgrounds.

    Layout (the COCO one): ``out_dir/{train2017,val2017}/*.jpg`` and
    ``out_dir/annotations/person_keypoints_{train2017,val2017}.json`` with the 17 COCO keypoints, boxes,
    areas (box area), ``num_keypoints`` and visibility (2 inside the image, 0 with coordinates 0 outside).
    Each image holds 1..``max_people`` figures of random pose, size and position; left limbs are drawn
    warm and right ones cool so that the sides can be told apart. ``size`` is the image (H, W) or one side.
    Returns ``{"root", "train_ann", "val_ann"}``.
    """
    import cv2

    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train and n_val must be >= 1, got {n_train}, {n_val}")
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(h, w) < 32:
        raise ValueError(f"size {(h, w)}: stick figures need images of at least 32x32")
    root = Path(out_dir)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_KEYPOINTS),
             "skeleton": [[a + 1, b + 1] for a, b in COCO_SKELETON]}]
    out = {"root": root}
    ann_id = 1
    for split, n in (("train2017", n_train), ("val2017", n_val)):
        (root / split).mkdir(exist_ok=True)
        images, anns = [], []
        for i in range(n):
            img_id = (1 if split == "train2017" else 1_000_000) + i
            img = _texture(rng, h, w)
            people = int(rng.integers(1, max_people + 1))
            for _ in range(people):
                ph = rng.uniform(0.45, 0.9) * h / (1 if people == 1 else 1.3)
                kp = _figure(rng, ph, rng.uniform(0.25, 0.75) * w, rng.uniform(0.3, 0.7) * h)
                _draw(img, kp, rng, max(1, int(round(ph / 40))))
                inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
                if inside.sum() < 3:
                    continue
                pad = ph * 0.06
                lo = np.maximum(kp[inside].min(0) - pad, 0)
                hi = np.minimum(kp[inside].max(0) + pad, [w - 1, h - 1])
                bw, bh = hi - lo
                flat = []
                for (x, y), v in zip(kp, inside):
                    flat += [round(float(x), 2), round(float(y), 2), 2] if v else [0, 0, 0]
                anns.append({"id": ann_id, "image_id": img_id, "category_id": 1, "iscrowd": 0,
                             "bbox": [round(float(lo[0]), 2), round(float(lo[1]), 2), round(float(bw), 2), round(float(bh), 2)],
                             "area": round(float(bw * bh), 2), "num_keypoints": int(inside.sum()), "keypoints": flat})
                ann_id += 1
            name = f"{img_id:012d}.jpg"
            cv2.imwrite(str(root / split / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            images.append({"id": img_id, "file_name": name, "width": w, "height": h})
        path = root / "annotations" / f"person_keypoints_{split}.json"
        path.write_text(json.dumps({"info": {"description": "videoformers stick figures"}, "images": images,
                                    "annotations": anns, "categories": cats}))
        out["train_ann" if split == "train2017" else "val_ann"] = path
    return out


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m videoformers.data.keypoints",
                                 description="Write a COCO-format stick-figure keypoint data set (make_stick_figures).")
    ap.add_argument("out_dir")
    ap.add_argument("--train", type=int, default=600, help="training images")
    ap.add_argument("--val", type=int, default=100, help="validation images")
    ap.add_argument("--size", type=int, default=128, help="image side in pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-people", type=int, default=2)
    a = ap.parse_args(argv)
    out = make_stick_figures(a.out_dir, a.train, a.val, a.size, a.seed, a.max_people)
    print(f"wrote {out['train_ann']} and {out['val_ann']} (images under {out['root']})")


if __name__ == "__main__":
    _main()
