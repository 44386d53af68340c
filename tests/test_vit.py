"""Image ViT (the model UniFormerV2 arms): layouts (HF CLIP, OpenAI CLIP, timm/DeiT), pos-embed
interpolation, registered models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import videoformers as vf
from videoformers.models.vit import VisionTransformer, convert_vit_state_dict, resample_pos_embed

TINY = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, patch_size=8,
            image_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=48)


def _clip_vit(**kw) -> VisionTransformer:
    cfg = dict(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_classes=0, pre_norm=True,
               final_norm=True, patch_bias=False, act_layer="quick_gelu", norm_eps=1e-5)
    cfg.update(kw)
    return VisionTransformer(**cfg).eval()


@pytest.fixture(scope="module")
def hf_clip():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**TINY)).eval()
    with torch.no_grad():  # HF inits biases/LN at 0/1: randomise so that every mapping matters
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _openai_layout(hf_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF CLIPVisionModelWithProjection weights written in OpenAI CLIP's ``visual.*`` layout, plus a
    text tower that must be ignored (written here independently of the converter)."""
    sd = {k.removeprefix("vision_model."): v for k, v in hf_sd.items()}
    out = {
        "visual.conv1.weight": sd["embeddings.patch_embedding.weight"],
        "visual.class_embedding": sd["embeddings.class_embedding"],
        "visual.positional_embedding": sd["embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": sd["pre_layrnorm.weight"], "visual.ln_pre.bias": sd["pre_layrnorm.bias"],
        "visual.ln_post.weight": sd["post_layernorm.weight"], "visual.ln_post.bias": sd["post_layernorm.bias"],
        "visual.proj": sd["visual_projection.weight"].t().contiguous(),
        # text tower with colliding names: must not leak into the image model
        "transformer.resblocks.0.ln_1.weight": torch.zeros(512), "positional_embedding": torch.zeros(77, 512),
        "token_embedding.weight": torch.zeros(10, 512), "logit_scale": torch.tensor(1.0),
    }
    for i in range(TINY["num_hidden_layers"]):
        h, o = f"encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for leaf in ("weight", "bias"):
            out[o + "attn.in_proj_" + leaf] = torch.cat([sd[h + f"self_attn.{p}_proj.{leaf}"] for p in "qkv"])
            out[o + "attn.out_proj." + leaf] = sd[h + "self_attn.out_proj." + leaf]
            out[o + "ln_1." + leaf] = sd[h + "layer_norm1." + leaf]
            out[o + "ln_2." + leaf] = sd[h + "layer_norm2." + leaf]
            out[o + "mlp.c_fc." + leaf] = sd[h + "mlp.fc1." + leaf]
            out[o + "mlp.c_proj." + leaf] = sd[h + "mlp.fc2." + leaf]
    return out


def test_hf_clip_vision_model_outputs_match(hf_clip):
    """HF CLIPVisionModel (random weights) converted into our ViT gives the same image outputs."""
    ours = _clip_vit()
    sd = {k: v for k, v in hf_clip.state_dict().items() if not k.startswith("visual_projection")}
    vf.load_checkpoint(ours, sd, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = hf_clip.vision_model(pixel_values=x)
        ((grid, cls),) = ours.forward_intermediates(x, indices=1, output_fmt="NHWC", return_prefix_tokens=True,
                                                    intermediates_only=True)
        tokens = torch.cat([cls, grid.flatten(1, 2)], dim=1)  # after the last block, before ln_post
        pooled = ours(x)
    torch.testing.assert_close(tokens, ref.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(pooled, ref.pooler_output, atol=1e-5, rtol=0)


def test_hf_clip_projection_and_prefixes(hf_clip):
    """``vision_model.`` prefix + ``visual_projection`` (CLIPVisionModelWithProjection / CLIPModel)."""
    ours = _clip_vit(proj_dim=TINY["projection_dim"])
    sd = hf_clip.state_dict()
    assert any(k.startswith("vision_model.") for k in sd)
    vf.load_checkpoint(ours, sd, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf_clip(pixel_values=x).image_embeds, atol=1e-5, rtol=0)


def test_openai_clip_layout(hf_clip):
    """OpenAI ``visual.*`` keys (packed in_proj, ``proj`` as (D, E)) load and give HF's outputs."""
    openai = _openai_layout(hf_clip.state_dict())
    ours = _clip_vit(proj_dim=TINY["projection_dim"])
    report = vf.load_checkpoint(ours, openai, strict=True)
    assert report.ok
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf_clip(pixel_values=x).image_embeds, atol=1e-5, rtol=0)
    # Already stripped of "visual." (what the UniFormerV2 authors' extraction notebook saves).
    stripped = {k[len("visual."):]: v for k, v in openai.items() if k.startswith("visual.")}
    no_proj = _clip_vit()  # no proj_dim: CLIP's projection is dropped, not reported
    vf.load_checkpoint(no_proj, stripped, strict=True)


def test_timm_layout_is_identity_and_deit_wrapper(tmp_path):
    m = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=7).eval()
    sd = m.state_dict()
    assert convert_vit_state_dict(sd).keys() == sd.keys()
    path = tmp_path / "deit.pth"
    torch.save({"model": sd, "epoch": 3}, path)  # DeiT release files wrap the state dict in "model"
    m2 = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=7).eval()
    vf.load_checkpoint(m2, path, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m2(x), m(x))


