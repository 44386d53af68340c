"""``videoformers extract``: sliding-window features of long videos, one ``.npy`` per video.

    videoformers extract PATH... --model NAME[.tag] [--checkpoint FILE] --out DIR [--num-frames 16]
                         [--frame-interval 4] [--stride N | --stride-sec S] [--fps F] [--short-side S]
                         [--crop S] [--layer K --pool mean|max] [--batch-size 8] [--workers 2]
                         [--dtype fp32|bf16|fp16|int8]

What temporal-localisation pipelines (ActionFormer / TriDet style) read: ``DIR/<stem>.npy``, float32
``(num_windows, D)`` with ``D`` the model's ``num_features`` (the pre-logits embedding of the model
contract, ``forward_head(forward_features(x), pre_logits=True)``; with ``--layer K`` intermediate ``K`` of
``forward_intermediates``, pooled over time and space by ``--pool``), and ``DIR/<stem>.json`` with the
video's ``fps`` and ``num_frames``, the window settings, the model and preprocessing, and per window
``start_frame``, ``end_frame`` (inclusive), ``start_sec``, ``end_sec``. ``DIR/index.csv`` lists every
video of the output folder with its window count (or its error).

Windows (:func:`plan_windows`): window ``k`` covers frames ``start_k + i * frame_interval``,
``i < num_frames``, with ``start_k = k * stride`` from frame 0; when the last full window leaves frames
uncovered, one more window ends at the last frame (``"tail": true``); a video shorter than one window
gets one window with the frame indices clamped to the last frame (``"clamped": true``). With ``--fps``
the video is first resampled to that frame rate (frame ``j`` of the resampled timeline is source frame
``round(j * fps_video / fps)``), as feature pipelines do; frame numbers and times in the JSON are those
of the resampled timeline (``source_frames`` gives the decoded ones). ``end_sec`` is the end of the last
frame's display interval, ``(end_frame + 1) / fps``. The default stride is one window span
(``num_frames * frame_interval``: windows touch, no overlap).

Long files stream: each video's frames are read in order, in chunks of at most ``--chunk`` frames,
cropped to the model's input as they arrive, and dropped once no later window needs them; memory is
bounded by a window span plus a chunk, whatever the video's length. Decoding runs in DataLoader workers
(``--workers``; each takes whole videos) ahead of the model.

Resumable and parallel: a video whose ``.npy`` and ``.json`` exist is skipped (both are written
atomically, the JSON last); under ``torchrun`` (``RANK``/``WORLD_SIZE``) each rank takes every
``WORLD_SIZE``-th video. A video that cannot be decoded is reported (stderr, ``<stem>.error.json``,
``index.csv``) and the others go on; the exit status is then 1.

``--dtype`` (:mod:`videoformers.ops.precision`): ``bf16``/``fp16`` autocast with fp32 weights, ``int8``
dynamic quantisation of the linear layers (CPU); features are written as float32 in every case.
"""

from __future__ import annotations

import argparse
import contextlib
import bisect
import csv
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from videoformers.checkpoints.loading import atomic_write

__all__ = ["Window", "plan_windows", "resample_indices", "extract_features", "extract_files", "window_embedder"]


@dataclass
class Window:
    """One window: ``frames`` are the frame numbers it reads (on the resampled timeline with ``--fps``)."""

    index: int
    start_frame: int
    end_frame: int  # inclusive
    frames: list[int]
    tail: bool = False
    clamped: bool = False
    source_frames: list[int] = field(default_factory=list)


def plan_windows(num_video_frames: int, num_frames: int, frame_interval: int = 1, stride: int | None = None
                 ) -> list[Window]:
    """The windows of a ``num_video_frames``-frame video (see the module docstring)."""
    n, t, d = int(num_video_frames), int(num_frames), int(frame_interval)
    if n < 1:
        raise ValueError(f"a video needs at least one frame, got {n}")
    if t < 1 or d < 1:
        raise ValueError(f"num_frames and frame_interval must be >= 1, got {t} and {d}")
    span = (t - 1) * d + 1
    s = span if stride is None else int(stride)
    if s < 1:
        raise ValueError(f"stride must be >= 1 frame, got {s}")
    if n < span:  # shorter than one window: one window, indices clamped to the last frame
        frames = [min(i * d, n - 1) for i in range(t)]
        return [Window(0, 0, n - 1, frames, clamped=True)]
    out = [Window(k, st, st + span - 1, [st + i * d for i in range(t)])
           for k, st in enumerate(range(0, n - span + 1, s))]
    if out[-1].end_frame < n - 1:
        st = n - span
        out.append(Window(len(out), st, n - 1, [st + i * d for i in range(t)], tail=True))
    return out


