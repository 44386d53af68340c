"""Accuracy metrics, the run's files (``metrics.json``, ``predictions.csv``) and plots.

Plots use matplotlib's Agg backend (no display needed): ``curves.png`` (training loss, accuracy,
learning rate) and ``confusion_matrix.png`` (rows: true class, normalised per row).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import torch

__all__ = [
    "topk_correct",
    "classification_metrics",
    "confusion_matrix",
    "write_metrics",
    "write_predictions",
    "plot_confusion_matrix",
    "plot_curves",
    "read_jsonl",
]


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    k_max = min(max(ks), scores.shape[1])
    top = scores.topk(k_max, dim=1).indices
    hit = top.eq(labels.view(-1, 1))
    return [int(hit[:, : min(k, k_max)].any(dim=1).sum()) for k in ks]


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` counts, row = true class, column = predicted class."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor, num_classes: int,
                           classes: Sequence[str] | None = None) -> dict:
    """Top-1/top-5 (in %), mean class accuracy (mean of per-class recalls over classes present)
    and per-class accuracy, from ``(N, K)`` scores and ``(N,)`` labels."""
    n = int(labels.numel())
    if n == 0:
        raise ValueError("no samples to evaluate")
    c1, c5 = topk_correct(scores, labels, (1, 5))
    preds = scores.argmax(dim=1)
    cm = confusion_matrix(preds, labels, num_classes)
    support = cm.sum(dim=1)
    per_class = {}
    accs = []
    for k in range(num_classes):
        if support[k] > 0:
            acc = 100.0 * float(cm[k, k]) / float(support[k])
            accs.append(acc)
            name = classes[k] if classes is not None and k < len(classes) else str(k)
            per_class[name] = round(acc, 4)
    return {
        "top1": 100.0 * c1 / n,
        "top5": 100.0 * c5 / n,
        "mean_class_acc": sum(accs) / len(accs),
        "num_samples": n,
        "per_class_acc": per_class,
        "confusion_matrix": cm.tolist(),
    }


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_metrics(path: str | os.PathLike, metrics: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")


def write_predictions(path: str | os.PathLike, indices: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                      classes: Sequence[str] | None = None, paths: Sequence[str] | None = None,
                      probabilities: bool = False) -> None:
    """One row per video: index, path, true and predicted class (id and name), the top-1 score
    (softmax probability) and the top-5 class ids."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    probs = scores if probabilities else scores.float().softmax(dim=1)
    k = min(5, scores.shape[1])
    top_p, top_i = probs.topk(k, dim=1)

    def name(i: int) -> str:
        return classes[i] if classes is not None and i < len(classes) else str(i)

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "path", "label", "label_name", "pred", "pred_name", "correct", "prob", "top5"])
        for row in range(len(indices)):
            i = int(indices[row])
            y, p = int(labels[row]), int(top_i[row, 0])
            w.writerow([i, paths[i] if paths is not None and i < len(paths) else "", y, name(y), p, name(p),
                        int(y == p), f"{float(top_p[row, 0]):.6f}", " ".join(str(int(c)) for c in top_i[row])])
    os.replace(tmp, path)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(path: str | os.PathLike, cm: Sequence[Sequence[int]], classes: Sequence[str] | None = None,
                          title: str = "Confusion matrix") -> None:
    plt = _plt()
    m = torch.tensor(cm, dtype=torch.float64)
    k = m.shape[0]
    norm = m / m.sum(dim=1, keepdim=True).clamp_min(1)
    size = min(max(4.0, 0.45 * k + 2), 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 40:
        labels = [classes[i] if classes is not None and i < len(classes) else str(i) for i in range(k)]
        ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    if m[i, j] > 0:
                        ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    out = []
    p = Path(path)
    if not p.is_file():
        return out
    for line in p.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill
    return out


def plot_curves(path: str | os.PathLike, records: Iterable[dict], primary: str = "top1") -> None:
    """``curves.png``: training loss per step (and validation loss per epoch), the validation metric
    ``primary`` (the task's: top-1, mIoU, AP; percent) per epoch, learning rate per step, from the
    ``log.jsonl`` records."""
    plt = _plt()
    records = list(records)
    tr = [r for r in records if r.get("type") == "train"]
    va = [r for r in records if r.get("type") == "val"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    if tr:
        ax.plot([r["step"] for r in tr], [r["loss"] for r in tr], lw=1, label="train")
    if va and any("loss" in r and r["loss"] is not None and math.isfinite(r["loss"]) for r in va):
        ax.plot([r["step"] for r in va], [r.get("loss") for r in va], "o-", label="val")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.legend()
    ax = axes[1]
    if va:
        ax.plot([r["epoch"] for r in va], [r.get(primary) for r in va], "o-",
                label="val top-1" if primary == "top1" else f"val {primary}")
        if any(r.get("top5") is not None for r in va):
            ax.plot([r["epoch"] for r in va], [r.get("top5") for r in va], "s--", label="val top-5", alpha=0.6)
    tr_acc = {}
    for r in tr:
        if r.get("train_top1") is not None:
            tr_acc[r["epoch"]] = r["train_top1"]
    if tr_acc:
        ax.plot(list(tr_acc), list(tr_acc.values()), "^-", label="train top-1 (last log of epoch)", alpha=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)" if primary == "top1" else f"{primary} (%)")
    ax.set_ylim(0, 100)
    ax.set_title("accuracy" if primary == "top1" else primary)
    ax.legend()
    ax = axes[2]
    if tr:
        ax.plot([r["step"] for r in tr], [r["lr"] for r in tr], lw=1)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
