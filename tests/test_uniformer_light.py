"""Light-weight H-UniFormer (UniFormer TPAMI Sec. 5): paper params/GFLOPs, shrink/recover properties, score token."""

import pytest
import torch

import videoformers as vf
from videoformers.models.uniformer_light import HUniFormerBlock

TINY = dict(depth=(1, 1, 3, 2), embed_dim=(16, 32, 64, 128), head_dim=16)

# Tables 11-12. Video params: the paper's 10.4M / 16.7M are the models with a 1000-class head
# (see the model card notes); at 400 classes they are 9.83M / 16.10M.
PAPER = [
    ("uniformer_xxs_image", {}, (3, 128, 128), 10.2, 0.43),
    ("uniformer_xxs_image", {}, (3, 224, 224), 10.2, 1.3),
    ("uniformer_xs_image", {}, (3, 224, 224), 16.5, 2.0),
    ("uniformer_xxs", {"num_classes": 1000}, (3, 4, 128, 128), 10.4, 1.0),
    ("uniformer_xxs", {"num_classes": 1000}, (3, 16, 160, 160), 10.4, 6.9),
    ("uniformer_xs", {"num_classes": 1000}, (3, 32, 192, 192), 16.7, 34.2),
]


@pytest.mark.parametrize("name,kw,shape,params,gflops", PAPER)
def test_paper_params_and_flops(name, kw, shape, params, gflops):
    model = vf.build_on_meta(lambda: vf.create_model(name, **kw))
    assert vf.count_params(model) / 1e6 == pytest.approx(params, rel=0.03)
    assert vf.count_flops(model, (1, *shape)) == pytest.approx(gflops, rel=0.05)


def test_shrinking_halves_global_attention_cost():
    full = vf.build_on_meta(lambda: vf.create_model("uniformer_xxs", shrink_ratio=1.0))
    half = vf.build_on_meta(lambda: vf.create_model("uniformer_xxs"))
    shape = (1, 3, 16, 160, 160)
    assert vf.count_flops(half, shape) < 0.75 * vf.count_flops(full, shape)


def _plain_global(block: HUniFormerBlock, x: torch.Tensor, s: torch.Tensor):
    """The plain global UniFormer block (DPE, MHRA, FFN) on [s; X] with the same weights."""
    x = block.pos_embed(x)
    B, *S, C = x.shape
    seq = torch.cat([s, x.reshape(B, -1, C)], 1)
    seq = seq + block.attn(block.norm1(seq))
    seq = seq + block.mlp(block.norm2(seq))
    return seq[:, 1:].reshape(B, *S, C), seq[:, :1]


@pytest.mark.parametrize("dims", [2, 3])
def test_ratio_one_equals_plain_global_block(dims):
    torch.manual_seed(0)
    block = HUniFormerBlock(32, dims, num_heads=2, shrink_ratio=1.0).eval()
    S = (2, 4, 4) if dims == 3 else (4, 4)
    x, s = torch.randn(2, *S, 32), torch.randn(2, 1, 32)
    scores = torch.rand(2, 32 if dims == 3 else 16)
    for prev in (None, scores):  # with and without previous scores
        y, s2, sc = block(x, s, prev)
        y_ref, s_ref = _plain_global(block, x, s)
        torch.testing.assert_close(y, y_ref)
        torch.testing.assert_close(s2, s_ref)
        assert sc.shape == scores.shape


def test_shrink_and_recover():
    torch.manual_seed(0)
    block = HUniFormerBlock(32, 3, num_heads=2, shrink_ratio=0.5).eval()
    x, s = torch.randn(1, 2, 4, 4, 32), torch.randn(1, 1, 32)
    scores = torch.rand(1, 32)
    y, _, new_scores = block(x, s, scores)
    assert y.shape == x.shape
    delta = (y - block.pos_embed(x)).reshape(32, 32)
    keep = scores[0].argsort(descending=True)[:16]
    drop = scores[0].argsort(descending=True)[16:]
    # Every dropped token receives the same (representative) update; kept tokens differ.
    torch.testing.assert_close(delta[drop], delta[drop[:1]].expand(16, -1))
    assert not torch.allclose(delta[keep[0]], delta[keep[1]])
    # Scores of dropped tokens are carried over; kept ones are a running mean with the new attention.
    torch.testing.assert_close(new_scores[0, drop], scores[0, drop])
    assert not torch.allclose(new_scores[0, keep], scores[0, keep])


def test_score_token_gets_gradients_and_two_heads_in_training():
    torch.manual_seed(0)
    model = vf.create_model("uniformer_xxs", num_classes=5, **TINY).train()
    x = torch.randn(2, 3, 4, 64, 64)
    logits, score_logits = model(x)
    assert logits.shape == score_logits.shape == (2, 5)
    (logits.sum() + score_logits.sum()).backward()
    assert model.cls_token.grad is not None and model.cls_token.grad.abs().sum() > 0
    model.zero_grad()
    logits, _ = model(x)
    logits.sum().backward()  # through the score-weighted representative token alone
    assert model.cls_token.grad.abs().sum() > 0
    model.eval()
    assert model(x).shape == (2, 5)


@pytest.mark.parametrize("frames", [4, 8, 16])
def test_video_any_frames(frames):
    model = vf.create_model("uniformer_xxs", num_classes=4, **TINY).eval()
    assert model(torch.randn(1, 3, frames, 64, 64)).shape == (1, 4)


def test_hourglass_blocks_built_once(monkeypatch):
    # HUniFormer builds its stage 3-4 blocks through UniFormer._make_block: no plain global block is
    # built and thrown away; the first stage-3 block keeps all tokens, the last pools the scores.
    from videoformers.models import uniformer

    built = []
    init = uniformer.GlobalUniFormerBlock.__init__

    def spy(self, *args, **kwargs):
        built.append(type(self).__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(uniformer.GlobalUniFormerBlock, "__init__", spy)
    model = vf.create_model("uniformer_xxs", shrink_ratio=0.25, score_momentum=0.3, **TINY)
    assert built == ["HUniFormerBlock"] * 5
    assert [b.shrink_ratio for b in model.blocks3] == [1.0, 0.25, 0.25]
    assert [b.pool_scores for b in (*model.blocks3, *model.blocks4)] == [False, False, True, False, False]
    assert {(b.score_momentum, b.fast_update_scale) for b in (*model.blocks3, *model.blocks4)} == {(0.3, "branch")}
    assert vf.create_model("uniformer_xxs_image", **TINY).blocks4[0].fast_update_scale == "gamma_3"


def test_builders_take_the_class_arguments():
    from videoformers.models.uniformer_light import HUniFormer
    from videoformers.registry import _entry, model_arguments

    assert _entry("uniformer_xxs_image").accepts == _entry("uniformer_xs").accepts == model_arguments(HUniFormer)
    with pytest.raises(TypeError, match="window_size"):
        vf.create_model("uniformer_xxs", window_size=7)
