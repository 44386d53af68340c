"""``videoformers prepare LIST DST_DIR``: re-encode a data set for fast training.

Decoding, not the model, is what usually starves training. Two properties of the files decide most of
the cost: resolution and keyframe spacing. A random 16x4 clip from a Kinetics-style 340x256 h264 video
with one keyframe per 10 s decodes ~2x slower than from the same video with a keyframe every 16
frames (``shared/notes/ecosystem.md`` sec. 1.5). This command therefore re-encodes every video of an
annotation list to h264 with a short keyframe interval and (optionally) a smaller short side, keeping
every frame (frame ``i`` of the output is frame ``i`` of the input, so frame-based annotations stay
valid) and dropping audio.

* parallel (``--workers``, one single-threaded encoder per process);
* resumable: an output that exists, decodes, and was made from the same source with the same settings
  is not redone. The settings (short side, keyframe interval, crf, preset, codec, frame-folder fps) and
  the source's size and mtime are recorded per output in ``DST_DIR/prepare_manifest.jsonl`` (one JSON
  line per finished output, appended as it finishes, so an interrupted run keeps what it did); an output
  made with other settings, from a changed source, or with no record (an older version's output) is
  redone, and ``--force`` redoes all. Outputs are written to a temporary name and renamed, so an
  interrupted run never leaves a half file that looks done;
* frame folders (``dir label`` or rawframes' ``dir num_frames label`` lines; a folder of images ordered
  by the numbers in their names, as the ``rawframes`` reader reads them) are encoded to one mp4 each at
  ``--folder-fps`` (frame ``i`` is image ``i``), like any other video;
* broken inputs are reported in a summary (and ``<list>.broken.txt``), never fatal;
* a new annotation list with the same name as ``LIST`` is written into ``DST_DIR``, listing the
  re-encoded videos (relative to ``DST_DIR``) with their original labels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["MANIFEST", "PrepareResult", "prepare_dataset", "transcode_video", "register"]

#: Per-output record of the settings and source an output was made with (JSON lines, last wins).
MANIFEST = "prepare_manifest.jsonl"


@dataclass
class PrepareResult:
    status: str            # "encoded" | "done" (already there) | "broken"
    src: str
    dst_rel: str
    label: str | None
    reason: str = ""
    frames: int = 0
    redo: str = ""         # why an existing output was redone ("other settings", "forced", ...); "" if none
    record: dict | None = None  # the manifest line for an encoded output


def _out_size(w: int, h: int, short_side: int | None) -> tuple[int, int]:
    if short_side and min(w, h) > short_side:
        if w <= h:
            nw, nh = short_side, round(h * short_side / w)
        else:
            nw, nh = round(w * short_side / h), short_side
    else:
        nw, nh = w, h
    # yuv420p needs even sizes.
    return max(2, nw - nw % 2), max(2, nh - nh % 2)


def _add_stream(out, codec: str, rate: Fraction, w: int, h: int, keyframe_interval: int, crf: int, preset: str):
    opts = {"g": str(keyframe_interval), "keyint_min": str(keyframe_interval), "crf": str(crf),
            "preset": preset, "threads": "1"} if codec == "libx264" else {"g": str(keyframe_interval)}
    ost = out.add_stream(codec, rate=rate, options=opts)
    ost.width, ost.height, ost.pix_fmt = w, h, "yuv420p"
    return ost


def _encode(out, ost, frames, w: int, h: int, rate: Fraction) -> int:
    """Encode av frames (any format/size) at a constant rate: pts = frame number, so frame i stays frame i."""
    n = 0
    for frame in frames:
        f = frame.reformat(width=w, height=h, format="yuv420p", interpolation="AREA")
        f.pts = n
        f.time_base = 1 / rate
        for p in ost.encode(f):
            out.mux(p)
        n += 1
    for p in ost.encode():
        out.mux(p)
    return n


def transcode_video(src: str, dst: str, short_side: int | None = 320, keyframe_interval: int = 16,
                    crf: int = 23, preset: str = "veryfast", codec: str = "libx264", folder_fps: float = 30.0) -> int:
    """Re-encode ``src`` (a video, or a folder of frames encoded at ``folder_fps``) to ``dst`` (mp4) keeping
    every frame; returns the number of frames.

    Raises :class:`~videoformers.data.VideoDecodeError` when ``src`` cannot be decoded."""
    import av

    from .decoding import RawFramesReader, VideoDecodeError, _check_file, _short

    if not os.path.isdir(src):
        _check_file(src)
    tmp = dst + ".part.mp4"
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    n = 0
    try:
        if os.path.isdir(src):
            reader = RawFramesReader(src)  # the dataset's reader: same images, same order
            rate = Fraction(folder_fps).limit_denominator(1001)
            w, h = _out_size(reader.info.width, reader.info.height, short_side)
            frames = (av.VideoFrame.from_ndarray(reader.read([i])[0], format="rgb24") for i in range(reader.num_frames))
            with av.open(tmp, "w", format="mp4") as out:
                ost = _add_stream(out, codec, rate, w, h, keyframe_interval, crf, preset)
                n = _encode(out, ost, frames, w, h, rate)
        else:
            with av.open(src, metadata_errors="ignore") as inp:
                if not inp.streams.video:
                    raise VideoDecodeError(src, "no video stream")
                ist = inp.streams.video[0]
                ist.codec_context.thread_count = 1
                rate = ist.average_rate or ist.guessed_rate or Fraction(25)
                rate = Fraction(rate).limit_denominator(1001)
                w, h = _out_size(ist.codec_context.width, ist.codec_context.height, short_side)
                with av.open(tmp, "w", format="mp4") as out:
                    ost = _add_stream(out, codec, rate, w, h, keyframe_interval, crf, preset)
                    counted = _Counter(inp.decode(ist))
                    try:
                        n = _encode(out, ost, counted, w, h, rate)
                    finally:
                        n = counted.n
    except VideoDecodeError:
        _remove(tmp)
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        _remove(tmp)
        if n:
            reason = f"decoding stopped after {n} frames ({_short(e)}): truncated or corrupt"
        else:
            reason = f"not a readable video ({_short(e)})"
        raise VideoDecodeError(src, reason) from None
    if n == 0:
        _remove(tmp)
        raise VideoDecodeError(src, "no decodable frames")
    os.replace(tmp, dst)
    return n


class _Counter:
    """Counts the frames an iterator gave, also when it stops with an error (for the 'stopped after N' reason)."""

    def __init__(self, it):
        self.it, self.n = iter(it), 0

    def __iter__(self):
        for x in self.it:
            self.n += 1
            yield x


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _is_done(dst: str) -> bool:
    if not os.path.isfile(dst) or os.path.getsize(dst) == 0:
        return False
    from .decoding import VideoDecodeError, probe

    try:
        return probe(dst, decoder="pyav").num_frames > 0
    except (VideoDecodeError, ImportError):
        return False


def _source_id(src: str) -> dict:
    """What changes when a source is replaced: size and mtime (a frame folder: its image count and mtime)."""
    st = os.stat(src)
    if os.path.isdir(src):
        from .decoding import IMAGE_EXTENSIONS

        n = sum(name.lower().endswith(IMAGE_EXTENSIONS) for name in os.listdir(src))
        return {"images": n, "mtime_ns": st.st_mtime_ns}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _redo_reason(recorded: dict | None, src: str, source: dict | None, settings: dict) -> str:
    """Why an existing output cannot be kept ("" when it can)."""
    if recorded is None:
        return f"no record in {MANIFEST}"
    if recorded.get("settings") != settings:
        old = recorded.get("settings") or {}
        diff = ", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v)
        return f"made with other settings ({diff})"
    if recorded.get("src") != src or recorded.get("source") != source:
        return "the source changed"
    return ""


def _job(args: tuple) -> PrepareResult:
    src, dst_dir, dst_rel, label, settings, recorded, force = args
    from .decoding import VideoDecodeError

    dst = os.path.join(dst_dir, dst_rel)
    try:
        source = _source_id(src)
    except OSError:
        source = None  # missing: transcode_video says so
    redo = ""
    if os.path.exists(dst):
        redo = "forced (--force)" if force else _redo_reason(recorded, src, source, settings)
        if not redo:
            if _is_done(dst):
                return PrepareResult("done", src, dst_rel, label)
            redo = "the output does not decode (interrupted or damaged)"
    try:
        n = transcode_video(src, dst, settings["short_side"], settings["keyframe_interval"], settings["crf"],
                            settings["preset"], settings["codec"], settings["folder_fps"])
    except VideoDecodeError as e:
        return PrepareResult("broken", src, dst_rel, label, e.reason)
    except Exception as e:  # one bad file must not stop a long run
        return PrepareResult("broken", src, dst_rel, label, f"{type(e).__name__}: {e}")
    record = {"out": dst_rel, "src": src, "source": source, "settings": settings, "frames": n}
    return PrepareResult("encoded", src, dst_rel, label, frames=n, redo=redo, record=record)


def _read_manifest(dst_dir: str) -> dict[str, dict]:
    records: dict[str, dict] = {}
    path = os.path.join(dst_dir, MANIFEST)
    if not os.path.isfile(path):
        return records
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that output is simply redone
            if isinstance(r, dict) and isinstance(r.get("out"), str):
                records[r["out"]] = r
    return records


def _write_manifest(dst_dir: str, records: dict[str, dict]) -> None:
    path = os.path.join(dst_dir, MANIFEST)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for r in records.values():
            f.write(json.dumps(r, sort_keys=True) + "\n")
    os.replace(path + ".tmp", path)


def _read_list(list_path: str, root: str) -> list[tuple[str, str, str | None, int]]:
    """(source path, output path relative to DST_DIR, label text, line) per entry of a ``path label`` list."""
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"annotation list not found: {list_path}")
    out = []
    with open(list_path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            path, label = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], None)
            head = path.rsplit(maxsplit=1)
            if (len(head) == 2 and head[1].isdigit() and not os.path.exists(os.path.join(root, path))
                    and os.path.isdir(os.path.join(root, head[0]))):
                path = head[0]  # rawframes' 'frame_dir num_frames label'
            if label is not None and not label.lstrip("-").isdigit():
                # A path with a space and no label, or a malformed line: keep the whole line as the path
                # only if that file exists.
                if os.path.exists(os.path.join(root, line)):
                    path, label = line, None
                else:
                    raise ValueError(f"{list_path}:{n}: expected 'path label', got {line!r}")
            src = path if os.path.isabs(path) or not root else os.path.join(root, path)
            rel = os.path.relpath(src, root) if root and not os.path.relpath(src, root).startswith("..") else (
                path if not os.path.isabs(path) else os.path.basename(path))
            rel = rel.rstrip("/\\") + ".mp4" if os.path.isdir(src) else os.path.splitext(rel)[0] + ".mp4"
            out.append((src, rel, label, n))
    return out


def prepare_dataset(list_path: str, dst_dir: str, short_side: int | None = 320, keyframe_interval: int = 16,
                    workers: int | None = None, root: str = "", crf: int = 23, preset: str = "veryfast",
                    progress: bool = True, force: bool = False, folder_fps: float = 30.0) -> dict:
    """Re-encode every video (or frame folder) of ``list_path`` into ``dst_dir`` (see the module docstring).
    Returns a summary ``{"encoded", "done", "redone": {reason: count}, "broken": [(path, reason)], "list":
    new list path, "manifest", "seconds"}``; ``encoded`` includes the redone outputs."""
    t0 = time.time()
    entries = _read_list(list_path, root)
    if not entries:
        raise ValueError(f"{list_path} lists no videos")
    dst_dir = os.path.abspath(dst_dir)
    os.makedirs(dst_dir, exist_ok=True)
    new_list = os.path.join(dst_dir, os.path.basename(list_path))
    if os.path.exists(new_list) and os.path.samefile(new_list, list_path):
        raise ValueError(f"DST_DIR {dst_dir} holds the input list itself; choose another output folder")
    seen: dict[str, int] = {}
    for src, rel, _, n in entries:
        if rel in seen and entries[seen[rel]][0] != src:
            raise ValueError(f"{list_path}:{n}: {src} and line {entries[seen[rel]][3]} map to the same output {rel}")
        seen.setdefault(rel, len(seen))
    settings = {"short_side": short_side or None, "keyframe_interval": int(keyframe_interval), "crf": int(crf),
                "preset": preset, "codec": "libx264", "folder_fps": float(folder_fps)}
    records = _read_manifest(dst_dir)
    jobs = [(src, dst_dir, rel, label, settings, records.get(rel), force) for src, rel, label, _ in entries]
    workers = max(1, workers or min(os.cpu_count() or 1, len(jobs)))
    results: list[PrepareResult] = []
    if workers == 1:
        it = map(_job, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        it = pool.map(_job, jobs, chunksize=1)
    manifest = open(os.path.join(dst_dir, MANIFEST), "a", encoding="utf-8")
    try:
        for k, r in enumerate(it, 1):
            results.append(r)
            if r.record is not None:  # appended as it finishes: an interrupted run keeps what it did
                records[r.dst_rel] = r.record
                manifest.write(json.dumps(r.record, sort_keys=True) + "\n")
                manifest.flush()
            if progress and (k % 50 == 0 or k == len(jobs)):
                print(f"[prepare] {k}/{len(jobs)} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    finally:
        manifest.close()
        if pool is not None:
            pool.shutdown()
    # Compact (last record per output wins); records of outputs of other lists in the same folder stay.
    _write_manifest(dst_dir, {rel: r for rel, r in records.items() if os.path.exists(os.path.join(dst_dir, rel))})
    ok = [r for r in results if r.status != "broken"]
    broken = [r for r in results if r.status == "broken"]
    with open(new_list + ".tmp", "w", encoding="utf-8") as f:
        for r in ok:
            f.write(f"{r.dst_rel} {r.label}\n" if r.label is not None else f"{r.dst_rel}\n")
    os.replace(new_list + ".tmp", new_list)
    broken_path = os.path.splitext(new_list)[0] + ".broken.txt"
    if broken:
        with open(broken_path, "w", encoding="utf-8") as f:
            for r in broken:
                f.write(f"{r.src}\t{r.reason}\n")
    elif os.path.exists(broken_path):
        os.remove(broken_path)
    redone: dict[str, int] = {}
    for r in results:
        if r.status == "encoded" and r.redo:
            key = r.redo.split(" (")[0]
            redone[key] = redone.get(key, 0) + 1
    return {
        "encoded": sum(r.status == "encoded" for r in results),
        "done": sum(r.status == "done" for r in results),
        "redone": redone,
        "manifest": os.path.join(dst_dir, MANIFEST),
        "broken": [(r.src, r.reason) for r in broken],
        "list": new_list,
        "broken_list": broken_path if broken else None,
        "seconds": time.time() - t0,
    }


def run(args: argparse.Namespace) -> int:
    if getattr(args, "shards", False):
        from .shards import prepare_shards

        man = prepare_shards(args.list, args.dst_dir, shard_size=args.shard_size, labels_file=args.labels_file,
                             short_side=args.short_side or None, keyframe_interval=args.keyframe_interval,
                             workers=args.workers, root=args.root, crf=args.crf, preset=args.preset,
                             progress=not args.quiet, force=args.force, folder_fps=args.folder_fps)
        print(f"wrote {man['num_samples']} samples in {len(man['shards'])} shard(s) in {man['seconds']:.1f}s, "
              f"{len(man['broken'])} broken; manifest: {man['manifest_path']}")
        for src, reason in man["broken"][:20]:
            print(f"  broken: {src}: {reason}")
        return 0 if man["num_samples"] else 1
    summary = prepare_dataset(args.list, args.dst_dir, short_side=args.short_side or None,
                              keyframe_interval=args.keyframe_interval, workers=args.workers, root=args.root,
                              crf=args.crf, preset=args.preset, progress=not args.quiet, force=args.force,
                              folder_fps=args.folder_fps)
    n_ok = summary["encoded"] + summary["done"]
    redone = summary["redone"]
    why = ""
    if redone:
        why = f" ({sum(redone.values())} redone: " + ", ".join(f"{n} {k}" for k, n in redone.items()) + ")"
    print(f"prepared {n_ok} videos in {summary['seconds']:.1f}s: {summary['encoded']} encoded{why}, "
          f"{summary['done']} already done with the same settings, {len(summary['broken'])} broken")
    for src, reason in summary["broken"][:20]:
        print(f"  broken: {src}: {reason}")
    if len(summary["broken"]) > 20:
        print(f"  ... {len(summary['broken']) - 20} more in {summary['broken_list']}")
    print(f"new list: {summary['list']}")
    return 0 if n_ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="re-encode a video data set for fast training (short side, short keyframe interval)",
        description="Re-encode every video of an annotation list (lines 'path label') to h264 with a short "
                    "keyframe interval and a smaller short side, for fast random clip access in training. "
                    "Keeps every frame (frame i stays frame i), drops audio, runs in parallel, skips videos that "
                    "are already done with the same settings (recorded in DST_DIR/prepare_manifest.jsonl), "
                    "accepts frame folders, reports broken inputs, and writes a new list with the same name into "
                    "DST_DIR.",
    )
    p.add_argument("list", help="annotation list with lines 'path label' (paths relative to --root)")
    p.add_argument("dst_dir", help="output folder for the videos and the new list")
    p.add_argument("--short-side", type=int, default=320,
                   help="resize so the short side is at most this (0: keep the size); default 320")
    p.add_argument("--keyframe-interval", type=int, default=16, help="frames between keyframes (default 16)")
    p.add_argument("--workers", type=int, default=None, help="parallel encoders (default: all cores)")
    p.add_argument("--root", default="", help="folder that the list's relative paths are relative to")
    p.add_argument("--crf", type=int, default=23, help="x264 quality (lower is better; default 23)")
    p.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    p.add_argument("--force", action="store_true",
                   help=f"redo every output (by default only outputs made with other settings, from a changed "
                        f"source, or missing from {MANIFEST} are redone)")
    p.add_argument("--folder-fps", type=float, default=30.0,
                   help="frame rate given to frame folders (folders of images) when encoded (default 30)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--shards", action="store_true",
                   help="write WebDataset tar shards DST_DIR/<list stem>-000000.tar ... and a manifest "
                        "DST_DIR/<list stem>.json instead of a folder of videos (see videoformers.data.shards)")
    p.add_argument("--shard-size", default="512MB", help="with --shards: largest shard size (default 512MB)")
    p.add_argument("--labels-file", default=None,
                   help="with --shards: class names (one per line) recorded in the samples and the manifest")
    p.set_defaults(func=run)
