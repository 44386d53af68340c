"""``videoformers bench``: latency, throughput and peak memory of a model, forward and forward+backward.

    videoformers bench NAME [--frames T] [--size S] [--batch B] [--device cpu|cuda] [--dtype fp32|bf16|fp16|int8]
                       [--compile] [--iters 10] [--warmup 3] [--no-backward] [--sdpa flash] [--json]

Timings are medians over ``--iters`` runs after ``--warmup`` runs (CUDA: synchronised, so each time is
the whole step on the device). Throughput is ``batch / median latency`` in clips per second.

Peak memory is what a step needs beyond what was allocated before it (weights, input): on CUDA
``torch.cuda.max_memory_allocated`` during the timed runs minus the allocation before them; on CPU
the peak of live tensor storages during one extra, untimed run (a dispatch-mode tracker: the same
quantity without a caching allocator). Forward+backward includes the parameter gradients.

Precision goes through :mod:`videoformers.ops.precision`: ``bf16``/``fp16`` autocast (fp32 weights),
``int8`` dynamic quantisation of the linear layers (CPU, forward only).

Utilisation. The model's FLOPs are the multiply-adds :func:`videoformers.count_flops` counts (the
papers' "GFLOPs", 1 multiply-add = 1 FLOP, printed as "GFLOPs/clip"); achieved GFLOP/s and the
fraction of the peak use the hardware convention, 2 FLOP per multiply-add (x3 for forward+backward):
``2 x MACs x batch / latency``. The peak is the device's: GPUs with a known dense peak (H100/H200 SXM
bf16: 989 TFLOP/s, in bf16/fp16 or tf32), CPUs from cores x clock x FLOP per cycle of the ISA for the
dtype (:func:`videoformers.tools.hardware.cpu_peak_gflops`, threads = ``torch.get_num_threads()``).
The fraction is ``forward_mfu`` / ``backward_mfu`` in ``--json``. It counts the *model's* FLOPs:
recomputation and attention kernels' extra work are not counted. On CPU every result also records
:func:`videoformers.tools.hardware.cpu_info` (model, ISA flags, clock, torch/oneDNN/MKL versions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from videoformers.analysis import LiveTensorMemory
from videoformers.models.layers import DropPath
from videoformers.ops.precision import autocast_for, parse_precision, quantize_for_inference, torch_dtype

__all__ = ["benchmark", "BenchResult", "peak_flops", "PEAK_TFLOPS"]

# Dense (no sparsity) tensor-core peaks in TFLOP/s, from the vendors' datasheets: (bf16/fp16, tf32).
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 494.0),
    "H100 SXM": (989.0, 494.0),
    "H100 80GB HBM3": (989.0, 494.0),   # the SXM part reports itself this way
    "H100 NVL": (835.0, 418.0),
    "H100 PCIe": (756.0, 378.0),
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "A10G": (70.0, 35.0),
}


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """Dense peak FLOP/s of ``device`` for ``dtype`` (``None`` when unknown, or on CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):  # most specific first
        if key in name:
            half, tf32 = PEAK_TFLOPS[key]
            if dtype in (torch.bfloat16, torch.float16):
                return half * 1e12
            if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
                return tf32 * 1e12
            return None
    return None


@dataclass
class BenchResult:
    model: str
    input_shape: tuple[int, ...]
    device: str
    dtype: str
    compiled: bool
    params_m: float
    gflops_per_clip: float | None
    forward_ms: float
    forward_clips_per_s: float
    forward_peak_mem_mb: float | None
    backward_ms: float | None = None        # forward + backward
    backward_clips_per_s: float | None = None
    backward_peak_mem_mb: float | None = None
    memory_method: str = ""
    forward_mfu: float | None = None
    backward_mfu: float | None = None
    peak_tflops: float | None = None
    device_name: str = ""
    sdpa: str | None = None
    notes: list[str] = field(default_factory=list)
    forward_gflop_per_s: float | None = None    # 2 FLOP per multiply-add
    backward_gflop_per_s: float | None = None
    peak_basis: str | None = None               # how the peak was obtained
    cpu: dict | None = None                     # videoformers.tools.hardware.cpu_info() on CPU runs


# ------------------------------------------------------------------------------------------------
# Memory (CPU: videoformers.analysis.LiveTensorMemory)
# ------------------------------------------------------------------------------------------------


