"""Build the authors' UniFormerV2 from a local clone of ``OpenGVLab/UniFormerV2`` (or MMAction2).

Benchmarking / fixture-making glue, not part of the library: the authors' model file
(``slowfast/models/uniformerv2_model.py``) is executed *at runtime* from the clone on disk; nothing
of theirs is copied here. It imports ``timm.models.layers.DropPath`` and
``slowfast.utils.logging``; where those cannot be imported, torch-only stand-ins are put into
``sys.modules`` first (``DropPath`` = ``_shim.TimmDropPath``, i.e.
``videoformers.models.layers.DropPath``, which has timm's semantics: mask over dim 0, rescaled by
the keep probability, identity in eval; ``get_logger`` = ``logging.getLogger``).

:func:`build_official` returns the authors' ``VisionTransformer`` wrapped as ``.backbone`` (what
their PySlowFast ``Uniformerv2`` wrapper does), so ``state_dict()`` has the keys of their ``.pyth``
checkpoints (``backbone.*``) and ``forward`` maps a plain ``(B, C, T, H, W)`` tensor to logits.
``name`` is one of their builders (``uniformerv2_b16``, ``uniformerv2_l14``,
``uniformerv2_l14_336``), our ``uniformerv2_{b16,l14}_ssv2``, or ``"custom"`` (their
``VisionTransformer`` with every argument given in ``overrides``). ``recipe`` defaults to the one
our registry model of that name uses (their builder defaults match no released model), so
``benchmarks/compare_official.py uniformerv2_b16 --repo <clone>`` compares like with like.

:func:`build_official_mmaction` does the same for MMAction2's port
(``mmaction/models/backbones/uniformerv2.py``, with stand-ins for ``mmcv``/``mmengine``/
``mmaction.registry``) and adds its ``UniFormerHead`` (dropout + ``fc_cls``), so keys are
``backbone.*`` / ``cls_head.fc_cls.*``.

Run as a script it times ours against theirs (same weights, same input)::

    OMP_NUM_THREADS=1 python benchmarks/official/uniformerv2.py --repo /tmp/ref_uv2 \
        --model uniformerv2_b16 --frames 8 --threads 1
    python benchmarks/official/uniformerv2.py --repo /tmp/ref_uv2 --device cuda --dtype bfloat16 --batch 8
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import itertools
import json
import logging
import os
import sys
import time
import types
from typing import Any

import torch
import torch.nn as nn

try:
    from ._shim import SLOWFAST_LOGGING, TIMM_LAYERS, Registry, TimmDropPath, provide
except ImportError:  # executed as a file (``python benchmarks/official/uniformerv2.py``)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from benchmarks.official._shim import SLOWFAST_LOGGING, TIMM_LAYERS, Registry, TimmDropPath, provide

__all__ = ["OFFICIAL_FILE", "MMACTION_FILE", "RECIPE_FLAGS", "install_shim", "load_official_module",
           "build_official", "build_official_mmaction", "OfficialUniFormerV2"]

#: The model file inside the authors' repository (commit 722a434 was used for the fixtures).
OFFICIAL_FILE = "slowfast/models/uniformerv2_model.py"
#: MMAction2's port (commit 4d6c934).
MMACTION_FILE = "mmaction/models/backbones/uniformerv2.py"

#: The released recipes as the authors' builder arguments (their ``run.sh`` files).
RECIPE_FLAGS: dict[str, dict[str, Any]] = {
    "kinetics": dict(no_lmhra=True, double_lmhra=False, temporal_downsample=False),
    "ssv2": dict(no_lmhra=False, double_lmhra=True, temporal_downsample=True),
}
_RETURN_LISTS = {
    ("kinetics", 12): [8, 9, 10, 11], ("kinetics", 24): [20, 21, 22, 23],
    ("ssv2", 12): list(range(4, 12)), ("ssv2", 24): list(range(8, 24)),
}
_counter = itertools.count()


class _BaseModule(nn.Module):
    """mmengine's ``BaseModule``: an ``nn.Module`` taking ``init_cfg``."""

    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__()
        self.init_cfg = init_cfg


