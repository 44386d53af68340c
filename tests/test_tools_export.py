"""ONNX export of a tiny configuration of every family: dynamic batch, parity with onnxruntime (1e-4)."""

import json

import pytest
import torch

import videoformers as vf
from videoformers.cli import main
from videoformers.tools.convert import load_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from videoformers.tools.export import check_onnx, export_onnx  # noqa: E402

# (registered name, tiny overrides): every family and model type.
TINY = {
    "uniformer_small": dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=64),
    "uniformer_small_image": dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, img_size=64),
    "uniformer_xxs": dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=64),
    "uniformerv2_b16": dict(depth=2, embed_dim=32, num_heads=2, num_frames=4, img_size=32, global_layers=1),
    "uniformerv2_b16_ssv2": dict(depth=2, embed_dim=32, num_heads=2, num_frames=4, img_size=32, global_layers=1),
    "vivit_base_spatiotemporal": dict(depth=2, embed_dim=32, num_heads=2, mlp_dim=64, num_frames=4, img_size=32),
    "vivit_base_factorised_encoder": dict(depth=2, embed_dim=32, num_heads=2, mlp_dim=64, temporal_depth=1,
                                          num_frames=4, img_size=32),
    "vivit_base_factorised_self_attention": dict(depth=2, embed_dim=32, num_heads=2, mlp_dim=64, num_frames=4,
                                                 img_size=32),
    "vivit_base_factorised_dot_product": dict(depth=2, embed_dim=32, num_heads=2, mlp_dim=64, num_frames=4,
                                              img_size=32),
    "dualformer_tiny": dict(depth=(1, 1, 1, 1), embed_dim=16, num_heads=1, num_frames=8, img_size=64),
}


def tiny_model(name: str, num_classes: int = 5, seed: int = 0) -> torch.nn.Module:
    """A tiny model with random (not zero-initialised) weights, so every branch shows in the output."""
    model = vf.create_model(name, num_classes=num_classes, **TINY[name]).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.2 if p.ndim > 1 else 0.05))
    return model


@pytest.mark.parametrize("name", sorted(TINY))
def test_onnx_parity_dynamic_batch(name, tmp_path):
    model = tiny_model(name)
    path = tmp_path / f"{name}.onnx"
    res = export_onnx(model, path, batch=2)
    assert res.checked_batches == [1, 3]  # not the traced batch size
    assert res.max_abs_err is not None and res.max_abs_err <= 1e-4
    proto = onnx.load(str(path))
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch" and not dim0.HasField("dim_value")
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["model_name"] == name and json.loads(props["mean"]) == list(model.model_card.mean)


def test_parity_check_catches_a_wrong_graph(tmp_path):
    """The check is not vacuous: a graph exported from other weights fails it."""
    a, b = tiny_model("uniformer_small", seed=0), tiny_model("uniformer_small", seed=1)
    path = tmp_path / "a.onnx"
    export_onnx(a, path, check=False)
    assert check_onnx(a, str(path), (2, 3, 4, 64, 64)) < 1e-4
    assert check_onnx(b, str(path), (2, 3, 4, 64, 64)) > 1e-2


@pytest.mark.parametrize("name", sorted(TINY))
def test_load_model_every_family(name, tmp_path):
    """load_model (meta-device build, strict load, classifier size from the checkpoint) reproduces the model."""
    model = tiny_model(name)
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict()}, ckpt)  # a wrapper, as training scripts write
    loaded, info = load_model(ckpt, name, **TINY[name])
    assert info.overrides["num_classes"] == 5
    x = torch.randn(1, *model.model_card.input_size)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_cli_export_from_checkpoint(tmp_path):
    name = "uniformer_xxs"
    model = tiny_model(name)
    ckpt = tmp_path / "ckpt.pth"
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "m.onnx"
    args = ["export", name, "--checkpoint", str(ckpt), "--onnx", str(out), "--num-frames", "4", "--img-size", "64",
            "--override", "depth=[1,1,1,1]", "--override", "embed_dim=[16,32,64,64]", "--override", "head_dim=16"]
    assert main(args) == 0
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(4, 3, 4, 64, 64)
    with torch.no_grad():
        ref = model(x)
    got = torch.from_numpy(sess.run(None, {"video": x.numpy()})[0])
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)


def test_export_restores_the_model(tmp_path):
    model = tiny_model("uniformerv2_b16")
    frozen = [n for n, p in model.named_parameters()][:3]
    for n, p in model.named_parameters():
        if n in frozen:
            p.requires_grad_(False)
    export_onnx(model, tmp_path / "v2.onnx")
    assert "embed" not in vars(model)  # the export-time method swap is undone
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == frozen
