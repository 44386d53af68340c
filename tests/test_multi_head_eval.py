"""Multi-head evaluation (ViViT Sec. 4.3, Epic-Kitchens verb + noun): per-head accuracy and the action
accuracy (a clip is right when both heads are), through the same evaluator and trainer as one head."""

from __future__ import annotations

import json

import torch
import torch.nn as nn
from torch.utils.data import Dataset

import videoformers as vf
from videoformers.engine.config import load_config
from videoformers.engine.evaluator import multi_head_metrics, predict_views
from videoformers.engine.trainer import Trainer


def test_action_accuracy_counts_clips_where_every_head_is_right():
    verb = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    noun = torch.tensor([[0, 3.0], [0, 3.0], [3.0, 0], [3.0, 0]])
    labels = {"verb": torch.tensor([0, 1, 1, 0]), "noun": torch.tensor([1, 0, 0, 0])}
    m = multi_head_metrics({"verb": verb, "noun": noun}, labels)
    assert m["verb"]["top1"] == 75.0 and m["noun"]["top1"] == 75.0
    assert m["action_top1"] == 50.0 == m["top1"]  # clips 0 and 3: both right; 1: noun wrong; 2: verb wrong
    joint = (verb.softmax(-1)[:, :, None] * noun.softmax(-1)[:, None, :]).flatten(1)
    ranks = (joint > joint.gather(1, (labels["verb"] * 2 + labels["noun"])[:, None])).sum(1)
    assert m["action_top5"] == 100.0 * float((ranks < 5).float().mean())


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.verb, self.noun = nn.Linear(8, 3), nn.Linear(8, 2)

    def forward(self, x):
        f = self.conv(x).relu().mean((2, 3, 4))
        return {"verb": self.verb(f), "noun": self.noun(f)}


class Pairs(Dataset):
    def __init__(self, n, seed, views=None):
        g = torch.Generator().manual_seed(seed)
        self.v = torch.randint(0, 3, (n,), generator=g)
        self.n = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.randn(n, 3, 4, 8, 8, generator=g) * 0.3
        self.x[:, 0] += self.v.view(-1, 1, 1, 1).float()
        self.x[:, 1] += self.n.view(-1, 1, 1, 1).float()
        self.views, self.num_classes, self.classes = views, 3, ["a", "b", "c"]

    def __len__(self):
        return len(self.v)

    def __getitem__(self, i):
        x = self.x[i] if self.views is None else torch.stack([self.x[i]] * self.views)
        return {"video": x, "label": {"verb": int(self.v[i]), "noun": int(self.n[i])}, "index": i, "num_skipped": 0}


def test_trainer_validates_and_writes_multi_head_metrics(tmp_path):
    cfg = load_config(None, [f"train.output_dir={tmp_path}", "train.epochs=3", "train.batch_size=8", "optim.lr=0.02",
                             "data.num_workers=0", "train.progress=false", "train.tensorboard=false"])
    tr = Trainer(cfg, model=lambda k: TwoHeads(), train_dataset=Pairs(64, 0), val_dataset=Pairs(24, 1, views=2),
                 log=lambda m: None)
    try:
        summary = tr.fit()
    finally:
        tr.close()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["heads"] == ["noun", "verb"] and {"top1", "top5"} <= set(m["verb"])
    assert m["top1"] == m["action_top1"] == summary["metrics"]["top1"]
    assert m["action_top1"] <= min(m["verb"]["top1"], m["noun"]["top1"])
    assert (tmp_path / "predictions_verb.csv").is_file() and (tmp_path / "predictions_noun.csv").is_file()


def test_vivit_verb_noun_heads_go_through_predict_views():
    m = vf.create_model("vivit_base_factorised_encoder", num_classes={"verb": 4, "noun": 5}, depth=1, temporal_depth=1,
                        embed_dim=32, num_heads=2, mlp_dim=64, num_frames=4, img_size=32).eval()
    with torch.no_grad():
        out = predict_views(m, torch.randn(2, 3, 3, 4, 32, 32))
    assert out["verb"].shape == (2, 4) and out["noun"].shape == (2, 5)
