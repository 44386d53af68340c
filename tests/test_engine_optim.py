"""Parameter groups, learning-rate schedule and losses."""

import math

import pytest
import torch
import torch.nn as nn

from videoformers.engine.config import OptimConfig
from videoformers.engine.losses import compute_loss, main_logits
from videoformers.engine.optim import WarmupCosineSchedule, build_optimizer, effective_lr, layer_ids, param_groups


class ToyViT(nn.Module):
    """Names as in ViT-style models: embeddings, ``blocks.i``, final norm, head."""

    def __init__(self, depth: int = 3, dim: int = 8, classes: int = 4) -> None:
        super().__init__()
        self.patch_embed = nn.Conv3d(3, dim, (1, 2, 2), (1, 2, 2))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) for _ in range(depth))
        self.dpe = nn.ModuleDict({"pos_embed": nn.Conv3d(dim, dim, 3, padding=1, groups=dim)})  # UniFormer's DPE name
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)


def _group_of(groups, model, name):
    p = dict(model.named_parameters())[name]
    return next(g for g in groups if any(q is p for q in g["params"]))


def test_no_weight_decay_on_norms_biases_embeddings_and_tokens():
    m = ToyViT()
    groups = param_groups(m, OptimConfig(weight_decay=0.05))
    wd = {n: _group_of(groups, m, n)["weight_decay"] for n, _ in m.named_parameters()}
    for n in ("pos_embed", "cls_token", "blocks.0.0.weight", "blocks.0.1.bias", "norm.weight", "head.bias"):
        assert wd[n] == 0.0, n
    for n in ("patch_embed.weight", "blocks.1.1.weight", "head.weight"):
        assert wd[n] == 0.05, n
    # A depth-wise conv living in a module called "pos_embed" keeps its decay (as the UniFormer authors'
    # optimiser, which matches 1-D params only), unless its module is listed explicitly (DualFormer's pos_block).
    assert wd["dpe.pos_embed.weight"] == 0.05
    groups = param_groups(m, OptimConfig(weight_decay=0.05, no_weight_decay_modules=["dpe"]))
    assert _group_of(groups, m, "dpe.pos_embed.weight")["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))


def test_head_and_backbone_learning_rates_and_freezing():
    m = ToyViT()
    cfg = OptimConfig(lr=1e-4, head_lr_mult=10.0)
    opt = build_optimizer(m, cfg, lr=1e-4)
    lrs = {n: _group_of(opt.param_groups, m, n)["lr"] for n, _ in m.named_parameters()}
    assert lrs["head.weight"] == pytest.approx(1e-3) and lrs["blocks.0.1.weight"] == pytest.approx(1e-4)
    frozen = ToyViT()
    groups = param_groups(frozen, OptimConfig(backbone_lr_mult=0.0))
    names = {n for g in groups for n in g["param_names"]}
    assert names == {"head.weight", "head.bias"}
    assert not frozen.blocks[0][1].weight.requires_grad


def test_layer_wise_lr_decay():
    m = ToyViT(depth=3)
    ids, n = layer_ids(m, [k for k, _ in m.named_parameters()])
    assert n == 3 and ids["patch_embed.weight"] == 0 and ids["pos_embed"] == 0
    assert ids["blocks.0.1.weight"] == 1 and ids["blocks.2.1.weight"] == 3 and ids["head.weight"] == 4
    groups = param_groups(m, OptimConfig(layer_decay=0.5))
    scale = {n: _group_of(groups, m, n)["lr_scale"] for n, _ in m.named_parameters()}
    assert scale["head.weight"] == 1.0
    assert scale["blocks.2.1.weight"] == 0.5 and scale["blocks.0.1.weight"] == 0.125 and scale["patch_embed.weight"] == 0.0625


def test_warmup_cosine_schedule_per_step():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr_scale": 1.0}, {"params": [nn.Parameter(torch.zeros(1))], "lr_scale": 0.1}], lr=1.0)
    s = WarmupCosineSchedule(opt, base_lr=1.0, total_steps=100, warmup_steps=10, warmup_start_lr=0.0, min_lr=0.01)
    lrs = [s.get_last_lr()]
    for _ in range(100):
        s.step()
        lrs.append(s.get_last_lr())
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5) and lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.01 + 0.99 * 0.5)     # half-way through the cosine
    assert lrs[100] == pytest.approx(0.01)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.1 * lrs[100])
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone after warm-up
    # Scenic's compound schedule: the cosine spans the whole run, the warm-up ramp multiplies it.
    c = WarmupCosineSchedule(opt, 1.0, 100, 10, cosine_after_warmup=False)
    c.step_num = 10
    assert c.lr_at(10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.1)))
    assert c.lr_at(5) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.05)))
    state = s.state_dict()
    s2 = WarmupCosineSchedule(opt, 1.0, 100, 10, 0.0, 0.01)
    s2.load_state_dict(state)
    assert s2.get_last_lr() == s.get_last_lr()


