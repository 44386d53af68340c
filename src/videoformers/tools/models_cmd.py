"""``videoformers models``: the registry as a table of params and GFLOPs, measured vs paper."""

from __future__ import annotations

import argparse
import json

from videoformers.analysis import build_on_meta, count_flops, count_params
from videoformers.registry import create_model, get_model_card, list_models


def model_rows(pattern: str | None = None, flops: bool = True) -> list[dict]:
    """One row per registered model: measured params/GFLOPs next to the paper's numbers."""
    rows = []
    for name in list_models(pattern):
        card = get_model_card(name)
        model = build_on_meta(lambda: create_model(name))
        exclude = tuple(getattr(model, "head_param_prefixes", ("head.",))) if card.params_exclude_head else ()
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
        })
    return rows


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _pct(v, ref) -> str:
    return "-" if v is None or not ref else f"{100 * (v - ref) / ref:+.1f}%"


def run(args: argparse.Namespace) -> int:
    rows = model_rows(args.pattern, flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (f"{'model':<38} {'input':>10} {'params(M)':>10} {'paper':>8} {'diff':>6} "
              f"{'GFLOPs':>9} {'paper':>8} {'diff':>6}")
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
              f"{_fmt(r['paper_gflops'], '.1f'):>8} {_pct(r['gflops'], r['paper_gflops']):>6}{mark}")
    if notes:
        print("\n" + "\n".join(notes))
    print("\nGFLOPs: 10^9 multiply-adds per view (fvcore convention), counted on the meta device; "
          "params include the classifier unless the paper excludes it.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models with params and GFLOPs (measured vs paper)")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'uniformer*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-flops", action="store_true", help="skip FLOP counting (faster)")
    p.set_defaults(func=run)
