"""DDP equivalence: 2 processes (gloo, CPU) with per-process batch b end with the same weights as
1 process with batch 2b -- for a model without BatchNorm and for one with SyncBatchNorm; the same
for FSDP2 (``fully_shard``), including a kill + resume; distributed evaluation gathers every video once.

The two processes are started with torchrun's environment variables (RANK, WORLD_SIZE,
MASTER_ADDR, ...), so the engine takes the code path of a ``torchrun`` launch (DDP, the
rank-strided sampler, SyncBatchNorm, rank-0 checkpoints).
"""

import json

import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from videoformers.engine.config import load_config
from videoformers.engine.distributed import SyncBatchNormAnyDevice, spawn_local
from videoformers.engine.trainer import Trainer

K = 3


class Clips(Dataset):
    def __init__(self, n: int = 40, seed: int = 0, views: int | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.views = views
        self.y = torch.randint(0, K, (n,), generator=g)
        self.x = torch.randn(n, 3, 4, 8, 8, generator=g) + self.y.view(-1, 1, 1, 1, 1).float()
        self.classes, self.num_classes = [str(i) for i in range(K)], K

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i] if self.views is None else torch.stack([self.x[i] * (1 + 0.1 * v) for v in range(self.views)])
        return {"video": x, "label": int(self.y[i]), "index": i, "num_skipped": 0}


class Net(nn.Module):
    def __init__(self, bn: bool) -> None:
        super().__init__()
        # No conv bias in front of BatchNorm: its gradient is exactly zero in theory, so Adam would
        # amplify float noise there (as in any real network, the bias is dropped).
        self.conv = nn.Conv3d(3, 8, 3, padding=1, bias=not bn)
        self.bn = nn.BatchNorm3d(8) if bn else nn.Identity()
        self.head = nn.Linear(8, K)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu().mean((2, 3, 4)))


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(dim), nn.Linear(dim, dim)

    def forward(self, x):
        return x + self.fc(self.norm(x))


