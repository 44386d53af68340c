"""``videoformers cam``: Grad-CAM on the last stage of a video model, as frame overlays and a GIF.

    videoformers cam VIDEO --model NAME --checkpoint FILE --out DIR [--class LABEL|INDEX] [--labels ...]
                     [--alpha 0.5] [--display-size 256] [--fps 8]

Grad-CAM (Selvaraju et al., ICCV 2017) on a spatio-temporal feature map ``A`` of shape
``(C, t, h, w)``: the weight of channel ``c`` is the mean over ``(t, h, w)`` of the gradient of the
class score (the logit) with respect to ``A_c``; the map is ``ReLU(sum_c weight_c * A_c)``, upsampled
(trilinear) to the clip's ``(T, H, W)`` and min-max scaled to ``[0, 1]`` per clip (over all its
frames, so that frames stay comparable).

The feature map is read through the model contract (``forward_intermediates``, the same for every
family): the last stage's *input* (``position="input"``, the default) -- the output of the stage or
block before it -- or its *output* (``"output"``, with the final norm applied where the family has one):

* UniFormer / H-UniFormer / DualFormer: stage 3's output (stride 16, what stage 4 downsamples and
  reads) | stage 4's output after the final BatchNorm / LayerNorm (stride 32);
* UniFormerV2: the tokens leaving the second-to-last ViT block | the last one (what the global
  UniBlocks read, UniFormerV2 Sec. 3.2), per frame;
* ViViT: the tokens leaving the second-to-last encoder block (of the spatial encoder for Model 2) |
  the last one after the final LayerNorm.

Why the input by default: a last stage of *global* attention (UniFormer's and H-UniFormer's stage 4,
every ViT block) lets every position gather the evidence found anywhere, so the evidence read after
it is spread over the whole clip (and with a classification token the patch tokens after the last
block get no gradient at all). At the stage's input the gradient has passed through that attention
and weighs each position by how much the class score draws on it. How well either map localises
depends on the trained model (``docs/cam.md``): on the synthetic moving-shape task the
``videoformers demo --cam`` model puts 1.75x chance of the map's mass on the moving shape at the input
and at most chance at the output, while the same recipe trained with another seed is at chance at both.

Measuring where a map looks (``videoformers demo --cam``): :func:`motion_mask` marks the moving object
of a clip over a static scene, :func:`mass_on_mask` the fraction of a map's mass that falls on it (a
map that ignores the content gets the mask's area fraction).

Writes ``frame_000.png`` ... (overlays), ``cam.gif`` (the overlays animated), ``montage.png``
(frames above overlays) and ``cam.json`` (the class explained, the top predictions, the settings).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["grad_cam", "CamResult", "feature_maps", "overlay", "save_cam", "save_cam_grid", "cam_video",
           "motion_mask", "mass_on_mask"]


@dataclass
class CamResult:
    cam: torch.Tensor          # (B, T, H, W) min-max scaled to [0, 1] per clip, at the input's resolution
    raw: torch.Tensor          # (B, t, h, w) before upsampling and scaling
    signed: torch.Tensor       # (B, t, h, w) the weighted sum before the ReLU (negative evidence < 0)
    logits: torch.Tensor       # (B, num_classes)
    target: list[int]          # the class explained, per clip


POSITIONS = ("input", "output")


def feature_maps(model: nn.Module, video: torch.Tensor, position: str = "input"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, feature map (B, C, t, h, w))`` of ``model`` on ``video``, the map where Grad-CAM reads
    the last stage (see the module docstring), recorded in the graph of the logits."""
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    card = getattr(model, "model_card", None)
    name = getattr(model, "model_name", type(model).__name__)
    if (card is not None and not card.is_video) or not hasattr(model, "forward_intermediates"):
        raise ValueError(f"Grad-CAM here is for video models with the model contract; {name} is not one")
    index = -2 if position == "input" else -1
    final, (feats,) = model.forward_intermediates(video, indices=[index], norm=position == "output",
                                                  output_fmt="NCTHW")
    return model.forward_head(final), feats


