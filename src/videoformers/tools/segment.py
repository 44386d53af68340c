"""``videoformers segment``: semantic segmentation of an image, written as an overlay PNG.

    videoformers segment IMAGE --model NAME [--checkpoint FILE] --out OUT.png [--label-out LABEL.png]
                         [--num-classes K] [--alpha 0.5] [--mode whole|slide] [--device cpu]

The model is a registered segmentation model (``videoformers.list_models(task="segmentation")``, e.g.
``uniformer_small_semfpn``). A training checkpoint of ``videoformers train`` (``checkpoint_best.pth``)
brings its own model overrides, classes, normalisation and test settings (``seg:`` section of its recipe);
with another file, or none (random weights: a smoke test), ``--num-classes`` sets the classes.
The image is resized as the recipe's test pipeline says (keep ratio to ``seg.img_scale``), the scores are
resized back to the image, and ``OUT.png`` shows the class colours blended over the image with a legend of
the classes present; ``--label-out`` also writes the class-id map as a single-channel PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["segment_image", "palette", "overlay", "register", "run"]


def palette(num_classes: int) -> np.ndarray:
    """``(K, 3)`` uint8 colours: the PASCAL VOC bit-interleaving scheme, distinct for every class id."""
    out = np.zeros((num_classes, 3), np.uint8)
    for k in range(num_classes):
        c, r, g, b = k + 1, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[k] = (r, g, b)
    return out


def overlay(image: np.ndarray, pred: np.ndarray, classes: Sequence[str], alpha: float = 0.5):
    """A PIL image: ``image`` (H, W, 3 uint8) with the class colours of ``pred`` (H, W) blended in, and
    a legend strip (one swatch per class present, largest first) below it."""
    from PIL import Image, ImageDraw

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    pal = palette(len(classes))
    blend = (image.astype(np.float32) * (1 - alpha) + pal[pred].astype(np.float32) * alpha).astype(np.uint8)
    H, W = pred.shape
    ids, counts = np.unique(pred, return_counts=True)
    present = [int(i) for i in ids[np.argsort(-counts)]]
    row_h = 14
    per_row = max(1, W // 120)
    rows = (len(present) + per_row - 1) // per_row
    canvas = Image.new("RGB", (W, H + rows * row_h + 4), (255, 255, 255))
    canvas.paste(Image.fromarray(blend), (0, 0))
    d = ImageDraw.Draw(canvas)
    for n, k in enumerate(present):
        x, y = (n % per_row) * 120 + 2, H + 2 + (n // per_row) * row_h
        d.rectangle([x, y + 2, x + 10, y + 12], fill=tuple(int(v) for v in pal[k]))
        d.text((x + 14, y), str(classes[k])[:16], fill=(0, 0, 0))
    return canvas


def _load(model_name: str | None, checkpoint: str | None, num_classes: int | None):
    from videoformers.checkpoints import load_checkpoint, read_checkpoint
    from videoformers.data.config import SegConfig
    from videoformers.registry import create_model, get_model_card

    obj, cfgd = None, {}
    if checkpoint:
        obj, _ = read_checkpoint(checkpoint)
        if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
            cfgd = obj["config"]
    mcfg = cfgd.get("model", {})
    name = model_name or mcfg.get("name")
    if not name:
        raise ValueError("segment: --model NAME is needed (the checkpoint does not record its model)")
    card = get_model_card(name)
    if card.task != "segmentation":
        raise ValueError(f"segment: {name} is a {card.task} model; see videoformers.list_models(task='segmentation')")
    overrides = dict(mcfg.get("overrides") or {}) if mcfg.get("name") in (None, name) else {}
    k = num_classes or (obj.get("num_classes") if isinstance(obj, dict) else None) or card.num_classes
    model = create_model(name, **{**overrides, "num_classes": int(k)})
    if obj is not None:
        load_checkpoint(model, obj, strict=True)
    classes = list(obj.get("classes") or []) if isinstance(obj, dict) else []
    if len(classes) != int(k):
        classes = [str(i) for i in range(int(k))]
    seg = SegConfig(**{f: v for f, v in (cfgd.get("seg") or {}).items() if f in SegConfig.__dataclass_fields__})
    data = cfgd.get("data") or {}
    mean, std = data.get("mean") or card.mean, data.get("std") or card.std
    return model.eval(), classes, seg, mean, std


@torch.no_grad()
def segment_image(model, image: np.ndarray, seg_cfg, mean, std, device: str = "cpu") -> np.ndarray:
    """Class ids ``(H, W)`` of an RGB uint8 image under ``seg_cfg``'s test settings."""
    from videoformers.data.segmentation import _normalize
    from videoformers.engine.tasks_segmentation import inference

    x = _normalize(image.astype(np.float32), mean, std)[None].to(device)
    probs = inference(model.to(device).eval(), x, int(model.num_classes), image.shape[:2], seg_cfg)
    return probs.argmax(1)[0].cpu().numpy().astype(np.int64)


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    path = Path(args.image)
    if not path.is_file():
        raise FileNotFoundError(f"segment: no image {path}")
    try:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - say which file is not an image
        raise ValueError(f"segment: cannot read {path} as an image ({type(e).__name__}: {e})") from None
    model, classes, seg, mean, std = _load(args.model, args.checkpoint, args.num_classes)
    if args.mode:
        seg.test_mode = args.mode
    pred = segment_image(model, image, seg, mean, std, args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    overlay(image, pred, classes, args.alpha).save(out)
    if args.label_out:
        Path(args.label_out).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred.astype(np.uint8 if len(classes) <= 256 else np.uint16)).save(args.label_out)
    ids, counts = np.unique(pred, return_counts=True)
    summary = {"image": str(path), "overlay": str(out), "label": args.label_out,
               "classes": {classes[int(i)]: round(float(c) / pred.size, 4) for i, c in zip(ids, counts)}}
    print(json.dumps(summary), file=sys.stdout)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="semantic segmentation of an image -> overlay PNG",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="an image file (JPEG, PNG, ...)")
    p.add_argument("--model", default=None, help="a registered segmentation model (default: the checkpoint's)")
    p.add_argument("--checkpoint", default=None, help="weights: a training checkpoint or a state dict")
    p.add_argument("--out", required=True, help="overlay PNG to write")
    p.add_argument("--label-out", default=None, help="also write the class-id map (single-channel PNG)")
    p.add_argument("--num-classes", type=int, default=None, help="classes (default: the checkpoint's or the card's)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the class colours in the overlay")
    p.add_argument("--mode", choices=("whole", "slide"), default=None, help="inference mode (default: the recipe's)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)
