"""Does the model wait for data?  The demo recipe on prepared data, per number of DataLoader workers.

For each ``--workers`` value the demo recipe (``videoformers demo``'s synthetic "order" clips,
re-encoded with ``videoformers prepare``) trains for ``--steps`` optimiser steps and we record:

* ``model_step_s``: one training step (forward, backward, optimiser) on a batch already in memory,
  the same model, threads and batch size: what the step costs when data is free;
* ``step_s``: the end-to-end step time of the engine's training loop (loader included);
* ``data_wait``: the fraction of the loop's time spent blocked on the loader, as the engine measures
  and logs it each epoch (``data wait N%`` in the epoch line, ``data_wait`` in ``log.jsonl``).

The model's threads are ``cores - workers`` (at least 1), as ``videoformers demo`` sets them, so decoding
and compute do not oversubscribe the cores. Prints the CPU first; writes JSON with ``--out``.

    OMP_NUM_THREADS=1 python benchmarks/data_wait.py [--workers 0 1 2] [--steps 30] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _cpu() -> str:
    from videoformers.tools.hardware import cpu_summary

    return cpu_summary()


def _model_step_time(trainer, batch, repeats: int) -> float:
    """Median time of a training step on a batch already in memory (no loader)."""
    x, y, _ = trainer.task.prepare_batch(batch, trainer.device)
    model, opt = trainer.forward_model, trainer.optimizer
    model.train()
    times = []
    for _ in range(repeats + 2):
        t0 = time.perf_counter()
        loss, _ = trainer.task.forward_loss(model, x, y, trainer.cfg)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def run(workers: int, data: dict, steps: int, out_dir: Path, batch_size: int) -> dict:
    from videoformers.engine.config import load_config
    from videoformers.engine.trainer import Trainer

    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - workers))
    cfg = load_config("demo", [
        f"data.root={data['root']}", f"data.train_list={data['train_list']}", f"data.labels_file={data['labels_file']}",
        f"data.num_workers={workers}", f"train.batch_size={batch_size}", "train.epochs=1",
        f"train.max_train_batches={steps}", f"train.output_dir={out_dir / f'w{workers}'}", "train.overwrite=true",
        "train.progress=false", "train.final_eval=false", "train.tensorboard=false", "train.log_every=1000",
    ])
    tr = Trainer(cfg, log=lambda m: None)
    try:
        t0 = time.perf_counter()
        tr.train_one_epoch()
        wall = time.perf_counter() - t0
        et = tr.epoch_train
        batch = next(iter(torch.utils.data.DataLoader(tr.train_dataset, batch_size=batch_size)))
        model_step = _model_step_time(tr, batch, repeats=min(10, steps))
    finally:
        tr.close()
    step = wall / max(tr.steps_per_epoch, 1)
    return {"workers": workers, "threads": torch.get_num_threads(), "steps": tr.steps_per_epoch,
            "step_s": step, "model_step_s": model_step, "data_wait": et["data_wait"],
            "clips_per_s": et["clips_per_s"], "overhead_vs_model": step / model_step - 1.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=30, help="optimiser steps per measurement")
    ap.add_argument("--batch-size", type=int, default=16, help="the demo recipe's batch")
    ap.add_argument("--num-train", type=int, default=600, help="generated training clips")
    ap.add_argument("--no-prepare", action="store_true", help="train on the generated files as written")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    from videoformers.data.prepare import prepare_dataset
    from videoformers.data.synthetic import generate_dataset
    from videoformers.engine.demo import DEMO_DATA

    print(f"CPU: {_cpu()}", flush=True)
    base = Path(a.cache_dir or tempfile.mkdtemp(prefix="vf-data-wait-"))
    info = generate_dataset(str(base / "raw"), **{**DEMO_DATA, "num_train": a.num_train, "num_val": 8})
    data = dict(info)
    if not a.no_prepare:
        prep = prepare_dataset(info["train_list"], str(base / "prepared"), short_side=None, root=info["root"],
                               progress=False)
        data.update(root=str(base / "prepared"), train_list=prep["list"])
    rows = []
    for w in a.workers:
        r = run(w, data, a.steps, base / "runs", a.batch_size)
        rows.append(r)
        print(f"workers {w}  threads {r['threads']}  step {1e3 * r['step_s']:.0f} ms  model-only step "
              f"{1e3 * r['model_step_s']:.0f} ms  data wait {100 * r['data_wait']:.1f}%  "
              f"{r['clips_per_s']:.1f} clips/s", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"cpu": _cpu(), "torch": torch.__version__, "prepared": not a.no_prepare,
                                           "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
