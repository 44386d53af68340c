"""Time our models against the authors' implementations, side by side, in one process.

For a model name (ours), this builds our model and the authors' (imported at runtime from a local
clone whose path you pass; nothing of theirs is in this repository), copies the authors' weights
into ours through ``videoformers.load_checkpoint`` (strict), checks that the outputs agree, then
times both with alternating runs and prints medians and the ratio (authors' time / ours: > 1 means
we are faster). ``--train`` also times a training step (forward + backward + AdamW step). Each mode
also reports peak memory above the start of a step: on CUDA ``max_memory_allocated``; on CPU the
peak of live tensor bytes (dispatch tracker) and the process's resident-set high-water mark, each
from an extra, untimed run. ``--device cuda --dtype bf16`` runs the GPU comparison under autocast.
Results for this repository's machine: docs/performance.md.

Examples::

    git clone https://github.com/Sense-X/UniFormer /tmp/ref_uniformer
    OMP_NUM_THREADS=1 python benchmarks/compare_official.py uniformer_small --repo /tmp/ref_uniformer \
        --frames 8 --size 224 --threads 1
    python benchmarks/compare_official.py uniformerv2_b16 --repo /tmp/UniFormerV2 --frames 8
    python benchmarks/compare_official.py dualformer_tiny --repo /tmp/dualformer --frames 16 --batch 8
    python benchmarks/compare_official.py uniformerv2_b16 --repo /tmp/UniFormerV2 --device cuda --dtype bf16 \
        --batch 32 --train --json-out uv2_gpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import videoformers as vf  # noqa: E402
from videoformers.ops import onednn_linear_enabled  # noqa: E402
from videoformers.tools.hardware import cpu_info  # noqa: E402

FAMILY_LOADER = {  # our model-name prefix -> module under benchmarks/official
    "uniformerv2": "uniformerv2",
    "uniformer": "uniformer_v1",
    "dualformer": "dualformer",
}


def official_builder(name: str) -> Callable:
    for prefix, mod in FAMILY_LOADER.items():
        if name.startswith(prefix):
            module = __import__(f"benchmarks.official.{mod}", fromlist=["build_official"])
            return module.build_official
    raise SystemExit(f"no official loader for {name!r}; known prefixes: {list(FAMILY_LOADER)}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step_fn(model: torch.nn.Module, x: torch.Tensor, train: bool, dtype: torch.dtype | None):
    device = x.device
    if not train:
        def run():
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = model(x)
            _sync(device)
            return out
        return run
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)

    def run():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = out.float().logsumexp(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
    return run


def _rss_peak_mib(fn: Callable) -> float | None:
    """Process resident-set high-water mark during ``fn`` above the resident set before it (Linux:
    writing 5 to /proc/self/clear_refs resets VmHWM). Everything the process touches counts:
    allocator caching and kernel scratch included, with every fast path active."""
    def field(name: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) / 1024
        raise OSError(name)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so earlier runs' pages do not hide growth
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = field("VmRSS")
        fn()
        return field("VmHWM") - base
    except OSError:
        return None


def _peak_memory(fn: Callable, device: torch.device) -> dict[str, float | None]:
    """Peak memory of one step above what was allocated before it, MiB.

    CUDA: ``max_memory_allocated``. CPU: ``tensors`` = peak bytes of live tensor storages (the
    dispatch-mode tracker of ``videoformers bench``; under a dispatch mode our linear layers take
    the ordinary ``aten`` path, which allocates the same tensors) and ``rss`` = the process's
    resident-set high-water mark."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        return {"tensors": (torch.cuda.max_memory_allocated() - base) / 2**20, "rss": None}
    from videoformers.analysis import LiveTensorMemory

    with LiveTensorMemory() as peak:
        fn()
    return {"tensors": peak.peak_mb, "rss": _rss_peak_mib(fn)}


