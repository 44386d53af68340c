"""Training data throughput from tar shards vs from the file list, on the same prepared data.

    python benchmarks/shards_throughput.py [--num-train 400] [--size 64] [--workers 2] [--batch 8] [--epochs 2] [--shard-size 256KB]

Generates a synthetic data set, runs ``prepare`` (a folder of re-encoded videos + list) and ``prepare --shards``
(tar shards of the same re-encoded videos), then iterates training epochs through a DataLoader with the same
DataConfig, workers and batch size, from ``data.dataset=list`` and from ``data.dataset=shards``. Reports
clips/s delivered to the training loop (decode + sampling + train transforms; no model) and the time from
creating the loader iterator to the first batch. Prints the CPU model.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def run(ds, workers: int, batch: int, epochs: int) -> dict:
    first, rates = [], []
    for epoch in range(epochs):
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        kw = {"shuffle": True} if not isinstance(ds, torch.utils.data.IterableDataset) else {}
        loader = DataLoader(ds, batch_size=batch, num_workers=workers, drop_last=True,
                            persistent_workers=False, **kw)
        t0 = time.perf_counter()
        n = 0
        for i, b in enumerate(loader):
            if i == 0:
                first.append(time.perf_counter() - t0)
            n += b["video"].shape[0]
        rates.append(n / (time.perf_counter() - t0))
    return {"clips_per_s": sum(rates) / len(rates), "first_batch_s": sum(first) / len(first)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-train", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--shard-size", default="256KB")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    a = ap.parse_args(argv)

    from videoformers.data import DataConfig, build_dataset
    from videoformers.data.prepare import prepare_dataset
    from videoformers.data.shards import prepare_shards
    from videoformers.data.synthetic import generate_dataset

    torch.set_num_threads(1)
    work = a.dir or tempfile.mkdtemp(prefix="vf-shard-bench-")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores visible); torch {torch.__version__}; work dir {work}")
    g = generate_dataset(os.path.join(work, "gen"), num_train=a.num_train, num_val=8, size=a.size,
                         num_frames=a.frames, workers=a.workers)
    t = time.perf_counter()
    lst = prepare_dataset(g["train_list"], os.path.join(work, "list"), root=g["root"], workers=a.workers,
                          progress=False)
    t_list = time.perf_counter() - t
    t = time.perf_counter()
    man = prepare_shards(g["train_list"], os.path.join(work, "shards"), shard_size=a.shard_size, root=g["root"],
                         workers=a.workers, labels_file=g["labels_file"], progress=False)
    t_shards = time.perf_counter() - t
    print(f"prepared {a.num_train} clips ({a.size}px, {a.frames} frames): list in {t_list:.1f}s, "
          f"{len(man['shards'])} shards in {t_shards:.1f}s")
    common = dict(num_frames=8, frame_interval=3, img_size=a.size, train_scale=(a.size, a.size), test_scale=a.size,
                  hflip=True, decode_timeout=0, labels_file=g["labels_file"], num_workers=a.workers)
    list_ds = build_dataset(DataConfig(dataset="list", train_list=lst["list"], root=os.path.dirname(lst["list"]),
                                       **common), "train")
    shard_ds = build_dataset(DataConfig(dataset="shards", train_shards=man["manifest_path"], **common), "train")
    # decode_timeout=60 (the default: decoding in a child process per worker) as well
    shard_iso = build_dataset(DataConfig(dataset="shards", train_shards=man["manifest_path"],
                                         **{**common, "decode_timeout": 60.0}), "train")
    list_iso = build_dataset(DataConfig(dataset="list", train_list=lst["list"], root=os.path.dirname(lst["list"]),
                                        **{**common, "decode_timeout": 60.0}), "train")
    print(f"workers={a.workers} batch={a.batch} epochs={a.epochs} (means over epochs)")
    for name, ds in (("list   decode_timeout=0 ", list_ds), ("shards decode_timeout=0 ", shard_ds),
                     ("list   decode_timeout=60", list_iso), ("shards decode_timeout=60", shard_iso)):
        r = run(ds, a.workers, a.batch, a.epochs)
        print(f"  {name}: {r['clips_per_s']:7.1f} clips/s, first batch {r['first_batch_s']:.2f}s")


if __name__ == "__main__":
    main()
