"""``videoformers demo``: the whole pipeline on a built-in default, on CPU, in minutes.

1. generate the synthetic temporal data set (:func:`videoformers.data.synthetic.generate_dataset`;
   real mp4 files, reused when already there);
2. train the ``demo`` recipe (a 1.2M-parameter UniFormer) with the regular engine;
3. evaluate the best checkpoint (``metrics.json``, ``predictions.csv``, ``confusion_matrix.png``);
4. temporal sanity check: evaluate again with the frames of every validation clip shuffled -- a
   model that really uses motion falls to chance level (no single frame carries the label);
5. write ``report.md`` with the numbers, the curves, the confusion matrix and a few clips with
   their predictions (``clips.png``).

``videoformers demo --cam`` (``run_demo(cam=True)``) runs the same pipeline at a resolution where
Grad-CAM has something to show: recipe ``demo_cam`` (the same model at 128 px, a 4x4 last-stage map
instead of 1x1) on the ``temporal`` task (what moves how) with one static distractor shape per clip.
An extra step computes Grad-CAM (:func:`videoformers.tools.cam.grad_cam`) on every validation clip and
measures how much of the map's mass falls on the moving shape (:func:`~videoformers.tools.cam.motion_mask`,
:func:`~videoformers.tools.cam.mass_on_mask`) against the fraction of the frame the shape covers
(``cam_grid.png``, ``cam_<class>.gif`` / ``.png``, ``cam_clips.csv``, ``metrics.json`` ``demo.cam``,
a section of ``report.md``). ``--cam --cam-only`` (:func:`rerun_cam`) redoes only that step on a
finished run's output directory, without training.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .config import load_config
from .distributed import DistInfo
from .evaluator import evaluate
from .metrics import classification_metrics, write_metrics

__all__ = ["run_demo", "rerun_cam", "ShuffledFrames", "FrozenFrame", "default_data_dir", "temporal_sanity_check",
           "cam_measurement"]

# Classes of the synthetic temporal task that are each other's time reversal.
TIME_REVERSAL_PAIRS = ((0, 1), (2, 3), (4, 5))

# The "order" task: six classes = the order in which a red, a green and a blue object appear, one at a
# time. Every class shows the same frames, so neither one frame nor the shuffled set of frames can
# tell the classes apart: shuffling the frames of a trained model's clips must drop it to chance.
DEMO_DATA = dict(num_train=2000, num_val=300, seed=0, task="order", size=32, num_frames=24)
# ``--cam``: the "temporal" task (what moves how: left/right/up/down, clockwise/counter-clockwise) with one
# static distractor shape, at 128 px (the last stage's map is 4x4; at the demo's 32 px it is 1x1). 16
# rendered frames of which the recipe samples 8 at stride 2.
DEMO_CAM_DATA = dict(num_train=600, num_val=120, seed=0, task="temporal", size=128, num_frames=16,
                     num_distractors=1)
QUICK_OVERRIDES = ["train.epochs=1", "train.max_train_batches=4", "eval.max_batches=2"]


def default_data_dir(cam: bool = False) -> Path:
    """Where the demo's data set is generated: ``$VIDEOFORMERS_HOME`` (default ``~/.cache/videoformers``)
    ``/synthetic_temporal``, or ``/synthetic_cam`` for ``--cam``."""
    base = os.environ.get("VIDEOFORMERS_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "videoformers")
    return Path(base) / ("synthetic_cam" if cam else "synthetic_temporal")


class _TimeIndexed(Dataset):
    """Wraps a dataset and re-indexes the time axis of every item's video (``(C, T, H, W)`` or
    ``(V, C, T, H, W)``) with frame indices drawn per item from a fixed seed."""

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _indices(self, t: int, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        v = item["video"]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        item["video"] = v.index_select(v.ndim - 3, self._indices(v.shape[-3], g))
        return item


class ShuffledFrames(_TimeIndexed):
    """A fixed permutation of the frames per item: motion/order is destroyed, every frame is kept."""

    def _indices(self, t: int, g: torch.Generator) -> torch.Tensor:
        perm = torch.randperm(t, generator=g)
        while t > 1 and torch.equal(perm, torch.arange(t)):
            perm = torch.randperm(t, generator=g)
        return perm


class FrozenFrame(_TimeIndexed):
    """Every frame replaced by one of the item's frames, drawn at random per item: appearance is
    kept, all temporal information is gone. A fixed position (e.g. the middle) would leak the label
    in the order task, where the object shown at a given time narrows the order down."""

    def _indices(self, t: int, g: torch.Generator) -> torch.Tensor:
        return torch.randint(t, (1,), generator=g).expand(t)


def _scores(model, dataset, batch_size, device):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    return evaluate(model, loader, device or torch.device("cpu"), DistInfo(), progress=False)


def temporal_sanity_check(model: torch.nn.Module, dataset: Dataset, num_classes: int, batch_size: int = 16,
                          device: torch.device | None = None,
                          pairs: Sequence[tuple[int, int]] | None = None) -> dict:
    """Top-1 of ``model`` on ``dataset`` with the frames of every clip shuffled, and with every
    frame replaced by one random frame of the clip, next to chance.

    ``pairs`` lists classes that differ only by the direction of time (moving left/right, ...).
    Shuffling keeps the *set* of frames, so an order-blind observer still knows the pair (a
    translating object's positions lie on a line, a rotating one stays in place) but is at chance
    (50%) on the direction; ``shuffled_direction_acc`` is that within-pair accuracy.
    """
    shuffled = _scores(model, ShuffledFrames(dataset), batch_size, device)
    static = _scores(model, FrozenFrame(dataset), batch_size, device)
    out = {
        "shuffled_top1": classification_metrics(shuffled.scores, shuffled.labels, num_classes)["top1"],
        "static_top1": classification_metrics(static.scores, static.labels, num_classes)["top1"],
        "chance": 100.0 / num_classes,
        "num_samples": int(shuffled.labels.numel()),
    }
    if pairs:
        partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}
        pred, y = shuffled.scores.argmax(1), shuffled.labels
        in_pair = torch.tensor([int(p) in (int(t), partner.get(int(t), -1)) for p, t in zip(pred, y)])
        out["shuffled_axis_acc"] = 100.0 * in_pair.float().mean().item()
        hits = (pred == y)[in_pair]
        out["shuffled_direction_acc"] = 100.0 * hits.float().mean().item() if hits.numel() else float("nan")
    return out


def _plot_clips(path: Path, dataset, rows: Sequence[dict], classes: Sequence[str], mean, std, frames: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(rows)
    fig, axes = plt.subplots(n, frames, figsize=(frames * 1.1, n * 1.25))
    axes = axes.reshape(n, frames)
    m = torch.tensor(mean).view(3, 1, 1, 1)
    s = torch.tensor(std).view(3, 1, 1, 1)
    for r, row in enumerate(rows):
        v = dataset[row["index"]]["video"]
        v = v[0] if v.ndim == 5 else v                       # first view
        v = (v * s + m).clamp(0, 1)                           # (C, T, H, W) in [0, 1]
        t_idx = torch.linspace(0, v.shape[1] - 1, frames).round().long()
        for c, t in enumerate(t_idx.tolist()):
            ax = axes[r, c]
            ax.imshow(v[:, t].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ok = "ok" if row["label"] == row["pred"] else "WRONG"
                ax.set_ylabel(f"{classes[row['label']]}\n-> {classes[row['pred']]} ({ok})", fontsize=6,
                              rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(f"t={t}", fontsize=7)
    fig.suptitle("validation clips: true -> predicted", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _read_predictions(path: Path) -> list[dict]:
    import csv

    with open(path) as f:
        return [{"index": int(r["index"]), "label": int(r["label"]), "pred": int(r["pred"]), "prob": float(r["prob"])}
                for r in csv.DictReader(f)]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or "class"


def cam_measurement(model: torch.nn.Module, dataset: Dataset, classes: Sequence[str], mean, std, *,
                    batch_size: int = 8, dilate: int = 4, threshold: float = 60.0,
                    device: torch.device | None = None) -> tuple[dict, list[dict], dict]:
    """Grad-CAM of the predicted class on every clip of ``dataset`` at the last stage's input (the
    default of :func:`~videoformers.tools.cam.grad_cam`) and output, and the fraction of each map's
    mass on the clip's moving object (:func:`~videoformers.tools.cam.motion_mask` of the clip's
    de-normalised frames, dilated by ``dilate`` px) next to the fraction of the frame the object covers.

    Returns ``(summary, per_clip, examples)``: ``summary`` has ``per_class`` and ``all`` entries
    (``clips``, ``top1``, ``mass``, ``mass_output``, ``area`` as fractions, ``mass_over_area``,
    ``frac_above_area``: the fraction of clips whose input-position mass exceeds the area) plus the
    settings; ``per_clip`` one row per clip; ``examples`` maps a label to ``(index, frames uint8
    (T, H, W, 3), cam (T, H, W), pred, prob)`` of its first correctly classified clip (its first clip
    when none is correct).
    """
    from videoformers.tools.cam import grad_cam, mass_on_mask, motion_mask

    device = device or torch.device("cpu")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1)
    rows: list[dict] = []
    examples: dict[int, tuple] = {}
    grid = None
    for batch in loader:
        video = batch["video"]
        video = video[:, 0] if video.ndim == 6 else video          # first view
        res = grad_cam(model, video.to(device))                     # explains the top-1 prediction
        out = grad_cam(model, video.to(device), target=res.target, position="output")
        grid = list(res.raw.shape[1:])
        probs = res.logits.float().softmax(-1).cpu()
        pixels = ((video.float() * s + m).clamp(0, 1) * 255).permute(0, 2, 3, 4, 1)  # (B, T, H, W, 3)
        for b in range(video.shape[0]):
            mask = motion_mask(pixels[b], dilate=dilate, threshold=threshold)
            cam_in, cam_out = res.cam[b].cpu(), out.cam[b].cpu()
            label, pred = int(batch["label"][b]), int(res.target[b])
            row = {"index": int(batch["index"][b]), "label": label, "pred": pred,
                   "mass": mass_on_mask(cam_in, mask), "mass_output": mass_on_mask(cam_out, mask),
                   "area": float(mask.float().mean())}
            rows.append(row)
            have = examples.get(label)
            if have is None or (have[3] != label and pred == label):
                examples[label] = (row["index"], pixels[b].round().to(torch.uint8), cam_in, pred,
                                   float(probs[b, pred]))

    def agg(rs: list[dict]) -> dict:
        n = len(rs)
        mass = sum(r["mass"] for r in rs) / n
        area = sum(r["area"] for r in rs) / n
        return {"clips": n, "top1": 100.0 * sum(r["pred"] == r["label"] for r in rs) / n, "mass": mass,
                "mass_output": sum(r["mass_output"] for r in rs) / n, "area": area,
                "mass_over_area": mass / area if area > 0 else float("nan"),
                "frac_above_area": sum(r["mass"] > r["area"] for r in rs) / n}

    per_class = {}
    for k, name in enumerate(classes):
        rs = [r for r in rows if r["label"] == k]
        if rs:
            per_class[name] = agg(rs)
    summary = {"position": "input", "target": "top-1 prediction", "feature_map": grid, "dilate": dilate,
               "threshold": threshold, "num_clips": len(rows), "per_class": per_class,
               "all": agg(rows) if rows else None}
    return summary, rows, examples


def _median_ratio_clip(rows: Sequence[dict], label: int) -> int | None:
    """Position (in ``rows``) of the correctly classified clip of ``label`` with the median mass / area
    (the lower of the two middle ones for an even count); ``None`` when the class has no correct clip."""
    cands = sorted((i for i, r in enumerate(rows) if r["label"] == label == r["pred"] and r["area"] > 0),
                   key=lambda i: rows[i]["mass"] / rows[i]["area"])
    return cands[(len(cands) - 1) // 2] if cands else None


def _clip_cam(model, dataset, pos: int, mean, std) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """Grad-CAM (input position, top-1) of item ``pos`` of ``dataset``: ``(frames uint8 (T, H, W, 3),
    cam (T, H, W), pred, prob)``, as :func:`cam_measurement` computes it for a batch."""
    from videoformers.tools.cam import grad_cam

    video = dataset[pos]["video"]
    video = video[0] if video.ndim == 5 else video                        # first view
    res = grad_cam(model, video[None].float())
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    frames = ((video.float() * s + m).clamp(0, 1) * 255).permute(1, 2, 3, 0).round().to(torch.uint8)
    pred = int(res.target[0])
    return frames, res.cam[0].cpu(), pred, float(res.logits.float().softmax(-1)[0, pred])


def _cam_step(model, dataset, classes: Sequence[str], cfg, out: Path) -> dict:
    """Step ``--cam``: the measurement of :func:`cam_measurement`, ``cam_grid.png`` (the first correctly
    classified clip of each class), one clip (the typical clip of the class that localises best, see
    below) as ``cam_<class>.gif`` / ``cam_<class>.png`` (and its per-frame overlays in ``cam_<class>/``),
    ``cam_clips.csv``. Returns the ``demo.cam`` entry of ``metrics.json``."""
    import csv
    import shutil

    from videoformers.tools.cam import save_cam, save_cam_grid

    summary, rows, examples = cam_measurement(model, dataset, classes, cfg.data.mean, cfg.data.std,
                                              batch_size=cfg.eval.batch_size or cfg.train.batch_size)
    with open(out / "cam_clips.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["index", "label", "pred", "mass", "mass_output", "area"])
        w.writeheader()
        w.writerows(rows)
    files = ["cam_clips.csv"]
    grid = summary["feature_map"]
    if examples:
        clips = []
        for k in sorted(examples):
            _, frames, cam, pred, prob = examples[k]
            tag = f"(p={prob:.2f})" if pred == k else f"-> {classes[pred]} (WRONG)"
            clips.append((frames, cam, f"{classes[k]}\n{tag}"))
        t, h, w_ = grid
        # 4 of the clip's frames (first to last) and 6 bits per channel: the grid stays small enough for
        # the docs (~0.2 MB instead of ~0.6 MB); the montage and the GIF below show every frame.
        save_cam_grid(out / "cam_grid.png", clips, num_frames=4, png_bits=6,
                      title=f"Grad-CAM (input of the last stage, {t}x{h}x{w_} map) on validation clips:\n"
                            "the first correctly classified clip of each class")
        files.append("cam_grid.png")
        # The clip shown large: the class whose map localises best on average (highest mass / area), and
        # in it the *typical* clip (median mass / area among its correctly classified clips: half of them
        # localise better, half worse). The grid above shows the first clip of every class, unselected.
        ratio = {classes.index(name): v["mass_over_area"] for name, v in summary["per_class"].items()}
        k = max(sorted(examples), key=lambda j: (examples[j][3] == j, ratio.get(j, float("-inf"))))
        pos = _median_ratio_clip(rows, k)
        if pos is None:
            index, frames, cam, pred, prob = examples[k]
            row = next(r for r in rows if r["index"] == index)
        else:
            row = rows[pos]
            index, (frames, cam, pred, prob) = row["index"], _clip_cam(model, dataset, pos, cfg.data.mean,
                                                                        cfg.data.std)
        name = f"cam_{_slug(classes[k])}"
        size = frames.shape[1]
        paths = save_cam(out / name, frames, cam, display_size=size, fps=6, montage_dpi=80, png_bits=6,
                         title=f"validation clip {index} ({classes[k]}): Grad-CAM for '{classes[pred]}' "
                               f"(p={prob:.2f}); {100 * row['mass']:.0f}% of the map on the moving shape, which covers "
                               f"{100 * row['area']:.0f}% of the frame")
        shutil.copyfile(paths["gif"], out / f"{name}.gif")
        shutil.copyfile(paths["montage"], out / f"{name}.png")
        files += [f"{name}.gif", f"{name}.png", f"{name}/"]
        summary["example"] = {"index": index, "label": classes[k], "pred": classes[pred], "name": name,
                              "mass": row["mass"], "area": row["area"],
                              "chosen": "median" if pos is not None else "first"}
    summary["files"] = files
    return summary


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


def _load_demo_model(cfg, out: Path, num_classes: int) -> torch.nn.Module:
    """The model of a demo run: ``checkpoint_best.pth`` (what the final evaluation reports), else
    ``checkpoint_last.pth``."""
    from videoformers.checkpoints.loading import in_model_layout

    from .trainer import build_model

    model = build_model(cfg, num_classes)
    best = out / "checkpoint_best.pth"
    ck = torch.load(best if best.is_file() else out / "checkpoint_last.pth", map_location="cpu", weights_only=True)
    model.load_state_dict(in_model_layout(model, ck["model"]))
    return model


def _log_cam(log, cam_summary: dict | None, out: Path) -> None:
    if cam_summary is not None and cam_summary["all"]:
        a = cam_summary["all"]
        log(f"  Grad-CAM: {100 * a['mass']:.1f}% of the map's mass on the moving shape, which covers "
            f"{100 * a['area']:.1f}% of the frame ({a['mass_over_area']:.1f}x; above the area in "
            f"{100 * a['frac_above_area']:.0f}% of clips); after the last stage {100 * a['mass_output']:.1f}%"
            f" -> {out / 'cam_grid.png'}")


def rerun_cam(output_dir: str | os.PathLike | None = None, log=print) -> dict:
    """Redo only the Grad-CAM step of a finished ``videoformers demo --cam`` run in ``output_dir``
    (default ``runs/demo_cam``), without training: the same checkpoint, the same validation clips, new
    pictures, ``cam_clips.csv``, ``demo.cam`` in ``metrics.json`` and ``report.md`` (``videoformers demo
    --cam --cam-only``). For a run made before a change to the pictures or the measurement."""
    import json

    from videoformers.data import build_dataset

    out = Path(output_dir or "runs/demo_cam")
    metrics_path = out / "metrics.json"
    if not (out / "config.yaml").is_file() or not metrics_path.is_file():
        raise FileNotFoundError(f"{out} holds no finished `videoformers demo --cam` run (config.yaml, metrics.json)")
    metrics = json.loads(metrics_path.read_text())
    headline = metrics.get("demo")
    if not headline or headline.get("task") != "temporal":
        raise ValueError(f"{metrics_path} is not from `videoformers demo --cam` (no demo entry for the temporal task)")
    cfg = load_config(str(out / "config.yaml"))
    val = build_dataset(cfg.data, "val")
    classes = list(val.classes)
    model = _load_demo_model(cfg, out, len(classes))
    log(f"[1/2] Grad-CAM on the {len(val)} validation clips of {out} (no training): where does the model look? ...")
    t0 = time.perf_counter()
    cam_summary = _cam_step(model, val, classes, cfg, out)
    old = ((headline.get("cam") or {}).get("example") or {}).get("name")
    if old and old != (cam_summary.get("example") or {}).get("name") and old.startswith("cam_"):
        import shutil  # the previous run showed another clip: remove its pictures, not left stale

        for f in (out / f"{old}.gif", out / f"{old}.png"):
            f.unlink(missing_ok=True)
        shutil.rmtree(out / old, ignore_errors=True)
    log(f"[2/2] report ... (Grad-CAM step {_fmt(time.perf_counter() - t0)})")
    headline = {**headline, "cam": cam_summary}  # the timings stay those of the original run
    final = {k: v for k, v in metrics.items() if k != "demo"}
    write_metrics(metrics_path, {**final, "demo": headline})
    sanity = {"static_top1": headline["static_frame_top1"], "shuffled_top1": headline["shuffled_frames_top1"],
              "chance": headline["chance"], "num_samples": headline["num_val"]}
    if headline.get("shuffled_direction_acc") is not None:
        sanity["shuffled_direction_acc"] = headline["shuffled_direction_acc"]
    _write_report(out / "report.md", headline, final, classes, sanity, cfg)
    _log_cam(log, cam_summary, out)
    log(f"  report: {out / 'report.md'}")
    return {**headline, "ok": True}


def run_demo(output_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
             overrides: Sequence[str] = (), quick: bool = False, log=print, dataset: dict | None = None,
             cam: bool = False, cam_only: bool = False) -> dict:
    """Run the demo end to end; returns the headline numbers (also in ``output_dir/metrics.json``).

    ``dataset`` overrides the arguments of ``generate_dataset`` (e.g. a smaller set for a smoke test).
    ``cam``: the Grad-CAM variant (recipe ``demo_cam``, data in ``default_data_dir(cam=True)``, output
    by default in ``runs/demo_cam``) with the extra Grad-CAM step. ``output_dir`` defaults to
    ``runs/demo`` / ``runs/demo_cam``. ``cam_only`` (implies ``cam``): redo only the Grad-CAM step of
    a finished run in ``output_dir`` (:func:`rerun_cam`)."""
    from videoformers.data import build_dataset
    from videoformers.data.synthetic import generate_dataset

    from .run import train
    from .trainer import fill_data_defaults

    if cam_only:
        return rerun_cam(output_dir, log=log)
    t_start = time.perf_counter()
    out = Path(output_dir or ("runs/demo_cam" if cam else "runs/demo"))
    data_dir = Path(data_dir) if data_dir else default_data_dir(cam)
    steps = 5 if cam else 4
    data_args = {**(DEMO_CAM_DATA if cam else DEMO_DATA), **(dataset or {})}
    task = data_args["task"]

    log(f"[1/{steps}] synthetic {task!r} data set in {data_dir} (generated if absent) ...")
    t0 = time.perf_counter()
    info = generate_dataset(str(data_dir), **data_args)
    t_data = time.perf_counter() - t0

    paths = [f"data.root={info['root']}", f"data.train_list={info['train_list']}",
             f"data.val_list={info['val_list']}", f"data.labels_file={info['labels_file']}",
             f"train.output_dir={out}", "train.overwrite=true"]  # the demo is one self-contained run: redone each time
    cfg = fill_data_defaults(load_config("demo_cam" if cam else "demo", paths + (QUICK_OVERRIDES if quick else []) + list(overrides)))
    # Decoding runs in the data-loader worker(s), the model in the main process: one compute thread
    # fewer than cores keeps a 2-core laptop from oversubscribing (OpenMP threads spin when starved).
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - int(cfg.data.num_workers or 0))))
    log(f"[2/{steps}] training {cfg.model.name} {dict(cfg.model.overrides)} on {cfg.data.num_frames}x{cfg.data.img_size}px "
        f"clips for {cfg.train.epochs} epochs (CPU threads: {torch.get_num_threads()}) ...")
    t0 = time.perf_counter()
    summary = train(cfg, log=log)
    t_train = time.perf_counter() - t0
    final = summary.get("metrics") or {}

    log(f"[3/{steps}] temporal sanity check: the validation clips again, frames shuffled / one frame repeated ...")
    t0 = time.perf_counter()
    val = build_dataset(cfg.data, "val")
    classes = list(val.classes)
    model = _load_demo_model(cfg, out, len(classes))
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    sanity = temporal_sanity_check(model, val, len(classes), cfg.eval.batch_size or cfg.train.batch_size,
                                   pairs=TIME_REVERSAL_PAIRS if task == "temporal" else None)
    t_sanity = time.perf_counter() - t0

    cam_summary, t_cam = None, 0.0
    if cam:
        log(f"[4/{steps}] Grad-CAM on the {len(val)} validation clips: where does the model look? ...")
        t0 = time.perf_counter()
        cam_summary = _cam_step(model, val, classes, cfg, out)
        t_cam = time.perf_counter() - t0

    log(f"[{steps}/{steps}] report ...")
    rows = _read_predictions(out / "predictions.csv") if (out / "predictions.csv").is_file() else []
    picked: list[dict] = []
    for k in range(len(classes)):  # one clip per class, a wrong one first when there is one
        cands = [r for r in rows if r["label"] == k]
        cands.sort(key=lambda r: r["label"] == r["pred"])
        picked.extend(cands[:1])
    if picked:
        _plot_clips(out / "clips.png", val, picked, classes, cfg.data.mean, cfg.data.std)
    total = time.perf_counter() - t_start
    headline = {
        "top1": final.get("top1"), "top5": final.get("top5"), "mean_class_acc": final.get("mean_class_acc"),
        "shuffled_frames_top1": sanity["shuffled_top1"], "static_frame_top1": sanity["static_top1"],
        "shuffled_direction_acc": sanity.get("shuffled_direction_acc"), "chance": sanity["chance"],
        "num_val": sanity["num_samples"], "model": cfg.model.name, "params_m": round(params_m, 3),
        "epochs": cfg.train.epochs, "seconds_total": round(total, 1), "seconds_data": round(t_data, 1),
        "seconds_train_and_eval": round(t_train, 1), "seconds_sanity_check": round(t_sanity, 1),
        "cpu_threads": torch.get_num_threads(), "quick": quick, "task": task,
        "img_size": cfg.data.img_size, "num_frames": cfg.data.num_frames,
    }
    if cam_summary is not None:
        headline["seconds_cam"] = round(t_cam, 1)
        headline["cam"] = cam_summary
    if final:  # metrics.json (written by the final evaluation) gets the demo's extra numbers
        write_metrics(out / "metrics.json", {**final, "demo": headline})
    _write_report(out / "report.md", headline, final, classes, sanity, cfg)
    expected = 95.0 if cam else 90.0
    ok = final.get("top1") is not None and final["top1"] >= expected
    log("")
    log(f"videoformers demo finished in {_fmt(total)} (data {_fmt(t_data)}, training + evaluation {_fmt(t_train)})")
    if final:
        log(f"  validation top-1 {final['top1']:.1f}%  top-5 {final['top5']:.1f}%  mean class acc "
            f"{final['mean_class_acc']:.1f}%  ({final.get('num_samples', sanity['num_samples'])} videos evaluated, "
            f"{len(classes)} classes)")
    log(f"  temporal check: one frame repeated -> top-1 {sanity['static_top1']:.1f}% (chance {sanity['chance']:.1f}%); "
        f"frames shuffled -> top-1 {sanity['shuffled_top1']:.1f}%"
        + (f", direction {sanity['shuffled_direction_acc']:.1f}% (chance 50%)" if "shuffled_direction_acc" in sanity else ""))
    _log_cam(log, cam_summary, out)
    log(f"  report: {out / 'report.md'}")
    if not quick and not ok:
        log(f"  note: below the expected {expected:.0f}% top-1 (see curves.png)")
    return {**headline, "ok": True}


def _write_report(path: Path, h: dict, final: dict, classes: Sequence[str], sanity: dict, cfg) -> None:
    per_class = final.get("per_class_acc") or {}
    lines = [
        "# videoformers demo",
        "",
        f"A {h['params_m']:.2f}M-parameter `{h['model']}` ({dict(cfg.model.overrides)}) trained from scratch on CPU "
        f"for {h['epochs']} epochs on a synthetic temporal task: {len(classes)} classes "
        f"({'; '.join(classes)}) that no single frame can tell apart.",
        "",
        "| | |",
        "|---|---|",
        f"| validation top-1 | **{_pct(final.get('top1'))}** |",
        f"| validation top-5 | {_pct(final.get('top5'))} |",
        f"| mean class accuracy | {_pct(final.get('mean_class_acc'))} |",
        f"| top-1 with every frame replaced by one random frame of the clip | {_pct(sanity['static_top1'])} "
        f"(chance {sanity['chance']:.1f}%) |",
        f"| top-1 with the frames of every clip shuffled | {_pct(sanity['shuffled_top1'])} |",
        *([f"| ... of which the direction (left/right, up/down, clockwise/counter-clockwise) | "
           f"{_pct(sanity['shuffled_direction_acc'])} (chance 50%) |"] if "shuffled_direction_acc" in sanity else []),
        f"| validation videos | {sanity['num_samples']} |",
        f"| wall time | {_fmt(h['seconds_total'])} total: data {_fmt(h['seconds_data'])}, training + evaluation "
        f"{_fmt(h['seconds_train_and_eval'])}, sanity check {_fmt(h['seconds_sanity_check'])}"
        + (f", Grad-CAM {_fmt(h['seconds_cam'])}" if "seconds_cam" in h else "")
        + f" ({h['cpu_threads']} CPU threads) |",
        "",
        _SANITY_TEXT.get(h.get("task"), _SANITY_TEXT["order"]),
        "",
        "## Training curves",
        "",
        "![curves](curves.png)",
        "",
        "## Confusion matrix",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## A few validation clips with their predictions",
        "",
        "![clips](clips.png)",
        "",
        "## Per-class accuracy",
        "",
        "| class | top-1 |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.1f}% |" for k, v in per_class.items()]
    if h.get("cam"):
        lines += [""] + _cam_report(h["cam"], h)
    lines += ["", "Files: `metrics.json`, `predictions.csv`, `log.jsonl`, `checkpoint_best.pth`, `config.yaml`"
              + (", `cam_clips.csv` (per-clip Grad-CAM masses)" if h.get("cam") else "") + ".", ""]
    path.write_text("\n".join(lines))


_SANITY_TEXT = {
    "order": "Temporal sanity checks. With one frame repeated (appearance kept, no temporal information) the accuracy "
             "falls to chance: no single frame tells the classes apart. With the frames of every clip shuffled the set "
             "of frames is kept but their order is lost; in the order task every class shows the same set of frames, "
             "so the accuracy must fall to chance too: the model reads the order of the frames, not their appearance.",
    "temporal": "Temporal sanity checks. With one frame repeated (appearance kept, no motion) the accuracy falls to "
                "chance: the shapes wrap around the frame edges, so no single frame tells the classes apart. With the "
                "frames of every clip shuffled the set of frames is kept but their order is lost: the positions still "
                "show the axis of the motion (a horizontal or vertical line, or a shape turning in place) but not its "
                "direction, so the accuracy within each pair (left/right, up/down, clockwise/counter-clockwise) must "
                "fall to 50%: the model reads the order of the frames.",
}


def _cam_report(c: dict, h: dict) -> list[str]:
    a = c["all"]
    if not a:
        return []
    grid = "x".join(str(g) for g in c["feature_map"])
    lines = [
        "## Where does the model look?",
        "",
        f"Grad-CAM (`videoformers.tools.cam.grad_cam`) of the predicted class on every validation clip, read at the "
        f"input of the last stage (the default; a {grid} map, t x h x w) and, for comparison, at its output. The "
        f"moving shape is the set of pixels that differ from the clip's temporal median (by more than "
        f"{c['threshold']:g}, summed over RGB on the 0-255 scale), dilated by {c['dilate']} px "
        "(`tools.cam.motion_mask`); *mass* is the fraction of the map's mass on it (`tools.cam.mass_on_mask`), "
        "*area* the fraction of the frame it covers: what a map that ignores the content would get.",
        "",
        "| class | clips | top-1 | mass on the moving shape (last-stage input) | (last-stage output) | area "
        "| mass / area | clips with mass > area |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, r: dict, bold: bool = False) -> str:
        b = "**" if bold else ""
        return (f"| {b}{name}{b} | {r['clips']} | {r['top1']:.1f}% | {b}{100 * r['mass']:.1f}%{b} | "
                f"{100 * r['mass_output']:.1f}% | {100 * r['area']:.1f}% | {r['mass_over_area']:.2f}x | "
                f"{100 * r['frac_above_area']:.0f}% |")

    lines += [row(k, v) for k, v in c["per_class"].items()]
    lines += [row("all", a, bold=True), "", "One clip per class (the first correctly classified one): input frames "
              "above the Grad-CAM overlays.", "", "![Grad-CAM, one clip per class](cam_grid.png)", ""]
    ex = c.get("example")
    if ex:
        why = (f"the class whose map localises best on average, and among its correctly classified clips the one "
               f"with the median mass / area: " if ex.get("chosen") == "median" else "")
        lines += [f"Validation clip {ex['index']} ({ex['label']}; {why}{100 * ex['mass']:.1f}% of the map on the "
                  f"moving shape, which covers {100 * ex['area']:.1f}% of the frame), predicted '{ex['pred']}' "
                  f"(per-frame overlays in `{ex['name']}/`):", "", f"![Grad-CAM, {ex['label']}]({ex['name']}.png)", "",
                  f"![animated]({ex['name']}.gif)", ""]
    return lines


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1f}%"