class _CudaPeak:
    method = "cuda_max_memory_allocated"

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize(self.device)
        self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        return False


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _sdpa_context(sdpa: str | None):
    if not sdpa:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "math": SDPBackend.MATH, "cudnn": SDPBackend.CUDNN_ATTENTION}
    if sdpa not in backends:
        raise ValueError(f"--sdpa must be one of {sorted(backends)}, got {sdpa!r}")
    return sdpa_kernel([backends[sdpa]])


def benchmark(
    model: nn.Module | str,
    *,
    frames: int | None = None,
    size: int | None = None,
    batch: int = 1,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "fp32",
    compile: bool = False,
    warmup: int = 3,
    iters: int = 10,
    backward: bool = True,
    sdpa: str | None = None,
    count_model_flops: bool = True,
    **overrides,
) -> BenchResult:
    """Benchmark ``model`` (a registered name, built with ``overrides``, or a built model).

    ``frames``/``size`` default to the model card's. ``dtype`` ``"bf16"``/``"fp16"`` runs under
    autocast on CUDA and on CPU (fp32 weights; fp16 on CPU is warned about: slower than fp32); ``"int8"``
    quantises the linear layers dynamically (CPU, forward only: ``backward`` is skipped with a note).
    Forward runs under ``torch.inference_mode``;
    forward+backward sums the logits and back-propagates (the model in ``train`` mode, dropout off).
    ``sdpa`` restricts scaled-dot-product attention to one backend (``flash``, ``efficient``,
    ``math``, ``cudnn``).
    """
    from videoformers.analysis import count_flops, count_params
    from videoformers.registry import create_model

    device = torch.device(device)
    prec = parse_precision(dtype)
    dt = torch_dtype(prec)
    if prec == "int8" and device.type != "cpu":
        raise ValueError(f"--dtype int8 (dynamic quantisation) runs on CPU only, not on {device.type}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but no CUDA device is available")
    if isinstance(model, str):
        name = model
        from videoformers.registry import get_model_card

        kw = dict(overrides)
        if frames is not None and get_model_card(name).is_video:
            kw.setdefault("num_frames", frames)
        if size is not None:
            kw.setdefault("img_size", size)
        model = create_model(name, **kw)
    else:
        name = getattr(model, "model_name", type(model).__name__)
    card = getattr(model, "model_card", None)
    if card is None and (frames is None or size is None):
        raise ValueError("frames and size are needed for a model without a model_card")
    in_size = list(card.input_size) if card is not None else [3, frames, size, size]
    if frames is not None and len(in_size) == 4:
        in_size[1] = frames
    if size is not None:
        in_size[-2] = in_size[-1] = size
    shape = (batch, *in_size)

    notes: list[str] = []
    gflops = None
    if count_model_flops:
        try:
            gflops = count_flops(model, (1, *in_size))
        except Exception as e:  # FLOP counting is informative only
            notes.append(f"FLOP counting failed: {type(e).__name__}: {e}")
    params_m = count_params(model) / 1e6

    model = model.to(device)
    if device.type == "cpu" and prec == "fp16":
        notes.append("fp16 on CPU: slower than fp32, use bf16")
    autocast = autocast_for(device, prec)
    x = torch.randn(shape, device=device, dtype=torch.float32)
    if prec == "int8":
        model = quantize_for_inference(model, x[:1])
        if backward:
            notes.append("int8: forward only (dynamic quantisation is an inference transform)")
            backward = False
    run_model = torch.compile(model) if compile else model

    def fwd():
        with torch.inference_mode(), autocast, _sdpa_context(sdpa):
            out = run_model(x)
        return out

    def fwd_bwd():
        with autocast, _sdpa_context(sdpa):
            out = run_model(x)
            loss = sum(o.float().sum() for o in (out if isinstance(out, (tuple, list)) else [out]))
        loss.backward()
        for p in model.parameters():
            p.grad = None

    def measure(fn):
        """(times, peak MB, method): CUDA peak during the timed runs; CPU peak on an extra run."""
        if device.type == "cuda":
            with _CudaPeak(device) as mem:
                times = _time(fn, device, warmup, iters)
            return times, mem.peak_mb, mem.method
        times = _time(fn, device, warmup, iters)
        if compile:
            return times, None, "not measured with --compile on CPU"
        with LiveTensorMemory() as mem:
            fn()
        return times, mem.peak_mb, mem.method

    model.eval()
    fwd()  # first call: compilation, lazy initialisation, allocator warm-up
    t_f, mem_f, mem_method = measure(fwd)
    cpu = None
    if device.type == "cpu":
        from videoformers.tools.hardware import cpu_info

        cpu = cpu_info()
    res = BenchResult(
        model=name, input_shape=shape, device=str(device),
        dtype="int8" if prec == "int8" else str(dt).replace("torch.", ""), compiled=compile,
        params_m=params_m, gflops_per_clip=gflops,
        forward_ms=statistics.median(t_f) * 1e3, forward_clips_per_s=batch / statistics.median(t_f),
        forward_peak_mem_mb=mem_f, memory_method=mem_method, sdpa=sdpa, notes=notes,
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else (
            cpu["model_name"] if cpu else str(device)), cpu=cpu,
    )
    if backward:
        model.train()
        _train_dropout_off(model)
        fwd_bwd()
        t_b, mem_b, _ = measure(fwd_bwd)
        model.eval()
        res.backward_ms = statistics.median(t_b) * 1e3
        res.backward_clips_per_s = batch / statistics.median(t_b)
        res.backward_peak_mem_mb = mem_b
    peak = peak_flops(device, dt) if prec != "int8" else None
    if peak is not None:
        res.peak_basis = f"{res.device_name} dense peak for {res.dtype}"
    elif cpu is not None:
        peak, res.peak_basis = _cpu_peak(prec, cpu)
    if gflops is not None:
        flop_f = 2 * gflops * 1e9 * batch  # count_flops counts multiply-adds: 2 FLOP each
        res.forward_gflop_per_s = flop_f / (res.forward_ms / 1e3) / 1e9
        if res.backward_ms is not None:
            res.backward_gflop_per_s = 3 * flop_f / (res.backward_ms / 1e3) / 1e9
        if peak is not None:
            res.peak_tflops = peak / 1e12
            res.forward_mfu = res.forward_gflop_per_s * 1e9 / peak
            if res.backward_gflop_per_s is not None:
                res.backward_mfu = res.backward_gflop_per_s * 1e9 / peak
    if cpu is not None and res.forward_mfu is not None and max(res.forward_mfu, res.backward_mfu or 0) > 1:
        res.notes.append(f"above the computed peak: the clock used ({cpu['clock_ghz']} GHz, {cpu['clock_source']}) is "
                         "below the one the CPU runs at (turbo); VIDEOFORMERS_CPU_GHZ=<GHz> sets it")
    if peak is None:
        res.notes.append("no utilisation: unknown device peak for this dtype"
                         + (" (clock or ISA rate unknown; VIDEOFORMERS_CPU_GHZ sets the clock)" if cpu else ""))
    return res


