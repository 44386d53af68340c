"""One bad sample costs that sample: any exception while reading one video is a skipped sample (counted,
named), a decoder that hangs or crashes natively is bounded by ``data.decode_timeout``, skip counts are
distinct files across DataLoader workers, and a mostly broken data set stops with one line."""

import os
import signal
import struct
import time

import pytest
import torch

import videoformers.data.datasets as dsm
from videoformers.data import BrokenDataError, DataConfig, build_dataset
from videoformers.data.synthetic import index_frames, write_video

MAIN_PID = os.getpid()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("iso")
    for i in range(6):
        write_video(str(root / f"v{i}.mp4"), index_frames(12, 32, 48, seed=i), fps=10)
    return root


def _cfg(videos, tmp_path, names, **kw):
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{n} {k % 2}\n" for k, n in enumerate(names)))
    base = dict(train_list=str(lst), val_list=str(lst), root=str(videos), num_classes=2, num_frames=4,
                frame_interval=1, img_size=32, train_scale=(32, 36), test_scale=32, max_broken_fraction=0.5)
    base.update(kw)
    return DataConfig(**base)


def _patch_reader(monkeypatch, bad: dict):
    """open_video whose reader does ``bad[basename]()`` instead of reading (in whichever process decodes)."""
    real = dsm.open_video

    class Reader:
        def __init__(self, inner, action):
            self.inner, self.action = inner, action
            self.num_frames = inner.num_frames

        def read(self, idx):
            self.action()
            return self.inner.read(idx)

        def close(self):
            self.inner.close()

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.close()

    def fake(path, decoder="auto", threads=1, **kw):
        r = real(path, decoder=decoder, threads=threads, **kw)
        action = bad.get(os.path.basename(path))
        return Reader(r, action) if action else r

    monkeypatch.setattr(dsm, "open_video", fake)


def _raise(exc):
    def f():
        raise exc
    return f


@pytest.mark.parametrize("decode_timeout", [0, 20])
@pytest.mark.parametrize("exc", [AttributeError("'NoneType' object has no attribute 'width'"),
                                 RuntimeError("codec went away"), struct.error("unpack requires a buffer")],
                         ids=["AttributeError", "RuntimeError", "struct.error"])
def test_any_exception_is_a_skipped_sample(videos, tmp_path, monkeypatch, exc, decode_timeout):
    _patch_reader(monkeypatch, {"v1.mp4": _raise(exc)})
    ds = build_dataset(_cfg(videos, tmp_path, [f"v{i}.mp4" for i in range(4)], decode_timeout=decode_timeout), "val")
    item = ds[1]
    assert item["index"] == 2 and item["num_skipped"] == 1 and item["video"].shape == (1, 3, 4, 32, 32)
    stats = ds.skip_stats()
    assert stats["count"] == 1 and stats["files"] == [str(videos / "v1.mp4")]
    reason = stats["reasons"][str(videos / "v1.mp4")]
    assert type(exc).__name__ in reason and str(exc) in reason and "\n" not in reason
    assert ds[0]["index"] == 0  # the others are unaffected


@pytest.mark.parametrize("decode_timeout", [0, 20])
@pytest.mark.parametrize("exc", [MemoryError("out of memory"), ImportError("decoder 'opencv' is not available")])
def test_memory_and_import_errors_propagate(videos, tmp_path, monkeypatch, decode_timeout, exc):
    _patch_reader(monkeypatch, {"v0.mp4": _raise(exc)})
    ds = build_dataset(_cfg(videos, tmp_path, ["v0.mp4", "v1.mp4"], decode_timeout=decode_timeout), "val")
    with pytest.raises(type(exc)):
        ds[0]
    assert ds.skip_stats()["count"] == 0


def test_keyboard_interrupt_propagates(videos, tmp_path, monkeypatch):
    _patch_reader(monkeypatch, {"v0.mp4": _raise(KeyboardInterrupt())})
    ds = build_dataset(_cfg(videos, tmp_path, ["v0.mp4", "v1.mp4"], decode_timeout=0), "val")
    with pytest.raises(KeyboardInterrupt):
        ds[0]
    assert ds.skip_stats()["count"] == 0


def _hang():
    if os.getpid() == MAIN_PID:
        raise RuntimeError("the hanging decode ran in the test process")
    time.sleep(3600)


def _segfault():
    if os.getpid() == MAIN_PID:
        raise RuntimeError("the crashing decode ran in the test process")
    os.kill(os.getpid(), signal.SIGSEGV)


@pytest.mark.timeout(60)
def test_a_hanging_decode_is_cut_and_skipped(videos, tmp_path, monkeypatch):
    _patch_reader(monkeypatch, {"v1.mp4": _hang})
    ds = build_dataset(_cfg(videos, tmp_path, [f"v{i}.mp4" for i in range(4)], decode_timeout=1), "val")
    ds[0]  # the decoder process is up
    t0 = time.monotonic()
    item = ds[1]
    assert time.monotonic() - t0 < 5
    assert item["index"] == 2 and item["num_skipped"] == 1
    assert "timed out after 1 s" in ds.skip_stats()["reasons"][str(videos / "v1.mp4")]
    assert ds[3]["index"] == 3  # a new decoder process took over


