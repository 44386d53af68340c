"""GEMM throughput of ``F.linear`` (MKL on x86) against oneDNN, for the layer shapes of our models.

Why ``videoformers.ops.linear`` routes fp32 CPU linear layers through oneDNN: on AMD CPUs
MKL's sgemm takes a generic code path. Run it on your machine to see what the switch buys there::

    OMP_NUM_THREADS=1 python benchmarks/linear_backends.py --threads 1
    python benchmarks/linear_backends.py --threads 2

Prints GFLOP/s (2 x multiply-adds per second) of the forward GEMM and of the two backward GEMMs
(dX = g W, dW = g^T X) through ``F.linear`` / ``matmul`` and through oneDNN, plus the max relative
difference of the results (fp32 summation order).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

from videoformers.ops import onednn as layers

# (rows, in, out): UniFormerV2-B/16 8x224 (8 frames x 197 tokens; qkv, fc1, fc2), UniFormer-S stage 1
# point-wise layers at 16x224 (8 x 56 x 56 tokens, 64 -> 256), DualFormer-T stage 3 (8 x 14 x 14, 256 -> 1024).
SHAPES = [(1576, 768, 2304), (1576, 768, 3072), (1576, 3072, 768), (25088, 64, 256), (1568, 256, 1024), (8, 768, 768)]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(fn, iters: int) -> float:
    fn()
    best = float("inf")
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    op = layers._ONEDNN_LINEAR
    print(f"{_cpu_name()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"oneDNN linear available: {op is not None}")
    if op is None:
        return 0
    print(f"{'rows x in -> out':>22} | {'forward GFLOP/s':>17} | {'dX GFLOP/s':>17} | {'dW GFLOP/s':>17} | max rel diff")
    print(f"{'':>22} | {'F.linear  oneDNN':>17} | {'matmul  oneDNN':>17} | {'matmul  oneDNN':>17} |")
    for m, k, n in SHAPES:
        g = torch.Generator().manual_seed(0)
        x, w, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g), torch.randn(n, generator=g)
        gy = torch.randn(m, n, generator=g)
        flops = 2.0 * m * k * n / 1e9
        rate = lambda fn: flops / _time(fn, args.iters)  # noqa: E731
        fwd = (rate(lambda: F.linear(x, w, b)), rate(lambda: op(x, w, b, "none", [], "")))
        dx = (rate(lambda: gy @ w), rate(lambda: op(gy, w.t().contiguous(), None, "none", [], "")))
        dw = (rate(lambda: gy.t() @ x), rate(lambda: op(gy.t(), x.t(), None, "none", [], "")))
        ref = F.linear(x, w, b)
        diff = ((op(x, w, b, "none", [], "") - ref).abs().max() / ref.abs().max()).item()
        print(f"{m:>7} x {k:>4} -> {n:>5} | {fwd[0]:7.1f}  {fwd[1]:7.1f} | {dx[0]:7.1f}  {dx[1]:7.1f} | "
              f"{dw[0]:7.1f}  {dw[1]:7.1f} | {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
