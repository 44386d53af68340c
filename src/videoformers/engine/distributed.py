"""Process groups, samplers, SyncBatchNorm and FSDP2 wrapping: one code path from 1 to N processes.

Launched with ``torchrun`` (which sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*``) the
engine initialises a process group (NCCL on GPU, gloo on CPU); launched as a plain process it
runs with ``world_size == 1`` and the same code. Multi-node needs nothing beyond torchrun's
rendezvous flags.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Sampler

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "TrainSampler",
    "EvalSampler",
    "SyncBatchNormAnyDevice",
    "convert_sync_batchnorm",
    "apply_fsdp2",
    "all_reduce_sum",
    "all_gather_objects",
    "spawn_local",
    "find_free_port",
]


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    initialised_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Read torchrun's environment, pick the device and start the process group if needed."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"train.device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("train.device=cuda but no CUDA device is available")
        dev = torch.device("cuda", local_rank if device == "cuda" else int(device.split(":")[1]))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    info = DistInfo(rank, world_size, local_rank, dev)
    if world_size > 1:
        info.backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            kwargs = {"device_id": dev} if dev.type == "cuda" else {}
            # The group's threads (gloo's workers and I/O, the store's client) start with SIGTERM/SIGINT blocked,
            # so a stop signal to the process (scancel, preemption, Ctrl-C) lands on the main thread, where the
            # trainer saves and stops. Delivered to a gloo thread it interrupted a socket call there and aborted
            # the rank ("terminate called without an active exception"), about 1 run in 20 of the signal test.
            stop = {signal.SIGTERM, signal.SIGINT}
            old = signal.pthread_sigmask(signal.SIG_BLOCK, stop) if hasattr(signal, "pthread_sigmask") else None
            try:
                dist.init_process_group(info.backend, rank=rank, world_size=world_size, **kwargs)
            finally:
                if old is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
            info.initialised_here = True
            # The group lives until the process exits: a second engine call in the same process
            # (train, then eval) reuses it -- re-creating a group on torchrun's port can hang.
            atexit.register(_destroy_at_exit)
    return info


def _destroy_at_exit() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def cleanup_distributed(info: DistInfo) -> None:
    """Synchronise the processes at the end of a job (the group itself is destroyed at exit)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: Sequence[float], info: DistInfo) -> list[float]:
    """Sum python numbers over processes (identity for one process)."""
    if not info.enabled:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------

class TrainSampler(Sampler[int]):
    """Shuffled, rank-strided and resumable.

    Each epoch draws one permutation from ``seed + epoch`` (identical on every rank), pads it to a
    multiple of ``world_size`` by wrapping around (as ``DistributedSampler``) and gives rank ``r``
    positions ``r, r + W, r + 2W, ...``. With per-process batch ``b`` the union of the ranks'
    ``i``-th batches is exactly positions ``[i*W*b, (i+1)*W*b)`` of the permutation: the same
    samples a single process with batch ``W*b`` sees at step ``i`` (what makes DDP equivalent
    to a big batch). ``start`` skips the first samples of this rank's share, which is how a
    resumed run continues mid-epoch.
    """

    def __init__(self, length: int, world_size: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0) -> None:
        if length <= 0:
            raise ValueError("the training set is empty")
        self.length, self.world_size, self.rank = length, world_size, rank
        self.shuffle, self.seed = shuffle, seed
        self.epoch = 0
        self.start = 0
        self.per_rank = math.ceil(length / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.length, generator=g).tolist()
        else:
            idx = list(range(self.length))
        total = self.per_rank * self.world_size
        while len(idx) < total:
            idx += idx[: total - len(idx)]
        return idx[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start:])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)


class EvalSampler(Sampler[int]):
    """Rank-strided, padded so every rank runs the same number of batches (FSDP needs that);
    the evaluator drops the duplicates by sample index."""

    def __init__(self, length: int, world_size: int = 1, rank: int = 0) -> None:
        self.length, self.world_size, self.rank = length, world_size, rank
        self.per_rank = math.ceil(length / world_size) if length else 0

    def __iter__(self) -> Iterator[int]:
        idx = list(range(self.length))
        total = self.per_rank * self.world_size
        if idx:
            while len(idx) < total:
                idx += idx[: total - len(idx)]
        return iter(idx[self.rank:total:self.world_size])

    def __len__(self) -> int:
        return self.per_rank


# --------------------------------------------------------------------------------------------
# SyncBatchNorm that also works on CPU / gloo
# --------------------------------------------------------------------------------------------

