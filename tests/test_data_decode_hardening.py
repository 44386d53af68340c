"""Decoder hardening (issue #16): unknown codecs, text files, damaged frames, the index cache's byte
bound, OpenCV's header-only frame counts, and a small fuzzing campaign."""

import dataclasses
import json
import os
import random
import subprocess
import sys
import types

import numpy as np
import pytest

from fixtures.data.videos import data_videos  # noqa: F401  (fixture)
from videoformers.data import DataConfig, VideoDecodeError, available_decoders, open_video, probe, read_frames
from videoformers.data import decoding as dec
from videoformers.data.synthetic import decode_index, index_frames, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _packets(path):
    import av

    with av.open(path) as c:
        return [(p.pts, p.pos, p.size, p.is_keyframe) for p in c.demux(video=0) if p.size]


def _reference(path, n):
    """Clean decode of ``path``: frame index drawn in the picture -> pixels."""
    seq = dec.read_frames_sequential(path, range(n)).numpy()
    return {decode_index(f): f.astype(np.int16) for f in seq}


def _visibly_damaged(frames, ref, tol=2.0):
    out = []
    for j, f in enumerate(frames):
        k = decode_index(f)
        if k not in ref or float(np.abs(f.astype(np.int16) - ref[k]).mean()) > tol:
            out.append(j)
    return out


# --------------------------------------------------------------------------------------------------
# 1. Unknown codec
# --------------------------------------------------------------------------------------------------


def test_unknown_codec_is_a_video_decode_error_naming_the_file(tmp_path):
    # An AVI whose fourcc no FFmpeg knows: PyAV opens it and leaves stream.codec_context None.
    src = str(tmp_path / "mjpeg.avi")
    write_video(src, index_frames(6), codec="mjpeg")
    data = open(src, "rb").read()
    assert data.count(b"MJPG") >= 1
    bad = str(tmp_path / "unknown_codec.avi")
    with open(bad, "wb") as f:
        f.write(data.replace(b"MJPG", b"ZQZQ"))
    for decoder in ("pyav", "auto"):  # auto: OpenCV (if installed) fails too, and PyAV's reason is kept
        with pytest.raises(VideoDecodeError) as e:
            probe(bad, decoder=decoder)
        assert bad in str(e.value) and "codec is unknown" in str(e.value)


def test_stream_without_codec_context_is_a_video_decode_error(tmp_path, monkeypatch):
    # The same through a stand-in container: nothing may touch codec_context when it is None.
    import av

    path = str(tmp_path / "x.mkv")
    open(path, "wb").write(b"\0" * 64)

    class Streams:
        video = [types.SimpleNamespace(codec_context=None)]
        audio = []

    fake = types.SimpleNamespace(format=types.SimpleNamespace(name="matroska,webm"), streams=Streams(),
                                 close=lambda: None)
    monkeypatch.setattr(av, "open", lambda *a, **k: fake)
    with pytest.raises(VideoDecodeError, match="codec is unknown") as e:
        dec.PyAVReader(path)
    assert e.value.path == path


# --------------------------------------------------------------------------------------------------
# 2. Text files and still images are not videos
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["notes.txt", "labels.csv", "meta.json", "README.md", "cfg.yaml"])
@pytest.mark.parametrize("decoder", ["pyav", "auto"])
def test_text_files_are_not_videos(tmp_path, name, decoder):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write("Meeting notes: buy milk, label 3, bigbuckbunny\n" * 40)
    with pytest.raises(dec.NotAVideoError) as e:
        read_frames(path, [0], decoder=decoder)
    assert path in str(e.value) and "not a video" in str(e.value)
    assert isinstance(e.value, VideoDecodeError)  # the dataset's skip-and-count path catches it


def test_text_demuxer_is_rejected_whatever_the_extension(tmp_path):
    # *.art is another of the extensions FFmpeg's tty demuxer claims; the check is on the demuxer.
    path = str(tmp_path / "banner.art")
    with open(path, "w") as f:
        f.write("hello\n" * 40)
    with pytest.raises(dec.NotAVideoError, match="'tty' demuxer"):
        probe(path, decoder="pyav")