class _ModuleList(nn.ModuleList):
    def __init__(self, modules=None, init_cfg: Any = None) -> None:
        super().__init__(modules)


def install_shim(force: bool = False) -> dict[str, str]:
    """Make the authors' / MMAction2's imports resolvable; ``{package: "real" | "shim"}``.

    Real packages are used when importable unless ``force`` (see ``benchmarks/official/_shim.py``
    for how stand-ins coexist with the other loaders').
    """
    return {
        "timm": provide("timm.models.layers", {"timm.models.layers": TIMM_LAYERS}, force),
        "slowfast": provide("slowfast.utils.logging", {"slowfast.utils.logging": SLOWFAST_LOGGING}, force),
        "mmengine": provide(("mmcv.cnn.bricks", "mmengine.model"), {
            "mmcv.cnn.bricks": {"DropPath": TimmDropPath},
            "mmengine.logging": {
                "MMLogger": types.SimpleNamespace(get_current_instance=lambda: logging.getLogger("mmengine"))},
            "mmengine.model": {"BaseModule": _BaseModule, "ModuleList": _ModuleList},
            "mmengine.runner.checkpoint": {
                "_load_checkpoint": lambda path, map_location="cpu": torch.load(path, map_location=map_location)},
        }, force),
        "mmaction": provide("mmaction.registry", {"mmaction.registry": {"MODELS": Registry()}}, force),
    }


def load_official_module(repo: str, rel: str = OFFICIAL_FILE) -> types.ModuleType:
    """Execute the authors' model file from the clone at ``repo`` as a fresh module."""
    install_shim()
    path = os.path.join(repo, rel)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {repo!r} a clone of OpenGVLab/UniFormerV2 (or MMAction2)?")
    name = f"_uv2_official_{os.path.splitext(os.path.basename(rel))[0]}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    logging.getLogger("slowfast").setLevel(logging.WARNING)
    spec.loader.exec_module(mod)
    return mod


