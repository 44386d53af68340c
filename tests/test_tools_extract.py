"""``videoformers extract``: window planning, features equal the model on independently decoded windows,
resume, sharding over ranks, broken videos, the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import videoformers as vf
from videoformers.tools.extract import extract_files, plan_windows, resample_indices

TINY = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=32, num_classes=3)


# --------------------------------------------------------------------------- windows
@pytest.mark.parametrize("n", [1, 5, 12, 13, 14, 25, 26, 100, 101])
@pytest.mark.parametrize("t,d,stride", [(4, 4, None), (4, 4, 6), (8, 1, 3), (1, 1, 1), (3, 2, 13)])
def test_windows_cover_the_video_in_order(n, t, d, stride):
    ws = plan_windows(n, t, d, stride)
    span = (t - 1) * d + 1
    s = span if stride is None else stride
    assert [w.index for w in ws] == list(range(len(ws)))
    for w in ws:
        assert len(w.frames) == t and all(0 <= f < n for f in w.frames)
        assert w.start_frame == w.frames[0] and w.end_frame <= n - 1
    if n < span:  # one window, clamped to the last frame
        assert len(ws) == 1 and ws[0].clamped and ws[0].frames[-1] == n - 1 and ws[0].end_frame == n - 1
        return
    full = [w for w in ws if not w.tail]
    assert [w.start_frame for w in full] == [k * s for k in range(len(full))]
    assert all(w.frames == [w.start_frame + i * d for i in range(t)] for w in ws)
    assert ws[-1].end_frame == n - 1  # the video's end is always covered
    assert sum(w.tail for w in ws) == (full[-1].end_frame < n - 1)  # a tail window exactly when needed
    if stride is None or stride <= span:  # windows touch or overlap: every frame lies in some window
        covered = set()
        for w in ws:
            covered |= set(range(w.start_frame, w.end_frame + 1))
        assert covered == set(range(n))


def test_window_edge_cases_and_errors():
    ws = plan_windows(13, 4, 4)  # exactly one span ((4 - 1) * 4 + 1 frames): one window, no tail
    assert len(ws) == 1 and not ws[0].tail and ws[0].frames == [0, 4, 8, 12]
    ws = plan_windows(14, 4, 4)  # one frame more: a tail window ending at the last frame
    assert [w.frames for w in ws] == [[0, 4, 8, 12], [1, 5, 9, 13]] and ws[1].tail
    assert plan_windows(3, 4, 4)[0].frames == [0, 2, 2, 2]
    with pytest.raises(ValueError, match="stride"):
        plan_windows(10, 2, 1, 0)
    with pytest.raises(ValueError, match="at least one frame"):
        plan_windows(0, 2, 1)


def test_fps_resampling():
    assert resample_indices(10, 25.0, None).tolist() == list(range(10))
    assert resample_indices(10, 25.0, 25.0).tolist() == list(range(10))
    half = resample_indices(100, 30.0, 15.0)  # every second frame
    assert len(half) == 50 and half[:4].tolist() == [0, 2, 4, 6]
    up = resample_indices(10, 10.0, 20.0)  # twice the frame rate: each frame about twice
    assert len(up) == 20 and up.max() == 9 and (np.diff(up) >= 0).all() and set(up.tolist()) == set(range(10))
    with pytest.raises(ValueError):
        resample_indices(10, 25.0, -1.0)


# --------------------------------------------------------------------------- features
@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from videoformers.data.synthetic import index_frames, write_video

    root = tmp_path_factory.mktemp("extract_videos")
    out = {}
    for name, n in (("long", 45), ("short", 7)):
        path = root / f"{name}.mp4"
        write_video(str(path), index_frames(n, 48, 64, seed=len(name)), fps=25, codec="libx264", gop=10)
        out[name] = str(path)
    bad = root / "broken.mp4"
    bad.write_text("not a video\n" * 20)
    out["broken"] = str(bad)
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return vf.create_model("uniformer_small", **TINY).eval()


SETTINGS = dict(num_frames=4, frame_interval=3, short_side=40, crop=32, mean=(0.45,) * 3, std=(0.225,) * 3)


def _independent(model, path, frames):
    """The window decoded and preprocessed on its own (the predict pipeline's functions), then the model."""
    from videoformers.data import read_frames
    from videoformers.data.transforms import Normalize, ResizeCrop, frames_to_clip

    x = ResizeCrop(SETTINGS["crop"], SETTINGS["short_side"], 1)(frames_to_clip(read_frames(path, frames)))
    x = Normalize(SETTINGS["mean"], SETTINGS["std"])(x)
    with torch.no_grad():
        return model.forward_head(model.forward_features(x), pre_logits=True)[0].numpy()


@pytest.mark.parametrize("fps,stride,chunk", [(None, None, 64), (None, 5, 3), (12.5, 4, 8)])
def test_features_equal_the_model_on_each_window(model, videos, tmp_path, fps, stride, chunk):
    counts = extract_files([videos["long"], videos["short"]], model, tmp_path, stride=stride, fps=fps, chunk=chunk,
                           batch_size=3, progress=False, **SETTINGS)
    assert counts["done"] == 2 and counts["errors"] == 0
    for name, n in (("long", 45), ("short", 7)):
        feats = np.load(tmp_path / f"{name}.npy")
        meta = json.loads((tmp_path / f"{name}.json").read_text())
        n_eff = n if fps is None else len(resample_indices(n, 25.0, fps))
        expected = plan_windows(n_eff, 4, 3, stride)
        assert feats.dtype == np.float32 and feats.shape == (len(expected), model.num_features)
        assert meta["num_frames"] == n and meta["fps"] == pytest.approx(25.0) and meta["feature_dim"] == 64
        src = resample_indices(n, 25.0, fps)
        for row, w, ew in zip(feats, meta["windows"], expected):
            assert (w["start_frame"], w["end_frame"], w["tail"], w["clamped"]) == (
                ew.start_frame, ew.end_frame, ew.tail, ew.clamped)
            f = fps or 25.0
            assert w["start_sec"] == pytest.approx(ew.start_frame / f) and w["end_sec"] == pytest.approx((ew.end_frame + 1) / f)
            np.testing.assert_allclose(row, _independent(model, videos[name], [int(src[i]) for i in ew.frames]),
                                       rtol=1e-5, atol=1e-5)
    rows = list(csv.DictReader(open(tmp_path / "index.csv")))
    assert {r["stem"]: int(r["num_windows"]) for r in rows} == {
        "long": len(json.loads((tmp_path / "long.json").read_text())["windows"]), "short": 1}


def test_layer_pooling_and_api(model, videos):
    feats, windows = vf.extract_features(model, videos["long"], layer=1, pool="max", **SETTINGS)
    assert feats.shape == (len(windows), 32)  # stage 2 of the tiny model has 32 channels
    plain, _ = vf.extract_features(lambda x: x.mean(dim=(2, 3, 4)), videos["long"], **SETTINGS)
    assert plain.shape == (len(windows), 3)  # any callable (B, C, T, H, W) -> (B, D)


def test_second_run_skips_and_broken_video_is_reported(model, videos, tmp_path, capsys):
    paths = [videos["long"], videos["broken"], videos["short"]]
    first = extract_files(paths, model, tmp_path, progress=False, **SETTINGS)
    assert (first["done"], first["errors"], first["skipped"]) == (2, 1, 0)
    assert "broken.mp4" in capsys.readouterr().err
    rows = {r["stem"]: r for r in csv.DictReader(open(tmp_path / "index.csv"))}
    assert rows["broken"]["status"].startswith("error") and rows["long"]["status"] == "ok"
    mtime = (tmp_path / "long.npy").stat().st_mtime_ns
    second = extract_files(paths, model, tmp_path, progress=False, **SETTINGS)
    assert (second["done"], second["skipped"], second["errors"]) == (0, 2, 1)
    assert (tmp_path / "long.npy").stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_two_ranks_write_what_one_process_writes(model, videos, tmp_path):
    paths = [videos["long"], videos["short"]]
    extract_files(paths, model, tmp_path / "one", progress=False, **SETTINGS)
    for rank in (0, 1):
        c = extract_files(paths, model, tmp_path / "two", rank=rank, world_size=2, progress=False, **SETTINGS)
        assert c["done"] == 1
    for name in ("long", "short"):
        np.testing.assert_array_equal(np.load(tmp_path / "one" / f"{name}.npy"), np.load(tmp_path / "two" / f"{name}.npy"))
        a = json.loads((tmp_path / "one" / f"{name}.json").read_text())
        b = json.loads((tmp_path / "two" / f"{name}.json").read_text())
        assert a == b


def test_workers_give_the_same_files(model, videos, tmp_path):
    paths = [videos["long"], videos["short"]]
    extract_files(paths, model, tmp_path / "w0", progress=False, **SETTINGS)
    extract_files(paths, model, tmp_path / "w2", num_workers=2, progress=False, **SETTINGS)
    for name in ("long", "short"):
        np.testing.assert_allclose(np.load(tmp_path / "w0" / f"{name}.npy"), np.load(tmp_path / "w2" / f"{name}.npy"),
                                   rtol=1e-5, atol=1e-6)


def test_cli(videos, tmp_path):
    out = tmp_path / "feats"
    cmd = [sys.executable, "-m", "videoformers.cli", "extract", videos["long"], "--model", "uniformer_small",
           "--override", "depth=[1,1,1,1]", "--override", "embed_dim=[16,32,64,64]", "--override", "head_dim=16",
           "--num-frames", "4", "--crop", "32", "--short-side", "40", "--frame-interval", "2", "--stride-sec", "0.4",
           "--out", str(out), "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "long.json").read_text())
    assert [w["start_frame"] for w in meta["windows"] if not w["tail"]][:3] == [0, 10, 20]  # 0.4 s at 25 fps
    assert np.load(out / "long.npy").shape == (len(meta["windows"]), 64)
    assert "random weights" in r.stderr


def test_predict_timeline_classifies_each_window(model, videos, tmp_path):
    from videoformers.tools.predict import Preprocess, predict_timeline

    pre = Preprocess(num_frames=4, img_size=32, short_side=40, sampling="dense", frame_interval=3,
                     mean=(0.45,) * 3, std=(0.225,) * 3)
    res = predict_timeline([videos["long"], videos["broken"]], model, tmp_path, labels=["a", "b", "c"], topk=2,
                           preprocess=pre, stride=6, progress=False)
    ok, bad = res
    assert "error" in bad and bad["path"].endswith("broken.mp4")
    expected = plan_windows(45, 4, 3, 6)
    assert [(w["start_frame"], w["end_frame"]) for w in ok["windows"]] == [(w.start_frame, w.end_frame) for w in expected]
    from videoformers.data import read_frames
    from videoformers.data.transforms import Normalize, ResizeCrop, frames_to_clip

    for w, ew in zip(ok["windows"], expected):
        x = Normalize(pre.mean, pre.std)(ResizeCrop(32, 40, 1)(frames_to_clip(read_frames(videos["long"], ew.frames))))
        with torch.no_grad():
            p = model(x).softmax(-1)[0]
        best = int(p.argmax())
        assert w["top"][0]["index"] == best and w["top"][0]["label"] == "abc"[best]
        assert w["top"][0]["prob"] == pytest.approx(float(p[best]), abs=1e-5)
    assert (tmp_path / "long.timeline.png").stat().st_size > 0
    assert json.loads((tmp_path / "long.timeline.json").read_text())["windows"][0]["top"][0]["label"] in "abc"


def test_two_torchrun_style_processes_share_the_videos(videos, tmp_path):
    """RANK / WORLD_SIZE as torchrun sets them: two concurrent processes split the list, one file each."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch, videoformers as vf\n"
        "from videoformers.tools.extract import extract_files\n"
        "torch.manual_seed(0)\n"
        f"m = vf.create_model('uniformer_small', **{TINY!r}).eval()\n"
        f"c = extract_files({[videos['long'], videos['short']]!r}, m, sys.argv[1], progress=False, **{SETTINGS!r})\n"
        "print(c['done'])\n")
    env = lambda r: {**__import__("os").environ, "RANK": str(r), "WORLD_SIZE": "2"}  # noqa: E731
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "two")], env=env(r), stdout=subprocess.PIPE,
                              text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert outs == ["1", "1"] and all(p.returncode == 0 for p in procs)
    torch.manual_seed(0)
    m = vf.create_model("uniformer_small", **TINY).eval()
    extract_files([videos["long"], videos["short"]], m, tmp_path / "one", rank=0, world_size=1, progress=False,
                  **SETTINGS)
    for name in ("long", "short"):
        np.testing.assert_array_equal(np.load(tmp_path / "one" / f"{name}.npy"), np.load(tmp_path / "two" / f"{name}.npy"))
    rows = list(csv.DictReader(open(tmp_path / "two" / "index.csv")))
    assert len(rows) >= 1  # each rank rewrites the index from the files present when it finishes
