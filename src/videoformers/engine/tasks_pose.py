"""Top-down pose estimation as an engine task (UniFormer TPAMI Sec. 6.5, Table 10).

``data.dataset=coco_keypoints`` trains a heatmap model (:mod:`videoformers.models.pose`) on COCO person
crops (:class:`videoformers.data.keypoints.CocoKeypoints`, the ``pose`` section of a recipe) with the loss
and the evaluation of the authors' mmpose setup:

* **Loss**: ``JointsMSELoss(use_target_weight=True)``: the mean over joints of the MSE between predicted
  and target heatmaps, each joint's heatmaps multiplied by its target weight (0 for unlabelled joints and
  joints out of the crop). Xiao et al., "Simple Baselines for Human Pose Estimation" (arXiv 1804.06208)
  Sec. 2.
* **Evaluation**: heatmaps (averaged with the flipped crop's, ``pose.flip_test``) decoded by argmax + a
  quarter-pixel offset, mapped back to the image, rescored as mmpose does (box score x mean of the joint
  scores above 0.2), gathered from every process (each person once), and scored with the COCO keypoint
  OKS metric of ``pycocotools.cocoeval.COCOeval(iouType="keypoints")``. Metrics are in percent:
  ``AP`` (the primary metric), ``AP50``, ``AP75``, ``AP_M``, ``AP_L``, ``AR``, ``AR50``, ``AR75``, ``AR_M``,
  ``AR_L``. Boxes are the ground truth's (the authors' val AP uses a person detector's boxes: our AP is
  the "GT boxes" number, typically ~1-2 AP higher on COCO). No OKS-NMS is applied (with ground-truth
  boxes there is one prediction per annotated person).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from .distributed import DistInfo, all_gather_objects, all_reduce_sum
from .tasks import Task, register_task

__all__ = ["PoseTask", "joints_mse_loss", "coco_keypoint_eval", "POSE_METRICS"]

#: COCOeval.stats for iouType="keypoints", in order
POSE_METRICS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
VIS_THRESHOLD = 0.2  # mmpose data_cfg.vis_thr: joints counted in the rescoring


def joints_mse_loss(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """mmpose ``JointsMSELoss``: ``mean_k MSE(output_k * w_k, target_k * w_k)`` over ``(N, K, H, W)`` heatmaps
    with ``weight`` ``(N, K, 1)`` (``None``: all ones). Equal to the mean over every element of
    ``((output - target) * w)^2``: each joint's MSE averages over the same N x H x W elements."""
    if output.shape != target.shape:
        raise ValueError(f"heatmaps {tuple(output.shape)} and targets {tuple(target.shape)} differ in shape")
    diff = output.float() - target.float()
    if weight is not None:
        diff = diff * weight.float().reshape(*weight.shape[:2], 1, 1)
    return diff.pow(2).mean()


