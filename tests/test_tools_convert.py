"""``videoformers convert``: authors' layout -> safetensors with metadata -> identical model."""

import json
from pathlib import Path

import pytest
import torch

import videoformers as vf
from fixtures.seeded import seeded_state_dict, seeded_tensor
from videoformers.cli import main
from videoformers.tools.convert import (
    convert_checkpoint,
    load_converted,
    load_model,
    read_metadata,
    reorder_classes,
)

FIXTURE = Path(__file__).parent / "fixtures" / "uniformer" / "video_small.json"
TINY = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=64)


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory):
    """The UniFormer authors' state-dict layout (from the parity fixture's manifest), saved the way
    MMAction2 does (``state_dict`` wrapper, ``backbone.`` / ``cls_head.fc_cls.`` prefixes)."""
    if not FIXTURE.is_file():
        pytest.skip("UniFormer parity fixture missing")
    fx = json.loads(FIXTURE.read_text())
    sd = seeded_state_dict(fx["manifest"], fx["seed"])
    wrapped = {("cls_head.fc_cls." + k[len("head."):]) if k.startswith("head.") else "backbone." + k: v
               for k, v in sd.items()}
    path = tmp_path_factory.mktemp("convert") / "uniformer_s_authors.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": wrapped}, path)
    return path, fx


def test_round_trip_authors_layout(authors_checkpoint, tmp_path):
    src, fx = authors_checkpoint
    dst = tmp_path / "uniformer_s.safetensors"
    info = convert_checkpoint(src, dst, "uniformer_small", labels=[f"c{i}" for i in range(400)])
    assert info.model_name == "uniformer_small" and info.overrides["num_classes"] == 400
    x = seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"])
    direct = vf.create_model("uniformer_small", pretrained=str(src)).eval()
    converted = vf.create_model("uniformer_small", pretrained=str(dst)).eval()  # the registry's loader
    alone = load_converted(dst)                                                  # from the file alone
    with torch.no_grad():
        a, b = direct(x), converted(x)
    assert torch.equal(a, b)  # identical, not merely close
    ref = converted.state_dict()
    assert alone.state_dict().keys() == ref.keys()
    assert all(torch.equal(v, ref[k]) for k, v in alone.state_dict().items())
    torch.testing.assert_close(a, torch.tensor(fx["output"]), atol=3e-5, rtol=0)  # and still the authors' output
    # our layout: no authors' key survives
    from safetensors import safe_open

    with safe_open(str(dst), framework="pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
    assert keys == set(direct.state_dict())
    assert not any(k.startswith(("backbone.", "cls_head.")) or ".conv1." in k for k in keys)
    assert meta["model_name"] == "uniformer_small" and json.loads(meta["labels"])[3] == "c3"
    assert json.loads(meta["mean"]) == [0.45, 0.45, 0.45]
    assert alone.label_names[0] == "c0" and alone.data_std == (0.225, 0.225, 0.225)


def _tiny_checkpoint(tmp_path, num_classes=6):
    torch.manual_seed(0)
    model = vf.create_model("uniformer_small", num_classes=num_classes, **TINY).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 1.0)
        model.head.bias.normal_(0, 1.0)
    path = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_num_classes_from_checkpoint_and_overrides_in_metadata(tmp_path):
    model, src = _tiny_checkpoint(tmp_path, num_classes=6)
    dst = tmp_path / "tiny.safetensors"
    info = convert_checkpoint(src, dst, "uniformer_small", **TINY)  # num_classes not given: read from the head
    assert info.overrides["num_classes"] == 6
    meta = read_metadata(dst)
    assert meta.overrides == {**{k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}, "num_classes": 6}
    loaded = load_converted(dst)
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    # create_model honours the overrides the converted file records (it used to build the full-size model)
    again = vf.create_model("uniformer_small", pretrained=str(dst)).eval()
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_training_checkpoint_metadata(tmp_path):
    model, _ = _tiny_checkpoint(tmp_path, num_classes=3)
    engine_ckpt = {
        "model": model.state_dict(), "optimizer": {}, "model_name": "uniformer_small", "num_classes": 3,
        "classes": ["left", "right", "up"],
        "config": {"model": {"name": "uniformer_small", "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                                      for k, v in TINY.items() if k not in
                                                                      ("num_frames", "img_size")}},
                   "data": {"num_frames": 4, "img_size": 64, "sampling": "dense", "frame_interval": 3,
                            "test_scale": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
    }
    src = tmp_path / "checkpoint_best.pth"
    torch.save(engine_ckpt, src)
    dst = tmp_path / "from_training.safetensors"
    rc = main(["convert", str(src), str(dst)])  # the model name comes from the checkpoint
    assert rc == 0
    info = read_metadata(dst)
    assert info.model_name == "uniformer_small" and info.labels == ["left", "right", "up"]
    assert info.overrides["num_frames"] == 4 and info.overrides["img_size"] == 64
    assert info.preprocess["frame_interval"] == 3 and info.preprocess["short_side"] == 64
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.25, 0.25, 0.25)
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), load_converted(dst)(x))
    m2, info2 = load_model(src)  # the training checkpoint directly
    assert info2.kind == "training" and m2.label_names == ["left", "right", "up"]


def test_reorder_labels_permutes_the_head(tmp_path):
    model, src = _tiny_checkpoint(tmp_path, num_classes=4)
    old = ["b", "d", "a", "c"]
    new = ["a", "b", "c", "d"]
    dst = tmp_path / "reordered.safetensors"
    convert_checkpoint(src, dst, "uniformer_small", labels=old, reorder_labels=new, **TINY)
    reordered = load_converted(dst)
    assert reordered.label_names == new
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        a, b = model(x), reordered(x)
    for j, name in enumerate(new):
        torch.testing.assert_close(b[:, j], a[:, old.index(name)], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="different classes"):
        reorder_classes({"head.weight": torch.zeros(2, 3)}, ["a", "b"], ["a", "x"])


def test_half_precision_and_errors(tmp_path):
    model, src = _tiny_checkpoint(tmp_path)
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    convert_checkpoint(src, full, "uniformer_small", **TINY)
    convert_checkpoint(src, half, "uniformer_small", dtype="fp16", **TINY)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(load_converted(half)(x), model(x), atol=2e-2, rtol=2e-2)
    with pytest.raises(ValueError, match="safetensors"):
        convert_checkpoint(src, tmp_path / "out.pth", "uniformer_small", **TINY)
    with pytest.raises(ValueError, match="labels"):
        convert_checkpoint(src, tmp_path / "x.safetensors", "uniformer_small", labels=["a", "b"], **TINY)
    with pytest.raises(ValueError, match="model name"):
        load_model(src)  # a bare state dict does not say which model it is
