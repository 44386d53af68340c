"""Registry, model cards, analysis tools, checkpoint reading/unwrapping/reporting, CLI."""

import json
import subprocess
import sys
import pytest
import torch
import torch.nn as nn

import videoformers as vf
from videoformers.checkpoints import CheckpointError, inflate_weight, save_checkpoint_atomic
from videoformers.registry import _entry, accepted_overrides, build_model

TINY = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 128), head_dim=16)


def test_list_models_pattern_and_cards():
    names = vf.list_models()
    assert names == sorted(names) and "uniformer_small" in names
    assert set(vf.list_models("uniformer_*_image")) >= {"uniformer_small_image", "uniformer_base_image"}
    for n in names:
        card = vf.get_model_card(n)
        assert card.name == n and card.paper and card.table
        assert len(card.mean) == 3 and len(card.std) == 3
    card = vf.get_model_card("uniformer_small")
    assert card.mean == (0.45, 0.45, 0.45) and card.std == (0.225, 0.225, 0.225)
    assert card.num_frames == 16 and card.img_size == 224


def test_create_model_card_follows_overrides():
    m = vf.create_model("uniformer_small", num_classes=3, num_frames=8, img_size=64, **TINY)
    assert m.model_card.num_classes == 3 and m.model_card.input_size == (3, 8, 64, 64)
    assert m.head.out_features == 3


def test_card_overrides_none_means_default():
    card = vf.get_model_card("uniformerv2_b16")
    assert card.with_overrides(num_classes=None, num_frames=None, img_size=None) == card
    assert card.with_overrides(num_classes=None, num_frames=4, img_size=(64, 96)).input_size == (3, 4, 64, 96)


def test_unknown_model_message():
    with pytest.raises(ValueError, match="unknown model 'uniformer_smal'"):
        vf.create_model("uniformer_smal")


def _toy_card(name: str) -> vf.ModelCard:
    return vf.ModelCard(name=name, family="test", paper="test", table="-", input_size=(3, 8, 8), num_classes=2,
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.fixture
def scratch_registry():
    """Lets a test register toy builders; they are removed afterwards."""
    from videoformers.registry import _REGISTRY

    vf.list_models()  # register the real models first
    before = set(_REGISTRY)
    yield
    for name in set(_REGISTRY) - before:
        del _REGISTRY[name]


class _Toy(nn.Module):
    def __init__(self, num_classes: int = 2, width: int = 4, depth: int = 1) -> None:
        super().__init__()
        self.fc = nn.Linear(width, num_classes)


def test_register_model_overrides_come_from_the_class(scratch_registry):
    @vf.register_model(_toy_card("test_toy"))
    def test_toy(scale: int = 1, **kwargs) -> _Toy:
        return build_model(_Toy, dict(width=4 * scale), kwargs)

    # The class's constructor arguments plus the builder's own keywords.
    assert accepted_overrides("test_toy") == {"num_classes", "width", "depth", "scale"}
    m = vf.create_model("test_toy", width=3, num_classes=5)
    assert (m.fc.in_features, m.fc.out_features, m.model_card.num_classes) == (3, 5, 5)
    assert vf.create_model("test_toy", scale=2).fc.in_features == 8
    with pytest.raises(TypeError, match=r"unknown override\(s\) \['widht'\]; valid ones are "
                                        r"\['depth', 'num_classes', 'scale', 'width'\]"):
        vf.create_model("test_toy", widht=3)
    with pytest.raises(TypeError, match=r"_Toy: unknown override\(s\) \['nope'\]"):
        build_model(_Toy, {}, {"nope": 1})


def test_register_model_needs_a_named_def_and_its_class(scratch_registry):
    with pytest.raises(ValueError, match="the def must carry the model's name"):
        @vf.register_model(_toy_card("test_toy_named"))
        def other(**kwargs) -> _Toy:
            return _Toy(**kwargs)
    with pytest.raises(TypeError, match="must annotate the model class"):
        @vf.register_model(_toy_card("test_toy_bare"))
        def test_toy_bare(**kwargs):
            return _Toy(**kwargs)
    assert not vf.list_models("test_toy_*")


def test_builders_accept_their_class_arguments():
    # The model modules use postponed annotations: the registry must resolve the return classes.
    assert {"preset", "num_classes", "num_frames", "global_layers", "in_chans"} <= _entry("uniformerv2_b16").accepts
    assert {"num_frames", "classifier", "temporal_depth", "attention_order"} <= _entry(
        "vivit_base_factorised_encoder").accepts
    assert {"proj_dim", "act_layer", "img_size"} <= _entry("vit_base_patch16_clip_224").accepts
    assert "recipe" not in _entry("uniformerv2_b16").accepts  # the YAML training configs own that word


def test_count_params_shared_and_exclude():
    lin = nn.Linear(4, 4)
    seq = nn.Sequential(lin, lin)
    assert vf.count_params(seq) == 20
    m = nn.Sequential()
    m.add_module("body", nn.Linear(4, 4))
    m.add_module("head", nn.Linear(4, 2))
    assert vf.count_params(m, exclude=("head.",)) == 20


def test_count_flops_linear_and_attention_exact():
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 16, bias=False)

        def forward(self, x):
            q = self.fc(x).view(1, 10, 2, 8).transpose(1, 2)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    # Linear: 10*8*16 MACs; attention: 2 heads * (10*10*8 [QK] + 10*10*8 [AV]).
    expected = 10 * 8 * 16 + 2 * 2 * 10 * 10 * 8
    for model in (Toy(), vf.build_on_meta(Toy)):
        assert vf.count_flops(model, (1, 10, 8), include_norms=False) * 1e9 == pytest.approx(expected)


