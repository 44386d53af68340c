"""``videoformers prepare``: re-encode with a short keyframe interval and a smaller short side, keep every
frame, write a new list, report broken files, resume without redoing finished videos."""

import os

import av
import numpy as np
import pytest

from videoformers.cli import main as cli_main
from videoformers.data import probe, read_frames
from videoformers.data.prepare import prepare_dataset
from videoformers.data.synthetic import decode_index, index_frames, write_video


@pytest.fixture()
def src(tmp_path):
    root = tmp_path / "src"
    frames = index_frames(40, 64, 96)
    for i in range(3):
        write_video(str(root / "cls" / f"v{i}.mkv"), frames, codec="libx264", gop=250, bframes=3)
    (root / "cls" / "broken.mp4").write_text("not a video")
    lst = root / "train.txt"
    lst.write_text("cls/v0.mkv 0\ncls/v1.mkv 1\ncls/broken.mp4 1\ncls/v2.mkv 2\n")
    return root, str(lst)


def _keyframes(path):
    with av.open(path) as c:
        s = c.streams.video[0]
        return [i for i, p in enumerate(pk for pk in c.demux(s) if pk.size) if p.is_keyframe]


def test_prepare_reencodes_keeps_frames_and_writes_list(src, tmp_path):
    root, lst = src
    dst = tmp_path / "dst"
    summary = prepare_dataset(lst, str(dst), short_side=0, keyframe_interval=8, workers=2, root=str(root),
                              progress=False)
    assert summary["encoded"] == 3 and summary["done"] == 0
    assert len(summary["broken"]) == 1 and summary["broken"][0][0].endswith("broken.mp4")
    assert "not a readable video" in summary["broken"][0][1]
    assert open(summary["list"]).read().splitlines() == ["cls/v0.mp4 0", "cls/v1.mp4 1", "cls/v2.mp4 2"]
    assert os.path.dirname(summary["list"]) == str(dst)
    assert "broken.mp4" in open(summary["broken_list"]).read()
    out = str(dst / "cls" / "v1.mp4")
    info = probe(out)
    assert (info.num_frames, info.width, info.height) == (40, 96, 64)
    assert _keyframes(out) == list(range(0, 40, 8))
    # Frame i is still frame i.
    assert [decode_index(f) for f in read_frames(out, [0, 17, 39]).numpy()] == [0, 17, 39]


def test_prepare_resizes_short_side_and_resumes(src, tmp_path):
    root, lst = src
    dst = tmp_path / "dst"
    prepare_dataset(lst, str(dst), short_side=32, keyframe_interval=16, workers=1, root=str(root), progress=False)
    info = probe(str(dst / "cls" / "v0.mp4"))
    assert (info.width, info.height, info.num_frames) == (48, 32, 40)
    mtime = os.stat(dst / "cls" / "v0.mp4").st_mtime_ns
    # An interrupted run can leave a damaged output: it must be redone, the good ones skipped.
    (dst / "cls" / "v2.mp4").write_bytes(b"\x00" * 100)
    again = prepare_dataset(lst, str(dst), short_side=32, keyframe_interval=16, workers=1, root=str(root),
                            progress=False)
    assert again["done"] == 2 and again["encoded"] == 1 and len(again["broken"]) == 1
    assert os.stat(dst / "cls" / "v0.mp4").st_mtime_ns == mtime
    assert probe(str(dst / "cls" / "v2.mp4")).num_frames == 40
    assert not any(n.endswith(".part.mp4") for n in os.listdir(dst / "cls"))


