"""ViViT Models 1-4: registry, paper params/GFLOPs (meta device), embeddings, factorised attention
against masked full-attention references, multi-head output, gradient checkpointing, input checks."""

import pytest
import torch
import torch.nn.functional as F

import videoformers as vf
from fixtures.seeded import manifest_of, seeded_state_dict, seeded_tensor
from videoformers.models.vivit import (
    FactorisedDotProductAttention,
    FactorisedSelfAttentionBlock,
    FrameEmbed,
    TubeletEmbed,
    ViViT,
    uniform_frame_indices,
)

TYPES = ("spatiotemporal", "factorised_encoder", "factorised_self_attention", "factorised_dot_product")
TINY = dict(num_frames=8, img_size=32, tubelet_size=(2, 8, 8), embed_dim=32, depth=2, num_heads=4, mlp_dim=64,
            num_classes=5)


def tiny(model_type, **kw):
    extra = {"temporal_depth": 2} if model_type == "factorised_encoder" else {}
    return vf.create_model(f"vivit_base_{model_type}", **{**TINY, **extra, **kw}).eval()


def randomize(model, seed=0):
    model.load_state_dict(seeded_state_dict(manifest_of(model.state_dict()), seed))
    return model


def test_registry_names_and_cards():
    names = vf.list_models("vivit_*")
    expected = {f"vivit_{s}_{t}" for s in ("base", "large", "huge") for t in TYPES}
    assert set(names) == expected
    card = vf.get_model_card("vivit_base_factorised_encoder")
    assert card.input_size == (3, 32, 224, 224) and card.num_classes == 400 and card.family == "vivit"
    with pytest.raises(ValueError, match="temporal_depth=2 is an option of ViViT factorised_encoder only"):
        vf.create_model("vivit_base_spatiotemporal", temporal_depth=2)
    with pytest.raises(ValueError, match="attention_order"):
        vf.create_model("vivit_base_factorised_encoder", attention_order="time_space")


@pytest.mark.parametrize("size,dims", [("base", (768, 12, 12, 3072)), ("large", (1024, 24, 16, 4096)),
                                        ("huge", (1280, 32, 16, 5120))])
def test_sizes(size, dims):
    m = vf.build_on_meta(lambda: vf.create_model(f"vivit_{size}_spatiotemporal"))
    d, L, H, M = dims
    assert m.embed_dim == d and len(m.blocks) == L and m.blocks[0].attn.num_heads == H
    assert m.blocks[0].mlp.fc1.out_features == M and m.blocks[0].norm1.eps == 1e-6
    assert m.patch_embed.proj.kernel_size == (2, 16, 16) and m.grid == (16, 14, 14)


# Table 2 (ViViT-B/16x2, 32x224, 400 classes): measured 88.954 / 115.063 / 117.319 / 88.952 M params and
# 451.83 / 283.65 / 371.54 / 276.48 GFLOPs (multiply-adds with fvcore's norm costs), 0.2-0.8% below the paper.
@pytest.mark.parametrize("model_type", TYPES)
def test_params_and_flops_match_table2(model_type):
    name = f"vivit_base_{model_type}"
    card = vf.get_model_card(name)
    m = vf.build_on_meta(lambda: vf.create_model(name))
    params = vf.count_params(m) / 1e6
    gflops = vf.count_flops(m, (1, *card.input_size))
    assert abs(params - card.paper_params_m) / card.paper_params_m < 0.02  # the tolerance
    assert abs(params - card.paper_params_m) <= 0.06  # the paper rounds/truncates to 0.1 M
    assert abs(gflops - card.paper_gflops) / card.paper_gflops < 0.05  # the tolerance
    assert -0.01 < (gflops - card.paper_gflops) / card.paper_gflops < 0  # element-wise ops not counted


def test_flops_large_spatiotemporal_table5():
    card = vf.get_model_card("vivit_large_spatiotemporal")
    m = vf.build_on_meta(lambda: vf.create_model("vivit_large_spatiotemporal"))
    assert abs(vf.count_flops(m, (1, *card.input_size)) - 1446.0) / 1446.0 < 0.01


