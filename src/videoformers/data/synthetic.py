"""Generated videos: a temporal data set for the demo and the tests, and test/benchmark clips.

``generate_dataset(out_dir, ...)`` writes real video files (h264 mp4) and annotation lists.

``task="temporal"`` (default) -- what moves how. Six classes::

    0 moving left   1 moving right   2 moving up   3 moving down
    4 rotating clockwise   5 rotating counter-clockwise

One arrow-head shape per clip on a random background (two-colour gradient plus a random low-frequency
texture), with random colour, size, orientation, position and speed. Motion wraps around the frame
edges (a torus), so position and orientation are uniformly distributed in *every* frame for *every*
class: a single frame carries no information about the label (chance level), and shuffling the
frames destroys the signal. Optional static distractor shapes (``num_distractors``) make the model
find the one that moves.

``task="scene"`` -- the control task that single frames solve: the background pattern is the label
(``horizontal stripes``, ``vertical stripes``, ``checkerboard``, ``rings``), with random colours and
frequencies, while a shape moves randomly (as in the temporal task) as a distractor.

``task="order"`` -- the order of appearance. Six classes, the permutations of a red, a green and a blue
shape (``"red, green, blue"``, ``"red, blue, green"``, ..., ``"blue, green, red"``): each object is shown
*alone* for about a third of the clip (random position, size, orientation, a slight drift and spin, on
the same random background; optional static grey distractors), so every frame shows exactly one object.
The frames per object are a random permutation of ``(b - 1, b, b + 1)`` for ``num_frames = 3 b`` (one
or two extra frames go to the longer ones), drawn per *object*, like everything else about it: with a
given seed the six classes show the very same frames, only in a different order. A frame taken at a
random time, the multiset of frames (a shuffled clip) and any per-frame statistic are at chance; only the
order tells the classes apart (not so a frame at a *known* time: the first frame shows the first
object). Segment boundaries move by at most about a frame around the thirds (no exact-count cue), and
each object spans ``>= b - 1`` frames, so the clip sampler must cover the whole video -- dense sampling
with a span of about ``num_frames`` (8 frames at stride 3 from 24: 2-3 frames per object, and at the
centred test offset each object is equally likely to be the one with 2) or segment-based sampling; a
shorter dense span drops frames of the first or last object and blurs the labels.

Generation is deterministic for a given ``seed`` (each clip has its own RNG stream, x264 runs
single-threaded) and parallel (a process pool): a few hundred 64x64 clips take seconds.

Helpers for tests and benchmarks: :func:`write_video` (any PyAV encoder/container, GOP, B-frames,
explicit timestamps for VFR), :func:`index_frames` / :func:`decode_index` (frames that encode their own
index), :func:`make_benchmark_video` (Kinetics-like 340x256 content with a realistic bitrate).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "TEMPORAL_CLASSES",
    "SCENE_CLASSES",
    "ORDER_CLASSES",
    "ORDER_COLOURS",
    "order_segment_lengths",
    "generate_dataset",
    "render_clip",
    "write_video",
    "index_frames",
    "decode_index",
    "make_benchmark_video",
]

TEMPORAL_CLASSES = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "rotating clockwise",
    "rotating counter-clockwise",
)
SCENE_CLASSES = ("horizontal stripes", "vertical stripes", "checkerboard", "rings")
ORDER_COLOURS = ("red", "green", "blue")
_ORDER_PERMS = tuple(itertools.permutations(range(3)))  # class k shows the objects in order _ORDER_PERMS[k]
ORDER_CLASSES = tuple(", ".join(ORDER_COLOURS[i] for i in p) for p in _ORDER_PERMS)


# --------------------------------------------------------------------------------------------------
# Writing videos
# --------------------------------------------------------------------------------------------------


def write_video(
    path: str,
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    gop: int | None = None,
    bframes: int | None = None,
    crf: int | None = None,
    options: dict | None = None,
    container_format: str | None = None,
    qp: int | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    threads: int = 1,
) -> str:
    """Encode RGB ``uint8`` frames ``(H, W, 3)`` (or ``(H, W)`` grey) with PyAV.

    ``gop`` is the keyframe interval, ``bframes`` the number of consecutive B-frames (h264/hevc/mpeg4),
    ``crf`` the x264/x265/vpx quality, ``qp`` a constant x264 quantiser. ``pts`` (with ``time_base``) sets
    explicit timestamps, e.g. for variable frame rate. Only constant-``qp`` x264 output is byte-for-byte
    reproducible: x264's CRF rate control (mb-tree lookahead) is not, even single-threaded."""
    import av

    frames = list(frames)
    if not frames:
        raise ValueError("no frames to write")
    first = np.asarray(frames[0])
    h, w = first.shape[:2]
    opts = dict(options or {})
    if codec in ("libx264", "libx265"):
        if gop is not None:
            opts["g" if codec == "libx264" else "x265-params"] = (
                str(gop) if codec == "libx264" else f"keyint={gop}:min-keyint={gop}:log-level=error"
            )
        if codec == "libx265" and "x265-params" not in opts:
            opts["x265-params"] = "log-level=error"
        if codec == "libx264" and bframes is not None:
            opts["bf"] = str(bframes)
        if codec == "libx265" and bframes is not None:
            opts["x265-params"] = opts["x265-params"] + f":bframes={bframes}"
        if crf is not None:
            opts["crf"] = str(crf)
        if qp is not None:
            opts["qp"] = str(qp)
        if codec == "libx264":
            opts.setdefault("threads", str(threads))
            opts.setdefault("preset", "veryfast")
    elif codec.startswith("libvpx"):
        if gop is not None:
            opts["g"] = str(gop)
        if crf is not None:
            opts.update({"crf": str(crf), "b": "0"})
        opts.setdefault("threads", str(threads))
        opts.setdefault("deadline", "realtime")
        opts.setdefault("cpu-used", "8")
    elif codec in ("mpeg4", "mpeg2video", "mpeg1video"):
        if gop is not None:
            opts["g"] = str(gop)
        if bframes is not None:
            opts["bf"] = str(bframes)
    if pix_fmt is None:
        pix_fmt = {"mjpeg": "yuvj420p", "gif": "rgb8", "ffv1": "yuv420p"}.get(codec, "yuv420p")
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, "w", format=container_format) as c:
        s = c.add_stream(codec, rate=rate, options=opts)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if codec in ("mpeg4", "mpeg2video", "mpeg1video") and "b" not in opts:
            s.codec_context.qscale = 3  # constant quality (-q:v 3) instead of the 200 kbit/s default
        if time_base is not None:
            s.codec_context.time_base = time_base
        for i, f in enumerate(frames):
            f = np.asarray(f)
            if f.ndim == 2:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")
            else:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[..., :3]), format="rgb24")
            if pts is not None:
                vf.pts = int(pts[i])
                vf.time_base = time_base or s.codec_context.time_base
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# --------------------------------------------------------------------------------------------------
# Frames that encode their own index
# --------------------------------------------------------------------------------------------------

