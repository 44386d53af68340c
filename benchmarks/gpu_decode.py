"""GPU (NVDEC, torchcodec's CUDA decoder) vs CPU decoding of training clips (issue 19).

Reports say GPU decoding is often slower than the CPU for the short clips of action recognition (the
per-seek cost and the host copy dominate), so ``decoder="torchcodec-cuda"`` is an option, never the
default, until this says otherwise on the machine at hand. For each video and clip pattern (dense 16x4,
TSN 8 segments) it times PyAV, torchcodec on the CPU and torchcodec on the GPU, alternating, one process,
and checks that the GPU frames equal the CPU ones (max abs difference on uint8 RGB). Without a GPU or
without torchcodec's CUDA build it says so and exits 0.

    python benchmarks/gpu_decode.py [--clips 20] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from videoformers.data import available_decoders, open_video
    from videoformers.data.sampling import sample_indices
    from videoformers.data.synthetic import make_benchmark_video

    if not torch.cuda.is_available():
        print("no CUDA GPU visible: nothing to measure (GPU decoding skipped)")
        return 0
    if "torchcodec" not in available_decoders():
        print("torchcodec does not import here: nothing to measure (pip install torchcodec, CUDA build)")
        return 0
    base = Path(tempfile.mkdtemp(prefix="vf-gpudec-"))
    videos = {"340x256_10s": make_benchmark_video(str(base / "a.mp4"), seconds=10),
              "1280x720_10s": make_benchmark_video(str(base / "b.mp4"), seconds=10, width=1280, height=720)}
    rows = {}
    print(f"GPU: {torch.cuda.get_device_name()}", flush=True)
    for name, path in videos.items():
        with open_video(path) as r:
            n = r.info.num_frames
        sets = [np.asarray(sample_indices("dense" if k % 2 == 0 else "uniform", n, 16 if k % 2 == 0 else 8,
                                          train=True, frame_interval=4)).reshape(-1) for k in range(a.clips)]
        times = {d: [] for d in ("pyav", "torchcodec", "torchcodec-cuda")}
        diff = 0
        readers = {d: open_video(path, decoder=d) for d in times}
        try:
            for idx in sets:
                outs = {}
                for d, r in readers.items():  # alternating decoders, clip by clip
                    if d == "torchcodec-cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    outs[d] = r.read(idx)
                    times[d].append(time.perf_counter() - t0)
                diff = max(diff, int(np.abs(outs["torchcodec-cuda"].astype(np.int16)
                                            - outs["torchcodec"].astype(np.int16)).max()))
        finally:
            for r in readers.values():
                r.close()
        rows[name] = {d: 1e3 * statistics.median(v) for d, v in times.items()} | {"max_abs_diff_gpu_vs_cpu": diff}
        print(name, {k: round(v, 1) if isinstance(v, float) else v for k, v in rows[name].items()}, flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "ms_per_clip": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
