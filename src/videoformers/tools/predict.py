"""``videoformers predict``: class predictions for video files and folders.

    videoformers predict PATH... --model NAME --checkpoint FILE [--labels NAME|FILE] [--topk 5]
                         [--views 4x3] [--json] [--batch-size 8] [--device cpu] [--dtype fp32|bf16|fp16|int8]

Each video is decoded and sampled the way the model was evaluated in its paper (the model card's
frames, crop size and normalisation; the family's test sampling: dense clips for UniFormer, ViViT
and DualFormer, UniFormerV2's sparse segments, TSN segments for Something-Something models), or the
way a converted/training checkpoint records it. ``--views CLIPSxCROPS`` (default: the views the
checkpoint records) takes ``CLIPS`` temporal clips times ``CROPS`` spatial crops (1 = centre, 3 = three
crops along the long side), the papers' multi-view test, combined as ``eval`` does (mean logits;
``--average probs``: mean probabilities).

Folders are searched recursively for videos; a folder holding only images is one video (frames).
A file that cannot be read gets an ``"error"`` entry and the others go on. ``--json`` prints a list
of ``{"path": ..., "top": [{"label": ..., "index": ..., "prob": ...}, ...]}`` (or
``{"path": ..., "error": ...}``) on stdout; the progress bar goes to stderr.

``--timeline`` answers per moment instead of per file, for long videos: the same sliding windows as
``videoformers extract`` (``--stride``/``--stride-sec``, ``--fps``; windows of the model's clip, from
frame 0, a tail window at the end), each classified on its own. For every video it writes
``<stem>.timeline.json`` (the windows with their times and top-k classes) and ``<stem>.timeline.png``
(the probabilities of the top classes over time) into ``--timeline-out`` (default ``timeline``).

``--dtype`` (:mod:`videoformers.ops.precision`): ``bf16``/``fp16`` autocast, ``int8`` dynamic quantisation of
the linear layers (CPU); the speed and agreement with fp32 per CPU are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

import torch
import torch.nn as nn

__all__ = ["Preprocess", "preprocess_for", "parse_views", "find_videos", "load_views", "predict_files",
           "predict_timeline", "resolve_labels"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                    ".ts", ".gif", ".ogv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Test-time sampling per family (the papers' protocols, as in the shipped recipes):
# UniFormer 16x4 dense clips (UniFormer TPAMI Sec. 6.2), UniFormerV2 sparse segments (UniFormerV2 Sec. 4), ViViT 32 frames
# at stride 2 with the short side at 256 for 224 crops (ViViT Sec. 4.1), DualFormer 32x2 dense clips.
_FAMILY_SAMPLING = {
    "uniformer": {"sampling": "dense", "frame_interval": 4, "short_side_ratio": 1.0},
    "uniformerv2": {"sampling": "sparse", "frame_interval": 1, "short_side_ratio": 1.0},
    "vivit": {"sampling": "dense", "frame_interval": 2, "short_side_ratio": 256 / 224},
    "dualformer": {"sampling": "dense", "frame_interval": 2, "short_side_ratio": 1.0},
}


@dataclass(frozen=True)
class Preprocess:
    """How a video becomes the model's input views."""

    num_frames: int
    img_size: int
    short_side: int
    sampling: str = "dense"          # "dense" | "uniform" | "sparse" (videoformers.data.sampling)
    frame_interval: int = 4
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    num_clips: int = 1
    num_crops: int = 1

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops


