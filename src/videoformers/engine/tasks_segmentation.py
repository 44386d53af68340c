"""Semantic segmentation as an engine task (``data.dataset=ade20k``; UniFormer TPAMI Sec. 6.4).

* Loss: per-pixel cross-entropy with ``seg.ignore_index`` (255; mean over all pixels as mmseg 0.x), plus
  ``seg.aux_weight`` (0.4) times the auxiliary head's (UperNet's FCN head), as the authors' mmseg configs.
* Metrics (mmseg's ``mean_iou``): per-class intersection and union accumulated over the whole split,
  ``IoU_c = I_c / U_c``, ``mIoU`` = mean over classes present in the labels or predictions (NaN classes
  left out), ``aAcc`` = correct / labelled pixels, ``mAcc`` = mean per-class accuracy; all in percent.
  Each process accumulates per image and the totals are gathered by image index, so the distributed
  sampler's padding duplicates are counted once.
* Inference: ``whole`` or ``slide`` (crop ``seg.slide_crop`` or ``seg.crop_size``, stride
  ``seg.slide_stride``: 512 / 341 as the authors' configs), at each ratio of ``seg.test_scales`` times
  ``seg.img_scale`` (keep ratio, optional ``seg.size_divisor``), optionally flipped; softmax scores are
  averaged and resized to the label's size (mmseg's ``aug_test``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tasks import Task, register_task

__all__ = [
    "SegmentationTask",
    "intersect_and_union",
    "segmentation_metrics",
    "seg_loss",
    "inference",
    "slide_inference",
    "whole_inference",
    "resize_for_test",
]


def seg_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Per-pixel cross-entropy, ignored pixels contributing 0, averaged over all pixels: the mmseg 0.x
    ``CrossEntropyLoss`` the authors trained with (``reduction='none'`` then a plain mean), so padding and
    ignored regions scale the loss down rather than re-weighting the labelled pixels (and an image with no
    labelled pixel gives 0, not NaN)."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none").mean()


def intersect_and_union(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int = 255
                        ) -> torch.Tensor:
    """``(4, K)`` float64: per-class intersection, union, predicted area and label area of one prediction
    (mmseg's ``intersect_and_union``; pixels labelled ``ignore_index`` are left out)."""
    mask = label != ignore_index
    p, y = pred[mask].long(), label[mask].long()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"label ids must lie in [0, {num_classes}) or be {ignore_index}; got "
                         f"{int(y.min())}..{int(y.max())}")
    inter = torch.bincount(p[p == y], minlength=num_classes)[:num_classes].double()
    ap = torch.bincount(p.clamp(0, num_classes - 1), minlength=num_classes)[:num_classes].double()
    al = torch.bincount(y, minlength=num_classes)[:num_classes].double()
    return torch.stack([inter, ap + al - inter, ap, al])


def segmentation_metrics(areas: torch.Tensor, classes: Sequence[str] | None = None) -> dict:
    """Metrics (percent) from summed ``(4, K)`` areas: ``mIoU``, ``aAcc``, ``mAcc``, ``IoU``/``Acc`` per class
    (``None`` for a class absent from both labels and predictions / from the labels)."""
    inter, union, _, label = areas.double()
    iou = inter / union
    acc = inter / label
    K = areas.shape[1]
    names = list(classes) if classes is not None and len(classes) == K else [str(i) for i in range(K)]

    def mean(t):
        v = t[~torch.isnan(t)]
        return float(v.mean() * 100) if v.numel() else float("nan")

    def per(t):
        return {n: (None if math.isnan(float(v)) else float(v) * 100) for n, v in zip(names, t)}

    total = float(label.sum())
    return {"mIoU": mean(iou), "aAcc": float(inter.sum() / total * 100) if total else float("nan"),
            "mAcc": mean(acc), "IoU": per(iou), "Acc": per(acc), "num_classes": K}


