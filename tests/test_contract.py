"""One model contract for every registered model (as timm's tests/test_models.py): parametrised over
``list_models()``, tiny configurations for what runs, the full-size models on the meta device.

What each test would catch: a family whose ``forward`` is not ``forward_head(forward_features)``, whose
embedding is not ``num_features`` wide, whose intermediates disagree with ``feature_info``, whose
``features_only`` wrapper or pruning breaks, whose gradient checkpointing changes the numbers, whose
new classifier lands on the wrong device/dtype, whose bad-input check lets a wrong layout through,
or whose params/GFLOPs drift from the model card and from the counts before the refactor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import videoformers as vf
from videoformers.analysis import build_on_meta

ALL = vf.list_models(task="classification")  # dense-task models: tests/test_segmentation.py, test_pose.py
FIXTURE = Path(__file__).parent / "fixtures" / "model_counts.json"


def tiny(name: str) -> tuple[dict, tuple[int, ...]]:
    """Tiny overrides and an input shape that exercise the model's structure (all stages, token
    shrinking, pooling priors, windows) in well under a second."""
    fam = vf.get_model_card(name).family
    video = vf.get_model_card(name).is_video
    if fam == "uniformer":
        light = name in ("uniformer_xxs", "uniformer_xs", "uniformer_xxs_image", "uniformer_xs_image")
        kw = dict(depth=(1, 1, 2, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_classes=5)
        if video:
            kw["num_frames"] = 4
        return kw, ((2, 3, 4, 64, 64) if video else (2, 3, 64, 64)) if light or True else None
    if fam == "uniformerv2":
        kw = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_frames=4, num_classes=5)
        if "ssv2" not in name:
            kw["global_layers"] = 2
        return kw, (2, 3, 4, 32, 32)
    if fam == "vit":
        return dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5), (2, 3, 32, 32)
    if fam == "vivit":
        kw = dict(num_frames=4, img_size=32, tubelet_size=(2, 8, 8), embed_dim=32, depth=2, num_heads=2, mlp_dim=64,
                  num_classes=5)
        if "factorised_encoder" in name:
            kw["temporal_depth"] = 1
        return kw, (2, 3, 4, 32, 32)
    if fam == "dualformer":
        return dict(num_frames=4, img_size=64, embed_dim=16, depth=(2, 2, 2, 2), num_heads=1, num_classes=5,
                    head_drop_rate=0.0), (2, 3, 4, 64, 64)
    raise AssertionError(f"no tiny configuration for family {fam} ({name})")


def build(name: str, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    kw, shape = tiny(name)
    torch.manual_seed(seed)
    model = vf.create_model(name, **kw).eval()
    with torch.no_grad():  # untrained zero-initialised parts (ViViT's head, UniFormerV2's U) would hide bugs
        for p in model.parameters():
            if p.dim() and not p.abs().sum():
                p.normal_(0, 0.02)
    return model, torch.randn(*shape)


@pytest.mark.parametrize("name", ALL)
def test_forward_is_head_of_features_and_pre_logits_width(name):
    model, x = build(name)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        assert torch.equal(model.forward_head(feats), out)
        emb = model.forward_head(feats, pre_logits=True)
    assert out.shape == (x.shape[0], 5)
    assert emb.shape == (x.shape[0], model.num_features)


@pytest.mark.parametrize("name", ALL)
def test_intermediates_match_feature_info(name):
    model, x = build(name)
    info = model.feature_info
    assert len(info) >= 1 and all({"num_chs", "reduction", "temporal_reduction", "module"} <= set(f) for f in info)
    modules = dict(model.named_modules())
    video = x.dim() == 5
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        only = model.forward_intermediates(x, indices=[-1], intermediates_only=True)
        last = model.forward_intermediates(x, indices=1, output_fmt="NTHWC" if video else "NHWC",
                                           intermediates_only=True)
        assert torch.equal(model.forward_head(final), model(x))
        final_n, inter_n = model.forward_intermediates(x, norm=True)
        torch.testing.assert_close(model.forward_head(final_n), model(x), rtol=0, atol=1e-6)
        assert [f.shape for f in inter_n] == [f.shape for f in inter]
    assert len(inter) == len(info)
    for f, spec in zip(inter, info):
        assert spec["module"] in modules
        assert f.shape[:2] == (x.shape[0], spec["num_chs"])
        exp = [-(-s // spec["reduction"]) for s in x.shape[-2:]]
        assert list(f.shape[-2:]) == exp, (spec, f.shape)
        if video:
            assert f.shape[2] == -(-x.shape[2] // spec["temporal_reduction"]), (spec, f.shape)
    torch.testing.assert_close(only[0], inter[-1], rtol=0, atol=0)
    torch.testing.assert_close(last[0].movedim(-1, 1), inter[-1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[len(info)])


@pytest.mark.parametrize("name", ALL)
def test_intermediates_stay_in_the_graph(name):
    # Grad-CAM takes d(logit)/d(intermediate): the returned maps must be what the trunk continues from.
    model, x = build(name)
    final, inter = model.forward_intermediates(x.requires_grad_(True), indices=[-2, -1] if len(model.feature_info) > 1
                                               else [-1])
    score = model.forward_head(final)[:, 0].sum()
    grads = torch.autograd.grad(score, inter, allow_unused=True)
    assert all(g is not None for g in grads)
    # (with a class-token head the last block's patch tokens get no gradient: only the earlier map must)
    assert grads[0].abs().sum() > 0
    # the last map with the final norm applied (Grad-CAM's "output" position) is in the graph too
    final, (last,) = model.forward_intermediates(x, indices=[-1], norm=True)
    assert torch.autograd.grad(model.forward_head(final)[:, 0].sum(), last, allow_unused=True)[0] is not None


@pytest.mark.parametrize("name", ALL)
def test_features_only(name):
    kw, shape = tiny(name)
    ref, x = build(name)
    n = len(ref.feature_info)
    idx = (0, n - 1) if n > 1 else (0,)
    torch.manual_seed(0)
    fm = vf.create_model(name, features_only=True, out_indices=idx, **kw).eval()
    # image UniFormers become the authors' dense backbone (to_dense_backbone): a LayerNorm normK per returned map
    dense = getattr(fm.model, "dense", False)
    norms = sorted(k for k in fm.model.state_dict() if k.split(".")[0] in {f"norm{i + 1}" for i in idx}) if dense else []
    res = fm.model.load_state_dict({k: v for k, v in ref.state_dict().items() if k in fm.model.state_dict()},
                                   strict=not dense)
    assert not dense or sorted(res.missing_keys) == norms
    with torch.no_grad():
        feats = fm(x)
        expected = ref.forward_intermediates(x, indices=idx, intermediates_only=True)
        if dense:
            lns = [getattr(fm.model, f"norm{i + 1}") for i in idx]
            expected = [torch.nn.functional.layer_norm(e.movedim(1, -1), e.shape[1:2], n.weight, n.bias, n.eps).movedim(-1, 1)
                        for e, n in zip(expected, lns)]
    assert isinstance(feats, list) and len(feats) == len(idx) == len(fm.feature_info)
    assert fm.feature_info.channels() == [f.shape[1] for f in feats]
    for a, b in zip(feats, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    pruned = vf.create_model(name, features_only=True, out_indices=(0,), **kw)
    assert vf.count_params(pruned) < vf.count_params(ref)  # what lies after stage/block 0 is gone


@pytest.mark.parametrize("name", ALL)
def test_grad_checkpointing_same_outputs_and_grads(name):
    model, x = build(name)
    model.train()
    for m in model.modules():  # dropout / drop path off: the two passes must see the same function
        if isinstance(m, torch.nn.Dropout) or type(m).__name__ == "DropPath":
            m.p = 0.0
        if hasattr(m, "drop_path_rate"):
            m.drop_path_rate = 0.0

    def run():
        model.zero_grad()
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.square().sum().backward()
        return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    model.set_grad_checkpointing(False)
    y0, g0 = run()
    model.set_grad_checkpointing(True)
    assert sum(model.grad_checkpointing) == sum(model._stage_depths()) > 0
    y1, g1 = run()
    torch.testing.assert_close(y1, y0, rtol=0, atol=1e-6)
    assert g0.keys() == g1.keys()
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6, msg=k)
    model.set_grad_checkpointing(1)
    assert sum(model.grad_checkpointing) == 1


@pytest.mark.parametrize("name", ALL)
def test_reset_classifier_keeps_device_and_dtype(name):
    model, x = build(name)
    model = model.to(torch.float64)
    model.reset_classifier(7)
    heads = [p for n, p in model.named_parameters() if n.startswith("head")]
    assert heads and all(p.dtype == torch.float64 and p.device == x.device for p in heads)
    with torch.no_grad():
        assert model(x.double()).shape == (x.shape[0], 7)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x.double()).shape == (x.shape[0], model.num_features)


@pytest.mark.parametrize("name", ALL)
def test_bad_input_raises_clear_error(name):
    model, x = build(name)
    layout = "(B, C, T, H, W)" if x.dim() == 5 else "(B, C, H, W)"
    with pytest.raises(ValueError, match="channels"):
        model(x.movedim(1, -1).contiguous())  # channels-last by mistake
    with pytest.raises(ValueError, match=r"expected a \d-D input"):
        model(x[0])
    with pytest.raises(ValueError, match="float"):
        model((x * 100).to(torch.uint8))
    assert layout


def _counts() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_full_size_params_flops_and_keys_unchanged(name):
    """Full size on the meta device: params and GFLOPs equal the counts measured before the contract
    refactor (``tests/fixtures/model_counts.json``) and lie within 5% of the paper's (model card);
    state-dict keys and shapes are unchanged (UniFormer's layer-scale ``gamma_i`` became ``ls_i.gamma``,
    which ``convert_state_dict`` maps)."""
    ref = _counts()[name]
    card = vf.get_model_card(name)
    model = build_on_meta(lambda: vf.create_model(name))
    assert vf.count_params(model) == ref["params"]
    assert vf.count_flops(model, (1,) + tuple(card.input_size)) == pytest.approx(ref["flops"], rel=1e-9)
    shapes = sorted((k, list(v.shape)) for k, v in model.state_dict().items())
    assert len(shapes) == ref["num_keys"]
    assert hashlib.sha256(json.dumps(shapes).encode()).hexdigest() == ref["keys_sha256"]
    if card.paper_params_m:
        if "1000-class head" in card.notes:  # the light video models: Table 12 counted an ImageNet head
            model = build_on_meta(lambda: vf.create_model(name, num_classes=1000))
        n = vf.count_params(model, exclude=("head.",) if card.params_exclude_head else ())
        assert abs(n / 1e6 - card.paper_params_m) / card.paper_params_m < 0.05
    if card.paper_gflops:
        assert abs(ref["flops"] - card.paper_gflops) / card.paper_gflops < 0.05


def test_registry_builders_are_greppable_defs():
    src = "".join(p.read_text() for p in (Path(vf.__file__).parent / "models").glob("*.py"))
    for name in ALL:
        assert f"def {name}(" in src, name


def test_unknown_override_names_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown override\(s\) \['widht'\]; valid ones are \[.*'embed_dim'"):
        vf.create_model("uniformer_small", widht=3)
    with pytest.raises(TypeError, match="out_indices needs features_only"):
        vf.create_model("uniformer_small", out_indices=(0,))


def test_old_layer_scale_keys_resume_through_the_models_layout():
    # Training checkpoints written before UniFormer's layer scale became ls_i.gamma (gamma_i then).
    from videoformers.checkpoints.loading import in_model_layout

    kw = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_classes=2)
    m = vf.create_model("uniformer_base_ls_image", **kw)
    old = {k.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2"): v.clone() + 1
           for k, v in m.state_dict().items()}
    assert any("gamma_1" in k for k in old)
    m.load_state_dict(in_model_layout(m, old))
    assert torch.equal(m.blocks3[0].ls1.gamma, old["blocks3.0.gamma_1"])
