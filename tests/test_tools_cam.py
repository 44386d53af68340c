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
# the last stage's input: hierarchical models read the previous stage's output (stride 16)
INPUT_GRIDS = {**GRIDS, "uniformer_small": (2, 4, 4), "uniformer_xxs": (2, 4, 4), "dualformer_tiny": (4, 4, 4)}


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
    assert res.raw.shape == (2, *INPUT_GRIDS[name])
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
    assert info["feature_map"] == [2, 4, 4]  # stage 3 of a 64 px clip: what stage 4 reads
    assert [t["prob"] for t in info["top"]] == sorted((t["prob"] for t in info["top"]), reverse=True)


# ------------------------------------------------------------------------------------------------
# motion_mask / mass_on_mask: the measurement of ``videoformers demo --cam`` (docs/cam.md)
# ------------------------------------------------------------------------------------------------


def _moving_square_clip(T=8, size=32, side=4, speed=5):
    """A noisy static background, a static 'distractor' square and a bright square moving right by
    ``speed`` px per frame (so every pixel is covered in fewer than half the frames). Returns the
    frames (T, H, W, 3) uint8 and the moving square's true position per frame (T, H, W) bool."""
    g = torch.Generator().manual_seed(0)
    bg = torch.randint(20, 60, (size, size, 3), generator=g)
    bg[24:28, 4:8] = 230  # static distractor: not motion
    frames = bg.expand(T, size, size, 3).clone()
    where = torch.zeros(T, size, size, dtype=torch.bool)
    for t in range(T):
        x = 2 + speed * t
        frames[t, 6:6 + side, x:x + side] = torch.tensor([250, 200, 90])
        where[t, 6:6 + side, x:x + side] = True
    return frames.to(torch.uint8), where


def test_motion_mask_is_where_the_square_moves():
    from videoformers.tools.cam import motion_mask

    frames, where = _moving_square_clip()
    mask = motion_mask(frames, dilate=0)
    assert mask.dtype == torch.bool and mask.shape == where.shape
    assert torch.equal(mask, where)  # the static distractor and the background are not motion
    # dilated: the square grown by 2 px in every direction (a 5x5 square structuring element)
    grown = torch.nn.functional.max_pool2d(where.float()[:, None], 5, 1, 2)[:, 0] > 0
    assert torch.equal(motion_mask(frames, dilate=2), grown)
    assert not motion_mask(frames, dilate=2)[:, 24:28, 4:8].any()
    # a still clip has no motion at all; float frames on the 0-255 scale work as uint8 ones do
    assert not motion_mask(frames[:1].expand(8, -1, -1, -1).float()).any()
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        motion_mask(frames[0])


def test_mass_on_mask_concentrated_uniform_and_empty():
    from videoformers.tools.cam import mass_on_mask

    _, where = _moving_square_clip()
    area = where.float().mean().item()
    assert 0 < area < 0.1
    on = where.float() * torch.rand(where.shape)  # all the mass on the mask
    assert mass_on_mask(on, where) == pytest.approx(1.0)
    assert mass_on_mask(torch.ones(where.shape), where) == pytest.approx(area)  # uniform: the area fraction
    assert mass_on_mask(torch.zeros(where.shape), where) == pytest.approx(area)  # constant map min-max scaled
    assert mass_on_mask(1.0 - where.float(), where) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        mass_on_mask(on[0], where)
    with pytest.raises(ValueError, match="non-negative"):
        mass_on_mask(-on, where)


def test_cam_grid_writes_one_figure(tmp_path):
    import numpy as np
    from PIL import Image

    from videoformers.tools.cam import save_cam_grid

    frames, where = _moving_square_clip()
    clips = [(frames, where.float(), "a"), (frames, 1 - where.float(), "b")]
    path = save_cam_grid(tmp_path / "grid.png", clips, title="t")
    im = Image.open(path)
    w, h = im.size
    assert 0.4 * w < h < w  # two clips: four image rows of eight frames (and a margin for the labels)
    w1, h1 = Image.open(save_cam_grid(tmp_path / "grid1.png", clips[:1], title="t")).size
    assert w1 == w and h1 < 0.6 * h  # one clip: half the rows
    assert im.mode == "RGB"  # no all-opaque alpha channel
    # four of the eight frames (0, 2, 5, 7): a narrower figure of the same height
    w4, h4 = Image.open(save_cam_grid(tmp_path / "grid4.png", clips, title="t", num_frames=4)).size
    assert h4 == h and w4 < 0.7 * w
    # 6 bits per channel: 64 levels from 0 to 255 (white stays white), and a smaller file
    small = save_cam_grid(tmp_path / "grid6.png", clips, title="t", png_bits=6)
    levels = {round(k * 255 / 63) for k in range(64)}
    values = set(np.unique(np.asarray(Image.open(small))).tolist())
    assert 255 in values and values <= levels
    assert (tmp_path / "grid6.png").stat().st_size < (tmp_path / "grid.png").stat().st_size
    with pytest.raises(ValueError, match="num_frames"):
        save_cam_grid(tmp_path / "bad.png", clips, num_frames=0)
    with pytest.raises(ValueError, match="png_bits"):
        save_cam_grid(tmp_path / "bad.png", clips, png_bits=0)