def resize_for_test(h: int, w: int, img_scale: Sequence[int], ratio: float = 1.0, size_divisor: int | None = None
              ) -> tuple[int, int]:
    """The ``(H, W)`` an ``h x w`` image is resized to for testing: mmseg ``Resize(keep_ratio=True)`` at
    ``img_scale * ratio`` (``MultiScaleFlipAug``'s ``img_ratios``), each side then rounded up to a multiple of
    ``size_divisor`` (the authors' ``AlignResize`` for Semantic FPN)."""
    from videoformers.data.segmentation import rescale_size

    scale = (int(img_scale[0] * ratio), int(img_scale[1] * ratio))
    nw, nh = rescale_size(w, h, scale)
    if size_divisor:
        nh, nw = int(math.ceil(nh / size_divisor)) * size_divisor, int(math.ceil(nw / size_divisor)) * size_divisor
    return nh, nw


def whole_inference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, K, H, W)`` of the whole image."""
    out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def slide_inference(model: nn.Module, x: torch.Tensor, num_classes: int, crop: Sequence[int],
                    stride: Sequence[int]) -> torch.Tensor:
    """mmseg ``slide_inference``: crops of ``crop`` every ``stride`` (the last one flush with the border),
    overlapping logits averaged."""
    B, _, H, W = x.shape
    ch, cw = int(crop[0]), int(crop[1])
    sh, sw = int(stride[0]), int(stride[1])
    if sh < 1 or sw < 1:
        raise ValueError(f"slide stride must be >= 1, got {stride}")
    gh = max(H - ch + sh - 1, 0) // sh + 1
    gw = max(W - cw + sw - 1, 0) // sw + 1
    preds = x.new_zeros((B, num_classes, H, W))
    count = x.new_zeros((1, 1, H, W))
    for i in range(gh):
        for j in range(gw):
            y1, x1 = i * sh, j * sw
            y2, x2 = min(y1 + ch, H), min(x1 + cw, W)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            preds[:, :, y1:y2, x1:x2] += whole_inference(model, x[:, :, y1:y2, x1:x2]).float()
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count


def inference(model: nn.Module, image: torch.Tensor, num_classes: int, out_size: Sequence[int], seg_cfg,
              ) -> torch.Tensor:
    """Softmax scores ``(B, K, *out_size)`` of a normalised image ``(B, 3, H, W)`` under ``seg_cfg``'s test
    settings (scales, flip, whole/slide), averaged over the augmentations."""
    if seg_cfg.test_mode not in ("whole", "slide"):
        raise ValueError(f"seg.test_mode must be 'whole' or 'slide', got {seg_cfg.test_mode!r}")
    H, W = image.shape[-2:]
    total = None
    n = 0
    for ratio in seg_cfg.test_scales:
        size = resize_for_test(H, W, seg_cfg.img_scale, float(ratio), seg_cfg.size_divisor)
        x = image if tuple(size) == (H, W) else F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        for flip in ((False, True) if seg_cfg.test_flip else (False,)):
            xi = x.flip(-1) if flip else x
            if seg_cfg.test_mode == "slide":
                logits = slide_inference(model, xi, num_classes, seg_cfg.slide_crop or seg_cfg.crop_size,
                                         seg_cfg.slide_stride)
            else:
                logits = whole_inference(model, xi)
            if flip:
                logits = logits.flip(-1)
            logits = F.interpolate(logits.float(), size=tuple(out_size), mode="bilinear", align_corners=False)
            p = logits.softmax(1)
            total = p if total is None else total + p
            n += 1
    return total / n


def _collate_list(items: list[dict]) -> dict:
    # Validation images keep their own sizes: a batch is a list (one forward per image).
    return {"image": [it["image"] for it in items], "label": [it["label"] for it in items],
            "index": torch.tensor([int(it["index"]) for it in items]),
            "num_skipped": torch.tensor([int(it.get("num_skipped", 0)) for it in items]),
            "path": [it.get("path") for it in items]}


class SegmentationTask(Task):
    """Semantic segmentation on an ADE20K-layout folder (see the module docstring)."""

    name = "segmentation"
    primary_metric = "mIoU"
    sample_unit = "images"
    rate_unit = "images"
    logged_metrics = ("mIoU", "aAcc", "mAcc")

    def build_datasets(self, cfg, splits=("train", "val")):
        from videoformers.data.segmentation import SPLIT_DIRS, SegFolderDataset

        if not cfg.data.root:
            raise ValueError("data.dataset=ade20k needs data.root (a folder with images/ and annotations/)")
        root = Path(cfg.data.root)
        if not root.is_dir():
            raise ValueError(f"data.root {root} is not a folder")
        mean = cfg.data.mean or (0.485, 0.456, 0.406)
        std = cfg.data.std or (0.229, 0.224, 0.225)
        out = {}
        for split in splits:
            sub = SPLIT_DIRS.get(split, split)
            if split != "train" and not (root / "images" / sub).exists() and not (root / "annotations" / sub).exists():
                out[split] = None  # no validation folder: train without validation
                continue
            out[split] = SegFolderDataset(root, split, cfg.seg, mean, std, num_classes=cfg.model.num_classes or None,
                                          max_broken_fraction=cfg.data.max_broken_fraction)
        return out

    def num_classes(self, cfg, train_dataset):
        return int(cfg.model.num_classes or getattr(train_dataset, "num_classes", 0) or 0)

    def class_names(self, train_dataset, num_classes):
        names = list(getattr(train_dataset, "classes", None) or [])
        return names if len(names) == num_classes else [str(i) for i in range(num_classes)]

    def collate_fn(self, split):
        return None if split == "train" else _collate_list

    def prepare_batch(self, batch, device):
        x = batch["image"].to(device, non_blocking=True)
        return x, batch["label"].to(device, non_blocking=True), int(x.shape[0])

    def forward_loss(self, model, x, target, cfg, mixed: bool = False):
        if mixed:
            raise ValueError("mixup/cutmix (train.mixup/cutmix) does not apply to segmentation")
        out = model(x)
        ign = cfg.seg.ignore_index
        if isinstance(out, (tuple, list)):
            main, aux = out[0], out[1]
            loss = seg_loss(main, target, ign) + cfg.seg.aux_weight * seg_loss(aux, target, ign)
        else:
            main = out
            loss = seg_loss(main, target, ign)
        return loss, main

    def train_correct(self, output, target):
        if output.shape[-2:] != target.shape[-2:]:
            return 0, 0
        mask = target != 255
        return int((output.detach().argmax(1)[mask] == target[mask]).sum()), int(mask.sum())

    @torch.no_grad()
    def evaluate(self, model, loader, device, dist_info, cfg, progress=False, desc="validate"):
        import time

        from videoformers.engine.distributed import DistInfo, all_gather_objects, all_reduce_sum
        from videoformers.engine.evaluator import autocast_context
        from videoformers.engine.state import skip_stats

        info = dist_info or DistInfo()
        was_training = model.training
        model.eval()
        skip_stats(loader.dataset, reset=True)
        t0 = time.perf_counter()
        K = self._num_classes(model, cfg, loader)
        per_image: dict[int, torch.Tensor] = {}
        skipped = 0
        it = loader
        bar = None
        if progress and info.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0, disable=None)
            it = bar
        max_batches = getattr(cfg.eval, "max_batches", None)
        for b, batch in enumerate(it):
            if max_batches is not None and b >= max_batches:
                break
            images = batch["image"] if isinstance(batch["image"], list) else list(batch["image"])
            labels = batch["label"] if isinstance(batch["label"], list) else list(batch["label"])
            for img, lab, idx in zip(images, labels, torch.as_tensor(batch["index"]).view(-1).tolist()):
                with autocast_context(device, cfg.train.amp):
                    probs = inference(model, img[None].to(device), K, lab.shape[-2:], cfg.seg)
                pred = probs.argmax(1)[0].cpu()
                per_image.setdefault(int(idx), intersect_and_union(pred, lab, K, cfg.seg.ignore_index))
            skipped += int(torch.as_tensor(batch.get("num_skipped", 0)).sum())
        if bar is not None:
            bar.close()
        model.train(was_training)
        merged: dict[int, torch.Tensor] = {}
        for part in all_gather_objects(per_image, info):
            for k, v in part.items():
                merged.setdefault(k, v)
        areas = torch.stack(list(merged.values())).sum(0) if merged else torch.zeros(4, K, dtype=torch.float64)
        skipped = int(all_reduce_sum([skipped], info)[0])
        stats = skip_stats(loader.dataset, reset=True)
        if stats is not None:
            skipped = len(set().union(*all_gather_objects(set(stats["files"]), info)))
        m = segmentation_metrics(areas, self._classes if self._classes and len(self._classes) == K else None)
        m.update(num_samples=len(merged), num_skipped=skipped, seconds=time.perf_counter() - t0,
                 areas=areas.tolist())
        return areas, m

    def _num_classes(self, model, cfg, loader) -> int:
        k = int(getattr(model, "num_classes", 0) or getattr(getattr(model, "module", None), "num_classes", 0)
                or cfg.model.num_classes or getattr(loader.dataset, "num_classes", 0) or 0)
        if k <= 0:
            raise ValueError("cannot tell the number of classes for the segmentation metrics; set model.num_classes")
        if not self._classes:
            names = getattr(loader.dataset, "classes", None)
            self._classes = list(names) if names and len(names) == k else None
        return k

    def bind(self, num_classes: int, classes: Sequence[str] | None) -> "SegmentationTask":
        self._classes = list(classes) if classes else None
        return self

    def write_outputs(self, out_dir, result, metrics, classes, paths, extra):
        from videoformers.engine.metrics import write_metrics

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        K = int(metrics.get("num_classes", 0))
        names = list(classes) if classes is not None and len(classes) == K else list(metrics["IoU"])
        iou = list(metrics["IoU"].values())
        payload = {k: v for k, v in metrics.items() if k not in ("IoU", "Acc", "areas")}
        payload["per_class_IoU"] = dict(zip(names, iou))
        payload["per_class_Acc"] = dict(zip(names, metrics["Acc"].values()))
        payload["classes"] = names
        if extra:
            payload.update(extra)
        payload = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in payload.items()}
        write_metrics(out_dir / "metrics.json", payload)
        plot_iou(out_dir / "per_class_iou.png", names, iou, metrics["mIoU"])
        return payload

    def describe(self, m):
        return f"mIoU {m['mIoU']:.2f}  aAcc {m['aAcc']:.2f}  mAcc {m['mAcc']:.2f}"

    _classes: list[str] | None = None


def plot_iou(path: str | Path, names: Sequence[str], iou: Sequence[float | None], miou: float) -> None:
    """A horizontal bar per class (IoU in percent; absent classes drawn empty)."""
    from videoformers.engine.metrics import _plt

    plt = _plt()
    k = len(names)
    fig, ax = plt.subplots(figsize=(7, min(max(2.5, 0.22 * k + 1.2), 40)))
    vals = [0.0 if v is None else float(v) for v in iou]
    ax.barh(range(k), vals, color="#4C72B0")
    ax.set_yticks(range(k), [str(n) for n in names], fontsize=7 if k > 40 else 8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    ax.axvline(miou if not math.isnan(miou) else 0, color="#C44E52", ls="--", lw=1)
    ax.set_title(f"Per-class IoU (mIoU {miou:.1f}%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


register_task("segmentation", SegmentationTask, ("ade20k",))