def preprocess_for(model: nn.Module | str, **overrides) -> Preprocess:
    """The input pipeline for ``model`` (a built model or a registered name): the card's frames, size
    and mean/std, the family's test sampling; then what the checkpoint recorded (``model.data_mean``,
    ``model.preprocess_config`` from :func:`videoformers.tools.convert.load_model`); then ``overrides``
    (any :class:`Preprocess` field; ``None`` values are ignored)."""
    from videoformers.registry import get_model_card

    if isinstance(model, str):
        card, name, recorded, mean, std = get_model_card(model), model, {}, None, None
    else:
        card = getattr(model, "model_card", None)
        if card is None:
            raise ValueError("the model has no model_card: build it with videoformers.create_model")
        name = getattr(model, "model_name", card.name)
        recorded = dict(getattr(model, "preprocess_config", None) or {})
        mean, std = getattr(model, "data_mean", None), getattr(model, "data_std", None)
    if not card.is_video:
        raise ValueError(f"{card.name} is an image model; predict works on video models")
    fam = dict(_FAMILY_SAMPLING.get(card.family, _FAMILY_SAMPLING["uniformer"]))
    if "ssv2" in name:
        # Something-Something: TSN segments over the whole video (UniFormerV2 keeps its sparse sampling).
        fam["sampling"] = "sparse" if card.family == "uniformerv2" else "uniform"
    frames, size = int(card.input_size[1]), int(card.input_size[-1])
    base = Preprocess(
        num_frames=frames, img_size=size, short_side=int(round(size * fam["short_side_ratio"])),
        sampling=fam["sampling"], frame_interval=int(fam["frame_interval"]),
        mean=tuple(mean or card.mean), std=tuple(std or card.std),
    )
    fields = set(Preprocess.__dataclass_fields__)
    rec = {k: v for k, v in recorded.items() if k in fields and v is not None}
    if "img_size" in rec and "short_side" not in rec:
        rec["short_side"] = rec["img_size"]
    pre = replace(base, **rec)
    ov = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(ov) - fields)
    if unknown:
        raise TypeError(f"unknown preprocess field(s) {unknown}; valid: {sorted(fields)}")
    if "img_size" in ov and "short_side" not in ov:
        ov["short_side"] = int(round(ov["img_size"] * pre.short_side / pre.img_size))
    pre = replace(pre, **ov)
    if pre.num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 (centre) or 3 (three crops), got {pre.num_crops}")
    if min(pre.num_frames, pre.img_size, pre.short_side, pre.frame_interval, pre.num_clips) < 1:
        raise ValueError(f"invalid preprocessing {pre}")
    return replace(pre, mean=tuple(float(v) for v in pre.mean), std=tuple(float(v) for v in pre.std))


