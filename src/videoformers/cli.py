"""``videoformers`` command line.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module sets
``func`` on its parser. Modules are imported lazily by name so that a missing optional
dependency of one command does not break the others.
"""

from __future__ import annotations

import argparse
import os
import importlib
import sys

# (module path, commands it registers) -- add a line here to add a command module.
COMMAND_MODULES: list[str] = [
    "videoformers.tools.models_cmd",
    "videoformers.data.prepare",
    "videoformers.engine.cli",
    "videoformers.tools.predict",
    "videoformers.tools.convert",
    "videoformers.tools.export",
    "videoformers.tools.bench",
    "videoformers.tools.cam",
    "videoformers.tools.extract",
    "videoformers.tools.pose",
    "videoformers.tools.segment",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videoformers",
        description="Efficient video transformers: UniFormer, UniFormerV2, ViViT, DualFormer.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name and (e.name == mod_name or mod_name.startswith(e.name + ".")):
                continue  # command module not present in this build
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `videoformers eval CONFIG --model X key=value`: key=value pairs after an option are still overrides
    if extra and isinstance(getattr(args, "overrides", None), list) and all(
            "=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line a user can act on; VIDEOFORMERS_DEBUG=1 for the traceback
        if os.environ.get("VIDEOFORMERS_DEBUG", "0") not in ("", "0"):
            raise
        kind = "" if isinstance(e, (ValueError, FileNotFoundError, OSError)) else f"{type(e).__name__}: "
        print(f"error: {kind}{e}", file=sys.stderr)
        if kind:
            print("(VIDEOFORMERS_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
