"""``videoformers pose``: top-down keypoints on an image, drawn as a skeleton (UniFormer TPAMI Sec. 6.5).

    videoformers pose IMAGE --model NAME [--checkpoint FILE] [--boxes "x,y,w,h;x,y,w,h"] --out OUT.png
                      [--json OUT.json] [--input-size W,H] [--no-flip] [--override KEY=VALUE]

Each person box (the whole image when none is given) is cropped as in evaluation: grown to the model's
aspect ratio, padded by 1.25, warped to the input size; the heatmaps (averaged with the flipped crop's
unless ``--no-flip``) are decoded by argmax + quarter offset and mapped back to the image
(:mod:`videoformers.data.keypoints`). The PNG shows the image with every box, limb and keypoint; joints
scoring below ``--threshold`` are left out of the drawing (not of the JSON). ``--json`` writes
``[{"box": [x, y, w, h], "keypoints": [[x, y, score], ...], "names": [...]}, ...]``.

``--checkpoint`` takes a training checkpoint of ``videoformers train`` (its recorded model, overrides and
``pose.input_size``) or any layout ``videoformers.load_checkpoint`` reads (with ``--model``); without it the
model is untrained (for trying the tool only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

__all__ = ["predict_keypoints", "draw_pose", "parse_boxes", "register"]


def parse_boxes(text: str | None) -> list[tuple[float, float, float, float]]:
    """``"x,y,w,h;x,y,w,h"`` -> boxes; ``None``/empty -> ``[]``."""
    if not text:
        return []
    boxes = []
    for part in text.replace(" ", "").split(";"):
        if not part:
            continue
        vals = part.split(",")
        try:
            box = tuple(float(v) for v in vals)
        except ValueError:
            box = ()
        if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"--boxes: {part!r} is not x,y,w,h with positive w and h")
        boxes.append(box)
    return boxes


@torch.no_grad()
def predict_keypoints(model: torch.nn.Module, image: np.ndarray, boxes, input_size=(192, 256),
                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), flip: bool = True,
                      flip_pairs=None) -> list[np.ndarray]:
    """``(K, 3)`` keypoints ``(x, y, score)`` in image pixels for each box of an RGB ``image``."""
    import cv2

    from videoformers.data.keypoints import (
        COCO_FLIP_PAIRS, affine_matrix, box_to_center_size, decode_heatmaps, flip_back, heatmap_to_image,
    )

    pairs = COCO_FLIP_PAIRS if flip_pairs is None else flip_pairs
    w_in, h_in = int(input_size[0]), int(input_size[1])
    m_, s_ = np.asarray(mean, np.float32).reshape(3, 1, 1), np.asarray(std, np.float32).reshape(3, 1, 1)
    crops, centers, sizes = [], [], []
    for box in boxes:
        c, s = box_to_center_size(box, w_in / h_in)
        crop = cv2.warpAffine(image, affine_matrix(c, s, 0.0, (w_in, h_in)), (w_in, h_in), flags=cv2.INTER_LINEAR)
        crops.append((crop.transpose(2, 0, 1).astype(np.float32) / 255.0 - m_) / s_)
        centers.append(c)
        sizes.append(s)
    if not crops:
        return []
    device = next(model.parameters()).device
    x = torch.from_numpy(np.stack(crops)).to(device)
    hm = model(x).float()
    if flip:
        hm = (hm + flip_back(model(x.flip(-1)).float(), pairs)) * 0.5
    coords, scores = decode_heatmaps(hm)
    hm_size = (hm.shape[-1], hm.shape[-2])
    xy = heatmap_to_image(coords, np.stack(centers), np.stack(sizes), np.zeros(len(crops)), (w_in, h_in), hm_size)
    return [np.concatenate([xy[i], scores[i][:, None]], axis=1) for i in range(len(crops))]


def draw_pose(image: np.ndarray, boxes, keypoints, threshold: float = 0.2) -> np.ndarray:
    """The RGB image with boxes (white), COCO limbs (left warm, right cool) and keypoints drawn on a copy."""
    import cv2

    from videoformers.data.keypoints import COCO_KEYPOINTS, COCO_SKELETON

    out = np.ascontiguousarray(image.copy())
    th = max(1, round(max(out.shape[:2]) / 200))
    for box, kp in zip(boxes, keypoints):
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), 1)
        k = len(kp)
        for a, b in COCO_SKELETON if k == len(COCO_KEYPOINTS) else ():
            if kp[a, 2] < threshold or kp[b, 2] < threshold:
                continue
            na, nb = COCO_KEYPOINTS[a], COCO_KEYPOINTS[b]
            col = (255, 128, 0) if "left" in na and "left" in nb else (0, 160, 255) if "right" in na and "right" in nb \
                else (0, 255, 0)
            cv2.line(out, (int(kp[a, 0]), int(kp[a, 1])), (int(kp[b, 0]), int(kp[b, 1])), col, th + 1, cv2.LINE_AA)
        for j in range(k):
            if kp[j, 2] >= threshold:
                cv2.circle(out, (int(kp[j, 0]), int(kp[j, 1])), th + 1, (255, 0, 0), -1, cv2.LINE_AA)
    return out


def _load(args):
    """(model, input_size (W, H), mean, std) from the arguments."""
    from videoformers.registry import create_model

    from .convert import parse_overrides

    ov = parse_overrides(args.override)
    input_size = None
    mean = std = None
    if args.checkpoint:
        from .convert import inspect_checkpoint, load_model

        obj, info = inspect_checkpoint(args.checkpoint)
        cfg = obj.get("config") if isinstance(obj, dict) else None
        if isinstance(cfg, dict):
            input_size = (cfg.get("pose") or {}).get("input_size")
            data = cfg.get("data") or {}
            mean, std = data.get("mean"), data.get("std")
        model, _ = load_model(args.checkpoint, args.model, **ov)
    else:
        if not args.model:
            raise ValueError("pose: give --model NAME (and --checkpoint FILE for trained weights)")
        print(f"pose: no --checkpoint: {args.model} has random weights (useful for trying the tool only)",
              file=sys.stderr)
        model = create_model(args.model, **ov)
    card = getattr(model, "model_card", None)
    if getattr(card, "task", "pose") != "pose":
        raise ValueError(f"{getattr(model, 'model_name', args.model)} is a {card.task} model, not a pose model "
                         "(videoformers.list_models(task=\"pose\") lists them)")
    if args.input_size:
        try:
            input_size = tuple(int(v) for v in args.input_size.split(","))
        except ValueError:
            input_size = ()
        if len(input_size) != 2:
            raise ValueError(f"--input-size {args.input_size!r} is not W,H")
    if input_size is None:
        h, w = getattr(model, "img_size", None) or (card.input_size[-2:] if card else (256, 192))
        input_size = (w, h)
    mean = mean or (card.mean if card else (0.485, 0.456, 0.406))
    std = std or (card.std if card else (0.229, 0.224, 0.225))
    return model.eval(), tuple(int(v) for v in input_size), mean, std


def run(args: argparse.Namespace) -> int:
    import cv2

    path = Path(args.image)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"pose: cannot read {path} as an image")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    boxes = parse_boxes(args.boxes) or [(0.0, 0.0, float(image.shape[1]), float(image.shape[0]))]
    model, input_size, mean, std = _load(args)
    if args.device:
        model.to(args.device)
    kps = predict_keypoints(model, image, boxes, input_size, mean, std, flip=not args.no_flip,
                            flip_pairs=None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    drawn = draw_pose(image, boxes, kps, args.threshold)
    if not cv2.imwrite(str(out if out.suffix else out.with_suffix(".png")), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
        raise OSError(f"pose: could not write {out}")
    if args.json:
        from videoformers.data.keypoints import COCO_KEYPOINTS

        names = list(COCO_KEYPOINTS) if all(len(k) == len(COCO_KEYPOINTS) for k in kps) else None
        Path(args.json).write_text(json.dumps([{"box": list(b), "keypoints": np.round(k, 3).tolist(), "names": names}
                                               for b, k in zip(boxes, kps)], indent=1))
    print(f"wrote {out} ({len(boxes)} person{'s' if len(boxes) != 1 else ''})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pose", help="top-down keypoints of the people in an image, drawn as skeletons (PNG)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="image file")
    p.add_argument("--model", default=None, help="registered pose model (videoformers.list_models(task=\"pose\"))")
    p.add_argument("--checkpoint", default=None, help="trained weights (a videoformers train checkpoint, or any layout)")
    p.add_argument("--boxes", default=None, metavar="X,Y,W,H;...", help="person boxes in pixels (default: whole image)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--json", default=None, help="also write the keypoints as JSON")
    p.add_argument("--input-size", default=None, metavar="W,H", help="crop size (default: the checkpoint's / model's)")
    p.add_argument("--no-flip", action="store_true", help="no flip test")
    p.add_argument("--threshold", type=float, default=0.2, help="joints scoring below this are not drawn")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="builder override (repeatable)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=run)
