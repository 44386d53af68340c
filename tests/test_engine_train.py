"""The training loop: exact resume, run files, accumulation, broken samples, AMP, EMA, evaluation."""

import csv
import json

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from videoformers.checkpoints import load_checkpoint
from videoformers.data import BrokenDataError
from videoformers.engine.config import load_config
from videoformers.engine.distributed import EvalSampler, TrainSampler
from videoformers.engine.evaluator import evaluate, predict_views
from videoformers.engine.metrics import classification_metrics, read_jsonl
from videoformers.engine.trainer import Trainer

K = 3


class ClipSet(Dataset):
    """Clips whose mean encodes the label, plus per-item augmentation noise drawn from the global RNG
    (what a real pipeline's random crops/flips do), optional test views and broken-sample counts."""

    def __init__(self, n: int, seed: int = 0, views: int | None = None, skipped: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, K, (n,), generator=g)
        self.x = torch.randn(n, 3, 4, 8, 8, generator=g) * 0.5 + self.y.view(-1, 1, 1, 1, 1).float()
        self.views, self.skipped = views, skipped
        self.classes = [f"class {i}" for i in range(K)]
        self.num_classes = K

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i] + 0.3 * torch.randn(self.x[i].shape)
        if self.views:
            x = torch.stack([x + 0.1 * v for v in range(self.views)])
        return {"video": x, "label": int(self.y[i]), "index": i, "num_skipped": self.skipped}


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = K, bn: bool = False, dropout: float = 0.0, two_outputs: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1, bias=not bn)
        self.bn = nn.BatchNorm3d(8) if bn else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(8, num_classes)
        self.head_aux = nn.Linear(8, num_classes) if two_outputs else None

    def forward(self, x):
        f = self.drop(self.bn(self.conv(x)).relu().mean((2, 3, 4)))
        if self.head_aux is not None and self.training:
            return self.head(f), self.head_aux(f)
        return self.head(f)


def _cfg(out, *extra):
    return load_config(None, [
        f"train.output_dir={out}", "train.epochs=3", "train.batch_size=8", "data.num_workers=0", "optim.lr=0.01",
        "optim.warmup_epochs=1", "train.log_every=1", "train.progress=false", "train.tensorboard=false", *extra,
    ])


