"""Tensor transforms: crops inside the frame, flip all-or-none, temporal consistency of photometric ops,
multi-crop views, normalisation, erasing, batch mode, and Mixup/CutMix label sums."""

import math

import pytest
import torch

from videoformers.data import MixupCutmix, one_hot_smooth
from videoformers.data.transforms import (
    ColorJitter,
    Normalize,
    RandAugment,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ResizeCrop,
    ScaleJitterCrop,
    _RA_OPS,
    frames_to_clip,
    random_resized_crop_box,
    resized_crop,
    scale_jitter_crop_box,
    short_side_crop_boxes,
)


def _static_clip(T=4, H=40, W=56, seed=0):
    """A clip whose frames are all the same image: a temporally consistent op keeps them equal."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(3, 1, H, W, generator=g)
    return img.expand(3, T, H, W).contiguous()


def _frames_equal(x):
    return all(torch.allclose(x[:, 0], x[:, t], atol=1e-6) for t in range(1, x.shape[1]))


def test_crop_boxes_inside_frame():
    g = torch.Generator().manual_seed(0)
    for H, W in [(256, 340), (340, 256), (64, 64), (100, 30), (17, 200)]:
        for _ in range(200):
            for top, left, h, w in (
                scale_jitter_crop_box(H, W, 224, (256, 320), g),
                scale_jitter_crop_box(H, W, 32, (16, 48), g),
                random_resized_crop_box(H, W, generator=g),
            ):
                assert h > 0 and w > 0 and top >= 0 and left >= 0 and top + h <= H and left + w <= W
        for n in (1, 3):
            for top, left, h, w in short_side_crop_boxes(H, W, 224, 224, n):
                assert top >= 0 and left >= 0 and top + h <= H and left + w <= W


def test_scale_jitter_box_matches_scale_range():
    # Resizing the short side to s in [256, 320] then cropping 224 = cropping 224 * short / s in the original.
    g = torch.Generator().manual_seed(1)
    sides = [scale_jitter_crop_box(256, 340, 224, (256, 320), g)[2] for _ in range(300)]
    assert min(sides) >= round(224 * 256 / 320) and max(sides) <= 224
    assert len(set(sides)) > 10


def test_three_crop_covers_the_long_side():
    boxes = short_side_crop_boxes(256, 340, 224, 224, 3)
    lefts = [b[1] for b in boxes]
    assert lefts[0] == 0 and lefts[2] + boxes[2][3] == 340 and {b[0] for b in boxes} == {boxes[0][0]}
    boxes = short_side_crop_boxes(340, 256, 224, 224, 3)  # portrait: top / centre / bottom
    assert boxes[0][0] == 0 and boxes[2][0] + boxes[2][2] == 340


def test_resized_crop_uint8_matches_float_path():
    x = torch.randint(0, 256, (3, 5, 60, 80), dtype=torch.uint8)
    a = resized_crop(x, (5, 7, 40, 50), 32).float()
    b = resized_crop(x.float(), (5, 7, 40, 50), 32)
    assert a.shape == (3, 5, 32, 32) and (a - b).abs().max() <= 1.0
    with pytest.raises(ValueError, match="outside"):
        resized_crop(x, (30, 0, 40, 50), 32)


def test_crops_cut_the_same_box_from_every_frame():
    torch.manual_seed(2)
    clip = _static_clip(T=6, H=64, W=80)
    for t in (ScaleJitterCrop(32, (40, 56)), RandomResizedCrop(32)):
        for _ in range(10):
            out = t(clip)
            assert out.shape == (3, 6, 32, 32) and _frames_equal(out)


def test_flip_applies_to_all_frames_or_none():
    torch.manual_seed(3)
    clip = torch.rand(3, 8, 10, 12)
    flipped = 0
    for _ in range(100):
        out = RandomHorizontalFlip(0.5)(clip)
        per_frame = [torch.equal(out[:, t], clip[:, t].flip(-1)) for t in range(8)]
        same = [torch.equal(out[:, t], clip[:, t]) for t in range(8)]
        assert all(per_frame) or all(same)
        flipped += all(per_frame)
    assert 25 < flipped < 75
    batch = torch.rand(16, 3, 4, 6, 7)
    out = RandomHorizontalFlip(0.5)(batch)
    for b in range(16):
        assert torch.equal(out[b], batch[b]) or torch.equal(out[b], batch[b].flip(-1))


@pytest.mark.parametrize("op", sorted(_RA_OPS))
def test_randaugment_ops_are_temporally_consistent_and_in_range(op):
    clip = _static_clip()
    fn, arg = _RA_OPS[op]
    out = fn(clip, arg(9.0, torch.Generator().manual_seed(0)))
    assert out.shape == clip.shape and _frames_equal(out)
    assert out.min() >= 0 and out.max() <= 1


def test_randaugment_changes_clip_consistently():
    torch.manual_seed(4)
    clip = _static_clip(T=5)
    ra = RandAugment(n=3, m=9, p=1.0)
    changed = 0
    for _ in range(10):
        out = ra(clip)
        assert _frames_equal(out)
        changed += not torch.allclose(out, clip)
    assert changed >= 8
    batch = torch.stack([_static_clip(seed=i) for i in range(3)])
    out = ra(batch)
    assert out.shape == batch.shape and all(_frames_equal(o) for o in out)


def test_color_jitter_is_temporally_consistent():
    torch.manual_seed(5)
    clip = _static_clip()
    out = ColorJitter(0.4)(clip)
    assert _frames_equal(out) and not torch.allclose(out, clip)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(ColorJitter(0.0, hue=0.0)(clip), clip)


def test_normalize_and_uint8_input():
    x = torch.full((3, 2, 4, 4), 255, dtype=torch.uint8)
    out = Normalize((0.5, 0.5, 0.5), (0.25, 0.5, 1.0))(x)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([2.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        Normalize((0.5,) * 3, (0.5,) * 3)(torch.rand(3, 4, 4))


def test_random_erasing_same_box_in_every_frame():
    torch.manual_seed(6)
    clip = torch.zeros(3, 6, 32, 32)
    out = RandomErasing(p=1.0)(clip)
    mask = out != 0
    assert mask.any()
    assert all(torch.equal(mask[:, 0], mask[:, t]) for t in range(6))
    assert torch.equal(RandomErasing(p=0.0)(clip), clip)


def test_test_views_shape():
    clip = torch.randint(0, 256, (3, 8, 256, 340), dtype=torch.uint8)
    assert ResizeCrop(224, 224, 3)(clip).shape == (3, 3, 8, 224, 224)
    assert ResizeCrop(224, 256, 1)(clip).shape == (1, 3, 8, 224, 224)
    batch = clip[None].expand(2, -1, -1, -1, -1)
    assert ResizeCrop(112, 128, 3)(batch).shape == (2, 3, 3, 8, 112, 112)


def test_frames_to_clip_layout():
    frames = torch.arange(2 * 3 * 4 * 3).view(2, 3, 4, 3).to(torch.uint8)
    clip = frames_to_clip(frames)
    assert clip.shape == (3, 2, 3, 4) and clip[1, 1, 2, 3] == frames[1, 2, 3, 1]
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        frames_to_clip(torch.zeros(2, 3, 4))


def test_mixup_cutmix_labels_sum_to_one_and_match_the_mix():
    torch.manual_seed(7)
    x = torch.rand(8, 3, 4, 16, 16)
    y = torch.randint(0, 5, (8,))
    for mix in (MixupCutmix(num_classes=5), MixupCutmix(mixup_alpha=0.8, cutmix_alpha=0.0, num_classes=5),
                MixupCutmix(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=5)):
        for _ in range(20):
            xm, ys = mix(x, y)
            assert xm.shape == x.shape and ys.shape == (8, 5)
            assert torch.allclose(ys.sum(1), torch.ones(8), atol=1e-6)
            assert ys.min() >= 0
    # Cutmix: the label weight equals the pasted area, the same box in every frame.
    cut = MixupCutmix(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=8)
    x = torch.arange(4).float().view(4, 1, 1, 1, 1).expand(4, 3, 5, 16, 16).contiguous()
    y = torch.arange(4)
    xm, ys = cut(x, y)
    pasted = (xm[0] == 3).float()
    assert all(torch.equal(pasted[:, 0], pasted[:, t]) for t in range(5))
    area = pasted[0, 0].mean().item()
    assert math.isclose(ys[0, 3].item(), area, abs_tol=1e-6) and math.isclose(ys[0, 0].item(), 1 - area, abs_tol=1e-6)


def test_mixup_off_gives_smoothed_one_hot():
    y = torch.tensor([0, 2])
    mix = MixupCutmix(prob=0.0, label_smoothing=0.1, num_classes=4)
    x = torch.rand(2, 3, 2, 4, 4)
    xm, ys = mix(x, y)
    assert torch.equal(xm, x)
    assert torch.allclose(ys, one_hot_smooth(y, 4, 0.1))
    assert torch.allclose(ys[0], torch.tensor([0.925, 0.025, 0.025, 0.025]))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        mix(torch.rand(2, 3, 4, 4), y)


@pytest.mark.gpu
def test_batch_transforms_on_gpu():
    x = torch.randint(0, 256, (4, 3, 8, 64, 80), dtype=torch.uint8, device="cuda")
    out = ScaleJitterCrop(32, (40, 48))(x)
    assert out.device.type == "cuda" and out.shape == (4, 3, 8, 32, 32)
    out = Normalize((0.45,) * 3, (0.225,) * 3)(RandAugment(2, 9)(ColorJitter(0.4)(RandomHorizontalFlip()(out))))
    out = RandomErasing(1.0)(out)
    xm, ys = MixupCutmix(num_classes=10)(out, torch.randint(0, 10, (4,), device="cuda"))
    assert xm.device.type == "cuda" and torch.allclose(ys.sum(1), torch.ones(4, device="cuda"))
