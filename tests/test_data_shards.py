"""Sharded data (videoformers.data.shards): prepare --shards, the manifest, rank/worker splitting, shuffling,
http shards, broken members, and a Trainer run from shards."""

import functools
import http.server
import io
import json
import os
import tarfile
import threading

import pytest
import torch
from torch.utils.data import DataLoader

from videoformers.data import DataConfig, build_dataset
from videoformers.data.shards import ShardDataset, expand_braces, parse_size, prepare_shards, resolve_shards
from videoformers.data.synthetic import generate_dataset

N_TRAIN, N_VAL = 24, 10


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    d = generate_dataset(str(base / "gen"), num_train=N_TRAIN, num_val=N_VAL, size=32, num_frames=16, workers=1)
    out = str(base / "out")
    tr = prepare_shards(d["train_list"], out, shard_size="30KB", root=d["root"], workers=2,
                        labels_file=d["labels_file"], progress=False)
    va = prepare_shards(d["val_list"], out, shard_size="30KB", root=d["root"], workers=2,
                        labels_file=d["labels_file"], progress=False)
    return {"gen": d, "out": out, "train": tr, "val": va}


def _cfg(prepared, **kw):
    out = prepared["out"]
    args = dict(dataset="shards", train_shards=os.path.join(out, "train.json"),
                val_shards=os.path.join(out, "val.json"), num_frames=4, frame_interval=2, img_size=32,
                train_scale=(32, 32), test_scale=32, decode_timeout=0, num_workers=0)
    args.update(kw)
    return DataConfig(**args)


def _indices(ds, num_workers=2):
    loader = DataLoader(ds, batch_size=None, num_workers=num_workers)
    return [int(item["index"]) for item in loader]


def test_helpers():
    assert expand_braces("a/t-{000..002}.tar") == ["a/t-000.tar", "a/t-001.tar", "a/t-002.tar"]
    assert expand_braces("x-{8..10}.tar y.tar") == ["x-8.tar", "x-9.tar", "x-10.tar", "y.tar"]
    assert parse_size("512MB") == 512_000_000 and parse_size("1KiB") == 1024 and parse_size("100") == 100


def test_prepare_shards_layout_and_manifest(prepared):
    out, man = prepared["out"], prepared["train"]
    assert man["num_samples"] == N_TRAIN and len(man["shards"]) > 1
    assert sum(s["num_samples"] for s in man["shards"]) == N_TRAIN
    assert [s["name"] for s in man["shards"]] == [f"train-{i:06d}.tar" for i in range(len(man["shards"]))]
    on_disk = json.load(open(os.path.join(out, "train.json")))
    assert on_disk["num_samples"] == N_TRAIN and on_disk["classes"] == man["classes"] and len(man["classes"]) == 6
    assert not [n for n in os.listdir(out) if n.endswith(".tmp") or n.startswith(".encode")]
    with tarfile.open(os.path.join(out, man["shards"][0]["name"])) as tar:
        names = tar.getnames()
        assert len(names) == 2 * man["shards"][0]["num_samples"]
        assert names[0].endswith(".mp4") and names[1].endswith(".json") and names[0][:-4] == names[1][:-5]
        meta = json.loads(tar.extractfile(names[1]).read())
    assert {"label", "class", "fps", "frames", "source"} <= set(meta)
    assert meta["class"] == man["classes"][meta["label"]] and meta["frames"] == 16 and meta["fps"] > 0
    # a brace pattern finds the same shards and counts (manifest next to the shards)
    n = len(man["shards"])
    urls, counts, found = resolve_shards(os.path.join(out, "train-{000000..%06d}.tar" % (n - 1)))
    assert counts == [s["num_samples"] for s in man["shards"]] and found["num_samples"] == N_TRAIN


