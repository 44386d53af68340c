"""Config loading: YAML recipes -> typed dataclasses, dotted overrides, errors naming the key."""

import pytest
import torch

from videoformers.analysis import build_on_meta
from videoformers.engine.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_to_dict,
    dump_config,
    list_recipes,
    load_config,
)
from videoformers.engine.optim import param_groups
from videoformers.engine.trainer import build_model
from videoformers.registry import list_models

EXPECTED_RECIPES = {
    "demo",
    "uniformer_s16_k400", "uniformer_b16_k400", "uniformer_s16_ssv2", "uniformer_xxs_k400",
    "uniformerv2_b16_k400", "uniformerv2_b16_k710", "uniformerv2_b16_k400_from_k710",
    "uniformerv2_l14_k400_frozen", "uniformerv2_b16_ssv2",
    "vivit_b_k400", "vivit_b_fe_ssv2", "vivit_b_fe_epic_kitchens",
    "dualformer_t_k400", "dualformer_s_k400", "dualformer_b_k400",
}


def test_recipes_are_listed_with_descriptions():
    recipes = list_recipes()
    assert EXPECTED_RECIPES <= set(recipes)
    assert not any(name.startswith("_") for name in recipes)  # shared bases are not recipes
    assert all(desc for desc in recipes.values())


def test_overrides_are_typed():
    cfg = load_config("demo", [
        "data.num_frames=4", "data.img_size=32", "optim.lr=1e-3", "train.epochs=2", "data.train_scale=[32,40]",
        "model.name=uniformer_base", "train.output_dir=/tmp/x", "data.root=001", "model.overrides.depth=[1,1,2,1]",
        "checkpoint=/tmp/ck.pth", "optim.clip_grad=null", "train.sync_bn=true", "data.mean=[0.5,0.5,0.5]",
    ])
    assert isinstance(cfg, Config)
    assert cfg.data.num_frames == 4 and cfg.data.img_size == 32
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.data.train_scale == (32, 40)
    assert cfg.data.root == "001"                      # string fields keep the raw text
    assert cfg.model.name == "uniformer_base"
    assert cfg.model.overrides["depth"] == [1, 1, 2, 1]
    assert cfg.model.overrides["embed_dim"] == [32, 64, 128, 256]  # merged with the recipe's overrides
    assert cfg.eval.checkpoint == "/tmp/ck.pth"
    assert cfg.optim.clip_grad is None and cfg.train.sync_bn is True
    assert cfg.data.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("override, key", [
    ("data.num_frame=8", "data.num_frame"),
    ("optimizer.lr=1", "optimizer.lr"),
    ("train.epochs=ten", "train.epochs"),
    ("data.num_frames=8.5", "data.num_frames"),
    ("train.sync_bn=maybe", "train.sync_bn"),
    ("data.train_scale=[1,2,3]", "data.train_scale"),
])
def test_bad_override_names_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config("demo", [override])
    assert key in str(e.value)


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_config("demo", ["data.num_frame=8"])
    msg = str(e.value)
    assert "num_frames" in msg and "img_size" in msg and "train_list" in msg
    with pytest.raises(ConfigError) as e:
        load_config({"train": {"epoch": 3}})
    assert "train.epoch" in str(e.value) and "epochs" in str(e.value)
    with pytest.raises(ConfigError, match="valid sections"):
        load_config({"training": {}})
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config({"optim": {"lr": "fast"}})


def test_yaml_file_with_base_and_roundtrip(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  epochs: 7\n  batch_size: 3\noptim:\n  lr: 1e-4\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain:\n  epochs: 9\n")
    cfg = load_config(str(tmp_path / "child.yaml"), ["train.batch_size=5"])
    assert (cfg.train.epochs, cfg.train.batch_size) == (9, 5)
    assert cfg.optim.lr == pytest.approx(1e-4)  # YAML 1.1 reads "1e-4" as a string; coerced to float
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_config(cfg))
    assert config_to_dict(load_config(str(dumped))) == config_to_dict(cfg)
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="no recipe named"):
        load_config("no_such_recipe")
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["lr"])