def test_pos_embed_resample_on_load_and_at_runtime():
    src = VisionTransformer(img_size=48, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3).eval()
    dst = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3).eval()
    vf.load_checkpoint(dst, src.state_dict(), strict=True)  # 6x6 grid -> 4x4 grid
    grid = src.pos_embed[:, 1:].reshape(1, 6, 6, 32).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False, antialias=True)
    torch.testing.assert_close(dst.pos_embed[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, 16, 32))
    torch.testing.assert_close(dst.pos_embed[:, :1], src.pos_embed[:, :1])
    # Same grid: untouched; other input sizes (non-square too) run with an interpolated embedding.
    assert torch.equal(resample_pos_embed(src.pos_embed, (6, 6)), src.pos_embed)
    with torch.no_grad():
        assert dst(torch.randn(1, 3, 48, 64)).shape == (1, 3)
        torch.testing.assert_close(dst.pos_embed_for((6, 6)), resample_pos_embed(dst.pos_embed, (6, 6), (4, 4)))


def test_bad_input_raises():
    m = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=3)
    with pytest.raises(ValueError, match="B, C, H, W"):
        m(torch.randn(1, 3, 4, 32, 32))
    with pytest.raises(ValueError, match="multiples"):
        m(torch.randn(1, 3, 30, 32))


def test_inplace_quick_gelu():
    m = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=3,
                          act_layer="quick_gelu")
    # The in-place QuickGELU of inference equals the reference formula.
    m.eval()
    with torch.no_grad():
        h = torch.randn(5, 7)
        torch.testing.assert_close(m.blocks[0].mlp.act(h.clone()), h * torch.sigmoid(1.702 * h))


@pytest.mark.parametrize("name,params_m,gflops", [
    ("vit_base_patch16_224", 86.6, 17.6),
    ("vit_base_patch16_clip_224", 86.6, 17.6),  # with a 1000-way head (85.8M without)
    ("vit_large_patch14_clip_224", 304.3, 81.1),
])
def test_registered_image_models_on_meta(name, params_m, gflops):
    m = vf.build_on_meta(lambda: vf.create_model(name))
    card = vf.get_model_card(name)
    assert card.input_size == (3, 224, 224)
    assert abs(vf.count_params(m) / 1e6 - params_m) / params_m < 0.01
    assert abs(vf.count_flops(m, (1, *card.input_size)) - gflops) / gflops < 0.02
    if "clip" in name:
        assert card.mean == vf.registry.CLIP_MEAN
    else:
        assert card.mean == vf.registry.IMAGENET_MEAN
