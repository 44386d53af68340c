"""UniFormer (V1): paper params/GFLOPs, shapes, blocks, bad input, checkpoint conversion."""

import pytest
import torch

import videoformers as vf
from videoformers.models.uniformer import GlobalMHRA, UniFormer

TINY = dict(depth=(1, 1, 2, 1), embed_dim=(16, 32, 64, 128), head_dim=16)


# Paper numbers (issue #2): (name, input (C,T,H,W) or (C,H,W), params M, GFLOPs, params tol, flops tol)
PAPER = [
    ("uniformer_small", (3, 16, 224, 224), 21.4, 41.8),
    ("uniformer_base", (3, 16, 224, 224), 49.8, 96.7),
    ("uniformer_base", (3, 32, 224, 224), 49.8, 259.0),
    ("uniformer_small_image", (3, 224, 224), 21.5, 3.6),
    ("uniformer_base_image", (3, 224, 224), 50.0, 8.3),
    ("uniformer_large_image", (3, 224, 224), 100.0, 19.8),
    ("uniformer_small_plus_image", (3, 224, 224), 24.0, 4.2),
]


@pytest.mark.parametrize("name,shape,params,gflops", PAPER)
def test_paper_params_and_flops(name, shape, params, gflops):
    model = vf.build_on_meta(lambda: vf.create_model(name))
    assert vf.count_params(model) / 1e6 == pytest.approx(params, rel=0.02)
    assert vf.count_flops(model, (1, *shape)) == pytest.approx(gflops, rel=0.05)


def test_flops_count_attention_on_real_tensors():
    # Counting on a real (non-meta) model must give the same as on meta: attention is not missed.
    model = vf.create_model("uniformer_small", **TINY).eval()
    meta = vf.build_on_meta(lambda: vf.create_model("uniformer_small", **TINY))
    shape = (1, 3, 8, 64, 64)
    assert vf.count_flops(model, shape) == pytest.approx(vf.count_flops(meta, shape), rel=1e-9)
    # The attention matmuls are in the count: 2 * N^2 * C MACs per global block (stage 3: N = 4*4*4
    # tokens at 64 px / 8 frames, two blocks of C=64), minus the self-attention that remains.
    with_attn = vf.count_flops(meta, shape, include_norms=False) * 1e9
    model.blocks3[0].attn.window_size = model.blocks3[1].attn.window_size = (1, 1, 1)  # attention to self only
    no_attn = vf.count_flops(model, shape, include_norms=False) * 1e9
    n3 = 4 * 4 * 4
    assert with_attn - no_attn == pytest.approx(2 * 2 * (n3**2 - n3) * 64, rel=1e-6)


@pytest.mark.parametrize("frames,size", [(8, 64), (16, 32), (4, 96), (1, 64), (5, 64)])
def test_video_shapes_any_frames(frames, size):
    model = vf.create_model("uniformer_small", num_classes=7, **TINY).eval()
    out = model(torch.randn(2, 3, frames, size, size))
    assert out.shape == (2, 7)
    feats = model.forward_features(torch.randn(1, 3, frames, size, size))
    assert feats.shape == (1, 128, (frames - 1) // 2 + 1, size // 32, size // 32)


@pytest.mark.parametrize("name", ["uniformer_small_image", "uniformer_small_plus_image", "uniformer_large_image"])
def test_image_shapes(name):
    model = vf.create_model(name, num_classes=5, depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 128), head_dim=16).eval()
    assert model(torch.randn(2, 3, 64, 96)).shape == (2, 5)


@pytest.mark.parametrize(
    "shape,match",
    [
        ((3, 8, 64, 64), "5-D"),
        ((1, 4, 8, 64, 64), "3 channels"),
        ((1, 3, 8, 60, 64), "multiples of"),
        ((1, 8, 64, 64, 3), "channels-last"),
    ],
)
def test_bad_input_raises_value_error(shape, match):
    model = vf.create_model("uniformer_small", **TINY).eval()
    with pytest.raises(ValueError, match=match):
        model(torch.randn(*shape))


def test_bad_input_image_and_dtype():
    model = vf.create_model("uniformer_small_image", **TINY).eval()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.randn(1, 3, 4, 64, 64))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_unknown_override_is_named():
    with pytest.raises(TypeError, match="depthh"):
        vf.create_model("uniformer_small", depthh=3)


def test_builders_take_the_class_arguments():
    # One idiom: a few-line def per model; the overrides are UniFormer's constructor arguments.
    from videoformers.models.uniformer import UniFormer
    from videoformers.registry import _entry, model_arguments

    assert _entry("uniformer_small").accepts == _entry("uniformer_large_image").accepts == model_arguments(UniFormer)
    with pytest.raises(ValueError, match="takes no frames"):
        vf.create_model("uniformer_base_image", num_frames=8)
    model = vf.build_on_meta(lambda: vf.create_model("uniformer_base_ls_image", mlp_ratio=(4, 4, 3, 3)))
    # layer scale on the global blocks only (layer_scale_local=False), as the authors' uniformer_base_ls
    assert isinstance(model.blocks1[0].ls1, torch.nn.Identity) and model.blocks3[0].ls1.gamma.shape == (320,)
    assert model.blocks3[0].mlp.fc1.out_features == 3 * 320


