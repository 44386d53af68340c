"""UniFormerV2: sizes against the authors' models, arming an image ViT (HF CLIP), zero-init
behaviour, fusion strategies, recipes, checkpoints layouts, frozen backbone, checkpointing."""

from __future__ import annotations

import pytest
import torch

import videoformers as vf
from videoformers.models.uniformerv2 import PRESETS, UniFormerV2, preset_config
from videoformers.models.vit import VisionTransformer

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=5)


def _frame_tokens(m, x: torch.Tensor) -> torch.Tensor:
    """Tokens after the last backbone block, ``(B, T', 1 + HW, C)`` (through the model contract)."""
    ((grid, cls),) = m.forward_intermediates(x, indices=1, output_fmt="NTHWC", return_prefix_tokens=True,
                                             intermediates_only=True)
    return torch.cat([cls[:, :, None], grid.flatten(2, 3)], dim=2)


def _vit_tokens(vit, x: torch.Tensor) -> torch.Tensor:
    """An image ViT's tokens after its last block, before the final norm (HF's ``last_hidden_state``)."""
    ((grid, cls),) = vit.forward_intermediates(x, indices=1, output_fmt="NHWC", return_prefix_tokens=True,
                                               intermediates_only=True)
    return torch.cat([cls, grid.flatten(1, 2)], dim=1)


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (the zero inits would hide most of the video path)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                bound = (3.0 / p[0].numel()) ** 0.5
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
            else:
                p.copy_(torch.rand(p.shape, generator=g) * 0.2 - 0.1 + (1.0 if name.endswith("norm.weight") else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.rand(b.shape, generator=g) * 0.2 - 0.1)
    return model


# --------------------------------------------------------------------------- sizes (meta device)
@pytest.mark.parametrize("name,shape,params,gflops", [
    ("uniformerv2_b16", (1, 3, 8, 224, 224), 114_552_208, 148.1),
    ("uniformerv2_l14", (1, 3, 8, 224, 224), 354_099_600, 665.6),
    ("uniformerv2_l14_336", (1, 3, 32, 336, 336), 354_427_280, 6268.0),
    ("uniformerv2_b16_ssv2", (1, 3, 16, 224, 224), 162_992_814, 187.2),
    ("uniformerv2_l14_ssv2", (1, 3, 16, 224, 224), 573_949_966, 858.2),
])
def test_params_and_gflops_match_the_authors_models(name, shape, params, gflops):
    """Parameter counts equal the authors' models exactly; GFLOPs (multiply-adds, per view) within 1%."""
    m = vf.build_on_meta(lambda: vf.create_model(name))
    assert vf.count_params(m) == params
    measured = vf.count_flops(m, shape)
    assert abs(measured - gflops) / gflops < 0.01, measured
    card = vf.get_model_card(name)
    assert abs(card.paper_params_m - params / 1e6) / card.paper_params_m < 0.02
    assert card.mean == vf.registry.KINETICS_MEAN


def test_presets_and_registry_defaults():
    b = vf.build_on_meta(lambda: vf.create_model("uniformerv2_b16"))
    assert b.global_layers == (8, 9, 10, 11) and b.local_mhra == "none" and b.patch_embed.patch_size[0] == 1
    assert b.num_classes == 400 and b.model_card.num_frames == 8
    s = vf.build_on_meta(lambda: vf.create_model("uniformerv2_b16", preset="ssv2"))
    assert s.global_layers == tuple(range(4, 12)) and s.local_mhra == "double"
    assert s.patch_embed.patch_size[0] == 3 and s.patch_embed.stride[0] == 2
    assert s.blocks[-1].drop_path_rate == pytest.approx(0.2) and s.global_blocks[-1].drop_path_rate == pytest.approx(0.4)
    lssv2 = vf.build_on_meta(lambda: vf.create_model("uniformerv2_l14_ssv2"))
    assert lssv2.global_layers == tuple(range(8, 24))
    # explicit knobs win over the preset
    m = vf.build_on_meta(lambda: vf.create_model("uniformerv2_b16", preset="ssv2", local_mhra="single",
                                                 global_layers=[3, 7, 11], temporal_downsample=False))
    assert m.local_mhra == "single" and m.global_layers == (3, 7, 11) and m.patch_embed.patch_size[0] == 1
    assert m.blocks[0].lmhra2 is None and m.blocks[0].lmhra1 is not None
    assert preset_config("kinetics", 24)["global_layers"] == 4 and set(PRESETS) == {"kinetics", "ssv2"}
    with pytest.raises(ValueError, match="preset"):
        vf.create_model("uniformerv2_b16", preset="imagenet")
    with pytest.raises(TypeError):
        vf.create_model("uniformerv2_b16", no_such_knob=1)


# --------------------------------------------------------------------------- arming an image ViT
@pytest.fixture(scope="module")
def hf_vit() -> VisionTransformer:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPVisionConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=4,
                                        num_attention_heads=4, patch_size=8, image_size=32,
                                        hidden_act="quick_gelu", layer_norm_eps=1e-5)
    torch.manual_seed(0)
    hf = transformers.CLIPVisionModel(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=0,
                            pre_norm=True, final_norm=True, patch_bias=False, act_layer="quick_gelu",
                            norm_eps=1e-5).eval()
    vf.load_checkpoint(vit, hf.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # the conversion itself is exact
        torch.testing.assert_close(_vit_tokens(vit, x), hf(pixel_values=x).last_hidden_state, atol=1e-5, rtol=0)
    return vit


@pytest.mark.parametrize("local_mhra,t_down", [("none", False), ("double", False), ("single", True), ("double", True)])
def test_armed_hf_clip_keeps_every_frames_class_token(hf_vit, local_mhra, t_down):
    """Armed with zero-initialised temporal modules, UniFormerV2's per-frame class tokens equal the
    image ViT's class token of that frame (with temporal downsampling: of the sampled frames 0, 2, ...)."""
    video = UniFormerV2.from_vit(hf_vit, local_mhra=local_mhra, temporal_downsample=t_down, global_layers=2,
                                 num_classes=7).eval()
    x = torch.randn(2, 3, 6, 32, 32)
    with torch.no_grad():
        frames = _frame_tokens(video, x)  # (B, T', 1 + HW, C)
        kept = range(0, 6, 2) if t_down else range(6)
        image = torch.stack([_vit_tokens(hf_vit, x[:, :, t]) for t in kept], dim=1)
        assert frames.shape == image.shape
        torch.testing.assert_close(frames[:, :, 0], image[:, :, 0], atol=1e-5, rtol=0)
        # the video token starts at 0, so Z = (F_C + 0) / 2 and the logits follow from it alone
        z = video.forward_fusion(video.forward_features(x))
        torch.testing.assert_close(z, 0.5 * image[:, :, 0].mean(1), atol=1e-5, rtol=0)


def test_arming_a_timm_deit_vit():
    """Other ViT flavours arm the same way: GELU, eps 1e-6, patch bias, no pre-norm, layer scale."""
    torch.manual_seed(0)
    vit = _randomise(VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2,
                                       num_classes=10, init_values=0.1)).eval()
    video = UniFormerV2.from_vit(vit, local_mhra="double", global_layers=2, num_classes=4).eval()
    assert isinstance(video.norm_pre, torch.nn.Identity) and video.patch_embed.proj.bias is not None
    x = torch.randn(1, 3, 3, 32, 32)
    with torch.no_grad():
        frames = _frame_tokens(video, x)[:, :, 0]
        image = torch.stack([_vit_tokens(vit, x[:, :, t])[:, 0] for t in range(3)], dim=1)
    torch.testing.assert_close(frames, image, atol=1e-5, rtol=0)


