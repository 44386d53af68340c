"""UniFormer + FPN with torchvision's detector-backbone interface (TPAMI Sec. 6.3, Table 5), and the
MMDetection export. torchvision cannot be imported on our CPU machines: the Mask R-CNN test skips there;
everything else (maps, strides, FPN arithmetic, parameter counts on the meta device, checkpoints) runs.
"""

from __future__ import annotations

import importlib.util
import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import videoformers as vf
from fixtures.seeded import seeded_state_dict
from videoformers.models.detection import FPN, FPNConfig, UniFormerFPNBackbone, mmdet_state_dict, uniformer_fpn_backbone

TINY = dict(depth=(1, 1, 4, 1), embed_dim=(16, 32, 64, 64), head_dim=16)
FIXTURES = Path(__file__).parent / "fixtures" / "uniformer"


def _tiny(**kw):
    torch.manual_seed(0)
    return uniformer_fpn_backbone("uniformer_small_image", window_size=2, out_channels=32, **TINY, **kw).eval()


@pytest.mark.parametrize("hw", [(64, 96), (100, 136)])
def test_maps_keys_and_strides(hw):
    bb = _tiny()
    assert bb.out_channels == 32 and bb.strides == [4, 8, 16, 32, 64]
    assert [b.attn.window_size for b in bb.body.model.blocks3] == [(2, 2), (2, 2), (2, 2), None]  # hybrid
    with torch.no_grad():
        out = bb(torch.randn(2, 3, *hw))
    assert isinstance(out, OrderedDict) and list(out) == ["0", "1", "2", "3", "pool"]
    sizes = [(hw[0] // s, hw[1] // s) for s in (4, 8, 16, 32)]
    sizes.append(tuple(-(-v // 2) for v in sizes[-1]))  # max_pool2d(kernel 1, stride 2)
    assert [tuple(v.shape) for v in out.values()] == [(2, 32, *s) for s in sizes]


def test_fpn_is_lateral_top_down_and_smoothing():
    torch.manual_seed(0)
    fpn = FPN(FPNConfig(in_channels=(4, 6, 8), out_channels=5))
    with torch.no_grad():
        for p in fpn.parameters():
            p.normal_()
    feats = [torch.randn(1, 4, 13, 17), torch.randn(1, 6, 7, 9), torch.randn(1, 8, 4, 5)]
    lat = [F.conv2d(f, c.conv.weight, c.conv.bias) for f, c in zip(feats, fpn.lateral_convs)]
    p5 = lat[2]
    p4 = lat[1] + F.interpolate(p5, size=(7, 9), mode="nearest")
    p3 = lat[0] + F.interpolate(p4, size=(13, 17), mode="nearest")
    ref = [F.conv2d(p, c.conv.weight, c.conv.bias, padding=1) for p, c in zip((p3, p4, p5), fpn.fpn_convs)]
    ref.append(ref[-1][..., ::2, ::2])  # max-pool with kernel 1, stride 2 = subsampling
    with torch.no_grad():
        out = fpn(feats)
    assert len(out) == 4
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="expects 3 maps"):
        fpn(feats[:2])
    with pytest.raises(ValueError, match="in_channels"):
        FPNConfig(in_channels=())


def test_gradients_reach_backbone_and_neck():
    bb = _tiny().train()
    out = bb(torch.randn(1, 3, 64, 64))
    sum(v.square().mean() for v in out.values()).backward()
    assert not [n for n, p in bb.named_parameters() if p.grad is None]


def _fpn_params(in_channels, c=256) -> int:
    return sum(i * c + c for i in in_channels) + len(in_channels) * (9 * c * c + c)


def _torchvision_mask_rcnn_head_params(num_classes=91, c=256) -> int:
    """torchvision's default Mask R-CNN heads (RPNHead with 3 anchors, TwoMLPHead 256*7*7 -> 1024 -> 1024,
    FastRCNNPredictor, MaskRCNNHeads 4 x conv3x3 256, MaskRCNNPredictor deconv 2x2 + 1x1), counted by hand:
    only a cross-check of the torchvision test below where torchvision cannot run."""
    rpn = (9 * c * c + c) + (c * 3 + 3) + (c * 12 + 12)
    box = (c * 7 * 7 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * num_classes + num_classes) + (1024 * 4 * num_classes + 4 * num_classes)
    mask = 4 * (9 * c * c + c) + (4 * c * c + c) + (c * num_classes + num_classes)
    return rpn + box + mask


@pytest.mark.parametrize("name,paper_m", [("uniformer_small_image", 41.0), ("uniformer_base_image", 69.0)])
def test_param_counts_on_meta(name, paper_m):
    with torch.device("meta"):
        bb = uniformer_fpn_backbone(name)
    n = vf.count_params(bb)
    if name == "uniformer_small_image":  # the authors' detection backbone (det_* manifest: 21.03M with norm1..4)
        manifest = json.loads((FIXTURES / "det_hybrid.json").read_text())["manifest"]
        authors = sum(torch.Size(s).numel() for k, (s, d) in manifest.items() if d == "float32" and "running_" not in k)
        assert vf.count_params(bb.body) == authors
    assert n - vf.count_params(bb.body) == _fpn_params((64, 128, 320, 512))
    total = n + _torchvision_mask_rcnn_head_params()
    assert abs(total / 1e6 - paper_m) / paper_m < 0.02, (name, n, total)


@pytest.mark.parametrize("name,paper_m", [("uniformer_small_image", 41.0), ("uniformer_base_image", 69.0)])
def test_torchvision_mask_rcnn_params(name, paper_m):
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed here: Mask R-CNN cannot be built (the meta-device count above "
                    "checks backbone + FPN + torchvision's heads counted by hand)")
    try:
        from torchvision.models.detection import MaskRCNN
    except Exception as e:  # an install that cannot import (e.g. a torch/torchvision version mismatch)
        pytest.skip(f"torchvision does not import here ({type(e).__name__}: {e})")
    with torch.device("meta"):
        model = MaskRCNN(uniformer_fpn_backbone(name), num_classes=91)
    n = vf.count_params(model) / 1e6
    assert abs(n - paper_m) / paper_m < 0.02, n
    tiny = MaskRCNN(_tiny(), num_classes=3, min_size=64, max_size=96).eval()
    with torch.no_grad():
        (det,) = tiny([torch.rand(3, 64, 90)])
    assert {"boxes", "labels", "scores", "masks"} <= set(det)
    # a training step: every loss of the detector reaches the backbone's weights
    tiny.train()
    masks = torch.zeros(1, 64, 90, dtype=torch.uint8)
    masks[0, 10:50, 5:60] = 1
    losses = tiny([torch.rand(3, 64, 90)], [{"boxes": torch.tensor([[5.0, 10.0, 60.0, 50.0]]),
                                             "labels": torch.tensor([1]), "masks": masks}])
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    sum(losses.values()).backward()
    grads = [p.grad for n, p in tiny.backbone.body.named_parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)


def test_checkpoints_and_mmdet_export():
    bb = _tiny()
    sd = mmdet_state_dict(bb)
    assert all(k.startswith(("backbone.", "neck.")) for k in sd)
    assert "neck.lateral_convs.0.conv.weight" in sd and "neck.fpn_convs.3.conv.bias" in sd
    assert sd["backbone.blocks1.0.conv1.weight"].shape == (16, 16, 1, 1)  # the authors' local block, conv kernels
    assert "backbone.norm4.weight" in sd and "backbone.norm.weight" not in sd
    # a detector checkpoint of that layout loads back (backbone strictly; the neck is the detector's)
    back = _tiny(pretrained={"state_dict": dict(sd)})
    rep = back.body.model.pretrained_report
    assert rep.ok and not rep.new and not rep.missing
    assert all(k.startswith("neck.") for k in rep.ignored) and len(rep.ignored) == 16
    for k, v in bb.body.state_dict().items():
        torch.testing.assert_close(back.body.state_dict()[k], v)
    # the authors' ImageNet checkpoint (image_small fixture) into the full-size S detector backbone
    fx = json.loads((FIXTURES / "image_small.json").read_text())
    full = uniformer_fpn_backbone("uniformer_small_image", pretrained=seeded_state_dict(fx["manifest"], fx["seed"]))
    rep = full.body.model.pretrained_report
    assert rep.ok and len(rep.new) == 8 and {k.split(".")[0] for k in rep.ignored} == {"head", "norm"}
    with pytest.raises(TypeError, match="UniFormerFPNBackbone"):
        mmdet_state_dict(full.body)
    assert isinstance(full, UniFormerFPNBackbone)