class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over processes: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNormAnyDevice(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation with statistics over the whole distributed batch, on any device.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs (and DDP refuses it on CPU modules). This layer
    computes the per-channel count, mean and variance with differentiable all-reduces, so autograd produces exactly the gradient
    of batch norm over the concatenated batch; with one process it is plain batch norm.
    Used for CPU/gloo runs; on CUDA :func:`convert_sync_batchnorm` uses PyTorch's fused layer.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sync = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not sync:
            momentum = 0.0 if self.momentum is None else self.momentum
            if self.training and self.track_running_stats:
                self.num_batches_tracked.add_(1)
                if self.momentum is None:
                    momentum = 1.0 / float(self.num_batches_tracked)
            use_batch = self.training or self.running_mean is None
            return F.batch_norm(x, self.running_mean if not self.training or self.track_running_stats else None,
                                self.running_var if not self.training or self.track_running_stats else None,
                                self.weight, self.bias, use_batch, momentum, self.eps)
        all_reduce = _AllReduceSum.apply
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        n_local = x.numel() // x.shape[1]
        # [count, sum_c ...] in one reduction, then the centred second moment in a second one
        # (two passes: numerically safer than E[x^2] - E[x]^2).
        stats = torch.cat([xf.new_full((1,), float(n_local)), xf.sum(dims)])
        stats = all_reduce(stats)
        count = stats[0]
        mean = stats[1:] / count
        shape = [1, -1] + [1] * (x.dim() - 2)
        xc = xf - mean.view(shape)
        var = all_reduce((xc * xc).sum(dims)) / count
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = var.detach() * (count / (count - 1)).clamp_min(0)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm{1,2,3}d by a synchronised one (PyTorch's on CUDA, ours elsewhere)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(m: nn.Module) -> nn.Module:
        out = m
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, SyncBatchNormAnyDevice):
            out = SyncBatchNormAnyDevice(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            if m.affine:
                with torch.no_grad():
                    out.weight.copy_(m.weight)
                    out.bias.copy_(m.bias)
                out.weight.requires_grad_(m.weight.requires_grad)
                out.bias.requires_grad_(m.bias.requires_grad)
            if m.track_running_stats:
                out.running_mean.copy_(m.running_mean)
                out.running_var.copy_(m.running_var)
                out.num_batches_tracked.copy_(m.num_batches_tracked)
            out.train(m.training)
        for name, child in m.named_children():
            out.add_module(name, convert(child))
        return out

    return convert(model)


# --------------------------------------------------------------------------------------------
# FSDP2
# --------------------------------------------------------------------------------------------

_BLOCK_LIST_NAMES = ("blocks", "resblocks", "layers", "dec", "global_blocks")


def _block_modules(model: nn.Module) -> list[nn.Module]:
    """Transformer blocks: the elements of every ``ModuleList`` whose name ends in a block-list name."""
    found = []
    for name, m in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(m, nn.ModuleList) and any(leaf.startswith(n) for n in _BLOCK_LIST_NAMES):
            found.extend(list(m))
    return found


def apply_fsdp2(model: nn.Module, amp: str = "none") -> nn.Module:
    """Shard parameters with FSDP2 (``fully_shard``): one unit per transformer block plus the root.

    With ``amp`` set, parameters are all-gathered in bf16/fp16 and gradients reduced in fp32.
    Needs an initialised process group (torchrun).
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = None
    if amp in ("bf16", "fp16"):
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if amp == "bf16" else torch.float16,
                                  reduce_dtype=torch.float32)
    kwargs = {"mp_policy": mp} if mp is not None else {}
    for block in _block_modules(model):
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


# --------------------------------------------------------------------------------------------
# local multi-process launcher (tests, single-machine CPU runs without torchrun)
# --------------------------------------------------------------------------------------------

def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_entry(rank: int, world_size: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update({
        "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    })
    torch.set_num_threads(1)
    try:
        fn(rank, *args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn_local(fn: Callable, world_size: int, args: tuple = ()) -> None:
    """Run ``fn(rank, *args)`` in ``world_size`` fresh processes with torchrun's environment
    variables set, so the engine inside takes exactly the torchrun code path (gloo on CPU)."""
    import torch.multiprocessing as mp

    mp.spawn(_spawn_entry, args=(world_size, find_free_port(), fn, args), nprocs=world_size, join=True)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGTERM and SIGINT. ``timeout``, ``scancel``, torchrun
    and Ctrl-C signal the whole process group; a worker that died of it would take the run down before the
    main process could save. The main process stops at a step boundary and shuts the workers down itself."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