def test_load_openai_clip_image_checkpoint_into_video_model(tmp_path):
    """A CLIP image checkpoint (OpenAI layout with ln_post/proj) initialises the video model; its
    2-D patch kernel is inflated on the central frame."""
    from test_vit import _openai_layout  # noqa: PLC0415 (reuse the independent key writer)

    transformers = pytest.importorskip("transformers")
    hf = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, patch_size=8,
        image_size=32, hidden_act="quick_gelu", projection_dim=48))
    openai = _openai_layout(hf.state_dict())
    path = tmp_path / "clip_visual.pth"
    torch.save(openai, path)
    video = UniFormerV2(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_classes=5,
                        temporal_downsample=True, local_mhra="double", global_layers=2)
    report = video.load_image_pretrained(path)
    assert not report.unexpected and not report.mismatched
    assert all(".lmhra" in k or not k.startswith("blocks.") for k in report.missing)
    w = video.patch_embed.proj.weight
    torch.testing.assert_close(w[:, :, 1], openai["visual.conv1.weight"])
    assert w[:, :, 0].abs().sum() == 0 and w[:, :, 2].abs().sum() == 0
    with pytest.raises(vf.CheckpointError):  # an image checkpoint that does not fit is refused
        UniFormerV2(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4).load_image_pretrained(path)


