"""Never lose a run, never train on garbage silently, one clear line instead of a traceback (issue #16):
signals to the whole process group, checkpoint fallback, protected output folders, range-checked configs,
NaN/Inf and wrong-model checkpoints, plain log lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import videoformers as vf
from videoformers.checkpoints import CheckpointError, load_checkpoint
from videoformers.engine.config import ConfigError, load_config
from videoformers.engine.trainer import Trainer

sys.path.insert(0, os.path.dirname(__file__))
from test_engine_train import ClipSet, TinyNet, _cfg  # noqa: E402

_SCRIPT = textwrap.dedent('''
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_engine_train import ClipSet, TinyNet, _cfg
    from videoformers.engine.trainer import Trainer

    class Slow(ClipSet):
        def __getitem__(self, i):
            time.sleep(0.02)
            return super().__getitem__(i)

    cfg = _cfg({out!r}, "train.epochs=50", "data.num_workers=2", "train.batch_size=4", "train.eval_every=0",
               "train.final_eval=false")
    tr = Trainer(cfg, model=lambda k: TinyNet(k), train_dataset=Slow(64), val_dataset=ClipSet(8, seed=1),
                 log=lambda m: print(m, flush=True))
    try:
        s = tr.fit()
    finally:
        tr.close()
    sys.exit(128 + s["signal"] if s["signal"] else 0)
''')


def _train_then_signal(tmp_path: Path, sig: int) -> tuple[int, str, Path]:
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT.format(tests=os.path.dirname(__file__), out=str(out)))
    # its own process group, so that the signal goes to the trainer and its DataLoader workers together,
    # as `timeout`, `scancel`, torchrun and Ctrl-C send it
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    deadline = time.time() + 120
    log = out / "log.jsonl"
    while time.time() < deadline:
        if log.is_file() and sum(1 for _ in open(log)) >= 3 and p.poll() is None:
            break
        time.sleep(0.1)
    os.killpg(p.pid, sig)
    text, _ = p.communicate(timeout=120)
    return p.returncode, text, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_process_group_saves_and_exits_128_plus_signal(tmp_path, sig):
    rc, text, out = _train_then_signal(tmp_path, sig)
    assert rc == 128 + sig, text
    assert "DataLoader worker" not in text and "Traceback" not in text, text
    assert f"checkpoint saved to {out / 'checkpoint_last.pth'}" in text
    ck = torch.load(out / "checkpoint_last.pth", weights_only=True)
    assert ck["global_step"] >= 3
    # and the run goes on from there
    cfg = _cfg(out, "train.epochs=1", "train.batch_size=4", "train.resume=auto", "train.final_eval=false")
    tr = Trainer(cfg, model=lambda k: TinyNet(k), train_dataset=ClipSet(64), val_dataset=ClipSet(8, seed=1),
                 log=lambda m: None)
    try:
        assert tr.global_step == ck["global_step"]
    finally:
        tr.close()


def test_cli_train_exit_code_says_it_was_stopped(monkeypatch):
    from videoformers.cli import main
    from videoformers.engine import run

    monkeypatch.setattr(run, "train", lambda cfg: {"signal": int(signal.SIGTERM), "metrics": {}})
    assert main(["train", "demo", "train.output_dir=/nonexistent-never-written"]) == 143


def _fit(out, *extra, **kw):
    tr = Trainer(_cfg(out, *extra), model=lambda k: TinyNet(k), train_dataset=ClipSet(48),
                 val_dataset=ClipSet(20, seed=1, views=2), **{"log": lambda m: None, **kw})
    try:
        return tr, tr.fit()
    finally:
        tr.close()


def test_truncated_last_checkpoint_falls_back_to_the_previous_one_and_stale_temp_files_go(tmp_path):
    out = tmp_path / "run"
    _fit(out, "train.epochs=2", "train.save_every_steps=2")
    last, prev = out / "checkpoint_last.pth", out / "checkpoint_prev.pth"
    prev_step = torch.load(prev, weights_only=True)["global_step"]
    assert prev_step < torch.load(last, weights_only=True)["global_step"]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a kill or a full disk mid-copy
    stale = out / ".checkpoint_last.pth.tmp999999999"  # a killed run's unfinished write (no such pid)
    stale.write_bytes(b"x" * 1000)
    lines: list[str] = []
    tr = Trainer(_cfg(out, "train.epochs=3", "train.resume=auto"), model=lambda k: TinyNet(k),
                 train_dataset=ClipSet(48), val_dataset=ClipSet(20, seed=1), log=lines.append)
    try:
        assert tr.global_step == prev_step
    finally:
        tr.close()
    assert not stale.exists() and any("unfinished checkpoint write" in m for m in lines)
    assert any("cannot be read: truncated" in m for m in lines)
    # an explicit resume from a truncated file is one line, not a traceback
    last.write_bytes(data[:1000])
    with pytest.raises(ValueError, match="cannot be read: truncated"):
        Trainer(_cfg(out, f"train.resume={last}"), model=lambda k: TinyNet(k), train_dataset=ClipSet(48),
                log=lambda m: None)


def test_train_into_a_finished_run_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    _fit(out, "train.epochs=1")
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(ValueError, match="holds a run .*train.resume=auto.*train.overwrite=true"):
        _fit(out, "train.epochs=1")
    assert (out / "metrics.json").read_bytes() == before
    _fit(out, "train.epochs=1", "train.overwrite=true")


def test_eval_writes_beside_not_over_the_training_results(tmp_path):
    out = tmp_path / "run"
    _, summary = _fit(out, "train.epochs=1")
    before = (out / "metrics.json").read_bytes()
    from videoformers.engine.run import eval_output_dir

    cfg = load_config(None, [f"train.output_dir={out}", f"checkpoint={out / 'checkpoint_best.pth'}"])
    assert eval_output_dir(cfg) == out / "eval" / "val-checkpoint_best"
    cfg = load_config(None, [f"train.output_dir={out}", "checkpoint=x.pth", "eval.output_dir=/elsewhere"])
    assert eval_output_dir(cfg) == Path("/elsewhere")
    assert (out / "metrics.json").read_bytes() == before


def test_eval_of_a_checkpoint_given_as_the_config_says_so(tmp_path):
    out = tmp_path / "run"
    _fit(out, "train.epochs=1")
    with pytest.raises(ConfigError, match="is not a YAML config: it is a binary file .*checkpoint="):
        load_config(str(out / "checkpoint_best.pth"))


BAD_CONFIGS = [
    ("optim.clip_grad=-1", "optim.clip_grad"), ("optim.clip_grad=0", "optim.clip_grad"),
    ("train.epochs=0", "train.epochs"), ("train.epochs=-3", "train.epochs"),
    ("optim.warmup_epochs=-1", "optim.warmup_epochs"), ("train.mixup=-0.1", "train.mixup"),
    ("train.save_every_steps=-5", "train.save_every_steps"), ("train.log_every=-1", "train.log_every"),
    ("train.eval_every=-1", "train.eval_every"), ("train.label_smoothing=1.5", "train.label_smoothing"),
    ("model.drop_path_rate=1.5", "model.drop_path_rate"), ("optim.lr=0", "optim.lr"), ("optim.lr=-1e-3", "optim.lr"),
    ("optim.weight_decay=-0.1", "optim.weight_decay"), ("train.batch_size=0", "train.batch_size"),
    ("train.accum_steps=0", "train.accum_steps"), ("train.ema_decay=1.0", "train.ema_decay"),
    ("optim.momentum=1.2", "optim.momentum"), ("eval.view_average=mean", "eval.view_average"),
    ("train.amp=fp8", "train.amp"), ("optim.layer_decay=0", "optim.layer_decay"),
    ("model.num_classes=0", "model.num_classes"), ("train.mixup_prob=2", "train.mixup_prob"),
    ("optim.lr=.nan", "optim.lr"), ("optim.min_lr=1", "optim.min_lr"), ("data.num_frames=0", "num_frames"),
]


@pytest.mark.parametrize("override,key", BAD_CONFIGS)
def test_out_of_range_config_values_are_refused_at_load(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_nonfinite_checkpoint_is_refused_naming_the_tensor(tmp_path):
    m = TinyNet()
    sd = m.state_dict()
    sd["conv.weight"][0, 0, 0, 0, 0] = float("nan")
    sd["head.bias"][1] = float("inf")
    with pytest.raises(CheckpointError, match=r"NaN or infinite values in 2 tensor\(s\): conv.weight, head.bias"):
        load_checkpoint(TinyNet(), sd)
    assert load_checkpoint(TinyNet(), sd, allow_nonfinite=True).ok


def test_another_models_checkpoint_is_an_error_not_a_silent_fresh_start():
    TINY = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=32)
    a = vf.create_model("uniformer_small", num_classes=3, **TINY)
    other = TinyNet().state_dict()
    with pytest.raises(CheckpointError, match=r"only 1 of 95 tensors .*another model's"):
        load_checkpoint(a, other, strict=False)
    report = load_checkpoint(a, other, strict=False, min_loaded=0)
    text = str(report)
    assert len(text.splitlines()) <= 4 and "blocks" in text  # grouped, not one line per tensor
    # a long mismatch list stays a few lines
    b = vf.create_model("uniformer_small", num_classes=3, **{**TINY, "embed_dim": (32, 64, 64, 128)})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(b, a.state_dict())
    assert len(str(e.value).splitlines()) <= 6


def test_training_from_another_models_weights_stops_before_training(tmp_path):
    torch.save(TinyNet().state_dict(), tmp_path / "tiny.pth")
    cfg = load_config(None, [f"train.output_dir={tmp_path / 'run'}", "model.name=uniformer_small",
                             f"model.pretrained={tmp_path / 'tiny.pth'}", "data.train_list=x.txt"])
    from videoformers.engine.trainer import build_model

    cfg.model.overrides = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 64], head_dim=16)
    with pytest.raises(CheckpointError, match="another model's"):
        build_model(cfg, 3)


def test_plain_log_lines_when_output_goes_to_a_file(tmp_path):
    lines: list[str] = []
    _fit(tmp_path / "run", "train.epochs=1", "train.log_every=2", log=lines.append)
    steps = [m for m in lines if m.startswith("epoch 1/1  step ")]
    assert len(steps) == 3  # 6 steps, every 2
    assert all(k in steps[0] for k in ("loss", "lr", "clips/s", "ETA"))
    recs = [json.loads(x) for x in open(tmp_path / "run" / "log.jsonl")]
    assert {r["epoch"] for r in recs if r["type"] == "train"} == {1} == {r["epoch"] for r in recs if r["type"] == "val"}


def test_skip_counts_reach_the_epoch_line_and_metrics(tmp_path):
    lines: list[str] = []
    tr = Trainer(_cfg(tmp_path / "run", "train.epochs=1", "data.max_broken_fraction=0.5"),
                 model=lambda k: TinyNet(k), train_dataset=ClipSet(48, skipped=1),
                 val_dataset=ClipSet(20, seed=1), log=lines.append)
    try:
        tr.fit()
    finally:
        tr.close()
    assert any("skipped 48 broken sample(s)" in m for m in lines if m.startswith("epoch 1/1  loss"))
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["train_samples_skipped"] == 48 and m["train_samples_seen"] == 48


def test_missing_tensorboard_is_said_once(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when not installed
    lines: list[str] = []
    _fit(tmp_path / "run", "train.epochs=1", "train.tensorboard=true", log=lines.append)
    assert sum("TensorBoard cannot be used" in m for m in lines) == 1


def test_cli_errors_are_one_line(tmp_path, capsys):
    from videoformers.cli import main

    assert main(["train", "demo", "model.overrides.no_such_arg=1", f"train.output_dir={tmp_path / 'r'}",
                 "data.train_list=/nonexistent/list.txt"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")
    assert main(["eval", "demo", "eval.split=test", "checkpoint=/nonexistent.pth"]) == 2
    assert "data.test_list" in capsys.readouterr().err


def test_saved_files_get_the_usual_permissions(tmp_path):
    from videoformers.checkpoints import save_checkpoint_atomic

    mask = os.umask(0)
    os.umask(mask)
    for name in ("a.safetensors", "a.pth"):
        save_checkpoint_atomic({"w": torch.zeros(2)}, tmp_path / name)
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_vivit_refuses_sizes_its_patches_cannot_tile():
    with pytest.raises(ValueError, match="230 px is not a multiple of the 16-px patch .*use 224 or 240"):
        vf.create_model("vivit_base_spatiotemporal", img_size=230, depth=1)


def test_failed_export_check_leaves_no_file_and_a_zero_head_is_named(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from videoformers.tools import export

    m = vf.create_model("vivit_base_spatiotemporal", depth=1, embed_dim=32, num_heads=2, mlp_dim=64,
                        num_frames=4, img_size=32, num_classes=3).eval()
    monkeypatch.setattr(export, "check_onnx", lambda *a, **k: 1.0)  # an export whose outputs differ
    with pytest.warns(UserWarning, match="classifier is all zeros"), pytest.raises(RuntimeError, match="nothing was written"):
        export.export_onnx(m, str(tmp_path / "m.onnx"))
    assert list(tmp_path.iterdir()) == []


def test_a_broken_file_in_real_data_is_named_in_the_epoch_line_and_metrics(tmp_path):
    """Real videos and one broken file through the whole pipeline: the run goes on, the epoch line and
    metrics.json name the file once (distinct files, not replacement events)."""
    from videoformers.data.synthetic import render_clip, write_video

    lines = []
    for i in range(8):
        write_video(str(tmp_path / f"v{i}.mp4"), render_clip("temporal", i % 2, [1, i], size=32, num_frames=8), fps=8)
        lines.append(f"v{i}.mp4 {i % 2}")
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    (tmp_path / "train.txt").write_text("\n".join(lines + ["bad.mp4 0"]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(lines[:4]) + "\n")
    cfg = load_config(None, [
        f"train.output_dir={tmp_path / 'run'}", f"data.root={tmp_path}", f"data.train_list={tmp_path / 'train.txt'}",
        f"data.val_list={tmp_path / 'val.txt'}", "data.num_frames=4", "data.img_size=32", "data.test_scale=32",
        "data.train_scale=[32,36]", "data.frame_interval=1", "data.max_broken_fraction=0.5", "data.num_workers=0",
        "train.epochs=1", "train.batch_size=3", "train.progress=false", "train.tensorboard=false",
        "model.overrides.depth=[1,1,1,1]", "model.overrides.embed_dim=[16,32,64,64]", "model.overrides.head_dim=16"])
    out: list[str] = []
    tr = Trainer(cfg, log=out.append)
    try:
        tr.fit()
    finally:
        tr.close()
    epoch = [m for m in out if m.startswith("epoch 1/1  loss")][0]
    assert "from 1 file(s): bad.mp4" in epoch, epoch
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [Path(f).name for f in m["train_files_skipped"]] == ["bad.mp4"] and m["train_samples_skipped"] >= 1


def test_a_resumed_epoch_reports_the_mean_loss_of_the_whole_epoch(tmp_path):
    def epoch_lines(out, *extra):
        lines: list[str] = []
        _fit(out, "train.epochs=3", *extra, log=lines.append)
        return [m.split("  ")[1] for m in lines if m.startswith("epoch 2/3  loss")]

    full = epoch_lines(tmp_path / "full")
    assert epoch_lines(tmp_path / "cut", "train.stop_after_steps=8") == []  # stopped inside epoch 2
    assert epoch_lines(tmp_path / "cut", "train.resume=auto") == full


def test_damaged_frame_counts_reach_the_epoch_line_and_metrics(tmp_path):
    """The dataset's per-item ``num_corrupt`` (frames FFmpeg flagged, see data.corrupt_frames) is summed
    into the epoch line, metrics.json and eval's metrics."""
    class Damaged(ClipSet):
        def __getitem__(self, i):
            return {**super().__getitem__(i), "num_corrupt": 2}

    lines: list[str] = []
    tr = Trainer(_cfg(tmp_path / "run", "train.epochs=1"), model=lambda k: TinyNet(k), train_dataset=Damaged(48),
                 val_dataset=Damaged(20, seed=1), log=lines.append)
    try:
        tr.fit()
    finally:
        tr.close()
    assert any("96 damaged frame(s) (skip)" in m for m in lines if m.startswith("epoch 1/1  loss"))
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["train_frames_corrupt"] == 96 and m["num_corrupt_frames"] == 40 and m["corrupt_frames_policy"] == "skip"