def resample_indices(num_video_frames: int, fps_video: float, fps: float | None) -> np.ndarray:
    """Source frame of every frame of the video resampled to ``fps`` (``None``: the video as it is)."""
    n = int(num_video_frames)
    if fps is None or fps_video is None or abs(fps - fps_video) < 1e-6:
        return np.arange(n)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    count = max(1, int(math.floor(n * fps / fps_video + 1e-9)))
    return np.minimum(np.round(np.arange(count) * fps_video / fps).astype(np.int64), n - 1)


def window_embedder(model: nn.Module | Callable, layer: int | None = None, pool: str = "mean"
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, C, T, H, W) -> (B, D)``: the model contract's pre-logits embedding, or intermediate ``layer``
    pooled over ``(T, H, W)`` (``pool``: ``mean`` or ``max``); any other callable is used as it is."""
    if pool not in ("mean", "max"):
        raise ValueError(f"pool must be 'mean' or 'max', got {pool!r}")
    if layer is not None:
        if not hasattr(model, "forward_intermediates"):
            raise ValueError("--layer needs a model with forward_intermediates (a registry model)")

        def embed(x: torch.Tensor) -> torch.Tensor:
            (f,) = model.forward_intermediates(x, indices=[layer], intermediates_only=True)
            f = f.flatten(2)
            return f.mean(-1) if pool == "mean" else f.amax(-1)

        return embed
    if hasattr(model, "forward_head") and hasattr(model, "forward_features"):
        return lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
    return model


# ------------------------------------------------------------------------------------------------
# Decoding windows
# ------------------------------------------------------------------------------------------------


@dataclass
class _Settings:
    num_frames: int
    frame_interval: int
    stride: int | None
    stride_sec: float | None
    fps: float | None
    short_side: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    batch_size: int = 8
    chunk: int = 64
    decoder: str = "auto"


def _plan(info, st: _Settings) -> tuple[list[Window], float | None, int]:
    src = resample_indices(info.num_frames, info.fps, st.fps)
    fps_eff = st.fps if (st.fps is not None and info.fps) else info.fps
    stride = st.stride
    if st.stride_sec is not None:
        if not fps_eff:
            raise ValueError("--stride-sec needs a frame rate (the video has none; pass --fps)")
        stride = max(1, int(round(st.stride_sec * fps_eff)))
    windows = plan_windows(len(src), st.num_frames, st.frame_interval, stride)
    for w in windows:
        w.source_frames = [int(src[f]) for f in w.frames]
    return windows, fps_eff, len(src)


def _iter_video(path: str, st: _Settings) -> Iterator[dict]:
    """Items for one video: ``{"kind": "meta"}``, then ``{"kind": "batch", "windows", "clips"}`` with
    ``clips`` ``(b, C, T, S, S)`` float (normalised), then ``{"kind": "done"}``; ``{"kind": "error"}``
    instead when the video cannot be decoded."""
    from videoformers.data import open_video
    from videoformers.data.transforms import Normalize, ResizeCrop, frames_to_clip

    try:
        with open_video(path, decoder=st.decoder, threads=1) as reader:
            info = reader.info
            windows, fps_eff, n_eff = _plan(info, st)
            yield {"kind": "meta", "path": path, "num_frames": int(info.num_frames), "fps": info.fps,
                   "fps_resampled": fps_eff if st.fps is not None else None, "num_frames_resampled": n_eff,
                   "windows": windows}
            crop = ResizeCrop(st.crop, st.short_side, 1)
            norm = Normalize(st.mean, st.std)
            cache: dict[int, torch.Tensor] = {}  # source frame -> cropped uint8 (C, S, S)
            needed = sorted({f for w in windows for f in w.source_frames})
            batch_w: list[int] = []
            batch_x: list[torch.Tensor] = []
            for w in windows:
                want = sorted({f for f in w.source_frames if f not in cache})
                if want:  # read ahead: every needed frame of the next ``chunk`` frames, in one ordered read
                    lo = want[0]
                    ahead = needed[bisect.bisect_left(needed, lo): bisect.bisect_left(needed, lo + st.chunk)]
                    chunk = sorted(set(ahead) | set(want))
                    frames = torch.from_numpy(reader.read(chunk))  # (t, H, W, 3) uint8
                    cropped = crop(frames_to_clip(frames))[0]  # (C, t, S, S): the box depends on H, W only
                    for j, f in enumerate(chunk):
                        cache[f] = cropped[:, j].clone()  # (not a view: the chunk's memory is freed)
                clip = torch.stack([cache[f] for f in w.source_frames], dim=1)  # (C, T, S, S)
                batch_w.append(w.index)
                batch_x.append(norm(clip[None])[0])
                # windows move forward in time: frames before the next window's first are not read again
                keep_from = windows[w.index + 1].source_frames[0] if w.index + 1 < len(windows) else math.inf
                for f in [f for f in cache if f < keep_from]:
                    del cache[f]
                if len(batch_w) == st.batch_size:
                    yield {"kind": "batch", "path": path, "windows": batch_w, "clips": torch.stack(batch_x)}
                    batch_w, batch_x = [], []
            if batch_w:
                yield {"kind": "batch", "path": path, "windows": batch_w, "clips": torch.stack(batch_x)}
        yield {"kind": "done", "path": path}
    except Exception as e:  # one broken video costs that video, never the run  # noqa: BLE001
        reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
        yield {"kind": "error", "path": path, "error": str(reason)}


class _Videos(torch.utils.data.IterableDataset):
    """Each DataLoader worker takes whole videos (every ``num_workers``-th)."""

    def __init__(self, paths: Sequence[str], st: _Settings) -> None:
        self.paths, self.st = list(paths), st

    def __iter__(self):
        wi = torch.utils.data.get_worker_info()
        mine = self.paths if wi is None else self.paths[wi.id :: wi.num_workers]
        torch.set_num_threads(1)
        for p in mine:
            yield from _iter_video(p, self.st)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def _stem(path: str) -> str:
    p = Path(path)
    return p.name if p.is_dir() else p.stem


def _done(out: Path, stem: str) -> bool:
    return (out / f"{stem}.npy").is_file() and (out / f"{stem}.json").is_file()


def _write_index(out: Path) -> None:
    rows = []
    for js in sorted(out.glob("*.json")):
        if js.name.endswith(".error.json"):
            continue
        try:
            meta = json.loads(js.read_text())
        except (OSError, ValueError):
            continue
        if (out / f"{js.stem}.npy").is_file():
            rows.append({"video": meta.get("video", ""), "stem": js.stem, "num_windows": len(meta["windows"]),
                         "status": "ok"})
    for err in sorted(out.glob("*.error.json")):
        stem = err.name[: -len(".error.json")]
        if not _done(out, stem):
            e = json.loads(err.read_text())
            rows.append({"video": e.get("video", ""), "stem": stem, "num_windows": 0, "status": f"error: {e['error']}"})

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["video", "stem", "num_windows", "status"])
            w.writeheader()
            w.writerows(rows)

    atomic_write(out / "index.csv", write)


def extract_files(
    paths: Sequence[str | os.PathLike],
    model: nn.Module | Callable,
    out_dir: str | os.PathLike,
    *,
    num_frames: int,
    frame_interval: int = 1,
    stride: int | None = None,
    stride_sec: float | None = None,
    fps: float | None = None,
    short_side: int = 256,
    crop: int = 224,
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
    layer: int | None = None,
    pool: str = "mean",
    batch_size: int = 8,
    num_workers: int = 0,
    chunk: int = 64,
    device: str | torch.device = "cpu",
    dtype: "str | torch.dtype | None" = None,
    decoder: str = "auto",
    rank: int | None = None,
    world_size: int | None = None,
    model_info: dict | None = None,
    progress: bool = True,
) -> dict:
    """Features of every video in ``paths`` into ``out_dir`` (see the module docstring). Returns counts:
    ``{"done", "skipped", "errors", "windows", "seconds"}``. ``dtype`` (``fp32|bf16|fp16|int8``,
    :mod:`videoformers.ops.precision`): bf16/fp16 autocast, int8 dynamic quantisation of the linear layers
    (an ``nn.Module`` on CPU); ``None`` feeds the model its own parameter dtype without autocast."""
    from videoformers.tools.predict import find_videos

    if stride is not None and stride_sec is not None:
        raise ValueError("give --stride or --stride-sec, not both")
    st = _Settings(int(num_frames), int(frame_interval), stride, stride_sec, fps, int(short_side), int(crop),
                   tuple(float(v) for v in mean), tuple(float(v) for v in std), int(batch_size), int(chunk), decoder)
    if st.batch_size < 1 or st.chunk < 1:
        raise ValueError(f"batch_size and chunk must be >= 1, got {st.batch_size} and {st.chunk}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = find_videos(paths)
    stems = [_stem(f) for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"videos with the same name would write the same files: {dup[:5]}")
    rank = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    mine = [f for i, f in enumerate(files) if i % world_size == rank]
    todo = [f for f in mine if not _done(out, _stem(f))]
    counts = {"done": 0, "skipped": len(mine) - len(todo), "errors": 0, "windows": 0, "seconds": 0.0}
    device = torch.device(device)
    autocast = contextlib.nullcontext()
    if dtype is not None:
        from videoformers.ops.precision import autocast_for, parse_precision, prepare_for_inference

        prec = parse_precision(dtype)
        if isinstance(model, nn.Module):
            example = torch.randn(1, 3, st.num_frames, st.crop, st.crop) if prec == "int8" else None
            model = prepare_for_inference(model, prec, device, example=example)
        elif prec == "int8":
            raise ValueError("dtype int8 quantises an nn.Module's linear layers; got a plain callable")
        autocast, in_dtype = autocast_for(device, prec), torch.float32
    elif isinstance(model, nn.Module):
        model = model.eval().to(device)
        in_dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    else:
        in_dtype = torch.float32
    embed = window_embedder(model, layer, pool)
    settings = {k: v for k, v in asdict(st).items() if k not in ("batch_size", "chunk", "decoder")}
    settings.update(layer=layer, pool=pool if layer is not None else None)

    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(_Videos(todo, st), batch_size=None, num_workers=num_workers)
    state: dict[str, dict] = {}
    last_report = 0.0
    for item in loader:
        path = item["path"]
        if item["kind"] == "meta":
            state[path] = {"meta": item, "feats": {}}
        elif item["kind"] == "batch":
            with torch.no_grad(), autocast:
                y = embed(item["clips"].to(device=device, dtype=in_dtype))
            if not isinstance(y, torch.Tensor) or y.dim() != 2:
                raise ValueError(f"the model must map (B, C, T, H, W) to (B, D); got {getattr(y, 'shape', type(y))}")
            for k, row in zip(item["windows"], y.float().cpu().numpy()):
                state[path]["feats"][k] = row
            counts["windows"] += len(item["windows"])
        elif item["kind"] == "done":
            s = state.pop(path)
            _write_video(out, path, s, settings, model_info or {})
            counts["done"] += 1
        else:
            state.pop(path, None)
            counts["errors"] += 1
            print(f"extract: {path}: {item['error']}", file=sys.stderr)
            err = {"video": os.fspath(path), "error": item["error"]}
            atomic_write(out / f"{_stem(path)}.error.json", lambda tmp: Path(tmp).write_text(json.dumps(err)))
        now = time.perf_counter()
        if progress and (now - last_report > 5 or item["kind"] in ("done", "error")):
            last_report = now
            dt = now - t0
            print(f"extract: {counts['done'] + counts['errors']}/{len(todo)} videos, {counts['windows']} windows "
                  f"({counts['windows'] / max(dt, 1e-9):.1f}/s)", file=sys.stderr, flush=True)
    counts["seconds"] = time.perf_counter() - t0
    _write_index(out)
    return counts


def _write_video(out: Path, path: str, s: dict, settings: dict, model_info: dict) -> None:
    meta = s["meta"]
    windows: list[Window] = meta["windows"]
    feats = np.stack([s["feats"][w.index] for w in windows]).astype(np.float32)
    fps = meta["fps_resampled"] or meta["fps"]
    doc = {
        "video": os.fspath(path), "fps": meta["fps"], "num_frames": meta["num_frames"],
        "fps_resampled": meta["fps_resampled"], "num_frames_resampled": meta["num_frames_resampled"],
        "feature_dim": int(feats.shape[1]), "settings": settings, "model": model_info,
        "windows": [
            {"start_frame": w.start_frame, "end_frame": w.end_frame,
             "start_sec": None if not fps else w.start_frame / fps,
             "end_sec": None if not fps else (w.end_frame + 1) / fps,
             "tail": w.tail, "clamped": w.clamped, "source_frames": [w.source_frames[0], w.source_frames[-1]]}
            for w in windows
        ],
    }
    stem = _stem(path)
    def save_npy(tmp: str) -> None:
        with open(tmp, "wb") as f:  # (a file object: np.save would append .npy to the temporary name)
            np.save(f, feats)

    atomic_write(out / f"{stem}.npy", save_npy)
    atomic_write(out / f"{stem}.json", lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
    err = out / f"{stem}.error.json"
    if err.exists():
        err.unlink()


def extract_features(model: nn.Module | Callable, path: str | os.PathLike, *, num_frames: int,
                     frame_interval: int = 1, stride: int | None = None, **kwargs) -> tuple[np.ndarray, list[dict]]:
    """Features of one video: ``(features (num_windows, D) float32, windows)``, the windows as in the JSON
    ``videoformers extract`` writes. ``kwargs`` as :func:`extract_files` (``fps``, ``short_side``,
    ``crop``, ``mean``, ``std``, ``layer``, ``pool``, ``batch_size``, ``device``, ...)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        counts = extract_files([path], model, tmp, num_frames=num_frames, frame_interval=frame_interval,
                               stride=stride, rank=0, world_size=1, progress=False, **kwargs)
        stem = _stem(os.fspath(path))
        if counts["errors"]:
            raise RuntimeError(json.loads((Path(tmp) / f"{stem}.error.json").read_text())["error"])
        feats = np.load(Path(tmp) / f"{stem}.npy")
        windows = json.loads((Path(tmp) / f"{stem}.json").read_text())["windows"]
    return feats, windows


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from .convert import model_from_args
    from .predict import preprocess_for

    model = model_from_args(args, allow_random=True, **({"img_size": args.crop} if args.crop is not None else {}))
    pre = preprocess_for(model, frame_interval=args.frame_interval, short_side=args.short_side)
    from videoformers.ops.precision import parse_precision

    dtype = parse_precision(args.dtype)  # the model is prepared (and int8-quantised) by extract_files
    info = {"name": getattr(model, "model_name", None), "tag": getattr(model, "pretrained_tag", None),
            "checkpoint": args.checkpoint, "num_features": getattr(model, "num_features", None)}
    counts = extract_files(
        args.paths, model, args.out, num_frames=pre.num_frames, frame_interval=pre.frame_interval,
        stride=args.stride, stride_sec=args.stride_sec, fps=args.fps, short_side=pre.short_side, crop=pre.img_size,
        mean=pre.mean, std=pre.std, layer=args.layer, pool=args.pool, batch_size=args.batch_size,
        num_workers=args.workers, chunk=args.chunk, device=args.device, dtype=dtype, decoder=args.decoder,
        model_info=info, progress=not args.no_progress,
    )
    print(f"extract: {counts['done']} videos done, {counts['skipped']} already there, {counts['errors']} failed; "
          f"{counts['windows']} windows in {counts['seconds']:.1f}s -> {args.out}", file=sys.stderr)
    return 1 if counts["errors"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    from .convert import add_model_arguments

    p = sub.add_parser("extract", help="sliding-window features of (long) videos, one .npy per video",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files and/or folders")
    add_model_arguments(p, checkpoint_required=False)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frame-interval", type=int, default=None, help="frames between sampled frames (default: card)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--stride", type=int, default=None, help="frames between window starts (default: a window span)")
    g.add_argument("--stride-sec", type=float, default=None, help="seconds between window starts")
    p.add_argument("--fps", type=float, default=None, help="resample every video to this frame rate first")
    p.add_argument("--short-side", type=int, default=None, help="resize the short side to this (default: card)")
    p.add_argument("--crop", type=int, default=None, help="centre crop size (default: the model's input size)")
    p.add_argument("--layer", type=int, default=None, help="intermediate stage/block (forward_intermediates index)")
    p.add_argument("--pool", default="mean", choices=("mean", "max"), help="pooling of --layer over (T, H, W)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (each takes whole videos)")
    p.add_argument("--chunk", type=int, default=64, help="frames read at a time (bounds memory)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16", "int8", "float32", "bfloat16", "float16"),
                   help="inference precision: bf16/fp16 autocast, int8 dynamic quantisation of the linear layers "
                        "(CPU); float32/bfloat16/float16 are the older spellings")
    p.add_argument("--decoder", default="auto", choices=("auto", "pyav", "opencv", "torchcodec"))
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(func=run)
