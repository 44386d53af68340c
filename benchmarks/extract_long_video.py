"""``videoformers extract`` on one long video: windows per second and peak memory, at 0 and 2 workers.

Generates (once, into ``--cache-dir``) a ``--minutes``-long h264 video at 1280x720, 25 fps, a moving
gradient with a keyframe every 250 frames, then runs :func:`videoformers.tools.extract.extract_files`
with a small UniFormer (one block per stage, random weights: the decoding and the windowing are measured,
not a model) on 16-frame windows at frame interval 4 (the model card's 16x4), short side 256, crop 224.
Each setting runs in a fresh process; its peak RSS (``ru_maxrss`` of the process and its workers) is
what streaming must keep bounded: it must not grow with the video's length.

    python benchmarks/extract_long_video.py [--minutes 10] [--workers 0 2] [--threads 2]

Prints the CPU model and ISA flags, then one JSON line per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time


def cpu() -> str:
    model, flags = platform.processor(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model in ("", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model} ({os.cpu_count()} cores; {' '.join(isa) or 'no AVX2'})"


def make_video(path: str, minutes: float) -> None:
    import av
    import numpy as np

    n = int(minutes * 60 * 25)
    h, w = 720, 1280
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "g": "250", "crf": "30"}
        for i in range(n):
            img = np.empty((h, w, 3), np.uint8)
            img[..., 0] = (xx + 4 * i) % 256
            img[..., 1] = (yy + 2 * i) % 256
            img[..., 2] = (i % 256)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def one(video: str, workers: int, threads: int) -> dict:
    import torch

    import videoformers as vf
    from videoformers.tools.extract import extract_files

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = vf.create_model("uniformer_small", depth=(1, 1, 1, 1), embed_dim=(32, 64, 128, 256), head_dim=32).eval()
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        c = extract_files([video], model, out, num_frames=16, frame_interval=4, short_side=256, crop=224,
                          batch_size=8, num_workers=workers, progress=False)
        dt = time.perf_counter() - t
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"workers": workers, "threads": threads, "windows": c["windows"], "seconds": round(dt, 1),
            "windows_per_s": round(c["windows"] / dt, 2), "peak_rss_mb": round(own, 0),
            "peak_rss_worker_mb": round(kids, 0) if workers else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "videoformers_bench"))
    ap.add_argument("--one", nargs=3, metavar=("VIDEO", "WORKERS", "THREADS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], int(a.one[1]), int(a.one[2]))))
        return
    print(f"# {cpu()}; python {platform.python_version()}")
    os.makedirs(a.cache_dir, exist_ok=True)
    video = os.path.join(a.cache_dir, f"long_{a.minutes:g}min_720p.mp4")
    if not os.path.exists(video):
        t = time.perf_counter()
        make_video(video + ".tmp.mp4", a.minutes)
        os.replace(video + ".tmp.mp4", video)
        print(f"# generated {video} in {time.perf_counter() - t:.0f}s ({os.path.getsize(video) / 2**20:.0f} MB)")
    for w in a.workers:
        r = subprocess.run([sys.executable, __file__, "--one", video, str(w), str(a.threads)], capture_output=True,
                           text=True, check=True)
        print(json.dumps({"video_minutes": a.minutes, **json.loads(r.stdout.strip().splitlines()[-1])}), flush=True)


if __name__ == "__main__":
    main()