def test_model2_temporal_depth_is_param_difference():
    a = vf.build_on_meta(lambda: vf.create_model("vivit_base_factorised_encoder", temporal_depth=4))
    b = vf.build_on_meta(lambda: vf.create_model("vivit_base_factorised_encoder", temporal_depth=5))
    blk = 4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768  # attn + mlp + 2 LN
    assert vf.count_params(b) - vf.count_params(a) == blk
    assert a.temporal.pos_embed.shape == (1, 17, 768) and a.spatial.pos_embed.shape == (1, 197, 768)


def test_model2_average_pooling_baseline_table2():
    """Table 2, last row: Model 2 without temporal encoder (L_t = 0), 86.7 M params, 283.9 GFLOPs."""
    m = vf.build_on_meta(lambda: vf.create_model("vivit_base_factorised_encoder", temporal_depth=0))
    assert m.temporal is None
    assert abs(vf.count_params(m) / 1e6 - 86.7) <= 0.06
    assert -0.01 < vf.count_flops(m, (1, 3, 32, 224, 224)) / 283.9 - 1 < 0
    t = randomize(tiny("factorised_encoder", temporal_depth=0), 18)
    x = seeded_tensor((2, 3, 8, 32, 32), 19)
    with torch.no_grad():
        assert torch.allclose(t(x), t.head(t.forward_spatial(x).mean(1)), atol=1e-6)


@pytest.mark.parametrize("model_type", TYPES)
def test_forward_shapes_and_classifier(model_type):
    m = randomize(tiny(model_type))
    x = seeded_tensor((2, 3, 8, 32, 32), 1)
    with torch.no_grad():
        y = m(x)
        feats = m.forward_features(x)
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    n = 4 if model_type == "factorised_encoder" else 4 * 4 * 4  # Model 2 returns its n_t temporal tokens
    cls = model_type in ("spatiotemporal", "factorised_encoder")
    assert feats.shape == (2, n + cls, 32)
    assert torch.allclose(m.forward_head(feats), y)
    assert m.forward_head(feats, pre_logits=True).shape == (2, 32)


def test_classifier_options():
    assert tiny("spatiotemporal", classifier="gap").pos_embed.shape[1] == 4 * 4 * 4
    assert tiny("spatiotemporal").pos_embed.shape[1] == 4 * 4 * 4 + 1
    fe = tiny("factorised_encoder", classifier="gap")
    assert fe.spatial.cls_token is None and fe.temporal.cls_token is None
    for t in ("factorised_self_attention", "factorised_dot_product"):
        assert tiny(t).cls_token is None
        with pytest.raises(ValueError, match="no classification token"):
            ViViT(t, classifier="token", **{k: v for k, v in TINY.items()})
    with pytest.raises(ValueError, match="even number of heads"):
        ViViT("factorised_dot_product", **{**TINY, "num_heads": 1})


def test_gap_classifier_is_mean_of_tokens():
    m = randomize(tiny("spatiotemporal", classifier="gap"))
    x = seeded_tensor((1, 3, 8, 32, 32), 2)
    with torch.no_grad():
        f = m.forward_features(x)
        assert torch.allclose(m(x), m.head(f.mean(1)), atol=1e-6)


def test_tubelet_embedding_token_order():
    emb = TubeletEmbed(3, 16, (2, 4, 4))
    x = seeded_tensor((1, 3, 4, 8, 12), 3)
    tok = emb(x)  # (1, n_t=2, n_h*n_w=2*3, 16)
    assert tok.shape == (1, 2, 6, 16)
    w, b = emb.proj.weight, emb.proj.bias
    for it in range(2):
        for ih in range(2):
            for iw in range(3):
                patch = x[0, :, 2 * it:2 * it + 2, 4 * ih:4 * ih + 4, 4 * iw:4 * iw + 4]
                ref = (w * patch).flatten(1).sum(1) + b
                assert torch.allclose(tok[0, it, ih * 3 + iw], ref, atol=1e-5)