class OfficialUniFormerV2(nn.Module):
    """``backbone`` (+ MMAction2's ``cls_head``) taking a plain ``(B, C, T, H, W)`` tensor."""

    def __init__(self, backbone: nn.Module, cls_head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        if cls_head is not None:
            self.cls_head = cls_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.backbone(x)
        return self.cls_head(out) if hasattr(self, "cls_head") else out


def _recipe_kwargs(recipe: str | None, layers: int, overrides: dict) -> dict:
    kw: dict[str, Any] = {}
    if recipe is not None:
        kw.update(RECIPE_FLAGS[recipe])
        kw["return_list"] = _RETURN_LISTS[(recipe, layers)] if (recipe, layers) in _RETURN_LISTS else None
        if recipe == "ssv2":
            kw.update(backbone_drop_path_rate=0.2, drop_path_rate=0.4)
    kw.update(overrides)
    if kw.get("return_list") is None:
        kw.pop("return_list", None)
    if "return_list" in kw:
        kw.setdefault("n_layers", len(kw["return_list"]))
        kw.setdefault("mlp_dropout", [0.5] * kw["n_layers"])
    return kw


_SIZES = {
    "uniformerv2_b16": dict(input_resolution=224, patch_size=16, width=768, layers=12, heads=12, output_dim=512),
    "uniformerv2_l14": dict(input_resolution=224, patch_size=14, width=1024, layers=24, heads=16, output_dim=768),
    "uniformerv2_l14_336": dict(input_resolution=336, patch_size=14, width=1024, layers=24, heads=16, output_dim=768),
}
#: Our registry names that are one of their builders with a recipe.
_OUR_NAMES = {"uniformerv2_b16_ssv2": ("uniformerv2_b16", "ssv2"), "uniformerv2_l14_ssv2": ("uniformerv2_l14", "ssv2")}


def build_official(repo: str, name: str, recipe: str | None = "auto", **overrides) -> nn.Module:
    """The authors' UniFormerV2 (``pretrained=False``), wrapped so keys read ``backbone.*``.

    ``name``: one of their builders (``uniformerv2_b16``, ``uniformerv2_l14``,
    ``uniformerv2_l14_336``), our ``uniformerv2_{b16,l14}_ssv2``, or ``"custom"`` (their
    ``VisionTransformer``; ``input_resolution``, ``patch_size``, ``width``, ``layers``, ``heads``
    are then required). ``recipe``: ``"kinetics"`` / ``"ssv2"`` set the released flags;
    ``"auto"`` (default) picks the recipe our registry model of that name uses (so
    ``benchmarks/compare_official.py`` compares like with like); ``None`` keeps their builder's
    defaults (which match no released model). ``overrides`` use their argument names (``t_size``,
    ``num_classes``, ``no_lmhra``, ``return_list``, ...), plus our aliases ``num_frames`` (->
    ``t_size``) and ``img_size`` (-> ``input_resolution``).
    """
    if "num_frames" in overrides:
        overrides["t_size"] = overrides.pop("num_frames")
    if "img_size" in overrides:
        overrides["input_resolution"] = overrides.pop("img_size")
    if name in _OUR_NAMES:
        name, auto = _OUR_NAMES[name]
    else:
        auto = "kinetics"
    if recipe == "auto":
        recipe = auto if name != "custom" else None
    mod = load_official_module(repo)
    if name == "custom" or (name in _SIZES and overrides.get("input_resolution", _SIZES[name]["input_resolution"])
                            != _SIZES[name]["input_resolution"]):
        kw = dict(_SIZES.get(name, {}))
        kw.update(overrides)
        layers = kw.get("layers", 12)
        kw = _recipe_kwargs(recipe, layers, kw)
        kw.setdefault("output_dim", kw.get("width", 768))
        kw.setdefault("n_dim", kw.get("width", 768))
        kw.setdefault("n_head", kw.get("heads", 12))
        if name != "custom":  # their builders' defaults for what the recipe does not set
            kw.setdefault("t_size", 16)
            kw.setdefault("return_list", [layers - 4 + i for i in range(4)])
            kw.setdefault("n_layers", len(kw["return_list"]))
            kw.setdefault("mlp_dropout", [0.5] * kw["n_layers"])
        backbone = mod.VisionTransformer(**kw)
    elif name in _SIZES:
        overrides.pop("input_resolution", None)
        backbone = getattr(mod, name)(pretrained=False, **_recipe_kwargs(recipe, _SIZES[name]["layers"], overrides))
    else:
        raise ValueError(f"unknown name {name!r}; use uniformerv2_b16/l14/l14_336, uniformerv2_b16/l14_ssv2 or 'custom'")
    return OfficialUniFormerV2(backbone).eval()


def build_official_mmaction(repo: str, name: str = "uniformerv2_b16", recipe: str | None = "kinetics",
                            num_classes: int = 400, **overrides) -> nn.Module:
    """MMAction2's port (backbone + ``UniFormerHead``: dropout 0.5, ``fc_cls``)."""
    mod = load_official_module(repo, MMACTION_FILE)
    sizes = {
        "uniformerv2_b16": dict(input_resolution=224, patch_size=16, width=768, layers=12, heads=12, n_dim=768, n_head=12),
        "uniformerv2_l14": dict(input_resolution=224, patch_size=14, width=1024, layers=24, heads=16, n_dim=1024, n_head=16),
        "uniformerv2_l14_336": dict(input_resolution=336, patch_size=14, width=1024, layers=24, heads=16, n_dim=1024, n_head=16),
    }
    kw = dict(sizes[name]) if name in sizes else {}
    kw.update(_recipe_kwargs(recipe, overrides.get("layers", kw.get("layers", 12)), overrides))
    cls_dropout = kw.pop("cls_dropout", 0.5)
    accepted = inspect.signature(mod.UniFormerV2.__init__).parameters
    dropped = sorted(k for k in kw if k not in accepted)  # e.g. output_dim / frozen: not in the port
    for k in dropped:
        kw.pop(k)
    kw.setdefault("clip_pretrained", False)
    backbone = mod.UniFormerV2(**kw)
    head = nn.Sequential()
    head.add_module("dropout", nn.Dropout(cls_dropout))
    head.add_module("fc_cls", nn.Linear(kw.get("n_dim", 768), num_classes))
    return OfficialUniFormerV2(backbone, head).eval()


# --------------------------------------------------------------------------- benchmark
def _time(fn, x, warmup: int, iters: int, sync) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds per call; CPU time is the steadier figure on a shared machine."""
    for _ in range(warmup):
        fn(x)
    sync()
    out = []
    for _ in range(iters):
        t, c = time.perf_counter(), time.process_time()
        fn(x)
        sync()
        out.append((time.perf_counter() - t, time.process_time() - c))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, help="clone of OpenGVLab/UniFormerV2")
    ap.add_argument("--model", default="uniformerv2_b16", choices=["uniformerv2_b16", "uniformerv2_l14", "uniformerv2_l14_336"])
    ap.add_argument("--recipe", default="kinetics", choices=["kinetics", "ssv2"])
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--img-size", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--global-attn", default="standard", choices=["standard", "factorized"],
                    help="our global UniBlock attention (factorized: same function, fewer multiply-adds)")
    ap.add_argument("--seeded", action="store_true", help="random (seeded) weights in both models instead of init")
    ap.add_argument("--sdpa", default="auto", choices=["auto", "flash", "efficient", "math"],
                    help="force one SDPA backend (both models: theirs reaches SDPA through nn.MultiheadAttention)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import videoformers as vf
    from videoformers.checkpoints import load_checkpoint

    frames = args.frames or (16 if args.recipe == "ssv2" else 8)
    size = args.img_size or (336 if args.model.endswith("336") else 224)
    ours = vf.create_model(args.model, recipe=args.recipe, num_frames=frames, img_size=size,
                           global_attn=args.global_attn).eval()
    theirs = build_official(args.repo, args.model, recipe=args.recipe, t_size=frames, input_resolution=size).eval()
    if args.seeded:  # the init leaves the global path at 0; random weights exercise every module
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in theirs.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * (3.0 / max(p[0].numel(), 1)) ** 0.5
                        if p.ndim > 1 else 1 + (torch.rand(p.shape, generator=gen) - 0.5) * 0.2)
    load_checkpoint(ours, theirs.state_dict(), strict=True)
    dev, dtype = torch.device(args.device), getattr(torch, args.dtype)
    ours.to(dev)
    theirs.to(dev)
    x = torch.randn(args.batch, 3, frames, size, size, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    autocast = dtype != torch.float32

    def sdpa_ctx():
        if args.sdpa == "auto":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                   "math": SDPBackend.MATH}[args.sdpa]
        return sdpa_kernel(backend)

    def runner(m):
        def f(inp):
            with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=autocast), sdpa_ctx():
                return m(inp)
        return f

    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=autocast), sdpa_ctx():
        err = (ours(x).float() - theirs(x).float()).abs().max().item()
    res = {"model": args.model, "recipe": args.recipe, "global_attn": args.global_attn,
           "input": [args.batch, 3, frames, size, size],
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "dtype": args.dtype,
           "sdpa": args.sdpa, "threads": torch.get_num_threads(), "max_abs_diff": err}
    # Interleave the two so that machine noise hits both alike.
    t_ours, t_theirs = [], []
    for _ in range(args.iters):
        t_theirs += _time(runner(theirs), x, args.warmup if not t_theirs else 0, 1, sync)
        t_ours += _time(runner(ours), x, args.warmup if not t_ours else 0, 1, sync)
    med = lambda v, i: sorted(t[i] for t in v)[len(v) // 2]  # noqa: E731
    res.update(ours_s=med(t_ours, 0), theirs_s=med(t_theirs, 0), ours_clips_per_s=args.batch / med(t_ours, 0),
               theirs_clips_per_s=args.batch / med(t_theirs, 0), speedup=med(t_theirs, 0) / med(t_ours, 0),
               ours_cpu_s=med(t_ours, 1), theirs_cpu_s=med(t_theirs, 1), speedup_cpu_time=med(t_theirs, 1) / med(t_ours, 1),
               ours_min_s=min(t[0] for t in t_ours), theirs_min_s=min(t[0] for t in t_theirs),
               speedup_min=min(t[0] for t in t_theirs) / min(t[0] for t in t_ours),
               ours_all=[t[0] for t in t_ours], theirs_all=[t[0] for t in t_theirs])
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    raise SystemExit(main())
