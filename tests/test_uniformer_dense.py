"""UniFormer as a dense-prediction backbone (TPAMI Sec. 4.3, 6.3-6.5): ``features_only`` equals the authors'
detection / segmentation / pose backbones, windows padded as theirs, any input size, run-time switching
of stage 3 between global / window / hybrid, and the checkpoint-loading report.

Parity fixtures (tests/fixtures/uniformer/README.md): ``det_window`` / ``det_hybrid`` (MMDetection copy),
``seg_global`` / ``seg_hybrid`` (MMSegmentation copy, 100x136 input: not a multiple of 32; the hybrid case
has window 8 on a 6x8 stage-3 map, shorter than the window along H), ``pose_global`` (MMPose copy, last map
only).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import videoformers as vf
from fixtures.seeded import seeded_state_dict, seeded_tensor
from videoformers.checkpoints import CheckpointError
from videoformers.models.uniformer import GlobalMHRA

FIXTURES = Path(__file__).parent / "fixtures" / "uniformer"
TINY = dict(depth=(1, 1, 4, 1), embed_dim=(16, 32, 64, 64), head_dim=16)
NORM_KEYS = {f"norm{s}.{p}" for s in range(1, 5) for p in ("weight", "bias")}

# case -> (our model, window_size, window_pattern, out_indices); the authors' flags: windows=True -> "w",
# hybrid=True -> "wwwg" (their (i + 1) % 4 == 0 blocks are global)
S = "uniformer_small_image"
PARITY = {
    "det_window": (S, 4, "w", (0, 1, 2, 3)),
    "det_hybrid": (S, 4, "wwwg", (0, 1, 2, 3)),
    "seg_global": (S, None, "w", (0, 1, 2, 3)),
    "seg_hybrid": (S, 8, "wwwg", (0, 1, 2, 3)),
    "pose_global": (S, None, "w", (3,)),  # their pose backbone returns out[-1]
    "det_light_xxs": ("uniformer_xxs_image", None, "w", (0, 1, 2, 3)),  # UniFormer_Light, 80x112: stage 3 is 5x7
}


def _fixture(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.json").read_text())


@functools.lru_cache(maxsize=None)  # one build per case for the tests below (they restore what they change)
def _dense_parity_model(case: str):
    fx = _fixture(case)
    name, ws, pattern, idx = PARITY[case]
    cfg = fx["config"]
    assert cfg.get("window_size") == ws or not (cfg.get("windows") or cfg.get("hybrid"))
    # an MMDetection / MMSegmentation / MMPose checkpoint: {"state_dict": {"backbone.<authors' key>": ...}},
    # loaded strictly into the dense backbone (built on the meta device: every tensor comes from it)
    ckpt = {"state_dict": {"backbone." + k: v for k, v in seeded_state_dict(fx["manifest"], fx["seed"]).items()}}
    windows = {} if name != S else dict(window_size=ws, window_pattern=pattern)
    model = vf.create_model(name, pretrained=ckpt, dense=True, features_only=True, out_indices=idx, **windows).eval()
    return fx, model, model.model.pretrained_report, ckpt


@pytest.mark.parametrize("case", sorted(PARITY))
def test_features_only_equals_authors_dense_backbones(case):
    fx, model, report, ckpt = _dense_parity_model(case)
    assert report.ok and not report.missing and not report.new and not report.ignored
    if case == "pose_global":  # the pose backbone holds norm1..norm3 that its forward never uses
        assert {k for k in model.state_dict() if k.startswith("model.norm")} == {"model.norm4.weight", "model.norm4.bias"}
    x = seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"])
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == len(fx["output"]) and [list(o.shape) for o in outs] == fx["output_shape"]
    atol = max(1e-5, fx["suggested_atol"])
    for out, ref in zip(outs, fx["output"]):
        torch.testing.assert_close(out, torch.tensor(ref, dtype=torch.float32), rtol=0, atol=atol)


def test_seg_hybrid_fixture_needs_the_authors_padding():
    # With the classification rule (window shrunk to the 6x8 map) stage 3 is another function: the
    # parity above depends on padding the map to the full 8x8 window.
    fx, model, _, _ = _dense_parity_model("seg_hybrid")
    x = seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"])
    try:
        for blk in model.model.blocks3:
            blk.attn.window_pad = "shrink"
        with torch.no_grad():
            outs = model(x)
    finally:
        for blk in model.model.blocks3:
            blk.attn.window_pad = "authors"
    refs = [torch.tensor(r) for r in fx["output"]]
    torch.testing.assert_close(outs[1], refs[1], rtol=0, atol=1e-5)  # stages 1-2 are untouched
    assert (outs[2] - refs[2]).abs().max() > 1e-2


# --------------------------------------------------------------------------- windowed attention
def _reference_window_attention(attn: GlobalMHRA, x: torch.Tensor) -> torch.Tensor:
    """The authors' SABlock_Windows attention, one window at a time: zero-pad bottom/right to full
    windows, attend over every token of the window (padding included, no mask), crop."""
    B, H, W, C = x.shape
    ws = attn.window_size[-1]
    xp = F.pad(x, (0, 0, 0, (-W) % ws, 0, (-H) % ws))
    out = torch.empty_like(xp)
    for i in range(0, xp.shape[1], ws):
        for j in range(0, xp.shape[2], ws):
            win = xp[:, i:i + ws, j:j + ws].reshape(B, ws * ws, C)
            q, k, v = attn.qkv(win).view(B, ws * ws, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
            a = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)
            y = attn.proj((a @ v).transpose(1, 2).reshape(B, ws * ws, C))
            out[:, i:i + ws, j:j + ws] = y.view(B, ws, ws, C)
    return out[:, :H, :W]


@pytest.mark.parametrize("size,window", [((6, 8), 4), ((3, 5), 4), ((6, 8), 8), ((8, 8), 4), ((7, 9), 3)])
def test_authors_window_padding_equals_per_window_loop(size, window):
    torch.manual_seed(0)
    attn = GlobalMHRA(32, 2, window_size=(window, window), window_pad="authors").eval()
    with torch.no_grad():
        attn.qkv.bias.normal_()  # padding only matters through the bias: make it visible
        x = torch.randn(2, *size, 32)
        torch.testing.assert_close(attn(x), _reference_window_attention(attn, x), rtol=0, atol=1e-5)
        shrink = GlobalMHRA(32, 2, window_size=(window, window)).eval()
        shrink.load_state_dict(attn.state_dict())
        if size[0] < window and size[1] < window:  # classification rule: one window = global attention
            glob = GlobalMHRA(32, 2).eval()
            glob.load_state_dict(attn.state_dict())
            torch.testing.assert_close(shrink(x), glob(x), rtol=0, atol=1e-6)
        if any(s < window for s in size):  # the two rules differ exactly where an axis is shorter than the window
            assert (shrink(x) - attn(x)).abs().max() > 1e-3
        else:
            torch.testing.assert_close(shrink(x), attn(x), rtol=0, atol=1e-6)


def test_classification_models_keep_shrinking_windows():
    m = vf.create_model("uniformer_small_image", window_size=14, window_pattern="wwwg", num_classes=3, **TINY)
    assert all(b.attn.window_pad == "shrink" for b in m.blocks3)
    fm = vf.create_model("uniformer_small_image", features_only=True, window_size=14, window_pattern="wwwg", **TINY)
    assert all(b.attn.window_pad == "authors" for b in fm.model.blocks3)
    with pytest.raises(ValueError, match="window_pad"):
        vf.create_model("uniformer_small_image", window_pad="mask", **TINY)


# --------------------------------------------------------------------------- the dense backbone itself
def test_dense_outputs_are_the_layer_normed_stage_maps():
    torch.manual_seed(0)
    ref = vf.create_model("uniformer_small_image", num_classes=0, **TINY).eval()
    fm = vf.create_model("uniformer_small_image", features_only=True, **TINY).eval()
    vf.load_checkpoint(fm, ref.state_dict())
    with torch.no_grad():
        for s in range(1, 5):  # non-trivial norms
            getattr(fm.model, f"norm{s}").weight.uniform_(0.5, 1.5)
            getattr(fm.model, f"norm{s}").bias.uniform_(-0.5, 0.5)
        x = torch.randn(2, 3, 64, 96)
        outs = fm(x)
        plain = ref.forward_intermediates(x, output_fmt="NHWC", intermediates_only=True)
    assert fm.feature_info.channels() == [16, 32, 64, 64] and fm.feature_info.reduction() == [4, 8, 16, 32]
    for s, (o, p) in enumerate(zip(outs, plain)):
        n = getattr(fm.model, f"norm{s + 1}")
        assert n.eps == 1e-6
        torch.testing.assert_close(o, F.layer_norm(p, p.shape[-1:], n.weight, n.bias, 1e-6).movedim(-1, 1),
                                   rtol=0, atol=1e-5)
    assert isinstance(fm.model.norm, torch.nn.Identity) and isinstance(fm.model.head, torch.nn.Identity)


def test_only_returned_stages_get_norms_and_every_parameter_trains():
    fm = vf.create_model("uniformer_small_image", features_only=True, out_indices=(1, 3), **TINY).train()
    names = {k for k in fm.model.state_dict() if k.split(".")[0] in {"norm1", "norm2", "norm3", "norm4"}}
    assert names == {"norm2.weight", "norm2.bias", "norm4.weight", "norm4.bias"}
    outs = fm(torch.randn(2, 3, 64, 64))
    sum(o.square().mean() for o in outs).backward()
    unused = [n for n, p in fm.named_parameters() if p.grad is None]
    assert not unused  # DDP without find_unused_parameters needs this (norm1 would be unused)


def test_video_and_plain_features_only_unchanged():
    vid = vf.create_model("uniformer_small", features_only=True, num_frames=4, **TINY)
    assert not any(k.split(".")[1] in {"norm1", "norm4"} for k in vid.state_dict())
    with pytest.raises(ValueError, match="image UniFormers only"):
        vf.create_model("uniformer_small", dense=True, **TINY)
    from videoformers.models.contract import FeatureExtractor

    plain = FeatureExtractor(vf.create_model("uniformer_small_image", **TINY), dense=False)
    assert "model.norm1.weight" not in plain.state_dict()


@pytest.mark.parametrize("hw", [(100, 136), (64, 85), (43, 57), (32, 33)])  # 512x683-like: not multiples of 32
def test_any_input_size_floors_like_the_authors(hw):
    fm = vf.create_model("uniformer_small_image", features_only=True, window_size=2, window_pattern="wwwg",
                         **TINY).eval()
    with torch.no_grad():
        outs = fm(torch.randn(1, 3, *hw))
    assert [tuple(o.shape[-2:]) for o in outs] == [(hw[0] // s, hw[1] // s) for s in (4, 8, 16, 32)]
    assert all(torch.isfinite(o).all() for o in outs)
    cls = vf.create_model("uniformer_small_image", num_classes=3, **TINY)
    if hw[0] % 32 or hw[1] % 32:
        with pytest.raises(ValueError, match="multiples of"):
            cls(torch.randn(1, 3, *hw))  # the classification model keeps its check


def test_bad_inputs_are_named():
    fm = vf.create_model("uniformer_small_image", features_only=True, **TINY)
    with pytest.raises(ValueError, match="at least"):
        fm(torch.randn(1, 3, 31, 64))  # stage 4 would have no token
    with pytest.raises(ValueError, match="4-D input"):
        fm(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="3 channels"):
        fm(torch.randn(1, 4, 64, 64))
    pruned = vf.create_model("uniformer_small_image", features_only=True, out_indices=(0, 1), **TINY)
    assert [tuple(o.shape[-2:]) for o in pruned(torch.randn(1, 3, 17, 20))] == [(4, 5), (2, 2)]  # 8 px suffice


# --------------------------------------------------------------------------- train global / test hybrid
def test_set_window_attention_switches_stage_3_only():
    torch.manual_seed(0)
    fm = vf.create_model("uniformer_small_image", features_only=True, **TINY).eval()
    params = {k: v.clone() for k, v in fm.state_dict().items()}
    x = torch.randn(1, 3, 64, 96)  # stage 3: 4x6 tokens, window 4 pads W to 8
    with torch.no_grad():
        glob = fm(x)
        fm.set_window_attention(4, "wwwg")
        assert [b.attn.window_size for b in fm.model.blocks3] == [(4, 4), (4, 4), (4, 4), None]
        hyb = fm(x)
        fm.set_window_attention(None)
        again = fm(x)
    assert all(torch.equal(a, b) for a, b in zip(glob[:2], hyb[:2]))  # stages 1-2 untouched
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(glob[2:], hyb[2:]))  # stage 3 and what follows
    assert all(torch.equal(a, b) for a, b in zip(glob, again))
    assert fm.state_dict().keys() == params.keys() and all(torch.equal(v, params[k]) for k, v in fm.state_dict().items())
    # the same as building hybrid from the start
    built = vf.create_model("uniformer_small_image", features_only=True, window_size=4, window_pattern="wwwg",
                            **TINY).eval()
    built.load_state_dict(fm.state_dict())
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(built(x), hyb))


def test_set_window_attention_errors():
    fm = vf.create_model("uniformer_small_image", features_only=True, **TINY)
    with pytest.raises(ValueError, match="window_pattern"):
        fm.set_window_attention(4, "wxg")
    with pytest.raises(ValueError, match="window_size"):
        fm.set_window_attention(-2)
    light = vf.create_model("uniformer_xxs_image", features_only=True, depth=(1, 1, 2, 1), embed_dim=(16, 32, 64, 64),
                            head_dim=16)
    light.set_window_attention(None)  # global is what it has
    with pytest.raises(ValueError, match="H-UniFormer"):
        light.set_window_attention(4, "wwwg")
    vit = vf.create_model("vit_base_patch16_224", features_only=True, img_size=32, patch_size=8, embed_dim=32, depth=2,
                          num_heads=2) if "vit_base_patch16_224" in vf.list_models() else None
    if vit is not None:
        with pytest.raises(TypeError, match="window attention"):
            vit.set_window_attention(4)


# --------------------------------------------------------------------------- light models
def test_light_dense_backbone():
    kw = dict(depth=(1, 1, 2, 1), embed_dim=(16, 32, 64, 64), head_dim=16)
    fm = vf.create_model("uniformer_xxs_image", features_only=True, **kw).eval()
    assert NORM_KEYS <= {k.removeprefix("model.") for k in fm.state_dict()}
    assert not any(k.startswith(("model.head", "model.norm_cls", "model.norm.")) for k in fm.state_dict())
    with torch.no_grad():
        # the two-conv stem rounds up (3x3, stride 2, padding 1), the 2x2 downsamplings floor
        outs = fm(torch.randn(1, 3, 90, 122))
        assert [tuple(o.shape[-2:]) for o in outs] == [(23, 31), (11, 15), (5, 7), (2, 3)]


# --------------------------------------------------------------------------- checkpoints
def test_imagenet_checkpoint_loads_clean_into_the_dense_backbone():
    # the authors' ImageNet layout (image_small fixture: uniformer_small, 1000 classes), full size
    fx = _fixture("image_small")
    sd = seeded_state_dict(fx["manifest"], fx["seed"])
    with torch.device("meta"):  # no init cost; the checkpoint fills all but the new norms, which get their init
        fm = vf.create_model("uniformer_small_image", features_only=True, window_size=14, window_pattern="wwwg")
    report = vf.load_checkpoint(fm, {"model": sd})  # strict
    assert report.ok and not report.missing and not report.unexpected
    assert set(report.new) == NORM_KEYS
    assert set(report.ignored) == {"head.weight", "head.bias", "norm.weight", "norm.bias", "norm.running_mean",
                                   "norm.running_var", "norm.num_batches_tracked"}
    assert "new in this model" in str(report) and "ignored by design" in str(report)
    torch.testing.assert_close(fm.model.blocks3[0].attn.qkv.weight, sd["blocks3.0.attn.qkv.weight"])
    assert not any(p.is_meta for p in fm.parameters()) and torch.equal(fm.model.norm2.weight, torch.ones(128))


def test_our_checkpoint_and_create_model_paths():
    torch.manual_seed(0)
    cls = vf.create_model("uniformer_small_image", num_classes=7, **TINY)
    sd = cls.state_dict()
    # built on the meta device (strict, every backbone tensor from the file); the new norms get their init
    fm = vf.create_model("uniformer_small_image", pretrained=sd, dense=True, features_only=True, **TINY)
    assert set(fm.model.pretrained_report.new) == NORM_KEYS
    assert not any(p.is_meta for p in fm.parameters())
    assert torch.equal(fm.model.norm3.weight, torch.ones(64)) and torch.equal(fm.model.norm3.bias, torch.zeros(64))
    torch.testing.assert_close(fm.model.patch_embed1.proj.weight, sd["patch_embed1.proj.weight"])
    # an ImageNet checkpoint through create_model(features_only=True) alone: loaded, then made dense
    fm2 = vf.create_model("uniformer_small_image", pretrained=sd, num_classes=7, features_only=True, **TINY)
    assert fm2.model.pretrained_report.ok
    torch.testing.assert_close(fm2.model.blocks3[1].mlp.fc1.weight, sd["blocks3.1.mlp.fc1.weight"])
    # a dense checkpoint of a detector: backbone + neck + heads; the dense model takes the backbone only
    dense_sd = {"backbone." + k: v for k, v in fm.model.state_dict().items()}
    dense_sd.update({"neck.fpn_convs.0.conv.weight": torch.zeros(8, 8, 3, 3), "rpn_head.rpn_cls.bias": torch.zeros(3),
                     "roi_head.bbox_head.fc_cls.weight": torch.zeros(81, 8)})
    fm3 = vf.create_model("uniformer_small_image", pretrained={"state_dict": dense_sd}, dense=True, **TINY)
    rep = fm3.pretrained_report
    assert rep.ok and not rep.new and len(rep.ignored) == 3
    # a pose-style backbone returning stage 4 only: the checkpoint's other output norms are unused, ignored
    pose = vf.create_model("uniformer_small_image", features_only=True, out_indices=(3,), **TINY)
    rep = vf.load_checkpoint(pose, {"state_dict": dense_sd})
    assert rep.ok and {k for k in rep.ignored if not k.startswith("norm")} == {
        "neck.fpn_convs.0.conv.weight", "rpn_head.rpn_cls.bias", "roi_head.bbox_head.fc_cls.weight"}
    assert {k for k in rep.ignored if k.startswith("norm")} == NORM_KEYS - {"norm4.weight", "norm4.bias"}
    # what does not fit is still refused, by name
    other = {k: v for k, v in sd.items() if not k.startswith("blocks3.1.")}
    with pytest.raises(CheckpointError, match="blocks3"):
        vf.load_checkpoint(vf.create_model("uniformer_small_image", features_only=True, **TINY), other)
    wrong = dict(sd, **{"patch_embed2.proj.weight": torch.zeros(32, 8, 2, 2)})
    with pytest.raises(CheckpointError, match="patch_embed2.proj.weight"):
        vf.load_checkpoint(vf.create_model("uniformer_small_image", features_only=True, **TINY), wrong)


def test_create_model_features_only_loads_an_authors_dense_checkpoint_whole(tmp_path):
    """`create_model(..., features_only=True, pretrained=<mmseg/mmdet file>)` builds the dense form before
    loading, so the authors' norm1..4 land in place and nothing is missing."""
    src = vf.create_model("uniformer_small_image", dense=True, **TINY).eval()
    sd = {f"backbone.{k}": v for k, v in src.authors_state_dict().items()}
    sd["decode_head.conv_seg.weight"] = torch.zeros(3, 8, 1, 1)  # a head the backbone ignores
    path = tmp_path / "mmseg_iter_80000.pth"
    torch.save({"state_dict": sd, "meta": {}}, path)
    fm = vf.create_model("uniformer_small_image", features_only=True, pretrained=str(path), **TINY).eval()
    rep = fm.model.pretrained_report
    assert not rep.missing, rep
    theirs, ours = src.state_dict(), fm.model.state_dict()
    assert {k for k in ours if k.startswith("norm")} == {f"norm{i}.{p}" for i in (1, 2, 3, 4) for p in ("weight", "bias")}
    for k, v in ours.items():
        torch.testing.assert_close(v, theirs[k])
    assert len(fm(torch.randn(1, 3, 64, 96))) == 4