def test_linear_lr_scaling():
    assert effective_lr(OptimConfig(lr=1e-4, lr_scale_ref=32), total_batch=64) == pytest.approx(2e-4)
    assert effective_lr(OptimConfig(lr=1e-4), total_batch=64) == 1e-4


def test_losses_for_tuple_dict_and_soft_targets():
    torch.manual_seed(0)
    a, b, y = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    ce = nn.functional.cross_entropy
    # Light UniFormer: (head, score-token head) -> 0.5/0.5 as the authors' train_net_cls.py
    assert compute_loss((a, b), y) == pytest.approx(0.5 * ce(a, y) + 0.5 * ce(b, y))
    assert compute_loss((a, b), y, output_weights=[1.0, 0.0]) == pytest.approx(ce(a, y))
    assert compute_loss(a, y, label_smoothing=0.1) == pytest.approx(ce(a, y, label_smoothing=0.1))
    soft = nn.functional.one_hot(y, 5).float()
    assert compute_loss(a, soft) == pytest.approx(ce(a, y))
    heads = {"verb": a, "noun": b}
    assert compute_loss(heads, {"verb": y, "noun": y.flip(0)}) == pytest.approx(ce(a, y) + ce(b, y.flip(0)))
    with pytest.raises(ValueError, match="dict"):
        compute_loss(heads, y)
    assert main_logits((a, b)) is a and main_logits(heads) is None


def _sched(kind, **kw):
    import torch

    from videoformers.engine.optim import WarmupCosineSchedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return WarmupCosineSchedule(opt, 1.0, 100, kind=kind, **kw)


def test_step_schedule_is_mmcv_step():
    s = _sched("step", milestones=[60, 90], gamma=0.1)
    assert [s.lr_at(i) for i in (0, 59, 60, 89, 90, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    w = _sched("step", milestones=[60], warmup_steps=10, warmup_start_lr=0.001)
    assert w.lr_at(0) == pytest.approx(0.001) and w.lr_at(5) == pytest.approx(0.001 + 0.999 * 0.5)
    assert w.lr_at(10) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="milestones"):
        _sched("step")


def test_poly_schedule_is_mmcv_poly():
    s = _sched("poly", power=0.9, min_lr=1e-4)
    for i in (0, 10, 50, 99, 100):
        assert s.lr_at(i) == pytest.approx((1 - 1e-4) * (1 - i / 100) ** 0.9 + 1e-4)


def test_step_milestones_are_epochs_in_the_trainer_config(tmp_path):
    from videoformers.engine.config import load_config

    cfg = load_config("demo", ["optim.sched=step", "optim.milestones=[2, 3]", "optim.gamma=0.5"])
    assert cfg.optim.milestones == [2, 3] and cfg.optim.gamma == 0.5
    with pytest.raises(ValueError, match="optim.sched"):
        load_config("demo", ["optim.sched=exp"])
