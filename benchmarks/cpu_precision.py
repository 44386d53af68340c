"""fp32 vs bf16 vs int8 inference on this CPU, one model per family: speed, utilisation, agreement.

    python benchmarks/cpu_precision.py   # 18 min on the 2-core AMD EPYC VM while busy (load 7-10); most of it is
                                         # the 16+8 fp32 and 2x16 bf16/int8 agreement passes
    python benchmarks/cpu_precision.py --models uniformer_xxs --inputs 8 --repeats 1   # a quick look
    python benchmarks/cpu_precision.py --speed-only --repeats 5 --out /tmp/speed.json   # timings only, 3.5 min there

Precisions are :mod:`videoformers.ops.precision`'s, as ``predict``/``extract``/``bench --dtype`` use them:
``bf16`` = ``torch.autocast("cpu", torch.bfloat16)`` with fp32 weights, ``int8`` = dynamic quantisation
(qint8) of the linear layers the model calls, everything else fp32.

Speed: seconds per clip at batch 1, with 1 and with 2 threads; within a thread setting every repeat
runs every model in every precision in turn (models and dtypes alternating, so a drifting machine load
hits all of them alike); median of ``--repeats``. GFLOP/s = 2 x the model's multiply-adds
(:func:`videoformers.count_flops`, on meta) / time, and the fraction of the CPU peak for the dtype
(:func:`videoformers.tools.hardware.cpu_peak_gflops`; int8: the int8 peak, although only the linear layers
run in int8).

Agreement: random-init weights give near-tied logits, so top-1 agreement would measure noise. Each model
gets a classifier fitted to a tiny synthetic task instead: ``--classes`` seeded random clips (normalised
pixel space, N(0, 1)) are the classes; the head is the nearest-centroid classifier on their fp32 pre-logits
features (weights = centred, unit-norm prototype features x a logit scale, so fp32 logits span ~``--logit-scale``);
the test inputs are ``--inputs`` noisy copies of the prototypes (``+ --noise`` x N(0, 1)). fp32 then classifies
them confidently, by a feature-space margin that a precision's error has to overcome. The backbone stays
random-init: trained weights have other activation ranges, so this measures the precision's effect on
this architecture, not on a released checkpoint. Reported: top-1 agreement with fp32, max |logit - fp32
logit|, the fp32 logit std and smallest top-1 margin (for scale). No video footage is used (no decoder
dependency, identical inputs on every machine).

Writes ``benchmarks/results/cpu_precision_<cpu-slug>.json`` (``--out`` to change), with :func:`cpu_info`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linear_backends import _time as best_time  # noqa: E402  (same folder)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import videoformers as vf  # noqa: E402
from videoformers.ops.precision import autocast_for, quantize_for_inference  # noqa: E402
from videoformers.tools.hardware import cpu_info, cpu_peak_gflops  # noqa: E402

# (registry name, frames, size): each family's main model at sizes that finish on 2 slow cores.
MODELS = [
    ("uniformer_small", 8, 224),                   # UniFormer-S
    ("uniformerv2_b16", 8, 224),                   # UniFormerV2-B/16
    ("vivit_base_factorised_encoder", 8, 224),     # ViViT-B factorised encoder (card: 32 frames)
    ("dualformer_tiny", 8, 224),                   # DualFormer-T (card: 32 frames)
    ("uniformer_xxs", 16, 160),                    # H-UniFormer XXS (its card's input)
]
DTYPES = ("fp32", "bf16", "int8")


def cpu_slug(name: str) -> str:
    s = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$|\d+-core processor", " ", name.lower())
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_") or "unknown_cpu"


def _head_input(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pre-logits features the classifier sees (a hook on ``model.head``)."""
    got = []
    h = model.head.register_forward_pre_hook(lambda m, inp: got.append(inp[0].detach().float()))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        h.remove()
    return got[0]


def _loadavg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def _batched(fn, x: torch.Tensor, bs: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + bs]) for i in range(0, len(x), bs)])


