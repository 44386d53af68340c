"""Tasks: what the engine trains and evaluates, one class per kind of problem.

The :class:`~videoformers.engine.trainer.Trainer` owns everything a run has whatever it learns
(distribution, precision, accumulation, clipping, EMA, schedules, checkpoints, signals, resume, logs,
broken-sample accounting); a :class:`Task` owns what differs between video classification, semantic
segmentation (UniFormer TPAMI Sec. 6.4) and pose estimation (Sec. 6.5):

* which datasets ``data.dataset`` builds and how many classes they have,
* how a batch becomes a model input and a target,
* the loss (including auxiliary heads),
* the validation metrics (one of them, :attr:`Task.primary_metric`, picks ``checkpoint_best.pth``),
* what the final evaluation writes next to ``metrics.json``.

A task is chosen by ``data.dataset`` (:func:`task_for`); new ones register with :func:`register_task`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["Task", "ClassificationTask", "register_task", "task_for", "list_tasks"]


class Task:
    """Base class; the defaults are video classification's (``batch["video"]`` / ``batch["label"]``).

    Methods a task overrides:

    * :meth:`build_datasets` -> ``{split: Dataset | None}`` (``None``: no such split).
    * :meth:`num_classes`, :meth:`class_names`.
    * :meth:`prepare_batch` -> ``(model input on device, target on device, samples in the batch)``.
    * :meth:`forward_loss` -> ``(loss, output)``; the model is already in train mode, under autocast.
    * :meth:`train_correct` -> ``(correct, counted)`` for a running train accuracy (``(0, 0)``: none).
    * :meth:`evaluate` -> ``(result, metrics)``: metrics over the whole split, reduced over all
      processes (every rank returns the same dict), holding :attr:`primary_metric` and ``num_samples``.
    * :meth:`write_outputs` writes ``metrics.json`` (and any per-sample files) on the main process.
    * :meth:`describe` -> the short text of a metrics dict for the epoch's log line.
    * :meth:`collate_fn` -> a DataLoader ``collate_fn`` for a split (``None``: PyTorch's default).
    * :meth:`model_overrides` -> ``create_model`` arguments the task's data fixes (pose: the crop size);
      ``model.overrides`` still win, and a task may refuse a contradicting one.
    """

    name = "classification"
    #: the validation metric that picks ``checkpoint_best.pth`` (higher is better)
    primary_metric = "top1"
    #: what one sample is called in log lines ("videos", "images", "persons")
    sample_unit = "videos"
    #: what the training throughput counts (a video gives several clips under repeated augmentation)
    rate_unit = "clips"
    #: metrics copied from a validation into the ``log.jsonl`` "val" record
    logged_metrics: tuple[str, ...] = ("top1", "top5", "mean_class_acc", "loss")

    def build_datasets(self, cfg, splits: Sequence[str] = ("train", "val")) -> dict[str, Dataset | None]:
        raise NotImplementedError

    def num_classes(self, cfg, train_dataset: Dataset) -> int:
        return int(cfg.model.num_classes or getattr(train_dataset, "num_classes", 0)
                   or len(getattr(train_dataset, "classes", None) or []))

    def class_names(self, train_dataset: Dataset, num_classes: int) -> list[str]:
        names = list(getattr(train_dataset, "classes", None) or [])
        return names or [str(i) for i in range(num_classes)]

    def collate_fn(self, split: str) -> Callable | None:
        return None

    def model_overrides(self, cfg) -> dict:
        return {}

    def prepare_batch(self, batch: dict, device: torch.device) -> tuple[torch.Tensor, Any, int]:
        raise NotImplementedError

    def forward_loss(self, model: nn.Module, x: torch.Tensor, target: Any, cfg) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def train_correct(self, output: Any, target: Any) -> tuple[int, int]:
        return 0, 0

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device, dist_info, cfg,
                 progress: bool = False, desc: str = "validate") -> tuple[Any, dict]:
        raise NotImplementedError

    def write_outputs(self, out_dir: Path, result: Any, metrics: dict, classes: Sequence[str] | None,
                      paths: Sequence[str] | None, extra: dict) -> dict:
        raise NotImplementedError

    def describe(self, metrics: dict) -> str:
        return f"{self.primary_metric} {metrics[self.primary_metric]:.2f}"


class ClassificationTask(Task):
    """Video (and image) classification: logits ``(B, num_classes)``, cross-entropy (with mixup/cutmix,
    label smoothing and multi-head outputs), top-1/top-5/mean class accuracy over multi-view clips."""

    def build_datasets(self, cfg, splits=("train", "val")):
        from .trainer import build_datasets

        return build_datasets(cfg, splits)

    def prepare_batch(self, batch, device):
        x = batch["video"].to(device, non_blocking=True)
        y = batch["label"]
        videos = x.shape[0]
        if x.ndim == 6:  # repeated augmentation (data.num_samples): (B, N, C, T, H, W) -> B x N clips
            n = x.shape[1]
            x = x.flatten(0, 1)
            y = ({k: torch.as_tensor(v).repeat_interleave(n) for k, v in y.items()} if isinstance(y, dict)
                 else torch.as_tensor(y).repeat_interleave(n))
        y = {k: v.to(device) for k, v in y.items()} if isinstance(y, dict) else y.to(device)
        return x, y, videos

    def forward_loss(self, model, x, target, cfg, mixed: bool = False):
        from .losses import compute_loss

        t = cfg.train
        out = model(x)
        return compute_loss(out, target, 0.0 if mixed else t.label_smoothing, t.output_weights), out

    def train_correct(self, output, target):
        from .losses import main_logits

        logits = main_logits(output)
        if logits is None or isinstance(target, dict) or target.dtype.is_floating_point:
            return 0, 0
        return int((logits.detach().argmax(1) == target).sum()), target.numel()

    def evaluate(self, model, loader, device, dist_info, cfg, progress=False, desc="validate"):
        from .evaluator import evaluate

        res = evaluate(model, loader, device, dist_info, cfg.train.amp, cfg.eval.view_average, cfg.eval.max_batches,
                       progress=progress, desc=desc)
        return res, res.metrics(self._num_classes, self._classes)

    def bind(self, num_classes: int, classes: Sequence[str] | None) -> "ClassificationTask":
        self._num_classes, self._classes = num_classes, list(classes) if classes else None
        return self

    def write_outputs(self, out_dir, result, metrics, classes, paths, extra):
        from .evaluator import write_eval_outputs

        return write_eval_outputs(out_dir, result, metrics, classes, paths, extra=extra)

    def describe(self, m):
        return f"top1 {m['top1']:.2f}  top5 {m['top5']:.2f}"

    _num_classes: int = 0
    _classes: list[str] | None = None


_TASKS: dict[str, Callable[[], Task]] = {}
_BY_DATASET: dict[str, str] = {}


def register_task(name: str, factory: Callable[[], Task], datasets: Sequence[str]) -> None:
    """Make ``data.dataset`` values ``datasets`` train and evaluate with ``factory()``."""
    _TASKS[name] = factory
    for d in datasets:
        _BY_DATASET[d] = name


def _ensure_registered() -> None:
    # Dense tasks register on import; importing here keeps `videoformers.engine` light for video users.
    for mod in ("videoformers.engine.tasks_segmentation", "videoformers.engine.tasks_pose"):
        try:
            __import__(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def list_tasks() -> dict[str, list[str]]:
    """``{task name: [data.dataset values]}``."""
    _ensure_registered()
    out: dict[str, list[str]] = {n: [] for n in _TASKS}
    for d, n in _BY_DATASET.items():
        out[n].append(d)
    return out


def task_for(cfg) -> Task:
    """The task ``cfg.data.dataset`` trains (video classification for every video dataset format)."""
    _ensure_registered()
    name = _BY_DATASET.get(cfg.data.dataset, "classification")
    return _TASKS[name]()


register_task("classification", ClassificationTask, ())
