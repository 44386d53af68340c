"""Repeated augmentation on the demo data: does ``data.num_samples=2`` learn as well as 1 at equal clip count?

    python benchmarks/repeated_aug_demo.py [--epochs 4] [--out runs/repeated_aug]

Both runs train the demo recipe (a 1.2 M-parameter UniFormer on the synthetic "order" task) with the same
RandomResizedCrop augmentation (area 0.5-1, so that copies differ) for the same number of optimiser steps
of 16 clips: N = 1 with 16 videos a step for ``--epochs`` epochs, N = 2 with 8 videos x 2 copies for half
as many epochs -- the same clips seen, half the videos decoded. Prints both validation top-1 and the
training time; the ``--epochs`` runs are sequential on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from videoformers.data.synthetic import generate_dataset
from videoformers.engine.config import load_config
from videoformers.engine.demo import DEMO_DATA, default_data_dir
from videoformers.engine.run import train


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4, help="epochs of the N=1 run (N=2 runs half as many)")
    ap.add_argument("--out", default="runs/repeated_aug")
    args = ap.parse_args()
    info = generate_dataset(str(default_data_dir()), **DEMO_DATA)
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"CPU: {cpu}")
    results = {}
    for n, batch, epochs in ((1, 16, args.epochs), (2, 8, args.epochs // 2)):
        out = os.path.join(args.out, f"n{n}")
        cfg = load_config("demo", [
            f"data.root={info['root']}", f"data.train_list={info['train_list']}", f"data.val_list={info['val_list']}",
            f"data.labels_file={info['labels_file']}", f"train.output_dir={out}", "train.overwrite=true",
            f"data.num_samples={n}", f"train.batch_size={batch}", f"train.epochs={epochs}", "optim.warmup_epochs=0.5",
            "data.random_resized_crop=true", "data.rrc_scale=[0.5,1.0]", "train.progress=false"])
        t = time.perf_counter()
        summary = train(cfg, log=lambda m: None)
        m = summary["metrics"]
        results[f"N={n}"] = {"videos_per_step": batch, "clips_per_step": batch * n, "epochs": epochs,
                             "steps": summary["global_step"], "val_top1": m.get("top1"),
                             "seconds": round(time.perf_counter() - t, 1)}
        print(f"N={n}: {batch} videos x {n} = {batch * n} clips/step, {epochs} epochs, {summary['global_step']} steps "
              f"-> val top-1 {m.get('top1'):.1f}% in {time.perf_counter() - t:.0f} s", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
