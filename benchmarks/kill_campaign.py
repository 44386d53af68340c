"""Kill a training run at random moments and check that nothing is lost (issue #16).

    python benchmarks/kill_campaign.py --kills 20 --seed 0

One tiny run (2 DataLoader workers, a checkpoint every 2 steps) is killed ``--kills`` times at a
random moment, each time resumed with ``train.resume=auto``, and finally run to the end. Two kinds of kill,
both sent to the whole process group as ``timeout``/``scancel``/Ctrl-C/the OOM killer do:

* SIGTERM / SIGINT: the run must save at the next step and exit with 128 + the signal;
* SIGKILL (no chance to save): the newest checkpoint that loads must still be there (``checkpoint_last``,
  else ``checkpoint_prev``), and the resumed run must go on from it.

At the end the weights must equal those of the same run never interrupted (resume is exact). Prints the
counts; exits 1 if any kill lost the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SCRIPT = textwrap.dedent('''
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_engine_train import ClipSet, TinyNet, _cfg
    from videoformers.engine.trainer import Trainer

    class Slow(ClipSet):
        def __getitem__(self, i):
            time.sleep(0.01)
            return super().__getitem__(i)

    cfg = _cfg({out!r}, "train.epochs=20", "data.num_workers=2", "train.batch_size=4", "train.save_every_steps=2",
               "train.final_eval=false", "train.resume=auto", "train.mixup=0.5", "train.ema_decay=0.9")
    tr = Trainer(cfg, model=lambda k: TinyNet(k, dropout=0.2), train_dataset=Slow(48),
                 val_dataset=ClipSet(8, seed=1), log=lambda m: print(m, flush=True))
    try:
        s = tr.fit()
    finally:
        tr.close()
    sys.exit(128 + s["signal"] if s["signal"] else 0)
''')


def run(out: Path, kill_after: float | None, sig: int) -> tuple[int, str]:
    script = out.parent / f"{out.name}_train.py"
    script.write_text(SCRIPT.format(tests=str(HERE.parent / "tests"), out=str(out)))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    if kill_after is not None:
        # wait until this run has logged a training step of its own (imports and start-up are not what
        # is tested: a kill then loses nothing), then a random moment more
        log = out / "log.jsonl"
        before = sum(1 for _ in open(log)) if log.is_file() else 0
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            if log.is_file() and sum(1 for _ in open(log)) > before:
                break
            time.sleep(0.05)
        time.sleep(kill_after)
        if p.poll() is None:
            os.killpg(p.pid, sig)
    try:
        text, _ = p.communicate(timeout=180)
    except subprocess.TimeoutExpired:  # a run that does not end after its signal: a hang, counted
        os.killpg(p.pid, signal.SIGKILL)
        text, _ = p.communicate()
        return None, text
    return p.returncode, text


def newest_loadable(out: Path) -> int | None:
    for name in ("checkpoint_last.pth", "checkpoint_prev.pth"):
        try:
            return int(torch.load(out / name, weights_only=True)["global_step"])
        except Exception:
            continue
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"CPU: {platform.processor() or platform.machine()}, python {platform.python_version()}, torch {torch.__version__}")
    tmp = Path(tempfile.mkdtemp(prefix="kill_campaign_"))
    ref, killed = tmp / "reference", tmp / "killed"
    rc, text = run(ref, None, 0)
    assert rc == 0, text
    counts = {"kills": 0, "graceful_saved": 0, "graceful_wrong_exit": 0, "sigkill_recoverable": 0, "lost": 0,
              "finished_before_kill": 0}
    last_step = 0
    for i in range(args.kills):
        sig = rng.choice([signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
        rc, text = run(killed, rng.uniform(0.0, 1.5), sig)
        if rc is None:
            counts["hang"] = counts.get("hang", 0) + 1
            print(f"kill {i + 1}: {signal.Signals(sig).name}: the run did not end within 180 s\n{text[-3000:]}")
            continue
        if rc == 0:
            counts["finished_before_kill"] += 1
            break
        counts["kills"] += 1
        step = newest_loadable(killed)
        if step is None or step < last_step:
            counts["lost"] += 1
            print(f"kill {i}: {signal.Signals(sig).name}: no loadable checkpoint at or after step {last_step}\n{text}")
            continue
        last_step = step
        if sig == signal.SIGKILL:
            counts["sigkill_recoverable"] += 1
        elif rc == 128 + sig and "checkpoint saved to" in text:
            counts["graceful_saved"] += 1
        else:
            counts["graceful_wrong_exit"] += 1
            print(f"kill {i}: {signal.Signals(sig).name}: exit {rc}\n{text[-2000:]}")
        print(f"kill {i + 1}: {signal.Signals(sig).name} -> exit {rc}, resumable from step {step}", flush=True)
    rc, text = run(killed, None, 0)
    a = torch.load(ref / "checkpoint_last.pth", weights_only=True)
    b = torch.load(killed / "checkpoint_last.pth", weights_only=True)
    diff = max(float((a["model"][k].float() - b["model"][k].float()).abs().max()) for k in a["model"])
    counts["final_exit"] = rc
    counts["max_weight_diff_vs_uninterrupted"] = diff
    print(counts)
    ok = counts["lost"] == 0 and counts["graceful_wrong_exit"] == 0 and not counts.get("hang") and rc == 0
    return 0 if ok and diff <= 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
