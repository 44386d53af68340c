"""DualFormer (arXiv 2112.04674): paper numbers, parity with the authors' code, any-size support,
checkpoint conversion and 2D inflation."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fixtures.seeded import seeded_state_dict, seeded_tensor

import videoformers as vf
from videoformers.models.dualformer import DualFormer, GPAttention, LWAttention

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "dualformer").glob("*.json"))
# The full-size DualFormer-T fixture takes a few seconds: marked slow.
FIXTURE_PARAMS = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if "full" in p.stem else []) for p in FIXTURES]

# A small model for behaviour tests: 4 stages, LW + GP blocks in every stage.
TINY = dict(embed_dim=8, num_heads=1, depth=(2, 2, 2, 2), num_classes=5)


def _tiny(**kw) -> DualFormer:
    return vf.create_model("dualformer_tiny", **{**TINY, **kw}).eval()


def _uninitialised(fx: dict) -> DualFormer:
    """The fixture's model with storage but no initialisation (every tensor is loaded afterwards;
    skipping the trunc-normal init saves seconds on the full-size model)."""
    return vf.build_on_meta(lambda: vf.create_model(fx["our_model"], **fx["our_overrides"])).to_empty(device="cpu")


# ------------------------------------------------------------------------------------------ paper
# Backbone params (the paper excludes the head) and GFLOPs per view at 32x224 (Table 2 / 4 views).
PAPER = {"dualformer_tiny": (21.8, 59.9), "dualformer_small": (48.9, 158.3), "dualformer_base": (86.8, 267.4)}
# Backbone params of the authors' code (sail-sg/dualformer@058c10c), measured.
AUTHORS_PARAMS = {"dualformer_tiny": 21_767_360, "dualformer_small": 48_908_064, "dualformer_base": 86_837_632}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_params_and_flops_match_paper(name):
    model = vf.build_on_meta(lambda: vf.create_model(name))
    card = vf.get_model_card(name)
    assert card.params_exclude_head and model.classifier_prefixes == ("head.",)
    params = vf.count_params(model, exclude=model.classifier_prefixes)
    assert params == AUTHORS_PARAMS[name]
    paper_params, paper_gflops = PAPER[name]
    assert abs(params / 1e6 - paper_params) / paper_params < 0.02
    assert (card.paper_params_m, card.paper_gflops) == (paper_params, paper_gflops)
    gflops = vf.count_flops(model, (1, *card.input_size))
    assert abs(gflops - paper_gflops) / paper_gflops < 0.05, gflops


def test_variant_configs():
    for name, dim, heads, depth in (("dualformer_tiny", 64, 2, (2, 2, 10, 4)), ("dualformer_small", 96, 3, (2, 2, 18, 2)),
                                    ("dualformer_base", 128, 4, (2, 2, 18, 2))):
        m = vf.build_on_meta(lambda: vf.create_model(name))
        assert m.embed_dims == (dim, 2 * dim, 4 * dim, 8 * dim)
        assert [len(s.blocks) for s in m.stages] == list(depth)
        assert [s.blocks[0].attn.num_heads for s in m.stages] == [heads, 2 * heads, 4 * heads, 8 * heads]
        # LW-MSA on even, GP-MSA on odd block indices (the authors' pattern)
        kinds = [type(b.attn) for s in m.stages for b in s.blocks]
        assert kinds == [LWAttention if j % 2 == 0 else GPAttention for d in depth for j in range(d)]
        assert m.model_card.input_size == (3, 32, 224, 224) and m.num_classes == 400
    dp = vf.build_on_meta(lambda: vf.create_model("dualformer_base")).stages[3].blocks[-1].drop_path1.p
    assert dp == pytest.approx(0.3)


def test_pyramid_kernels_at_32x224_follow_authors():
    m = vf.build_on_meta(lambda: vf.create_model("dualformer_tiny"))
    assert m.feat_sizes == [(16, 56, 56), (16, 28, 28), (16, 14, 14), (16, 7, 7)]
    gp = [s.blocks[1].attn for s in m.stages]
    assert [g.fine_kernel for g in gp] == [(2, 8, 8), (2, 4, 4), (2, 2, 2), (1, 1, 1)]
    assert gp[3].fine is None and gp[3].norm is None  # stage 4: plain global attention
    assert gp[2].coarse is None
    assert gp[0].coarse.conv1.kernel_size == (1, 7, 7) and gp[0].coarse.conv2.kernel_size == (4, 2, 2)
    assert gp[1].coarse.conv1.kernel_size == (1, 7, 7) and gp[1].coarse.conv2.kernel_size == (4, 1, 1)


def test_pyramid_kernels_follow_the_feature_size():
    m = vf.build_on_meta(lambda: vf.create_model("dualformer_tiny", num_frames=8, img_size=160))
    assert m.feat_sizes == [(4, 40, 40), (4, 20, 20), (4, 10, 10), (4, 5, 5)]
    gp = [s.blocks[1].attn for s in m.stages]
    # the authors' rule (size // pyramid) would give a 0 temporal kernel here; ours keeps >= 1
    assert [g.fine_kernel for g in gp] == [(1, 5, 5), (1, 2, 2), (1, 1, 1), (1, 1, 1)]
    # coarse (4,4,4) level: total kernel (1,10,10) / (1,5,5), factorised so the product is the kernel
    k = lambda c: tuple(a * b for a, b in zip(c.conv1.kernel_size, c.conv2.kernel_size))
    assert k(gp[0].coarse) == (1, 10, 10) and k(gp[1].coarse) == (1, 5, 5)


# ------------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("path", FIXTURE_PARAMS)
def test_parity_with_authors(path):
    fx = json.loads(path.read_text())
    model = _uninitialised(fx).eval()
    sd = seeded_state_dict(fx["manifest"], fx["seed"])
    assert any(k.startswith("backbone.") for k in sd) and any(k.startswith("cls_head.fc_cls.") for k in sd)
    report = vf.load_checkpoint(model, sd, strict=True)
    assert report.ok and report.loaded == len(sd)
    x = seeded_tensor(fx["input_shape"], fx["input_seed"], fx["input_key"])
    with torch.no_grad():
        y = model(x)
    ref = torch.tensor(fx["output"])
    assert y.shape == ref.shape
    assert (y - ref).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------------ any size
SIZES = [(8, 160), (12, 192), (16, 256), (32, 224)]


@pytest.mark.parametrize("frames,size", SIZES)
def test_any_size_built_for_it(frames, size):
    model = _tiny(num_frames=frames, img_size=size)
    b = 2 if frames * size <= 12 * 192 else 1  # a batch of 2 where padding masks are used
    x = torch.randn(b, 3, frames, size, size)
    with torch.no_grad():
        feats = model.forward_features(x)
        y = model.forward_head(feats)
    assert feats.shape == (b, 64, math.ceil(frames / 2), math.ceil(size / 32), math.ceil(size / 32))
    assert y.shape == (b, 5) and torch.isfinite(y).all()


@pytest.mark.parametrize("frames,size", SIZES + [(6, 100), (3, 70)])
def test_any_size_with_default_build(frames, size):
    # Built for 32x224 (pooling kernels of the authors' checkpoints), fed another size.
    model = _tiny()
    x = torch.randn(1, 3, frames, size, size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 5) and torch.isfinite(y).all()


def _reference_window_attention(attn: LWAttention, x: torch.Tensor) -> torch.Tensor:
    """Loop over windows; each window holds only its real tokens (no padding, no mask)."""
    B, T, H, W, C = x.shape
    wt, wh, ww = (min(w, s) for w, s in zip(attn.window_size, (T, H, W)))
    out = torch.empty_like(x)
    for t0, h0, w0 in itertools.product(range(0, T, wt), range(0, H, wh), range(0, W, ww)):
        win = x[:, t0:t0 + wt, h0:h0 + wh, w0:w0 + ww]
        shp = win.shape
        tok = win.reshape(B, -1, C)
        q, k, v = attn.qkv(tok).view(B, tok.shape[1], 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1) * attn.scale).softmax(-1) @ v
        o = attn.proj(a.transpose(1, 2).reshape(B, -1, C))
        out[:, t0:t0 + wt, h0:h0 + wh, w0:w0 + ww] = o.view(shp)
    return out


@pytest.mark.parametrize(
    "size,window",
    [((4, 14, 14), (2, 7, 7)), ((8, 7, 7), (8, 7, 7)), ((16, 14, 21), (8, 7, 7)),  # tile exactly
     ((5, 9, 11), (2, 7, 7)), ((3, 6, 6), (8, 7, 7)), ((6, 10, 8), (4, 7, 3))],  # padded / shrunk
)
def test_window_attention_padding_and_masking(size, window):
    torch.manual_seed(0)
    attn = LWAttention(16, 2, window).eval()
    x = torch.randn(2, *size, 16)
    with torch.no_grad():
        y = attn(x)
        ref = _reference_window_attention(attn, x)
    assert y.shape == x.shape
    # padded keys are masked: each real token sees exactly the real tokens of its window;
    # for sizes that tile, no padding happens and this is plain window attention.
    assert torch.allclose(y, ref, atol=1e-5, rtol=0)


def test_window_attention_random_sizes():
    # Property: for random maps and windows (tiling or not, windows larger than the map or not),
    # LW-MSA equals attention inside each window restricted to its real tokens.
    g = torch.Generator().manual_seed(1234)
    for _ in range(12):
        size = tuple(int(v) for v in torch.randint(1, 12, (3,), generator=g))
        window = tuple(int(v) for v in torch.randint(1, 9, (3,), generator=g))
        torch.manual_seed(int(torch.randint(0, 1000, (1,), generator=g)))
        attn = LWAttention(8, 2, window).eval()
        x = torch.randn(2, *size, 8)
        with torch.no_grad():
            assert torch.allclose(attn(x), _reference_window_attention(attn, x), atol=1e-5, rtol=0), (size, window)


def test_padding_does_not_change_tiling_sizes(monkeypatch):
    # A size that tiles runs without padding. Force the padded + masked path anyway (every LW-MSA
    # map gets one extra window of zeros along H: a key mask is built and applied, the padded
    # queries are cropped) and check the logits do not change.
    import videoformers.models.layers as layers

    model = _tiny(num_frames=16, img_size=224)
    x = torch.randn(1, 3, 16, 224, 224)
    with torch.no_grad():
        y = model(x)
    original = layers.pad_to_multiple

    def pad_extra(t, multiple):
        t = original(t, multiple)
        if tuple(multiple) not in ((1, 2, 2), (2, 4, 4)):  # LW-MSA windows, not the patch embedding/merging
            return F.pad(t, (0, 0, 0, 0, 0, multiple[1]))
        return t

    monkeypatch.setattr(layers, "pad_to_multiple", pad_extra)
    with torch.no_grad():
        y_pad = model(x)
    assert torch.allclose(y, y_pad, atol=1e-6, rtol=0)


def test_gp_pooling_pads_instead_of_dropping():
    torch.manual_seed(0)
    attn = GPAttention(8, 1, feat_size=(4, 14, 14), fine_pysize=(2, 7, 7), coarse_pysize=None).eval()
    assert attn.fine_kernel == (2, 2, 2)
    x = torch.randn(1, 5, 15, 14, 8)  # T and H do not tile the (2,2,2) kernel
    pri = attn.priors(x)
    assert pri.shape == (1, 3 * 8 * 7, 8)
    # the last prior along T and H sees the last real tokens: changing them changes the priors
    x2 = x.clone()
    x2[:, -1, -1] += 1.0
    assert not torch.allclose(attn.priors(x2), pri)


# ------------------------------------------------------------------------------------------ checkpoints
def test_convert_state_dict_is_noop_on_ours_and_drops_token_labelling_head():
    model = _tiny()
    sd = model.state_dict()
    conv = model.convert_state_dict(dict(sd))
    assert conv.keys() == sd.keys() and all(conv[k] is sd[k] for k in sd)
    fx = json.loads(next(p for p in FIXTURES if "shrunk_16x224" in p.stem).read_text())
    authors = seeded_state_dict(fx["manifest"], 0)
    authors["cls_head.token_linear.0.weight"] = torch.zeros(3, 3)
    assert vf.load_checkpoint(_uninitialised(fx), authors, strict=True).ok


def _authors_2d_state_dict(fx: dict) -> dict[str, torch.Tensor]:
    """What the authors' 2D ImageNet DualFormer checkpoint holds: their 3D keys with 2D kernels
    (the tensors their ``inflate_weights`` inflates), no MMAction2 prefixes, a 1000-class head."""
    sd = seeded_state_dict(fx["manifest"], 7)
    out = {}
    for k, v in sd.items():
        k = k[len("backbone."):] if k.startswith("backbone.") else k
        if k.startswith("cls_head."):
            continue
        if v.ndim == 5 and ("patch_embeds" in k or "pos_block" in k or "attn.sr." in k or "attn.lr.0." in k):
            v = v[:, :, 0].contiguous()
        if "attn.lr.3." in k:
            continue
        out[k] = v
    return out


def test_inflate_2d_imagenet_checkpoint():
    fx = json.loads(next(p for p in FIXTURES if "32x224" in p.stem).read_text())
    sd2d = _authors_2d_state_dict(fx)
    model = _uninitialised(fx)
    report = vf.load_checkpoint(model, sd2d, strict=False)
    assert report.mismatched == [] and report.unexpected == []
    assert set(report.missing) == {"head.weight", "head.bias"}
    msd = model.state_dict()
    # patch embedding: repeated over its 2 frames / 2; merging: 1 frame
    assert torch.allclose(msd["patch_embed.proj.weight"], sd2d["patch_embeds.0.proj.weight"].unsqueeze(2).repeat(1, 1, 2, 1, 1) / 2)
    assert torch.allclose(msd["stages.1.downsample.proj.weight"][:, :, 0], sd2d["patch_embeds.1.proj.weight"])
    # PEG 3x3 -> 3x3x3 / 3
    assert torch.allclose(msd["stages.2.peg.proj.weight"], sd2d["pos_block.2.proj.0.weight"].unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3)
    # fine pooling (2,8,8) at stage 1 from the 8x8 2D kernel, / 2
    w = msd["stages.0.blocks.1.attn.fine.weight"]
    assert w.shape[2:] == (2, 8, 8) and torch.allclose(w, sd2d["blocks.0.1.attn.sr.weight"].unsqueeze(2).repeat(1, 1, 2, 1, 1) / 2)
    # coarse second conv: an average over its (4,2,2) kernel, zero bias (the authors' 1/16)
    assert torch.allclose(msd["stages.0.blocks.1.attn.coarse.conv2.weight"], torch.full((32, 1, 4, 2, 2), 1 / 16))
    assert torch.count_nonzero(msd["stages.0.blocks.1.attn.coarse.conv2.bias"]) == 0
    assert torch.allclose(msd["stages.1.blocks.1.attn.coarse.conv2.weight"], torch.full((64, 1, 4, 1, 1), 0.25))


# ------------------------------------------------------------------------------------------ contract
def test_model_contract():
    model = _tiny()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 64)
    model.reset_classifier(7)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(2, 8, 64, 64, 3))
    with pytest.raises(TypeError):
        vf.create_model("dualformer_tiny", not_an_option=1)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    model = _tiny(num_frames=12, img_size=192)
    x = torch.randn(1, 3, 12, 192, 192)
    with torch.no_grad():
        ref = model(x)
        y = model.cuda()(x.cuda()).cpu()
    assert torch.allclose(y, ref, atol=1e-4)
