"""``videoformers models``: the registry as a table of params and GFLOPs, measured vs paper."""

from __future__ import annotations

import argparse
import json

from videoformers.analysis import build_on_meta, count_flops, count_params
from videoformers.registry import create_model, get_model_card, list_models


def model_rows(pattern: str | None = None, flops: bool = True) -> list[dict]:
    """One row per registered model: measured params/GFLOPs next to the paper's numbers."""
    from videoformers.checkpoints.zoo import list_pretrained

    releases = list_pretrained()
    rows = []
    for name in list_models(pattern):
        card = get_model_card(name)
        model = build_on_meta(lambda: create_model(name))
        exclude = tuple(getattr(model, "classifier_prefixes", ("head.",))) if card.params_exclude_head else ()
        params = count_params(model, exclude=exclude) / 1e6
        gflops = count_flops(model, (1, *card.input_size)) if flops else None
        rows.append({
            "name": name,
            "family": card.family,
            "input": "x".join(str(s) for s in card.input_size[1:]),
            "params_m": round(params, 3),
            "paper_params_m": card.paper_params_m,
            "gflops": None if gflops is None else round(gflops, 3),
            "paper_gflops": card.paper_gflops,
            "weights": sum(r.startswith(name + ".") for r in releases),  # catalogued releases (list_pretrained)
        })
    return rows


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _pct(v, ref) -> str:
    return "-" if v is None or not ref else f"{100 * (v - ref) / ref:+.1f}%"


def pretrained_rows(pattern: str | None = None) -> list[dict]:
    """One row per catalogued release (``videoformers.list_pretrained``)."""
    from videoformers.checkpoints.zoo import get_pretrained_cfg, list_pretrained

    rows = []
    for name in list_pretrained(pattern if pattern is None or "." in pattern or "*" in pattern else pattern + ".*"):
        p = get_pretrained_cfg(name)
        rows.append({"name": name, "host": f"hf:{p.hf_repo}/{p.filename}" if p.hf_repo else p.url,
                     "urls": list(p.urls), "layout": p.layout, "init": p.init, "file_size": p.file_size,
                     "classes": p.num_classes, "labels": p.labels, "top1": p.metrics.get("top1"),
                     "hash": p.sha256 or p.sha256_prefix, "default": p.default, "test": _test_pipeline(p),
                     "license": p.license, "paper": p.paper, "source": p.source})
    return rows


def _test_pipeline(p) -> str:
    """``32x2 dense, short side 224, 4x1 views, 224 px`` (video) or ``224 px`` (image)."""
    if p.init:
        return f"image encoder, {p.img_size} px"
    pipe = p.test_pipeline
    if pipe is None:
        return f"{p.img_size} px (short side {p.test_short_side})"
    clips, crops = p.test_views
    return (f"{pipe.num_frames}x{pipe.frame_interval} {pipe.sampling}, short side {pipe.short_side}, "
            f"{clips}x{crops} views, {pipe.img_size} px")


def _size(n: int | None) -> str:
    return "-" if not n else f"{n / 1e6:.1f} MB"


