"""Semantic segmentation (UniFormer TPAMI Sec. 6.4): Semantic FPN / UperNet models, the ADE20K-layout data,
the engine task (loss, mIoU, whole/slide/flip inference), seg_demo end to end and ``videoformers segment``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from videoformers.analysis import build_on_meta, count_flops, count_params
from videoformers.data.config import SegConfig
from videoformers.data.segmentation import (
    LabelRangeError, SegFolderDataset, make_shapes_dataset, random_crop, rescale_size, train_transform,
)
from videoformers.engine.tasks_segmentation import (
    SegmentationTask, inference, intersect_and_union, seg_loss, segmentation_metrics, slide_inference, resize_for_test,
)
from videoformers.models.segmentation import FCNHead, FPNNeck, SemanticFPNHead, UPerHead
from videoformers.registry import create_model, get_model_card, list_models

TINY = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 128], head_dim=16, neck_channels=16, head_channels=16,
            drop_path_rate=0.0)


def _tiny(name="uniformer_small_semfpn", **kw):
    torch.manual_seed(0)
    ov = dict(TINY)
    if "upernet" in name:
        ov["aux_channels"] = 8
    ov.update(kw)
    return create_model(name, num_classes=5, **ov)


def _feats(b=2, h=64, w=96, chs=(16, 32, 64, 128)):
    return [torch.randn(b, c, h // s, w // s) for c, s in zip(chs, (4, 8, 16, 32))]


# ----------------------------------------------------------------------------- modules
def test_neck_and_heads_shapes_and_strides():
    feats = _feats()
    outs = FPNNeck([16, 32, 64, 128], 24)(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 24, 64 // s, 96 // s) for s in (4, 8, 16, 32)]
    head = SemanticFPNHead([24] * 4, 7, channels=12)
    # scale heads: 1, 1, 2, 3 conv blocks (log2 of the stride ratio, at least one), Kirillov et al. Fig. 3
    n_convs = [sum(isinstance(m, nn.Conv2d) for m in h.modules()) for h in head.scale_heads]
    assert n_convs == [1, 1, 2, 3]
    assert tuple(head(outs).shape) == (2, 7, 16, 24)  # stride 4
    up = UPerHead([16, 32, 64, 128], 7, channels=20)
    assert tuple(up(feats).shape) == (2, 7, 16, 24)
    assert len(up.psp_modules.stages) == 4  # pool scales 1, 2, 3, 6
    assert tuple(FCNHead(64, 7, 10)(feats[2]).shape) == (2, 7, 4, 6)


@pytest.mark.parametrize("name", ["uniformer_small_semfpn", "uniformer_small_upernet"])
@pytest.mark.parametrize("hw", [(64, 96), (70, 100)])
def test_eval_output_is_input_size(name, hw):
    m = _tiny(name).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, *hw))
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (1, 5, *hw)


def test_aux_head_only_in_training():
    m = _tiny("uniformer_small_upernet")
    m.train()
    out = m(torch.randn(2, 3, 64, 64))
    assert isinstance(out, tuple) and len(out) == 2
    assert tuple(out[0].shape) == tuple(out[1].shape) == (2, 5, 64, 64)
    m.eval()
    assert isinstance(m(torch.randn(1, 3, 64, 64)), torch.Tensor)
    fpn = _tiny().train()
    assert isinstance(fpn(torch.randn(2, 3, 64, 64)), torch.Tensor)  # Semantic FPN has no auxiliary head


def test_registered_cards():
    names = set(list_models(task="segmentation"))
    assert {"uniformer_small_semfpn", "uniformer_base_semfpn", "uniformer_small_upernet",
            "uniformer_base_upernet"} <= names
    card = get_model_card("uniformer_base_upernet")
    assert card.task == "segmentation" and "Table 9" in card.table and card.num_classes == 150


def test_train_test_window_switch():
    """``_h32``: global stage 3 in training, hybrid window 32 (every fourth block global) in eval (TPAMI Sec. 4.3)."""
    m = _tiny("uniformer_small_semfpn_h32", depth=[1, 1, 4, 1])
    blocks = m.backbone.model.blocks3

    def windows():
        return [None if blk.attn.window_size is None else tuple(blk.attn.window_size)[-2:] for blk in blocks]

    m.train()
    assert windows() == [None] * 4
    m.eval()
    assert windows() == [(32, 32)] * 3 + [None]
    m.train()
    assert windows() == [None] * 4
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert m.eval()(x).shape == (1, 5, 64, 64)


# ----------------------------------------------------------------------------- params / FLOPs vs the paper
# (params M, GFLOPs at 512x2048) of TPAMI Tables 8-9; the authors' mmcv counts plus hand-added matmuls
# (Sense-X/UniFormer#50). Table 9 prints 1008G for UperNet-S, Table 21 1004G; ours: 1003.7G.
PAPER = {
    "uniformer_small_semfpn": (25, 247), "uniformer_base_semfpn": (54, 471),
    "uniformer_small_upernet": (52, 1008), "uniformer_base_upernet": (80, 1227),
}
PAPER_H32 = {"uniformer_small_semfpn": 199, "uniformer_base_semfpn": 350, "uniformer_small_upernet": 955,
             "uniformer_base_upernet": 1106}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_params_and_flops_match_the_paper(name):
    params, gflops = PAPER[name]
    m = build_on_meta(lambda: create_model(name))
    assert count_params(m) / 1e6 == pytest.approx(params, rel=0.02)
    assert count_flops(m, (1, 3, 512, 2048)) == pytest.approx(gflops, rel=0.05)
    # the _h32 model: global in training, hybrid h32 stage 3 (window 32, "wwwg") in eval mode, where FLOPs are counted
    h = build_on_meta(lambda: create_model(name + "_h32"))
    assert count_params(h) == count_params(m)
    assert count_flops(h, (1, 3, 512, 2048)) == pytest.approx(PAPER_H32[name], rel=0.05)


# ----------------------------------------------------------------------------- loss and metrics
def test_loss_ignores_255():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    y = torch.randint(0, 3, (1, 4, 4))
    y[0, :2] = 255
    loss = seg_loss(logits, y)
    loss.backward()
    assert logits.grad[0, :, :2].abs().sum() == 0 and logits.grad[0, :, 2:].abs().sum() > 0
    changed = logits.detach().clone()
    changed[0, :, :2] = 100.0
    assert torch.allclose(seg_loss(changed, y), loss.detach())
    assert seg_loss(logits, torch.full((1, 4, 4), 255)).item() == 0.0


def test_miou_hand_computed():
    label = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    areas = intersect_and_union(pred, label, 4)
    # class 0: I=1, pred 2 (labelled pixels only), label 2 -> U=3; class 1: I=2, pred 3, label 2 -> U=3;
    # class 2: I=1, pred 1, label 2 -> U=2; class 3: absent -> NaN, left out of the mean
    m = segmentation_metrics(areas, ["a", "b", "c", "d"])
    assert m["IoU"]["a"] == pytest.approx(100 / 3) and m["IoU"]["b"] == pytest.approx(200 / 3)
    assert m["IoU"]["c"] == pytest.approx(50.0) and m["IoU"]["d"] is None
    assert m["mIoU"] == pytest.approx((100 / 3 + 200 / 3 + 50) / 3)
    assert m["aAcc"] == pytest.approx(4 / 6 * 100)
    assert m["mAcc"] == pytest.approx((50 + 100 + 50) / 3)


def test_perfect_prediction_and_reduce_zero_label(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "d"
    for sub in ("training", "validation"):
        (root / "images" / sub).mkdir(parents=True)
        (root / "annotations" / sub).mkdir(parents=True)
    lab = rng.integers(0, 4, (20, 30)).astype(np.uint8)  # 0 = other, 1..3 classes
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / "images/validation/a.jpg")
    Image.fromarray(lab).save(root / "annotations/validation/a.png")
    ds = SegFolderDataset(root, "val", SegConfig(reduce_zero_label=True), num_classes=3)
    y = ds[0]["label"]
    assert torch.equal(y == 255, torch.from_numpy(lab == 0))
    assert torch.equal(y[y != 255], torch.from_numpy(lab[lab != 0].astype(np.int64) - 1))
    assert segmentation_metrics(intersect_and_union(y.clamp(max=2), y, 3))["mIoU"] == pytest.approx(100.0)
    keep = SegFolderDataset(root, "val", SegConfig(reduce_zero_label=False), num_classes=4)
    assert torch.equal(keep[0]["label"], torch.from_numpy(lab.astype(np.int64)))


# ----------------------------------------------------------------------------- inference
class _PointwiseModel(nn.Module):
    """Per-pixel logits (a 1x1 conv): any crop/flip arrangement must give the whole-image result."""

    num_classes = 3

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)


def test_slide_equals_whole_when_the_crop_covers_the_image():
    m = _tiny().eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        whole = m(x)
        slide = slide_inference(m, x, 5, crop=(64, 128), stride=(32, 32))
    assert torch.allclose(whole, slide, atol=1e-6)
    pw = _PointwiseModel()
    with torch.no_grad():  # overlapping windows (3 x 4 of them) average to the same per-pixel logits
        assert torch.allclose(slide_inference(pw, x, 3, (32, 40), (16, 20)), pw(x), atol=1e-6)


def test_flip_and_multi_scale_test():
    pw = _PointwiseModel()
    x = torch.randn(1, 3, 32, 48)
    cfg = SegConfig(img_scale=(48, 32), test_flip=False)
    with torch.no_grad():
        base = inference(pw, x, 3, (32, 48), cfg)
        assert torch.allclose(base, pw(x).softmax(1), atol=1e-6)
        cfg.test_flip = True  # a flip-equivariant model: flip test changes nothing
        assert torch.allclose(inference(pw, x, 3, (32, 48), cfg), base, atol=1e-6)
        cfg.test_scales = (0.5, 1.0)
        ms = inference(pw, x, 3, (32, 48), cfg)
    assert ms.shape == base.shape and torch.allclose(ms.sum(1), torch.ones(1, 32, 48), atol=1e-5)
    assert resize_for_test(512, 683, (2048, 512)) == (512, 683)  # not a multiple of 32: kept (mmseg Resize)
    assert resize_for_test(512, 683, (2048, 512), size_divisor=32) == (512, 704)  # the authors' AlignResize
    assert rescale_size(2000, 500, (2048, 512)) == (2048, 512)


def test_random_crop_cat_max_ratio_and_determinism():
    lab = np.zeros((40, 40), np.uint8)
    lab[:, 30:] = 1
    np.random.seed(0)
    _, crop = random_crop(np.zeros((40, 40, 3), np.uint8), lab, (20, 20), cat_max_ratio=0.75)
    _, cnt = np.unique(crop, return_counts=True)
    assert len(cnt) > 1 and cnt.max() / cnt.sum() < 0.75  # a crop with one class ~always drawn without the rule
    img = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    cfg = SegConfig(img_scale=(100, 30), crop_size=(48, 48))
    outs = []
    for _ in range(2):
        np.random.seed(3)
        outs.append(train_transform(img, lab[:30, :50].copy(), cfg, (0.5,) * 3, (0.25,) * 3))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    x, y = outs[0]
    assert tuple(x.shape) == (3, 48, 48) and tuple(y.shape) == (48, 48)


# ----------------------------------------------------------------------------- data
def test_generated_dataset_round_trip(tmp_path):
    root = make_shapes_dataset(tmp_path / "shapes", n_train=4, n_val=2, size=(24, 40), num_classes=3, seed=0)
    assert sorted(p.name for p in (root / "images/training").iterdir())[0].endswith(".jpg")
    assert (root / "classes.txt").read_text().split() == ["circle_0", "rectangle_1", "triangle_2"]
    lab = np.asarray(Image.open(next((root / "annotations/training").iterdir())))
    assert lab.dtype == np.uint8 and lab.shape == (24, 40) and lab.max() <= 3
    cfg = SegConfig(img_scale=(80, 24), crop_size=(24, 24))
    tr = SegFolderDataset(root, "train", cfg)
    assert tr.classes == ["circle_0", "rectangle_1", "triangle_2"] and tr.num_classes == 3 and len(tr) == 4
    item = tr[0]
    assert tuple(item["image"].shape) == (3, 24, 24) and item["num_skipped"] == 0
    va = SegFolderDataset(root, "val", cfg)
    v = va[1]
    assert tuple(v["image"].shape) == (3, 24, 40) and tuple(v["label"].shape) == (24, 40)
    assert set(v["label"].unique().tolist()) <= {0, 1, 2, 255}


def test_dataset_layout_errors_and_broken_images(tmp_path):
    with pytest.raises(ValueError, match="missing .*images/training"):
        SegFolderDataset(tmp_path, "train")
    root = make_shapes_dataset(tmp_path / "d", n_train=3, n_val=0, size=16, num_classes=2, seed=0)
    extra = root / "images/training/orphan.jpg"
    Image.new("RGB", (16, 16)).save(extra)
    with pytest.raises(ValueError, match="no annotation.*orphan.jpg"):
        SegFolderDataset(root, "train")
    extra.unlink()
    # class id 9 with 2 classes
    bad = next((root / "annotations/training").iterdir())
    arr = np.asarray(Image.open(bad)).copy()
    arr[0, 0] = 9
    Image.fromarray(arr).save(bad)
    ds = SegFolderDataset(root, "train", SegConfig(crop_size=(16, 16), img_scale=(32, 16)))
    i = [Path(it.label).name for it in ds.items].index(bad.name)
    with pytest.raises(LabelRangeError, match="class id\\(s\\) \\[9\\] outside 1..2"):
        ds[i]
    arr[0, 0] = 1
    Image.fromarray(arr).save(bad)
    # an unreadable image is replaced by another and counted
    broken = root / "images/training" / (bad.stem + ".jpg")
    broken.write_bytes(b"not a jpeg")
    item = ds[i]
    assert item["num_skipped"] == 1 and item["index"] != i
    stats = ds.skip_stats()
    assert stats["count"] == 1 and stats["files"] == [str(broken)]


# ----------------------------------------------------------------------------- engine end to end + tool
def test_seg_demo_through_the_engine_and_segment_tool(tmp_path):
    from videoformers.engine.config import load_config
    from videoformers.engine.run import train
    from videoformers.engine.tasks import task_for

    root = make_shapes_dataset(tmp_path / "shapes", n_train=16, n_val=4, size=32, num_classes=3, seed=0)
    out = tmp_path / "run"
    cfg = load_config("seg_demo", [f"data.root={root}", "train.epochs=1", f"train.output_dir={out}",
                                   "seg.img_scale=[64,32]", "seg.crop_size=[32,32]", "train.batch_size=8",
                                   "train.tensorboard=false", "model.overrides.embed_dim=[16,32,64,128]",
                                   "model.overrides.head_dim=16", "model.overrides.neck_channels=16",
                                   "model.overrides.head_channels=16"])
    assert isinstance(task_for(cfg), SegmentationTask)
    train(cfg)
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["mIoU"] <= 100.0 and m["num_samples"] == 4
    assert set(m["per_class_IoU"]) == {"circle_0", "rectangle_1", "triangle_2"}
    assert (out / "per_class_iou.png").stat().st_size > 0 and (out / "curves.png").is_file()

    from videoformers.cli import main

    img = next((root / "images/validation").iterdir())
    png, lab = tmp_path / "overlay.png", tmp_path / "label.png"
    assert main(["segment", str(img), "--checkpoint", str(out / "checkpoint_best.pth"), "--out", str(png),
                 "--label-out", str(lab)]) == 0
    w, h = Image.open(png).size
    assert w == 32 and h > 32  # the image plus a legend strip
    assert Image.open(lab).size == (32, 32) and np.asarray(Image.open(lab)).max() < 3


def test_segment_tool_overlay_size():
    from videoformers.tools.segment import overlay, palette, segment_image

    img = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    pred = segment_image(_tiny(), img, SegConfig(img_scale=(64, 40)), (0.5,) * 3, (0.25,) * 3)
    assert pred.shape == (40, 56) and pred.max() < 5
    assert len({tuple(c) for c in palette(150)}) == 150
    assert overlay(img, pred, [str(i) for i in range(5)]).size[0] == 56