def test_window_covering_whole_map_equals_global():
    torch.manual_seed(0)
    glob = vf.create_model("uniformer_small", **TINY).eval()
    win = vf.create_model("uniformer_small", window_size=8, **TINY).eval()
    assert isinstance(win.blocks3[0].attn, GlobalMHRA) and win.blocks3[0].attn.window_size is not None
    win.load_state_dict(glob.state_dict())  # window blocks share the global blocks' parameters
    x = torch.randn(1, 3, 8, 128, 128)  # stage 3 is 8x8: one window
    torch.testing.assert_close(win(x), glob(x), rtol=0, atol=1e-5)


def test_window_attention_is_local():
    # With 2x2 windows, perturbing one window of the stage-3 input leaves the other windows untouched.
    attn = GlobalMHRA(32, 2, window_size=(2, 2)).eval()
    x = torch.randn(1, 6, 6, 32)
    y = attn(x)
    x2 = x.clone()
    x2[:, 0:2, 0:2] += 1.0
    y2 = attn(x2)
    assert not torch.allclose(y[:, 0:2, 0:2], y2[:, 0:2, 0:2])
    torch.testing.assert_close(y[:, 2:, :], y2[:, 2:, :])
    torch.testing.assert_close(y[:, :, 2:], y2[:, :, 2:])


def test_window_padding_and_hybrid_pattern():
    model = vf.create_model("uniformer_small_image", depth=(1, 1, 4, 1), embed_dim=(16, 32, 64, 128), head_dim=16,
                            window_size=4, window_pattern="wwwg").eval()
    kinds = [blk.attn.window_size is not None for blk in model.blocks3]
    assert kinds == [True, True, True, False]
    assert model(torch.randn(1, 3, 96, 160)).shape == (1, 1000)  # stage 3 is 6x10: padded to 8x12


def test_drop_path_rates_increase_linearly():
    model = vf.create_model("uniformer_small", drop_path_rate=0.3, **TINY)
    rates = [blk.drop_path1.p if hasattr(blk.drop_path1, "p") else 0.0
             for s in range(1, 5) for blk in getattr(model, f"blocks{s}")]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert rates == sorted(rates)


def _to_authors_layout(sd: dict) -> dict:
    """Inverse of UniFormer.convert_state_dict for local blocks (what the released files hold)."""
    out = {}
    for k, v in sd.items():
        if k.startswith(("blocks1.", "blocks2.")):
            k = k.replace("attn.value.", "conv1.").replace("attn.proj.", "conv2.").replace("attn.affinity.", "attn.")
            if k.endswith(("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight")):
                v = v.reshape(*v.shape, 1, 1, 1)
        k = k.replace("pos_embed.proj.", "pos_embed.")
        out[k] = v
    return out


def test_authors_layout_loads_and_matches():
    torch.manual_seed(0)
    src = vf.create_model("uniformer_small", **TINY).eval()
    dst = vf.create_model("uniformer_small", **TINY).eval()
    authors = _to_authors_layout(src.state_dict())
    assert "blocks1.0.conv1.weight" in authors and authors["blocks1.0.conv1.weight"].ndim == 5
    report = vf.load_checkpoint(dst, {"model_state": authors})
    assert report.ok and report.loaded == len(src.state_dict())
    x = torch.randn(1, 3, 4, 64, 64)
    torch.testing.assert_close(dst(x), src(x))


def test_mmaction_layout_loads():
    torch.manual_seed(0)
    src = vf.create_model("uniformer_small", num_classes=5, **TINY).eval()
    authors = _to_authors_layout(src.state_dict())
    mm = {("cls_head.fc_cls." + k[5:]) if k.startswith("head.") else "backbone." + k: v for k, v in authors.items()}
    dst = vf.create_model("uniformer_small", num_classes=5, **TINY).eval()
    vf.load_checkpoint(dst, {"state_dict": mm, "meta": {}})
    x = torch.randn(1, 3, 4, 64, 64)
    torch.testing.assert_close(dst(x), src(x))


def test_image_weights_inflate_to_video_average():
    # Average inflation (the authors' get_pretrained_model): a static video gives the image response
    # up to the temporal zero padding of the 3x3x3 / 5x5x5 kernels, so compare on a 1-frame clip.
    torch.manual_seed(0)
    image = vf.create_model("uniformer_small_image", num_classes=10, **TINY).eval()
    video = vf.create_model("uniformer_small", num_classes=10, **TINY).eval()
    report = vf.load_checkpoint(video, {"model": _to_authors_layout(image.state_dict())})
    assert report.inflated and "patch_embed1.proj.weight" in report.inflated
    img = torch.randn(1, 3, 64, 64)
    w = video.patch_embed1.proj.weight
    assert w.shape[2] == 3
    torch.testing.assert_close(w.sum(2), image.patch_embed1.proj.weight)
    # Central-frame inflation on a 1-frame clip (temporal zero padding) equals the image model exactly.
    vf.load_checkpoint(video, image.state_dict(), inflate="center")
    torch.testing.assert_close(video(img.unsqueeze(2)), image(img), rtol=1e-4, atol=1e-4)
