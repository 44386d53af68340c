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
from .state import skip_stats
from .metrics import classification_metrics, plot_confusion_matrix, write_metrics, write_predictions

__all__ = ["EvalResult", "predict_views", "average_views", "multi_head_metrics", "evaluate", "write_eval_outputs",
           "autocast_context"]


def autocast_context(device: torch.device, amp: str):
    if amp in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
    return contextlib.nullcontext()


@dataclass
class EvalResult:
    scores: torch.Tensor      # (N, K) combined logits or probabilities, sorted by index (a dict per head)
    labels: torch.Tensor      # (N,) (a dict per head)
    indices: torch.Tensor     # (N,)
    probabilities: bool       # scores are probabilities (view_average == "probs")
    num_views: int
    num_skipped: int          # distinct broken files (replaced by others), where the dataset counts them
    seconds: float
    num_corrupt: int = 0      # damaged frames FFmpeg flagged in the evaluated clips (data.corrupt_frames)

    def metrics(self, num_classes: int, classes: Sequence[str] | None = None) -> dict:
        if isinstance(self.scores, dict):  # several heads: per-head and action accuracy, summed losses
            m = multi_head_metrics(self.scores, self.labels, self.probabilities)
            loss = sum(_loss(self.scores[h], self.labels[h], self.probabilities) for h in m["heads"])
        else:
            m = classification_metrics(self.scores, self.labels, num_classes, classes)
            loss = _loss(self.scores, self.labels, self.probabilities)
        m.update({"loss": loss, "num_views": self.num_views, "num_skipped": self.num_skipped,
                  "num_corrupt_frames": self.num_corrupt,
                  "seconds": round(self.seconds, 3),
                  "videos_per_second": round(len(self.indices) / max(self.seconds, 1e-9), 3)})
        return m


def _loss(scores: torch.Tensor, labels: torch.Tensor, probabilities: bool) -> float:
    if probabilities:
        return F.nll_loss(scores.clamp_min(1e-12).log(), labels).item()
    return F.cross_entropy(scores, labels).item()


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
    if isinstance(out, dict):  # several heads (ViViT Epic-Kitchens verb + noun): views combined per head
        return {k: average_views(o.float().view(b, v, -1), view_average) for k, o in out.items()}
    logits = main_logits(out)
    if logits is None:
        raise ValueError(f"cannot evaluate a model returning {type(out).__name__}")
    return average_views(logits.float().view(b, v, -1), view_average)


def multi_head_metrics(scores: dict, labels: dict, probabilities: bool = False) -> dict:
    """Per-head top-1/top-5 and mean class accuracy, and the *action* accuracy of Epic-Kitchens (ViViT
    Sec. 4.3, Table 7): a clip is right when every head is right; action top-5 ranks the joint scores
    (the product of the heads' probabilities). ``top1``/``top5`` are the action figures (what checkpoint
    selection uses); ``mean_class_acc`` is the mean over the heads."""
    heads = sorted(scores)
    if set(labels) != set(heads):
        raise ValueError(f"the model's heads {heads} and the dataset's labels {sorted(labels)} differ")
    m: dict = {"heads": heads}
    for h in heads:
        hm = classification_metrics(scores[h], labels[h], scores[h].shape[1])
        m[h] = {k: hm[k] for k in ("top1", "top5", "mean_class_acc")}
    probs = [scores[h] if probabilities else scores[h].softmax(-1) for h in heads]
    joint = probs[0]
    index = labels[heads[0]].long()
    for p, h in zip(probs[1:], heads[1:]):  # (N, K1 * K2 * ...): the joint class of a clip is its label tuple
        joint = (joint[:, :, None] * p[:, None, :]).flatten(1)
        index = index * p.shape[1] + labels[h].long()
    top = joint.topk(min(5, joint.shape[1]), dim=1).indices
    m["action_top1"] = 100.0 * float((top[:, 0] == index).float().mean())
    m["action_top5"] = 100.0 * float((top == index[:, None]).any(1).float().mean())
    m["top1"], m["top5"] = m["action_top1"], m["action_top5"]
    m["mean_class_acc"] = sum(m[h]["mean_class_acc"] for h in heads) / len(heads)
    m["num_samples"] = int(index.numel())
    return m


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
    skip_stats(loader.dataset, reset=True)  # counted from here: this pass's broken files
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
        lab = batch["label"]
        if isinstance(s, dict):
            scores.append({k: v.float().cpu() for k, v in s.items()})
            labels.append({k: torch.as_tensor(v).view(-1).cpu() for k, v in lab.items()})
        else:
            scores.append(s.float().cpu())
            labels.append(torch.as_tensor(lab).view(-1).cpu())
        indices.append(torch.as_tensor(batch["index"]).view(-1).cpu())
        if "num_skipped" in batch:
            skipped += int(torch.as_tensor(batch["num_skipped"]).sum())
        if "num_corrupt" in batch:
            corrupt += int(torch.as_tensor(batch["num_corrupt"]).sum())
    if bar is not None:
        bar.close()
    model.train(was_training)
    local = (
        _cat(scores, torch.empty(0, 0)),
        _cat(labels, torch.empty(0, dtype=torch.long)),
        torch.cat(indices) if indices else torch.empty(0, dtype=torch.long),
    )
    parts = all_gather_objects(local, info)
    skipped, corrupt = (int(v) for v in all_reduce_sum([skipped, corrupt], info))
    stats = skip_stats(loader.dataset, reset=True)
    if stats is not None:  # distinct broken files (a file replaced in several views or retries counts once)
        files = set().union(*all_gather_objects(set(stats["files"]), info))
        skipped = len(files)
    s = _cat([p[0] for p in parts if _numel(p[0])], torch.empty(0, 0))
    y = _cat([p[1] for p in parts], torch.empty(0, dtype=torch.long))
    idx = torch.cat([p[2] for p in parts])
    # Padding of the distributed sampler repeats a few samples: keep the first of each index.
    order = torch.argsort(idx, stable=True)
    idx = idx[order]
    keep = torch.ones_like(idx, dtype=torch.bool)
    keep[1:] = idx[1:] != idx[:-1]

    def pick(t):
        return {k: pick(v) for k, v in t.items()} if isinstance(t, dict) else t[order][keep]

    y = pick(y)
    y = {k: v.long() for k, v in y.items()} if isinstance(y, dict) else y.long()
    return EvalResult(pick(s), y, idx[keep], view_average == "probs", views, skipped,
                      time.perf_counter() - t0, corrupt)


def _cat(parts: list, empty: torch.Tensor):
    """Concatenate tensors, or dicts of tensors head by head."""
    if not parts:
        return empty
    if isinstance(parts[0], dict):
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return torch.cat(parts)


def _numel(t) -> int:
    return sum(v.numel() for v in t.values()) if isinstance(t, dict) else t.numel()


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
    if isinstance(result.scores, dict):  # one predictions file per head; no single confusion matrix
        for h, sc in result.scores.items():
            write_predictions(out_dir / f"{prefix}predictions_{h}.csv", result.indices, sc, result.labels[h], None,
                              paths, probabilities=result.probabilities)
        return payload
    write_predictions(out_dir / f"{prefix}predictions.csv", result.indices, result.scores, result.labels, classes,
                      paths, probabilities=result.probabilities)
    if metrics.get("confusion_matrix") is not None:
        plot_confusion_matrix(out_dir / f"{prefix}confusion_matrix.png", metrics["confusion_matrix"], classes,
                              title=f"Confusion matrix (top-1 {metrics['top1']:.1f}%)")
    return payload