def test_uniform_frame_sampling():
    # scenic's sample_frames_uniformly: arange(T/(n+1), T, T/(n+1)) rounded
    assert uniform_frame_indices(32, 8).tolist() == [4, 7, 11, 14, 18, 21, 25, 28]
    assert uniform_frame_indices(8, 8).tolist() == list(range(8))
    assert uniform_frame_indices(16, 3).tolist() == [4, 8, 12]
    with pytest.raises(ValueError):
        uniform_frame_indices(4, 8)
    emb = FrameEmbed(3, 16, (4, 4), 3)
    x = seeded_tensor((2, 3, 16, 8, 8), 4)
    tok = emb(x)
    assert tok.shape == (2, 3, 4, 16)
    for i, f in enumerate([4, 8, 12]):
        ref = F.conv2d(x[:, :, f], emb.proj.weight[:, :, 0], emb.proj.bias, stride=4).flatten(2).transpose(1, 2)
        assert torch.allclose(tok[:, i], ref, atol=1e-6)


def test_frame_embedding_model():
    m = randomize(tiny("spatiotemporal", embedding="frame"))  # 8 frames, t=2 -> 4 sampled frames
    assert m.patch_embed.proj.weight.shape[2] == 1 and m.grid == (4, 4, 4)  # a 1 x p x p kernel per frame
    assert m(seeded_tensor((1, 3, 8, 32, 32), 5)).shape == (1, 5)
    m2 = tiny("factorised_encoder", embedding="frame", num_sampled_frames=3)
    assert m2.temporal.pos_embed.shape[1] == 4


