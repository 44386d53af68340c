"""``videoformers train | eval | demo | recipes``.

    videoformers train CONFIG [key=value ...]                 CONFIG: a YAML path or a recipe name
    videoformers eval CONFIG checkpoint=PATH [key=value ...]   (or --model NAME.tag: released weights)
    videoformers demo [--output-dir DIR] [--cam [--cam-only]] the whole pipeline on synthetic data, CPU
                                                              (--cam: at 128 px, with Grad-CAM pictures)
    videoformers recipes [NAME]                               list the shipped recipes / print one

Overrides are dotted ``section.key=value`` pairs (``data.num_frames=8``, ``optim.lr=1e-3``,
``model.overrides.depth=[1,1,1,1]``); an unknown key or a wrong type is an error naming the key
and the valid ones. Under ``torchrun --nproc_per_node N -m videoformers train ...`` the same
command trains with DDP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .run import train

    from videoformers.data import BrokenDataError

    cfg = load_config(args.config, args.overrides)
    try:
        summary = train(cfg)
    except BrokenDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    if summary.get("signal"):
        return 128 + int(summary["signal"])  # as a shell reports a process killed by it: `train && eval` stops
    m = summary.get("metrics") or {}
    if m:
        from .tasks import task_for

        keys = [k for k in task_for(cfg).logged_metrics if k != "loss"]
        print(json.dumps({k: m[k] for k in keys if k in m}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .config import load_config
    from .run import eval_output_dir, evaluate_checkpoint

    overrides = list(args.overrides)
    if args.model:  # released weights by name: that model, those weights
        from videoformers.checkpoints.zoo import list_pretrained, split_name

        if args.model not in list_pretrained():
            raise SystemExit(f"eval: --model {args.model} names no released weights; see videoformers models --pretrained")
        overrides += [f"model.name={split_name(args.model)[0]}", f"eval.checkpoint={args.model}"]
    if args.output_dir:
        overrides.append(f"eval.output_dir={args.output_dir}")
    cfg = load_config(args.config, overrides)
    m = evaluate_checkpoint(cfg)
    if m and int(os.environ.get("RANK", "0")) == 0:  # under torchrun: one line, not one per process
        from .tasks import task_for

        task = task_for(cfg)
        views = f" x {m['num_views']} views" if "num_views" in m else ""
        mca = f"  mean class acc {m['mean_class_acc']:.2f}" if m.get("mean_class_acc") is not None else ""
        print(f"{task.describe(m)}{mca}  ({m['num_samples']} {task.sample_unit}{views}) -> "
              f"{eval_output_dir(cfg) / 'metrics.json'}")
    return 0


def _recipes(args: argparse.Namespace) -> int:
    from .config import dump_config, list_recipes, load_config, recipe_path

    if args.name:
        if args.raw:
            print(recipe_path(args.name).read_text(), end="")
            return 0
        desc = list_recipes().get(args.name, "")
        print(f"# {args.name}: {desc}\n# resolved (bases merged, defaults filled); --raw prints the file with its comments")
        print(dump_config(load_config(args.name)), end="")
        return 0
    recipes = list_recipes()
    width = max(len(n) for n in recipes) if recipes else 10
    for name, desc in recipes.items():
        print(f"{name:<{width}}  {desc}")
    print("\nvideoformers recipes NAME prints one; videoformers train NAME key=value ... trains it.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(output_dir=args.output_dir, data_dir=args.data_dir, overrides=args.overrides,
                      quick=args.quick, cam=args.cam or args.cam_only, cam_only=args.cam_only)
    return 0 if result.get("ok", True) else 1


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("train", help="train a model from a recipe or YAML config (torchrun for DDP)",
                       description=__doc__, formatter_class=fmt)
    p.add_argument("config", help="YAML path or recipe name (videoformers recipes)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. data.train_list=train.txt optim.lr=1e-3")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="multi-view evaluation of a checkpoint (metrics.json, predictions, confusion matrix)",
                       description=__doc__, formatter_class=fmt)
    p.add_argument("config", help="YAML path or recipe name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="checkpoint=PATH and other overrides")
    p.add_argument("--model", default=None, metavar="NAME.TAG",
                   help="evaluate released weights by name (fetched and cached) instead of checkpoint=PATH")
    p.add_argument("--output-dir", default=None,
                   help="where metrics.json, predictions.csv and the confusion matrix go "
                        "(default: <train.output_dir>/eval/<split>-<checkpoint>/)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("demo", help="generate a synthetic temporal dataset, train a small model on CPU, evaluate, report",
                       description="End to end in minutes on a laptop CPU, with no download: generates the synthetic "
                                   "temporal dataset (if absent), trains the 'demo' recipe, evaluates it, checks that "
                                   "shuffling the frames drops accuracy to chance and writes report.md.")
    p.add_argument("--output-dir", default=None,
                   help="where everything is written (default: runs/demo, or runs/demo_cam with --cam)")
    p.add_argument("--data-dir", default=None,
                   help="synthetic dataset location (default: ~/.cache/videoformers/synthetic_temporal, "
                        "or .../synthetic_cam with --cam)")
    p.add_argument("--quick", action="store_true", help="a much shorter run (smoke test; accuracy is not the goal)")
    p.add_argument("--cam", action="store_true",
                   help="the demo at 128 px on moving shapes with a static distractor (recipe demo_cam, ~8 minutes "
                        "on 2 cores), then Grad-CAM on every validation clip: cam_grid.png, a GIF, and how much of the "
                        "map's mass falls on the moving shape (report.md, metrics.json demo.cam)")
    p.add_argument("--cam-only", action="store_true",
                   help="redo only the Grad-CAM step (pictures, table, report.md) of a finished --cam run in "
                        "--output-dir, without training (implies --cam)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the demo recipe (demo_cam with --cam)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("recipes", help="list the shipped training recipes (or print one)")
    p.add_argument("name", nargs="?", default=None, help="print this recipe, resolved")
    p.add_argument("--raw", action="store_true", help="print the recipe file itself (with its comments and sources)")
    p.set_defaults(func=_recipes)
