"""Datasets: the engine contract (item layout, views), annotation formats and their errors, num_classes,
broken files skipped and counted (also across DataLoader workers), and the broken-data limit."""

import json
import os

import pytest
import torch

from videoformers.data import (
    AnnotationError,
    BrokenDataError,
    DataConfig,
    build_dataset,
    load_annotations,
    read_class_names,
)
from videoformers.data.synthetic import generate_dataset
from videoformers.registry import ModelCard


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_ds")
    return generate_dataset(str(root), num_train=12, num_val=6, size=48, num_frames=16, workers=1)


def _cfg(tiny, **kw):
    base = dict(train_list=tiny["train_list"], val_list=tiny["val_list"], root=tiny["root"],
                labels_file=tiny["labels_file"], num_frames=4, frame_interval=2, img_size=32,
                train_scale=(36, 44), test_scale=36, num_workers=0)
    base.update(kw)
    return DataConfig(**base)


def test_train_item_contract(tiny):
    ds = build_dataset(_cfg(tiny), "train")
    assert len(ds) == 12 and ds.num_classes == 6 and ds.classes[0] == "moving left"
    item = ds[3]
    assert set(item) == {"video", "label", "index", "num_skipped", "num_corrupt"}
    v = item["video"]
    assert v.shape == (3, 4, 32, 32) and v.dtype == torch.float32 and v.is_contiguous()
    assert isinstance(item["label"], int) and item["index"] == 3 and item["num_skipped"] == 0
    assert item["label"] == ds.samples[3].label
    # Normalised with PySlowFast's 0.45 / 0.225: pixel 0..1 maps to -2..2.44.
    assert -2.01 <= float(v.min()) and float(v.max()) <= 2.45


@pytest.mark.parametrize("clips,crops", [(1, 1), (2, 3)])
def test_val_item_multi_view(tiny, clips, crops):
    ds = build_dataset(_cfg(tiny, test_num_clips=clips, test_num_crops=crops, sampling="uniform"), "val")
    item = ds[0]
    assert item["video"].shape == (clips * crops, 3, 4, 32, 32)
    if crops == 3:
        v = item["video"]
        assert not torch.allclose(v[0], v[2])  # left and right crops differ
    again = ds[0]["video"]
    assert torch.equal(again, item["video"])  # evaluation views are deterministic


@pytest.mark.parametrize("decode_timeout", [0, 30])  # in-process, and in the decoder process
def test_dataset_decodes_with_one_ffmpeg_thread(tiny, monkeypatch, tmp_path, decode_timeout):
    import videoformers.data.datasets as dsm

    seen = tmp_path / "seen.txt"  # a file: with decode_timeout > 0 the call happens in a child process
    real = dsm.open_video

    def spy(path, decoder="auto", threads=1, **kw):
        with open(seen, "a") as f:
            f.write(f"{decoder} {threads} {kw.get('corrupt_frames')}\n")
        return real(path, decoder=decoder, threads=threads, **kw)

    monkeypatch.setattr(dsm, "open_video", spy)
    build_dataset(_cfg(tiny, decoder="pyav", decode_timeout=decode_timeout, corrupt_frames="keep"), "train")[0]
    assert seen.read_text().splitlines() == ["pyav 1 keep"]  # and data.corrupt_frames reaches the reader


def test_test_split_falls_back_to_val_list(tiny):
    ds = build_dataset(_cfg(tiny, test_num_clips=2, sampling="sparse"), "test")
    assert len(ds) == 6 and ds[1]["video"].shape == (2, 3, 4, 32, 32)


def test_model_card_supplies_mean_std(tiny):
    card = ModelCard(name="x", family="x", paper="x", table="x", input_size=(3, 4, 32, 32), num_classes=6,
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    ds = build_dataset(_cfg(tiny), "train", model=card)
    assert ds.mean == (0.5, 0.5, 0.5)
    ds = build_dataset(_cfg(tiny, mean=(0.1, 0.2, 0.3), std=[1, 1, 1]), "train", model=card)
    assert ds.mean == (0.1, 0.2, 0.3) and ds.std == (1, 1, 1)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="DataConfig.sampling"):
        DataConfig(sampling="random")
    with pytest.raises(ValueError, match="DataConfig.test_num_crops"):
        DataConfig(test_num_crops=2)
    cfg = DataConfig(train_scale=[128, 160], img_size=112, test_scale=128, randaugment=[2, 9])
    assert cfg.train_scale == (128, 160) and cfg.randaugment == (2, 9)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_list_format_root_comments_and_spaces(tmp_path):
    lst = _write(tmp_path / "train.txt", "# comment\n\na/b c.mp4 2\n/abs/x.mp4 0\n")
    cfg = DataConfig(train_list=lst, root="/data")
    s = load_annotations(cfg, "train")
    assert [(x.path, x.label, x.line) for x in s] == [("/data/a/b c.mp4", 2, 3), ("/abs/x.mp4", 0, 4)]


