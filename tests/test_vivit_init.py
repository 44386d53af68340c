"""Image-ViT checkpoint layouts and ViViT initialisation from an image ViT (Sec. 3.4).

The independent image ViT is HF ``ViTModel`` (small random config); its weights reach our model
through ``checkpoints/vit_layouts.py``.
"""

import numpy as np
import pytest
import torch

import videoformers as vf
from fixtures.seeded import manifest_of, seeded_state_dict, seeded_tensor
from videoformers.checkpoints.vit_layouts import convert_vit_state_dict, detect_vit_layout, load_image_vit
from videoformers.models.vivit import init_from_image_vit

transformers = pytest.importorskip("transformers")

D, HEADS, MLP, DEPTH, PATCH, IMG = 32, 4, 64, 2, 8, 32


@pytest.fixture(scope="module")
def hf_vit():
    cfg = transformers.ViTConfig(image_size=IMG, patch_size=PATCH, hidden_size=D, num_hidden_layers=DEPTH,
                                 num_attention_heads=HEADS, intermediate_size=MLP, num_labels=10)
    cfg._attn_implementation = "eager"
    vit = transformers.ViTForImageClassification(cfg).eval()  # exact GELU, LN eps 1e-12 (HF defaults)
    sd = seeded_state_dict(manifest_of(vit.state_dict()), 0)
    vit.load_state_dict(sd)
    return vit, sd


def vivit(model_type, frames=4, t=1, img=IMG, **kw):
    extra = {"temporal_depth": 1} if model_type == "factorised_encoder" else {}
    return vf.create_model(
        f"vivit_base_{model_type}", num_frames=frames, img_size=img, tubelet_size=(t, PATCH, PATCH), embed_dim=D,
        depth=DEPTH, num_heads=HEADS, mlp_dim=MLP, num_classes=3, gelu="exact", norm_eps=1e-12, **extra, **kw,
    ).eval()


def hf_layers(vit):
    base = vit.vit
    return base.layers if hasattr(base, "layers") else base.encoder.layer


def hf_blocks_per_frame(vit, frames):
    """Apply the image ViT's embedding (without CLS), blocks and final norm to each frame."""
    base = vit.vit
    x = base.embeddings.patch_embeddings(frames) + base.embeddings.position_embeddings[:, 1:]
    for layer in hf_layers(vit):
        out = layer(x)
        x = out[0] if isinstance(out, tuple) else out
    return base.layernorm(x)


def video(frames=4, seed=1):
    return seeded_tensor((2, 3, frames, IMG, IMG), seed)


# ---------------------------------------------------------------------------------------------
# layouts


def _canonical_to_npz(c, classic=True, prefix="", scanned=False):
    """Write a canonical ViT state dict in Google's Flax key layout (numpy arrays)."""
    ln1, mha, ln2, mlp = ("LayerNorm_0", "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3") if classic \
        else ("LayerNorm_0", "MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0")
    w = {
        "embedding/kernel": c["patch_embed.proj.weight"].permute(2, 3, 1, 0),
        "embedding/bias": c["patch_embed.proj.bias"],
        "cls": c["cls_token"],
        ("Transformer/posembed_input/pos_embedding" if classic else "pos_embedding"): c["pos_embed"],
        "Transformer/encoder_norm/scale": c["norm.weight"],
        "Transformer/encoder_norm/bias": c["norm.bias"],
        "head/kernel": c["head.weight"].t(),
        "head/bias": c["head.bias"],
    }
    blocks = []
    for i in range(DEPTH):
        p = f"blocks.{i}."
        q, k, v = c[p + "attn.qkv.weight"].chunk(3)
        qb, kb, vb = c[p + "attn.qkv.bias"].chunk(3)
        hd = D // HEADS
        b = {
            f"{ln1}/scale": c[p + "norm1.weight"], f"{ln1}/bias": c[p + "norm1.bias"],
            f"{ln2}/scale": c[p + "norm2.weight"], f"{ln2}/bias": c[p + "norm2.bias"],
            f"{mlp}/Dense_0/kernel": c[p + "mlp.fc1.weight"].t(), f"{mlp}/Dense_0/bias": c[p + "mlp.fc1.bias"],
            f"{mlp}/Dense_1/kernel": c[p + "mlp.fc2.weight"].t(), f"{mlp}/Dense_1/bias": c[p + "mlp.fc2.bias"],
            f"{mha}/out/kernel": c[p + "attn.proj.weight"].t().reshape(HEADS, hd, D),
            f"{mha}/out/bias": c[p + "attn.proj.bias"],
        }
        for n, wt, bt in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            b[f"{mha}/{n}/kernel"] = wt.t().reshape(D, HEADS, hd)
            b[f"{mha}/{n}/bias"] = bt.reshape(HEADS, hd)
        blocks.append(b)
    if scanned:
        for leaf in blocks[0]:
            w[f"Transformer/encoderblock/{leaf}"] = torch.stack([b[leaf] for b in blocks])
    else:
        for i, b in enumerate(blocks):
            w.update({f"Transformer/encoderblock_{i}/{leaf}": t for leaf, t in b.items()})
    return {prefix + k: v.detach().numpy().copy() for k, v in w.items()}