def coco_keypoint_eval(coco_gt, results: list[dict], img_ids: list[int] | None = None,
                       sigmas: np.ndarray | None = None) -> dict:
    """OKS AP/AR (percent) of COCO-format keypoint ``results`` against the ``pycocotools`` ``coco_gt``.

    ``img_ids`` restricts the evaluation to those images (default: all of ``coco_gt``). No result at all
    gives zeros (``loadRes`` refuses an empty list)."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {k: 0.0 for k in POSE_METRICS}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary
        dt = coco_gt.loadRes([dict(r) for r in results])
        ev = COCOeval(coco_gt, dt, iouType="keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        if img_ids is not None:
            ev.params.imgIds = sorted(set(int(i) for i in img_ids))
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # -1 marks "no ground truth in that area range": reported as 0
    return {k: max(0.0, float(v)) * 100.0 for k, v in zip(POSE_METRICS, ev.stats)}


def _pose_cfg_sizes(cfg) -> tuple[tuple[int, int], tuple[int, int]]:
    p = cfg.pose
    iw, ih = (int(v) for v in p.input_size)
    hw, hh = (int(v) for v in p.heatmap_size)
    if iw * hh != ih * hw or iw % hw:
        raise ValueError(f"pose.heatmap_size {tuple(p.heatmap_size)} must be pose.input_size {tuple(p.input_size)} "
                         "divided by one integer stride (the model's, 4 for the SimpleBaseline head)")
    return (iw, ih), (hw, hh)


class PoseTask(Task):
    """Top-down heatmap pose estimation on COCO-format keypoints (see the module docstring)."""

    name = "pose"
    primary_metric = "AP"
    sample_unit = "persons"
    rate_unit = "persons"
    logged_metrics = ("AP", "AP50", "AP75", "AR", "loss")

    def build_datasets(self, cfg, splits=("train", "val")):
        from videoformers.data.keypoints import CocoKeypoints

        p, root = cfg.pose, Path(cfg.data.root or ".")
        input_size, heatmap_size = _pose_cfg_sizes(cfg)
        self._sizes = (input_size, heatmap_size)
        mean = cfg.data.mean or (0.485, 0.456, 0.406)
        std = cfg.data.std or (0.229, 0.224, 0.225)
        out = {}
        for split in splits:
            images = p.train_images if split == "train" else p.val_images
            ann = p.train_ann if split == "train" else p.val_ann
            ann = ann or f"annotations/person_keypoints_{images}.json"
            out[split] = CocoKeypoints(root / ann, root / images, train=split == "train", input_size=input_size,
                                       heatmap_size=heatmap_size, sigma=p.sigma, mean=mean, std=std,
                                       flip_prob=p.flip_prob, half_body_prob=p.half_body_prob,
                                       scale_factor=p.scale_factor, rot_factor=p.rot_factor, rot_prob=p.rot_prob,
                                       padding=p.padding)
        return out

    def model_overrides(self, cfg) -> dict:
        # The engine would pass data.img_size (square) to a model that takes img_size; the crop is pose.input_size.
        from videoformers.registry import accepted_overrides

        try:
            accepts = accepted_overrides(cfg.model.name)
        except ValueError:
            return {}
        if "img_size" not in accepts:
            return {}
        input_size = tuple(int(v) for v in cfg.pose.input_size)
        want = [input_size[1], input_size[0]]
        have = cfg.model.overrides.get("img_size")
        if have is not None and [int(v) for v in ((have, have) if isinstance(have, int) else have)] != want:
            raise ValueError(f"model.overrides.img_size {have} (H, W) disagrees with pose.input_size "
                             f"{list(input_size)} (W, H)")
        return {"img_size": want}

    def num_classes(self, cfg, train_dataset):
        return int(cfg.model.num_classes or train_dataset.num_keypoints)

    def class_names(self, train_dataset, num_classes):
        return list(getattr(train_dataset, "keypoint_names", None) or [str(i) for i in range(num_classes)])

    def prepare_batch(self, batch, device):
        x = batch["img"].to(device, non_blocking=True)
        target = (batch["target"].to(device, non_blocking=True), batch["target_weight"].to(device, non_blocking=True))
        return x, target, x.shape[0]

    def forward_loss(self, model, x, target, cfg, mixed: bool = False):
        if mixed:
            raise ValueError("mixup/cutmix do not apply to pose estimation: set train.mixup=0 train.cutmix=0")
        out = model(x)
        return joints_mse_loss(out, *target), out

    @torch.no_grad()
    def evaluate(self, model, loader, device, dist_info, cfg, progress=False, desc="validate"):
        from videoformers.data.keypoints import decode_heatmaps, flip_back, heatmap_to_image

        from .evaluator import autocast_context

        info = dist_info or DistInfo()
        ds = loader.dataset
        input_size, heatmap_size = getattr(self, "_sizes", None) or _pose_cfg_sizes(cfg)
        flip_pairs = getattr(ds, "flip_pairs", None)
        was_training = model.training
        model.eval()
        if callable(getattr(ds, "skip_stats", None)):
            ds.skip_stats(reset=True)
        t0 = time.perf_counter()
        preds: list[tuple[int, int, list[float], float]] = []  # (index, image_id, keypoints x,y,s..., score)
        loss_sum, loss_n, skipped = 0.0, 0, 0
        it = loader
        if progress and info.is_main:
            from tqdm.auto import tqdm

            it = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0, disable=None)
        max_batches = cfg.eval.max_batches
        for b, batch in enumerate(it):
            if max_batches is not None and b >= max_batches:
                break
            x = batch["img"].to(device, non_blocking=True)
            with autocast_context(device, cfg.train.amp):
                hm = model(x).float()
                if cfg.pose.flip_test:
                    hm = (hm + flip_back(model(x.flip(-1)).float(), flip_pairs or ())) * 0.5
            if hm.shape[-2:] != (heatmap_size[1], heatmap_size[0]):
                raise ValueError(f"the model's heatmaps are {tuple(hm.shape[-2:])} (H, W), pose.heatmap_size is "
                                 f"{tuple(heatmap_size)} (W, H)")
            tgt, w = batch["target"].to(device), batch["target_weight"].to(device)
            loss_sum += float(joints_mse_loss(hm, tgt, w)) * x.shape[0]
            loss_n += x.shape[0]
            coords, scores = decode_heatmaps(hm)
            xy = heatmap_to_image(coords, batch["center"].numpy(), batch["size"].numpy(),
                                  torch.as_tensor(batch["rotation"]).numpy(), input_size, heatmap_size)
            box_scores = torch.as_tensor(batch["score"]).numpy()
            for i in range(len(xy)):
                s = scores[i]
                valid = s > VIS_THRESHOLD
                score = float(box_scores[i]) * (float(s[valid].mean()) if valid.any() else 0.0)
                kp = np.concatenate([xy[i], s[:, None]], axis=1).reshape(-1)
                preds.append((int(batch["index"][i]), int(batch["image_id"][i]), [round(float(v), 3) for v in kp], score))
            if "num_skipped" in batch:
                skipped += int(torch.as_tensor(batch["num_skipped"]).sum())
        model.train(was_training)

        parts = all_gather_objects(preds, info)
        loss_sum, loss_n, skipped = all_reduce_sum([loss_sum, loss_n, skipped], info)
        if callable(getattr(ds, "skip_stats", None)):
            files = set().union(*all_gather_objects(set(ds.skip_stats(reset=True)["files"]), info))
            skipped = len(files)
        # The distributed sampler pads with repeats and a broken image is replaced by another sample: each
        # person (dataset index) is kept once.
        seen: set[int] = set()
        merged = []
        for idx, img_id, kp, score in sorted((p for part in parts for p in part), key=lambda p: p[0]):
            if idx not in seen:
                seen.add(idx)
                merged.append({"image_id": img_id, "category_id": 1, "keypoints": kp, "score": score})
        metrics = None
        if info.is_main:
            # A truncated pass (eval.max_batches) is scored on the images it covered.
            img_ids = None if max_batches is None else [r["image_id"] for r in merged]
            metrics = coco_keypoint_eval(ds.coco, merged, img_ids)
        metrics = all_gather_objects(metrics, info)[0]
        metrics.update(num_samples=len(merged), loss=loss_sum / max(loss_n, 1), num_skipped=int(skipped),
                       flip_test=bool(cfg.pose.flip_test), time=time.perf_counter() - t0)
        return merged, metrics

    def write_outputs(self, out_dir, result, metrics, classes, paths, extra):
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        payload = {**metrics, **(extra or {}), "keypoints": list(classes) if classes else None,
                   "predictions": "keypoints_results.json"}
        for k in ("view_average", "train_frames_corrupt", "corrupt_frames_policy"):  # video-only fields
            payload.pop(k, None)
        (out_dir / "keypoints_results.json").write_text(json.dumps(result))
        (out_dir / "metrics.json").write_text(json.dumps(payload, indent=2, default=str))
        return payload

    def describe(self, m):
        return f"AP {m['AP']:.2f}  AP50 {m['AP50']:.2f}  AR {m['AR']:.2f}"


register_task("pose", PoseTask, ("coco_keypoints",))
