"""Optimiser and learning-rate schedule builders.

Parameter groups follow the papers' recipes:

- no weight decay on 1-D parameters (norm scales, biases) nor on positional embeddings and tokens
  (PySlowFast ``ZERO_WD_1D_PARAM``; timm's ``no_weight_decay``), plus whatever the model lists in
  a ``no_weight_decay()`` method;
- separate learning rates for the classifier and the backbone (DualFormer: head 1e-3, backbone
  1e-4 -- Swin's fine-tuning rule); a backbone multiplier of 0 freezes the backbone;
- layer-wise learning-rate decay for ViT-based models (BEiT/MAE fine-tuning): block ``i`` of
  ``L`` gets ``decay ** (L + 1 - layer_id)``.

The schedule is a linear warm-up followed by a cosine, evaluated per optimiser step (fractional
warm-up epochs such as ViViT's 2.5 are exact).
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import torch
import torch.nn as nn

from .config import OptimConfig

__all__ = [
    "param_groups",
    "build_optimizer",
    "WarmupCosineSchedule",
    "effective_lr",
    "layer_ids",
    "head_prefixes",
]


def head_prefixes(model: nn.Module, cfg: OptimConfig) -> tuple[str, ...]:
    if cfg.head_keys:
        return tuple(cfg.head_keys)
    return tuple(getattr(model, "classifier_prefixes", ("head.",)))


_BLOCK_RE = re.compile(r"(?:^|\.)(?:blocks|resblocks|layers)\.(\d+)\.")
_EMBED_KEYS = ("patch_embed", "pos_embed", "cls_token", "conv1", "class_embedding", "positional_embedding",
               "ln_pre", "embed", "time_embed", "temporal_embed")


def layer_ids(model: nn.Module, names: Iterable[str]) -> tuple[dict[str, int], int]:
    """Layer id per parameter for layer-wise lr decay and the number of layers ``L``.

    A model may define ``lr_layer_id(name) -> int`` and ``num_lr_layers`` (ids in ``0..L+1``);
    otherwise embeddings get 0, ``blocks.i`` / ``resblocks.i`` / ``layers.i`` get ``i + 1`` and
    everything after the blocks (final norm, fusion, head) gets ``L + 1``.
    """
    names = list(names)
    fn = getattr(model, "lr_layer_id", None)
    if callable(fn):
        n = int(getattr(model, "num_lr_layers"))
        return {k: int(fn(k)) for k in names}, n
    found = {k: int(m.group(1)) for k in names if (m := _BLOCK_RE.search(k))}
    n = max(found.values()) + 1 if found else 0
    ids = {}
    for k in names:
        if k in found:
            ids[k] = found[k] + 1
        elif any(e in k.split(".")[0] or k.startswith(e) for e in _EMBED_KEYS):
            ids[k] = 0
        else:
            ids[k] = n + 1
    return ids, n


def _no_decay(model: nn.Module, name: str, p: torch.Tensor, cfg: OptimConfig, extra: set[str]) -> bool:
    if p.ndim <= 1 or name.endswith(".bias"):
        return True
    if name in extra or name.rsplit(".", 1)[-1] in extra:
        return True
    parts = name.split(".")
    # Keys name parameters (the last component: ``pos_embed``, ``cls_token``, ...); a
    # convolution that happens to live in a module called ``pos_embed`` (UniFormer's DPE) keeps
    # its decay, as in the authors' optimiser, unless its module is listed explicitly.
    if any(parts[-1].endswith(key) for key in cfg.no_weight_decay_keys):
        return True
    return any(m in parts[:-1] for m in cfg.no_weight_decay_modules)


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Parameter groups with ``weight_decay`` and an ``lr_scale`` the schedule multiplies in."""
    named = [(n, p) for n, p in model.named_parameters()]
    heads = head_prefixes(model, cfg)
    extra = set()
    nwd = getattr(model, "no_weight_decay", None)
    if callable(nwd):
        extra = set(nwd())
    if cfg.backbone_lr_mult == 0:
        for n, p in named:
            if not n.startswith(heads):
                p.requires_grad_(False)
    ids, n_layers = layer_ids(model, [n for n, _ in named]) if cfg.layer_decay else ({}, 0)
    groups: dict[tuple[float, float], dict] = {}
    for n, p in named:
        if not p.requires_grad:
            continue
        wd = 0.0 if _no_decay(model, n, p, cfg, extra) else cfg.weight_decay
        scale = cfg.head_lr_mult if n.startswith(heads) else cfg.backbone_lr_mult
        if cfg.layer_decay:
            scale *= cfg.layer_decay ** (n_layers + 1 - ids[n])
        key = (wd, scale)
        g = groups.setdefault(key, {"params": [], "param_names": [], "weight_decay": wd, "lr_scale": scale})
        g["params"].append(p)
        g["param_names"].append(n)
    if not groups:
        raise ValueError("no trainable parameters (is the whole model frozen?)")
    return list(groups.values())