def test_count_flops_leaves_model_untouched():
    m = vf.create_model("uniformer_small", **TINY)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    vf.count_flops(m, (1, 3, 4, 64, 64))
    assert m.training
    for k, v in m.state_dict().items():
        assert not v.is_meta and torch.equal(v, before[k])


def test_load_checkpoint_files(tmp_path):
    torch.manual_seed(0)
    src = vf.create_model("uniformer_small", num_classes=4, **TINY).eval()
    x = torch.randn(1, 3, 4, 64, 64)
    ref = src(x)
    # .pth with a DDP + PySlowFast wrapper
    p = tmp_path / "ckpt.pyth"
    torch.save({"epoch": 3, "model_state": {"module." + k: v for k, v in src.state_dict().items()}}, p)
    dst = vf.create_model("uniformer_small", num_classes=4, **TINY).eval()
    rep = vf.load_checkpoint(dst, p)
    assert rep.ok
    torch.testing.assert_close(dst(x), ref)
    # safetensors with metadata, atomically written
    s = tmp_path / "w.safetensors"
    save_checkpoint_atomic((src.state_dict(), {"model": "uniformer_small"}), s)
    assert not list(tmp_path.glob(".*tmp*"))
    dst2 = vf.create_model("uniformer_small", num_classes=4, pretrained=str(s), **TINY).eval()
    torch.testing.assert_close(dst2(x), ref)
    assert vf.load_checkpoint(dst2, s).metadata["model"] == "uniformer_small"


def test_strict_report_names_keys_and_shapes():
    src = vf.create_model("uniformer_small", num_classes=4, **TINY)
    sd = src.state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["norm.weight"]
    dst = vf.create_model("uniformer_small", num_classes=7, **TINY)
    with pytest.raises(CheckpointError) as e:
        vf.load_checkpoint(dst, sd)
    msg = str(e.value)
    assert "extra.weight" in msg and "norm.weight" in msg
    assert "head.weight: checkpoint (4, 128) vs model (7, 128)" in msg
    rep = vf.load_checkpoint(dst, sd, strict=False)
    assert rep.unexpected == ["extra.weight"] and rep.missing == ["norm.weight"]
    # Fine-tuning on a new class count: the head is left alone, the rest loads.
    del sd["extra.weight"]
    sd["norm.weight"] = torch.ones(128)
    rep = vf.load_checkpoint(dst, sd, drop_head_on_mismatch=True)
    assert rep.ok


def test_refuses_pickled_code_and_bad_files(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "obj": nn.Linear(1, 1)}, p)
    m = vf.create_model("uniformer_small", **TINY)
    with pytest.raises(CheckpointError, match="weights_only"):
        vf.load_checkpoint(m, p)
    with pytest.raises(CheckpointError, match="not found"):
        vf.load_checkpoint(m, tmp_path / "missing.pth")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="safetensors"):
        vf.load_checkpoint(m, bad)


def test_inflate_weight_modes():
    w = torch.randn(4, 2, 3, 3)
    avg = inflate_weight(w, 3, "average")
    assert avg.shape == (4, 2, 3, 3, 3)
    torch.testing.assert_close(avg.sum(2), w)
    cen = inflate_weight(w, 3, "center")
    torch.testing.assert_close(cen[:, :, 1], w)
    assert cen[:, :, 0].abs().sum() == 0 and cen[:, :, 2].abs().sum() == 0
    with pytest.raises(ValueError):
        inflate_weight(w, 3, "middle")


def test_cli_models_table():
    out = subprocess.run([sys.executable, "-m", "videoformers", "models", "uniformer_s*", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["uniformer_small"]["params_m"] == pytest.approx(21.4, rel=0.01)
    assert rows["uniformer_small"]["gflops"] == pytest.approx(41.8, rel=0.02)
    assert rows["uniformer_small"]["paper_gflops"] == 41.8