def build(name: str, frames: int, size: int, args) -> dict:
    """The model with a fitted nearest-centroid head, its int8 copy, the test inputs and their fp32 logits."""
    torch.manual_seed(0)
    card = vf.get_model_card(name)
    kw = dict(num_classes=args.classes, img_size=size, drop_path_rate=0.0)
    if card.is_video:
        kw["num_frames"] = frames
    model = vf.create_model(name, **kw).eval()
    shape = (3, frames, size, size)
    flops = vf.count_flops(vf.analysis.build_on_meta(lambda: vf.create_model(name, **kw)), (1, *shape))
    if args.speed_only:  # random-init head: timings only
        x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(1234))
        return {"name": name, "shape": shape, "fp32": model, "int8": quantize_for_inference(model, x), "inputs": x,
                "gmacs": flops, "params_m": vf.count_params(model) / 1e6}
    g = torch.Generator().manual_seed(1234)
    protos = torch.randn(args.classes, *shape, generator=g)
    per = -(-args.inputs // args.classes)
    idx = torch.arange(args.classes).repeat_interleave(per)[: args.inputs]
    inputs = protos[idx] + args.noise * torch.randn(len(idx), *shape, generator=g)
    f = _batched(lambda b: _head_input(model, b), protos, args.batch)
    mu = f.mean(0, keepdim=True)
    w = torch.nn.functional.normalize(f - mu, dim=-1)
    fi = _batched(lambda b: _head_input(model, b), inputs, args.batch)
    scale = args.logit_scale / ((fi - mu) @ w.t()).std().clamp_min(1e-12)
    with torch.no_grad():
        model.head.weight.copy_(w * scale)
        model.head.bias.copy_(-(mu @ w.t()).squeeze(0) * scale)
    with torch.inference_mode():  # the model's fp32 logits: its head applied to the features it produced
        ref = model.head(fi).float()
    assert (ref.argmax(-1) == idx).float().mean() > 0.5, "fitted head does not fit: raise --logit-scale/lower --noise"
    q = quantize_for_inference(model, inputs[:1])
    return {"name": name, "shape": shape, "fp32": model, "int8": q, "inputs": inputs, "labels": idx, "ref": ref,
            "gmacs": flops, "params_m": vf.count_params(model) / 1e6}


def gemm_ceiling(threads: int, shape=(1576, 768, 3072), iters: int = 5) -> dict:
    """Best GFLOP/s of one linear layer (UniFormerV2-B/16 8x224's fc1 GEMM) per dtype, through the same
    paths the models use: a measured ceiling next to the theoretical peak (whose clock may be the nominal one)."""
    torch.set_num_threads(threads)
    m, k, n = shape
    x, lin = torch.randn(m, k), torch.nn.Linear(k, n)
    q = quantize_for_inference(torch.nn.Sequential(lin), x[:1])
    out = {}
    for dt in DTYPES:
        fn = (lambda: q(x)) if dt == "int8" else (lambda: lin(x))
        with torch.inference_mode(), autocast_for("cpu", dt):
            best = best_time(fn, iters)  # one warm-up call, then the best of iters
        out[dt] = 2 * m * k * n / best / 1e9
    return out


def run_dtype(entry: dict, dtype: str, x: torch.Tensor) -> torch.Tensor:
    model = entry["int8"] if dtype == "int8" else entry["fp32"]
    with torch.inference_mode(), autocast_for("cpu", dtype):
        return model(x).float()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=None, help="registry names (default: one per family)")
    p.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per model, dtype and thread setting")
    p.add_argument("--inputs", type=int, default=16, help="test inputs for the agreement")
    p.add_argument("--classes", type=int, default=8, help="classes of the synthetic task")
    p.add_argument("--noise", type=float, default=0.5, help="std of the noise added to the prototypes")
    p.add_argument("--logit-scale", type=float, default=4.0, help="std of the fitted head's fp32 logits")
    p.add_argument("--batch", type=int, default=4, help="batch of the agreement passes")
    p.add_argument("--gemm-only", action="store_true", help="only the GEMM ceiling (seconds)")
    p.add_argument("--speed-only", action="store_true", help="timings only (no fitted head, no agreement)")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/cpu_precision_<cpu>.json)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    t_start = time.perf_counter()

    info = cpu_info()
    print(f"cpu: {info['vendor']} {info['model_name']} (family {info['cpu_family']}, model {info['cpu_model']}), "
          f"{info['physical_cores']} cores, clock {info['clock_ghz']} GHz ({info['clock_source']})")
    print("     flags: " + " ".join(k for k, v in info["flags"].items() if v))
    print(f"     torch {info['torch_version']}, oneDNN {info['onednn_version']}, MKL {info['mkl_version']}; "
          f"load average {_loadavg()}")
    gemm = {str(n): gemm_ceiling(n) for n in args.threads}
    for n, g in gemm.items():
        print(f"GEMM 1576x768x3072 ceiling, {n} thread(s): " + ", ".join(f"{dt} {v:.0f} GFLOP/s" for dt, v in g.items())
              + "  (peak " + ", ".join(f"{dt} {cpu_peak_gflops(dt, int(n), info) or float('nan'):.0f}" for dt in DTYPES)
              + ")", flush=True)
    if args.gemm_only:
        args.models = []
    chosen = [m for m in MODELS if args.models is None or m[0] in args.models]
    chosen += [(n, *vf.get_model_card(n).input_size[1:3]) for n in (args.models or [])
               if n not in {m[0] for m in MODELS}]
    torch.set_num_threads(max(args.threads))
    entries = []
    for name, frames, size in chosen:
        t = time.perf_counter()
        entries.append(build(name, frames, size, args))
        print(f"built {name} {entries[-1]['shape']} ({time.perf_counter() - t:.0f} s)", flush=True)

    # agreement (at the largest thread count)
    agree = {}
    for e in [] if args.speed_only else entries:
        row = {"fp32_logit_std": e["ref"].std().item(),
               "fp32_top1_on_task": (e["ref"].argmax(-1) == e["labels"]).float().mean().item()}
        top2 = e["ref"].topk(2, dim=-1).values
        row["fp32_min_margin"] = (top2[:, 0] - top2[:, 1]).min().item()
        for dt in DTYPES[1:]:
            out = _batched(lambda b: run_dtype(e, dt, b), e["inputs"], args.batch)
            row[dt] = {"top1_agreement": (out.argmax(-1) == e["ref"].argmax(-1)).float().mean().item(),
                       "max_logit_diff": (out - e["ref"]).abs().max().item(), "n": len(out)}
        agree[e["name"]] = row
        print(f"agreement {e['name']}: " + ", ".join(
            f"{dt} top-1 {row[dt]['top1_agreement']:.0%} max|dlogit| {row[dt]['max_logit_diff']:.3g}" for dt in DTYPES[1:])
            + f" (fp32 logit std {row['fp32_logit_std']:.2f}, min margin {row['fp32_min_margin']:.2f})", flush=True)

    # speed: batch 1, models and dtypes alternating within each repeat
    speed: dict = {}
    for n in args.threads:
        torch.set_num_threads(n)
        x1 = {e["name"]: e["inputs"][:1] for e in entries}
        for e in entries:  # warm-up (lazy init, oneDNN primitive caches)
            for dt in DTYPES:
                run_dtype(e, dt, x1[e["name"]])
        times = {(e["name"], dt): [] for e in entries for dt in DTYPES}
        cpu_s = {k: [] for k in times}
        for _ in range(args.repeats):
            for e in entries:
                for dt in DTYPES:
                    t, c = time.perf_counter(), time.process_time()
                    run_dtype(e, dt, x1[e["name"]])
                    times[(e["name"], dt)].append(time.perf_counter() - t)
                    cpu_s[(e["name"], dt)].append(time.process_time() - c)
        for e in entries:
            base = statistics.median(times[(e["name"], "fp32")])
            for dt in DTYPES:
                med = statistics.median(times[(e["name"], dt)])
                peak = cpu_peak_gflops(dt, n, info)
                gf = 2 * e["gmacs"] * 1e9 / med / 1e9
                speed.setdefault(e["name"], {}).setdefault(str(n), {})[dt] = {
                    "s_per_clip": med, "all_s": times[(e["name"], dt)], "speedup_over_fp32": base / med,
                    # CPU seconds of this process (all threads): less sensitive to other jobs on a shared machine
                    "cpu_s_per_clip": statistics.median(cpu_s[(e["name"], dt)]),
                    "cpu_speedup_over_fp32": statistics.median(cpu_s[(e["name"], "fp32")])
                    / statistics.median(cpu_s[(e["name"], dt)]),
                    "gflop_per_s": gf, "peak_gflop_per_s": peak, "fraction_of_peak": gf / peak if peak else None}
            r = speed[e["name"]][str(n)]
            print(f"{n} thread(s) {e['name']:<32} " + "  ".join(
                f"{dt} {r[dt]['s_per_clip']:.3f} s (x{r[dt]['speedup_over_fp32']:.2f}, CPU-time x"
                f"{r[dt]['cpu_speedup_over_fp32']:.2f}, {r[dt]['gflop_per_s']:.0f} GFLOP/s"
                + (f", {100 * r[dt]['fraction_of_peak']:.0f}% of peak)" if r[dt]["fraction_of_peak"] else ")")
                for dt in DTYPES), flush=True)

    res = {"cpu": info, "settings": vars(args), "gemm_ceiling_gflop_per_s": gemm, "inputs": "seeded N(0,1) clips: --classes prototypes + noise; "
           "head fitted as a nearest-centroid classifier on fp32 features; backbone random-init",
           "flop_convention": "gmacs = multiply-adds (papers' GFLOPs); gflop_per_s = 2 x gmacs / s",
           "models": {e["name"]: {"input": [1, *e["shape"]], "gmacs": e["gmacs"], "params_m": e["params_m"],
                                  "speed": speed[e["name"]], "agreement": agree.get(e["name"])} for e in entries},
           "load_average_at_end": _loadavg(), "total_s": time.perf_counter() - t_start}
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results"
                                           / f"cpu_precision_{cpu_slug(info['model_name'])}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out} ({res['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