def test_layout_conversions_agree(hf_vit, tmp_path):
    _, sd = hf_vit
    assert detect_vit_layout(sd) == "hf"
    canon = convert_vit_state_dict(sd)
    assert canon["blocks.0.attn.qkv.weight"].shape == (3 * D, D)
    assert canon["patch_embed.proj.weight"].shape == (D, 3, PATCH, PATCH)
    assert canon["head.weight"].shape == (10, D) and canon["pos_embed"].shape == (1, 17, D)
    # q, k, v stacked in that order
    assert torch.equal(canon["blocks.1.attn.qkv.weight"][D:2 * D], sd["vit.layers.1.attention.k_proj.weight"]
                       if "vit.layers.1.attention.k_proj.weight" in sd
                       else sd["vit.encoder.layer.1.attention.attention.key.weight"])
    assert detect_vit_layout(canon) == "timm" and convert_vit_state_dict(canon).keys() == canon.keys()
    variants = {
        "classic": _canonical_to_npz(canon),
        "big_vision": _canonical_to_npz(canon, classic=False, prefix="params/"),
        "scanned": _canonical_to_npz(canon, classic=False, prefix="params/", scanned=True),
    }
    for name, npz in variants.items():
        back = convert_vit_state_dict({k: torch.from_numpy(v) for k, v in npz.items()})
        assert back.keys() == canon.keys(), name
        for k in canon:
            assert torch.allclose(back[k], canon[k]), (name, k)
    path = tmp_path / "ViT-test.npz"
    np.savez(path, **variants["classic"])
    from_file = load_image_vit(path)
    assert all(torch.allclose(from_file[k], canon[k]) for k in canon)


