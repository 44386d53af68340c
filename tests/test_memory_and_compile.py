"""Issue #10's memory and compile properties for every model family (tiny configurations):
- the meta-device training-memory measurement equals the same measurement on real CPU tensors;
- gradient checkpointing cuts the activations kept for backward;
- ``torch.compile(fullgraph=True)`` traces the whole model (no graph break) and gives the same output."""

import pytest
import torch
import torch.nn as nn
from test_engine_families import FAMILIES

import videoformers as vf
from videoformers.analysis import LiveTensorMemory, build_on_meta, training_memory
from videoformers.models.layers import Attention


def _model(name, data, overrides, device=None):
    t = int(next(d for d in data if d.startswith("data.num_frames=")).split("=")[1])
    s = int(next(d for d in data if d.startswith("data.img_size=")).split("=")[1])
    kw = dict(num_classes=4, num_frames=t, img_size=s, drop_path_rate=0.0, **overrides)
    build = lambda: vf.create_model(name, **kw)  # noqa: E731
    torch.manual_seed(0)
    return (build_on_meta(build) if device == "meta" else build()), (2, 3, t, s, s)


@pytest.mark.parametrize("family, name, data, overrides", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_meta_measurement_equals_cpu_and_checkpointing_saves_memory(family, name, data, overrides):
    model, shape = _model(name, data, overrides)
    cpu = training_memory(model, shape, device="cpu")
    meta = training_memory(model, shape)  # a meta copy of the same model
    assert meta.device == "meta" and cpu.device == "cpu"
    assert meta.activations == pytest.approx(cpu.activations, rel=1e-6) and meta.activations > 0
    assert meta.peak == pytest.approx(cpu.peak, rel=1e-6)
    assert 0.9 * meta.params < meta.grads <= meta.params  # (H-UniFormer: the score head is not in this loss)
    ckpt = training_memory(model, shape, grad_checkpointing=True)
    assert ckpt.activations < 0.75 * meta.activations, (ckpt.activations, meta.activations)


def test_uniformer_per_stage_checkpointing_is_monotone():
    model, shape = _model(*FAMILIES[0][1:])
    acts = [training_memory(model, shape, grad_checkpointing=n).activations
            for n in ([0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1])]
    assert acts == sorted(acts, reverse=True) and acts[0] > acts[-1]


def test_meta_attention_keeps_no_quadratic_matrix():
    """On meta, SDPA would take the math path and keep the N x N attention weights; the
    measurement routes it to the CPU flash kernel, whose saved tensors grow linearly with N."""
    attn = build_on_meta(lambda: Attention(32, num_heads=2))

    def acts(n):
        x = torch.empty(1, n, 32, device="meta", requires_grad=True)
        with LiveTensorMemory(ignore=[x, *attn.parameters()]) as mem:
            out = attn(x)
            return mem.mark() - out.numel() * 4

    import videoformers.analysis as analysis
    with analysis._cpu_flash_on_meta():
        ratio = acts(2048) / acts(1024)
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_live_tensor_memory_counts_live_storages():
    with LiveTensorMemory() as mem:
        a = torch.ones(1024, 1024, 4)  # 16 MiB
        b = a * 2  # +16 MiB while both live
        assert mem.mark() == 32 * 2**20
        del a, b
        c = torch.zeros(1024, 1024)  # 4 MiB after the others are freed
        assert mem.mark() == 4 * 2**20
        del c
    assert mem.peak_mb == pytest.approx(32, abs=0.01)


@pytest.mark.parametrize("family, name, data, overrides", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_compile_fullgraph(family, name, data, overrides):
    model, shape = _model(name, data, overrides)
    model.eval()
    x = torch.randn(shape)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        out, ref = compiled(x), model(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert isinstance(model, nn.Module)


def test_training_memory_leaves_the_callers_model_alone():
    model, shape = _model(*FAMILIES[0][1:], device="meta")
    model.eval()
    first = training_memory(model, shape, grad_checkpointing=True)
    again = training_memory(model, shape)  # None: the model's own (default) setting, not the previous call's
    assert not model.training and again.activations > first.activations
    cpu_model, _ = _model(*FAMILIES[0][1:])
    cpu_model.eval()
    training_memory(cpu_model, shape, device="cpu")
    assert not cpu_model.training and all(p.grad is None for p in cpu_model.parameters())