def test_prepare_cli(src, tmp_path, capsys):
    root, lst = src
    dst = tmp_path / "cli"
    rc = cli_main(["prepare", lst, str(dst), "--short-side", "32", "--keyframe-interval", "4", "--workers", "1",
                   "--root", str(root), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "prepared 3 videos" in out and "1 broken" in out and "broken.mp4" in out
    assert _keyframes(str(dst / "cls" / "v0.mp4")) == list(range(0, 40, 4))


def test_prepare_rejects_malformed_list(tmp_path):
    lst = tmp_path / "bad.txt"
    lst.write_text("a.mp4 0\nb.mp4 zero\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        prepare_dataset(str(lst), str(tmp_path / "o"), root=str(tmp_path), progress=False)
    assert cli_main(["prepare", str(tmp_path / "missing.txt"), str(tmp_path / "o")]) == 2


def test_prepared_frames_match_source_pixels(src, tmp_path):
    root, lst = src
    dst = tmp_path / "q"
    prepare_dataset(lst, str(dst), short_side=0, keyframe_interval=8, workers=1, root=str(root), progress=False)
    a = read_frames(str(root / "cls" / "v0.mkv"), range(40)).numpy().astype(int)
    b = read_frames(str(dst / "cls" / "v0.mp4"), range(40)).numpy().astype(int)
    assert np.abs(a - b).mean() < 6  # a lossy re-encode, but the same pictures in the same order


def test_prepare_redoes_outputs_made_with_other_settings(src, tmp_path):
    root, lst = src
    dst = tmp_path / "dst"
    kw = dict(keyframe_interval=16, workers=1, root=str(root), progress=False)
    prepare_dataset(lst, str(dst), short_side=32, **kw)
    assert probe(str(dst / "cls" / "v0.mp4")).height == 32
    again = prepare_dataset(lst, str(dst), short_side=48, **kw)  # another --short-side: not "3 already done"
    assert again["done"] == 0 and again["encoded"] == 3 and again["redone"] == {"made with other settings": 3}
    assert (probe(str(dst / "cls" / "v0.mp4")).width, probe(str(dst / "cls" / "v0.mp4")).height) == (72, 48)
    same = prepare_dataset(lst, str(dst), short_side=48, **kw)
    assert same["done"] == 3 and same["encoded"] == 0 and same["redone"] == {}
    forced = prepare_dataset(lst, str(dst), short_side=48, force=True, **kw)
    assert forced["encoded"] == 3 and forced["redone"] == {"forced": 3}
    # The manifest holds one record per output (compacted), with the settings used.
    import json

    recs = [json.loads(x) for x in open(dst / "prepare_manifest.jsonl")]
    assert sorted(r["out"] for r in recs) == ["cls/v0.mp4", "cls/v1.mp4", "cls/v2.mp4"]
    assert {r["settings"]["short_side"] for r in recs} == {48}


def test_prepare_redoes_outputs_without_a_record_or_with_a_changed_source(src, tmp_path):
    root, lst = src
    dst = tmp_path / "dst"
    kw = dict(short_side=32, keyframe_interval=16, workers=1, root=str(root), progress=False)
    prepare_dataset(lst, str(dst), **kw)
    os.remove(dst / "prepare_manifest.jsonl")  # outputs of a version that kept no record
    again = prepare_dataset(lst, str(dst), **kw)
    assert again["redone"] == {"no record in prepare_manifest.jsonl": 3}
    write_video(str(root / "cls" / "v1.mkv"), index_frames(20, 64, 96), codec="libx264")
    changed = prepare_dataset(lst, str(dst), **kw)
    assert changed["redone"] == {"the source changed": 1} and changed["done"] == 2
    assert probe(str(dst / "cls" / "v1.mp4")).num_frames == 20


def test_prepare_cli_force_and_summary(src, tmp_path, capsys):
    root, lst = src
    dst = tmp_path / "cli"
    base = ["prepare", lst, str(dst), "--keyframe-interval", "4", "--workers", "1", "--root", str(root), "--quiet"]
    assert cli_main(base + ["--short-side", "32"]) == 0
    capsys.readouterr()
    assert cli_main(base + ["--short-side", "48"]) == 0
    out = capsys.readouterr().out
    assert "3 encoded (3 redone: 3 made with other settings)" in out and "0 already done" in out
    assert cli_main(base + ["--short-side", "48", "--force"]) == 0
    assert "3 redone: 3 forced" in capsys.readouterr().out


def test_prepare_accepts_frame_folders(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    root = tmp_path / "src"
    frames = index_frames(12, 64, 96, seed=3)
    for name in ("walk/f1", "jump/f2"):
        d = root / name
        d.mkdir(parents=True)
        for i, f in enumerate(frames):
            pil.fromarray(f).save(d / f"img_{i + 1:05d}.jpg", quality=95)
    lst = root / "train.txt"
    lst.write_text("walk/f1 0\njump/f2 12 1\n")  # 'dir label' and rawframes' 'dir num_frames label'
    summary = prepare_dataset(str(lst), str(tmp_path / "dst"), short_side=0, keyframe_interval=4, workers=1,
                              root=str(root), progress=False, folder_fps=12)
    assert summary["broken"] == [] and summary["encoded"] == 2
    assert open(summary["list"]).read().splitlines() == ["walk/f1.mp4 0", "jump/f2.mp4 1"]
    out = str(tmp_path / "dst" / "jump" / "f2.mp4")
    info = probe(out)
    assert (info.num_frames, info.width, info.height) == (12, 96, 64) and abs(info.fps - 12) < 1e-6
    assert [decode_index(f) for f in read_frames(out, [0, 5, 11]).numpy()] == [0, 5, 11]