def parse_views(spec: str | Sequence[int]) -> tuple[int, int]:
    """``"4x3"`` / ``"4 x 3"`` / ``"4"`` / ``(4, 3)`` -> ``(clips, crops)``."""
    if isinstance(spec, (tuple, list)):
        parts = [int(v) for v in spec]
    else:
        s = str(spec).lower().replace("×", "x").replace(" ", "")
        try:
            parts = [int(v) for v in s.split("x")]
        except ValueError:
            raise ValueError(f"--views expects CLIPSxCROPS such as 4x3, got {spec!r}") from None
    if len(parts) == 1:
        parts.append(1)
    if len(parts) != 2 or parts[0] < 1 or parts[1] not in (1, 3):
        raise ValueError(f"--views expects CLIPSxCROPS with CLIPS >= 1 and CROPS 1 or 3, got {spec!r}")
    return parts[0], parts[1]


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def _is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def find_videos(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Expand folders (recursively, sorted) into video files; a folder without videos but with images
    is a frame folder (one video). Files are kept whatever their extension (and whether they exist:
    a missing one is reported by :func:`predict_files`)."""
    out: list[str] = []
    for p in paths:
        p = os.fspath(p)
        if not os.path.isdir(p):
            out.append(p)
            continue
        videos, frame_dirs = [], []
        for root, dirs, files in os.walk(p):
            dirs.sort()
            vids = sorted(f for f in files if _is_video(f))
            videos.extend(os.path.join(root, f) for f in vids)
            if not vids and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
                frame_dirs.append(root)
        found = sorted(videos + frame_dirs)
        out.extend(found if found else [p])  # an empty folder is reported as an error
    return out


def load_views(path: str, pre: Preprocess, decoder: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``path`` and cut its test views. Returns ``(views, crops)``: the normalised model input
    ``(V, C, T, S, S)`` float and the same views as ``uint8`` pixels (for visualisation), with
    ``V = num_clips * num_crops`` ordered clip-major. Raises ``VideoDecodeError``/``IndexError``."""
    from videoformers.data import open_video, sample_indices
    from videoformers.data.transforms import Normalize, ResizeCrop, frames_to_clip

    with open_video(path, decoder=decoder, threads=1) as reader:
        idx = sample_indices(pre.sampling, reader.num_frames, pre.num_frames, train=False,
                             frame_interval=pre.frame_interval, num_clips=pre.num_clips)
        frames = torch.from_numpy(reader.read(idx.reshape(-1)))
    clips = frames.view(pre.num_clips, pre.num_frames, *frames.shape[1:])
    crop = ResizeCrop(pre.img_size, pre.short_side, pre.num_crops)
    pixels = torch.cat([crop(frames_to_clip(c)) for c in clips], 0).contiguous()  # (V, C, T, S, S) uint8
    views = Normalize(pre.mean, pre.std)(pixels)
    return views, pixels


class _VideoViews(torch.utils.data.Dataset):
    """Items: ``(index, views or None, error message or None)``; decoding errors never raise."""

    def __init__(self, paths: Sequence[str], pre: Preprocess, decoder: str):
        self.paths, self.pre, self.decoder = list(paths), pre, decoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from videoformers.data import VideoDecodeError

        try:
            views, _ = load_views(self.paths[i], self.pre, self.decoder)
            return i, views, None
        except VideoDecodeError as e:
            return i, None, e.reason if e.path == os.fspath(self.paths[i]) else str(e)
        except (IndexError, ValueError, OSError, RuntimeError) as e:
            return i, None, f"{type(e).__name__}: {e}"


def _collate(items):
    return items


# ------------------------------------------------------------------------------------------------
# Prediction
# ------------------------------------------------------------------------------------------------


def resolve_labels(model: nn.Module, labels: "str | Sequence[str] | None" = None,
                   warn=lambda msg: print(msg, file=sys.stderr)) -> list[str]:
    """Class names for ``model``'s outputs: ``labels`` (a label-map name, a file or a list), else the
    checkpoint's (``model.label_names``), else the shipped map matching the class count (with a warning
    that names it), else ``"class_<i>"``. The count must match the classifier."""
    from videoformers.labels import get_labels, guess_label_map

    n = getattr(model, "num_classes", None)
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"predict needs a single classifier; {getattr(model, 'model_name', 'the model')} has "
                         f"num_classes={n!r}")
    if labels is not None:
        names = get_labels(labels) if isinstance(labels, (str, os.PathLike)) else list(labels)
    elif getattr(model, "label_names", None):
        names = list(model.label_names)
    else:
        card = getattr(model, "model_card", None)
        guess = guess_label_map(n, card.family if card else None)
        if guess is not None:
            warn(f"warning: no label map given or recorded in the checkpoint; assuming {guess!r} for {n} classes "
                 f"(pass --labels to be sure: the UniFormer authors' Kinetics-400 heads use 'kinetics400_uniformer')")
            names = get_labels(guess)
        else:
            names = [f"class_{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"the label map has {len(names)} names but the model has {n} classes")
    return names


def _top(probs: torch.Tensor, labels: Sequence[str], k: int) -> list[dict]:
    p, i = probs.topk(min(k, probs.numel()))
    return [{"label": labels[j], "index": int(j), "prob": float(v)} for v, j in zip(p.tolist(), i.tolist())]


@torch.no_grad()
def predict_files(
    paths: Iterable[str | os.PathLike],
    model: nn.Module,
    *,
    labels: "str | Sequence[str] | None" = None,
    topk: int = 5,
    views: "str | tuple[int, int] | None" = None,
    preprocess: Preprocess | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    dtype: "str | torch.dtype | None" = None,
    num_workers: int = 0,
    decoder: str = "auto",
    progress: bool = True,
    average: str = "logits",
) -> list[dict]:
    """Top-``topk`` classes for every video in ``paths`` (files and folders, see :func:`find_videos`).

    Returns one dict per video, in input order: ``{"path", "top": [{"label", "index", "prob"}, ...]}``
    sorted by probability, or ``{"path", "error"}`` for a file that could not be decoded. ``views``
    (``"4x3"``) sets clips x crops, else the views the checkpoint records. Views are combined as ``eval``
    does (:func:`videoformers.engine.evaluator.average_views`): ``average="logits"`` (default, the authors'
    test code) is the softmax of the mean logits, ``"probs"`` the mean of the softmax. ``batch_size``
    counts views. ``dtype`` (``fp32|bf16|fp16|int8``, see :mod:`videoformers.ops.precision`): the inference
    precision; ``None`` feeds the model its own parameter dtype without autocast.
    """
    from tqdm import tqdm

    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    from videoformers.engine.evaluator import view_probabilities

    average = {"prob": "probs"}.get(average, average)
    if average not in ("probs", "logits"):
        raise ValueError(f"average must be 'logits' or 'probs', got {average!r}")
    pre = preprocess or preprocess_for(model)
    if views is not None:
        clips, crops = parse_views(views)
        pre = replace(pre, num_clips=clips, num_crops=crops)
    names = resolve_labels(model, labels)
    files = find_videos(paths)
    device = torch.device(device)
    model, in_dtype, autocast = _prepare(model, dtype, device, pre)

    results: list[dict | None] = [None] * len(files)
    loader = torch.utils.data.DataLoader(_VideoViews(files, pre, decoder), batch_size=1, shuffle=False,
                                         num_workers=num_workers, collate_fn=_collate)
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        x = torch.cat([v for _, v in pending], 0).to(device=device, dtype=in_dtype, non_blocking=True)
        with autocast:
            out = model(x)
        if not isinstance(out, torch.Tensor):
            raise ValueError("predict supports single-head classifiers (the model returned "
                             f"{type(out).__name__})")
        out = out.float()
        start = 0
        for i, v in pending:
            logits = out[start:start + v.shape[0]]
            start += v.shape[0]
            probs = view_probabilities(logits, average)
            results[i] = {"path": files[i], "top": _top(probs.cpu(), names, topk)}
        pending.clear()

    bar = tqdm(total=len(files), desc="predict", unit="video", file=sys.stderr, disable=not progress)
    try:
        for batch in loader:
            for i, v, err in batch:
                if err is not None:
                    results[i] = {"path": files[i], "error": err}
                else:
                    pending.append((i, v))
                    if sum(p.shape[0] for _, p in pending) >= batch_size:
                        flush()
                bar.update(1)
        flush()
    finally:
        bar.close()
    return [r for r in results if r is not None]


def _prepare(model: nn.Module, dtype, device: torch.device, pre: Preprocess):
    """(model ready for inference, input dtype, autocast context) for ``dtype`` (``None``: legacy, the
    parameters' dtype and no autocast)."""
    if dtype is None:
        model = model.eval().to(device)
        return model, next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32), \
            contextlib.nullcontext()
    from videoformers.ops.precision import autocast_for, parse_precision, prepare_for_inference

    prec = parse_precision(dtype)
    example = torch.randn(1, 3, pre.num_frames, pre.img_size, pre.img_size) if prec == "int8" else None
    model = prepare_for_inference(model, prec, device, example=example)
    return model, torch.float32, autocast_for(device, prec)