def _fit(out, *extra, model=None, train=None, val=None):
    tr = Trainer(_cfg(out, *extra), model=model or (lambda k: TinyNet(k, dropout=0.2)),
                 train_dataset=train or ClipSet(48), val_dataset=val if val is not None else ClipSet(20, seed=1, views=2),
                 log=lambda m: None)
    try:
        summary = tr.fit()
    finally:
        tr.close()
    return tr, summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and the same run killed after 8 steps (mid epoch 2) and resumed."""
    base = tmp_path_factory.mktemp("runs")
    extra = ("train.mixup=0.8", "train.cutmix=1.0", "train.ema_decay=0.9")  # every source of randomness on
    full, full_summary = _fit(base / "full", *extra)
    killed, _ = _fit(base / "resumed", *extra, "train.stop_after_steps=8")
    resumed, _ = _fit(base / "resumed", *extra, "train.resume=auto")
    return {"base": base, "full": full, "summary": full_summary, "killed": killed, "resumed": resumed}


def test_resume_continues_the_same_loss_curve(runs):
    full, killed, resumed = runs["full"], runs["killed"], runs["resumed"]
    assert killed.stopped and killed.global_step == 8 and len(killed.step_losses) == 8
    assert len(full.step_losses) == 18 == len(killed.step_losses) + len(resumed.step_losses)
    diff = max(abs(a - b) for a, b in zip(full.step_losses, killed.step_losses + resumed.step_losses))
    assert diff <= 1e-6
    a = torch.load(runs["base"] / "full" / "checkpoint_last.pth", weights_only=True)
    b = torch.load(runs["base"] / "resumed" / "checkpoint_last.pth", weights_only=True)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=1e-6)
    for k in a["ema"]:
        torch.testing.assert_close(a["ema"][k], b["ema"][k], rtol=0, atol=1e-6)
    steps = [r["step"] for r in read_jsonl(runs["base"] / "resumed" / "log.jsonl") if r["type"] == "train"]
    assert steps == list(range(1, 19))  # nothing logged twice after the resume


def test_run_directory_layout(runs):
    out = runs["base"] / "full"
    for f in ("checkpoint_last.pth", "checkpoint_best.pth", "log.jsonl", "curves.png", "metrics.json",
              "predictions.csv", "confusion_matrix.png", "config.yaml"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    for k in ("top1", "top5", "mean_class_acc", "per_class_acc"):
        assert k in m
    assert m["num_samples"] == 20 and m["num_views"] == 2 and m["top1"] == runs["summary"]["metrics"]["top1"]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 20 and {r["index"] for r in rows} == {str(i) for i in range(20)}
    assert sum(int(r["correct"]) for r in rows) == round(m["top1"] * 20 / 100)
    records = read_jsonl(out / "log.jsonl")
    assert {r["type"] for r in records} == {"train", "val"} and all("lr" in r for r in records if r["type"] == "train")
    # A checkpoint is a plain weights_only file that the generic loader reads (EMA or raw weights).
    ck = torch.load(out / "checkpoint_best.pth", weights_only=True)
    assert ck["num_classes"] == K and ck["classes"] == [f"class {i}" for i in range(K)]
    report = load_checkpoint(TinyNet(), out / "checkpoint_best.pth")
    assert report.ok


def test_gradient_accumulation_matches_the_big_batch(tmp_path):
    big, _ = _fit(tmp_path / "big", "train.batch_size=8", "train.final_eval=false", model=lambda k: TinyNet(k), val=None)
    acc, _ = _fit(tmp_path / "acc", "train.batch_size=4", "train.accum_steps=2", "train.final_eval=false",
                  model=lambda k: TinyNet(k), val=None)
    assert big.global_step == acc.global_step == 18
    for (n, a), (_, b) in zip(big.raw_model.state_dict().items(), acc.raw_model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=n)


def test_broken_samples_are_counted_and_stop_the_run(tmp_path):
    with pytest.raises(BrokenDataError, match="max_broken_fraction"):
        _fit(tmp_path / "broken", train=ClipSet(48, skipped=1), val=None)
    tr, _ = _fit(tmp_path / "ok", "data.max_broken_fraction=0.6", "train.epochs=1", train=ClipSet(48, skipped=1), val=None)
    assert tr.samples_skipped == tr.samples_seen == 48


def test_bf16_autocast_and_two_output_models(tmp_path):
    tr, summary = _fit(tmp_path / "bf16", "train.amp=bf16", "optim.lr=0.05",
                       model=lambda k: TinyNet(k, bn=True, two_outputs=True))
    losses = tr.step_losses
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < sum(losses[:4])
    assert summary["metrics"]["top1"] > 100 / K


def test_train_sampler_shards_partition_the_permutation():
    one = list(TrainSampler(10, 1, 0, seed=3))
    two = [list(TrainSampler(10, 2, r, seed=3)) for r in range(2)]
    assert sorted(two[0] + two[1]) == sorted(one) and two[0] == one[0::2]
    s = TrainSampler(10, 2, 1, seed=3)
    s.set_epoch(0, start=2)
    assert list(s) == two[1][2:] and len(s) == 3
    s.set_epoch(1)
    assert list(s) != two[1]  # reshuffled every epoch
    assert list(EvalSampler(5, 2, 1)) == [1, 3, 0]  # padded by wrapping around


class ViewModel(nn.Module):
    """Logits = the first three input values, so the views' scores are known exactly."""

    def forward(self, x):
        return x.flatten(1)[:, :3]


def test_multi_view_averaging_of_logits_and_probabilities():
    video = torch.zeros(1, 2, 3, 1, 1, 1)
    video[0, 0, :, 0, 0, 0] = torch.tensor([4.0, 0.0, 0.0])
    video[0, 1, :, 0, 0, 0] = torch.tensor([0.0, 1.0, 1.5])
    logits = predict_views(ViewModel(), video, "logits")
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.5, 0.75]]))
    probs = predict_views(ViewModel(), video, "probs")
    expected = (torch.tensor([4.0, 0, 0]).softmax(0) + torch.tensor([0, 1.0, 1.5]).softmax(0)) / 2
    torch.testing.assert_close(probs, expected.view(1, 3))

    class Views(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            v = torch.zeros(2, 3, 1, 1, 1)
            v[:, i % 3] = 1.0
            return {"video": v, "label": i, "index": i, "num_skipped": 0}

    loader = DataLoader(Views(), batch_size=2, sampler=EvalSampler(3, 1, 0))
    res = evaluate(ViewModel(), loader, torch.device("cpu"))
    assert res.num_views == 2 and res.indices.tolist() == [0, 1, 2]
    assert res.metrics(3)["top1"] == 100.0


def test_classification_metrics():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    labels = torch.tensor([0, 1, 2, 2, 1])
    m = classification_metrics(scores, labels, 3, ["a", "b", "c"])
    assert m["top1"] == pytest.approx(60.0)
    assert m["mean_class_acc"] == pytest.approx((100 + 50 + 50) / 3)
    assert m["per_class_acc"] == {"a": 100.0, "b": 50.0, "c": 50.0}
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert classification_metrics(scores, labels, 3)["top5"] == 100.0
