"""Multi-view evaluation: clips x crops per video, averaged logits or probabilities.

A val/test item holds ``V = test_num_clips * test_num_crops`` views ``(V, C, T, H, W)``; the views
of a batch are folded into the batch axis for one forward pass, then combined per video by the
mean of the logits (UniFormer, ViViT) or of the softmax probabilities (UniFormerV2's
``TEST.ADD_SOFTMAX``). Under DDP every process scores its shard and the scores are gathered and
de-duplicated by sample index, so the metrics cover each video exactly once.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .distributed import DistInfo, all_gather_objects, all_reduce_sum
from .losses import main_logits
from .metrics import classification_metrics, plot_confusion_matrix, write_metrics, write_predictions

__all__ = ["EvalResult", "predict_views", "evaluate", "write_eval_outputs", "autocast_context"]


def autocast_context(device: torch.device, amp: str):
    if amp in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
    return contextlib.nullcontext()


@dataclass
class EvalResult:
    scores: torch.Tensor      # (N, K) combined logits or probabilities, sorted by index
    labels: torch.Tensor      # (N,)
    indices: torch.Tensor     # (N,)
    probabilities: bool       # scores are probabilities (view_average == "probs")
    num_views: int
    num_skipped: int          # distinct broken files (replaced by others), where the dataset counts them
    seconds: float
    num_corrupt: int = 0      # damaged frames FFmpeg flagged in the evaluated clips (data.corrupt_frames)

    def metrics(self, num_classes: int, classes: Sequence[str] | None = None) -> dict:
        m = classification_metrics(self.scores, self.labels, num_classes, classes)
        if self.probabilities:
            loss = F.nll_loss(self.scores.clamp_min(1e-12).log(), self.labels).item()
        else:
            loss = F.cross_entropy(self.scores, self.labels).item()
        m.update({"loss": loss, "num_views": self.num_views, "num_skipped": self.num_skipped,
                  "num_corrupt_frames": self.num_corrupt,
                  "seconds": round(self.seconds, 3),
                  "videos_per_second": round(len(self.labels) / max(self.seconds, 1e-9), 3)})
        return m


def predict_views(model: nn.Module, video: torch.Tensor, view_average: str = "logits") -> torch.Tensor:
    """``video`` ``(B, V, C, T, H, W)`` or ``(B, C, T, H, W)`` -> combined ``(B, K)`` scores."""
    if view_average not in ("logits", "probs"):
        raise ValueError(f"eval.view_average must be 'logits' or 'probs', got {view_average!r}")
    if video.ndim == 5:
        video = video.unsqueeze(1)
    if video.ndim != 6:
        raise ValueError(f"expected a batch of views (B, V, C, T, H, W), got shape {tuple(video.shape)}")
    b, v = video.shape[:2]
    out = model(video.flatten(0, 1))
    logits = main_logits(out)
    if logits is None:
        raise ValueError("evaluation of multi-head (dict) outputs is not supported; evaluate one head at a time")
    return average_views(logits.float().view(b, v, -1), view_average)


def average_views(logits: torch.Tensor, how: str = "logits") -> torch.Tensor:
    """Combine the views (clips x crops) of each video: ``(B, V, K)`` logits -> ``(B, K)`` scores.

    ``"logits"``: the mean of the logits, as the authors' test code (UniFormer, ViViT, DualFormer);
    ``"probs"``: the mean of the softmax probabilities. The one rule ``eval`` and ``predict`` share, so
    that the same checkpoint and views give the same ranking in both."""
    if how not in ("logits", "probs"):
        raise ValueError(f"view averaging must be 'logits' or 'probs', got {how!r}")
    if how == "probs":
        return logits.softmax(dim=-1).mean(dim=1)
    return logits.mean(dim=1)


def view_probabilities(logits: torch.Tensor, how: str = "logits") -> torch.Tensor:
    """Class probabilities of one video from its ``(V, K)`` view logits (:func:`average_views`, then a
    softmax for ``"logits"``)."""
    scores = average_views(logits.float()[None], how)[0]
    return scores.softmax(-1) if how == "logits" else scores


def _skip_stats(dataset, reset: bool = False) -> dict | None:
    """``dataset.skip_stats()`` (distinct broken files, across DataLoader workers) where the dataset, or
    the one it wraps, keeps them; else ``None``."""
    for ds in (dataset, getattr(dataset, "dataset", None)):
        fn = getattr(type(ds), "skip_stats", None) if ds is not None else None
        if fn is not None:
            return ds.skip_stats(reset=reset)
    return None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    dist_info: DistInfo | None = None,
    amp: str = "none",
    view_average: str = "logits",
    max_batches: int | None = None,
    progress: bool = False,
    desc: str = "eval",
) -> EvalResult:
    info = dist_info or DistInfo()
    was_training = model.training
    model.eval()
    stats = _skip_stats(loader.dataset, reset=True)  # counted from here: this pass's broken files
    scores, labels, indices = [], [], []
    skipped, corrupt, views = 0, 0, 1
    t0 = time.perf_counter()
    it = loader
    bar = None
    if progress and info.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0, disable=None)
        it = bar
    for i, batch in enumerate(it):
        if max_batches is not None and i >= max_batches:
            break
        video = batch["video"].to(device, non_blocking=True)
        views = video.shape[1] if video.ndim == 6 else 1
        with autocast_context(device, amp):
            s = predict_views(model, video, view_average)
        scores.append(s.float().cpu())
        labels.append(torch.as_tensor(batch["label"]).view(-1).cpu())
        indices.append(torch.as_tensor(batch["index"]).view(-1).cpu())
        if "num_skipped" in batch:
            skipped += int(torch.as_tensor(batch["num_skipped"]).sum())
        if "num_corrupt" in batch:
            corrupt += int(torch.as_tensor(batch["num_corrupt"]).sum())
    if bar is not None:
        bar.close()
    model.train(was_training)
    local = (
        torch.cat(scores) if scores else torch.empty(0, 0),
        torch.cat(labels) if labels else torch.empty(0, dtype=torch.long),
        torch.cat(indices) if indices else torch.empty(0, dtype=torch.long),
    )
    parts = all_gather_objects(local, info)
    skipped, corrupt = (int(v) for v in all_reduce_sum([skipped, corrupt], info))
    stats = _skip_stats(loader.dataset, reset=True)
    if stats is not None:  # distinct broken files (a file replaced in several views or retries counts once)
        files = set().union(*all_gather_objects(set(stats["files"]), info))
        skipped = len(files)
    s = torch.cat([p[0] for p in parts if p[0].numel()])
    y = torch.cat([p[1] for p in parts])
    idx = torch.cat([p[2] for p in parts])
    # Padding of the distributed sampler repeats a few samples: keep the first of each index.
    order = torch.argsort(idx, stable=True)
    s, y, idx = s[order], y[order], idx[order]
    keep = torch.ones_like(idx, dtype=torch.bool)
    keep[1:] = idx[1:] != idx[:-1]
    return EvalResult(s[keep], y[keep].long(), idx[keep], view_average == "probs", views, skipped,
                      time.perf_counter() - t0, corrupt)


def write_eval_outputs(out_dir: str | Path, result: EvalResult, metrics: dict, classes: Sequence[str] | None,
                       paths: Sequence[str] | None = None, prefix: str = "", extra: dict | None = None) -> dict:
    """``metrics.json`` (keys ``top1``, ``top5``, ``mean_class_acc``, ...), ``predictions.csv`` and
    ``confusion_matrix.png`` in ``out_dir``. Returns the written metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    if extra:
        payload.update(extra)
    payload["classes"] = list(classes) if classes is not None else None
    payload["confusion_matrix"] = metrics.get("confusion_matrix")
    write_metrics(out_dir / f"{prefix}metrics.json", payload)
    write_predictions(out_dir / f"{prefix}predictions.csv", result.indices, result.scores, result.labels, classes,
                      paths, probabilities=result.probabilities)
    if metrics.get("confusion_matrix") is not None:
        plot_confusion_matrix(out_dir / f"{prefix}confusion_matrix.png", metrics["confusion_matrix"], classes,
                              title=f"Confusion matrix (top-1 {metrics['top1']:.1f}%)")
    return payload