_BITS = 12
_BLOCK = 8


def index_frames(num_frames: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """``(num_frames, H, W, 3)`` uint8 frames: a textured background that moves (so P/B-frames have real
    motion to code) and the frame index as 12 black/white 8x8 blocks in the top rows (read back with
    :func:`decode_index`, robust to lossy coding). Needs ``W >= 48`` and ``H >= 16``."""
    if width < 6 * _BLOCK or height < 2 * _BLOCK:
        raise ValueError("index frames need at least 48x16 pixels")
    rng = np.random.default_rng(seed)
    tex = rng.integers(40, 216, size=(height // 4 + 2, width // 4 + 2, 3)).astype(np.uint8)
    tex = np.kron(tex, np.ones((4, 4, 1), dtype=np.uint8))  # blocky texture: compressible but not flat
    out = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    per_row = width // _BLOCK
    for i in range(num_frames):
        f = np.roll(tex, (i * 3, i * 2), axis=(0, 1))[:height, :width]
        out[i] = f
        for b in range(_BITS):
            r, c = divmod(b, per_row)
            out[i, r * _BLOCK:(r + 1) * _BLOCK, c * _BLOCK:(c + 1) * _BLOCK] = 255 if (i >> b) & 1 else 0
    return out


def decode_index(frame: np.ndarray) -> int:
    """The index that :func:`index_frames` wrote into ``frame`` (H, W, 3)."""
    frame = np.asarray(frame)
    per_row = frame.shape[1] // _BLOCK
    v = 0
    for b in range(_BITS):
        r, c = divmod(b, per_row)
        blk = frame[r * _BLOCK + 2:(r + 1) * _BLOCK - 2, c * _BLOCK + 2:(c + 1) * _BLOCK - 2]
        if blk.mean() > 127:
            v |= 1 << b
    return v


# --------------------------------------------------------------------------------------------------
# The generated data sets
# --------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    # Darker than the moving shape (values <= ~110): random hues, but a fixed contrast polarity, so that
    # motion is a consistent signal for a small model trained from scratch.
    c0, c1 = rng.uniform(0, 100, 3), rng.uniform(0, 100, 3)
    a = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = (np.cos(a) * xx + np.sin(a) * yy)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(2):  # low-frequency texture
        fx, fy = rng.uniform(1, 4, 2)
        ph = rng.uniform(0, 2 * np.pi)
        img += rng.uniform(2, 6) * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)[..., None] * rng.uniform(0.5, 1, 3)
    return img


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A random hue at high brightness (max channel 255, others >= 140)."""
    c = rng.uniform(140, 255, 3)
    c[rng.integers(3)] = 255
    return c


def _contrasting_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    for _ in range(20):
        c = rng.uniform(0, 255, 3)
        if np.abs(c - bg_mean).sum() > 200:
            return c
    return 255 - bg_mean


def _shape_mask(size: int, cx: float, cy: float, radius: float, angle: float, ss: int = 2) -> np.ndarray:
    """Anti-aliased coverage of an arrow-head (isosceles triangle, tip at ``angle``) centred at (cx, cy) on a
    torus of side ``size`` (the shape wraps around the edges)."""
    g = (np.arange(size * ss) + 0.5) / ss
    yy, xx = np.meshgrid(g, g, indexing="ij")
    dx = (xx - cx + size / 2) % size - size / 2
    dy = (yy - cy + size / 2) % size - size / 2
    ca, sa = math.cos(angle), math.sin(angle)
    u = ca * dx + sa * dy  # along the tip direction
    v = -sa * dx + ca * dy
    # Triangle with tip (r, 0) and base corners (-0.6 r, +-0.7 r).
    tip, back, half = radius, -0.6 * radius, 0.7 * radius
    slope = half / (tip - back)
    inside = (u >= back) & (np.abs(v) <= (tip - u) * slope)
    return inside.reshape(size, ss, size, ss).mean(axis=(1, 3))


def _scene_background(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    while np.abs(c0 - c1).sum() < 150:
        c1 = rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    freq = rng.uniform(3, 6)
    ph = rng.uniform(0, 1)
    if label == 0:
        m = np.sin(2 * np.pi * (freq * yy + ph)) > 0
    elif label == 1:
        m = np.sin(2 * np.pi * (freq * xx + ph)) > 0
    elif label == 2:
        m = (np.floor(freq * xx + ph) + np.floor(freq * yy + ph)) % 2 == 0
    else:
        cx, cy = rng.uniform(0.3, 0.7, 2)
        m = np.sin(2 * np.pi * freq * np.hypot(xx - cx, yy - cy) + ph) > 0
    return np.where(m[..., None], c0, c1).astype(np.float64)


def render_clip(task: str, label: int, seed: Sequence[int] | int, size: int = 64, num_frames: int = 24,
                num_distractors: int = 0) -> np.ndarray:
    """The frames ``(T, size, size, 3)`` uint8 of one generated clip (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    if task == "order":
        return _render_order(label, rng, size, num_frames, num_distractors)
    if task == "temporal":
        bg = _background(rng, size)
        motion = label
    elif task == "scene":
        bg = _scene_background(rng, size, label)
        motion = int(rng.integers(len(TEMPORAL_CLASSES)))
    else:
        raise ValueError(f"unknown task {task!r}; expected 'temporal', 'scene' or 'order'")
    bg_mean = bg.reshape(-1, 3).mean(0)
    colour = _bright_colour(rng) if task == "temporal" else _contrasting_colour(rng, bg_mean)
    radius = rng.uniform(0.16, 0.24) * size
    cx, cy = rng.uniform(0, size, 2)
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.03, 0.05) * size           # pixels per frame (translation)
    omega = math.radians(rng.uniform(10, 16))        # radians per frame (rotation)
    static = []
    for _ in range(num_distractors):
        static.append((_bright_colour(rng), rng.uniform(0.12, 0.2) * size, *rng.uniform(0, size, 2),
                       rng.uniform(0, 2 * np.pi)))
    base = bg.copy()
    for col, r, x, y, a in static:
        m = _shape_mask(size, x, y, r, a)[..., None]
        base = base * (1 - m) + col * m
    dirs = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}
    out = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        x, y, a = cx, cy, angle
        if motion in dirs:
            x = cx + dirs[motion][0] * speed * t
            y = cy + dirs[motion][1] * speed * t
        elif motion == 4:
            a = angle + omega * t  # image y points down: increasing angle turns clockwise on screen
        else:
            a = angle - omega * t
        m = _shape_mask(size, x % size, y % size, radius, a)[..., None]
        out[t] = np.clip(base * (1 - m) + colour * m, 0, 255).round().astype(np.uint8)
    return out


def order_segment_lengths(num_frames: int) -> tuple[int, int, int]:
    """The frames per object of the order task, before the per-clip permutation: ``(b - 1, b, b + 1)``
    for ``num_frames = 3 b``, one or two extra frames going to the longer segments."""
    if num_frames < 6:
        raise ValueError(f"the order task needs num_frames >= 6 (two per object), got {num_frames}")
    b, r = divmod(num_frames, 3)
    return b - 1, b + int(r >= 1), b + 1 + int(r >= 2)


def _primary_colour(rng: np.random.Generator, channel: int) -> np.ndarray:
    """A saturated red/green/blue (``channel``) with a little hue jitter: unmistakable for every other."""
    c = rng.uniform(0, 70, 3)
    c[channel] = rng.uniform(200, 255)
    return c


def _render_order(label: int, rng: np.random.Generator, size: int, num_frames: int,
                  num_distractors: int) -> np.ndarray:
    if not 0 <= label < len(ORDER_CLASSES):
        raise ValueError(f"label must be in [0, {len(ORDER_CLASSES)}), got {label}")
    lengths = np.array(order_segment_lengths(num_frames))
    bg = _background(rng, size)
    # Everything about an object -- colour, size, pose, drift, and how many frames it is shown -- is drawn
    # per object in a fixed order, independently of the label: the label only orders the segments.
    objects = []
    for k in range(3):
        colour = _primary_colour(rng, k)
        radius = rng.uniform(0.16, 0.24) * size
        cx, cy = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * np.pi)
        heading = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0, 0.02) * size          # a slight drift (pixels per frame) ...
        spin = math.radians(rng.uniform(-5, 5))     # ... and spin (radians per frame)
        objects.append((colour, radius, cx, cy, angle, speed * math.cos(heading), speed * math.sin(heading), spin))
    frames_per_object = lengths[rng.permutation(3)]
    base = bg.copy()
    for _ in range(num_distractors):  # static grey shapes: never confused with the coloured objects
        col = rng.uniform(150, 230) + rng.uniform(-8, 8, 3)
        r, (x, y), a = rng.uniform(0.12, 0.2) * size, rng.uniform(0, size, 2), rng.uniform(0, 2 * np.pi)
        m = _shape_mask(size, x, y, r, a)[..., None]
        base = base * (1 - m) + col * m
    out = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    t = 0
    for k in _ORDER_PERMS[label]:
        colour, radius, cx, cy, angle, vx, vy, spin = objects[k]
        for j in range(int(frames_per_object[k])):  # j: frames since the object appeared
            m = _shape_mask(size, (cx + vx * j) % size, (cy + vy * j) % size, radius, angle + spin * j)[..., None]
            out[t] = np.clip(base * (1 - m) + colour * m, 0, 255).round().astype(np.uint8)
            t += 1
    return out