def _masked_attention(attn, x, mask):
    """Reference MSA over all tokens with a (heads, N, N) boolean mask (True = may attend)."""
    B, N, C = x.shape
    H = attn.num_heads
    q, k, v = attn.qkv(x).view(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
    s = (q @ k.transpose(-1, -2)) * (C // H) ** -0.5
    s = s.masked_fill(~mask, float("-inf")).softmax(-1)
    return attn.proj((s @ v).transpose(1, 2).reshape(B, N, C))


def _masks(nt, hw):
    t = torch.arange(nt * hw) // hw
    s = torch.arange(nt * hw) % hw
    return t[:, None] == t[None], s[:, None] == s[None]  # same frame, same spatial location


def test_factorised_dot_product_attention_matches_masked_reference():
    nt, hw, C, H = 3, 5, 16, 4
    attn = FactorisedDotProductAttention(C, H, nt)
    torch.manual_seed(0)
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = seeded_tensor((2, nt * hw, C), 6)
    same_frame, same_loc = _masks(nt, hw)
    # first half of the heads over time (same spatial location), second half over space (same frame)
    mask = torch.stack([same_loc] * (H // 2) + [same_frame] * (H // 2))
    assert torch.allclose(attn(x), _masked_attention(attn, x, mask), atol=1e-5)


@pytest.mark.parametrize("order", ["space_time", "time_space"])
def test_factorised_self_attention_block_matches_masked_reference(order):
    nt, hw, C, H = 3, 5, 16, 4
    blk = FactorisedSelfAttentionBlock(C, H, 32, nt, order=order)
    randomize(blk, 7)
    x = seeded_tensor((2, nt * hw, C), 8)
    same_frame, same_loc = _masks(nt, hw)

    def space(y):  # Eq. 4
        return y + _masked_attention(blk.attn, blk.norm1(y), same_frame.expand(H, -1, -1))

    def time(y):  # Eq. 5
        return y + _masked_attention(blk.temporal_attn, blk.temporal_norm(y), same_loc.expand(H, -1, -1))

    y = time(space(x)) if order == "space_time" else space(time(x))
    ref = y + blk.mlp(blk.norm2(y))  # Eq. 6
    with torch.no_grad():
        assert torch.allclose(blk(x), ref, atol=1e-5)


def test_model4_equals_model1_with_masked_heads():
    """Model 4 shares Model 1's parameters; only the attention neighbourhood differs."""
    m4 = randomize(tiny("factorised_dot_product"), 9)
    m1 = tiny("spatiotemporal", classifier="gap")
    m1.load_state_dict(m4.state_dict())
    x = seeded_tensor((1, 3, 8, 32, 32), 10)
    with torch.no_grad():
        assert not torch.allclose(m1(x), m4(x), atol=1e-3)
        same_frame, same_loc = _masks(4, 16)
        mask = torch.stack([same_loc] * 2 + [same_frame] * 2)
        z = m1.patch_embed(x).flatten(1, 2) + m1.pos_embed
        for blk in m1.blocks:
            z = z + _masked_attention(blk.attn, blk.norm1(z), mask)
            z = z + blk.mlp(blk.norm2(z))
        assert torch.allclose(m4.head(m1.norm(z).mean(1)), m4(x), atol=1e-5)


def test_model2_spatial_encoder_is_per_frame():
    m = randomize(tiny("factorised_encoder"), 11)
    x = seeded_tensor((1, 3, 8, 32, 32), 12)
    x2 = x.clone()
    x2[:, :, 2:4] += 1.0  # changes tubelet slab 1 only
    with torch.no_grad():
        h, h2 = m.forward_spatial(x), m.forward_spatial(x2)
    changed = (h - h2).abs().amax(dim=(0, 2)) > 1e-6
    assert changed.tolist() == [False, True, False, False]
    # the spatial encoder is one set of weights applied to every frame
    with torch.no_grad():
        tok = m.patch_embed(x)
        assert torch.allclose(m.spatial(tok[:, 3]), h[:, 3], atol=1e-6)


def test_multi_head_outputs():
    spec = {"verb": 3, "noun": 6}
    m = randomize(tiny("factorised_encoder", num_classes=spec), 13)
    assert m.model_card.num_classes == (("verb", 3), ("noun", 6))
    x = seeded_tensor((2, 3, 8, 32, 32), 14)
    with torch.no_grad():
        out = m(x)
        pre = m.forward_head(m.forward_features(x), pre_logits=True)
    assert set(out) == {"verb", "noun"} and out["verb"].shape == (2, 3) and out["noun"].shape == (2, 6)
    # two heads on one backbone == one dense layer of 3 + 6 outputs split (the authors' form)
    w = torch.cat([m.head["verb"].weight, m.head["noun"].weight])
    b = torch.cat([m.head["verb"].bias, m.head["noun"].bias])
    joint = F.linear(pre, w, b)
    assert torch.allclose(torch.cat([out["verb"], out["noun"]], 1), joint, atol=1e-6)

    t = randomize(tiny("spatiotemporal", num_classes=(4, 2)), 15)
    out = t(x)
    assert isinstance(out, tuple) and [o.shape[1] for o in out] == [4, 2]
    t.reset_classifier({"a": 7})
    assert t(x)["a"].shape == (2, 7) and torch.count_nonzero(t.head["a"].weight) == 0
    t.reset_classifier(9)
    assert t(x).shape == (2, 9)
    t.reset_classifier(0)
    assert t(x).shape == (2, 32)


def test_input_validation():
    m = tiny("spatiotemporal")
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        m(torch.zeros(1, 8, 3, 32, 32))
    with pytest.raises(ValueError, match="channels-last"):
        m(torch.zeros(1, 8, 32, 32, 3))
    with pytest.raises(ValueError, match=r"\(B, 3, 8, 32, 32\)"):
        m(torch.zeros(1, 3, 16, 32, 32))
    with pytest.raises(ValueError, match="5-D"):
        m(torch.zeros(3, 32, 32))


def test_convert_state_dict_is_noop_on_ours_and_init():
    m = tiny("factorised_self_attention")
    sd = m.state_dict()
    out = m.convert_state_dict(sd)
    assert list(out) == list(sd) and all(out[k] is sd[k] for k in sd)
    # authors' init: zero classifier, zero CLS, N(0, 0.02) positional embedding
    m1 = vf.create_model("vivit_base_spatiotemporal", **TINY)
    assert torch.count_nonzero(m1.head.weight) == 0 and torch.count_nonzero(m1.cls_token) == 0
    assert 0.01 < m1.pos_embed.std().item() < 0.03