def test_cli_prepare_shards(prepared, tmp_path):
    from videoformers.cli import main

    d = prepared["gen"]
    rc = main(["prepare", d["val_list"], str(tmp_path), "--shards", "--shard-size", "1MB", "--root", d["root"],
               "--workers", "1", "--quiet"])
    assert rc in (0, None)
    man = json.load(open(tmp_path / "val.json"))
    assert man["num_samples"] == N_VAL and len(man["shards"]) == 1 and (tmp_path / "val-000000.tar").is_file()


def test_items_like_video_dataset(prepared):
    cfg = _cfg(prepared, test_num_clips=2, test_num_crops=1)
    tr = build_dataset(cfg, "train")
    assert isinstance(tr, ShardDataset) and len(tr) == N_TRAIN and tr.num_classes == 6
    item = next(iter(tr))
    assert set(item) == {"video", "label", "index", "num_skipped", "num_corrupt"}
    assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.float32
    va = build_dataset(cfg, "val")
    v = next(iter(va))
    assert v["video"].shape == (2, 3, 4, 32, 32)  # multi-view, as VideoDataset's val items


def test_two_ranks_two_workers_exactly_once_and_shuffled(prepared):
    cfg = _cfg(prepared)

    def epoch_order(epoch, seed=0):
        order = []
        for rank in range(2):
            ds = build_dataset(cfg, "train")
            ds.seed = seed
            ds.set_distributed(rank, 2)
            ds.set_epoch(epoch)
            assert len(ds) == N_TRAIN // 2
            got = _indices(ds)
            assert len(got) == N_TRAIN // 2
            order += got
        return order

    e0, e1 = epoch_order(0), epoch_order(1)
    assert sorted(e0) == list(range(N_TRAIN)) and sorted(e1) == list(range(N_TRAIN))
    assert e0 != e1
    assert epoch_order(0) == e0  # deterministic from (seed, epoch)
    assert epoch_order(0, seed=5) != e0


def test_rank_from_env(prepared, monkeypatch):
    ds = build_dataset(_cfg(prepared), "train")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    assert ds.rank_world() == (2, 3) and len(ds) == N_TRAIN // 3


def test_validation_every_sample_once_across_ranks(prepared):
    cfg = _cfg(prepared)
    seen = []
    for rank in range(3):  # 10 samples over 3 ranks: padded to 12, as EvalSampler
        ds = build_dataset(cfg, "val")
        ds.set_distributed(rank, 3)
        got = _indices(ds)
        assert len(got) == len(ds) == 4
        seen += got
    assert sorted(set(seen)) == list(range(N_VAL)) and len(seen) == 12
    seen2 = []
    for rank in range(2):
        ds = build_dataset(cfg, "val")
        ds.set_distributed(rank, 2)
        seen2 += _indices(ds, num_workers=0)
    assert sorted(seen2) == list(range(N_VAL))  # no shuffle, no repeat when 2 divides 10
    assert seen2 == list(range(N_VAL))  # manifest order (one process per rank)


def test_resume_skips_consumed_samples(prepared):
    cfg = _cfg(prepared)
    ds = build_dataset(cfg, "train")
    ds.set_epoch(3)
    loader = DataLoader(ds, batch_size=2, num_workers=2, drop_last=True)
    full = [b["index"].tolist() for b in loader]
    ds.set_epoch(3, skip_batches=3, batch_size=2)
    rest = [b["index"].tolist() for b in DataLoader(ds, batch_size=2, num_workers=2, drop_last=True)]
    assert rest == full[3:]
    # the same clips (augmentation seeded per sample)
    ds.set_epoch(3)
    a = {int(i["index"]): i["video"] for i in ds}
    ds.set_epoch(3)
    b = {int(i["index"]): i["video"] for i in ds}
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def http_server(prepared):
    handler = functools.partial(_QuietHandler, directory=prepared["out"])
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_http_shards(prepared, http_server):
    n = len(prepared["train"]["shards"])
    cfg = _cfg(prepared, train_shards=f"{http_server}/train-{{000000..{n - 1:06d}}}.tar",
               val_shards=f"{http_server}/val.json")
    tr = build_dataset(cfg, "train")
    assert len(tr) == N_TRAIN and tr.classes == prepared["train"]["classes"]
    assert sorted(_indices(tr)) == list(range(N_TRAIN))
    va = build_dataset(cfg, "val")
    assert _indices(va, num_workers=0) == list(range(N_VAL))