@pytest.mark.timeout(60)
def test_a_native_crash_in_the_decoder_is_a_skipped_sample(videos, tmp_path, monkeypatch):
    _patch_reader(monkeypatch, {"v2.mp4": _segfault, "v3.mp4": _segfault})
    ds = build_dataset(_cfg(videos, tmp_path, [f"v{i}.mp4" for i in range(5)], decode_timeout=10), "val")
    t0 = time.monotonic()
    item = ds[2]
    assert time.monotonic() - t0 < 10
    assert item["index"] == 4 and item["num_skipped"] == 2
    stats = ds.skip_stats()
    assert stats["count"] == 2
    assert "SIGSEGV" in stats["reasons"][str(videos / "v2.mp4")]
    assert "the decoder crashed" in stats["reasons"][str(videos / "v3.mp4")]
    assert torch.isfinite(item["video"]).all()


@pytest.mark.timeout(90)
def test_hang_and_crash_inside_dataloader_workers(videos, tmp_path, monkeypatch):
    """The decoder process is forked by the (daemonic) DataLoader worker; the loader delivers every batch."""
    _patch_reader(monkeypatch, {"v1.mp4": _hang, "v4.mp4": _segfault})
    ds = build_dataset(_cfg(videos, tmp_path, [f"v{i}.mp4" for i in range(6)], decode_timeout=1), "val")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    t0 = time.monotonic()
    batches = list(loader)
    assert time.monotonic() - t0 < 30
    assert sum(b["video"].shape[0] for b in batches) == 6
    assert sum(int(b["num_skipped"].sum()) for b in batches) == 2
    stats = ds.skip_stats()
    assert sorted(os.path.basename(f) for f in stats["files"]) == ["v1.mp4", "v4.mp4"]


def test_skip_stats_count_distinct_files_across_workers_and_reset(videos, tmp_path):
    names = [f"v{i}.mp4" for i in range(6)] + ["missing_a.mp4", "missing_b.mp4"]
    ds = build_dataset(_cfg(videos, tmp_path, names, decode_timeout=0), "val")  # val: the next one replaces
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    events = 0
    for _ in range(2):  # two epochs: events add up, files do not
        events += sum(int(b["num_skipped"].sum()) for b in loader)
    stats = ds.skip_stats()
    assert events == 6  # index 6 skips a and b, index 7 skips b; twice
    assert stats["count"] == 2 and sorted(map(os.path.basename, stats["files"])) == ["missing_a.mp4", "missing_b.mp4"]
    assert all(r == "file not found" for r in stats["reasons"].values())
    assert ds.skip_stats(reset=True)["count"] == 2
    assert ds.skip_stats() == {"count": 0, "files": [], "reasons": {}}
    ds[7]  # counted again after the reset, also in a process that met the file before
    ds[7]
    assert ds.skip_stats() == {"count": 1, "files": [str(videos / "missing_b.mp4")],
                               "reasons": {str(videos / "missing_b.mp4"): "file not found"}}
    ds.skip_stats(reset=True)
    ds[7]
    assert ds.skip_stats()["count"] == 1


def test_skip_log_file_is_removed_with_the_dataset(videos, tmp_path):
    import gc

    ds = build_dataset(_cfg(videos, tmp_path, ["v0.mp4"], decode_timeout=0), "val")
    path = ds._skips.path
    assert os.path.exists(path)
    del ds
    gc.collect()
    assert not os.path.exists(path)


def test_mostly_broken_data_stops_with_one_line_from_a_worker(videos, tmp_path):
    names = ["v0.mp4"] + [f"gone{i}.mp4" for i in range(30)]
    ds = build_dataset(_cfg(videos, tmp_path, names, decode_timeout=0, max_broken_fraction=0.1), "train")
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1, shuffle=False)
    with pytest.raises(BrokenDataError) as info:
        for _ in loader:
            pass
    msg = str(info.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert "max_broken_fraction=0.1" in msg and "gone" in msg and "in DataLoader worker process 0" in msg


def test_a_transform_bug_is_not_forty_lines_either(videos, tmp_path):
    def bad_transform(x):
        raise TypeError("unsupported operand")

    cfg = _cfg(videos, tmp_path, [f"v{i}.mp4" for i in range(3)], decode_timeout=0)
    ds = build_dataset(cfg, "train")
    ds.transform = bad_transform
    with pytest.raises(BrokenDataError, match=r"TypeError: unsupported operand at test_data_isolation.py:\d+"):
        for i in range(3):
            ds[i]


def test_decode_timeout_is_checked():
    with pytest.raises(ValueError, match="DataConfig.decode_timeout"):
        DataConfig(decode_timeout=-1)
    assert DataConfig().decode_timeout > 0  # bounded by default