def effective_lr(cfg: OptimConfig, total_batch: int) -> float:
    """``lr`` scaled linearly from the recipe's reference batch to the actual total batch."""
    if cfg.lr_scale_ref:
        return cfg.lr * total_batch / cfg.lr_scale_ref
    return cfg.lr


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    name = cfg.name.lower()
    if name == "adamw":
        # The fused/foreach kernels are numerically equivalent; foreach is the portable default.
        return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.name must be 'adamw' or 'sgd', got {cfg.name!r}")


class WarmupCosineSchedule:
    """Per-step learning rate: linear warm-up then cosine, constant, step or poly decay.

    ``cosine_after_warmup=True`` (PySlowFast, used by UniFormer/UniFormerV2): warm-up from
    ``warmup_start_lr`` to ``base_lr`` over ``warmup_steps``, then cosine from ``base_lr`` to
    ``min_lr`` over the remaining steps. ``False`` (Scenic's ``constant * cosine_decay *
    linear_warmup``, used by ViViT): the cosine spans the whole run and the warm-up ramp
    multiplies it. ``"step"`` (mmcv's ``policy='step'``, the UniFormer pose configs): ``base_lr x gamma^k``
    after the k-th of ``milestones`` (optimiser steps). ``"poly"`` (mmcv's ``policy='poly'``, the
    segmentation configs): ``(base_lr - min_lr) (1 - step/total)^power + min_lr``. For these two the
    warm-up ramps from ``warmup_start_lr`` to the decayed value of that step (mmcv's linear warm-up
    multiplies the regular lr by a ramp from ``warmup_start_lr / base_lr`` to 1: the same up to
    ``warmup_start_lr`` times the decay so far). Every group's lr is the schedule value times its
    ``lr_scale``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int, warmup_steps: int = 0,
                 warmup_start_lr: float = 0.0, min_lr: float = 0.0, kind: str = "cosine",
                 cosine_after_warmup: bool = True, milestones: Sequence[int] = (), gamma: float = 0.1,
                 power: float = 1.0) -> None:
        if kind not in ("cosine", "constant", "step", "poly"):
            raise ValueError(f"optim.sched must be 'cosine', 'constant', 'step' or 'poly', got {kind!r}")
        if kind == "step" and not milestones:
            raise ValueError("optim.sched=step needs optim.milestones (epochs where the lr drops by optim.gamma)")
        self.milestones, self.gamma, self.power = sorted(int(m) for m in milestones), float(gamma), float(power)
        self.optimizer = optimizer
        self.base_lr, self.total_steps, self.warmup_steps = base_lr, max(int(total_steps), 1), int(warmup_steps)
        self.warmup_start_lr, self.min_lr = warmup_start_lr, min_lr
        self.kind, self.cosine_after_warmup = kind, cosine_after_warmup
        self.step_num = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        w, T = self.warmup_steps, self.total_steps
        if self.kind == "constant":
            decay = self.base_lr
        elif self.kind == "step":
            decay = self.base_lr * self.gamma ** sum(step >= m for m in self.milestones)
        elif self.kind == "poly":
            decay = self.min_lr + (self.base_lr - self.min_lr) * (1.0 - min(step / T, 1.0)) ** self.power
        elif self.cosine_after_warmup:
            t = min(max(step - w, 0) / max(T - w, 1), 1.0)
            decay = self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        else:
            t = min(step / T, 1.0)
            decay = self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        if step < w:
            if self.kind in ("cosine", "constant") and (self.cosine_after_warmup or self.kind == "constant"):
                return self.warmup_start_lr + (self.base_lr - self.warmup_start_lr) * step / w
            return self.warmup_start_lr + (decay - self.warmup_start_lr) * step / w
        return decay

    def _apply(self) -> None:
        lr = self.lr_at(self.step_num)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)

    def step(self) -> None:
        self.step_num += 1
        self._apply()

    def get_last_lr(self) -> float:
        return self.lr_at(self.step_num)

    def state_dict(self) -> dict:
        return {"step_num": self.step_num, "base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}

    def load_state_dict(self, sd: dict) -> None:
        self.step_num = int(sd["step_num"])
        self._apply()