def test_recipe_numbers_follow_the_papers():
    u = load_config("uniformer_s16_k400")
    assert (u.optim.name, u.optim.lr, u.optim.lr_scale_ref, u.optim.warmup_epochs, u.train.epochs) == ("adamw", 1e-4, 32, 10, 110)
    assert u.model.drop_path_rate == 0.1 and u.train.sync_bn and u.train.mixup == 0.8 and u.train.cutmix == 1.0
    ss = load_config("uniformer_s16_ssv2")
    assert ss.optim.lr == 2e-4 and ss.data.hflip is False and ss.train.epochs == 50 and ss.model.drop_path_rate == 0.3
    v2 = load_config("uniformerv2_b16_k400")
    assert v2.train.mixup == v2.train.cutmix == v2.train.label_smoothing == 0.0 and v2.data.random_erasing == 0.0
    fr = load_config("uniformerv2_l14_k400_frozen")
    assert fr.optim.lr == 4e-4 and fr.optim.warmup_epochs == 0 and fr.model.overrides["frozen"] is True
    vv = load_config("vivit_b_k400")
    assert (vv.optim.name, vv.optim.momentum, vv.optim.lr_scale_ref, vv.optim.warmup_epochs, vv.optim.lr) == ("sgd", 0.9, 64, 2.5, 0.1)
    ek = load_config("vivit_b_fe_epic_kitchens")
    assert (ek.train.label_smoothing, ek.train.mixup, ek.model.drop_path_rate, ek.data.randaugment) == (0.2, 0.1, 0.2, (2, 15.0))
    for size, wd, dp in (("t", 0.02, 0.1), ("s", 0.02, 0.2), ("b", 0.05, 0.3)):
        d = load_config(f"dualformer_{size}_k400")
        assert (d.optim.lr, d.optim.head_lr_mult, d.optim.warmup_epochs, d.train.epochs) == (1e-4, 10.0, 2.5, 30)
        assert (d.optim.weight_decay, d.model.drop_path_rate) == (wd, dp)


@pytest.mark.parametrize("name", sorted(EXPECTED_RECIPES))
def test_recipe_builds_its_model(name):
    """Every recipe's model section is accepted by the registered builder (checked on the meta device)."""
    cfg = load_config(name, ["model.pretrained=null"])  # no download here: the release is checked below
    if cfg.model.name not in list_models():
        pytest.skip(f"{cfg.model.name} is not registered in this build")
    model = build_on_meta(lambda: build_model(cfg, cfg.model.num_classes or 6))
    groups = param_groups(model, cfg.optim)
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    assert any(g["weight_decay"] == 0 for g in groups)


def test_cli_lists_recipes_and_rejects_bad_keys(capsys):
    from videoformers.cli import main

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "uniformer_s16_k400" in out and "demo" in out
    assert main(["recipes", "vivit_b_k400"]) == 0
    assert "momentum: 0.9" in capsys.readouterr().out  # resolved: the base's optimiser is merged in
    assert main(["recipes", "vivit_b_k400", "--raw"]) == 0
    assert "Table 7" in capsys.readouterr().out
    assert main(["train", "demo", "data.num_frame=8"]) == 2
    err = capsys.readouterr().err
    assert "data.num_frame" in err and "num_frames" in err


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED_RECIPES if load_config(n).model.pretrained))
def test_recipe_starts_from_a_catalogued_release_that_fits(name):
    """A recipe's ``model.pretrained`` names a catalogued release (with its source); an image encoder goes
    to a model that can start from one, and any other release -- stood in for by the release's own
    architecture, untrained, as no file can be downloaded here -- loads into the recipe's model with
    everything but, at most, the classifier."""
    from videoformers.checkpoints.zoo import get_pretrained_cfg, list_pretrained, load_released
    from videoformers.registry import create_model

    cfg = load_config(name)
    assert cfg.model.pretrained in list_pretrained()
    entry = get_pretrained_cfg(cfg.model.pretrained)
    assert entry.source and entry.verified
    kw = {"num_classes": cfg.model.num_classes or 6, **(cfg.model.overrides or {})}
    if entry.init == "image":
        model = build_on_meta(lambda: create_model(cfg.model.name, **kw))
        assert hasattr(model, "load_image_pretrained") and entry.model.split("_")[0] == cfg.model.name.split("_")[0]
        image = build_on_meta(lambda: create_model(entry.model))  # same width and patch as the encoder
        assert image.num_features == model.num_features
        assert image.patch_embed.proj.weight.shape[-2:] == model.patch_embed.proj.weight.shape[-2:]
        return
    torch.manual_seed(0)
    src = create_model(entry.name).state_dict()
    model = create_model(cfg.model.name, **kw)
    report, how = load_released(model, entry, strict=True, source=src)
    heads = tuple(model.classifier_prefixes)
    assert not [k for k in report.missing + report.unexpected if not k.startswith(heads)]
    assert how in ("loaded", "head_dropped", "k710_mapped") and report.loaded > 0.9 * len(model.state_dict())