class BlockNet(nn.Module):
    """ViT-like layout (``blocks`` ModuleList): FSDP2 shards one unit per block plus the root."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(3 * 4 * 8 * 8, dim)
        self.blocks = nn.ModuleList(Block(dim) for _ in range(3))
        self.head = nn.Linear(dim, K)

    def forward(self, x):
        x = self.embed(x.flatten(1))
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def _train(out, batch_size: int, bn: bool, fsdp: bool = False, extra=()) -> Trainer:
    cfg = load_config(None, [
        f"train.output_dir={out}", "train.epochs=2", f"train.batch_size={batch_size}", "data.num_workers=0",
        "optim.lr=0.01", "optim.warmup_epochs=1", "train.progress=false", "train.tensorboard=false",
        f"train.sync_bn={str(bn).lower()}", "train.log_every=1", "eval.batch_size=2", f"train.fsdp={str(fsdp).lower()}",
        *extra,
    ])
    # 11 validation videos x 2 views: uneven over 2 processes, so the padded shards must be de-duplicated.
    val = None if bn or fsdp else Clips(11, seed=1, views=2)
    model = (lambda k: BlockNet()) if fsdp else (lambda k: Net(bn))
    tr = Trainer(cfg, model=model, train_dataset=Clips(), val_dataset=val, log=lambda m: None)
    try:
        tr.fit()
    finally:
        tr.close()
    return tr


def _worker(rank: int, root: str) -> None:
    for bn in (False, True):
        tr = _train(f"{root}/ddp_bn{int(bn)}", 4, bn)
        if bn:  # the distributed run really synchronised its BatchNorm
            assert isinstance(tr.raw_model.bn, SyncBatchNormAnyDevice)
    # FSDP2 (fully_shard per block) on gloo, straight through and killed after 6 steps + resumed.
    _train(f"{root}/fsdp", 4, False, fsdp=True)
    _train(f"{root}/fsdp_resumed", 4, False, fsdp=True, extra=["train.stop_after_steps=6"])
    _train(f"{root}/fsdp_resumed", 4, False, fsdp=True, extra=["train.resume=auto"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    single = {bn: _train(root / f"single_bn{int(bn)}", 8, bn) for bn in (False, True)}
    _train(root / "single_blocks", 8, False, fsdp=True)  # one process: fsdp is a no-op, plain training
    spawn_local(_worker, 2, (str(root),))
    return root, single


@pytest.mark.parametrize("bn", [False, True], ids=["no_batchnorm", "sync_batchnorm"])
def test_two_processes_match_one_process_with_double_batch(runs, bn):
    root, single = runs
    one = torch.load(root / f"single_bn{int(bn)}" / "checkpoint_last.pth", weights_only=True)
    two = torch.load(root / f"ddp_bn{int(bn)}" / "checkpoint_last.pth", weights_only=True)
    assert one["global_step"] == two["global_step"] == 10 and two["world_size"] == 2
    assert one["total_batch"] == two["total_batch"] == 8
    assert len(two["rng"]) == 2  # every rank's RNG state is saved for an exact resume
    for k, v in one["model"].items():
        torch.testing.assert_close(two["model"][k].float(), v.float(), rtol=0, atol=1e-5, msg=k)
    if bn:
        assert one["model"]["bn.num_batches_tracked"] == 10


def test_distributed_evaluation_gathers_every_video_once(runs):
    root, _ = runs
    one = json.loads((root / "single_bn0" / "metrics.json").read_text())
    two = json.loads((root / "ddp_bn0" / "metrics.json").read_text())
    assert one["num_samples"] == two["num_samples"] == 11 and two["num_views"] == 2
    for k in ("top1", "top5", "mean_class_acc"):
        assert two[k] == pytest.approx(one[k])
    assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
    rows = (root / "ddp_bn0" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 12  # header + 11 videos


@pytest.mark.parametrize("run", ["fsdp", "fsdp_resumed"])
def test_fsdp2_matches_one_process_and_resumes(runs, run):
    root, _ = runs
    one = torch.load(root / "single_blocks" / "checkpoint_last.pth", weights_only=True)
    two = torch.load(root / run / "checkpoint_last.pth", weights_only=True)
    assert two["global_step"] == 10 and two["world_size"] == 2
    assert set(two["model"]) == set(one["model"])  # full (unsharded) state dict in the checkpoint
    for k, v in one["model"].items():
        torch.testing.assert_close(two["model"][k], v, rtol=0, atol=1e-5, msg=k)


class _SignalsItself(Clips):
    """Rank 1 alone gets SIGTERM (as when a node is preempted) at its 10th item."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank, self.calls = rank, 0

    def __getitem__(self, i):
        self.calls += 1
        if self.rank == 1 and self.calls == 10:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)
        return super().__getitem__(i)


def _signal_worker(rank: int, root: str) -> None:
    cfg = load_config(None, [
        f"train.output_dir={root}/run", "train.epochs=5", "train.batch_size=2", "data.num_workers=0",
        "train.progress=false", "train.tensorboard=false", "train.final_eval=false"])
    tr = Trainer(cfg, model=lambda k: Net(False), train_dataset=_SignalsItself(rank), log=lambda m: None)
    try:
        s = tr.fit()
    finally:
        tr.close()
    with open(f"{root}/rank{rank}.json", "w") as f:
        json.dump({"global_step": tr.global_step, "signal": s["signal"], "stopped": s["stopped"]}, f)


def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    spawn_local(_signal_worker, 2, (str(tmp_path),))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["stopped"] and r1["stopped"] and r0["global_step"] == r1["global_step"] < 50
    assert r0["signal"] == r1["signal"] == 15  # rank 0 reports the stop too: its exit code says so
    ck = torch.load(tmp_path / "run" / "checkpoint_last.pth", weights_only=True)
    assert ck["global_step"] == r0["global_step"]
