"""Parity with HF transformers' ``VivitForVideoClassification`` (ViViT Model 1): random (seeded)
weights converted by ``ViViT.convert_state_dict``, logits equal to 1e-5."""

import pytest
import torch

import videoformers as vf
from fixtures.seeded import manifest_of, seeded_state_dict, seeded_tensor

transformers = pytest.importorskip("transformers")

SMALL = dict(num_frames=8, img_size=32, tubelet_size=(2, 8, 8), embed_dim=64, depth=2, num_heads=4, mlp_dim=128)


def _hf_model(num_labels=7, seed=0):
    cfg = transformers.VivitConfig(
        image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, num_labels=num_labels,
        hidden_act="gelu_fast", layer_norm_eps=1e-6,  # the authors' tanh GELU and Flax LN eps
    )
    cfg._attn_implementation = "eager"  # plain matmul/softmax reference, independent of SDPA
    hf = transformers.VivitForVideoClassification(cfg).eval()
    # HF zero-initialises cls/pos: regenerate every tensor so that all of them matter.
    sd = seeded_state_dict(manifest_of(hf.state_dict()), seed)
    hf.load_state_dict(sd)
    return hf, sd


def _to_v4_names(sd):
    """transformers 4.x (and Hub) names of the same tensors."""
    v5_to_v4 = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    out = {}
    for k, v in sd.items():
        k = k.replace("vivit.layers.", "vivit.encoder.layer.")
        for a, b in v5_to_v4.items():
            k = k.replace(f".{a}.", f".{b}.")
        out[k] = v
    return out


def test_parity_with_hf_vivit_for_video_classification():
    hf, sd = _hf_model()
    ours = vf.create_model("vivit_base_spatiotemporal", num_classes=7, **SMALL).eval()
    report = vf.load_checkpoint(ours, sd, strict=True)
    assert report.ok and report.loaded == len(ours.state_dict())
    x = seeded_tensor((2, 3, 8, 32, 32), 0, "input")  # ours: (B, C, T, H, W)
    with torch.no_grad():
        ref = hf(pixel_values=x.permute(0, 2, 1, 3, 4))  # HF: (B, T, C, H, W)
        feats = ours.forward_features(x)
        logits = ours(x)
        hidden = hf.vivit(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state
    assert logits.abs().max() > 0.1  # not a degenerate comparison
    assert (logits - ref.logits).abs().max().item() < 1e-5
    assert (feats - hidden).abs().max().item() < 1e-5


def test_hf_legacy_key_names_and_file_loading(tmp_path):
    hf, sd = _hf_model(seed=1)
    legacy = _to_v4_names(sd)
    assert any(".attention.attention.query." in k for k in legacy)
    a = vf.create_model("vivit_base_spatiotemporal", num_classes=7, **SMALL)
    b = vf.create_model("vivit_base_spatiotemporal", num_classes=7, **SMALL)
    vf.load_checkpoint(a, sd)
    path = tmp_path / "pytorch_model.bin"
    torch.save(legacy, path)
    vf.load_checkpoint(b, path)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    c = vf.create_model("vivit_base_spatiotemporal", pretrained=str(path), num_classes=7, **SMALL).eval()
    x = seeded_tensor((1, 3, 8, 32, 32), 1, "input")
    with torch.no_grad():
        assert (c(x) - hf(pixel_values=x.permute(0, 2, 1, 3, 4)).logits).abs().max().item() < 1e-5


def test_hf_vivit_model_backbone_loads_without_pooler():
    cfg = transformers.VivitConfig(image_size=32, num_frames=8, tubelet_size=[2, 8, 8], hidden_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                   hidden_act="gelu_fast", layer_norm_eps=1e-6)
    backbone = transformers.VivitModel(cfg)  # keys without 'vivit.', plus the tanh pooler
    sd = seeded_state_dict(manifest_of(backbone.state_dict()), 2)
    assert any(k.startswith("pooler.") for k in sd)
    ours = vf.create_model("vivit_base_spatiotemporal", num_classes=0, **SMALL)
    report = vf.load_checkpoint(ours, sd, strict=True)
    assert report.ok


def test_hf_checkpoint_into_wrong_variant_is_reported():
    _, sd = _hf_model(seed=3)
    m4 = vf.create_model("vivit_base_factorised_dot_product", num_classes=7, **SMALL)
    with pytest.raises(vf.CheckpointError, match="cls_token"):
        vf.load_checkpoint(m4, sd, strict=True)