@pytest.mark.parametrize(
    "text,match",
    [("a.mp4 0\nb.mp4\n", r"train.txt:2: expected 'path label'"),
     ("a.mp4 0\nb.mp4 x7\n", r"train.txt:2: label 'x7'")],
)
def test_malformed_lines_name_the_line(tmp_path, text, match):
    lst = _write(tmp_path / "train.txt", text)
    with pytest.raises(AnnotationError, match=match):
        build_dataset(DataConfig(train_list=lst, num_classes=3), "train")


def test_label_out_of_range_names_the_line(tmp_path):
    lst = _write(tmp_path / "train.txt", "a.mp4 0\nb.mp4 1\nc.mp4 5\n")
    names = _write(tmp_path / "classes.txt", "x\ny\nz\n")
    with pytest.raises(AnnotationError, match=r"train.txt:3: label 5 is out of range \[0, 3\)"):
        build_dataset(DataConfig(train_list=lst, labels_file=names), "train")
    neg = _write(tmp_path / "neg.txt", "a.mp4 -1\n")
    with pytest.raises(AnnotationError, match=r"neg.txt:1: label -1"):
        build_dataset(DataConfig(train_list=neg, num_classes=3), "train")


def test_num_classes_inference(tmp_path):
    tr = _write(tmp_path / "train.txt", "a.mp4 0\nb.mp4 3\n")
    va = _write(tmp_path / "val.txt", "c.mp4 1\n")
    ds = build_dataset(DataConfig(train_list=tr, val_list=va), "val")
    assert ds.num_classes == 4 and ds.classes == ["0", "1", "2", "3"]  # max over all lists + 1
    names = _write(tmp_path / "classes.txt", "a\nb\nc\nd\ne\n")
    assert build_dataset(DataConfig(train_list=tr, labels_file=names), "train").num_classes == 5
    with pytest.raises(ValueError, match="num_classes=4 but"):
        build_dataset(DataConfig(train_list=tr, labels_file=names, num_classes=4), "train")


def test_csv_with_header_and_class_names(tmp_path):
    csv_path = _write(tmp_path / "train.csv", "label,path,split\ncat,v/1.mp4,train\n1,v/2.mp4,train\n")
    names = _write(tmp_path / "classes.txt", "dog\ncat\n")
    cfg = DataConfig(dataset="csv", train_list=csv_path, labels_file=names, root=str(tmp_path))
    s = load_annotations(cfg, "train", read_class_names(names))
    assert [(os.path.basename(x.path), x.label, x.line) for x in s] == [("1.mp4", 1, 2), ("2.mp4", 1, 3)]
    bad = _write(tmp_path / "bad.csv", "video,cls\nx.mp4,1\n")
    with pytest.raises(AnnotationError, match=r"bad.csv:1: the CSV header needs a label column"):
        load_annotations(DataConfig(dataset="csv", train_list=bad), "train")


def test_ssv2_json(tmp_path):
    labels = _write(tmp_path / "labels.json", json.dumps({"Pushing something from left to right": "1",
                                                          "Pushing something from right to left": "0"}))
    ann = _write(tmp_path / "val.json", json.dumps([
        {"id": "10", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right",
         "placeholders": ["a cup"]},
        {"id": "11", "template": "Pushing [something] from right to left"},
    ]))
    os.makedirs(tmp_path / "videos")
    _write(tmp_path / "videos" / "10.mp4", "x")  # the extension is taken from the files present
    cfg = DataConfig(dataset="ssv2", val_list=ann, labels_file=labels, root=str(tmp_path / "videos"), hflip=False)
    s = load_annotations(cfg, "val", read_class_names(labels))
    assert [(os.path.basename(x.path), x.label) for x in s] == [("10.mp4", 1), ("11.mp4", 0)]
    ds = build_dataset(cfg, "val")
    assert ds.classes == ["Pushing something from right to left", "Pushing something from left to right"]
    unknown = _write(tmp_path / "bad.json", json.dumps([{"id": "1", "template": "Dancing [something]"}]))
    with pytest.raises(AnnotationError, match="entry 0 .*not in the labels file"):
        load_annotations(DataConfig(dataset="ssv2", val_list=unknown, labels_file=labels), "val",
                         read_class_names(labels))


def test_ucf101_split_files(tmp_path):
    ind = _write(tmp_path / "classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n")
    tr = _write(tmp_path / "trainlist01.txt", "ApplyEyeMakeup/v_a.avi 1\nArchery/v_b.avi 2\n")
    te = _write(tmp_path / "testlist01.txt", "Archery/v_c.avi\n")
    cfg = DataConfig(dataset="ucf101", train_list=tr, test_list=te, labels_file=ind, root="/ucf")
    assert [(x.path, x.label) for x in load_annotations(cfg, "train", read_class_names(ind))] == [
        ("/ucf/ApplyEyeMakeup/v_a.avi", 0), ("/ucf/Archery/v_b.avi", 1)]
    ds = build_dataset(cfg, "test")
    assert ds.classes == ["ApplyEyeMakeup", "Archery"] and ds.samples[0].label == 1


