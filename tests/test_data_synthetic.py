"""The generated data set: real mp4 files + lists, deterministic per seed, balanced, reusable; the temporal
task carries no label information in a single frame, the scene task does, the order task has none in a
single frame nor in the shuffled frames."""

import os

import numpy as np
import pytest

from videoformers.data import probe, read_frames
from videoformers.data.synthetic import (
    ORDER_CLASSES,
    ORDER_COLOURS,
    SCENE_CLASSES,
    TEMPORAL_CLASSES,
    generate_dataset,
    order_segment_lengths,
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


# --------------------------------------------------------------------------------------------------
# The order task: only the order of the frames carries the label
# --------------------------------------------------------------------------------------------------


def _objects_in(frame):
    """Which of red/green/blue (0/1/2) the frame shows: saturated bright pixels (the background stays below
    ~110, grey distractors are unsaturated), by dominant channel; h264 chroma bleed at the edges is ignored."""
    f = frame.astype(int)
    top = np.sort(f, axis=-1)
    coloured = (top[..., 2] >= 170) & (top[..., 2] - top[..., 1] >= 80)
    counts = np.bincount(f.argmax(-1)[coloured], minlength=3)
    return [c for c in range(3) if counts[c] >= max(3, 0.2 * counts.sum())]


def _segments(clip):
    """[(object, number of frames), ...] in order of appearance; every frame must show exactly one object."""
    segs = []
    for t, frame in enumerate(clip):
        objs = _objects_in(frame)
        assert len(objs) == 1, f"frame {t} shows objects {objs}"
        if segs and segs[-1][0] == objs[0]:
            segs[-1][1] += 1
        else:
            segs.append([objs[0], 1])
    return [tuple(s) for s in segs]


def _order(name):
    return [ORDER_COLOURS.index(c) for c in name.split(", ")]


def test_order_task_classes_differ_only_in_frame_order():
    assert len(ORDER_CLASSES) == 6 == len(set(ORDER_CLASSES))
    assert sorted(tuple(sorted(_order(n))) for n in ORDER_CLASSES) == [(0, 1, 2)] * 6
    for num_frames in (24, 16):
        lengths = sorted(order_segment_lengths(num_frames))
        assert sum(lengths) == num_frames and lengths[-1] - lengths[0] <= 2
        for seed in range(4):
            clips = [render_clip("order", label, seed, 32, num_frames, num_distractors=seed % 2)
                     for label in range(6)]
            per_object = None
            for label, clip in enumerate(clips):
                segs = _segments(clip)
                # Three contiguous segments, one per object, in the class's order ...
                assert [o for o, _ in segs] == _order(ORDER_CLASSES[label])
                assert sorted(n for _, n in segs) == lengths
                # ... each object shown for the same number of frames whatever the class ...
                counts = dict(segs)
                assert per_object is None or counts == per_object
                per_object = counts
                # ... and the very same frames: a shuffled clip, or any single frame, says nothing of the label.
                assert sorted(f.tobytes() for f in clip) == sorted(f.tobytes() for f in clips[0])
            # Boundaries within about a frame of the thirds; different seeds draw different splits.
            assert all(abs(n - num_frames / 3) <= 1.5 for n in per_object.values())
    firsts = {tuple(sorted(dict(_segments(render_clip("order", 0, s, 32, 24))).items())) for s in range(12)}
    assert len(firsts) > 1
    with pytest.raises(ValueError, match="num_frames"):
        render_clip("order", 0, 0, 32, 5)


def test_order_task_per_frame_statistics_do_not_separate_classes():
    # Clip-level colour histograms (mean over all frames) classified by nearest class centroid, leave-one-out:
    # chance level. The same features of the first and the last 7 frames (which see the order) do it.
    labels = np.repeat(np.arange(6), 12)
    feats, ends = [], []
    for i, label in enumerate(labels):
        clip = render_clip("order", int(label), [9, i], 32, 24).astype(float)
        # Per-channel histograms of the bright values (the background stays below ~110).
        hist = lambda x: np.concatenate([np.histogram(x[..., c], 6, (112, 256))[0] for c in range(3)])  # noqa: E731
        feats.append(hist(clip) / clip.shape[0])
        ends.append(np.concatenate([hist(clip[:7]), hist(clip[-7:])]) / 7)

    def loo_accuracy(x):
        x = np.log1p(np.asarray(x))
        hits = 0
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            cent = np.stack([x[keep & (labels == k)].mean(0) for k in range(6)])
            hits += int(np.argmin(((cent - x[i]) ** 2).sum(1)) == labels[i])
        return hits / len(x)

    assert loo_accuracy(feats) < 0.35   # chance 1/6
    assert loo_accuracy(ends) > 0.9


def test_order_dataset_files(tmp_path):
    kw = dict(num_train=6, num_val=6, task="order", size=32, num_frames=12, seed=1, workers=1)
    info = generate_dataset(str(tmp_path / "o"), **kw)
    again = generate_dataset(str(tmp_path / "o2"), **kw)
    assert info["num_classes"] == 6
    assert open(info["labels_file"]).read().splitlines() == list(ORDER_CLASSES)
    rows = [line.split() for line in open(info["val_list"]).read().splitlines()]
    assert sorted(int(r[1]) for r in rows) == list(range(6))  # balanced
    for i, (_, label) in enumerate(rows):
        frames = _frames(info, "val", i)
        assert frames.shape == (12, 32, 32, 3)
        assert [o for o, _ in _segments(frames)] == _order(ORDER_CLASSES[int(label)])  # survives h264
        assert np.array_equal(frames, _frames(again, "val", i))
    with pytest.raises(ValueError, match="num_frames"):
        generate_dataset(str(tmp_path / "x"), task="order", num_frames=4)
