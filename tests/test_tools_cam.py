"""Grad-CAM on the last stage: the formula, every family, the written pictures."""

import json

import pytest
import torch

import videoformers as vf
from videoformers.cli import main
from videoformers.tools.cam import grad_cam

TINY = {
    "uniformer_small": dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=64),
    "uniformer_xxs": dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=64),
    "uniformerv2_b16": dict(depth=2, embed_dim=32, num_heads=2, num_frames=4, img_size=32, global_layers=1),
    "uniformerv2_b16_ssv2": dict(depth=2, embed_dim=32, num_heads=2, num_frames=4, img_size=32, global_layers=1),
    "vivit_base_spatiotemporal": dict(depth=2, embed_dim=32, num_heads=2, mlp_dim=64, num_frames=4, img_size=32),
    "vivit_base_factorised_encoder": dict(depth=2, embed_dim=32, num_heads=2, mlp_dim=64, temporal_depth=1,
                                          num_frames=4, img_size=32),
    "vivit_base_factorised_self_attention": dict(depth=2, embed_dim=32, num_heads=2, mlp_dim=64, num_frames=4,
                                                 img_size=32),
    "dualformer_tiny": dict(depth=(1, 1, 1, 1), embed_dim=16, num_heads=1, num_frames=8, img_size=64),
}
# (t, h, w) of the last-stage map for the tiny configs above
GRIDS = {"uniformer_small": (2, 2, 2), "uniformer_xxs": (2, 2, 2), "uniformerv2_b16": (4, 2, 2),
         "uniformerv2_b16_ssv2": (2, 2, 2), "vivit_base_spatiotemporal": (2, 2, 2),
         "vivit_base_factorised_encoder": (2, 2, 2), "vivit_base_factorised_self_attention": (2, 2, 2),
         "dualformer_tiny": (4, 2, 2)}


def tiny_model(name, num_classes=5, seed=0):
    model = vf.create_model(name, num_classes=num_classes, **TINY[name]).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.2 if p.ndim > 1 else 0.05))
    return model


def test_equals_cam_for_a_pooled_linear_head():
    """With global average pooling and a linear classifier, Grad-CAM is CAM (Selvaraju et al. Sec. 3.1):
    ReLU(sum_c w[k, c] A_c) / (t h w). Checked against the model's own forward_features / head weights."""
    model = tiny_model("uniformer_small")
    x = torch.randn(2, 3, 4, 64, 64)
    res = grad_cam(model, x, target=[1, 3], position="output")
    with torch.no_grad():
        feats = model.forward_features(x)  # (B, C, t, h, w)
    w = model.head.weight[[1, 3]]
    t, h, ww = feats.shape[2:]
    ref = torch.relu(torch.einsum("bc,bcthw->bthw", w, feats)) / (t * h * ww)
    torch.testing.assert_close(res.raw, ref, atol=1e-6, rtol=1e-4)
    assert res.target == [1, 3]


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_family(name):
    model = tiny_model(name)
    x = torch.randn(2, *model.model_card.input_size)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = grad_cam(model, x, position="output")
    assert out.raw.shape == (2, *GRIDS[name])
    res = grad_cam(model, x)  # the last stage's input
    assert res.raw.shape == (2, *GRIDS[name])
    assert res.cam.shape == (2, *x.shape[2:])
    assert res.target == model(x).argmax(-1).tolist()
    assert torch.isfinite(res.cam).all() and res.cam.min() >= 0
    torch.testing.assert_close(res.raw, torch.relu(res.signed))
    for b in range(2):
        assert res.signed[b].std() > 0  # the gradient reached the feature map
        if res.raw[b].max() > 0:  # scaled per clip (random weights may give only negative evidence)
            assert res.cam[b].max() == pytest.approx(1.0)
    assert not model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_target_changes_the_map():
    model = tiny_model("dualformer_tiny")
    x = torch.randn(1, 3, 8, 64, 64)
    a, b = grad_cam(model, x, target=0).raw, grad_cam(model, x, target=4).raw
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError):
        grad_cam(model, x, target=7)


def test_cli_writes_overlays_and_gif(tmp_path):
    from PIL import Image

    from videoformers.data.synthetic import render_clip, write_video
    from videoformers.tools.convert import convert_checkpoint

    video = tmp_path / "clip.mp4"
    write_video(str(video), render_clip("temporal", 1, [3, 1], size=64, num_frames=16), fps=12)
    model = tiny_model("uniformer_small", num_classes=6)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    ckpt = tmp_path / "m.safetensors"
    names = ["left", "right", "up", "down", "cw", "ccw"]
    convert_checkpoint(tmp_path / "m.pth", ckpt, "uniformer_small", labels=names, **TINY["uniformer_small"])
    out = tmp_path / "cam"
    assert main(["cam", str(video), "--checkpoint", str(ckpt), "--out", str(out), "--class", "up",
                 "--display-size", "96"]) == 0
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 4  # one overlay per input frame
    assert Image.open(frames[0]).size == (96, 96)
    gif = Image.open(out / "cam.gif")
    assert gif.n_frames == 4
    assert (out / "montage.png").stat().st_size > 0
    info = json.loads((out / "cam.json").read_text())
    assert info["target"]["label"] == "up" and info["target"]["index"] == 2
    assert info["feature_map"] == [2, 2, 2]
    assert [t["prob"] for t in info["top"]] == sorted((t["prob"] for t in info["top"]), reverse=True)