def _cpu_peak(prec: str, cpu: dict) -> tuple[float | None, str | None]:
    """(peak FLOP/s, how it was obtained) of the threads torch uses on this CPU, for ``prec``."""
    from videoformers.tools.hardware import cpu_peak_gflops, flops_per_cycle

    g = cpu_peak_gflops(prec, torch.get_num_threads(), cpu)
    if g is None:
        return None, None
    per_cycle, why = flops_per_cycle(prec, cpu["flags"], cpu["vendor"], cpu["cpu_family"], cpu["cpu_model"])
    cores = min(torch.get_num_threads(), cpu.get("physical_cores") or torch.get_num_threads())
    return g * 1e9, (f"{cores} core(s) x {cpu['clock_ghz']:.2f} GHz ({cpu['clock_source']}) x {per_cycle:.0f} "
                     f"FLOP/cycle [{why}] = {g:.0f} GFLOP/s {prec}")


def _train_dropout_off(model: nn.Module) -> None:
    """Train mode (BatchNorm batch statistics, grad checkpointing paths) without random dropping."""
    for m in model.modules():
        if isinstance(m, (nn.Dropout, DropPath)):
            m.eval()


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def _fmt(v, spec: str, unit: str = "") -> str:
    return "-" if v is None else f"{format(v, spec)}{unit}"