def _write_one(job: tuple) -> str:
    path, task, label, seed, size, num_frames, fps, codec, num_distractors = job
    frames = render_clip(task, label, seed, size, num_frames, num_distractors)
    tmp = path + ".tmp.mp4"
    # Constant quantiser: x264's CRF mode is not reproducible run to run (see write_video).
    write_video(tmp, frames, fps=fps, codec=codec, qp=20 if codec == "libx264" else None, threads=1,
                container_format="mp4")
    os.replace(tmp, path)
    return path


def _labels(n: int, k: int, rng: np.random.Generator) -> list[int]:
    labels = [i % k for i in range(n)]  # balanced
    rng.shuffle(labels)
    return labels


def generate_dataset(
    out_dir: str,
    num_train: int = 360,
    num_val: int = 120,
    seed: int = 0,
    task: str = "temporal",
    size: int = 64,
    num_frames: int = 24,
    fps: float = 12,
    codec: str = "libx264",
    num_distractors: int = 0,
    classes: Sequence[int] | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Write a generated data set (see the module docstring) into ``out_dir``.

    Layout: ``out_dir/{train,val}/NNNNNN.mp4``, ``train.txt`` / ``val.txt`` (``relative/path.mp4 label``),
    ``classes.txt`` and ``meta.json``. ``classes`` picks a subset of the task's classes (relabelled
    0..k-1). A directory that already holds the same data set (same ``meta.json``) is reused unless
    ``overwrite``. Returns ``{"root", "train_list", "val_list", "labels_file", "num_classes"}`` -- the
    fields to put into a ``DataConfig``.
    """
    names = {"temporal": TEMPORAL_CLASSES, "scene": SCENE_CLASSES, "order": ORDER_CLASSES}.get(task)
    if names is None:
        raise ValueError(f"unknown task {task!r}; expected 'temporal', 'scene' or 'order'")
    chosen = list(range(len(names))) if classes is None else [int(c) for c in classes]
    if not chosen or any(not 0 <= c < len(names) for c in chosen) or len(set(chosen)) != len(chosen):
        raise ValueError(f"classes must be distinct indices into {list(names)}")
    if size < 16 or num_frames < 2:
        raise ValueError("size must be >= 16 and num_frames >= 2")
    if task == "order":
        order_segment_lengths(num_frames)  # needs >= 6 frames
    out_dir = os.path.abspath(os.path.expanduser(out_dir))
    meta = {"task": task, "num_train": num_train, "num_val": num_val, "seed": seed, "size": size,
            "num_frames": num_frames, "fps": fps, "codec": codec, "num_distractors": num_distractors,
            "classes": chosen, "version": 2}
    result = {
        "root": out_dir,
        "train_list": os.path.join(out_dir, "train.txt"),
        "val_list": os.path.join(out_dir, "val.txt"),
        "labels_file": os.path.join(out_dir, "classes.txt"),
        "num_classes": len(chosen),
    }
    meta_path = os.path.join(out_dir, "meta.json")
    if not overwrite and os.path.isfile(meta_path):
        try:
            with open(meta_path) as f:
                same = json.load(f) == meta
        except (OSError, ValueError):
            same = False
        if same and all(os.path.isfile(result[k]) for k in ("train_list", "val_list", "labels_file")):
            return result
    os.makedirs(out_dir, exist_ok=True)
    jobs, lists = [], {}
    for split_id, (split, n) in enumerate((("train", num_train), ("val", num_val))):
        rng = np.random.default_rng([seed, split_id, 7919])
        labels = _labels(n, len(chosen), rng)
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        rows = []
        for i, lab in enumerate(labels):
            rel = f"{split}/{i:06d}.mp4"
            jobs.append((os.path.join(out_dir, rel), task, chosen[lab], [seed, split_id, i], size, num_frames, fps,
                         codec, num_distractors))
            rows.append(f"{rel} {lab}")
        lists[split] = rows
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
    else:
        for j in jobs:
            _write_one(j)
    for split, rows in lists.items():
        with open(os.path.join(out_dir, f"{split}.txt"), "w") as f:
            f.write("\n".join(rows) + "\n")
    with open(result["labels_file"], "w") as f:
        f.write("\n".join(names[c] for c in chosen) + "\n")
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    return result


# --------------------------------------------------------------------------------------------------
# Benchmark content
# --------------------------------------------------------------------------------------------------


def make_benchmark_video(path: str, seconds: float = 10.0, width: int = 340, height: int = 256, fps: int = 25,
                         gop: int | None = None, codec: str = "libx264", seed: int = 0, crf: int = 23) -> str:
    """A Kinetics-like clip: moving sinusoid background, moving discs, a drifting texture and per-frame
    noise (about 0.8 Mbit/s at 340x256 h264 crf 23). ``gop=None`` keeps x264's default keyframe interval
    (250 frames: one keyframe in 10 s, like many web videos)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # The texture drifts without wrapping: a wrap is a jump that x264's scene-cut detection would turn
    # into extra keyframes, unlike real footage.
    tex = rng.integers(0, 60, size=(height + n // 2 + 1, width + 2 * n + 1, 3)).astype(np.float32)
    discs = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-3, 3), rng.uniform(-3, 3),
              rng.uniform(10, 30), rng.uniform(0, 255, 3)) for _ in range(8)]
    frames = []
    for t in range(n):
        base = 90 + 60 * np.sin(xx / 23.0 + t * 0.15)[..., None] * np.array([1.0, 0.6, 0.3], np.float32)
        base = base + 40 * np.cos(yy / 31.0 - t * 0.1)[..., None]
        ox, oy = t * 2, t // 2
        f = base + tex[oy:oy + height, ox:ox + width]
        for x0, y0, vx, vy, r, col in discs:
            cx, cy = (x0 + vx * t) % width, (y0 + vy * t) % height
            m = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
            f[m] = col
        f += rng.normal(0, 4, size=f.shape).astype(np.float32)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return write_video(path, frames, fps=fps, codec=codec, gop=gop, crf=crf if codec == "libx264" else None,
                       options={"preset": "medium"} if codec == "libx264" else None)
