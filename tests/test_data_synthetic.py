"""The generated data set: real mp4 files + lists, deterministic per seed, balanced, reusable; the temporal
task carries no label information in a single frame, the scene task does."""

import os

import numpy as np
import pytest

from videoformers.data import probe, read_frames
from videoformers.data.synthetic import (
    SCENE_CLASSES,
    TEMPORAL_CLASSES,
    generate_dataset,
    render_clip,
)


def _frames(info, split, i):
    rel = open(info[f"{split}_list"]).read().split("\n")[i].split()[0]
    path = os.path.join(info["root"], rel)
    return read_frames(path, range(probe(path).num_frames)).numpy()


def test_generate_writes_videos_and_lists(tmp_path):
    info = generate_dataset(str(tmp_path / "a"), num_train=12, num_val=6, size=32, num_frames=10, workers=2)
    assert info["num_classes"] == 6
    assert open(info["labels_file"]).read().splitlines() == list(TEMPORAL_CLASSES)
    rows = [line.split() for line in open(info["train_list"]).read().splitlines()]
    assert len(rows) == 12 and all(r[0].startswith("train/") and r[0].endswith(".mp4") for r in rows)
    labels = [int(r[1]) for r in rows]
    assert sorted(labels) == sorted(list(range(6)) * 2)  # balanced
    meta = probe(os.path.join(info["root"], rows[0][0]))
    assert (meta.num_frames, meta.width, meta.height, meta.codec) == (10, 32, 32, "h264")


def test_generation_is_deterministic_and_reused(tmp_path):
    kw = dict(num_train=6, num_val=2, size=32, num_frames=8, seed=3, workers=1)
    a = generate_dataset(str(tmp_path / "a"), **kw)
    b = generate_dataset(str(tmp_path / "b"), **kw)
    c = generate_dataset(str(tmp_path / "c"), **{**kw, "seed": 4})
    assert open(a["train_list"]).read() == open(b["train_list"]).read()
    for i in range(6):
        assert np.array_equal(_frames(a, "train", i), _frames(b, "train", i))
    assert not np.array_equal(_frames(a, "train", 0), _frames(c, "train", 0))
    # Same arguments again: nothing is rewritten.
    video = os.path.join(a["root"], "train", "000000.mp4")
    mtime = os.stat(video).st_mtime_ns
    assert generate_dataset(str(tmp_path / "a"), **kw) == a
    assert os.stat(video).st_mtime_ns == mtime


def test_temporal_task_single_frame_carries_no_label():
    # Position, orientation and colours come from the seed, the label only decides how they change: with
    # one seed, the first frame is the same for every class, and later frames are not static.
    for seed in range(5):
        clips = [render_clip("temporal", label, seed, 48, 12) for label in range(len(TEMPORAL_CLASSES))]
        for c in clips[1:]:
            assert np.array_equal(c[0], clips[0][0])
        for c in clips:
            assert np.abs(c[-1].astype(int) - c[0].astype(int)).sum() > 0
        # Translation wraps around the frame (no edge cue); the shape's area stays (almost) the same.
        fg = [np.abs(c.astype(int) - c[:1].astype(int)).sum(-1) for c in clips[:4]]
        assert all(f.max() > 0 for f in fg)


def test_scene_task_is_solved_by_one_frame():
    # Horizontal stripes vary along y, vertical ones along x: one frame's gradient energy tells them apart.
    for seed in range(6):
        h = render_clip("scene", 0, seed, 48, 4)[0].astype(float).mean(-1)
        v = render_clip("scene", 1, seed, 48, 4)[0].astype(float).mean(-1)
        gy = lambda im: np.abs(np.diff(im, axis=0)).mean()  # noqa: E731
        gx = lambda im: np.abs(np.diff(im, axis=1)).mean()  # noqa: E731
        assert gy(h) > gx(h) and gx(v) > gy(v)


def test_scene_dataset_and_class_subset(tmp_path):
    info = generate_dataset(str(tmp_path / "s"), num_train=4, num_val=4, task="scene", size=32, num_frames=6,
                            workers=1)
    assert info["num_classes"] == 4
    assert open(info["labels_file"]).read().splitlines() == list(SCENE_CLASSES)
    sub = generate_dataset(str(tmp_path / "sub"), num_train=4, num_val=2, classes=[0, 1], size=32, num_frames=6,
                           workers=1)
    assert sub["num_classes"] == 2
    assert open(sub["labels_file"]).read().splitlines() == ["moving left", "moving right"]
    with pytest.raises(ValueError, match="task"):
        generate_dataset(str(tmp_path / "x"), task="audio")
