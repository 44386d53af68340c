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
    metadata, so the reader checks it by decoding the first and the last frame it promises (counting
    the frames when the last is not there), checks every read, and raises :class:`VideoDecodeError`
    when a frame is missing rather than returning a wrong one.
``torchcodec`` (used only where ``import torchcodec`` works)
    ``VideoDecoder(seek_mode="exact")``. On CPU-only torch only ``torchcodec==0.13.0`` with a system
    FFmpeg works (see ``shared/notes/ecosystem.md`` section 1).
``rawframes``
    A folder of images (``img_00001.jpg`` ...), picked automatically when ``path`` is a directory.

All backends use one FFmpeg thread by default: a DataLoader runs one decoder per worker process and
more threads per decoder only compete for the same cores.

Damaged files
-------------
FFmpeg conceals damage instead of failing: a bit flip or a cut-short packet decodes to a picture with
smeared or missing blocks, and every frame predicted from it until the next keyframe inherits the
damage. The ``pyav`` reader marks a frame *corrupt* when any of these says so: the decoder's own flag
(``frame.is_corrupt``: ``AV_FRAME_FLAG_CORRUPT`` or ``decode_error_flags``), the demuxer's flag on its
packet (``packet.is_corrupt``, e.g. a short read at the end of a truncated file), decoding its packet
raised, the packet is a GIF frame whose data stops before its terminator, or it is the last packet of
an MPEG-TS file that ends in the middle of a transport packet; and every frame decoded after such a
frame up to the next clean keyframe (it may reference the damaged one). ``corrupt_frames`` (see
:data:`CORRUPT_POLICIES`) says what a read does with them. Damage that the bitstream cannot reveal (a
bit flip that still decodes validly, which is common in VP9 and CABAC-coded H.264) is not detected:
no decoder flags it and there is no checksum to check.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import threading
import types
from collections import OrderedDict
from dataclasses import dataclass, field
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
    "index_cache_info",
    "clear_index_cache",
    "DECODERS",
    "CORRUPT_POLICIES",
    "NotAVideoError",
]

log = logging.getLogger("videoformers.data")

DECODERS = ("auto", "pyav", "opencv", "torchcodec", "torchcodec-cuda", "decord")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# What a read does with frames that FFmpeg reports as damaged (see ``DataConfig.corrupt_frames``).
#   skip  -- replace each by the nearest good frame of the same video (default, see ``open_video``);
#   keep  -- return them as decoded, but count them (``reader.last_corrupt``);
#   error -- raise VideoDecodeError naming the file and the frame.
CORRUPT_POLICIES = ("skip", "keep", "error")

# Files that are text by name. FFmpeg's "tty" demuxer claims *.txt (and *.nfo, *.asc ...) and renders the
# characters as a 640x400 "video" of an ANSI terminal, so a notes file in a training list would be
# trained on; the others are rejected here too so that the message says what the file is instead of
# "invalid data".
TEXT_EXTENSIONS = (
    ".txt", ".text", ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".md", ".rst", ".yaml", ".yml", ".toml",
    ".ini", ".cfg", ".conf", ".xml", ".html", ".htm", ".log", ".py", ".sh", ".nfo", ".ans", ".asc", ".diz",
    ".ice", ".vt", ".srt", ".vtt", ".ass", ".ssa", ".sub",
)
# Demuxers that render text or character art as pictures (tty: ANSI art and any *.txt; bin/xbin/adf/idf:
# DOS text-mode screen dumps). What they produce is never a video.
TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})


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


class NotAVideoError(VideoDecodeError):
    """The file is readable but is not a video (text, a still image). Unlike other decode errors there
    is no point retrying it with another backend: OpenCV's FFmpeg would render the same text as a
    video."""


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
    """An open video. Use as a context manager, or call :meth:`close`.

    After each :meth:`read`, ``last_corrupt`` is the sorted tuple of requested frame numbers that FFmpeg
    reported as damaged, ``last_replaced`` maps those that were replaced (policy ``"skip"``) to the frame
    returned in their place, and ``num_corrupt`` adds ``len(last_corrupt)`` up over the reader's reads.
    Only the ``pyav`` backend can see damage; the others always report none."""

    info: VideoInfo
    corrupt_frames: str = "skip"
    last_corrupt: tuple = ()
    last_replaced: dict = types.MappingProxyType({})
    num_corrupt: int = 0

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
    ext = os.path.splitext(path)[1].lower()
    if ext in TEXT_EXTENSIONS:
        raise NotAVideoError(path, f"not a video: a {ext} file is text (FFmpeg would render the characters as a "
                                   "picture of a terminal)")


def _check_policy(corrupt_frames: str) -> str:
    if corrupt_frames not in CORRUPT_POLICIES:
        raise ValueError(f"corrupt_frames={corrupt_frames!r}: expected one of {CORRUPT_POLICIES}")
    return corrupt_frames