def test_hmdb51_split_files(tmp_path):
    d = tmp_path / "splits"
    _write(d / "brush_hair_test_split1.txt", "a.avi 1\nb.avi 2\nc.avi 0\n")
    _write(d / "cartwheel_test_split1.txt", "d.avi 2\ne.avi 1\n")
    _write(d / "cartwheel_test_split2.txt", "d.avi 1\ne.avi 2\n")  # another split: ignored
    cfg = DataConfig(dataset="hmdb51", train_list=str(d), val_list=str(d), root="/hmdb")
    train = build_dataset(cfg, "train")
    assert train.classes == ["brush_hair", "cartwheel"]
    assert sorted((s.path, s.label) for s in train.samples) == [("/hmdb/brush_hair/a.avi", 0),
                                                                ("/hmdb/cartwheel/e.avi", 1)]
    assert sorted(s.path for s in build_dataset(cfg, "val").samples) == ["/hmdb/brush_hair/b.avi",
                                                                        "/hmdb/cartwheel/d.avi"]


def test_rawframes_dataset(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    import numpy as np

    for v in range(2):
        d = tmp_path / f"vid{v}"
        d.mkdir()
        for i in range(10):
            pil.fromarray(np.full((40, 50, 3), 20 * i + v, np.uint8)).save(d / f"img_{i + 1:05d}.jpg")
    lst = _write(tmp_path / "train.txt", "vid0 10 0\nvid1 1\n")
    cfg = DataConfig(dataset="rawframes", train_list=lst, root=str(tmp_path), num_frames=4, frame_interval=2,
                     img_size=32, train_scale=(34, 40))
    ds = build_dataset(cfg, "train")
    assert ds.num_classes == 2 and ds[1]["video"].shape == (3, 4, 32, 32)
    assert ds.samples[0].num_frames == 10


def _with_broken(tiny, tmp_path, n_broken):
    root = tiny["root"]
    good = open(tiny["train_list"]).read().split("\n")[:12]
    broken = []
    for i in range(n_broken):
        p = tmp_path / f"broken{i}.mp4"
        if i % 3 == 0:
            p.write_bytes(b"")
        elif i % 3 == 1:
            p.write_text("not a video")
        broken.append(f"{p} 0")  # i % 3 == 2: a missing file
    lst = _write(tmp_path / "mixed.txt", "\n".join([g for g in good if g] + broken) + "\n")
    return DataConfig(train_list=lst, root=root, labels_file=tiny["labels_file"], num_frames=4, frame_interval=2,
                      img_size=32, train_scale=(36, 44), max_broken_fraction=0.5)


def test_broken_files_are_skipped_and_counted_across_workers(tiny, tmp_path, caplog):
    cfg = _with_broken(tiny, tmp_path, 3)
    ds = build_dataset(cfg, "train")
    assert len(ds) == 15
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    seen, skipped, labels_ok = 0, 0, True
    for batch in loader:
        seen += batch["video"].shape[0]
        skipped += int(batch["num_skipped"].sum())
        labels_ok &= all(ds.samples[i].label == lab for i, lab in zip(batch["index"].tolist(), batch["label"].tolist()))
        assert torch.isfinite(batch["video"]).all()
    assert seen == 15 and labels_ok
    assert skipped >= 3  # each broken entry was hit once and replaced (a replacement may also be broken)
    # In the main process the skip is logged with the file and the line of the list.
    with caplog.at_level("WARNING", logger="videoformers.data"):
        item = ds[14]
    assert item["num_skipped"] >= 1 and item["index"] != 14
    assert "broken2.mp4" in caplog.text and "mixed.txt:15" in caplog.text and "file not found" in caplog.text


def test_mostly_broken_data_stops_the_run(tiny, tmp_path):
    cfg = _with_broken(tiny, tmp_path, 40)
    cfg.max_broken_fraction = 0.1
    ds = build_dataset(cfg, "train")
    torch.manual_seed(0)
    with pytest.raises(BrokenDataError, match="max_broken_fraction=0.1"):
        for i in range(len(ds)):
            ds[i]


def test_all_broken_stops_even_with_limit_one(tmp_path):
    lst = _write(tmp_path / "train.txt", "".join(f"missing{i}.mp4 0\n" for i in range(5)))
    ds = build_dataset(DataConfig(train_list=lst, root=str(tmp_path), max_broken_fraction=1.0), "train")
    with pytest.raises(BrokenDataError):
        ds[0]
