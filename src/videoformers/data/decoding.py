"""Frame-accurate video decoding behind one small interface.

``open_video(path)`` returns a :class:`VideoReader`: ``reader.info`` says how many frames the video
has, ``reader.read(indices)`` returns exactly those frames as ``uint8`` RGB ``(T, H, W, 3)``, in the
order asked (repeats and any order allowed). Frame ``i`` is the ``i``-th frame a plain sequential
decode produces, whatever the container's timestamps look like.

Backends
--------
``pyav`` (primary; PyAV's wheels bundle FFmpeg)
    Builds a per-file index from one demux pass (packets only, no decoding: ~1 ms for a 10 s clip):
    the presentation timestamps (pts) of all frames, sorted, and the keyframes. Reading frames seeks
    to the keyframe at or before the first wanted frame, decodes forward and picks frames by pts.
    That is exact with B-frames (decode order != presentation order), long GOPs, streams whose first
    pts is not 0 and variable frame rate. Non-reference frames that are not wanted are not decoded
    at all (``skip_frame=NONREF``): they cannot affect any other frame, and skipping them is where
    most of the speed-up over a plain seek-and-decode loop comes from. Files whose timestamps cannot
    be trusted (missing or duplicated pts) fall back to a sequential decode that counts frames.
``opencv`` (fallback; ``pip install opencv-python-headless``)
    ``cv2.VideoCapture`` with ``CAP_PROP_POS_FRAMES`` seeks. Its frame count comes from container
    metadata, so the reader checks every read and raises :class:`VideoDecodeError` when a frame is
    missing rather than returning a wrong one.
``torchcodec`` (used only where ``import torchcodec`` works)
    ``VideoDecoder(seek_mode="exact")``. On CPU-only torch only ``torchcodec==0.13.0`` with a system
    FFmpeg works (see ``shared/notes/ecosystem.md`` section 1).
``rawframes``
    A folder of images (``img_00001.jpg`` ...), picked automatically when ``path`` is a directory.

All backends use one FFmpeg thread by default: a DataLoader runs one decoder per worker process and
more threads per decoder only compete for the same cores.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "open_video",
    "probe",
    "read_frames",
    "read_frames_sequential",
    "available_decoders",
    "DECODERS",
]

log = logging.getLogger("videoformers.data")

DECODERS = ("auto", "pyav", "opencv", "torchcodec")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class VideoDecodeError(RuntimeError):
    """A video (or frame folder) that cannot be decoded: missing, empty, truncated, not a video, no video
    stream, or a requested frame that the file does not deliver. ``path`` and ``reason`` are attributes;
    the message names both."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot decode video '{self.path}': {reason}")

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reports. ``num_frames`` is exact for the ``pyav`` backend (counted from the
    packets, not read from metadata). ``fps``/``duration`` are ``None`` when unknown (frame folders)."""

    path: str
    num_frames: int
    fps: float | None
    width: int
    height: int
    duration: float | None
    codec: str | None = None
    backend: str = "pyav"


class VideoReader:
    """An open video. Use as a context manager, or call :meth:`close`."""

    info: VideoInfo

    @property
    def num_frames(self) -> int:
        return self.info.num_frames

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """Frames ``indices`` as ``uint8`` RGB ``(len(indices), H, W, 3)``, in the order given."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # Shared argument checking: every backend accepts the same indices.
    def _check_indices(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
        idx = np.asarray(indices.tolist() if isinstance(indices, torch.Tensor) else indices)
        if idx.ndim != 1:
            raise ValueError(f"indices must be a 1-D sequence of frame numbers, got shape {idx.shape}")
        if idx.size == 0:
            raise ValueError("indices is empty: ask for at least one frame")
        if not np.issubdtype(idx.dtype, np.integer):
            if not np.all(np.equal(np.mod(idx, 1), 0)):
                raise ValueError(f"frame indices must be integers, got {idx[:8].tolist()}...")
        idx = idx.astype(np.int64)
        n = self.info.num_frames
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise IndexError(f"frame index {int(bad[0])} out of range for '{self.info.path}' with {n} frames")
        return idx


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory (a frame folder needs image files in it)")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


# --------------------------------------------------------------------------------------------------
# PyAV
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FrameIndex:
    """Per-file index from one demux pass.

    ``pts[i]`` is the presentation timestamp of frame ``i`` (sorted). ``key_pts``/``key_dts`` are the
    keyframes sorted by pts (``key_dts`` may hold ``None``). ``exact`` is False when the timestamps could
    not be trusted and frames are identified by counting decoded frames instead.
    """

    num_frames: int
    pts: np.ndarray
    pts_set: frozenset
    key_pts: tuple
    key_dts: tuple
    exact: bool


class _LRU:
    """A small thread-safe LRU cache (per process: every DataLoader worker has its own)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key, value) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


_INDEX_CACHE = _LRU(2048)


def clear_index_cache() -> None:
    """Forget cached frame indices (e.g. after rewriting files in place)."""
    _INDEX_CACHE.clear()


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _vp8_invisible(packet) -> bool:
    # VP8 frame tag (RFC 6386 sec. 9.1): bit 4 of the first byte is show_frame. An invisible (alt-ref)
    # frame gives no decoded picture, so it must not count as a frame.
    data = bytes(packet)
    return bool(data) and not (data[0] >> 4) & 1


def _av_error_types():
    import av

    return (av.FFmpegError, EOFError, OSError, ValueError)


class PyAVReader(VideoReader):
    """Frame-accurate reader on PyAV with keyframe seeks (see the module docstring)."""

    backend = "pyav"

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        import av

        self.path = path = os.fspath(path)
        self._container = None
        _check_file(path)
        try:
            self._container = av.open(path, metadata_errors="ignore")
        except _av_error_types() as e:
            raise VideoDecodeError(path, f"not a readable media file ({_short(e)})") from None
        c = self._container
        if not c.streams.video:
            what = "audio only" if c.streams.audio else "no streams" if not c.streams else "no video stream"
            self.close()
            raise VideoDecodeError(path, f"no video stream ({what})")
        self._stream = s = c.streams.video[0]
        s.codec_context.thread_count = max(1, int(threads))
        if threads > 1:
            s.codec_context.thread_type = "AUTO"
        cc = s.codec_context
        if not cc.width or not cc.height:
            self.close()
            raise VideoDecodeError(path, "video stream has no frame size (corrupt header?)")
        key = _file_key(path)
        index = _INDEX_CACHE.get(key)
        if index is None:
            index = self._build_index()
            _INDEX_CACHE.put(key, index)
        self._index = index
        # What the last reads cost: seeks, packets sent to the decoder, frames the decoder produced.
        self.stats = {"seeks": 0, "packets_decoded": 0, "frames_decoded": 0}
        if index.num_frames == 0:
            self.close()
            raise VideoDecodeError(path, "video stream has no frames (truncated or empty stream)")
        fps = None
        rate = s.average_rate or s.guessed_rate or s.base_rate
        if rate:
            fps = float(rate)
        duration = None
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif c.duration is not None:
            duration = c.duration / 1_000_000
        elif fps:
            duration = index.num_frames / fps
        self.info = VideoInfo(path, index.num_frames, fps, cc.width, cc.height, duration, cc.name, "pyav")

    # -- index ------------------------------------------------------------------------------------

    def _build_index(self) -> _FrameIndex:
        s = self._stream
        is_vp8 = s.codec_context.name == "vp8"
        pts: list[int] = []
        keys: list[tuple[int, int | None]] = []
        trusted = True
        seen_key = False
        try:
            for p in self._container.demux(s):
                if p.size == 0:  # the demuxer's final flush packet
                    continue
                if not seen_key:
                    if not p.is_keyframe:
                        # Packets before the first keyframe (a stream cut mid-GOP) do not decode to
                        # frames in a sequential decode either.
                        continue
                    seen_key = True
                if p.is_discard:  # edit-list trimmed: decoded (may be a reference) but never shown
                    continue
                if is_vp8 and _vp8_invisible(p):
                    continue
                if p.pts is None:
                    trusted = False
                    continue
                pts.append(p.pts)
                if p.is_keyframe:
                    keys.append((p.pts, p.dts))
        except _av_error_types() as e:
            # A truncated file: keep what was demuxed. Frames past the damage raise when read.
            log.debug("demux of %s stopped early: %s", self.path, _short(e))
        self._rewind()
        arr = np.asarray(sorted(pts), dtype=np.int64)
        if trusted and arr.size and np.unique(arr).size != arr.size:
            trusted = False
        if not trusted or not keys:
            n = self._count_frames()
            self._rewind()
            return _FrameIndex(n, np.arange(n, dtype=np.int64), frozenset(), (), (), exact=False)
        keys.sort(key=lambda k: k[0])
        return _FrameIndex(
            int(arr.size), arr, frozenset(arr.tolist()), tuple(k[0] for k in keys), tuple(k[1] for k in keys), True
        )

    def _count_frames(self) -> int:
        n = 0
        try:
            for _ in self._container.decode(self._stream):
                n += 1
        except _av_error_types():
            pass
        return n

    def _rewind(self) -> None:
        try:
            self._container.seek(0, backward=True, any_frame=False)
        except _av_error_types():
            # Some containers cannot seek; reopen instead.
            import av

            threads = self._stream.codec_context.thread_count
            self._container.close()
            self._container = av.open(self.path, metadata_errors="ignore")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = threads

    # -- reading ----------------------------------------------------------------------------------

    def read(self, indices: Sequence[int]) -> np.ndarray:
        idx = self._check_indices(indices)
        wanted = np.unique(idx)
        ix = self._index
        try:
            if ix.exact:
                got = self._read_seek(wanted)
            else:
                got = self._read_counting(wanted)
        except _av_error_types() as e:
            raise VideoDecodeError(self.path, f"decoding failed ({_short(e)})") from None
        missing = [int(i) for i in wanted if int(i) not in got]
        if missing:
            raise VideoDecodeError(
                self.path,
                f"frame(s) {missing[:8]}{'...' if len(missing) > 8 else ''} of {ix.num_frames} could not be "
                "decoded (truncated or corrupt file?)",
            )
        h, w = self.info.height, self.info.width
        out = np.empty((idx.size, h, w, 3), dtype=np.uint8)
        for j, i in enumerate(idx.tolist()):
            out[j] = got[i]
        return out

    def _to_rgb(self, frame) -> np.ndarray:
        h, w = self.info.height, self.info.width
        if frame.width != w or frame.height != h:  # resolution change mid-stream: keep one size
            return frame.to_ndarray(format="rgb24", width=w, height=h)
        return frame.to_ndarray(format="rgb24")

    def _runs(self, wanted: np.ndarray) -> list[tuple[int, list[int]]]:
        """Group wanted frames into runs that are decoded without seeking in between.

        Each run starts at the keyframe of its first frame (``-1``: decode from the stream start). A new
        run starts when a keyframe lies after the previous wanted frame and at or before the next one:
        seeking there is strictly less decoding than going on."""
        ix = self._index
        runs: list[tuple[int, list[int]]] = []
        last_k = None
        for i in wanted.tolist():
            k = bisect.bisect_right(ix.key_pts, int(ix.pts[i])) - 1
            if runs and k == last_k:
                runs[-1][1].append(i)
            else:
                runs.append((k, [i]))
            last_k = k
        return runs

    def _read_seek(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        ix = self._index
        got: dict[int, np.ndarray] = {}
        for k, frames in self._runs(wanted):
            need = {int(ix.pts[i]): i for i in frames}
            ok = self._decode_run(k, need, got)
            if not ok:
                # The seek did not land where the index says (unusual muxing). Decode this run from
                # the start of the stream instead: slower, still exact.
                self._decode_run(-1, need, got)
        return got

    def _decode_run(self, k: int, need: dict[int, int], got: dict[int, np.ndarray]) -> bool:
        """Seek to keyframe ``k`` (or the stream start for ``k < 0``), decode until every pts in ``need``
        is out. Returns False when the seek overshot the keyframe."""
        ix = self._index
        c, s = self._container, self._stream
        cc = s.codec_context
        if k >= 0:
            target = ix.key_dts[k] if ix.key_dts[k] is not None else ix.key_pts[k]
            key_pts = ix.key_pts[k]
            c.seek(int(target), backward=True, any_frame=False, stream=s)
            self.stats["seeks"] += 1
        else:
            key_pts = None
            self._rewind()
        remaining = set(need)
        unsent = set(need)
        started = key_pts is None
        try:
            for packet in c.demux(s):
                if packet.size == 0:
                    break
                if not started:
                    # Skip packets between where the demuxer landed and our keyframe (demuxers that
                    # seek by pts land one keyframe early when dts < pts).
                    if packet.is_keyframe and packet.pts == key_pts:
                        started = True
                    elif packet.pts is not None and packet.is_keyframe and packet.pts > key_pts:
                        return False
                    else:
                        continue
                if packet.is_corrupt:
                    # A packet cut short (a truncated file) decodes to a concealed, partly wrong
                    # picture at best: never hand it over, so its frame is reported missing.
                    self.stats["corrupt_packets"] = self.stats.get("corrupt_packets", 0) + 1
                    continue
                wanted_here = packet.pts in unsent
                # Frames nobody references and nobody asked for need not be decoded at all.
                cc.skip_frame = "DEFAULT" if wanted_here else "NONREF"
                self.stats["packets_decoded"] += 1
                for frame in cc.decode(packet):
                    self.stats["frames_decoded"] += 1
                    if frame.pts in remaining:
                        got[need[frame.pts]] = self._to_rgb(frame)
                        remaining.discard(frame.pts)
                if wanted_here:
                    unsent.discard(packet.pts)
                if not unsent:
                    break
            if not started:
                return False
            if remaining:
                # Everything wanted was sent: drain the decoder's reorder buffer instead of decoding
                # further packets.
                cc.skip_frame = "DEFAULT"
                for frame in cc.decode(None):
                    if frame.pts in remaining:
                        got[need[frame.pts]] = self._to_rgb(frame)
                        remaining.discard(frame.pts)
        finally:
            cc.skip_frame = "DEFAULT"
            cc.flush_buffers()
        return True

    def _read_counting(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        self._rewind()
        want = set(wanted.tolist())
        last = int(wanted.max())
        got: dict[int, np.ndarray] = {}
        try:
            for n, frame in enumerate(self._container.decode(self._stream)):
                if n in want:
                    got[n] = self._to_rgb(frame)
                if n >= last:
                    break
        finally:
            self._rewind()
        return got

    def close(self) -> None:
        c, self._container = getattr(self, "_container", None), None
        if c is not None:
            c.close()


def _short(e: BaseException) -> str:
    msg = str(e).strip() or type(e).__name__
    return msg if len(msg) < 200 else msg[:200] + "..."


def read_frames_sequential(path: str | os.PathLike, indices: Sequence[int]) -> torch.Tensor:
    """Reference path: decode every frame in order from the start (PyAV), keep the ones asked for.

    Slow, but it makes no use of timestamps or seeking, which is what the tests check the fast paths
    against."""
    import av

    path = os.fspath(path)
    _check_file(path)
    idx = [int(i) for i in indices]
    want = set(idx)
    got: dict[int, np.ndarray] = {}
    try:
        with av.open(path, metadata_errors="ignore") as c:
            if not c.streams.video:
                raise VideoDecodeError(path, "no video stream")
            s = c.streams.video[0]
            s.codec_context.thread_count = 1
            for n, frame in enumerate(c.decode(s)):
                if n in want:
                    got[n] = frame.to_ndarray(format="rgb24")
                if len(got) == len(want):
                    break
    except _av_error_types() as e:
        raise VideoDecodeError(path, f"decoding failed ({_short(e)})") from None
    missing = sorted(want - set(got))
    if missing:
        raise IndexError(f"frame(s) {missing[:8]} not in '{path}' ({n + 1 if got else 0} frames decoded)")
    return torch.from_numpy(np.stack([got[i] for i in idx]))


# --------------------------------------------------------------------------------------------------
# OpenCV
# --------------------------------------------------------------------------------------------------


class OpenCVReader(VideoReader):
    """Fallback reader on ``cv2.VideoCapture`` (FFmpeg backend). BGR is converted to RGB."""

    backend = "opencv"

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        import cv2

        self._cv2 = cv2
        self.path = path = os.fspath(path)
        self._cap = None
        _check_file(path)
        params = [cv2.CAP_PROP_N_THREADS, max(1, int(threads))] if hasattr(cv2, "CAP_PROP_N_THREADS") else []
        try:
            cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
        except cv2.error as e:
            raise VideoDecodeError(path, f"OpenCV cannot open it ({_short(e)})") from None
        if not cap.isOpened():
            raise VideoDecodeError(path, "not a readable video file (OpenCV could not open it)")
        self._cap = cap
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        if n <= 0 or w <= 0 or h <= 0:
            self.close()
            raise VideoDecodeError(path, "no decodable video stream (OpenCV reports no frames)")
        self._pos = 0
        self.info = VideoInfo(path, n, fps, w, h, n / fps if fps else None, None, "opencv")

    def read(self, indices: Sequence[int]) -> np.ndarray:
        cv2 = self._cv2
        idx = self._check_indices(indices)
        wanted = np.unique(idx).tolist()
        got: dict[int, np.ndarray] = {}
        cap = self._cap
        for i in wanted:
            # Seek when going backwards or jumping ahead by more than ~a GOP; grab() otherwise.
            if i < self._pos or i - self._pos > 32:
                cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                self._pos = i
            while self._pos < i:
                if not cap.grab():
                    break
                self._pos += 1
            ok, bgr = cap.read() if self._pos == i else (False, None)
            if not ok or bgr is None:
                raise VideoDecodeError(self.path, f"frame {i} of {self.info.num_frames} could not be decoded")
            self._pos += 1
            got[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        h, w = self.info.height, self.info.width
        out = np.empty((idx.size, h, w, 3), dtype=np.uint8)
        for j, i in enumerate(idx.tolist()):
            out[j] = got[i]
        return out

    def close(self) -> None:
        cap, self._cap = getattr(self, "_cap", None), None
        if cap is not None:
            cap.release()


# --------------------------------------------------------------------------------------------------
# torchcodec
# --------------------------------------------------------------------------------------------------


class TorchCodecReader(VideoReader):
    """Reader on ``torchcodec.decoders.VideoDecoder`` (exact seek mode)."""

    backend = "torchcodec"

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        from torchcodec.decoders import VideoDecoder

        self.path = path = os.fspath(path)
        _check_file(path)
        try:
            self._dec = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=max(1, int(threads)),
                                     dimension_order="NHWC")
        except Exception as e:  # torchcodec raises plain RuntimeError/ValueError
            raise VideoDecodeError(path, f"torchcodec cannot open it ({_short(e)})") from None
        m = self._dec.metadata
        n = int(m.num_frames or 0)
        if n <= 0:
            raise VideoDecodeError(path, "video stream has no frames")
        fps = float(m.average_fps) if m.average_fps else None
        dur = float(m.duration_seconds) if m.duration_seconds else None
        self.info = VideoInfo(path, n, fps, int(m.width), int(m.height), dur, getattr(m, "codec", None),
                              "torchcodec")

    def read(self, indices: Sequence[int]) -> np.ndarray:
        idx = self._check_indices(indices)
        try:
            batch = self._dec.get_frames_at(indices=idx.tolist())
        except Exception as e:
            raise VideoDecodeError(self.path, f"decoding failed ({_short(e)})") from None
        data = batch.data
        if data.shape[-1] == 1:
            data = data.expand(*data.shape[:-1], 3)
        return data.numpy()


# --------------------------------------------------------------------------------------------------
# Frame folders
# --------------------------------------------------------------------------------------------------

_NUM = re.compile(r"(\d+)")


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in _NUM.split(name)]


class RawFramesReader(VideoReader):
    """A folder of images as a video (MMAction2's rawframes: ``img_00001.jpg``, ``img_00002.jpg`` ...).

    Files are ordered by the numbers in their names; only names with the most common prefix are used
    (so ``flow_x_*.jpg`` next to ``img_*.jpg`` is ignored unless ``prefix`` asks for it). Images are
    decoded with PyAV (no extra dependency)."""

    backend = "rawframes"

    def __init__(self, path: str | os.PathLike, prefix: str | None = None):
        self.path = path = os.fspath(path)
        if not os.path.isdir(path):
            raise VideoDecodeError(path, "frame folder not found")
        names = [n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS)]
        if prefix is None and names:
            prefixes: dict[str, int] = {}
            for n in names:
                p = _NUM.split(n)[0]
                prefixes[p] = prefixes.get(p, 0) + 1
            prefix = max(prefixes, key=lambda p: (prefixes[p], p == "img_"))
        names = sorted((n for n in names if n.startswith(prefix or "")), key=_natural_key)
        if not names:
            raise VideoDecodeError(path, "no image files in the frame folder")
        self._files = [os.path.join(path, n) for n in names]
        first = self._decode(0)
        h, w = first.shape[:2]
        self._first = first
        self.info = VideoInfo(path, len(names), None, w, h, None, "rawframes", "rawframes")

    def _decode(self, i: int) -> np.ndarray:
        import av

        f = self._files[i]
        try:
            if os.path.getsize(f) == 0:
                raise VideoDecodeError(f, "empty image file (0 bytes)")
            with av.open(f) as c:
                for frame in c.decode(video=0):
                    return frame.to_ndarray(format="rgb24")
        except _av_error_types() as e:
            raise VideoDecodeError(f, f"not a readable image ({_short(e)})") from None
        raise VideoDecodeError(f, "image decoded to nothing")

    def read(self, indices: Sequence[int]) -> np.ndarray:
        idx = self._check_indices(indices)
        h, w = self.info.height, self.info.width
        out = np.empty((idx.size, h, w, 3), dtype=np.uint8)
        cache: dict[int, np.ndarray] = {}
        for j, i in enumerate(idx.tolist()):
            if i not in cache:
                img = self._first if i == 0 else self._decode(i)
                if img.shape[:2] != (h, w):
                    raise VideoDecodeError(self._files[i], f"image size {img.shape[1]}x{img.shape[0]} differs "
                                                          f"from the folder's first image {w}x{h}")
                cache[i] = img
            out[j] = cache[i]
        return out


# --------------------------------------------------------------------------------------------------
# Front door
# --------------------------------------------------------------------------------------------------


def _importable(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except Exception:  # torchcodec raises OSError/RuntimeError when its native libs do not load
        return False


_AVAILABLE: dict[str, bool] = {}


def _has(backend: str) -> bool:
    if backend not in _AVAILABLE:
        mod = {"pyav": "av", "opencv": "cv2", "torchcodec": "torchcodec.decoders"}[backend]
        _AVAILABLE[backend] = _importable(mod)
    return _AVAILABLE[backend]


def available_decoders() -> list[str]:
    """The backends that import here (``rawframes`` always works)."""
    return [b for b in ("pyav", "opencv", "torchcodec") if _has(b)]


_READERS = {"pyav": PyAVReader, "opencv": OpenCVReader, "torchcodec": TorchCodecReader}


def open_video(path: str | os.PathLike, decoder: str = "auto", threads: int = 1) -> VideoReader:
    """Open ``path`` (a video file, or a folder of frames) for frame-accurate reads.

    ``decoder="auto"`` uses PyAV and, when PyAV cannot decode a file and OpenCV is installed, retries
    with OpenCV; if both fail the PyAV error is raised. Raises :class:`VideoDecodeError`."""
    path = os.fspath(path)
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
    if os.path.isdir(path):
        return RawFramesReader(path)
    if decoder != "auto":
        if not _has(decoder):
            hint = {"opencv": "pip install opencv-python-headless",
                    "torchcodec": "pip install torchcodec (CPU-only torch: torchcodec==0.13.0 + system FFmpeg)",
                    "pyav": "pip install av"}[decoder]
            raise ImportError(f"decoder {decoder!r} is not available here ({hint})")
        return _READERS[decoder](path, threads=threads)
    if not _has("pyav"):
        if _has("opencv"):
            return OpenCVReader(path, threads=threads)
        raise ImportError("no video decoder available: pip install av")
    try:
        return PyAVReader(path, threads=threads)
    except VideoDecodeError as first:
        if not _has("opencv") or not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise
        try:
            return _FallbackReader(OpenCVReader(path, threads=threads), first)
        except VideoDecodeError:
            raise first from None


class _FallbackReader(VideoReader):
    """OpenCV standing in for PyAV on a file PyAV rejected; remembers why."""

    def __init__(self, inner: VideoReader, pyav_error: VideoDecodeError):
        self._inner = inner
        self.info = inner.info
        self.pyav_error = pyav_error
        log.info("PyAV could not decode %s (%s); using OpenCV", inner.info.path, pyav_error.reason)

    def read(self, indices):
        return self._inner.read(indices)

    def close(self):
        inner = getattr(self, "_inner", None)
        if inner is not None:
            inner.close()


def probe(path: str | os.PathLike, decoder: str = "auto") -> VideoInfo:
    """``VideoInfo`` (``num_frames``, ``fps``, ``width``, ``height``, ``duration``) of a video or frame folder."""
    with open_video(path, decoder=decoder) as r:
        return r.info


def read_frames(
    path: str | os.PathLike, indices: Sequence[int] | Iterable[int], decoder: str = "auto", threads: int = 1
) -> torch.Tensor:
    """Exactly the frames ``indices`` of ``path`` as a ``torch.uint8`` tensor ``(T, H, W, 3)`` (RGB), in
    the order given (repeats allowed). Uses keyframe seeks: a short clip from a long video does not
    decode the whole video. Raises :class:`VideoDecodeError` (file problems) or ``IndexError``."""
    with open_video(path, decoder=decoder, threads=threads) as r:
        return torch.from_numpy(r.read(list(indices)))
