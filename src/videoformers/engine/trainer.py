"""The training loop: one code path for 1 process or many (torchrun), CPU or GPU.

``Trainer(cfg).fit()`` builds the datasets (:func:`videoformers.data.build_dataset`), the model
(:func:`videoformers.create_model`), wraps it (SyncBatchNorm, gradient checkpointing, DDP or
FSDP2, ``torch.compile``), trains with AMP / gradient accumulation / clipping / EMA, validates,
writes checkpoints atomically, and at the end evaluates the best checkpoint into
``metrics.json``, ``predictions.csv`` and ``confusion_matrix.png``.

Files in ``train.output_dir``::

    config.yaml            the resolved configuration
    checkpoint_last.pth    every epoch (and every ``save_every_steps``), enough to resume exactly
    checkpoint_best.pth    best validation top-1
    log.jsonl              one JSON record per logged step ("train") and per validation ("val")
    curves.png             loss, accuracy and learning rate
    metrics.json, predictions.csv, confusion_matrix.png   final evaluation
    tb/                    TensorBoard events (when tensorboard is installed)

Resume (``train.resume=auto`` or a path) restores model, optimiser, schedule, grad scaler, EMA,
epoch, step, the position in the epoch and every process's RNG states, so the resumed run
reproduces the loss curve of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from videoformers.checkpoints import save_checkpoint_atomic
from videoformers.checkpoints.loading import in_model_layout
from videoformers.data import BrokenDataError as _DataBrokenError
from videoformers.registry import create_model, get_model_card

from .config import Config, config_to_dict, dump_config
from .distributed import (
    EvalSampler,
    TrainSampler,
    all_gather_objects,
    all_reduce_sum,
    apply_fsdp2,
    cleanup_distributed,
    convert_sync_batchnorm,
    ignore_stop_signals,
    init_distributed,
)
from .evaluator import EvalResult, autocast_context
from .metrics import plot_curves, read_jsonl
from .optim import WarmupCosineSchedule, build_optimizer, effective_lr
from .state import ModelEma, SeededDataset, get_rng_state, seed_everything, set_rng_state, skip_stats
from .tasks import ClassificationTask, Task, task_for

__all__ = ["Trainer", "BrokenDataError", "build_datasets", "build_model", "fill_data_defaults", "dataset_paths"]

CKPT_VERSION = 1


class BrokenDataError(_DataBrokenError):
    """More undecodable samples than ``data.max_broken_fraction`` allows, counted over all
    processes and workers (the dataset's own check is per process)."""


def fill_data_defaults(cfg: Config) -> Config:
    """Mean/std from the model card when the data section leaves them ``None``."""
    import dataclasses

    data = cfg.data
    if data.mean is None or data.std is None:
        try:
            card = get_model_card(cfg.model.name)
            data = dataclasses.replace(data, mean=data.mean or card.mean, std=data.std or card.std)
        except ValueError:
            pass  # a model injected through the Python API; the dataset uses its own default
    return dataclasses.replace(cfg, data=data)


def build_datasets(cfg: Config, splits: Sequence[str] = ("train", "val")) -> dict[str, Dataset | None]:
    from videoformers.data import build_dataset

    out: dict[str, Dataset | None] = {}
    for split in splits:
        listed = getattr(cfg.data, f"{split}_list", None)
        if cfg.data.dataset == "shards":
            listed = getattr(cfg.data, f"{split}_shards", None) or (cfg.data.val_shards if split == "test" else None)
            if split != "train" and not listed:
                out[split] = None
                continue
        if split != "train" and not listed and cfg.data.dataset in ("list", "csv", "rawframes"):
            out[split] = None
            continue
        out[split] = build_dataset(cfg.data, split)
    return out


def _accepted_overrides(name: str) -> frozenset[str] | None:
    from videoformers.registry import accepted_overrides

    try:
        return accepted_overrides(name)
    except ValueError:  # an unknown model: create_model says so with the list of names
        return None


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    """``create_model(cfg.model.name, ...)`` with the common fields filled from the data section."""
    m = cfg.model
    kw: dict[str, Any] = {**task_for(cfg).model_overrides(cfg), **m.overrides}
    accepts = _accepted_overrides(m.name)
    common = {
        "num_classes": num_classes,
        "num_frames": m.num_frames or cfg.data.num_frames,
        "img_size": m.img_size or cfg.data.img_size,
    }
    if m.drop_path_rate is not None:
        common["drop_path_rate"] = m.drop_path_rate
    for k, v in common.items():
        explicit = (k == "num_classes") or getattr(m, k, None) is not None
        if k in kw:
            continue
        if accepts is None or k in accepts or explicit:
            kw[k] = v
    model = create_model(m.name, **kw)
    if m.pretrained:
        from videoformers.checkpoints import load_checkpoint
        from videoformers.checkpoints.zoo import get_pretrained_cfg, list_pretrained, load_released

        if not os.path.exists(m.pretrained) and m.pretrained in list_pretrained():  # a release by name: model.tag
            report, _ = load_released(model, get_pretrained_cfg(m.pretrained), strict=m.pretrained_strict,
                                      min_loaded=m.pretrained_min_loaded)
        else:
            report = load_checkpoint(model, m.pretrained, strict=m.pretrained_strict,
                                     drop_head_on_mismatch=not m.pretrained_strict, min_loaded=m.pretrained_min_loaded)
        model.pretrained_report = report  # type: ignore[attr-defined]
    return model


class CheckpointReadError(ValueError):
    """A checkpoint file that cannot be read (truncated by a kill or a full disk, or not a checkpoint)."""


def _read_training_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint of this engine, or one clear line saying why not."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.resume: {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointReadError(f"{path} ({path.stat().st_size} bytes) cannot be read: truncated or not a "
                                  f"checkpoint ({reason})") from None
    if not isinstance(ck, dict) or "optimizer" not in ck or "model" not in ck:
        raise ValueError(f"{path} is not a training checkpoint of this engine (use model.pretrained to "
                         "initialise from weights only)")
    return ck