def test_layout_edge_cases(hf_vit):
    _, sd = hf_vit
    canon = convert_vit_state_dict(sd)
    # DeiT distilled: the distillation token, its pos row and head are dropped
    deit = dict(canon)
    deit["dist_token"] = torch.zeros(1, 1, D)
    deit["head_dist.weight"], deit["head_dist.bias"] = torch.zeros(10, D), torch.zeros(10)
    deit["pos_embed"] = torch.cat([canon["pos_embed"][:, :1], torch.full((1, 1, D), 7.0), canon["pos_embed"][:, 1:]], 1)
    out = convert_vit_state_dict(deit)
    assert torch.equal(out["pos_embed"], canon["pos_embed"]) and "dist_token" not in out
    # transformers 4.x names
    v4 = {}
    for k, v in sd.items():
        k = k.replace("vit.layers.", "vit.encoder.layer.")
        for a, b in (("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
                     ("attention.v_proj", "attention.attention.value"), ("attention.o_proj", "attention.output.dense"),
                     ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
            k = k.replace(f".{a}.", f".{b}.")
        v4[k] = v
    out = convert_vit_state_dict(v4)
    assert out.keys() == canon.keys() and all(torch.equal(out[k], canon[k]) for k in canon)
    # things a plain ViT cannot hold are refused by name with strict=True, kept for the loader's report otherwise
    odd = {**canon, "blocks.0.attn.q_norm.weight": torch.ones(D)}
    with pytest.raises(ValueError, match="q_norm"):
        convert_vit_state_dict(odd, strict=True)
    assert "blocks.0.attn.q_norm.weight" in convert_vit_state_dict(odd)
    # layer scale is canonical (our ViT and UniFormerV2 hold it), but ViViT's blocks have none: refused by name
    scaled = {**canon, "blocks.0.ls1.gamma": torch.ones(D)}
    assert "blocks.0.ls1.gamma" in convert_vit_state_dict(scaled, strict=True)
    with pytest.raises(ValueError, match="layer scale"):
        init_from_image_vit(vivit("spatiotemporal"), scaled)
    with pytest.raises(ValueError, match="layout"):
        detect_vit_layout({"foo.bar": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------
# initialisation properties (the "Must show")


def test_model1_central_frame_tokens_equal_image_patch_embeddings(hf_vit):
    vit, sd = hf_vit
    x = video()
    emb = vit.vit.embeddings
    for t in (1, 2):
        m = vivit("spatiotemporal", frames=4, t=t)
        init_from_image_vit(m, sd, tubelet_init="central")
        with torch.no_grad():
            tok = m.patch_embed(x)  # (B, n_t, hw, D)
            central = x[:, :, t // 2::t]  # the frame each tubelet is centred on
            for i in range(tok.shape[1]):
                ref = emb.patch_embeddings(central[:, :, i])
                assert torch.allclose(tok[:, i], ref, atol=1e-5), (t, i)
            # positional embedding repeated over time; CLS row kept
            pe = m.pos_embed
            assert torch.equal(pe[:, 0], emb.position_embeddings[:, 0])
            grid = pe[0, 1:].view(tok.shape[1], -1, D)
            assert all(torch.equal(g, emb.position_embeddings[0, 1:]) for g in grid)
            assert torch.equal(m.cls_token, emb.cls_token)


def test_model1_filter_inflation_is_frame_average(hf_vit):
    vit, sd = hf_vit
    m = vivit("spatiotemporal", frames=4, t=2)
    init_from_image_vit(m, sd, tubelet_init="average")  # Eq. 8
    x = video()
    with torch.no_grad():
        tok = m.patch_embed(x)
        mean = 0.5 * (x[:, :, 0::2] + x[:, :, 1::2])
        for i in range(2):
            assert torch.allclose(tok[:, i], vit.vit.embeddings.patch_embeddings(mean[:, :, i]), atol=1e-5)


@pytest.mark.parametrize("init", ["zero", "zero_proj"])
def test_model3_zero_temporal_attention_equals_per_frame_vit(hf_vit, init):
    vit, sd = hf_vit
    m = vivit("factorised_self_attention", frames=4, t=1)
    report = init_from_image_vit(m, sd, tubelet_init="central", temporal_attn_init=init)
    assert "head.weight" in report.missing and "head.weight" in report.unexpected
    x = video()
    with torch.no_grad():
        ours = m.forward_features(x).view(2, 4, -1, D)  # (B, n_t, hw, D)
        for f in range(4):
            ref = hf_blocks_per_frame(vit, x[:, :, f])
            assert torch.allclose(ours[:, f], ref, atol=1e-5), f


def test_model3_copy_spatial_and_trainability(hf_vit):
    vit, sd = hf_vit
    m = vivit("factorised_self_attention", frames=4, t=1)
    init_from_image_vit(m, sd, temporal_attn_init="copy_spatial")
    b = m.blocks[1]
    assert torch.equal(b.temporal_attn.qkv.weight, b.attn.qkv.weight)
    assert torch.equal(b.temporal_attn.proj.bias, b.attn.proj.bias)
    x = video()
    with torch.no_grad():
        assert not torch.allclose(m.forward_features(x).view(2, 4, -1, D)[:, 0], hf_blocks_per_frame(vit, x[:, :, 0]),
                                  atol=1e-3)
    # all-zero temporal MSA (the paper's wording) receives no gradient except its output bias;
    # zeroing only the output projection keeps the residual-at-init property and stays trainable
    grads = {}
    for init in ("zero", "zero_proj"):
        m = vivit("factorised_self_attention", frames=4, t=1).train()
        init_from_image_vit(m, sd, temporal_attn_init=init)
        m.head.weight.data.normal_()
        m(x).square().sum().backward()
        ta = m.blocks[0].temporal_attn
        grads[init] = (ta.qkv.weight.grad.abs().max().item(), ta.proj.weight.grad.abs().max().item(),
                       ta.proj.bias.grad.abs().max().item())
    assert grads["zero"][0] == 0 and grads["zero"][1] == 0 and grads["zero"][2] > 0
    assert grads["zero_proj"][1] > 0


@pytest.mark.parametrize("t", [1, 2])
def test_model2_spatial_encoder_equals_image_vit_per_frame(hf_vit, t):
    vit, sd = hf_vit
    m = vivit("factorised_encoder", frames=4, t=t)
    report = init_from_image_vit(m, sd, tubelet_init="central")
    assert any(k.startswith("temporal.") for k in report.missing)  # the temporal encoder stays at init
    assert torch.equal(m.spatial.pos_embed, vit.vit.embeddings.position_embeddings)  # not repeated
    x = video()
    with torch.no_grad():
        h = m.forward_spatial(x)  # (B, n_t, D)
        central = x[:, :, t // 2::t]
        for i in range(h.shape[1]):
            ref = vit.vit(pixel_values=central[:, :, i]).last_hidden_state[:, 0]
            assert torch.allclose(h[:, i], ref, atol=1e-5), i


def test_model4_and_frame_embedding_init(hf_vit):
    vit, sd = hf_vit
    m = vivit("factorised_dot_product", frames=4, t=2)
    init_from_image_vit(m, sd)
    assert m.pos_embed.shape == (1, 2 * 16, D)  # no CLS row
    assert torch.equal(m.pos_embed[0, 16:], vit.vit.embeddings.position_embeddings[0, 1:])
    assert torch.equal(m.blocks[1].attn.qkv.weight, convert_vit_state_dict(sd)["blocks.1.attn.qkv.weight"])
    f = vivit("spatiotemporal", frames=8, t=2, embedding="frame")  # 4 uniformly sampled frames
    init_from_image_vit(f, sd)
    x = video(frames=8)
    with torch.no_grad():
        tok = f.patch_embed(x)
        for i, fr in enumerate([2, 3, 5, 6]):  # round((i+1) * 8/5)
            assert torch.allclose(tok[:, i], vit.vit.embeddings.patch_embeddings(x[:, :, fr]), atol=1e-5)


def test_resolution_change_interpolates_spatially(hf_vit):
    _, sd = hf_vit
    m = vivit("spatiotemporal", frames=2, t=1, img=48)  # 6x6 grid from the 4x4 ViT grid
    init_from_image_vit(m, sd)
    src = convert_vit_state_dict(sd)["pos_embed"][0, 1:].view(4, 4, D)
    grid = m.pos_embed[0, 1:].view(2, 6, 6, D)
    assert torch.equal(grid[0], grid[1])
    for (a, b), (c, d) in (((0, 0), (0, 0)), ((0, 5), (0, 3)), ((5, 0), (3, 0)), ((5, 5), (3, 3))):
        assert torch.allclose(grid[0, a, b], src[c, d], atol=1e-6)  # corner to corner (authors' 'resize')
    assert torch.allclose(grid[0, 0, 1], src[0, 0] + 0.6 * (src[0, 1] - src[0, 0]), atol=1e-5)  # 1 * 3/5
    m2 = vivit("spatiotemporal", frames=2, t=1, img=48)
    init_from_image_vit(m2, sd, pos_interpolation="bicubic")
    assert not torch.allclose(m2.pos_embed, m.pos_embed)


def test_npz_file_init_matches_hf_init(hf_vit, tmp_path):
    _, sd = hf_vit
    canon = convert_vit_state_dict(sd)
    path = tmp_path / "imagenet21k_ViT-test.npz"
    np.savez(path, **_canonical_to_npz(canon))
    a, b = vivit("factorised_encoder", t=2), vivit("factorised_encoder", t=2)
    init_from_image_vit(a, sd)
    init_from_image_vit(b, str(path))
    sb = b.state_dict()
    for k, v in a.state_dict().items():
        if not k.startswith(("temporal.", "head.")):
            assert torch.allclose(v, sb[k], atol=1e-6), k


def test_gap_vit_without_cls_and_mismatches(hf_vit):
    _, sd = hf_vit
    canon = convert_vit_state_dict(sd)
    gap_vit = {k: v for k, v in canon.items() if k != "cls_token"}
    gap_vit["pos_embed"] = canon["pos_embed"][:, 1:]
    m = vivit("spatiotemporal", frames=2, t=1)
    cls_before = m.pos_embed[:, :1].clone()
    init_from_image_vit(m, gap_vit)
    assert torch.equal(m.pos_embed[:, :1], cls_before)  # no CLS row in the ViT: keep ours
    assert torch.equal(m.pos_embed[0, 1:17], gap_vit["pos_embed"][0])
    wide = vf.create_model("vivit_base_spatiotemporal", num_frames=2, img_size=IMG, tubelet_size=(1, PATCH, PATCH),
                           embed_dim=2 * D, depth=DEPTH, num_heads=HEADS, mlp_dim=MLP, num_classes=3)
    with pytest.raises(ValueError, match="does not fit"):
        init_from_image_vit(wide, sd)
    deep = vf.create_model("vivit_base_spatiotemporal", num_frames=2, img_size=IMG, tubelet_size=(1, PATCH, PATCH),
                           embed_dim=D, depth=DEPTH + 1, num_heads=HEADS, mlp_dim=MLP, num_classes=3)
    with pytest.raises(ValueError, match="blocks"):
        init_from_image_vit(deep, sd)
    with pytest.raises(ValueError, match="temporal_attn_init"):
        init_from_image_vit(m, sd, temporal_attn_init="random")