def predict_timeline(
    paths: Iterable[str | os.PathLike],
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    labels: "str | Sequence[str] | None" = None,
    topk: int = 5,
    preprocess: Preprocess | None = None,
    stride: int | None = None,
    stride_sec: float | None = None,
    fps: float | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    dtype: "str | torch.dtype | None" = None,
    num_workers: int = 0,
    decoder: str = "auto",
    plot: bool = True,
    progress: bool = True,
) -> list[dict]:
    """Top-``topk`` classes of every window of every video (the windows of
    :func:`videoformers.tools.extract.plan_windows`); writes ``<stem>.timeline.json`` / ``.png`` into
    ``out_dir`` and returns one dict per video: ``{"path", "windows": [{..., "top": [...]}]}`` or
    ``{"path", "error"}``."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from .extract import _stem, extract_files

    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    pre = preprocess or preprocess_for(model)
    names = resolve_labels(model, labels)
    device = torch.device(device)
    model, in_dtype, autocast = _prepare(model, dtype, device, pre)

    def probs(x: torch.Tensor) -> torch.Tensor:
        with autocast:
            out = model(x.to(in_dtype))
        if not isinstance(out, torch.Tensor):
            raise ValueError("--timeline supports single-head classifiers")
        return out.float().softmax(-1)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        extract_files(list(paths), probs, tmp, num_frames=pre.num_frames, frame_interval=pre.frame_interval,
                      stride=stride, stride_sec=stride_sec, fps=fps, short_side=pre.short_side, crop=pre.img_size,
                      mean=pre.mean, std=pre.std, batch_size=batch_size, num_workers=num_workers, device=device,
                      decoder=decoder, rank=0, world_size=1, progress=progress)
        for f in find_videos(paths):
            stem = _stem(f)
            err = Path(tmp) / f"{stem}.error.json"
            if err.exists():
                results.append({"path": f, "error": json.loads(err.read_text())["error"]})
                continue
            p = torch.from_numpy(np.load(Path(tmp) / f"{stem}.npy"))
            meta = json.loads((Path(tmp) / f"{stem}.json").read_text())
            windows = [{**w, "top": _top(row, names, topk)} for w, row in zip(meta["windows"], p)]
            doc = {"path": f, "fps": meta["fps"], "num_frames": meta["num_frames"],
                   "fps_resampled": meta["fps_resampled"], "preprocess": asdict(pre), "windows": windows}
            (out / f"{stem}.timeline.json").write_text(json.dumps(doc, indent=1))
            if plot:
                _plot_timeline(out / f"{stem}.timeline.png", f, meta["windows"], p, names)
            results.append(doc)
    return results


def _plot_timeline(path, video: str, windows: list[dict], probs: torch.Tensor, names: Sequence[str],
                   num_classes: int = 6) -> None:
    """The probabilities of the ``num_classes`` classes that peak highest, over the windows' times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = windows and windows[0]["start_sec"] is not None
    xs = [(w["start_sec"] + w["end_sec"]) / 2 if timed else (w["start_frame"] + w["end_frame"]) / 2 for w in windows]
    top = probs.max(0).values.argsort(descending=True)[:num_classes].tolist()
    fig, ax = plt.subplots(figsize=(10.5, 3.2))
    for c in top:
        ax.plot(xs, probs[:, c].numpy(), marker="o", ms=3, label=names[c] if c < len(names) else str(c))
    ax.set_xlabel("time (s, window centre)" if timed else "frame (window centre)")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_title(os.path.basename(video), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the curves reach 1
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def _print_table(results: list[dict]) -> None:
    for r in results:
        if "error" in r:
            print(f"{r['path']}: ERROR {r['error']}")
            continue
        print(r["path"])
        for t in r["top"]:
            print(f"  {t['prob'] * 100:6.2f}%  {t['label']} ({t['index']})")


def run(args: argparse.Namespace) -> int:
    from .convert import model_from_args

    model = model_from_args(args)
    # what the checkpoint records, then what the command line says (--views, --num-frames, --img-size too)
    pre = preprocess_for(model, sampling=args.sampling, frame_interval=args.frame_interval,
                         short_side=args.short_side, num_frames=getattr(args, "num_frames", None),
                         img_size=getattr(args, "img_size", None))
    if args.views is not None:
        clips, crops = parse_views(args.views)
        pre = replace(pre, num_clips=clips, num_crops=crops)
    if args.timeline:
        results = predict_timeline(
            args.paths, model, args.timeline_out, labels=args.labels, topk=args.topk, preprocess=pre,
            stride=args.stride, stride_sec=args.stride_sec, fps=args.fps, batch_size=args.batch_size,
            device=args.device, dtype=args.dtype, num_workers=args.workers, decoder=args.decoder,
            progress=not args.no_progress)
        if args.json:
            print(json.dumps(results, indent=2, ensure_ascii=False))
        for r in results:
            if "error" in r:
                print(f"{r['path']}: ERROR {r['error']}")
            else:
                best = [w["top"][0] for w in r["windows"]]
                print(f"{r['path']}: {len(best)} windows -> {args.timeline_out}; top-1 per window: "
                      + ", ".join(b["label"] for b in best[:12]) + (" ..." if len(best) > 12 else ""))
        return 0 if all("error" not in r for r in results) else 1
    if args.stride is not None or args.stride_sec is not None or args.fps is not None:
        raise SystemExit("predict: --stride/--stride-sec/--fps set the windows of --timeline")
    results = predict_files(
        args.paths, model, labels=args.labels, topk=args.topk, preprocess=pre,
        batch_size=args.batch_size, device=args.device, dtype=args.dtype, num_workers=args.workers,
        decoder=args.decoder, progress=not args.no_progress, average=args.average,
    )
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        _print_table(results)
    if args.verbose:
        print(f"preprocessing: {json.dumps(asdict(pre))}", file=sys.stderr)
    return 0 if all("error" not in r for r in results) else 1


def register(sub: argparse._SubParsersAction) -> None:
    from .convert import add_model_arguments

    p = sub.add_parser("predict", help="top-k classes for video files and folders",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files and/or folders")
    add_model_arguments(p, checkpoint_required=False)
    p.add_argument("--labels", default=None, help="label map name (videoformers.labels) or text file; default: "
                                                   "the checkpoint's, else guessed from the class count")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--views", default=None, metavar="CLIPSxCROPS",
                   help="test views, e.g. 4x3 (default: the views the checkpoint records, else 1x1)")
    p.add_argument("--average", default="logits", choices=("logits", "probs"),
                   help="how views are combined: mean logits (default, as eval and the authors' test code) or "
                        "mean probabilities")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.add_argument("--batch-size", type=int, default=8, help="views per forward pass")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16", "int8"),
                   help="inference precision: bf16/fp16 autocast, int8 dynamic quantisation of the linear layers "
                        "(CPU); see docs/performance.md for speed and agreement per CPU")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (DataLoader workers)")
    p.add_argument("--decoder", default="auto", choices=("auto", "pyav", "opencv", "torchcodec"))
    p.add_argument("--sampling", default=None, choices=("dense", "uniform", "sparse"),
                   help="override the temporal sampling")
    p.add_argument("--frame-interval", type=int, default=None, help="override the dense-sampling stride")
    p.add_argument("--short-side", type=int, default=None, help="override the test resize (short side)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="print the preprocessing used (stderr)")
    p.add_argument("--timeline", action="store_true", help="top-k per sliding window (JSON + PNG per video)")
    p.add_argument("--timeline-out", default="timeline", help="folder for --timeline outputs")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--stride", type=int, default=None, help="--timeline: frames between window starts")
    g.add_argument("--stride-sec", type=float, default=None, help="--timeline: seconds between window starts")
    p.add_argument("--fps", type=float, default=None, help="--timeline: resample to this frame rate first")
    p.set_defaults(func=run)