# --------------------------------------------------------------------------- modules
def test_zero_init_video_path_and_alpha():
    m = UniFormerV2(**TINY, local_mhra="double", temporal_downsample=True, global_layers=2).eval()
    assert torch.all(m.query == 0) and torch.all(m.alpha == 0)
    for blk in m.blocks:
        assert torch.all(blk.lmhra1.u.weight == 0) and torch.all(blk.lmhra2.u.bias == 0)
    for g in m.global_blocks:
        assert torch.all(g.attn.proj.weight == 0) and torch.all(g.mlp.fc2.weight == 0) and torch.all(g.dpe.bias == 0)
        assert g.dpe.weight.abs().sum() > 0  # the DPE weight keeps its default init (the authors')
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        state = {"q": m.query.repeat(2, 1, 1)}
        ctx = m.forward_features(x)
        for j in range(len(m.global_blocks)):
            m._global_step(j, ctx[:, j], state)
        assert torch.all(state["q"] == 0)


def test_alpha_fusion_formula():
    """Z = sigmoid(a) * F + (1 - sigmoid(a)) * F_C with a per channel (Sec. 3.3)."""
    m = _randomise(UniFormerV2(**TINY, global_layers=2)).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        m.alpha.fill_(30.0)  # alpha -> 1: the video token F alone
        z1 = m.forward_fusion(m.forward_features(x))
        m.alpha.fill_(-30.0)  # alpha -> 0: the mean class token F_C
        z0 = m.forward_fusion(m.forward_features(x))
        fc = _frame_tokens(m, x)[:, :, 0].mean(1)
        torch.testing.assert_close(z0, fc, atol=1e-5, rtol=0)
        a = torch.linspace(-2, 2, 64)
        m.alpha.copy_(a)
        s = torch.sigmoid(a)
        torch.testing.assert_close(m.forward_fusion(m.forward_features(x)), s * z1 + (1 - s) * fc, atol=1e-5, rtol=0)


def test_local_temporal_mhra_matches_conv3d_reference():
    """LT-MHRA as Linear / shifted multiply-adds equals BN3d -> 1x1x1 -> 3x1x1 depth-wise -> 1x1x1."""
    from videoformers.models.uniformerv2 import LocalTemporalMHRA

    torch.manual_seed(0)
    mod = _randomise(LocalTemporalMHRA(48, 1.5)).eval()
    B, T, N, C = 2, 5, 6, 48
    x = torch.randn(B * T, N, C)
    ref = x.view(B, T, 2, 3, C).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)
    bn = torch.nn.functional.batch_norm(ref, mod.norm.running_mean, mod.norm.running_var, mod.norm.weight,
                                        mod.norm.bias, False, 0.0, mod.norm.eps)
    h = torch.nn.functional.conv3d(bn, mod.v.weight[:, :, None, None, None], mod.v.bias)
    h = mod.affinity(h)
    h = torch.nn.functional.conv3d(h, mod.u.weight[:, :, None, None, None], mod.u.bias)
    expected = h.permute(0, 2, 3, 4, 1).reshape(B * T, N, C)
    with torch.no_grad():
        torch.testing.assert_close(mod(x, T), expected, atol=1e-5, rtol=1e-5)
    mod.train()  # batch statistics over the patch tokens of all frames (as BatchNorm3d)
    torch.testing.assert_close(mod(x, T)[0], mod(x, T)[0])
    assert mod.norm.num_batches_tracked == 2