# --------------------------------------------------------------------------------------------------
# PyAV
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FrameIndex:
    """Per-file index from one demux pass.

    ``pts[i]`` is the presentation timestamp of frame ``i`` (sorted). ``key_pts`` are the keyframes'
    pts, sorted, and ``key_seek`` the timestamp to seek to for each (its dts where the container gives
    one, else its pts). ``damaged`` maps the pts of packets found damaged while demuxing (cut short,
    a truncated GIF frame, the last packet of a cut MPEG-TS file) to why. ``exact`` is False when the
    timestamps could not be trusted and frames are identified by counting decoded frames instead.

    Everything is a NumPy array rather than Python ints or sets: an entry for a 20-minute 30 fps video
    is ~0.3 MB instead of ~3 MB, and :attr:`nbytes` is what the cache's byte bound counts.
    """

    num_frames: int
    pts: np.ndarray
    key_pts: np.ndarray
    key_seek: np.ndarray
    exact: bool
    damaged: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        # Arrays plus a fixed allowance for the object, its key in the cache and the damaged dict.
        return int(self.pts.nbytes + self.key_pts.nbytes + self.key_seek.nbytes + 512 + 160 * len(self.damaged))


def _env_cache_bytes() -> int:
    raw = os.environ.get("VIDEOFORMERS_INDEX_CACHE_MB", "256")
    try:
        mb = float(raw)
    except ValueError:
        raise ValueError(f"VIDEOFORMERS_INDEX_CACHE_MB={raw!r}: expected a number of megabytes, e.g. 256") from None
    if mb < 0:
        raise ValueError(f"VIDEOFORMERS_INDEX_CACHE_MB={raw!r}: must be >= 0 (0 disables the cache)")
    return int(mb * 2**20)


# Bound of the per-process frame-index cache, in bytes (every DataLoader worker has its own cache).
# 256 MB holds ~900 indices of 20-minute videos or ~100 000 of 10 s clips. Set
# VIDEOFORMERS_INDEX_CACHE_MB before import, or call ``set_index_cache_bytes``.
INDEX_CACHE_BYTES = _env_cache_bytes()


class _LRU:
    """A thread-safe LRU cache bounded by the bytes of its values (``value.nbytes``), per process.

    A count bound is no bound at all for this cache: an index grows with the video's length, so 2048
    entries were 20 MB for 10 s clips and gigabytes per worker for long videos."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key):
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key, value) -> None:
        size = int(value.nbytes)
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self.nbytes -= int(old.nbytes)
            if size > self.max_bytes:  # larger than the whole cache: do not cache it (nor flush the rest)
                return
            self._d[key] = value
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, ev = self._d.popitem(last=False)
                self.nbytes -= int(ev.nbytes)

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = int(max_bytes)
            while self.nbytes > self.max_bytes and self._d:
                _, ev = self._d.popitem(last=False)
                self.nbytes -= int(ev.nbytes)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self.nbytes = 0


_INDEX_CACHE = _LRU(INDEX_CACHE_BYTES)


def clear_index_cache() -> None:
    """Forget cached frame indices (e.g. after rewriting files in place)."""
    _INDEX_CACHE.clear()


def set_index_cache_bytes(max_bytes: int) -> None:
    """Change this process's frame-index cache bound (bytes); evicts least recently used entries."""
    if int(max_bytes) < 0:
        raise ValueError(f"index cache bound must be >= 0 bytes, got {max_bytes}")
    _INDEX_CACHE.resize(max_bytes)


def index_cache_info() -> dict:
    """``{"entries", "bytes", "max_bytes"}`` of this process's frame-index cache."""
    return {"entries": len(_INDEX_CACHE), "bytes": _INDEX_CACHE.nbytes, "max_bytes": _INDEX_CACHE.max_bytes}


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _vp8_invisible(packet) -> bool:
    # VP8 frame tag (RFC 6386 sec. 9.1): bit 4 of the first byte is show_frame. An invisible (alt-ref)
    # frame gives no decoded picture, so it must not count as a frame.
    data = bytes(packet)
    return bool(data) and not (data[0] >> 4) & 1