def grad_cam(model: nn.Module, video: torch.Tensor, target: "int | Sequence[int] | None" = None,
             position: str = "input") -> CamResult:
    """Grad-CAM maps of ``model`` for ``video`` ``(B, C, T, H, W)`` (normalised model input).

    ``target``: the class to explain (one int for all clips, one per clip, or ``None`` for each clip's
    top-1 prediction). ``position``: the last stage's ``"input"`` (default) or ``"output"`` feature
    map. The model runs in eval mode; parameters are left untouched.
    """
    if video.dim() != 5:
        raise ValueError(f"grad_cam expects a video batch (B, C, T, H, W), got shape {tuple(video.shape)}")
    from videoformers.models.contract import classifier_is_zero

    if classifier_is_zero(model):
        import warnings

        warnings.warn("the classifier is all zeros (an untrained ViViT head): the class scores do not depend on the "
                      "input and the maps say nothing; load trained weights", stacklevel=2)
    was_training = model.training
    model.eval()
    try:
        x = video.detach().clone().requires_grad_(True)  # a graph even when every parameter is frozen
        with torch.enable_grad():
            logits, feats = feature_maps(model, x, position)
            if not isinstance(logits, torch.Tensor):
                raise ValueError("Grad-CAM needs a single-head classifier")
            if not feats.requires_grad:
                raise RuntimeError("the feature map was not recorded with gradients (frozen backbone?)")
            B = video.shape[0]
            if target is None:
                tgt = logits.argmax(-1).tolist()
            elif isinstance(target, int):
                tgt = [int(target)] * B
            else:
                tgt = [int(t) for t in target]
            if len(tgt) != B or not all(0 <= t < logits.shape[-1] for t in tgt):
                raise ValueError(f"target {target!r} does not fit {B} clips and {logits.shape[-1]} classes")
            score = logits.gather(1, torch.tensor(tgt, device=logits.device)[:, None]).sum()
            grads = torch.autograd.grad(score, feats)[0]
        a = feats.detach().float()
        g = grads.float()
    finally:
        model.train(was_training)
    weights = g.mean(dim=(2, 3, 4), keepdim=True)
    signed = (weights * a).sum(1)                                        # (B, t, h, w)
    raw = F.relu(signed)
    cam = F.interpolate(raw[:, None], size=tuple(video.shape[2:]), mode="trilinear", align_corners=False)[:, 0]
    # Min-max scaling per clip (over all frames, so frames stay comparable), as common Grad-CAM tools do.
    flat = cam.flatten(1)
    lo, hi = flat.amin(1).view(-1, 1, 1, 1), flat.amax(1).view(-1, 1, 1, 1)
    cam = ((cam - lo) / (hi - lo).clamp_min(1e-12)).clamp_(0, 1)
    return CamResult(cam=cam, raw=raw, signed=signed, logits=logits.detach(), target=tgt)


# ------------------------------------------------------------------------------------------------
# Measuring where a map looks
# ------------------------------------------------------------------------------------------------