#: What marks a folder as holding a run (train refuses to start over in it unless told).
RUN_FILES = ("checkpoint_last.pth", "checkpoint_prev.pth", "checkpoint_best.pth", "metrics.json", "log.jsonl")


def guard_output_dir(out_dir: Path, resume: str | None, overwrite: bool) -> None:
    """Starting a run in a folder that holds another would mix or replace its checkpoints and results:
    that needs ``train.resume=auto`` (continue it) or ``train.overwrite=true`` (start over in it)."""
    if resume or overwrite or not out_dir.is_dir():
        return
    found = [n for n in RUN_FILES if (out_dir / n).exists()]
    if found:
        raise ValueError(f"train.output_dir={out_dir} holds a run ({', '.join(found)}): set train.resume=auto to "
                         "continue it, train.overwrite=true to start over in it, or another train.output_dir")


def remove_stale_temp_files(out_dir: Path) -> list[Path]:
    """Temporary files of checkpoint writes (``.<name>.tmp<pid>``, see ``atomic_write``) whose process is
    gone: a kill mid-write leaves them (up to the checkpoint's size), nothing else removes them."""
    import re

    removed = []
    for p in out_dir.glob(".*.tmp*"):
        m = re.search(r"\.tmp(\d+)$", p.name)
        if not m or not p.is_file():
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def dataset_paths(ds: Any) -> list[str] | None:
    """Video paths of a dataset when it exposes them (for ``predictions.csv``)."""
    base = getattr(ds, "dataset", ds)
    for attr in ("paths", "video_paths", "samples", "items", "videos"):
        v = getattr(base, attr, None)
        if isinstance(v, (list, tuple)) and v:
            first = v[0]
            if isinstance(first, (str, os.PathLike)):
                return [str(p) for p in v]
            if isinstance(first, (tuple, list)) and first and isinstance(first[0], (str, os.PathLike)):
                return [str(p[0]) for p in v]
            if isinstance(first, dict) and "path" in first:
                return [str(p["path"]) for p in v]
            if hasattr(first, "path"):
                return [str(p.path) for p in v]
    return None