def test_still_image_is_not_a_video_but_gif_still_is(tmp_path, data_videos):
    pil = pytest.importorskip("PIL.Image")
    png = str(tmp_path / "photo.png")
    pil.fromarray(index_frames(1)[0]).save(png)
    with pytest.raises(dec.NotAVideoError, match="still image"):
        probe(png)
    assert probe(data_videos["anim"]).num_frames == 20  # GIF keeps working
    assert probe(data_videos["h264_gop10"]).num_frames == 100


# --------------------------------------------------------------------------------------------------
# 3. Damaged frames
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged_mp4(tmp_path_factory):
    """An H.264 MP4 (keyframe every 12 frames) whose frame 5 has random bytes in its slice data."""
    root = tmp_path_factory.mktemp("damaged")
    src = str(root / "clean.mp4")
    write_video(src, index_frames(36, 64, 96, seed=1), codec="libx264", gop=12, bframes=0)
    pk = _packets(src)
    pts5 = sorted(p[0] for p in pk)[5]
    _, pos, size, _ = next(p for p in pk if p[0] == pts5)
    data = bytearray(open(src, "rb").read())
    rng = random.Random(0)
    for j in range(pos + 8, pos + size - 1):
        data[j] = rng.randrange(256)
    bad = str(root / "damaged.mp4")
    open(bad, "wb").write(data)
    return src, bad


def test_damaged_frames_are_flagged_and_propagate_to_the_next_keyframe(damaged_mp4):
    src, bad = damaged_mp4
    ref = _reference(src, 36)
    with open_video(bad, corrupt_frames="keep") as r:
        out = r.read(range(36))
        # Frame 5 is damaged, 6..11 are predicted from it, 12 is a clean keyframe.
        assert r.last_corrupt == tuple(range(5, 12))
        assert r.num_corrupt == 7 and r.last_replaced == {}
        assert set(_visibly_damaged(out, ref)) <= set(r.last_corrupt)  # nothing damaged goes unflagged
        r.read([3, 8])
        assert r.last_corrupt == (8,) and r.num_corrupt == 8  # counted per read, added up


def test_skip_replaces_damaged_frames_by_the_nearest_clean_one(damaged_mp4):
    src, bad = damaged_mp4
    ref = _reference(src, 36)
    with open_video(bad) as r:  # skip is the default
        assert r.corrupt_frames == "skip"
        req = [20, 7, 5, 0, 11, 11]
        out = r.read(req)
        assert r.last_corrupt == (5, 7, 11)
        assert r.last_replaced == {5: 4, 7: 4, 11: 12}
        assert [decode_index(f) for f in out] == [20, 4, 4, 0, 12, 12]
        assert _visibly_damaged(out, ref) == []


def test_error_policy_names_the_file_and_the_frame(damaged_mp4):
    _, bad = damaged_mp4
    with open_video(bad, corrupt_frames="error") as r:
        assert r.read([0, 4, 30]).shape[0] == 3  # clean frames are fine
        with pytest.raises(VideoDecodeError) as e:
            r.read([2, 9])
    assert bad in str(e.value) and "frame 9 of 36 is corrupt" in str(e.value)