def motion_mask(frames: torch.Tensor, dilate: int = 4, threshold: float = 60.0) -> torch.Tensor:
    """Where a clip moves: the pixels of ``frames`` ``(T, H, W, C)`` (values on the 0-255 scale) that
    differ from the clip's temporal median by more than ``threshold`` (the absolute difference summed
    over the channels), dilated by ``dilate`` pixels (a square of side ``2 * dilate + 1``). Returns a
    bool ``(T, H, W)`` mask.

    Over a static scene the median is the background, so the mask is the moving object in every
    frame, plus a margin for the map's coarse resolution (a 4x4 last-stage map at 128 px has 32-px
    cells). Where an object covers a pixel in more than half of the frames the median is the object
    and the mask marks the frames it has left: either way the mask stays on the object's path.
    """
    if frames.dim() != 4:
        raise ValueError(f"motion_mask expects frames (T, H, W, C), got shape {tuple(frames.shape)}")
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0, got {dilate}")
    x = frames.float()
    s = x.sort(dim=0).values
    T = x.shape[0]
    median = 0.5 * (s[(T - 1) // 2] + s[T // 2])  # numpy's median: the two middle values averaged
    moving = (x - median).abs().sum(-1) > threshold  # (T, H, W)
    if dilate:
        moving = F.max_pool2d(moving.float()[:, None], 2 * dilate + 1, stride=1, padding=dilate)[:, 0] > 0
    return moving


def mass_on_mask(cam: torch.Tensor, mask: torch.Tensor) -> float:
    """The fraction of the mass of a non-negative map ``cam`` that falls on ``mask`` (same shape, bool).

    A map that ignores the content (uniform) gets ``mask.float().mean()``, the area fraction. An
    all-zero map -- which is what :func:`grad_cam`'s min-max scaling makes of a constant map -- is
    counted as uniform."""
    if cam.shape != mask.shape:
        raise ValueError(f"cam {tuple(cam.shape)} and mask {tuple(mask.shape)} must have the same shape")
    if (cam < 0).any():
        raise ValueError("mass_on_mask expects a non-negative map (e.g. CamResult.cam)")
    m = mask.bool()
    total = float(cam.double().sum())
    if total <= 0:
        return float(m.double().mean())
    return float(cam.double()[m].sum()) / total


# ------------------------------------------------------------------------------------------------
# Pictures
# ------------------------------------------------------------------------------------------------


def overlay(frames: torch.Tensor, cam: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> torch.Tensor:
    """Blend a colour-mapped ``cam`` ``(T, H, W)`` in ``[0, 1]`` over ``frames`` ``(T, H, W, 3)`` uint8."""
    from matplotlib import colormaps

    colours = torch.from_numpy(colormaps[cmap](cam.clamp(0, 1).cpu().numpy())[..., :3]).float() * 255
    out = (1 - alpha) * frames.float() + alpha * colours
    return out.round().clamp(0, 255).to(torch.uint8)


def _resize(frames: torch.Tensor, size: int | None) -> torch.Tensor:
    if not size or min(frames.shape[1:3]) == size:
        return frames
    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    x = frames.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False,
                      antialias=scale < 1)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def save_cam(out_dir: str | os.PathLike, frames: torch.Tensor, cam: torch.Tensor, *, alpha: float = 0.5,
             display_size: int | None = 256, fps: float = 8.0, title: str | None = None,
             montage_dpi: int = 110, png_bits: int = 8) -> dict[str, str]:
    """Write overlays of ``cam`` ``(T, H, W)`` on ``frames`` ``(T, H, W, 3)`` uint8: one PNG per frame,
    an animated GIF and a montage (frames above overlays, 1.6 in per frame at ``montage_dpi``: 80 shows
    the frames at about 128 px). ``png_bits`` < 8 keeps that many bits per channel in the montage (see
    :func:`save_cam_grid`). Returns the written paths."""
    from PIL import Image

    os.makedirs(out_dir, exist_ok=True)
    frames_big = _resize(frames.cpu(), display_size)
    cam_big = F.interpolate(cam[None, None].float().cpu(), size=(cam.shape[0], *frames_big.shape[1:3]),
                            mode="trilinear", align_corners=False)[0, 0]
    over = overlay(frames_big, cam_big, alpha)
    paths: dict[str, str] = {}
    images = [Image.fromarray(f.numpy()) for f in over]
    for t, im in enumerate(images):
        p = os.path.join(out_dir, f"frame_{t:03d}.png")
        im.save(p)
    paths["frames"] = os.path.join(out_dir, "frame_*.png")
    gif = os.path.join(out_dir, "cam.gif")
    images[0].save(gif, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    paths["gif"] = gif
    paths["montage"] = _montage(os.path.join(out_dir, "montage.png"), frames_big, over, title, dpi=montage_dpi,
                                png_bits=png_bits)
    return paths


def _save_figure(fig, path: str | os.PathLike, dpi: int, png_bits: int = 8) -> None:
    """Save a matplotlib figure as an optimised RGB PNG (matplotlib writes RGBA: a fourth channel that is
    opaque everywhere). ``png_bits`` < 8 rounds every channel to ``2 ** png_bits`` levels from 0 to 255
    first (white stays white): the fine noise of the rendered video frames is what PNG compresses worst,
    and at 6 bits (steps of about 4/255) no band is visible in the colour-mapped overlays while the
    file shrinks by about half."""
    import io

    from PIL import Image

    if not 1 <= png_bits <= 8:
        raise ValueError(f"png_bits must be in 1..8, got {png_bits}")
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    buf.seek(0)
    im = Image.open(buf).convert("RGB")
    if png_bits < 8:
        top = (1 << png_bits) - 1
        im = im.point([round(round(v * top / 255) * 255 / top) for v in range(256)] * 3)
    im.save(path, format="PNG", optimize=True)


def _montage(path: str, frames: torch.Tensor, over: torch.Tensor, title: str | None, dpi: int = 110,
             png_bits: int = 8) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    T = frames.shape[0]
    fig, axes = plt.subplots(2, T, figsize=(1.6 * T, 3.6 if title else 3.3), squeeze=False)
    for t in range(T):
        for r, src in enumerate((frames, over)):
            ax = axes[r, t]
            ax.imshow(src[t].numpy())
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, t].set_title(f"frame {t}", fontsize=8)
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("Grad-CAM", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path, dpi, png_bits)
    plt.close(fig)
    return path


def save_cam_grid(path: str | os.PathLike, clips: Sequence[tuple[torch.Tensor, torch.Tensor, str]], *,
                  alpha: float = 0.5, title: str | None = None, dpi: int = 100, num_frames: int | None = None,
                  png_bits: int = 8) -> str:
    """One figure for several clips: for each ``(frames, cam, label)`` -- frames ``(T, H, W, 3)`` uint8,
    cam ``(T, H, W)`` in ``[0, 1]`` -- a row of frames above a row of overlays, ``label`` left of them.

    ``num_frames`` shows that many frames per clip, evenly spaced from the first to the last (all of
    them by default). ``png_bits`` < 8 keeps only that many bits per channel (6: half the file, no
    visible banding); the PNG is written as optimised RGB either way."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not clips:
        raise ValueError("save_cam_grid needs at least one clip")
    T_all = max(int(f.shape[0]) for f, _, _ in clips)
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    T = T_all if num_frames is None else min(num_frames, T_all)
    shown = torch.linspace(0, T_all - 1, T).round().long().tolist() if T > 1 else [0]
    n = len(clips)
    head = 0.05 + 0.14 * (title.count("\n") + 1) if title else 0.0  # inches for the title
    # 1.2 in on the left for the labels, so that few frames do not squeeze the images
    fig, axes = plt.subplots(2 * n, T, figsize=(T * 1.05 + 1.2, 2 * n * 1.08 + head), squeeze=False)
    for r, (frames, cam, label) in enumerate(clips):
        over = overlay(frames.cpu(), cam.cpu(), alpha)
        for c, t in enumerate(shown):
            for k, src in enumerate((frames, over)):
                ax = axes[2 * r + k, c]
                ax.set_xticks([])
                ax.set_yticks([])
                for sp in ax.spines.values():
                    sp.set_visible(False)
                if t < src.shape[0]:
                    ax.imshow(src[t].cpu().numpy())
        axes[2 * r, 0].set_ylabel(label, fontsize=6.5, rotation=0, ha="right", va="center")
        axes[2 * r + 1, 0].set_ylabel("Grad-CAM", fontsize=6.5, rotation=0, ha="right", va="center")
    for c, t in enumerate(shown):
        axes[0, c].set_title(f"frame {t}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - head / fig.get_figheight()))
    fig.subplots_adjust(wspace=0.03, hspace=0.06)
    _save_figure(fig, path, dpi, png_bits)
    plt.close(fig)
    return os.fspath(path)


def cam_video(path: str, model: nn.Module, out_dir: str, *, target: "int | str | None" = None,
              labels: "str | Sequence[str] | None" = None, alpha: float = 0.5, display_size: int | None = 256,
              fps: float = 8.0, topk: int = 5, preprocess=None, position: str = "input") -> dict:
    """Grad-CAM for one video file: sample one centre clip as ``predict`` does, explain ``target`` (a
    class index or name; default the top-1 prediction), write the pictures. Returns the ``cam.json``
    content."""
    from .predict import load_views, preprocess_for, resolve_labels

    pre = preprocess or preprocess_for(model)
    from dataclasses import replace

    pre = replace(pre, num_clips=1, num_crops=1)
    names = resolve_labels(model, labels)
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in names:
            raise ValueError(f"class {target!r} is not in the label map")
        target = names.index(target)
    elif isinstance(target, str):
        target = int(target)
    views, pixels = load_views(path, pre)
    dev = next(model.parameters()).device
    res = grad_cam(model, views.to(dev), target, position=position)
    probs = res.logits.float().softmax(-1)[0].cpu()
    top = probs.topk(min(topk, probs.numel()))
    t = res.target[0]
    title = (f"{os.path.basename(path)}: Grad-CAM for '{names[t]}' (p={probs[t]:.2f}); "
             f"predicted '{names[int(top.indices[0])]}'")
    frames = pixels[0].permute(1, 2, 3, 0)  # (C, T, S, S) -> (T, S, S, C)
    paths = save_cam(out_dir, frames, res.cam[0].cpu(), alpha=alpha, display_size=display_size, fps=fps, title=title)
    info = {
        "video": os.fspath(path),
        "model": getattr(model, "model_name", type(model).__name__),
        "target": {"index": t, "label": names[t], "prob": float(probs[t])},
        "top": [{"label": names[int(i)], "index": int(i), "prob": float(p)} for p, i in zip(top.values, top.indices)],
        "feature_map": list(res.raw.shape[1:]),
        "position": position,
        "input": list(views.shape[1:]),
        "files": paths,
    }
    with open(os.path.join(out_dir, "cam.json"), "w") as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
    return info


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from .convert import model_from_args

    model = model_from_args(args)
    info = cam_video(args.video, model, args.out, target=args.target, labels=args.labels, alpha=args.alpha,
                     display_size=args.display_size or None, fps=args.fps, position=args.position)
    print(f"Grad-CAM for {info['target']['label']!r} (p={info['target']['prob']:.3f}) on a "
          f"{'x'.join(map(str, info['feature_map']))} feature map -> {info['files']['gif']}, "
          f"{info['files']['montage']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from .convert import add_model_arguments

    p = sub.add_parser("cam", help="Grad-CAM on the last stage: frame overlays (PNG) and an animated GIF",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="video file (or frame folder)")
    add_model_arguments(p, checkpoint_required=False)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--class", dest="target", default=None, help="class to explain (index or name; default top-1)")
    p.add_argument("--labels", default=None, help="label map name or file (default: the checkpoint's)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--display-size", type=int, default=256, help="short side of the written pictures (0: as input)")
    p.add_argument("--fps", type=float, default=8.0, help="GIF frame rate")
    p.add_argument("--position", default="input", choices=POSITIONS,
                   help="read the last stage's input (default) or output feature map")
    p.set_defaults(func=run)
