"""Training memory (activations kept for backward, peak of a step) of our models and the authors',
measured on the ``meta`` device: the training step runs under a live-storage tracker
(:func:`videoformers.analysis.training_memory`) without computing or allocating anything, so the
32-frame UniFormer-B and UniFormerV2-L of issue #10 take seconds on a laptop. On CPU tensors the
same tracker gives the same bytes (tests/test_analysis_memory.py checks meta == CPU).

    python benchmarks/activation_memory.py                                   # ours only
    python benchmarks/activation_memory.py --uniformer-repo /tmp/ref_uniformer --uniformerv2-repo /tmp/ref_uv2

Batch 1, fp32, MiB. "activations" = tensors alive at the end of the forward pass; "peak" = the most
alive at once during forward + backward above weights and input (gradients included). For the
authors' models gradient checkpointing is switched on through their own ``use_checkpoint`` /
``checkpoint_num`` attributes (all blocks), as their configs do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import videoformers as vf  # noqa: E402
from videoformers.analysis import build_on_meta, training_memory  # noqa: E402

CASES = [  # (our name, frames, size, authors' loader module, authors' name)
    ("uniformer_small", 16, 224, "uniformer_v1", "uniformer_small"),
    ("uniformer_base", 32, 224, "uniformer_v1", "uniformer_base"),
    ("uniformerv2_b16", 8, 224, "uniformerv2", "uniformerv2_b16"),
    ("uniformerv2_l14", 32, 224, "uniformerv2", "uniformerv2_l14"),
    ("dualformer_tiny", 32, 224, "dualformer", "dualformer_tiny"),
]


def _authors_checkpointing(model: torch.nn.Module) -> bool:
    found = False
    for m in model.modules():
        if hasattr(m, "use_checkpoint") and hasattr(m, "checkpoint_num"):
            m.use_checkpoint = True
            n = m.checkpoint_num
            m.checkpoint_num = [10**6] * len(n) if isinstance(n, (list, tuple)) else [10**6]
            found = True
    return found


def _row(who: str, name: str, ckpt: str, r) -> str:
    return (f"{who:<8} {name:<18} {'x'.join(map(str, r.input_shape[2:])):<10} {ckpt:<13} "
            f"{r.activations:10.0f} {r.peak:10.0f} {r.params:8.0f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uniformer-repo", help="clone of Sense-X/UniFormer")
    p.add_argument("--uniformerv2-repo", help="clone of OpenGVLab/UniFormerV2")
    p.add_argument("--dualformer-repo", help="clone of sail-sg/dualformer")
    p.add_argument("--models", nargs="*", help="subset of our names")
    args = p.parse_args(argv)
    repos = {"uniformer_v1": args.uniformer_repo, "uniformerv2": args.uniformerv2_repo, "dualformer": args.dualformer_repo}
    print(f"{'':<8} {'model':<18} {'TxHxW':<10} {'checkpoint':<13} {'act. MiB':>10} {'peak MiB':>10} {'weights':>8}")
    for name, frames, size, loader, official in CASES:
        if args.models and name not in args.models:
            continue
        shape = (1, 3, frames, size, size)
        ours = build_on_meta(lambda: vf.create_model(name, num_frames=frames, img_size=size, num_classes=400))
        print(_row("ours", name, "none", training_memory(ours, shape)))
        print(_row("ours", name, "every block", training_memory(ours, shape, grad_checkpointing=True)))
        repo = repos[loader]
        if not repo:
            continue
        build = __import__(f"benchmarks.official.{loader}", fromlist=["build_official"]).build_official
        theirs = build(repo, official, num_classes=400, num_frames=frames, img_size=size)
        print(_row("authors", name, "none", training_memory(theirs, shape)))
        if _authors_checkpointing(theirs):
            try:
                print(_row("authors", name, "every block", training_memory(theirs, shape)))
            except Exception as e:  # their reentrant checkpoint on meta
                print(f"authors  {name:<18} every block: not measurable ({type(e).__name__}: {e})"[:160])
        del theirs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