def _gif_frame_damage(data: bytes) -> str | None:
    """Why a GIF demuxer packet (one frame: optional header, extensions, image descriptor, LZW sub-blocks,
    optional trailer) is damaged, or None.

    The gif demuxer hands over whatever bytes are left at the end of a truncated file without flagging
    the packet, and the decoder draws the part it has over the previous canvas: a half-drawn frame that
    no FFmpeg flag reports. A zeroed stretch ends the image data early the same way, and the demuxer,
    unable to find the next frame, lumps the rest of the file into this packet. Only clear evidence
    counts (a sub-block running past the end, no terminator, bytes after the image that are no GIF
    block); anything else is left to the decoder."""
    n, i = len(data), 0
    cut = "GIF frame data ends before its terminator (truncated file)"
    if data[:3] == b"GIF":
        if n < 13:
            return cut
        flags, i = data[10], 13
        if flags & 0x80:
            i += 3 * (2 << (flags & 7))

    def sub_blocks(i: int) -> int | None:  # position after the terminator, None if it runs off the end
        while i < n:
            size = data[i]
            i += 1 + size
            if size == 0:
                return i
        return None

    while i < n:
        b = data[i]
        if b == 0x21:  # extension: label, then sub-blocks
            j = sub_blocks(i + 2)
            if j is None:
                return cut
            i = j
        elif b == 0x2C:  # image descriptor (10 bytes), optional local colour table, LZW code size
            if i + 10 > n:
                return cut
            flags = data[i + 9]
            i += 10
            if flags & 0x80:
                i += 3 * (2 << (flags & 7))
            if i >= n:
                return cut
            j = sub_blocks(i + 1)
            if j is None:
                return cut
            if j < n and data[j] not in (0x21, 0x2C, 0x3B):
                return (f"GIF frame data stops early and {n - j} bytes that are no GIF block follow it "
                        "(damaged file)")
            return None
        else:  # trailer or bytes this parser does not model: not evidence of damage
            return None
    return cut  # header/extensions only, the image never started


def _ts_cut_mid_packet(size: int) -> bool:
    # MPEG-TS is a sequence of 188-byte packets (192 in M2TS, 204 with Reed-Solomon): a file whose size
    # is a multiple of none of them was cut, and the demuxer flushes its last, incomplete PES at EOF
    # as if it were whole.
    return size % 188 != 0 and size % 192 != 0 and size % 204 != 0


def _av_error_types():
    import av

    return (av.FFmpegError, EOFError, OSError, ValueError)


def _demux(container, stream):
    """``container.demux(stream)``, with PyAV's ``IndexError`` for a stream that appears mid-file turned
    into an ``OSError`` that callers treat as the file ending there.

    MPEG-TS may announce a new stream at any point, and damage to a PMT makes one up; PyAV 18 then looks
    the packet's stream up in its stale stream list and raises ``IndexError`` out of the demuxer."""
    it = container.demux(stream)
    while True:
        try:
            p = next(it)
        except StopIteration:
            return
        except IndexError as e:
            raise OSError(f"a stream appeared in the middle of the file that PyAV cannot follow ({e})") from None
        yield p


class _Damage:
    """Which frames of one decode pass are damaged, by decode order.

    A frame is damaged when its packet (or the frame itself) was reported damaged, or when it was
    decoded after a damaged frame and no clean keyframe in between cuts it off: it may be predicted from
    the damaged one. Decode order, not presentation order, is what matters (a B-frame shown before a
    damaged P-frame is decoded after it and may reference it), so this is decided per packet position
    once the pass is over, not from a running flag when frames come out of the reorder buffer.

    A keyframe cuts off only the frames shown at or after it: B-frames decoded after a keyframe but
    shown before it (MPEG-4 Part 2 and other open GOPs) still reference the previous GOP's last P-frame."""

    def __init__(self) -> None:
        self.pos: dict[int, int] = {}  # pts -> decode position of its packet
        self.keys: list[int] = []  # decode positions of keyframe packets
        self.key_pts: list = []  # their pts (None if unknown), same order
        self.origins: dict[int, str] = {}  # decode position -> why
        self.n = 0

    def packet(self, pts, is_key: bool, why: str | None) -> int:
        p = self.n
        self.n += 1
        if pts is not None:
            self.pos[int(pts)] = p
        if is_key:
            self.keys.append(p)
            self.key_pts.append(None if pts is None else int(pts))
        if why:
            self.origins.setdefault(p, why)
        return p

    def damaged(self, p: int, why: str) -> None:
        self.origins.setdefault(p, why)

    def frame(self, pts, why: str) -> None:
        p = self.pos.get(int(pts)) if pts is not None else None
        if p is None:  # a frame whose pts matches no packet (damaged timestamps): taint from here on
            p = self.n - 1
        if p >= 0:
            self.origins.setdefault(p, why)

    def reason(self, pts) -> str | None:
        p = self.pos.get(int(pts)) if pts is not None else None
        if p is None:
            return None
        if p in self.origins:
            return self.origins[p]
        before = [o for o in self.origins if o < p]
        if not before:
            return None
        o = max(before)
        lo, hi = bisect.bisect_right(self.keys, o), bisect.bisect_right(self.keys, p)
        for j in range(lo, hi):  # keyframes decoded after the damage, up to this frame
            kp = self.key_pts[j]
            if kp is None or kp <= int(pts):  # ... and this frame is shown at or after it
                return None
        return f"decoded after a damaged frame in its GOP ({self.origins[o]})"


_FRAME_FLAGGED = "FFmpeg's decoder flagged the frame as corrupt"
_PACKET_FLAGGED = "the demuxer flagged its packet as corrupt (cut short?)"


