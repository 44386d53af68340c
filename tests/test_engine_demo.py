"""The demo pipeline end to end (tiny and quick), ``videoformers eval`` on its checkpoint, and the
temporal sanity check: a model that really uses motion falls to chance when the order of the frames
(or all motion) is taken away."""

import json

import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from videoformers.engine.config import load_config
from videoformers.engine.demo import FrozenFrame, ShuffledFrames, run_demo, temporal_sanity_check
from videoformers.engine.run import evaluate_checkpoint


class MovingSquare(Dataset):
    """A bright square moving left (label 0) or right (label 1) on noise; every single frame has
    the same distribution for both labels, only the order of the frames tells them apart."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            label = i % 2
            x = torch.randn(1, 8, 16, 16, generator=g) * 0.3
            start = int(torch.randint(0, 16, (1,), generator=g))
            y0 = int(torch.randint(0, 12, (1,), generator=g))
            for t in range(8):
                c = (start + (t if label else -t)) % 16
                cols = [(c + k) % 16 for k in range(3)]
                x[0, t, y0:y0 + 4][:, cols] += 2.0
            self.items.append((x, label))
        self.classes, self.num_classes = ["left", "right"], 2

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x, y = self.items[i]
        return {"video": x, "label": y, "index": i, "num_skipped": 0}


def test_shuffled_frames_keep_every_frame_and_frozen_frames_keep_one():
    ds = MovingSquare(4, seed=0)
    s, f = ShuffledFrames(ds), FrozenFrame(ds)
    for i in range(4):
        a, b, c = ds[i]["video"], s[i]["video"], f[i]["video"]
        assert not torch.equal(a, b)
        assert sorted(a[0].flatten(1).sum(1).tolist()) == sorted(b[0].flatten(1).sum(1).tolist())
        # one frame of the clip (drawn per item), repeated over time
        assert c.shape == a.shape and any(all(torch.equal(c[:, t], a[:, k]) for t in range(8)) for k in range(8))


def test_temporal_sanity_check_drops_a_motion_model_to_chance():
    torch.manual_seed(0)
    train, val = MovingSquare(256, seed=1), MovingSquare(128, seed=2)
    # Space-time filters over (2 frames x 3 columns): enough to sense horizontal motion.
    model = nn.Sequential(nn.Conv3d(1, 6, (2, 1, 3)), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(6, 2))
    opt = torch.optim.AdamW(model.parameters(), 3e-2)
    x = torch.stack([it[0] for it in train.items])
    y = torch.tensor([it[1] for it in train.items])
    for step in range(60):
        idx = torch.randint(0, len(y), (32,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    xv = torch.stack([it[0] for it in val.items])
    yv = torch.tensor([it[1] for it in val.items])
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item() * 100
    assert acc >= 95
    check = temporal_sanity_check(model, val, num_classes=2, pairs=[(0, 1)])
    assert check["chance"] == 50.0
    assert abs(check["shuffled_top1"] - 50.0) <= 15, check
    assert abs(check["static_top1"] - 50.0) <= 15, check
    assert check["shuffled_axis_acc"] == 100.0 and check["shuffled_direction_acc"] == check["shuffled_top1"]


def test_demo_quick_and_eval(tmp_path):
    """The whole ``videoformers demo`` path on a tiny generated data set, then ``eval`` on its checkpoint."""
    out = tmp_path / "demo"
    small = {"num_train": 12, "num_val": 6, "size": 32}
    res = run_demo(output_dir=out, data_dir=tmp_path / "data", quick=True, log=lambda m: None, dataset=small,
                   overrides=["data.img_size=32", "data.test_scale=32", "data.train_scale=[32,36]", "train.batch_size=4",
                              "model.overrides.embed_dim=[16,32,64,128]", "model.overrides.head_dim=16"])
    for f in ("metrics.json", "predictions.csv", "confusion_matrix.png", "curves.png", "report.md", "clips.png",
              "checkpoint_best.pth", "log.jsonl"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert {"top1", "top5", "mean_class_acc"} <= set(m) and m["num_samples"] == 6
    assert m["demo"]["shuffled_frames_top1"] == res["shuffled_frames_top1"]
    assert m["demo"]["static_frame_top1"] == res["static_frame_top1"]
    assert "shuffled" in (out / "report.md").read_text()

    cfg = load_config(str(out / "config.yaml"), [f"checkpoint={out / 'checkpoint_best.pth'}",
                                                 f"train.output_dir={tmp_path / 'eval'}", "data.test_num_crops=3"])
    e = evaluate_checkpoint(cfg)
    where = tmp_path / "eval" / "eval" / "val-checkpoint_best"  # <train.output_dir>/eval/<split>-<checkpoint>
    written = json.loads((where / "metrics.json").read_text())
    assert written["top1"] == e["top1"] and written["num_views"] == 3 and written["num_samples"] == 6
    assert (where / "predictions.csv").is_file() and (where / "confusion_matrix.png").is_file()

    # the same weights as released weights by name: `videoformers eval CONFIG --model NAME.tag` (a cached
    # file, so no network) gives the same figures
    import shutil

    from videoformers.checkpoints import zoo
    from videoformers.cli import main

    zoo._ensure_catalogue()
    mcfg = load_config(str(out / "config.yaml")).model
    entry = zoo.Pretrained(model=mcfg.name, tag="test_demo_release", url="https://example.invalid/demo-release.pth",
                           num_classes=torch.load(out / "checkpoint_best.pth", weights_only=True)["num_classes"], overrides=dict(mcfg.overrides),
                           layout="ours")
    monkey = pytest.MonkeyPatch()
    try:
        monkey.setenv("VIDEOFORMERS_CACHE", str(tmp_path / "cache"))
        monkey.setitem(zoo._ZOO, entry.name, entry)
        (tmp_path / "cache" / mcfg.name).mkdir(parents=True)
        shutil.copy(out / "checkpoint_best.pth", tmp_path / "cache" / mcfg.name / "demo-release.pth")
        assert main(["eval", str(out / "config.yaml"), "--model", entry.name, f"train.output_dir={tmp_path / 'eval2'}",
                     "data.test_num_crops=3", "eval.use_ema=false"]) == 0
        by_name = json.loads((tmp_path / "eval2" / "eval" / f"val-{entry.name}" / "metrics.json").read_text())
        e2 = evaluate_checkpoint(load_config(str(out / "config.yaml"), [
            f"checkpoint={out / 'checkpoint_best.pth'}", f"train.output_dir={tmp_path / 'eval3'}",
            "data.test_num_crops=3", "eval.use_ema=false"]))
        assert by_name["top1"] == e2["top1"] and by_name["checkpoint"] == entry.name and by_name["num_views"] == 3
    finally:
        monkey.undo()


def test_demo_cam_quick(tmp_path):
    """``videoformers demo --cam`` on a tiny data set: the five steps, the Grad-CAM pictures, and the
    mass measurement in metrics.json (demo.cam) and report.md."""
    from PIL import Image

    out = tmp_path / "demo_cam"
    lines = []
    res = run_demo(output_dir=out, data_dir=tmp_path / "data", quick=True, cam=True, log=lines.append,
                   dataset={"num_train": 12, "num_val": 12, "size": 64},
                   overrides=["data.img_size=64", "data.test_scale=64", "data.train_scale=[64,64]",
                              "train.batch_size=4", "model.overrides.embed_dim=[16,32,64,128]",
                              "model.overrides.head_dim=16"])
    assert [l[:5] for l in lines if l.startswith("[")] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    cfg = load_config(str(out / "config.yaml"))
    assert cfg.data.frame_interval == 2 and cfg.optim.lr == 2e-3 and cfg.train.label_smoothing == 0.1  # demo_cam
    m = json.loads((out / "metrics.json").read_text())
    cam = m["demo"]["cam"]
    assert m["demo"]["task"] == "temporal" and m["demo"]["shuffled_direction_acc"] is not None
    assert cam["num_clips"] == 12 and cam["feature_map"] == [4, 4, 4] and cam["position"] == "input"
    assert len(cam["per_class"]) == 6 and sum(c["clips"] for c in cam["per_class"].values()) == 12
    for entry in [*cam["per_class"].values(), cam["all"]]:
        for k in ("mass", "mass_output", "area", "frac_above_area"):
            assert 0.0 <= entry[k] <= 1.0, (k, entry)
        assert entry["area"] > 0  # every clip has a moving shape
    assert res["cam"]["all"] == cam["all"]
    ex = cam["example"]["name"]
    for f in ("cam_grid.png", f"{ex}.gif", f"{ex}.png", "cam_clips.csv", "report.md", "clips.png"):
        assert (out / f).is_file(), f
    assert Image.open(out / f"{ex}.gif").n_frames == 8
    assert len((out / "cam_clips.csv").read_text().splitlines()) == 13
    report = (out / "report.md").read_text()
    assert "## Where does the model look?" in report and "(cam_grid.png)" in report and f"({ex}.gif)" in report

    # --cam-only: the Grad-CAM step again on the finished run, no training; the same measurement
    (out / "cam_grid.png").unlink()
    (out / "report.md").write_text("stale")
    m["demo"]["cam"]["example"]["name"] = "cam_old_example"  # a previous run's example: its files go
    (out / "metrics.json").write_text(json.dumps(m))
    for f in ("cam_old_example.png", "cam_old_example.gif"):
        (out / f).write_bytes(b"x")
    (out / "cam_old_example").mkdir()
    mtime = (out / "checkpoint_best.pth").stat().st_mtime
    lines = []
    again = run_demo(output_dir=out, cam_only=True, log=lines.append)
    assert [l[:5] for l in lines if l.startswith("[")] == ["[1/2]", "[2/2]"]
    assert (out / "checkpoint_best.pth").stat().st_mtime == mtime  # not retrained
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["demo"]["cam"]["all"] == cam["all"] == again["cam"]["all"]
    assert m2["top1"] == m["top1"] and m2["demo"]["seconds_total"] == m["demo"]["seconds_total"]
    assert (out / "cam_grid.png").is_file() and "## Where does the model look?" in (out / "report.md").read_text()
    assert not any((out / f).exists() for f in ("cam_old_example.png", "cam_old_example.gif", "cam_old_example"))
    assert (out / f"{ex}.png").is_file()


def test_cam_only_needs_a_finished_cam_run(tmp_path):
    from videoformers.engine.demo import rerun_cam

    with pytest.raises(FileNotFoundError, match="demo --cam"):
        rerun_cam(tmp_path)


def test_example_clip_is_the_median_of_the_correct_ones():
    from videoformers.engine.demo import _median_ratio_clip

    rows = [{"label": 0, "pred": 0, "mass": 0.5, "area": 0.1},   # 5x
            {"label": 0, "pred": 1, "mass": 0.2, "area": 0.1},   # wrong: not a candidate
            {"label": 0, "pred": 0, "mass": 0.1, "area": 0.1},   # 1x
            {"label": 1, "pred": 1, "mass": 0.9, "area": 0.1},   # other class
            {"label": 0, "pred": 0, "mass": 0.3, "area": 0.2}]   # 1.5x: the median of 1x, 1.5x, 5x
    assert _median_ratio_clip(rows, 0) == 4
    assert _median_ratio_clip(rows, 1) == 3
    assert _median_ratio_clip(rows, 2) is None


def test_demo_cli_cam_flag(monkeypatch):
    import videoformers.engine.demo as demo
    from videoformers.cli import main

    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda **kw: seen.update(kw) or {"ok": True})
    assert main(["demo", "--cam"]) == 0
    assert seen["cam"] is True and seen["output_dir"] is None  # -> runs/demo_cam
    assert main(["demo"]) == 0 and seen["cam"] is False and seen["cam_only"] is False
    assert main(["demo", "--cam-only", "--output-dir", "d"]) == 0
    assert seen["cam"] is True and seen["cam_only"] is True and seen["output_dir"] == "d"
    assert demo.default_data_dir(cam=True).name == "synthetic_cam" != demo.default_data_dir().name