def compare(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    overrides = {"num_classes": args.num_classes}
    card = vf.get_model_card(args.model)
    video = card.is_video
    if video:
        overrides["num_frames"] = args.frames
    size = args.size or card.img_size
    overrides["img_size"] = size
    theirs = official_builder(args.model)(args.repo, args.model, **overrides).to(device)
    ours = vf.create_model(args.model, **{k: v for k, v in overrides.items()}).to(device)
    report = vf.load_checkpoint(ours, {k: v for k, v in theirs.state_dict().items()}, strict=True)
    shape = (args.batch, 3, args.frames, size, size) if video else (args.batch, 3, size, size)
    x = torch.randn(shape, device=device)
    theirs.eval(), ours.eval()
    with torch.inference_mode():
        diff = (theirs(x).float() - ours(x).float()).abs().max().item()
    results: dict = {"model": args.model, "input": list(shape), "threads": args.threads, "device": str(device),
                     "dtype": args.dtype, "max_abs_diff_fp32_eval": diff, "tensors_loaded": report.loaded,
                     # Where it was measured: a ratio over the authors on one CPU is not the ratio on another (issue 20).
                     "cpu": cpu_info(), "onednn_linear": onednn_linear_enabled()}
    modes = ["inference"] + (["train_step"] if args.train else [])
    for mode in modes:
        train = mode == "train_step"
        theirs.train(train), ours.train(train)
        fns = {"ours": _step_fn(ours, x, train, dtype), "authors": _step_fn(theirs, x, train, dtype)}
        for fn in fns.values():  # warm-up
            for _ in range(args.warmup):
                fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.iters):  # alternate so drifting machine load hits both equally
            for k, fn in fns.items():
                t, c = time.perf_counter(), time.process_time()
                fn()
                times[k].append(time.perf_counter() - t)
                cpu[k].append(time.process_time() - c)
        med = {k: statistics.median(v) for k, v in times.items()}
        cmed = {k: statistics.median(v) for k, v in cpu.items()}
        results[mode] = {
            "ours_s": med["ours"], "authors_s": med["authors"], "speedup": med["authors"] / med["ours"],
            # CPU seconds of this process: robust to other jobs on a shared machine (1 thread).
            "ours_cpu_s": cmed["ours"], "authors_cpu_s": cmed["authors"], "speedup_cpu": cmed["authors"] / cmed["ours"],
            "ours_clips_per_s": args.batch / med["ours"], "authors_clips_per_s": args.batch / med["authors"],
            "ours_peak_mib": _peak_memory(fns["ours"], device), "authors_peak_mib": _peak_memory(fns["authors"], device),
            "batch": args.batch,
            "all_s": times,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="our registry name, e.g. uniformer_small")
    p.add_argument("--repo", required=True, help="path to a local clone of the authors' repository")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=None, help="input height/width (default: the model card's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--train", action="store_true", help="also time a training step")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of text")
    p.add_argument("--json-out", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    res = compare(args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2))
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    c = res["cpu"]
    print(f"cpu: {c['vendor']} {c['model_name']} ({c['physical_cores']} cores, ISA {c['isa']}, "
          + ", ".join(k for k, v in c["flags"].items() if v and ("512" in k or "amx" in k)) + f"); torch "
          f"{c['torch_version']}, oneDNN {c['onednn_version']}, MKL {c['mkl_version']}; oneDNN linear path "
          f"{'on' if res['onednn_linear'] else 'off'}")
    print(f"{res['model']} input {res['input']} on {res['device']} ({res['dtype']}, {res['threads']} thread(s)); "
          f"max |ours - authors| = {res['max_abs_diff_fp32_eval']:.2e}")
    for mode in ("inference", "train_step"):
        if mode in res:
            r = res[mode]
            o, a = r["ours_peak_mib"], r["authors_peak_mib"]
            mem = f"\n{'':13}peak MiB (tensors) ours {o['tensors']:.0f} / authors {a['tensors']:.0f}" + (
                f"; process RSS high-water ours {o['rss']:.0f} / authors {a['rss']:.0f}" if o["rss"] is not None else "")
            print(f"  {mode:<11} ours {r['ours_s'] * 1e3:8.1f} ms  authors {r['authors_s'] * 1e3:8.1f} ms  "
                  f"speed-up x{r['speedup']:.2f} (CPU time: ours {r['ours_cpu_s'] * 1e3:.1f} ms, authors "
                  f"{r['authors_cpu_s'] * 1e3:.1f} ms, x{r['speedup_cpu']:.2f}){mem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