def _add(tar, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tar.addfile(ti, io.BytesIO(data))


def test_broken_member_skipped_and_counted(prepared, tmp_path):
    src = os.path.join(prepared["out"], prepared["val"]["shards"][0]["name"])
    bad = str(tmp_path / "bad-000000.tar")
    with tarfile.open(src) as tin, tarfile.open(bad, "w") as tout:
        members = [m for m in tin.getmembers() if m.isfile()]
        for k, m in enumerate(members):
            data = tin.extractfile(m).read()
            if k == 2:  # the second sample's video: garbage
                data = b"this is not a video" * 10
            _add(tout, m.name, data)
        _add(tout, "zz_only_json.json", b'{"label": 0}')  # a sample without a video
    n = len(members) // 2 + 1
    cfg = _cfg(prepared, max_broken_fraction=1.0)
    ds = ShardDataset([bad], [n], prepared["val"]["classes"], cfg, "val")
    items = list(ds)
    assert len(items) == n - 2
    assert 1 not in [i["index"] for i in items]
    assert sum(i["num_skipped"] for i in items) == 1  # the trailing one has no item after it to carry it
    stats = ds.skip_stats()
    assert stats["count"] == 2 and any("not a video" not in r for r in stats["reasons"].values())


def test_trainer_runs_from_shards(prepared, tmp_path):
    from videoformers.engine.config import load_config
    from videoformers.engine.trainer import Trainer

    out = prepared["out"]
    cfg = load_config("demo", [
        "data.dataset=shards", f"data.train_shards={out}/train.json", f"data.val_shards={out}/val.json",
        "data.num_frames=4", "data.frame_interval=2", "data.num_workers=2", "data.decode_timeout=0",
        "model.overrides.depth=[1,1,1,1]", "model.overrides.embed_dim=[16,32,64,64]", "model.overrides.head_dim=16",
        "train.epochs=1", "train.batch_size=4", f"train.output_dir={tmp_path}/run", "train.progress=false",
        "data.labels_file=null",
    ])
    tr = Trainer(cfg)
    assert tr.steps_per_epoch == N_TRAIN // 4
    tr.fit()
    assert (tmp_path / "run").is_dir()
    lines = [json.loads(x) for x in open(tmp_path / "run" / "log.jsonl")]
    assert lines


def test_trainer_killed_mid_epoch_resumes_from_shards_exactly(prepared, tmp_path):
    """A run from shards stopped inside an epoch and resumed gives the losses of the uninterrupted run
    (the consumed samples are skipped in the epoch's deterministic order; augmentation is seeded per sample)."""
    from videoformers.engine.config import load_config
    from videoformers.engine.trainer import Trainer

    out = prepared["out"]

    def fit(run, *extra):
        cfg = load_config("demo", [
            "data.dataset=shards", f"data.train_shards={out}/train.json", f"data.val_shards={out}/val.json",
            "data.num_frames=4", "data.frame_interval=2", "data.num_workers=2", "data.decode_timeout=0",
            "model.overrides.depth=[1,1,1,1]", "model.overrides.embed_dim=[16,32,64,64]", "model.overrides.head_dim=16",
            "train.epochs=2", "train.batch_size=2", f"train.output_dir={tmp_path / run}", "train.progress=false",
            "data.labels_file=null", "train.final_eval=false", "train.eval_every=0", "model.drop_path_rate=0.1",
            *extra])
        tr = Trainer(cfg, log=lambda m: None)
        try:
            tr.fit()
        finally:
            tr.close()
        return tr

    full = fit("full")
    cut = fit("cut", f"train.stop_after_steps={full.steps_per_epoch + 1}")
    resumed = fit("cut", "train.resume=auto")
    assert len(cut.step_losses) == full.steps_per_epoch + 1
    assert cut.step_losses + resumed.step_losses == pytest.approx(full.step_losses, abs=1e-6)



def test_eval_command_reads_shards_every_clip_once(prepared, tmp_path):
    """`videoformers eval` on data.dataset=shards: every validation clip scored once, with multi-view
    testing (2 clips x 1 crop per video)."""
    from videoformers.engine.config import load_config
    from videoformers.engine.run import evaluate_checkpoint
    from videoformers.engine.trainer import Trainer

    out = prepared["out"]
    common = ["data.dataset=shards", f"data.train_shards={out}/train.json", f"data.val_shards={out}/val.json",
              "data.num_frames=4", "data.frame_interval=2", "data.num_workers=2", "data.decode_timeout=0",
              "model.overrides.depth=[1,1,1,1]", "model.overrides.embed_dim=[16,32,64,64]",
              "model.overrides.head_dim=16", "train.batch_size=4", f"train.output_dir={tmp_path}/run",
              "train.progress=false", "data.labels_file=null"]
    tr = Trainer(load_config("demo", common + ["train.epochs=1", "train.final_eval=false", "train.eval_every=0"]),
                 log=lambda m: None)
    tr.fit()
    tr.close()
    m = evaluate_checkpoint(load_config("demo", common + ["data.test_num_clips=2",
                                                          f"eval.checkpoint={tmp_path}/run/checkpoint_last.pth"]))
    assert m["num_samples"] == N_VAL and m["num_views"] == 2
    rows = (tmp_path / "run" / "eval" / "val-checkpoint_last" / "predictions.csv").read_text().splitlines()[1:]
    assert len(rows) == N_VAL and len({r.split(",")[0] for r in rows}) == N_VAL


def test_training_from_shards_reaches_the_accuracy_of_the_list(tmp_path):
    """The demo's task (the order of three objects; no single frame tells the class), the same re-encoded
    clips as a list and as shards, the demo recipe: both runs learn it to the same accuracy (they see the
    clips in different orders, so they are compared by accuracy, not bit for bit). The full-size run is
    benchmarks/shards_accuracy.py (2000 clips: 100.00% vs 100.00%)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "shards_accuracy", Path(__file__).resolve().parents[1] / "benchmarks" / "shards_accuracy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.compare(tmp_path, epochs=4, num_train=640, num_val=96, workers=1, log=lambda m: None)
    assert rows["list"]["num_samples"] == rows["shards"]["num_samples"] == 96
    assert rows["list"]["top1"] >= 90 and rows["shards"]["top1"] >= 90, rows
    assert abs(rows["list"]["top1"] - rows["shards"]["top1"]) <= 5, rows


def test_fsspec_shards(prepared):
    """Any fsspec protocol (s3://, gs://, ... where their packages are installed) goes through the same
    `fsspec.open` path; fsspec's in-memory filesystem stands in for object storage here (no network)."""
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for name in os.listdir(prepared["out"]):
        if name.endswith((".tar", ".json")):
            with open(os.path.join(prepared["out"], name), "rb") as f:
                fs.pipe(f"/bucket/{name}", f.read())
    n = len(prepared["train"]["shards"])
    cfg = _cfg(prepared, train_shards=f"memory://bucket/train-{{000000..{n - 1:06d}}}.tar",
               val_shards="memory://bucket/val.json")
    tr = build_dataset(cfg, "train")
    assert len(tr) == N_TRAIN and tr.classes == prepared["train"]["classes"]
    assert sorted(_indices(tr, num_workers=0)) == list(range(N_TRAIN))
    va = build_dataset(cfg, "val")
    assert _indices(va, num_workers=0) == list(range(N_VAL))