class PyAVReader(VideoReader):
    """Frame-accurate reader on PyAV with keyframe seeks (see the module docstring).

    ``corrupt_frames`` (``"skip"``, ``"keep"`` or ``"error"``, see :data:`CORRUPT_POLICIES`) says what
    :meth:`read` does with frames FFmpeg reports as damaged; after each read ``last_corrupt`` holds the
    requested frame numbers that were damaged and ``last_replaced`` which frame stood in for each.
    """

    backend = "pyav"

    def __init__(self, path: str | os.PathLike, threads: int = 1, corrupt_frames: str = "skip"):
        import av

        self.path = path = os.fspath(path)
        self._container = None
        self.corrupt_frames = _check_policy(corrupt_frames)
        self.last_corrupt, self.last_replaced, self.num_corrupt = (), {}, 0
        self._bad: dict[int, str] = {}  # frame -> why, for frames found damaged by earlier reads
        self._good: set[int] = set()  # frames decoded cleanly by earlier reads
        _check_file(path)
        try:
            self._container = av.open(path, metadata_errors="ignore")
        except _av_error_types() as e:
            raise VideoDecodeError(path, f"not a readable media file ({_short(e)})") from None
        c = self._container
        fmt = c.format.name if c.format is not None else ""
        if fmt in TEXT_FORMATS:
            self.close()
            raise NotAVideoError(path, f"not a video: FFmpeg reads it as text ('{fmt}' demuxer renders characters)")
        if not c.streams.video:
            what = "audio only" if c.streams.audio else "no streams" if not c.streams else "no video stream"
            self.close()
            raise VideoDecodeError(path, f"no video stream ({what})")
        self._stream = s = c.streams.video[0]
        if s.codec_context is None:
            # PyAV leaves codec_context None when FFmpeg has no decoder for the stream's codec.
            self.close()
            raise VideoDecodeError(path, f"its video codec is unknown to this FFmpeg build (PyAV {av.__version__}, "
                                         f"container '{fmt}'): no decoder for stream #0")
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
        # Building the index rewinds, and a container that cannot seek (a raw .h264 stream) is reopened
        # for that: the container and stream above may be closed objects by now.
        c, s = self._container, self._stream
        cc = s.codec_context
        # What the last reads cost: seeks, packets sent to the decoder, frames the decoder produced.
        self.stats = {"seeks": 0, "packets_decoded": 0, "frames_decoded": 0, "corrupt_frames": 0}
        if index.num_frames == 0:
            self.close()
            raise VideoDecodeError(path, "video stream has no frames (truncated or empty stream)")
        if index.num_frames == 1 and (fmt == "image2" or fmt.endswith("_pipe")):
            self.close()
            raise NotAVideoError(path, f"not a video: a single still image ('{fmt}'); a frame folder is a directory "
                                       "of images")
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
        fmt = self._container.format.name
        is_gif = fmt == "gif"
        pts: list[int] = []
        keys: list[tuple[int, int | None]] = []
        damaged: dict[int, str] = {}
        trusted = True
        seen_key = False
        last_pts = None
        try:
            for p in _demux(self._container, s):
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
                if is_gif:
                    why = _gif_frame_damage(bytes(p))
                    if why:
                        damaged[int(p.pts)] = why
                pts.append(p.pts)
                last_pts = int(p.pts)
                if p.is_keyframe:
                    keys.append((p.pts, p.dts))
        except _av_error_types() as e:
            # A truncated file: keep what was demuxed. Frames past the damage raise when read.
            log.debug("demux of %s stopped early: %s", self.path, _short(e))
        if fmt == "mpegts" and last_pts is not None and _ts_cut_mid_packet(os.path.getsize(self.path)):
            damaged.setdefault(last_pts, "last frame of an MPEG-TS file that ends mid-packet (truncated file)")
        self._rewind()
        arr = np.asarray(sorted(pts), dtype=np.int64)
        if trusted and arr.size and np.unique(arr).size != arr.size:
            trusted = False
        empty = np.zeros(0, dtype=np.int64)
        if not trusted or not keys:
            n = self._count_frames(damaged)
            self._rewind()
            return _FrameIndex(n, np.arange(n, dtype=np.int64), empty, empty, False, damaged)
        keys.sort(key=lambda k: k[0])
        key_pts = np.asarray([k[0] for k in keys], dtype=np.int64)
        key_seek = np.asarray([k[1] if k[1] is not None else k[0] for k in keys], dtype=np.int64)
        return _FrameIndex(int(arr.size), arr, key_pts, key_seek, True, damaged)

    def _sequential(self, damaged: dict):
        """Decode the stream from where the container is, yielding ``(frame, why_damaged_or_None)`` in
        output order. Used where frames are identified by counting, so it must produce the same frames in
        the same order every time: a packet that fails to decode is skipped, not a reason to stop."""
        cc = self._stream.codec_context
        tainted: str | None = None
        # After a clean keyframe ends a damaged stretch, frames shown before that keyframe (leading
        # B-frames) still reference the damaged GOP (see _Damage).
        leading: tuple[int, str] | None = None
        for p in _demux(self._container, self._stream):
            if p.size:
                why = _PACKET_FLAGGED if p.is_corrupt else damaged.get(int(p.pts)) if p.pts is not None else None
                if p.is_keyframe and not why:
                    if tainted and p.pts is not None:
                        leading = (int(p.pts), f"decoded after a damaged frame in its GOP ({tainted})")
                    tainted = None
                tainted = tainted or why
            try:
                frames = cc.decode(p)
            except _av_error_types() as e:
                tainted = tainted or f"decoding its packet failed ({_short(e)})"
                continue
            for f in frames:
                if f.is_corrupt:
                    tainted = tainted or _FRAME_FLAGGED
                    yield f, _FRAME_FLAGGED
                elif tainted is None and leading is not None and f.pts is not None and f.pts < leading[0]:
                    yield f, leading[1]
                else:
                    yield f, tainted

    def _count_frames(self, damaged: dict) -> int:
        n = 0
        try:
            for _ in self._sequential(damaged):
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
        got = self._read_raw(wanted)
        bad = {int(i): self._bad[int(i)] for i in wanted if int(i) in self._bad}
        self.last_corrupt, self.last_replaced = tuple(sorted(bad)), {}
        if bad:
            self.num_corrupt += len(bad)
            self.stats["corrupt_frames"] += len(bad)
            if self.corrupt_frames == "error":
                i = min(bad)
                more = f" ({len(bad) - 1} more of the requested frames too)" if len(bad) > 1 else ""
                raise VideoDecodeError(self.path, f"frame {i} of {ix.num_frames} is corrupt: {bad[i]}{more} "
                                                  "[data.corrupt_frames=error]")
            # keep: a damaged frame that gave no picture at all still needs a stand-in.
            targets = sorted(bad) if self.corrupt_frames == "skip" else sorted(i for i in bad if i not in got)
            if targets:
                self.last_replaced = self._substitute(targets, got)
                log.debug("%s: replaced corrupt frames %s", self.path, self.last_replaced)
        missing = [int(i) for i in wanted if int(i) not in got and int(i) not in self.last_replaced]
        if missing:
            raise VideoDecodeError(
                self.path,
                f"frame(s) {missing[:8]}{'...' if len(missing) > 8 else ''} of {ix.num_frames} could not be "
                "decoded (truncated or corrupt file?)",
            )
        h, w = self.info.height, self.info.width
        out = np.empty((idx.size, h, w, 3), dtype=np.uint8)
        rep = self.last_replaced
        for j, i in enumerate(idx.tolist()):
            out[j] = got[rep.get(i, i)]
        return out

    def _read_raw(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Decode ``wanted`` (sorted, unique) as they are, damaged or not; what was found damaged or clean
        on the way is recorded in ``self._bad`` / ``self._good``."""
        try:
            if self._index.exact:
                return self._read_seek(wanted)
            return self._read_counting(wanted)
        except _av_error_types() as e:
            raise VideoDecodeError(self.path, f"decoding failed ({_short(e)})") from None

    def _nearest_candidate(self, i: int) -> int | None:
        n = self._index.num_frames
        for d in range(1, n):
            pair = [c for c in (i - d, i + d) if 0 <= c < n and c not in self._bad]
            if pair:
                known = [c for c in pair if c in self._good]
                return (known or pair)[0]  # a frame known to be clean first, else the earlier one
        return None

    def _substitute(self, targets: list[int], got: dict[int, np.ndarray]) -> dict[int, int]:
        """For each damaged frame in ``targets``, the nearest frame of the video that decodes cleanly
        (decoded into ``got``). Raises when the video has none: then every frame is damaged and there is
        nothing to return that is not garbage."""
        n = self._index.num_frames
        result: dict[int, int] = {}
        pending = list(targets)
        for _ in range(_SUBSTITUTE_ROUNDS):
            choice = {}
            for i in pending:
                j = self._nearest_candidate(i)
                if j is None:
                    raise VideoDecodeError(self.path, f"frame {i} of {n} is corrupt ({self._bad[i]}) and so is every "
                                                      "other frame: nothing clean to use in its place")
                choice[i] = j
            need = sorted({j for j in choice.values() if j not in got})
            if need:
                got.update(self._read_raw(np.asarray(need, dtype=np.int64)))
            pending = []
            for i, j in choice.items():
                if j in got and j not in self._bad:
                    result[i] = j
                else:
                    if j not in self._bad:  # not delivered at all: do not try it again
                        self._bad[j] = "could not be decoded"
                    pending.append(i)
            if not pending:
                return result
        raise VideoDecodeError(self.path, f"frame(s) {pending[:8]} of {n} are corrupt and no clean frame was found "
                                          f"near them in {_SUBSTITUTE_ROUNDS} tries")

    def _frame_number(self, pts) -> int | None:
        if pts is None:
            return None
        ix = self._index
        i = int(np.searchsorted(ix.pts, pts))
        return i if i < ix.num_frames and int(ix.pts[i]) == int(pts) else None

    def _to_rgb(self, frame) -> np.ndarray:
        # One reformatter per reader: frame.to_ndarray(format=...) builds a new swscale context for every
        # frame, which was a third of the decode time of small clips (0.115 -> 0.046 ms per 32x32 frame;
        # the pixels are identical).
        rf = self.__dict__.get("_reformatter")
        if rf is None:
            from av.video.reformatter import VideoReformatter

            rf = self._reformatter = VideoReformatter()
        h, w = self.info.height, self.info.width
        if frame.width != w or frame.height != h:  # resolution change mid-stream: keep one size
            return rf.reformat(frame, format="rgb24", width=w, height=h).to_ndarray()
        return rf.reformat(frame, format="rgb24").to_ndarray()

    def _runs(self, wanted: np.ndarray) -> list[tuple[int, list[int]]]:
        """Group wanted frames into runs that are decoded without seeking in between.

        Each run starts at the keyframe of its first frame (``-1``: decode from the stream start). A new
        run starts when a keyframe lies after the previous wanted frame and at or before the next one:
        seeking there is strictly less decoding than going on."""
        ix = self._index
        runs: list[tuple[int, list[int]]] = []
        last_k = None
        for i in wanted.tolist():
            k = int(np.searchsorted(ix.key_pts, ix.pts[i], side="right")) - 1
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
        is out. Returns False when the seek overshot the keyframe. Frames are converted as they come out
        and judged damaged or clean when the run is over (see :class:`_Damage`)."""
        ix = self._index
        c, s = self._container, self._stream
        cc = s.codec_context
        if k >= 0:
            key_pts = int(ix.key_pts[k])
            c.seek(int(ix.key_seek[k]), backward=True, any_frame=False, stream=s)
            self.stats["seeks"] += 1
        else:
            key_pts = None
            self._rewind()
        remaining = set(need)
        unsent = set(need)
        started = key_pts is None
        dmg = _Damage()
        seen: list = []  # pts of every frame the decoder produced in this run
        try:
            for packet in _demux(c, s):
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
                # A packet cut short (a truncated file) or a GIF frame without its end decodes to a
                # concealed or half-drawn picture: it is decoded (it may be a reference, and "keep"
                # returns it) but it and the frames decoded after it are marked damaged.
                why = _PACKET_FLAGGED if packet.is_corrupt else (
                    ix.damaged.get(int(packet.pts)) if packet.pts is not None and ix.damaged else None)
                pos = dmg.packet(packet.pts, packet.is_keyframe, why)
                wanted_here = packet.pts in unsent
                # Frames nobody references and nobody asked for need not be decoded at all.
                cc.skip_frame = "DEFAULT" if wanted_here else "NONREF"
                self.stats["packets_decoded"] += 1
                try:
                    frames = cc.decode(packet)
                except _av_error_types() as e:
                    dmg.damaged(pos, f"decoding its packet failed ({_short(e)})")
                    frames = []
                for frame in frames:
                    self._take(frame, need, remaining, got, dmg, seen)
                if wanted_here:
                    unsent.discard(packet.pts)
                if not unsent:
                    break
            if not started:
                return False
            # Everything wanted was sent: drain the decoder's reorder buffer instead of decoding further
            # packets. Also when nothing wanted is left in it: a reference frame still in there (the
            # I-frame that B-frames shown before it were predicted from) may carry the damage flag.
            cc.skip_frame = "DEFAULT"
            try:
                frames = cc.decode(None)
            except _av_error_types():
                frames = []
            for frame in frames:
                self._take(frame, need, remaining, got, dmg, seen)
        finally:
            cc.skip_frame = "DEFAULT"
            cc.flush_buffers()
        for pts in list(seen) + list(remaining):
            i = self._frame_number(pts)
            if i is None:
                continue
            why = dmg.reason(pts)
            if why:
                self._bad[i] = why
                self._good.discard(i)
            elif pts in remaining:
                continue  # never came out and nothing says why: reported missing by read()
            elif i not in self._bad:
                self._good.add(i)
        return True

    def _take(self, frame, need, remaining, got, dmg: _Damage, seen: list) -> None:
        self.stats["frames_decoded"] += 1
        if frame.is_corrupt:
            dmg.frame(frame.pts, _FRAME_FLAGGED)
        seen.append(frame.pts)
        if frame.pts in remaining:
            got[need[frame.pts]] = self._to_rgb(frame)
            remaining.discard(frame.pts)

    def _read_counting(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        self._rewind()
        want = set(wanted.tolist())
        last = int(wanted.max())
        got: dict[int, np.ndarray] = {}
        try:
            for n, (frame, why) in enumerate(self._sequential(self._index.damaged)):
                if why:
                    self._bad[n] = why
                    self._good.discard(n)
                elif n not in self._bad:
                    self._good.add(n)
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


# How many rounds of "try the nearest frame not known to be damaged" a skip may take before it gives up.
# Each round decodes the candidates and learns the state of every frame decoded on the way, so a damaged
# stretch up to the next keyframe is usually crossed in one or two rounds.
_SUBSTITUTE_ROUNDS = 8


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
            frames = (f for p in _demux(c, s) for f in p.decode())
            for n, frame in enumerate(frames):
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

    def __init__(self, path: str | os.PathLike, threads: int = 1, corrupt_frames: str = "skip"):
        import cv2

        self.corrupt_frames = _check_policy(corrupt_frames)  # accepted for one interface; OpenCV cannot see damage
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
        n = self._verified_frame_count(n)
        self._pos = 0
        self.info = VideoInfo(path, n, fps, w, h, n / fps if fps else None, None, "opencv")

    def _verified_frame_count(self, claimed: int) -> int:
        """The number of frames the file really delivers.

        ``CAP_PROP_FRAME_COUNT`` comes from the container header (or duration x fps): a 512-byte file
        that holds only a WebM header "has" 60 frames. So the first frame must decode, and the last one
        the header promises must too; when it does not, the frames are counted by reading them all. A
        file none of whose frames decode is a :class:`VideoDecodeError`, not a video."""
        cv2, cap = self._cv2, self._cap
        ok, _ = cap.read()
        if not ok:
            self.close()
            raise VideoDecodeError(self.path, f"OpenCV reads a header announcing {claimed} frames but cannot decode "
                                              "even the first one (header only, truncated or not a video)")
        last_ok = claimed == 1
        if claimed > 1:
            cap.set(cv2.CAP_PROP_POS_FRAMES, claimed - 1)
            last_ok = bool(cap.grab())
        n = claimed
        if not last_ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            n = 0
            while cap.grab():
                n += 1
            if n == 0:
                self.close()
                raise VideoDecodeError(self.path, f"OpenCV reads a header announcing {claimed} frames but cannot "
                                                  "decode them")
            log.warning("%s: the header announces %d frames but OpenCV decodes only %d; using %d",
                        self.path, claimed, n, n)
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return n

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
    """Reader on ``torchcodec.decoders.VideoDecoder`` (exact seek mode).

    ``device="cuda"`` (``decoder="torchcodec-cuda"``) decodes on the GPU's NVDEC engine; frames come back
    to host memory for the CPU transforms, so it offloads decoding, not the copy. Offered as an option,
    not a default: it needs the CUDA build of torchcodec and a GPU, a CUDA context per decoding process
    (``data.num_workers=0``: forked DataLoader workers cannot use CUDA), and whether it beats the CPU for
    short clips is to be measured on the machine (``benchmarks/gpu_decode.py``, run by
    ``benchmarks/gpu_suite.sh``)."""

    backend = "torchcodec"

    def __init__(self, path: str | os.PathLike, threads: int = 1, corrupt_frames: str = "skip", device: str = "cpu"):
        from torchcodec.decoders import VideoDecoder

        self.corrupt_frames = _check_policy(corrupt_frames)  # accepted for one interface; no damage flags here
        self.path = path = os.fspath(path)
        _check_file(path)
        kw = {"num_ffmpeg_threads": max(1, int(threads))} if device == "cpu" else {}
        try:
            self._dec = VideoDecoder(path, seek_mode="exact", dimension_order="NHWC", device=device, **kw)
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
        return data.cpu().numpy()


class DecordReader(VideoReader):
    """Reader on ``decord.VideoReader`` (``get_batch``: decord seeks to the keyframe before each frame
    and decodes forward). Offered for comparison (``benchmarks/decoder_compare.py``); see the note at
    :func:`open_video` for why ``auto`` does not pick it."""

    backend = "decord"

    def __init__(self, path: str | os.PathLike, threads: int = 1, corrupt_frames: str = "skip"):
        import decord

        self.corrupt_frames = _check_policy(corrupt_frames)  # accepted for one interface; no damage flags here
        self.path = path = os.fspath(path)
        _check_file(path)
        try:
            self._vr = decord.VideoReader(path, num_threads=max(1, int(threads)))
        except Exception as e:  # decord raises its own DECORDError
            raise VideoDecodeError(path, f"decord cannot open it ({_short(e)})") from None
        n = len(self._vr)
        if n <= 0:
            raise VideoDecodeError(path, "video stream has no frames")
        fps = float(self._vr.get_avg_fps() or 0) or None
        h, w = self._vr[0].shape[:2]
        self._vr.seek(0)
        self.info = VideoInfo(path, n, fps, int(w), int(h), n / fps if fps else None, None, "decord")

    def read(self, indices: Sequence[int]) -> np.ndarray:
        idx = self._check_indices(indices)
        try:
            return self._vr.get_batch(idx.tolist()).asnumpy()
        except Exception as e:
            raise VideoDecodeError(self.path, f"decoding failed ({_short(e)})") from None


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
        mod = {"pyav": "av", "opencv": "cv2", "torchcodec": "torchcodec.decoders", "decord": "decord"}[backend]
        _AVAILABLE[backend] = _importable(mod)
    return _AVAILABLE[backend]


def available_decoders() -> list[str]:
    """The backends that import here (``rawframes`` always works)."""
    return [b for b in ("pyav", "opencv", "torchcodec", "decord") if _has(b)]


_READERS = {"pyav": PyAVReader, "opencv": OpenCVReader, "torchcodec": TorchCodecReader, "decord": DecordReader}


def open_video(path: str | os.PathLike, decoder: str = "auto", threads: int = 1,
               corrupt_frames: str = "skip") -> VideoReader:
    """Open ``path`` (a video file, or a folder of frames) for frame-accurate reads.

    ``decoder="auto"`` uses PyAV and, when PyAV cannot decode a file and OpenCV is installed, retries
    with OpenCV; if both fail the PyAV error is raised. A file PyAV recognises as not a video (text, a
    still image) is not retried. Raises :class:`VideoDecodeError`.

    ``corrupt_frames`` is what reads do with frames FFmpeg reports as damaged (PyAV backend):

    ``"skip"`` (default)
        Return the nearest clean frame of the same video in its place (counted in
        ``reader.last_corrupt`` / ``reader.num_corrupt``). The default because neither alternative is
        better for training: ``"keep"`` trains on smeared blocks and half-drawn frames without a word
        (what happened before damage was read at all), and ``"error"`` throws away the whole sample --
        a video with one damaged GOP would be lost every time a clip touches it, and the run stopped by
        ``max_broken_fraction`` for a dataset that is 99% fine. A stand-in neighbour changes a clip the
        way a dropped frame does, which the models tolerate.
    ``"keep"``
        Return the damaged frames as decoded, counted the same way (a frame that decoded to no picture
        at all is still replaced).
    ``"error"``
        Raise :class:`VideoDecodeError` naming the file and the frame (for auditing a data set).
    """
    path = os.fspath(path)
    if decoder not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
    _check_policy(corrupt_frames)
    if os.path.isdir(path):
        return RawFramesReader(path)
    if decoder == "torchcodec-cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("decoder 'torchcodec-cuda' needs a CUDA GPU, and none is visible here; "
                               "use decoder='auto' (PyAV on the CPU)")
        if not _has("torchcodec"):
            raise ImportError("decoder 'torchcodec-cuda' needs torchcodec's CUDA build: pip install torchcodec")
        return TorchCodecReader(path, threads=threads, corrupt_frames=corrupt_frames, device="cuda")
    if decoder != "auto":
        if not _has(decoder):
            hint = {"opencv": "pip install opencv-python-headless",
                    "torchcodec": "pip install torchcodec (CPU-only torch: torchcodec==0.13.0 + system FFmpeg)",
                    "pyav": "pip install av", "decord": "pip install decord"}[decoder]
            raise ImportError(f"decoder {decoder!r} is not available here ({hint})")
        return _READERS[decoder](path, threads=threads, corrupt_frames=corrupt_frames)
    if not _has("pyav"):
        if _has("opencv"):
            return OpenCVReader(path, threads=threads, corrupt_frames=corrupt_frames)
        raise ImportError("no video decoder available: pip install av")
    try:
        return PyAVReader(path, threads=threads, corrupt_frames=corrupt_frames)
    except NotAVideoError:
        raise
    except VideoDecodeError as first:
        if not _has("opencv") or not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise
        try:
            return _FallbackReader(OpenCVReader(path, threads=threads, corrupt_frames=corrupt_frames), first)
        except VideoDecodeError:
            raise first from None


class _FallbackReader(VideoReader):
    """OpenCV standing in for PyAV on a file PyAV rejected; remembers why."""

    def __init__(self, inner: VideoReader, pyav_error: VideoDecodeError):
        self._inner = inner
        self.info = inner.info
        self.corrupt_frames = inner.corrupt_frames
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
    path: str | os.PathLike, indices: Sequence[int] | Iterable[int], decoder: str = "auto", threads: int = 1,
    corrupt_frames: str = "skip",
) -> torch.Tensor:
    """Exactly the frames ``indices`` of ``path`` as a ``torch.uint8`` tensor ``(T, H, W, 3)`` (RGB), in
    the order given (repeats allowed). Uses keyframe seeks: a short clip from a long video does not
    decode the whole video. Damaged frames are handled as ``corrupt_frames`` says (see
    :func:`open_video`). Raises :class:`VideoDecodeError` (file problems) or ``IndexError``."""
    with open_video(path, decoder=decoder, threads=threads, corrupt_frames=corrupt_frames) as r:
        return torch.from_numpy(r.read(list(indices)))
