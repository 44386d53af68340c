"""Throughput of the light-weight UniFormer (XXS / XS) against UniFormer-S at the same input.

The paper (UniFormer TPAMI Sec. 6.6, Tables 11-12) sells the hourglass models by their accuracy-throughput
trade-off; this prints clips/s for batch 1 and a large batch (inference, eval mode) so the 2-4x
claim can be checked on your hardware. Wall-clock and process CPU time are both reported; on a
shared machine the CPU-time numbers (per thread) are the stable ones.

    python benchmarks/light_throughput.py --frames 16 --size 160 --batches 1 32
    python benchmarks/light_throughput.py --device cuda --dtype bf16 --batches 1 64
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
import videoformers as vf  # noqa: E402


def measure(model, x, iters: int, dtype) -> tuple[float, float]:
    dev = x.device
    wall, cpu = [], []
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
        model(x)
        for _ in range(iters):
            t, c = time.perf_counter(), time.process_time()
            model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["uniformer_xxs", "uniformer_xs", "uniformer_small"])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    dev = torch.device(args.device)
    print(f"input {args.frames}x{args.size}x{args.size}, {args.device} {args.dtype}, {args.threads} thread(s)")
    print(f"{'model':<18} {'GFLOPs':>7} {'batch':>5} {'clips/s':>9} {'clips/CPU-s':>12}")
    base: dict[int, float] = {}
    rows = []
    for name in args.models:
        model = vf.create_model(name).eval().to(dev)
        gflops = vf.count_flops(model, (1, 3, args.frames, args.size, args.size))
        for b in args.batches:
            x = torch.randn(b, 3, args.frames, args.size, args.size, device=dev)
            wall, cpu = measure(model, x, args.iters, dtype)
            rows.append((name, gflops, b, b / wall, b / cpu))
            if name == "uniformer_small":
                base[b] = b / cpu
    for name, gflops, b, cps, cpcs in rows:
        ratio = f"  x{cpcs / base[b]:.2f} vs S" if b in base and name != "uniformer_small" else ""
        print(f"{name:<18} {gflops:7.2f} {b:5d} {cps:9.2f} {cpcs:12.2f}{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
