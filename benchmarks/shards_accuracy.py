"""Training from shards reaches the accuracy of training from the file list (issue 19).

The demo's data set (``videoformers demo``: six classes, the order in which three objects appear) is
written once, re-encoded with ``videoformers prepare`` into a folder + list, and packed with
``prepare --shards`` into tar shards; the demo recipe then trains on each for ``--epochs`` epochs with the
same seed, workers and batch, and validates on the same 300 clips (the shard run validates from the val
shards, every clip once). The two runs see the same clips in different orders (shard shuffling and a
shuffle buffer instead of a global permutation), so they are compared by accuracy, not bit for bit.

    OMP_NUM_THREADS=1 python benchmarks/shards_accuracy.py [--epochs 3] [--num-train 2000] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def compare(base: Path, epochs: int = 3, num_train: int = 2000, num_val: int = 300, workers: int = 1,
            log=print, extra: tuple[str, ...] = ()) -> dict:
    """Write the data set under ``base``, train from the list and from the shards; ``{"list": row, "shards": row}``
    with each row's ``top1``, ``num_samples``, ``seconds``, ``clips_per_s``."""
    from videoformers.data.prepare import prepare_dataset
    from videoformers.data.shards import prepare_shards
    from videoformers.data.synthetic import generate_dataset
    from videoformers.engine.config import load_config
    from videoformers.engine.demo import DEMO_DATA
    from videoformers.engine.trainer import Trainer

    d = generate_dataset(str(base / "raw"), **{**DEMO_DATA, "num_train": num_train, "num_val": num_val})
    lists = {}
    for split in ("train_list", "val_list"):
        lists[split] = prepare_dataset(d[split], str(base / "prepared"), short_side=None, root=d["root"],
                                       progress=False)["list"]
        prepare_shards(d[split], str(base / "shards"), shard_size="2MB", root=d["root"], labels_file=d["labels_file"],
                       progress=False)
    runs = {
        "list": [f"data.root={base / 'prepared'}", f"data.train_list={lists['train_list']}",
                 f"data.val_list={lists['val_list']}", f"data.labels_file={d['labels_file']}"],
        "shards": ["data.dataset=shards", f"data.train_shards={base / 'shards' / 'train.json'}",
                   f"data.val_shards={base / 'shards' / 'val.json'}", f"data.labels_file={d['labels_file']}"],
    }
    rows = {}
    for name, data in runs.items():
        cfg = load_config("demo", data + [f"train.epochs={epochs}", f"data.num_workers={workers}",
                                          f"train.output_dir={base / 'runs' / name}", "train.overwrite=true",
                                          "train.progress=false", "train.tensorboard=false", *extra])
        t0 = time.perf_counter()
        tr = Trainer(cfg, log=lambda m, name=name: log(f"[{name}] {m}"))
        try:
            tr.fit()
        finally:
            tr.close()
        m = json.loads((base / "runs" / name / "metrics.json").read_text())
        rows[name] = {"top1": m["top1"], "num_samples": m["num_samples"], "seconds": time.perf_counter() - t0,
                      "clips_per_s": tr.epoch_train["clips_per_s"]}
        log(f"{name}: val top1 {m['top1']:.2f} over {m['num_samples']} clips, {rows[name]['seconds']:.0f} s")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--num-train", type=int, default=2000)
    ap.add_argument("--num-val", type=int, default=300)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from videoformers.tools.hardware import cpu_summary

    print(f"CPU: {cpu_summary()}", flush=True)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - a.workers))
    base = Path(a.cache_dir or tempfile.mkdtemp(prefix="vf-shards-acc-"))
    rows = compare(base, a.epochs, a.num_train, a.num_val, a.workers, log=lambda m: print(m, flush=True))
    print(f"top1 list {rows['list']['top1']:.2f} vs shards {rows['shards']['top1']:.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"cpu": cpu_summary(), "torch": torch.__version__, "epochs": a.epochs,
                                           "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