def print_result(r: BenchResult) -> None:
    print(f"{r.model}  input {list(r.input_shape)}  {r.device} ({r.device_name})  {r.dtype}"
          f"{'  compiled' if r.compiled else ''}{f'  sdpa={r.sdpa}' if r.sdpa else ''}")
    if r.cpu:
        from videoformers.ops.onednn import linear_backend
        from videoformers.tools.hardware import cpu_summary

        lb = linear_backend()
        how = f"measured x{lb['speedup']:.2f} over F.linear" if "speedup" in lb else lb["how"]
        print(f"cpu: {cpu_summary(r.cpu)}; fp32 linear layers: {'oneDNN' if lb['onednn'] else 'F.linear'} ({how})")
    print(f"params {r.params_m:.2f} M   GFLOPs/clip {_fmt(r.gflops_per_clip, '.2f')} (multiply-adds, the papers' FLOPs)")
    print(f"{'':18}{'latency':>12}{'clips/s':>10}{'peak mem':>12}{'GFLOP/s':>10}{'of peak':>9}")
    pct = lambda v: None if v is None else 100 * v  # noqa: E731
    print(f"{'forward':18}{_fmt(r.forward_ms, '.1f', ' ms'):>12}{_fmt(r.forward_clips_per_s, '.1f'):>10}"
          f"{_fmt(r.forward_peak_mem_mb, '.0f', ' MB'):>12}{_fmt(r.forward_gflop_per_s, '.1f'):>10}"
          f"{_fmt(pct(r.forward_mfu), '.1f', '%'):>9}")
    if r.backward_ms is not None:
        print(f"{'forward+backward':18}{_fmt(r.backward_ms, '.1f', ' ms'):>12}{_fmt(r.backward_clips_per_s, '.1f'):>10}"
              f"{_fmt(r.backward_peak_mem_mb, '.0f', ' MB'):>12}{_fmt(r.backward_gflop_per_s, '.1f'):>10}"
              f"{_fmt(pct(r.backward_mfu), '.1f', '%'):>9}")
    print("GFLOP/s: 2 FLOP per multiply-add (x3 for forward+backward) / latency")
    print(f"peak memory: {r.memory_method}" + (f"; peak {r.peak_tflops * 1e3:.0f} GFLOP/s: {r.peak_basis}"
                                              if r.peak_tflops else ""))
    for n in r.notes:
        print(f"note: {n}")


def run(args: argparse.Namespace) -> int:
    from .convert import parse_overrides

    if args.train_memory:
        return _train_memory(args, parse_overrides(args.override))
    res = benchmark(args.name, frames=args.frames, size=args.size, batch=args.batch, device=args.device,
                    dtype=args.dtype, compile=args.compile, warmup=args.warmup, iters=args.iters,
                    backward=not args.no_backward, sdpa=args.sdpa, **parse_overrides(args.override))
    if args.json:
        print(json.dumps(asdict(res), indent=2))
    else:
        print_result(res)
    return 0


def _train_memory(args: argparse.Namespace, overrides: dict) -> int:
    """``--train-memory``: the memory of a training step, measured on the meta device (no compute)."""
    from videoformers.analysis import build_on_meta, training_memory
    from videoformers.registry import create_model, get_model_card

    card = get_model_card(args.name)
    frames, size = args.frames or card.num_frames, args.size or card.img_size
    kw = dict(overrides, img_size=size, **({"num_frames": frames} if card.is_video else {}))
    model = build_on_meta(lambda: create_model(args.name, **kw))
    shape = (args.batch, 3, frames, size, size) if card.is_video else (args.batch, 3, size, size)
    rows = [training_memory(model, shape, grad_checkpointing=g) for g in (None, True)]
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return 0
    print(f"{args.name} training step, input {shape}, fp32 (measured on the meta device), MiB:")
    print(f"  weights {rows[0].params:.0f}, gradients {rows[0].grads:.0f} (+ optimiser state, e.g. AdamW 2x weights)")
    for r, label in zip(rows, ("no gradient checkpointing", "gradient checkpointing (every block)")):
        print(f"  {label:<38} activations {r.activations:9.0f}   peak of forward+backward {r.peak:9.0f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency, clips/s, peak memory and utilisation (GFLOP/s, %% of peak) of a model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registered model name")
    p.add_argument("--frames", type=int, default=None, help="clip length (default: the card's)")
    p.add_argument("--size", type=int, default=None, help="crop size (default: the card's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16", "int8"),
                   help="bf16/fp16: autocast; int8: dynamic quantisation of the linear layers (CPU, forward only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--no-backward", action="store_true", help="forward only")
    p.add_argument("--sdpa", default=None, choices=("flash", "efficient", "math", "cudnn"),
                   help="restrict scaled_dot_product_attention to one backend")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="builder override, e.g. depth=[1,1,1,1] (repeatable)")
    p.add_argument("--train-memory", action="store_true",
                   help="only report a training step's memory (activations, peak), with and without gradient "
                        "checkpointing, measured on the meta device: no compute, any model size")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