@pytest.mark.parametrize("fusion", ["sequential", "parallel", "hierarchical_kv", "hierarchical_q"])
def test_fusion_strategies_run_train_and_differ(fusion):
    torch.manual_seed(0)
    m = UniFormerV2(**TINY, global_layers=[1, 2, 3], fusion=fusion, local_mhra="single")
    n_query = 1 if fusion == "sequential" else 3
    assert m.query.shape == (1, n_query, 64)
    x = torch.randn(2, 3, 4, 32, 32)
    m(x).sum().backward()  # at init the zero inits block most gradients, but the head and the outputs learn
    assert m.global_blocks[0].attn.proj.weight.grad is not None
    _randomise(m)
    m.zero_grad()
    m(x).sum().backward()
    for g in m.global_blocks:  # every stage reaches the loss
        assert g.attn.q.weight.grad.abs().sum() > 0 and g.dpe.weight.grad.abs().sum() > 0
    m.eval()
    with torch.no_grad():
        out = m(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_fusion_semantics():
    """Hierarchical KV / Q feed the previous stage's token into the next stage; parallel starts as
    the mean of the stage tokens."""
    x = torch.randn(1, 3, 4, 32, 32)
    base = _randomise(UniFormerV2(**TINY, global_layers=[2, 3], fusion="parallel")).eval()
    with torch.no_grad():
        state: dict = {}
        ctx = base.forward_features(x)
        for j in range(len(base.global_blocks)):
            base._global_step(j, ctx[:, j], state)
        fresh = UniFormerV2(**TINY, global_layers=[2, 3], fusion="parallel").fusion_proj
        mean = (state["outs"][0] + state["outs"][1])[:, 0] / 2
        torch.testing.assert_close(fresh(torch.cat([o[:, 0] for o in state["outs"]], -1)), mean)
    for fusion in ("hierarchical_kv", "hierarchical_q"):
        m = _randomise(UniFormerV2(**TINY, global_layers=[2, 3], fusion=fusion)).eval()
        with torch.no_grad():
            a = m.forward_fusion(m.forward_features(x))
            m.query[:, 0].add_(torch.randn(64))  # changes only stage 1's output (not a constant: LN removes those)...
            b = m.forward_fusion(m.forward_features(x))
        assert (a - b).abs().max() > 1e-4  # ...which reaches the final token through stage 2


def test_factorized_global_attention_is_the_same_function():
    a = _randomise(UniFormerV2(**TINY, global_layers=[1, 3], fusion="hierarchical_q")).eval()
    b = UniFormerV2(**TINY, global_layers=[1, 3], fusion="hierarchical_q", global_attn="factorized").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), atol=1e-5, rtol=1e-5)
    fa = vf.count_flops(a, (1, 3, 4, 32, 32))
    fb = vf.count_flops(b, (1, 3, 4, 32, 32))
    assert fb < fa


def test_temporal_downsampling_frames_and_odd_lengths():
    m = _randomise(UniFormerV2(**TINY, temporal_downsample=True, local_mhra="double", global_layers=2)).eval()
    for T, expected in [(16, 8), (5, 3), (1, 1)]:
        with torch.no_grad():
            assert _frame_tokens(m, torch.randn(1, 3, T, 32, 32)).shape[1] == expected
            assert m(torch.randn(1, 3, T, 32, 32)).shape == (1, 5)


def test_other_resolutions_and_bad_input():
    m = _randomise(UniFormerV2(**TINY, global_layers=2)).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 4, 48, 40)).shape == (1, 5)  # pos-embed interpolated, non-square grid
    with pytest.raises(ValueError, match="B, C, T, H, W"):
        m(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiples"):
        m(torch.randn(1, 3, 4, 30, 32))
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(1, 4, 32, 32, 3))


