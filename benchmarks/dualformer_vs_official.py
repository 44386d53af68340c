"""Forward time of our DualFormer against the authors' implementation (CPU by default).

Both models get the same weights (the authors' state dict, loaded into ours through
``load_checkpoint``) and the same input; the script checks the logits agree, then times
``repeats`` forward passes of each (taking turns) under ``torch.inference_mode`` after ``warmup``
passes, and prints the medians and the ratio (authors' median / ours: > 1 means ours is faster).

    OMP_NUM_THREADS=1 python benchmarks/dualformer_vs_official.py --official-repo /path/to/dualformer
    python benchmarks/dualformer_vs_official.py                   # ours only (no clone given)

``--official-repo`` is a local clone of https://github.com/sail-sg/dualformer (only
``mmaction/models/backbones/dualformer.py`` is used; timm/mmcv/mmaction are shimmed, see
``benchmarks/official/dualformer.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

import torch

import videoformers as vf

_HERE = os.path.dirname(os.path.abspath(__file__))


def _official_builder():
    spec = importlib.util.spec_from_file_location("_df_official_loader", os.path.join(_HERE, "official", "dualformer.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_official


def _time(models: list[torch.nn.Module], x: torch.Tensor, warmup: int, repeats: int) -> list[list[float]]:
    """Seconds per forward pass of each model; the models take turns, so a change in machine
    load during the run affects them alike."""
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for m, t in zip(models, times):
                t0 = time.perf_counter()
                m(x)
                if x.is_cuda:
                    torch.cuda.synchronize()
                if i >= warmup:
                    t.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official-repo", default=None, help="local clone of sail-sg/dualformer")
    p.add_argument("--model", default="dualformer_tiny", choices=["dualformer_tiny", "dualformer_small", "dualformer_base"])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (args.batch, 3, args.frames, args.size, args.size)
    x = torch.randn(shape, device=args.device)
    ours = vf.create_model(args.model, num_frames=args.frames, img_size=args.size).eval().to(args.device)
    official = None
    if args.official_repo:
        official = _official_builder()(args.official_repo, args.model, video_size=(args.frames, args.size, args.size))
        official = official.eval().to(args.device)
        vf.load_checkpoint(ours, {k: v.detach().clone() for k, v in official.state_dict().items()})
        with torch.inference_mode():
            diff = (ours(x) - official(x)).abs().max().item()
        print(f"max |logits(ours) - logits(authors)| = {diff:.3g}")

    print(f"{args.model} input {tuple(shape)} on {args.device}, {torch.get_num_threads()} threads, "
          f"{args.warmup} warm-up + {args.repeats} timed forward passes (inference_mode)")
    times = _time([ours] if official is None else [ours, official], x, args.warmup, args.repeats)
    t_ours = times[0]
    print(f"ours:    median {statistics.median(t_ours):.3f} s   runs {', '.join(f'{t:.3f}' for t in t_ours)}")
    if official is not None:
        t_off = times[1]
        print(f"authors: median {statistics.median(t_off):.3f} s   runs {', '.join(f'{t:.3f}' for t in t_off)}")
        print(f"ratio authors/ours = {statistics.median(t_off) / statistics.median(t_ours):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
