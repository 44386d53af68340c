"""Entry points behind ``videoformers train`` and ``videoformers eval``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .config import Config
from .distributed import EvalSampler, cleanup_distributed, init_distributed
from .state import SeededDataset
from .trainer import Trainer, build_model, dataset_paths, fill_data_defaults

__all__ = ["train", "evaluate_checkpoint"]


def train(cfg: Config, **hooks) -> dict:
    """Train ``cfg`` (see :class:`~videoformers.engine.trainer.Trainer`); returns the run summary."""
    trainer = Trainer(cfg, **hooks)
    try:
        return trainer.fit()
    finally:
        trainer.close()


def _release_name(checkpoint: str) -> str | None:
    """``checkpoint`` when it names released weights (``model.tag``) rather than a file."""
    import os

    from videoformers.checkpoints.zoo import list_pretrained

    return checkpoint if not os.path.exists(checkpoint) and checkpoint in list_pretrained() else None


def eval_output_dir(cfg: Config) -> Path:
    """Where ``eval`` writes: ``eval.output_dir``, else ``<train.output_dir>/eval/<split>-<checkpoint>/`` --
    never the training run's own ``metrics.json`` / ``predictions.csv``, and one folder per checkpoint
    and split, so evaluating ``checkpoint_best`` and ``checkpoint_last`` keeps both results."""
    if cfg.eval.output_dir:
        return Path(cfg.eval.output_dir)
    ck = str(cfg.eval.checkpoint)
    stem = ck if _release_name(ck) else Path(ck).stem
    return Path(cfg.train.output_dir) / "eval" / f"{cfg.eval.split}-{stem}"


def evaluate_checkpoint(cfg: Config, write: bool = True) -> dict:
    """Multi-view evaluation of ``cfg.eval.checkpoint`` (a file, or released weights by name:
    ``uniformer_small.k400_16x8``) on ``cfg.eval.split``; writes
    ``metrics.json``, ``predictions.csv`` and ``confusion_matrix.png`` into :func:`eval_output_dir`."""
    from videoformers.checkpoints import load_checkpoint, read_checkpoint

    from .tasks import ClassificationTask, task_for

    if not cfg.eval.checkpoint:
        raise ValueError("evaluation needs a checkpoint: videoformers eval CONFIG checkpoint=PATH")
    if cfg.eval.split not in ("val", "test"):
        raise ValueError(f"eval.split must be 'val' or 'test', got {cfg.eval.split!r}")
    if cfg.eval.split == "test" and not cfg.data.test_list:
        raise ValueError("eval.split=test needs data.test_list (without it the val videos would be evaluated "
                         "and recorded as 'test'); set data.test_list or eval.split=val")
    info = init_distributed(cfg.train.device)
    try:
        cfg = fill_data_defaults(cfg)
        task = task_for(cfg)
        ds = task.build_datasets(cfg, (cfg.eval.split,))[cfg.eval.split]
        if ds is None:
            raise ValueError(f"no {cfg.eval.split} split is configured for data.dataset={cfg.data.dataset!r}")
        used_ema = False
        release = _release_name(cfg.eval.checkpoint)
        if release is not None:  # released weights by name (``checkpoint=uniformer_small.k400_16x8``)
            from videoformers.registry import create_model

            ov = {**(cfg.model.overrides or {}), **({"num_classes": cfg.model.num_classes} if cfg.model.num_classes else {})}
            model = create_model(release, pretrained=True, **ov)
            num_classes = int(model.num_classes)
            classes = list(getattr(ds, "classes", None) or model.label_names or [])
        else:
            obj, _ = read_checkpoint(cfg.eval.checkpoint)
            ours = isinstance(obj, dict) and "model" in obj and "num_classes" in obj
            classes = list(getattr(ds, "classes", None) or (obj.get("classes") if ours else None) or [])
            num_classes = int(cfg.model.num_classes or (obj["num_classes"] if ours else 0)
                              or task.num_classes(cfg, ds) or len(classes))
            model = build_model(cfg, num_classes)
            weights = obj
            if ours and cfg.eval.use_ema and obj.get("ema"):
                weights, used_ema = obj["ema"], True
            load_checkpoint(model, weights, strict=True)
        # Inference precision (issue 20): autocast for bf16/fp16, quantised linear layers for int8 (CPU).
        from videoformers.ops.precision import prepare_for_inference

        dtype = cfg.eval.dtype or {"none": "fp32"}.get(cfg.train.amp, cfg.train.amp)
        model = prepare_for_inference(model.to(info.device), dtype, info.device)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, amp=dtype if dtype in ("bf16", "fp16") else "none"))
        eb = cfg.eval.batch_size or cfg.train.batch_size
        if isinstance(ds, torch.utils.data.IterableDataset):  # shards: each rank reads its own share, once
            ds.seed = cfg.train.seed + 1
            if callable(getattr(ds, "set_distributed", None)):
                ds.set_distributed(info.rank, info.world_size)
            data, sampler = ds, None
        else:
            data, sampler = SeededDataset(ds, cfg.train.seed + 1), EvalSampler(len(ds), info.world_size, info.rank)
        loader = torch.utils.data.DataLoader(
            data, batch_size=eb, sampler=sampler, collate_fn=task.collate_fn(cfg.eval.split),
            num_workers=int(cfg.data.num_workers or 0), pin_memory=info.device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.train.seed),
        )
        if isinstance(task, ClassificationTask):
            task.bind(num_classes, classes or None)
        res, metrics = task.evaluate(model, loader, info.device, info, cfg, progress=cfg.train.progress,
                                     desc=f"eval {cfg.eval.split}")
        payload = {k: v for k, v in metrics.items()}
        if info.is_main and write:
            extra = {"checkpoint": str(cfg.eval.checkpoint), "ema": used_ema, "split": cfg.eval.split,
                     "model": cfg.model.name, "dtype": dtype}
            if isinstance(task, ClassificationTask):
                extra["view_average"] = cfg.eval.view_average
            payload = task.write_outputs(eval_output_dir(cfg), res, metrics, classes or None, dataset_paths(ds), extra)
        return payload
    finally:
        cleanup_distributed(info)