def test_frozen_backbone():
    m = UniFormerV2(**TINY, global_layers=2, local_mhra="single", frozen=True)
    assert m.alpha is None
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("patch_embed", "cls_token", "pos_embed", "norm_pre")) for n in trainable)
    assert "blocks.0.attn.qkv.weight" not in trainable and "blocks.0.lmhra1.v.weight" in trainable
    assert {"query", "global_blocks.0.attn.q.weight", "head.weight", "fc_norm.weight"} <= trainable
    _randomise(m)
    m(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert m.blocks[0].attn.qkv.weight.grad is None and m.blocks[0].lmhra1.v.weight.grad is not None
    # Without local modules the frozen backbone runs without a graph; the new modules still learn.
    k = _randomise(UniFormerV2(**TINY, global_layers=2, frozen=True))
    k(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert k.global_blocks[0].attn.q.weight.grad.abs().sum() > 0


def test_drop_path_is_per_video_in_training():
    m = UniFormerV2(**TINY, global_layers=2, drop_path_rate=0.5).train()
    blk = m.blocks[-1]
    tok = torch.randn(2 * 4, 17, 64)
    torch.manual_seed(3)
    out = blk(tok, 4) - tok
    per_frame_dropped = (out.view(2, 4, -1).abs().sum(-1) == 0)
    # a drop removes a residual branch for all 4 frames of a video, never for some of them
    assert per_frame_dropped.all(1).eq(per_frame_dropped.any(1)).all()


# --------------------------------------------------------------------------- checkpoint layouts
def _official_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict in the authors' PySlowFast key layout (written independently of the converter)."""
    out = {}
    for k, v in sd.items():
        o = k
        if k == "cls_token":
            o, v = "class_embedding", v.reshape(-1)
        elif k == "pos_embed":
            o, v = "positional_embedding", v[0]
        elif k == "patch_embed.proj.weight":
            o = "conv1.weight"
        elif k.startswith("norm_pre."):
            o = "ln_pre." + k.split(".")[-1]
        elif k == "query":
            o = "transformer.temporal_cls_token"
        elif k == "alpha":
            o, v = "transformer.balance", -v
        elif k.startswith("fc_norm."):
            o = "transformer.proj.0." + k.split(".")[-1]
        elif k.startswith("head."):
            o = "transformer.proj.2." + k.split(".")[-1]
        elif k.startswith("blocks."):
            _, i, rest = k.split(".", 2)
            for a, b in (("norm1.", "ln_1."), ("norm2.", "ln_2."), ("attn.qkv.weight", "attn.in_proj_weight"),
                         ("attn.qkv.bias", "attn.in_proj_bias"), ("attn.proj.", "attn.out_proj."),
                         ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")):
                if rest.startswith(a):
                    rest = b + rest[len(a):]
            for n, idx in (("norm", 0), ("v", 1), ("affinity", 2), ("u", 3)):
                for which in ("lmhra1", "lmhra2"):
                    if rest.startswith(f"{which}.{n}."):
                        rest = f"{which}.pos_embed.{idx}." + rest.split(".")[-1]
                        if n in ("v", "u") and rest.endswith("weight"):
                            v = v[:, :, None, None, None]
            o = f"transformer.resblocks.{i}.{rest}"
        elif k.startswith("global_blocks."):
            _, j, rest = k.split(".", 2)
            if rest.startswith("dpe."):
                o = f"transformer.dpe.{j}.{rest[4:]}"
            else:
                for a, b in (("norm_q.", "ln_1."), ("norm_kv.", "ln_3."), ("norm2.", "ln_2."),
                             ("attn.proj.", "attn.out_proj."), ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")):
                    if rest.startswith(a):
                        rest = b + rest[len(a):]
                o = f"transformer.dec.{j}.{rest}"
        out[o] = v
    for j in {k.split(".")[1] for k in sd if k.startswith("global_blocks.")}:
        for leaf in ("weight", "bias"):
            q = out.pop(f"transformer.dec.{j}.attn.q.{leaf}")
            kv = out.pop(f"transformer.dec.{j}.attn.kv.{leaf}")
            out[f"transformer.dec.{j}.attn.in_proj_{leaf}"] = torch.cat([q, kv])
    return {"backbone." + k: v for k, v in out.items()}


@pytest.mark.parametrize("layout", ["pyth", "model_state", "mmaction2", "ours"])
def test_checkpoint_layouts_load(layout, tmp_path):
    src = _randomise(UniFormerV2(**TINY, global_layers=[1, 3], local_mhra="double", temporal_downsample=True)).eval()
    official = _official_layout(src.state_dict())
    if layout == "pyth":
        obj = official
    elif layout == "model_state":  # what PySlowFast's save_checkpoint writes (issue #32)
        obj = {"epoch": 3, "model_state": official, "optimizer_state": {}, "cfg": "..."}
    elif layout == "mmaction2":
        obj = {"state_dict": {k.replace("backbone.transformer.proj.0", "backbone.transformer.norm")
                              .replace("backbone.transformer.proj.2", "cls_head.fc_cls"): v for k, v in official.items()},
               "meta": {}}
    else:
        obj = src.state_dict()
    path = tmp_path / "ckpt.pyth"
    torch.save(obj, path)
    dst = UniFormerV2(**TINY, global_layers=[1, 3], local_mhra="double", temporal_downsample=True).eval()
    report = vf.load_checkpoint(dst, path, strict=True)
    assert report.ok
    x = torch.randn(2, 3, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x))


def test_sequential_checkpoint_into_other_fusion_and_frozen():
    src = _randomise(UniFormerV2(**TINY, global_layers=[2, 3])).eval()
    par = UniFormerV2(**TINY, global_layers=[2, 3], fusion="hierarchical_kv")
    vf.load_checkpoint(par, src.state_dict(), strict=True)  # one query -> one per stage
    torch.testing.assert_close(par.query[:, 1], src.query[:, 0])
    frozen = UniFormerV2(**TINY, global_layers=[2, 3], frozen=True)
    vf.load_checkpoint(frozen, src.state_dict(), strict=True)  # alpha is dropped, not reported


@pytest.mark.gpu
def test_cuda_bf16_flash_attention_matches_fp32():
    """On a GPU: bf16 autocast with the flash SDPA kernel forced gives the fp32 logits (to bf16 accuracy)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    m = _randomise(UniFormerV2(img_size=64, patch_size=16, embed_dim=128, depth=4, num_heads=2, num_classes=5,
                               global_layers=2, local_mhra="double", temporal_downsample=True)).cuda().eval()
    x = torch.randn(2, 3, 8, 64, 64, device="cuda")
    with torch.no_grad():
        ref = m(x)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.autocast("cuda", dtype=torch.bfloat16):
            out = m(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)
