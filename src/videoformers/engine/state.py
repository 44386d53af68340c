"""Run state that must survive a restart: RNG states, EMA weights, per-item data seeding.

Exact resume (same loss curve to 1e-6 after a kill) needs every source of randomness to be
either saved or a pure function of (seed, epoch, position):

- the global RNGs of each process (torch, CUDA, numpy, python) are saved in the checkpoint;
- the shuffle is a function of ``seed + epoch`` (:class:`~videoformers.engine.distributed.TrainSampler`);
- data augmentation is seeded per item from ``(seed, epoch, index)`` by :class:`SeededDataset`,
  so it does not depend on which DataLoader worker loads an item nor on where the epoch resumed.
"""

from __future__ import annotations

import copy
import random
import zlib
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset, get_worker_info

__all__ = ["get_rng_state", "set_rng_state", "seed_everything", "SeededDataset", "ModelEma", "skip_stats"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """RNG states as plain data (``torch.load(weights_only=True)`` can read them back)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": np_state[0], "key": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": _py_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state_to_plain(s: tuple) -> list:
    version, internal, gauss = s
    return [version, list(internal), gauss]


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class SeededDataset(Dataset):
    """Wraps a dataset so that item ``i`` of epoch ``e`` is produced with the global RNGs seeded
    from ``(seed, e, i)``: augmentation becomes independent of worker assignment, of the number
    of workers and of where a resumed epoch starts.

    In the main process (``num_workers=0``) the caller's RNG states are saved and restored
    around the item so that the training loop's own random stream (dropout, drop path, mixup)
    is the same with or without data loading in between.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "seed", "epoch"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _item_seed(self, index: int) -> int:
        return zlib.crc32(f"{self.seed}/{self.epoch}/{index}".encode())

    def __getitem__(self, index: int) -> Any:
        in_worker = get_worker_info() is not None
        saved = None if in_worker else get_rng_state()
        try:
            seed_everything(self._item_seed(int(index)))
            return self.dataset[index]
        finally:
            if saved is not None:
                set_rng_state(saved)


class ModelEma:
    """Exponential moving average of a model's parameters; buffers (BN statistics) are copied.

    ``ema = decay * ema + (1 - decay) * param`` after every optimiser step, the averaged model
    is evaluated in place of the raw one when ``train.ema_decay`` is set.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = [p for p in self.module.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        floats = [(e, s) for e, s in zip(ema_p, src_p) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [s.to(e.dtype) for e, s in floats], 1.0 - self.decay)
        for e, s in zip(self.module.buffers(), model.buffers()):
            e.copy_(s)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, sd: dict) -> None:
        from videoformers.checkpoints.loading import in_model_layout

        self.module.load_state_dict(in_model_layout(self.module, sd))


def skip_stats(dataset, reset: bool = False) -> dict | None:
    """``dataset.skip_stats()`` (distinct broken files, across DataLoader workers) where the dataset, or
    the one it wraps (:class:`SeededDataset`), keeps them; else ``None``."""
    for ds in (dataset, getattr(dataset, "dataset", None)):
        fn = getattr(type(ds), "skip_stats", None) if ds is not None else None
        if fn is not None:
            return ds.skip_stats(reset=reset)
    return None