def zoo_markdown() -> str:
    """``docs/model_zoo.md``: every catalogued release with its host, classes, labels, reported top-1, the
    source of its facts and what was verified (written by ``videoformers models --pretrained --markdown``)."""
    from videoformers.checkpoints.zoo import get_pretrained_cfg, list_pretrained

    out = ["# Model zoo: the authors' released weights by name", "",
           "`create_model(\"<model>.<tag>\", pretrained=True)` fetches, checks (SHA-256 prefix where known), converts",
           "and loads a release, and attaches its class names and test preprocessing. `*` marks the release",
           "`pretrained=True` takes for a model name without a tag. Written by",
           "`videoformers models --pretrained --markdown`; `tests/test_zoo.py` checks it lists the catalogue.", "",
           "Nothing could be downloaded where this library is developed: hosts, file names, hash prefixes,",
           "classes, sampling and accuracies are read from the cited files; the layouts are the ones the",
           "converters and parity tests cover. Label map `-`: the file's class order is not shipped here",
           "(predict then guesses from the class count, with a warning).", "",
           "Layout: the file's key layout (`authors`, `mmaction2`, `hf`, `ours`), converted on load. `init`: an",
           "image encoder a video model starts from (`load_image_pretrained`; the video modules keep their",
           "initialisation). A Kinetics-710 release loaded with `num_classes=400/600/700` keeps its head's rows",
           "of that set (UniFormerV2 App. F). Test pipeline: frames x interval, sampling, short side, clips x",
           "crops, crop size.", "",
           "| release | host | layout | size | classes | labels | top-1 (reported) | test pipeline | source |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name in list_pretrained():
        p = get_pretrained_cfg(name)
        if p.hf_repo:
            host = f"HF `{p.hf_repo}` `{p.filename}`"
        elif "drive.usercontent.google.com" in p.url:
            host = f"[Google Drive]({p.url}) as `{p.file_name}`"
        else:
            host = f"[{p.file_name}]({p.url})"
        top1 = p.metrics.get("top1")
        layout = p.layout + (f" ({p.init} init)" if p.init else "")
        out.append(f"| `{name}`{' *' if p.default else ''} | {host} | {layout} | {_size(p.file_size)} | "
                   f"{p.num_classes or '-'} | {p.labels or '-'} | {'-' if top1 is None else top1} | "
                   f"{_test_pipeline(p)} | {p.source.replace('|', '/')} |")
    out += ["", "## What was verified, per release", ""]
    for name in list_pretrained():
        out.append(f"- `{name}`: {get_pretrained_cfg(name).verified.replace('|', '/')}")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.pretrained and args.markdown:
        print(zoo_markdown(), end="")
        return 0
    if args.pretrained:
        rows = pretrained_rows(args.pattern)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'release':<52} {'classes':>7} {'top1':>6} {'size':>9} {'layout':<9} {'labels':<22} host")
        for r in rows:
            print(f"{r['name'] + (' *' if r['default'] else ''):<52} {r['classes'] or '':>7} {_fmt(r['top1'], '.1f'):>6} "
                  f"{_size(r['file_size']):>9} {r['layout']:<9} {r['labels'] or '-':<22} {r['host']}")
        print("\n* the release pretrained=True takes. Sources and what was verified: docs/model_zoo.md, "
              "videoformers.get_pretrained_cfg(name).")
        return 0
    rows = model_rows(args.pattern, flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (f"{'model':<38} {'input':>10} {'params(M)':>10} {'paper':>8} {'diff':>6} "
              f"{'GFLOPs':>9} {'paper':>8} {'diff':>6} {'weights':>7}")
    print(header)
    print("-" * len(header))
    notes = []
    for r in rows:
        mark = ""
        card_notes = get_model_card(r["name"]).notes
        if card_notes:
            notes.append(f"[{len(notes) + 1}] {r['name']}: {card_notes}")
            mark = f" [{len(notes)}]"
        print(f"{r['name']:<38} {r['input']:>10} {_fmt(r['params_m'], '.2f'):>10} {_fmt(r['paper_params_m'], '.1f'):>8} "
              f"{_pct(r['params_m'], r['paper_params_m']):>6} {_fmt(r['gflops'], '.1f'):>9} "
              f"{_fmt(r['paper_gflops'], '.1f'):>8} {_pct(r['gflops'], r['paper_gflops']):>6} "
              f"{r['weights'] or '-':>7}{mark}")
    if notes:
        print("\n" + "\n".join(notes))
    print("\nGFLOPs: 10^9 multiply-adds per view (fvcore convention), counted on the meta device "
          + ("" if not args.no_flops else "(skipped: --no-flops) ")
          + "; params include the classifier unless the paper excludes it. weights: released checkpoints by "
          "name (videoformers models --pretrained NAME).")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    register_download(sub)
    p = sub.add_parser("models", help="list registered models with params and GFLOPs (measured vs paper)")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'uniformer*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-flops", action="store_true", help="skip FLOP counting (faster)")
    p.add_argument("--pretrained", action="store_true", help="list the catalogued released weights instead")
    p.add_argument("--markdown", action="store_true", help="with --pretrained: the docs/model_zoo.md table")
    p.set_defaults(func=run)


def run_download(args: argparse.Namespace) -> int:
    from videoformers.checkpoints.zoo import download, get_pretrained_cfg, list_pretrained

    names = []
    for pat in args.names:
        found = list_pretrained(pat) if any(c in pat for c in "*?[") else [get_pretrained_cfg(pat).name]
        if not found:
            raise ValueError(f"no released weights match {pat!r}")
        names += found
    failed = 0
    for n in names:
        try:
            print(f"{n}: {download(get_pretrained_cfg(n), progress=not args.no_progress)}")
        except OSError as e:
            failed += 1
            print(f"{n}: ERROR {e}")
    return 1 if failed else 0


def register_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch released weights into the cache (for machines without network)")
    p.add_argument("names", nargs="+", metavar="NAME", help="model.tag names or patterns ('uniformer_small.*')")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_download)