def test_truncated_gif_last_frame_is_corrupt(tmp_path):
    src = str(tmp_path / "anim.gif")
    write_video(src, index_frames(10, 64, 96, seed=1), codec="gif", fps=10)
    ref = _reference(src, 10)
    pts, pos, size, _ = _packets(src)[-1]
    cut = str(tmp_path / "cut.gif")
    open(cut, "wb").write(open(src, "rb").read()[: pos + size // 2])  # half of the last frame's data
    with open_video(cut, corrupt_frames="keep") as r:
        out = r.read(range(r.num_frames))
        assert r.num_frames == 10 and r.last_corrupt == (9,)
        assert _visibly_damaged(out, ref) == [9]  # the half-drawn frame the old code returned silently
    with open_video(cut) as r:
        out = r.read([9, 8])
        assert r.last_replaced == {9: 8} and [decode_index(f) for f in out] == [8, 8]
    with pytest.raises(VideoDecodeError, match="frame 9 of 10 is corrupt.*GIF frame data ends"):
        read_frames(cut, [9], corrupt_frames="error")


def test_gif_with_a_zeroed_stretch_is_flagged(tmp_path):
    # Zeros where the LZW data goes end the image early (a 0 sub-block length is a terminator); the
    # demuxer then lumps the rest of the file into that frame. It used to come back half-drawn, unflagged.
    src = str(tmp_path / "anim.gif")
    write_video(src, index_frames(10, 64, 96, seed=1), codec="gif", fps=10)
    ref = _reference(src, 10)
    _, pos, size, _ = _packets(src)[5]
    data = bytearray(open(src, "rb").read())
    mid = pos + size // 2
    data[mid:mid + 200] = bytes(200)
    bad = str(tmp_path / "zeroed.gif")
    open(bad, "wb").write(data)
    with open_video(bad, corrupt_frames="keep") as r:
        out = r.read(range(r.num_frames))
        assert 5 in r.last_corrupt
        assert set(_visibly_damaged(out, ref)) <= set(r.last_corrupt)
    with pytest.raises(VideoDecodeError, match="frame 5 of .* no GIF block"):
        read_frames(bad, [5], corrupt_frames="error")


def test_gif_frame_parser_accepts_every_frame_of_complete_gifs(data_videos):
    import av

    for path in (data_videos["anim"],):
        with av.open(path) as c:
            assert not any(dec._gif_frame_damage(bytes(p)) for p in c.demux(video=0) if p.size)


@pytest.mark.parametrize("frac", [0.6, 0.7, 0.8, 0.9])
def test_truncated_mpegts_never_returns_damage_unflagged(tmp_path, frac):
    src = str(tmp_path / "clip.ts")
    write_video(src, index_frames(30, 64, 96, seed=1), codec="libx264", gop=10, bframes=2,
                container_format="mpegts")
    ref = _reference(src, 30)
    data = open(src, "rb").read()
    cut = str(tmp_path / "cut.ts")
    n = int(len(data) * frac)
    n += 1 if n % 188 == 0 else 0  # cut inside a transport packet
    open(cut, "wb").write(data[:n])
    with open_video(cut, corrupt_frames="keep") as r:
        out = r.read(range(r.num_frames))
        assert r.num_frames - 1 in r.last_corrupt  # the frame being written when the file was cut
        assert set(_visibly_damaged(out, ref)) <= set(r.last_corrupt)
    with open_video(cut) as r:
        assert _visibly_damaged(r.read(range(r.num_frames)), ref) == []


def test_raw_stream_without_timestamps_opens_and_flags_damage(tmp_path):
    # A raw .h264 stream has no pts and cannot seek: frames are counted and each rewind reopens the file.
    # Opening one used to fail with "AssertionError: Container is not open" (the reader kept using the
    # container it had closed while rewinding).
    src = str(tmp_path / "raw.h264")
    write_video(src, index_frames(36, 64, 96, seed=1), codec="libx264", gop=12, bframes=0, container_format="h264")
    ref = _reference(src, 36)
    with open_video(src) as r:
        assert r.num_frames == 36 and not r._index.exact
        assert [decode_index(f) for f in r.read([30, 2, 7])] == [30, 2, 7]
    _, pos, size, _ = _packets(src)[5]
    data = bytearray(open(src, "rb").read())
    rng = random.Random(0)
    for j in range(pos + 8, pos + size - 1):
        data[j] = rng.randrange(256)
    bad = str(tmp_path / "damaged.h264")
    open(bad, "wb").write(data)
    with open_video(bad, corrupt_frames="keep") as r:
        out = r.read(range(r.num_frames))
        assert r.last_corrupt == tuple(range(5, 12))
        assert set(_visibly_damaged(out, ref)) <= set(r.last_corrupt)
    with open_video(bad) as r:
        out = r.read([7, 20, 5])
        assert r.last_replaced == {5: 4, 7: 4} and [decode_index(f) for f in out] == [4, 20, 4]


def test_clean_videos_have_no_corrupt_frames(data_videos):
    for name in ("h264_longgop", "h264_gop10", "vp9", "mjpeg", "mpeg4_bframes", "hevc", "vfr_offset", "anim",
                 "grey_odd", "odd_size"):
        with open_video(data_videos[name], corrupt_frames="error") as r:
            n = r.num_frames
            r.read(list(range(n))[::-1])
            assert r.last_corrupt == () and r.num_corrupt == 0, name


def test_damage_propagates_in_decode_order_until_a_clean_keyframe():
    d = dec._Damage()
    # decode order: I0 P1 P2(damaged) P3 I4 P5 ; then a damaged keyframe I6 and P7
    for pts, key, why in [(0, True, None), (1, False, None), (2, False, "cut"), (3, False, None), (4, True, None),
                          (5, False, None), (6, True, "bad key"), (7, False, None)]:
        d.packet(pts, key, why)
    assert [d.reason(p) is not None for p in range(8)] == [False, False, True, True, False, False, True, True]
    assert "cut" in d.reason(3) and d.reason(6) == "bad key"
    # Open GOP (MPEG-4 Part 2 with B-frames): decode order I0 P3(damaged) I6 B4 B5 P9 B7 B8. B4 and B5 are
    # decoded after the clean I6 but shown before it: they are predicted from P3 and stay damaged.
    d = dec._Damage()
    for pts, key, why in [(0, True, None), (3, False, "flip"), (6, True, None), (4, False, None), (5, False, None),
                          (9, False, None), (7, False, None), (8, False, None)]:
        d.packet(pts, key, why)
    assert {p for p in range(10) if p in d.pos and d.reason(p)} == {3, 4, 5}


def test_corrupt_frames_option_is_validated():
    with pytest.raises(ValueError, match=r"corrupt_frames='drop'.*'skip', 'keep', 'error'"):
        DataConfig(corrupt_frames="drop")
    assert DataConfig().corrupt_frames == "skip"
    with pytest.raises(ValueError, match="corrupt_frames"):
        open_video(__file__, corrupt_frames="ignore")


# --------------------------------------------------------------------------------------------------
# 4. Index cache bounded by bytes
# --------------------------------------------------------------------------------------------------


def _fake_index(n_frames: int, gop: int = 30) -> "dec._FrameIndex":
    pts = np.arange(n_frames, dtype=np.int64) * 512
    keys = pts[::gop].copy()
    return dec._FrameIndex(n_frames, pts, keys, keys.copy(), True)


def test_index_entry_holds_no_pts_set_and_is_small(data_videos):
    assert "pts_set" not in {f.name for f in dataclasses.fields(dec._FrameIndex)}
    dec.clear_index_cache()
    probe(data_videos["h264_gop10"])
    (entry,) = dec._INDEX_CACHE._d.values()
    assert entry.nbytes < 100 * 8 + 10 * 16 + 1024
    # A 20-minute 30 fps video: 36 000 frames, keyframe every second -> well under 0.5 MB (was ~3.2 MB).
    assert _fake_index(36_000).nbytes < 0.5 * 2**20


def test_index_cache_stays_under_its_byte_bound():
    bound = 4 * 2**20
    cache = dec._LRU(bound)
    for i in range(500):  # 500 long videos: ~290 KB each, 140 MB unbounded
        cache.put(("video", i), _fake_index(36_000))
        assert cache.nbytes <= bound
        if i == 3:
            assert cache.get(("video", 0)) is not None  # touch the first: it must survive the next puts
        if i == 10:
            assert cache.get(("video", 0)) is not None
    assert 0 < len(cache) <= bound // _fake_index(36_000).nbytes
    assert cache.nbytes == sum(v.nbytes for v in cache._d.values())
    assert cache.get(("video", 499)) is not None and cache.get(("video", 1)) is None
    cache.put("huge", _fake_index(2_000_000))  # bigger than the whole cache: not cached, nothing flushed
    assert cache.get("huge") is None and len(cache) > 0
    cache.resize(2**20)
    assert cache.nbytes <= 2**20


def test_module_cache_bound_applies_to_real_reads(tmp_path):
    old = dec.index_cache_info()["max_bytes"]
    try:
        dec.clear_index_cache()
        paths = []
        for i in range(6):
            p = str(tmp_path / f"v{i}.mp4")
            write_video(p, index_frames(20 + i, 64, 96), codec="libx264", gop=5)
            paths.append(p)
        one = None
        for p in paths:
            probe(p)
            one = one or dec.index_cache_info()["bytes"]
        dec.set_index_cache_bytes(3 * one)
        for p in paths:
            probe(p)
            info = dec.index_cache_info()
            assert info["bytes"] <= 3 * one and info["max_bytes"] == 3 * one
        assert 1 <= info["entries"] <= 3
    finally:
        dec.set_index_cache_bytes(old)
        dec.clear_index_cache()


def test_index_cache_bound_from_environment(monkeypatch):
    monkeypatch.setenv("VIDEOFORMERS_INDEX_CACHE_MB", "64")
    assert dec._env_cache_bytes() == 64 * 2**20
    monkeypatch.setenv("VIDEOFORMERS_INDEX_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="VIDEOFORMERS_INDEX_CACHE_MB='lots'"):
        dec._env_cache_bytes()
    monkeypatch.delenv("VIDEOFORMERS_INDEX_CACHE_MB")
    assert dec._env_cache_bytes() == 256 * 2**20


# --------------------------------------------------------------------------------------------------
# 5. OpenCV's frame count is verified by reading
# --------------------------------------------------------------------------------------------------


def _fake_cv2(claimed: int, readable: int):
    """A stand-in ``cv2`` whose capture announces ``claimed`` frames but decodes only ``readable``."""
    m = types.ModuleType("cv2")
    m.CAP_FFMPEG, m.CAP_PROP_FRAME_COUNT, m.CAP_PROP_FRAME_WIDTH, m.CAP_PROP_FRAME_HEIGHT = 1900, 7, 3, 4
    m.CAP_PROP_FPS, m.CAP_PROP_POS_FRAMES, m.COLOR_BGR2RGB, m.COLOR_GRAY2RGB = 5, 1, 4, 8
    m.error = type("error", (Exception,), {})
    m.cvtColor = lambda img, code: img[..., ::-1].copy()

    class Cap:
        def __init__(self, path, api, params=()):
            self.pos = 0

        def isOpened(self):
            return True

        def get(self, prop):
            return {7: claimed, 3: 8, 4: 6, 5: 25.0}.get(prop, 0)

        def set(self, prop, v):
            self.pos = int(v)

        def grab(self):
            ok = self.pos < readable
            self.pos += ok
            return ok

        def read(self):
            if self.pos >= readable:
                return False, None
            self.pos += 1
            return True, np.full((6, 8, 3), self.pos - 1, np.uint8)

        def release(self):
            pass

    m.VideoCapture = Cap
    return m


@pytest.mark.parametrize("claimed,readable,expect", [(48, 48, 48), (48, 5, 5), (48, 0, None), (1, 1, 1)])
def test_opencv_frame_count_is_checked_by_reading(tmp_path, monkeypatch, claimed, readable, expect):
    path = str(tmp_path / "x.webm")
    open(path, "wb").write(b"\x1a\x45\xdf\xa3" + b"\0" * 508)
    monkeypatch.setitem(sys.modules, "cv2", _fake_cv2(claimed, readable))
    if expect is None:
        with pytest.raises(VideoDecodeError, match=f"announcing {claimed} frames but cannot decode") as e:
            dec.OpenCVReader(path)
        assert e.value.path == path
        return
    r = dec.OpenCVReader(path)
    assert r.num_frames == expect
    out = r.read([expect - 1, 0])
    assert out[0, 0, 0, 0] == expect - 1 and out[1, 0, 0, 0] == 0


def test_header_only_file_is_not_a_video_for_opencv_either(data_videos, tmp_path):
    if "opencv" not in available_decoders():
        pytest.skip("opencv is not installed")
    head = str(tmp_path / "header_only.webm")
    open(head, "wb").write(open(data_videos["vp9"], "rb").read()[:512])
    with pytest.raises(VideoDecodeError):
        dec.OpenCVReader(head)  # before: "100 frames", then every read failed
    with pytest.raises(VideoDecodeError) as e:
        probe(head)  # auto: PyAV fails, the fallback must not stand in with a made-up count
    assert e.value.path == head


# --------------------------------------------------------------------------------------------------
# 6. Fuzzing (small fixed campaign; benchmarks/fuzz_decode.py --n 600 is the full one)
# --------------------------------------------------------------------------------------------------


def test_fuzzed_files_never_crash_hang_or_raise_anything_else(tmp_path):
    script = os.path.join(ROOT, "benchmarks", "fuzz_decode.py")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, script, "--n", "30", "--seed", "0", "--timeout", "20", "--json",
                        "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300, env=env)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert (r["other"], r["crash"], r["hang"]) == (0, 0, 0), p.stdout
    assert r["ok"] + r["decode_error"] == 30 and p.returncode == 0
    assert r["flagged_files"] > 0  # damage is being detected at all
