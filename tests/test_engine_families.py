"""Every model family trains with the engine's pieces (config -> create_model, parameter groups,
AdamW, loss for single/tuple outputs): the loss goes down on a fixed batch, and a bf16 autocast
step on CPU gives finite losses and gradients."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from videoformers.engine.config import load_config
from videoformers.engine.evaluator import autocast_context
from videoformers.engine.losses import compute_loss
from videoformers.engine.optim import build_optimizer
from videoformers.engine.trainer import build_model
from videoformers.registry import list_models

# (family, model name, data overrides, model overrides) -- tiny but structurally complete.
FAMILIES = [
    ("uniformer", "uniformer_small", ["data.num_frames=4", "data.img_size=32"],
     {"depth": [1, 1, 1, 1], "embed_dim": [16, 32, 64, 128], "head_dim": 16}),
    ("uniformer_light", "uniformer_xxs", ["data.num_frames=4", "data.img_size=32"],
     {"depth": [1, 1, 2, 2], "embed_dim": [16, 32, 64, 128], "head_dim": 16}),
    ("uniformerv2", "uniformerv2_b16", ["data.num_frames=4", "data.img_size=32"],
     {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "global_layers": 2, "drop_rate": 0.0,
      "global_mlp_dropout": 0.0}),
    ("uniformerv2_ssv2", "uniformerv2_b16_ssv2", ["data.num_frames=4", "data.img_size=32"],
     {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "global_layers": 2, "drop_rate": 0.0,
      "global_mlp_dropout": 0.0, "global_drop_path_rate": 0.0}),
    ("vivit", "vivit_base_spatiotemporal", ["data.num_frames=4", "data.img_size=32"],
     {"tubelet_size": [2, 8, 8], "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_dim": 64}),
    ("vivit_fe", "vivit_base_factorised_encoder", ["data.num_frames=4", "data.img_size=32"],
     {"tubelet_size": [2, 8, 8], "embed_dim": 32, "depth": 1, "temporal_depth": 1, "num_heads": 2, "mlp_dim": 64}),
    ("dualformer", "dualformer_tiny", ["data.num_frames=8", "data.img_size=64"],
     {"embed_dim": 8, "num_heads": 1, "depth": [1, 1, 1, 1], "head_drop_rate": 0.0}),
]


def _setup(name, data, overrides, seed=0):
    if name not in list_models():
        pytest.skip(f"{name} is not registered in this build")
    ov = [f"model.overrides.{k}={v}" for k, v in overrides.items()]
    cfg = load_config(None, [f"model.name={name}", "model.drop_path_rate=0.0", "optim.lr=3e-3",
                             "optim.weight_decay=0.0", *data, *ov])
    torch.manual_seed(seed)
    model = build_model(cfg, num_classes=4)
    c, t, s = 3, cfg.data.num_frames, cfg.data.img_size
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, c, t, s, s, generator=g)
    y = torch.tensor([0, 1, 2, 3])
    return cfg, model, x, y


@pytest.mark.parametrize("family, name, data, overrides", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_trains_on_a_fixed_batch(family, name, data, overrides):
    cfg, model, x, y = _setup(name, data, overrides)
    # Zero-initialised heads/branches (UniFormerV2, ViViT) are part of the recipe: training must move them.
    opt = build_optimizer(model, cfg.optim, cfg.optim.lr)
    model.train()
    losses = []
    for _ in range(12):
        loss = compute_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert (losses[-1] + losses[-2]) / 2 < 0.7 * losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, 4)  # eval mode: plain logits, also for the light model's two heads


def _bf16_step(family: str) -> str:
    fam = next(f for f in FAMILIES if f[0] == family)
    cfg, model, x, y = _setup(fam[1], fam[2], fam[3], seed=1)
    model.train()
    with autocast_context(torch.device("cpu"), "bf16"):
        out = model(x)
        loss = compute_loss(out, y)
    loss.backward()
    first = out[0] if isinstance(out, tuple) else out
    assert first.dtype == torch.bfloat16 or first.dtype == torch.float32
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    return "ok"


@pytest.mark.parametrize("family, name, data, overrides", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_family_bf16_autocast_on_cpu(family, name, data, overrides):
    if name not in list_models():
        pytest.skip(f"{name} is not registered in this build")
    # In a fresh process: after some other tests of the suite ran in this process, the bf16 CPU
    # backward of UniFormer produced non-finite gradients once (not reproducible in isolation);
    # a clean interpreter keeps this check about our models, not about leftover global state.
    code = ("import sys; sys.path.insert(0, %r); import test_engine_families as t; print(t._bf16_step(%r))"
            % (str(Path(__file__).parent), family))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-2000:]
