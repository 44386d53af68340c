"""Own data: folder-per-class data sets, lists with class names and no labels file, and label checks when
the dataset is built (not an IndexError mid-epoch, not a silently larger num_classes)."""

import logging
import os

import numpy as np
import pytest

from videoformers.data import AnnotationError, DataConfig, build_dataset, load_annotations
from videoformers.data.synthetic import index_frames, write_video

SMALL = dict(num_frames=4, frame_interval=1, img_size=32, train_scale=(32, 36), test_scale=32, decode_timeout=0)


def _video(path, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(str(path), index_frames(8, 32, 48, seed=seed), fps=10)
    return str(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    tr, va = root / "train", root / "val"
    _video(tr / "walking" / "a.mp4", 1)
    _video(tr / "walking" / "b.mkv", 2)
    _video(tr / "jumping" / "c.mp4", 3)
    _video(tr / "Running" / "d.avi", 4)
    (tr / "walking" / ".DS_Store").write_bytes(b"\0\1")
    (tr / "walking" / ".hidden.mp4").write_bytes(b"")
    (tr / "walking" / "notes.txt").write_text("not a video")
    (tr / ".cache").mkdir()
    _video(tr / ".cache" / "x.mp4", 5)  # hidden class folder: ignored
    frames = tr / "jumping" / "clip_frames"  # a frame folder counts as a video
    frames.mkdir()
    pil = pytest.importorskip("PIL.Image")
    for i in range(6):
        pil.fromarray(np.full((32, 48, 3), 30 * i, np.uint8)).save(frames / f"img_{i + 1:05d}.jpg")
    _video(va / "walking" / "e.mp4", 6)
    _video(va / "Running" / "f.mp4", 7)
    return root


def test_folder_per_class_dataset(folders):
    cfg = DataConfig(train_list=str(folders / "train"), val_list=str(folders / "val"), **SMALL)
    train = build_dataset(cfg, "train")
    assert train.classes == ["Running", "jumping", "walking"]  # sorted (as strings)
    got = sorted((os.path.relpath(s.path, folders / "train"), s.label) for s in train.samples)
    assert got == [("Running/d.avi", 0), ("jumping/c.mp4", 1), ("jumping/clip_frames", 1),
                   ("walking/a.mp4", 2), ("walking/b.mkv", 2)]
    assert train[0]["video"].shape == (3, 4, 32, 32)
    frame_item = next(i for i, s in enumerate(train.samples) if s.path.endswith("clip_frames"))
    assert train[frame_item]["num_skipped"] == 0
    val = build_dataset(cfg, "val")  # a class missing from val does not shift the indices
    assert val.classes == train.classes
    assert sorted((os.path.basename(s.path), s.label) for s in val.samples) == [("e.mp4", 2), ("f.mp4", 0)]


def test_folder_with_labels_file_and_unknown_class_folder(folders, tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("walking\njumping\nRunning\nswimming\n")
    ds = build_dataset(DataConfig(train_list=str(folders / "train"), labels_file=str(names), **SMALL), "train")
    assert ds.num_classes == 4 and {s.label for s in ds.samples} == {0, 1, 2}
    names.write_text("walking\njumping\n")
    with pytest.raises(AnnotationError,
                       match=r"train/Running: label 'Running' is not a known class name.* 2 classes of labels_file"):
        build_dataset(DataConfig(train_list=str(folders / "train"), labels_file=str(names), **SMALL), "train")


def test_val_folder_with_a_class_train_lacks_is_an_error(folders, tmp_path):
    _video(tmp_path / "val" / "walkin" / "g.mp4")
    cfg = DataConfig(train_list=str(folders / "train"), val_list=str(tmp_path / "val"), **SMALL)
    with pytest.raises(AnnotationError, match=r"label 'walkin' of the val list is not a class of the training list"
                                              r".*did you mean 'walking'"):
        build_dataset(cfg, "val")


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "d" / "cls").mkdir(parents=True)
    (tmp_path / "d" / "cls" / "readme.txt").write_text("x")
    with pytest.raises(AnnotationError, match=r"no videos in its 1 class folders"):
        build_dataset(DataConfig(train_list=str(tmp_path / "d"), **SMALL), "train")
    with pytest.raises(AnnotationError, match=r"needs one sub-folder per class"):
        build_dataset(DataConfig(train_list=str(tmp_path / "d" / "cls"), **SMALL), "train")


def _csv(path, rows):
    path.write_text("path,label\n" + "".join(f"{p},{lab}\n" for p, lab in rows))
    return str(path)


def test_csv_with_class_names_and_no_labels_file(tmp_path):
    vids = [_video(tmp_path / "v" / f"{i}.mp4", i) for i in range(4)]
    tr = _csv(tmp_path / "train.csv", [(vids[0], "zebra"), (vids[1], "ant"), (vids[2], "moth"), (vids[3], "ant")])
    va = _csv(tmp_path / "val.csv", [(vids[1], "moth"), (vids[0], "zebra")])
    cfg = DataConfig(dataset="csv", train_list=tr, val_list=va, **SMALL)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert train.classes == val.classes == ["ant", "moth", "zebra"]  # sorted, not first-seen
    assert train.labels == [2, 0, 1, 0] and val.labels == [1, 2]
    assert train[1]["label"] == 0 and train[1]["video"].shape == (3, 4, 32, 32)
    assert [s.label for s in load_annotations(cfg, "val")] == [1, 2]  # without classes: the same inference


def test_space_separated_list_with_class_names(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("a.mp4 dog\nb.mp4 cat\n")
    ds = build_dataset(DataConfig(train_list=str(lst), **SMALL), "train")
    assert ds.classes == ["cat", "dog"] and ds.labels == [1, 0]


def test_name_typo_with_labels_file_names_every_unknown_label(tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("jumping\nrunning\nwalking\nswimming\nclimbing\ndancing\n")
    tr = _csv(tmp_path / "train.csv", [("a.mp4", "jumping"), ("b.mp4", "jumpin"), ("c.mp4", "runing"),
                                       ("d.mp4", "jumpin"), ("e.mp4", "walking")])
    with pytest.raises(AnnotationError) as info:
        build_dataset(DataConfig(dataset="csv", train_list=tr, labels_file=str(names), **SMALL), "train")
    msg = str(info.value)
    assert msg.startswith(f"{tr}:3: label 'jumpin'")
    assert "2 label(s) are not among the 6 classes of labels_file" in msg
    assert "'jumpin' at" in msg and "and 1 more line(s)" in msg and "did you mean 'jumping'" in msg
    assert f"'runing' at {tr}:4" in msg and "did you mean 'running'" in msg


def test_name_typo_without_labels_file_is_caught_in_val(tmp_path):
    tr = _csv(tmp_path / "train.csv", [("a.mp4", "jumping"), ("b.mp4", "walking")])
    va = _csv(tmp_path / "val.csv", [("c.mp4", "walking"), ("d.mp4", "jumpng")])
    cfg = DataConfig(dataset="csv", train_list=tr, val_list=va, **SMALL)
    with pytest.raises(AnnotationError, match=r"val.csv:3: label 'jumpng' of the val list is not a class of the "
                                              r"training list .*did you mean 'jumping'"):
        build_dataset(cfg, "train")


def test_mixing_integers_and_names_needs_a_labels_file(tmp_path):
    tr = _csv(tmp_path / "train.csv", [("a.mp4", "0"), ("b.mp4", "walking")])
    with pytest.raises(AnnotationError, match=r"train.csv:3: label 'walking' .*train.csv:2 has the integer label 0"):
        build_dataset(DataConfig(dataset="csv", train_list=tr, **SMALL), "train")


def test_label_beyond_the_classes_fails_at_construction_naming_every_bad_line(tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("a\nb\nc\n")
    lst = tmp_path / "train.txt"
    lst.write_text("x.mp4 0\ny.mp4 5\nz.mp4 3\nw.mp4 1\n")
    with pytest.raises(AnnotationError, match=r"train.txt:2: label 5 is out of range \[0, 3\) for video .*y.mp4 "
                                              r"\(3 classes in labels_file .*classes.txt\); 1 more line\(s\) out "
                                              r"of range, e.g. .*train.txt:3 \(3\)"):
        build_dataset(DataConfig(train_list=str(lst), labels_file=str(names), **SMALL), "train")


def test_check_labels_against_a_model_with_fewer_outputs(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("x.mp4 0\ny.mp4 5\n")
    ds = build_dataset(DataConfig(train_list=str(lst), **SMALL), "train")
    assert ds.num_classes == 6
    ds.check_labels(6)
    with pytest.raises(AnnotationError, match=r"train.txt:2: label 5 is out of range \[0, 5\)"):
        ds.check_labels(5)


def test_integer_labels_leaving_classes_empty_warn(tmp_path, caplog):
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"v{i}.mp4 {i % 6}\n" for i in range(12)) + "typo.mp4 17\n")
    with caplog.at_level(logging.WARNING, logger="videoformers.data"):
        ds = build_dataset(DataConfig(train_list=str(lst), **SMALL), "train")
    assert ds.num_classes == 18
    assert "num_classes=18 comes from the largest label, 17 (" in caplog.text and "train.txt:13" in caplog.text
    assert "11 class(es) have no sample" in caplog.text


def test_integer_list_does_not_read_the_other_lists(tmp_path):
    """An eval machine may lack the training list: with integer labels and num_classes, val builds alone."""
    va = tmp_path / "val.txt"
    va.write_text("a.mp4 0\nb.mp4 2\n")
    cfg = DataConfig(train_list=str(tmp_path / "not_here.txt"), val_list=str(va), num_classes=3, **SMALL)
    assert build_dataset(cfg, "val").labels == [0, 2]
