"""Repeated augmentation (PySlowFast ``AUG.NUM_SAMPLE``, UniFormer / UniFormerV2 configs): one decode, N
independently augmented clips; the trainer flattens them to B x N clips with repeated labels (issue #17)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from videoformers.data import DataConfig, build_dataset
from videoformers.data.synthetic import generate_dataset
from videoformers.engine.config import ConfigError, load_config
from videoformers.engine.distributed import spawn_local
from videoformers.engine.trainer import Trainer

sys.path.insert(0, os.path.dirname(__file__))
from fixtures.torchrun_train import Fixed  # noqa: E402
from test_engine_train import ClipSet, TinyNet, _cfg  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ra")
    return generate_dataset(str(root), num_train=8, num_val=4, size=48, num_frames=16, workers=1)


def _data(tiny, **kw):
    base = dict(train_list=tiny["train_list"], val_list=tiny["val_list"], root=tiny["root"],
                labels_file=tiny["labels_file"], num_frames=4, frame_interval=2, img_size=32,
                train_scale=(36, 44), test_scale=36, num_workers=0)
    return DataConfig(**{**base, **kw})


@pytest.mark.parametrize("temporal", [False, True])
def test_copies_share_label_and_index_and_differ_in_their_crops(tiny, temporal):
    ds = build_dataset(_data(tiny, num_samples=3, num_samples_temporal=temporal, random_resized_crop=True,
                             hflip=False), "train")
    torch.manual_seed(0)
    item = ds[2]
    v = item["video"]
    assert v.shape == (3, 3, 4, 32, 32) and item["index"] == 2 and isinstance(item["label"], int)
    assert not torch.equal(v[0], v[1]) and not torch.equal(v[1], v[2])
    # without temporal draws the copies come from the same frames: the same clip, cropped differently;
    # with them, the decode still happens once (one open container, N clip positions)
    assert ds.num_clips == (3 if temporal else 1)
    one = build_dataset(_data(tiny), "train")[2]["video"]
    assert one.shape == (3, 4, 32, 32)
    assert build_dataset(_data(tiny, num_samples=3), "val")[2]["video"].shape[0] == 1  # test views untouched


def test_relative_random_resized_crop_ranges_are_used(tiny):
    ds = build_dataset(_data(tiny, random_resized_crop=True, rrc_scale=(0.5, 0.5), rrc_ratio=(1.0, 1.0)), "train")
    crop = ds.transform.transforms[0]
    assert (crop.scale, crop.ratio) == ((0.5, 0.5), (1.0, 1.0))


def test_a_crop_larger_than_the_resize_is_refused():
    with pytest.raises(ConfigError, match="larger than the test resize"):
        load_config(None, ["data.img_size=256", "data.test_scale=224", "data.train_scale=[256,320]"])
    with pytest.raises(ConfigError, match="larger than the smallest training resize"):
        load_config(None, ["data.img_size=224", "data.test_scale=256", "data.train_scale=[200,320]"])
    load_config(None, ["data.img_size=224", "data.test_scale=256", "data.train_scale=[200,320]",
                       "data.random_resized_crop=true"])


class Repeated(ClipSet):
    """ClipSet items as N augmented copies ``(N, C, T, H, W)`` (noise drawn per copy)."""

    def __init__(self, n: int, seed: int = 0, copies: int = 2) -> None:
        super().__init__(n, seed)
        self.copies = copies

    def __getitem__(self, i):
        item = super().__getitem__(i)
        item["video"] = torch.stack([item["video"] + 0.2 * torch.randn(item["video"].shape) for _ in range(self.copies)])
        return item


class Recorder(TinyNet):
    def __init__(self, k):
        super().__init__(k)
        self.batches: list[int] = []

    def forward(self, x):
        if self.training:
            self.batches.append(x.shape[0])
        return super().forward(x)


def test_trainer_flattens_copies_with_mixup_and_counts_videos(tmp_path):
    models = []

    def make(k):
        models.append(Recorder(k))
        return models[-1]

    tr = Trainer(_cfg(tmp_path / "run", "train.epochs=1", "train.mixup=0.8", "train.cutmix=1.0"), model=make,
                 train_dataset=Repeated(48), val_dataset=ClipSet(20, seed=1), log=lambda m: None)
    try:
        tr.fit()
    finally:
        tr.close()
    assert set(models[0].batches) == {16}  # batch 8 videos x 2 copies
    assert tr.samples_seen == 48 and tr.steps_per_epoch == 6  # an epoch still counts videos


def test_exact_resume_with_two_copies(tmp_path):
    def fit(out, *extra):
        tr = Trainer(_cfg(out, "train.epochs=2", "train.mixup=0.5", *extra), model=lambda k: TinyNet(k, dropout=0.2),
                     train_dataset=Repeated(48), val_dataset=ClipSet(20, seed=1), log=lambda m: None)
        try:
            tr.fit()
        finally:
            tr.close()
        return tr

    full = fit(tmp_path / "full")
    cut = fit(tmp_path / "cut", "train.stop_after_steps=7")
    resumed = fit(tmp_path / "cut", "train.resume=auto")
    assert cut.step_losses + resumed.step_losses == pytest.approx(full.step_losses, abs=1e-6)


class _Fixed(Fixed):
    """Deterministic two-copy items (no augmentation noise), so 2 processes x batch b equal 1 x 2b."""

    def __init__(self) -> None:
        super().__init__(32)

    def __getitem__(self, i):
        item = super().__getitem__(i)
        item["video"] = torch.stack([item["video"], item["video"].flip(-1)])
        return item


def _ra_train(out, batch):
    cfg = load_config(None, [f"train.output_dir={out}", "train.epochs=2", f"train.batch_size={batch}",
                             "data.num_workers=0", "optim.lr=0.01", "train.progress=false",
                             "train.tensorboard=false", "train.final_eval=false"])
    tr = Trainer(cfg, model=lambda k: TinyNet(k), train_dataset=_Fixed(), log=lambda m: None)
    try:
        tr.fit()
    finally:
        tr.close()


def _ra_worker(rank: int, root: str) -> None:
    _ra_train(f"{root}/ddp", 4)


def test_two_copies_under_ddp_match_one_process(tmp_path):
    _ra_train(tmp_path / "single", 8)
    spawn_local(_ra_worker, 2, (str(tmp_path),))
    one = torch.load(tmp_path / "single" / "checkpoint_last.pth", weights_only=True)
    two = torch.load(tmp_path / "ddp" / "checkpoint_last.pth", weights_only=True)
    assert one["global_step"] == two["global_step"] == 8
    for k, v in one["model"].items():
        torch.testing.assert_close(two["model"][k], v, rtol=0, atol=1e-5, msg=k)


def test_videos_shorter_than_the_clip_span_are_said_once(tiny):
    ds = build_dataset(_data(tiny, num_frames=8, frame_interval=4), "train")  # 29-frame span, 16-frame videos
    with pytest.warns(UserWarning, match=r"16 frames, fewer than the 29 .*wraps around .*repeat_last") as rec:
        ds[0]
        ds[1]
    assert sum("fewer than" in str(w.message) for w in rec) == 1 and ds.num_short == 2