class Trainer:
    """Train ``cfg`` end to end. ``model``/``train_dataset``/``val_dataset`` may be injected (an
    ``nn.Module`` or a factory ``num_classes -> nn.Module``) to train something that is not in
    the registry or data that is not on disk; everything else comes from ``cfg``."""

    def __init__(
        self,
        cfg: Config,
        *,
        model: nn.Module | Callable[[int], nn.Module] | None = None,
        train_dataset: Dataset | None = None,
        val_dataset: Dataset | None = None,
        classes: Sequence[str] | None = None,
        log: Callable[[str], None] | None = None,
        task: Task | None = None,
    ) -> None:
        from .config import check_ranges

        check_ranges(cfg)  # also for a Config built in code (load_config checks its own)
        self.cfg = fill_data_defaults(cfg) if model is None else cfg
        t = self.cfg.train
        self.dist = init_distributed(t.device)
        self.device = self.dist.device
        self._print = log or print
        self.out_dir = Path(t.output_dir)
        if t.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"train.amp must be 'none', 'bf16' or 'fp16', got {t.amp!r}")
        if t.accum_steps < 1 or t.batch_size < 1:
            raise ValueError("train.batch_size and train.accum_steps must be >= 1")
        if t.fsdp and not self.dist.enabled:
            self.log("train.fsdp needs several processes (torchrun); running unsharded")
        if t.fsdp and t.ema_decay:
            raise ValueError("train.ema_decay is not supported together with train.fsdp")

        # What is learnt (classification, segmentation, pose): datasets, batches, loss, metrics.
        self.task = task if task is not None else task_for(self.cfg)

        # ---- data
        if train_dataset is None:
            ds = self.task.build_datasets(self.cfg, ("train", "val"))
            train_dataset, val_dataset = ds["train"], ds["val"] if val_dataset is None else val_dataset
        if train_dataset is None or len(train_dataset) == 0:  # type: ignore[arg-type]
            raise ValueError("the training set is empty; set data.train_list (and data.root)")
        # An IterableDataset (data.dataset=shards) seeds its own samples and splits itself over ranks/workers.
        self._iterable = isinstance(train_dataset, IterableDataset)
        for ds, seed in ((train_dataset, t.seed), (val_dataset, t.seed + 1)):
            if isinstance(ds, IterableDataset):
                ds.seed = seed
                if callable(getattr(ds, "set_distributed", None)):
                    ds.set_distributed(self.dist.rank, self.dist.world_size)
        self.train_dataset = train_dataset if self._iterable else SeededDataset(train_dataset, t.seed)
        self.val_dataset = (val_dataset if val_dataset is None or isinstance(val_dataset, IterableDataset)
                            else SeededDataset(val_dataset, t.seed + 1))
        self.num_classes = int(self.cfg.model.num_classes or (len(classes) if classes else 0)
                               or self.task.num_classes(self.cfg, train_dataset))
        if self.num_classes <= 0:
            raise ValueError("cannot tell the number of classes: set model.num_classes or data.labels_file")
        self.classes = list(classes or self.task.class_names(train_dataset, self.num_classes))
        if isinstance(self.task, ClassificationTask):
            self.task.bind(self.num_classes, self.classes)
        for ds in (train_dataset, val_dataset):  # a label the model has no output for: now, not mid-epoch
            if ds is not None and callable(getattr(type(ds), "check_labels", None)):
                ds.check_labels(self.num_classes)

        # ---- model: identical initialisation on every rank (FSDP does not broadcast)
        seed_everything(t.seed)
        if model is None:
            raw = build_model(self.cfg, self.num_classes)
        elif isinstance(model, nn.Module):
            raw = model
        else:
            raw = model(self.num_classes)
        report = getattr(raw, "pretrained_report", None)
        if report is not None:
            self.log(f"pretrained weights from {self.cfg.model.pretrained}:\n{report}")
        raw.to(self.device)
        if t.sync_bn and self.dist.enabled:
            raw = convert_sync_batchnorm(raw, self.device)
        if self.cfg.model.grad_checkpointing:
            if not hasattr(raw, "set_grad_checkpointing"):
                raise ValueError(f"{type(raw).__name__} has no set_grad_checkpointing(); "
                                 "set model.grad_checkpointing=false")
            raw.set_grad_checkpointing(True)
        self.raw_model = raw
        self.model_label = self.cfg.model.name if model is None else getattr(raw, "model_name", type(raw).__name__)
        self.fsdp = bool(t.fsdp and self.dist.enabled)
        if self.fsdp:
            self.model = apply_fsdp2(raw, t.amp)
        elif self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # Depth-wise 3D kernels (C, 1, k, k, k) get channels-last gradients whose only stride
            # difference is on the size-1 axis: same memory layout, so DDP's warning is noise.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

            self.model = DDP(raw, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                             find_unused_parameters=t.find_unused_parameters)
        else:
            self.model = raw
        self.forward_model = torch.compile(self.model) if t.compile else self.model
        # Per-rank randomness for dropout / drop path / mixup from here on.
        seed_everything(t.seed + self.dist.rank)

        # ---- loaders
        if self._iterable:  # len() is already this rank's samples per epoch
            self.train_sampler = None
            self.train_loader = self._loader(self.train_dataset, None, t.batch_size, drop_last=True, split="train")
            n_batches = len(self.train_dataset) // t.batch_size
        else:
            self.train_sampler = TrainSampler(len(self.train_dataset), self.dist.world_size, self.dist.rank, True,
                                              t.seed)
            self.train_loader = self._loader(self.train_dataset, self.train_sampler, t.batch_size, drop_last=True,
                                             split="train")
            n_batches = len(self.train_sampler) // t.batch_size
        if t.max_train_batches:
            n_batches = min(n_batches, t.max_train_batches)
        self.steps_per_epoch = n_batches // t.accum_steps
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"an epoch has no optimiser step: {len(self.train_dataset)} training videos over "
                f"{self.dist.world_size} process(es) with batch {t.batch_size} x accumulation {t.accum_steps}; "
                "lower train.batch_size"
            )
        self.micro_per_epoch = self.steps_per_epoch * t.accum_steps
        self.total_steps = self.steps_per_epoch * t.epochs
        self.val_loader = None
        if self.val_dataset is not None and len(self.val_dataset) > 0:
            eb = self.cfg.eval.batch_size or t.batch_size
            sampler = (None if isinstance(self.val_dataset, IterableDataset)
                       else EvalSampler(len(self.val_dataset), self.dist.world_size, self.dist.rank))
            self.val_loader = self._loader(self.val_dataset, sampler, eb, drop_last=False, split="val")

        # ---- optimisation
        self.total_batch = t.batch_size * self.dist.world_size * t.accum_steps
        self.base_lr = effective_lr(self.cfg.optim, self.total_batch)
        self.optimizer = build_optimizer(raw, self.cfg.optim, self.base_lr)
        o = self.cfg.optim
        self.schedule = WarmupCosineSchedule(
            self.optimizer, self.base_lr, self.total_steps, round(o.warmup_epochs * self.steps_per_epoch),
            o.warmup_start_lr, o.min_lr, o.sched, o.cosine_after_warmup,
            milestones=[round(m * self.steps_per_epoch) for m in o.milestones], gamma=o.gamma, power=o.poly_power,
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=(t.amp == "fp16"))
        self.ema = ModelEma(raw, t.ema_decay) if t.ema_decay else None
        self.mixup = None
        if t.mixup > 0 or t.cutmix > 0:
            from videoformers.data import MixupCutmix

            self.mixup = MixupCutmix(mixup_alpha=t.mixup, cutmix_alpha=t.cutmix, prob=t.mixup_prob,
                                     switch_prob=t.mixup_switch_prob, label_smoothing=t.label_smoothing,
                                     num_classes=self.num_classes)

        # ---- state
        self.epoch = 0            # current epoch
        self.micro = 0            # micro-batches done in the current epoch
        self.global_step = 0      # optimiser steps done
        self.best_top1 = -1.0
        self.best_epoch = -1
        self.samples_seen = 0
        self.samples_skipped = 0
        self.frames_corrupt = 0   # damaged frames FFmpeg flagged in the training clips (data.corrupt_frames)
        self._epoch_acc: list | None = None  # [loss sum, steps, correct, counted] of the epoch so far
        self.files_skipped: set[str] = set()  # distinct broken training files met by this process's run
        self.step_losses: list[float] = []   # loss of every optimiser step of this process's run
        self.stopped = False
        self._stop_signal = False
        self.records: list[dict] = []
        self.tb = None
        # A plain line every log_every steps when no live progress bar shows (output to a file or a pipe).
        import sys

        self._plain_log = not (t.progress and sys.stderr.isatty())
        resume = t.resume
        if not resume and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0:
            # torchrun --max-restarts restarted the job (a node or a worker died): continue from the last
            # checkpoint instead of starting over or refusing the run folder
            resume = "auto"
            self.log(f"elastic restart {os.environ['TORCHELASTIC_RESTART_COUNT']}: resuming from "
                     f"{self.out_dir / 'checkpoint_last.pth'}")
        if self.is_main:
            guard_output_dir(self.out_dir, resume, t.overwrite)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            removed = remove_stale_temp_files(self.out_dir)
            if removed:
                self.log(f"removed {len(removed)} unfinished checkpoint write(s) of killed runs: "
                         + ", ".join(p.name for p in removed))
            (self.out_dir / "config.yaml").write_text(dump_config(self.cfg))
        if resume == "auto":
            self.resume_auto()
        elif resume:
            self.load_training_state(resume)
        if self.is_main:
            self._open_logs()

    # ------------------------------------------------------------------ helpers
    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def log(self, msg: str) -> None:
        if self.dist.is_main:
            self._print(msg)

    def _loader(self, ds: Dataset, sampler, batch_size: int, drop_last: bool, split: str = "train") -> DataLoader:
        nw = int(getattr(self.cfg.data, "num_workers", 0) or 0)
        return DataLoader(
            ds, batch_size=batch_size, sampler=sampler, num_workers=nw, drop_last=drop_last,
            collate_fn=self.task.collate_fn(split),
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            # A private generator: creating an iterator must not consume the global RNG (exact resume).
            generator=torch.Generator().manual_seed(self.cfg.train.seed),
            prefetch_factor=2 if nw > 0 else None, worker_init_fn=ignore_stop_signals if nw > 0 else None,
        )

    def _open_logs(self) -> None:
        path = self.out_dir / "log.jsonl"
        # After a resume keep only what happened up to the checkpoint: a killed run may have
        # logged steps past it, which the resumed run will log again.
        old = [r for r in read_jsonl(path) if r.get("step", 0) <= self.global_step]
        path.write_text("".join(json.dumps(r) + "\n" for r in old))
        self.records = old
        self._log_file = open(path, "a", buffering=1)
        if self.cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.global_step + 1 if self.global_step else None)
            except Exception as e:  # tensorboard not installed
                self.tb = None
                self.log(f"warning: train.tensorboard is on but TensorBoard cannot be used ({type(e).__name__}: {e}); "
                         "pip install tensorboard, or set train.tensorboard=false. log.jsonl and curves.png are "
                         "still written")

    def _record(self, rec: dict) -> None:
        if not self.is_main:
            return
        rec = {k: (round(v, 8) if isinstance(v, float) else v) for k, v in rec.items()}
        self.records.append(rec)
        self._log_file.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            prefix = rec.get("type", "train")
            for k, v in rec.items():
                if k not in ("type", "epoch", "step", "time") and isinstance(v, (int, float)) and v is not None:
                    self.tb.add_scalar(f"{prefix}/{k}", v, rec["step"])

    def _plot(self, force: bool = False) -> None:
        """Redraw curves.png -- at most every two minutes during training (drawing costs ~1 s)."""
        now = time.monotonic()
        if self.is_main and self.records and (force or now - getattr(self, "_last_plot", -1e9) >= 120):
            plot_curves(self.out_dir / "curves.png", self.records, self.task.primary_metric)
            self._last_plot = now

    def _close_logs(self) -> None:
        if self.is_main:
            if getattr(self, "_log_file", None) is not None:
                self._log_file.close()
                self._log_file = None
            if self.tb is not None:
                self.tb.close()
                self.tb = None

    # ------------------------------------------------------------------ checkpoints
    def _model_state_dict(self) -> dict:
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.raw_model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {k: v.detach().cpu() for k, v in self.raw_model.state_dict().items()}

    def _optim_state_dict(self) -> dict:
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            return get_optimizer_state_dict(self.raw_model, self.optimizer,
                                            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.optimizer.state_dict()

    def training_state(self) -> dict:
        """Everything a resume needs (collective under DDP/FSDP: call on every rank)."""
        return {
            "version": CKPT_VERSION,
            "model": self._model_state_dict(),
            "optimizer": self._optim_state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
            "micro_in_epoch": self.micro,
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "best_top1": self.best_top1,
            "best_epoch": self.best_epoch,
            "samples_seen": self.samples_seen,
            "samples_skipped": self.samples_skipped,
            "epoch_acc": all_gather_objects(list(self._epoch_acc or [0.0, 0, 0, 0]), self.dist),
            "rng": all_gather_objects(get_rng_state(), self.dist),
            "world_size": self.dist.world_size,
            "total_batch": self.total_batch,
            "model_name": self.cfg.model.name,
            "num_classes": self.num_classes,
            "classes": self.classes,
            "config": config_to_dict(self.cfg),
        }

    def save(self, name: str, state: dict | None = None) -> Path:
        state = state if state is not None else self.training_state()
        path = self.out_dir / name
        if self.is_main:
            if name == "checkpoint_last.pth" and path.is_file():
                # The last good one becomes checkpoint_prev.pth (a rename: atomic), so a kill or a full disk
                # during the new write still leaves a checkpoint that resume=auto falls back to.
                os.replace(path, self.out_dir / "checkpoint_prev.pth")
            save_checkpoint_atomic(state, path)
        if self.dist.enabled:
            dist.barrier()
        return path

    def resume_auto(self) -> None:
        """``train.resume=auto``: the newest checkpoint that loads -- ``checkpoint_last.pth``, else (a kill
        during its write, a truncated copy) ``checkpoint_prev.pth``, the one before it -- or a fresh start."""
        for name in ("checkpoint_last.pth", "checkpoint_prev.pth"):
            p = self.out_dir / name
            if not p.is_file():
                continue
            try:
                ck = _read_training_checkpoint(p)
            except CheckpointReadError as e:
                self.log(f"warning: {e}; trying the previous checkpoint")
                continue
            self.load_training_state(p, ck)
            return

    def load_training_state(self, path: str | os.PathLike, ck: dict | None = None) -> None:
        ck = _read_training_checkpoint(path) if ck is None else ck
        saved_model = (ck.get("config") or {}).get("model", {}).get("name")
        if saved_model and self.cfg.model.name and saved_model != self.cfg.model.name and self.model_label == self.cfg.model.name:
            raise ValueError(f"cannot resume {path}: it trains {saved_model}, this run {self.cfg.model.name}")
        if ck.get("steps_per_epoch") not in (None, self.steps_per_epoch):
            saved_world = len(ck.get("rng") or []) or None
            hint = ""
            if saved_world and saved_world != self.dist.world_size:
                total = int(ck.get("config", {}).get("train", {}).get("batch_size", 0)) * saved_world * int(
                    ck.get("config", {}).get("train", {}).get("accum_steps", 1))
                per = self.cfg.train.batch_size * self.dist.world_size
                if total and total % per == 0:
                    hint = (f"; it was saved by {saved_world} process(es), this run has {self.dist.world_size}: "
                            f"train.accum_steps={total // per} keeps the total batch {total} and the steps per epoch")
            raise ValueError(
                f"cannot resume {path} exactly: it has {ck['steps_per_epoch']} optimiser steps per epoch, this run "
                f"{self.steps_per_epoch} (different batch size, number of processes or dataset){hint}"
            )
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self.raw_model, ck["model"], options=opts)
            set_optimizer_state_dict(self.raw_model, self.optimizer, ck["optimizer"], options=opts)
        else:
            self.raw_model.load_state_dict(in_model_layout(self.raw_model, ck["model"]))
            self.optimizer.load_state_dict(ck["optimizer"])
        self.schedule.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        if self.ema is not None and ck.get("ema") is not None:
            self.ema.load_state_dict(ck["ema"])
        self.epoch, self.micro, self.global_step = int(ck["epoch"]), int(ck["micro_in_epoch"]), int(ck["global_step"])
        if self.micro >= self.micro_per_epoch:
            self.epoch, self.micro = self.epoch + 1, 0
        self.best_top1, self.best_epoch = float(ck.get("best_top1", -1)), int(ck.get("best_epoch", -1))
        self.samples_seen = int(ck.get("samples_seen", 0))
        self.samples_skipped = int(ck.get("samples_skipped", 0))
        acc = ck.get("epoch_acc") or []
        self._epoch_acc = list(acc[self.dist.rank]) if len(acc) == self.dist.world_size and self.micro else None
        rng = ck.get("rng") or []
        if len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            self.log(f"warning: checkpoint saved by {len(rng)} process(es), resuming on {self.dist.world_size}: "
                     "RNG states are re-seeded, the run continues but not bit-exactly")
        self.log(f"resumed from {path}: epoch {self.epoch}, step {self.global_step} "
                 f"({self.micro} micro-batches into the epoch)")

    # ------------------------------------------------------------------ training
    def _check_broken(self, final: bool = False) -> None:
        seen, skipped = all_reduce_sum([self.samples_seen, self.samples_skipped], self.dist)
        attempts = seen + skipped
        limit = float(getattr(self.cfg.data, "max_broken_fraction", 1.0))
        if skipped and (attempts >= 64 or final) and skipped / attempts > limit:
            raise BrokenDataError(
                f"{int(skipped)} of {int(attempts)} training samples ({100 * skipped / attempts:.1f}%) could not be "
                f"decoded and were replaced, more than data.max_broken_fraction={limit}; fix or remove the broken "
                "files (the data loader's warnings name them) or raise the limit"
            )

    def _install_signal_handler(self) -> Callable[[], None]:
        """SIGTERM (preemption, ``timeout``, ``scancel``) and SIGINT (Ctrl-C): finish the step, save, stop, and
        exit with 128 + the signal (``videoformers train``); a second SIGINT stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        prev = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum, frame):
            if self._stop_signal and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signum
            self.log(f"{signal.Signals(signum).name}: stopping at the next step boundary to save a checkpoint"
                     + (" (Ctrl-C again to stop without saving)" if signum == signal.SIGINT else ""))

        for s in prev:
            signal.signal(s, handler)
        return lambda: [signal.signal(s, h) for s, h in prev.items()]

    def _should_stop(self) -> bool:
        """Whether any process got a stop signal (all ranks agree, so they stop at the same step)."""
        flag = int(self._stop_signal or 0)
        if self.dist.enabled:
            flag = int(all_reduce_sum([float(flag)], self.dist)[0])
            if flag and not self._stop_signal:
                self._stop_signal = signal.SIGTERM  # another rank's signal
        return bool(flag)

    def train_one_epoch(self) -> bool:
        """Train the rest of ``self.epoch``; returns False if the run was stopped mid-epoch."""
        t, epoch = self.cfg.train, self.epoch
        self.forward_model.train()
        start = self.micro
        if self._iterable:  # resumed mid-epoch: the first start * batch_size samples of this rank's order are skipped
            self.train_dataset.set_epoch(epoch, start, t.batch_size)
        else:
            self.train_sampler.set_epoch(epoch, start * t.batch_size)
        self.train_dataset.epoch = epoch
        self.train_loader.generator.manual_seed(t.seed + epoch)  # type: ignore[union-attr]
        accum = t.accum_steps
        n_left = self.micro_per_epoch - start
        bar = None
        if t.progress and self.is_main:
            from tqdm.auto import tqdm

            # disable=None: no bar when stderr is not a terminal (log files get the per-epoch lines)
            bar = tqdm(total=n_left, desc=f"epoch {epoch + 1}/{t.epochs}", dynamic_ncols=True, leave=False,
                       mininterval=1.0, unit="batch", disable=None)
        t0 = time.perf_counter()
        skipped_before, corrupt_before = self.samples_skipped, self.frames_corrupt
        clips = 0
        # A resumed epoch continues its running sums, so its mean loss covers the whole epoch.
        acc = self._epoch_acc if start > 0 and self._epoch_acc else [0.0, 0, 0, 0]
        loss_sum, loss_n, correct, counted = acc[0], int(acc[1]), int(acc[2]), int(acc[3])
        step_loss = 0.0
        it = iter(self.train_loader)
        # Time spent blocked on the loader: the fraction of the epoch the model waited for data (decoding
        # is the usual bottleneck of video training; more data.num_workers or prepared data fix it).
        data_wait = 0.0
        for i in range(start, self.micro_per_epoch):
            tw = time.perf_counter()
            batch = next(it)
            data_wait += time.perf_counter() - tw
            x, y, videos = self.task.prepare_batch(batch, self.device)
            if "num_skipped" in batch:
                self.samples_skipped += int(torch.as_tensor(batch["num_skipped"]).sum())
            if "num_corrupt" in batch:
                self.frames_corrupt += int(torch.as_tensor(batch["num_corrupt"]).sum())
            self.samples_seen += videos
            target = y
            if self.mixup is not None:
                x, target = self.mixup(x, y)
            last_micro = (i + 1) % accum == 0
            sync = contextlib.nullcontext()
            if not last_micro and not self.fsdp and isinstance(self.model, nn.parallel.DistributedDataParallel):
                sync = self.model.no_sync()
            with sync:
                with autocast_context(self.device, t.amp):
                    loss, out = self._forward_loss(x, target)
                self.scaler.scale(loss / accum).backward()
            step_loss += float(loss.detach()) / accum
            c, n = self.task.train_correct(out, y)
            correct, counted = correct + c, counted + n
            clips += x.shape[0]
            self.micro = i + 1
            if bar is not None:
                bar.update(1)
            if not last_micro:
                continue
            if not math.isfinite(step_loss):
                raise FloatingPointError(f"loss is {step_loss} at epoch {epoch}, step {self.global_step}; "
                                         "lower optim.lr, enable optim.clip_grad or use train.amp=bf16 instead of fp16")
            if self.cfg.optim.clip_grad:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.cfg.optim.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            lr = self.optimizer.param_groups[0]["lr"] / self.optimizer.param_groups[0].get("lr_scale", 1.0)
            self.schedule.step()
            if self.ema is not None:
                self.ema.update(self.raw_model)
            self.global_step += 1
            self.step_losses.append(step_loss)
            loss_sum += step_loss
            loss_n += 1
            self._epoch_acc = [loss_sum, loss_n, correct, counted]
            elapsed = time.perf_counter() - t0
            rate = clips * self.dist.world_size / max(elapsed, 1e-9)
            if bar is not None:
                remaining = (self.total_steps - self.global_step) * accum * t.batch_size * self.dist.world_size
                bar.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}", clips_s=f"{rate:.1f}",
                                run_eta=_fmt_time(remaining / max(rate, 1e-9)), refresh=False)
            if t.log_every and (self.global_step % t.log_every == 0 or self.micro == self.micro_per_epoch):
                mean_loss, c, n = all_reduce_sum([step_loss, correct, counted], self.dist)
                rec = {  # epochs counted from 1, as the val records and the console lines
                    "type": "train", "epoch": epoch + 1, "step": self.global_step, "loss": mean_loss / self.dist.world_size,
                    "loss_avg": loss_sum / max(loss_n, 1), "lr": lr,
                    "train_top1": (100.0 * c / n) if (n and self.mixup is None) else None,
                    "clips_per_s": rate, "data_wait": data_wait / max(elapsed, 1e-9),
                    "samples_skipped": self.samples_skipped, "time": time.time(),
                }
                self._record(rec)
                if self._plain_log:  # no live bar (a log file, SLURM, nohup): a plain line instead
                    remaining = (self.total_steps - self.global_step) * accum * t.batch_size * self.dist.world_size
                    self.log(f"epoch {epoch + 1}/{t.epochs}  step {self.global_step}/{self.total_steps}  "
                             f"loss {rec['loss']:.4f} (avg {rec['loss_avg']:.4f})  lr {lr:.3g}  {rate:.1f} {self.task.rate_unit}/s  "
                             f"data wait {100 * rec['data_wait']:.0f}%  ETA {_fmt_time(remaining / max(rate, 1e-9))}"
                             + (f"  skipped {self.samples_skipped}" if self.samples_skipped else ""))
                self._check_broken()
            step_loss = 0.0
            if t.save_every_steps and self.global_step % t.save_every_steps == 0 and self.micro < self.micro_per_epoch:
                self.save("checkpoint_last.pth")
            if t.stop_after_steps is not None and self.global_step >= t.stop_after_steps:
                self.stopped = True
            elif self._should_stop():
                self.stopped = True
            if self.stopped and self.micro < self.micro_per_epoch:
                path = self.save("checkpoint_last.pth")
                if self._stop_signal:
                    self.log(f"{signal.Signals(self._stop_signal).name}: stopped at step {self.global_step} "
                             f"(epoch {epoch + 1}); checkpoint saved to {path}; resume with train.resume=auto")
                break  # at the end of an epoch fit() validates and saves before stopping
        if bar is not None:
            bar.close()
        self._check_broken(final=True)
        stats = skip_stats(self.train_dataset, reset=True)
        bad_files = sorted(set().union(*all_gather_objects(set(stats["files"]), self.dist))) if stats else []
        loss_sum, loss_n = all_reduce_sum([loss_sum, loss_n], self.dist)  # the epoch's mean over all processes
        self.epoch_train = {"loss": loss_sum / max(loss_n, 1), "clips_per_s": clips * self.dist.world_size /
                            max(time.perf_counter() - t0, 1e-9), "seconds": time.perf_counter() - t0,
                            "train_top1": (100.0 * correct / counted) if counted and self.mixup is None else None,
                            "data_wait": data_wait / max(time.perf_counter() - t0, 1e-9),
                            "skipped": int(all_reduce_sum([self.samples_skipped - skipped_before], self.dist)[0]),
                            "bad_files": bad_files,
                            "corrupt": int(all_reduce_sum([self.frames_corrupt - corrupt_before], self.dist)[0])}
        self.files_skipped.update(bad_files)
        return self.micro == self.micro_per_epoch

    def _forward_loss(self, x: torch.Tensor, target):
        if self.mixup is not None:  # soft targets: no label smoothing on top (the mixup targets carry it)
            return self.task.forward_loss(self.forward_model, x, target, self.cfg, mixed=True)
        return self.task.forward_loss(self.forward_model, x, target, self.cfg)

    def eval_model(self) -> nn.Module:
        if self.ema is not None:
            return self.ema.module
        return self.model if self.fsdp else self.raw_model

    def validate(self, progress: bool | None = None) -> tuple[EvalResult, dict] | None:
        if self.val_loader is None:
            return None
        self.val_dataset.epoch = 0  # type: ignore[union-attr]
        return self.task.evaluate(self.eval_model(), self.val_loader, self.device, self.dist, self.cfg,
                                  progress=self.cfg.train.progress if progress is None else progress, desc="validate")

    def fit(self) -> dict:
        """Train to ``train.epochs`` (or until stopped), validating and checkpointing; returns a summary."""
        t = self.cfg.train
        restore = self._install_signal_handler()
        t_start = time.perf_counter()
        final: dict = {}
        try:
            self.log(f"training {self.model_label} ({sum(p.numel() for p in self.raw_model.parameters()) / 1e6:.2f}M "
                     f"params) on {self.device} x {self.dist.world_size}, {len(self.train_dataset)} train {self.task.sample_unit}, "
                     f"{self.steps_per_epoch} steps/epoch, total batch {self.total_batch}, lr {self.base_lr:.3g}")
            while self.epoch < t.epochs:
                if not self.train_one_epoch():
                    break
                epoch = self.epoch
                et = self.epoch_train
                msg = (f"epoch {epoch + 1}/{t.epochs}  loss {et['loss']:.4f}  "
                       f"{et['clips_per_s']:.1f} {self.task.rate_unit}/s  {et['seconds']:.1f}s  data wait {100 * et['data_wait']:.0f}%"
                       + (f"  skipped {et['skipped']} broken sample(s)" if et["skipped"] else "")
                       + (f" from {len(et['bad_files'])} file(s): " + ", ".join(Path(f).name for f in et["bad_files"][:3])
                          + (" ..." if len(et["bad_files"]) > 3 else "") if et["bad_files"] else "")
                       + (f"  {et['corrupt']} damaged frame(s) ({self.cfg.data.corrupt_frames})" if et["corrupt"] else ""))
                is_eval_epoch = self.val_loader is not None and (
                    (t.eval_every and (epoch + 1) % t.eval_every == 0) or epoch + 1 == t.epochs)
                improved = False
                if is_eval_epoch:
                    _, m = self.validate()
                    self._record({"type": "val", "epoch": epoch + 1, "step": self.global_step,
                                  **{k: m.get(k) for k in self.task.logged_metrics}, "time": time.time()})
                    score = float(m[self.task.primary_metric])
                    if score > self.best_top1:
                        self.best_top1, self.best_epoch, improved = score, epoch + 1, True
                    msg += f"  val {self.task.describe(m)}  (best {self.best_top1:.2f})"
                self.epoch, self.micro = epoch + 1, 0
                state = self.training_state()
                self.save("checkpoint_last.pth", state)
                if improved or (self.val_loader is None and self.epoch == t.epochs):
                    self.save("checkpoint_best.pth", state)
                self.log(msg)
                self._plot()
                if self.stopped:
                    if self._stop_signal:
                        self.log(f"{signal.Signals(self._stop_signal).name}: stopped after epoch {self.epoch}; "
                                 f"checkpoint saved to {self.out_dir / 'checkpoint_last.pth'}; resume with "
                                 "train.resume=auto")
                    break
            self._plot(force=True)
            if self._stop_signal and not self.stopped:  # the signal came after the last step (during validation)
                self.stopped = True
                self.log(f"{signal.Signals(self._stop_signal).name}: the last epoch had finished; checkpoint saved to "
                         f"{self.out_dir / 'checkpoint_last.pth'}; the final evaluation is skipped")
            if not self.stopped and t.final_eval and self.val_loader is not None:
                final = self.final_evaluation()
        finally:
            restore()
            self._close_logs()
        return {"stopped": self.stopped, "signal": int(self._stop_signal or 0) or None,
                "epoch": self.epoch, "global_step": self.global_step,
                "best_top1": self.best_top1, "best_epoch": self.best_epoch,
                "seconds": time.perf_counter() - t_start, "metrics": final}

    def final_evaluation(self) -> dict:
        """Evaluate the best checkpoint (or the current weights) into the run's output files."""
        best = self.out_dir / "checkpoint_best.pth"
        source = "current weights"
        if best.is_file() and not self.fsdp:
            ck = torch.load(best, map_location="cpu", weights_only=True)
            target = self.ema.module if self.ema is not None else self.raw_model
            target.load_state_dict(in_model_layout(target, ck["ema"] if self.ema is not None and ck.get("ema")
                                                   else ck["model"]))
            source = str(best)
        res, m = self.validate()
        payload = {}
        if self.is_main:
            payload = self.task.write_outputs(self.out_dir, res, m, self.classes, dataset_paths(self.val_dataset),
                                              extra={"checkpoint": source, "split": "val", "model": self.cfg.model.name,
                                                "view_average": self.cfg.eval.view_average,
                                                "train_samples_seen": self.samples_seen,
                                                "train_samples_skipped": self.samples_skipped,
                                                "train_files_skipped": sorted(self.files_skipped),
                                                "train_frames_corrupt": self.frames_corrupt,
                                                "corrupt_frames_policy": getattr(self.cfg.data, "corrupt_frames", None)})
            views = f" x {m['num_views']} views" if "num_views" in m else ""
            mca = f"  mean class acc {m['mean_class_acc']:.2f}" if m.get("mean_class_acc") is not None else ""
            self.log(f"final evaluation ({source}): {self.task.describe(m)}{mca}  over {m['num_samples']} "
                     f"{self.task.sample_unit}{views}")
        return payload

    def close(self) -> None:
        self._close_logs()
        cleanup_distributed(self.dist)


def _fmt_time(s: float) -> str:
    s = int(max(s, 0))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"
