"""Annotation formats, the video dataset, and ``build_dataset`` (the engine's entry point).

Formats (``DataConfig.dataset``):

``list``       one video per line, ``path label`` (MMAction2 / Kinetics lists). ``#`` comments and blank
               lines are ignored; a path may contain spaces (the label is the last field).
``csv``        a header naming a path column (``path``/``video``/``filename``/``file``) and a label column
               (``label``/``label_id``/``class``/``class_id``); labels are integers or class names.
``ssv2``       Something-Something v2 JSON (``[{"id", "template", ...}]``) + its labels JSON
               (``{"Approaching something with your camera": "0", ...}``) as ``labels_file``; videos
               ``root/<id>.webm`` (or whatever extension the first video has).
``ucf101``     the official split files (``trainlist01.txt``: ``Class/v_x.avi 1`` with 1-based labels;
               ``testlist01.txt``: ``Class/v_x.avi``) + ``classInd.txt`` as ``labels_file``.
``hmdb51``     the official ``<class>_test_split<k>.txt`` files (``video.avi 1|2|0``): the list field is
               their folder (or a glob, or one file); ``train`` keeps id 1, ``val``/``test`` keep id 2;
               videos ``root/<class>/<video>``.
``rawframes``  frame folders, ``dir num_frames label`` or ``dir label`` per line (MMAction2).

A malformed line or a label outside ``[0, num_classes)`` raises :class:`AnnotationError` at load time,
naming the file and the line. A video that cannot be decoded during an epoch is skipped: another sample
is drawn, the item reports ``num_skipped``, the file is logged once, and the run stops
(:class:`BrokenDataError`) only when broken files are clearly more than ``max_broken_fraction``.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from .config import DataConfig
from .decoding import VideoDecodeError, open_video
from .sampling import sample_indices
from .transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandAugment,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    ResizeCrop,
    ScaleJitterCrop,
    ToFloat,
    frames_to_clip,
)

__all__ = [
    "AnnotationError",
    "BrokenDataError",
    "Sample",
    "VideoDataset",
    "build_dataset",
    "build_transform",
    "load_annotations",
    "read_class_names",
    "resolve_mean_std",
]

log = logging.getLogger("videoformers.data")

DEFAULT_MEAN = (0.45, 0.45, 0.45)  # PySlowFast / UniFormer / UniFormerV2 (on [0, 1] pixels)
DEFAULT_STD = (0.225, 0.225, 0.225)


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and line."""


class BrokenDataError(RuntimeError):
    """Too many undecodable videos: the data set is mostly broken (see ``DataConfig.max_broken_fraction``)."""


@dataclass(frozen=True)
class Sample:
    path: str
    label: int
    source: str = ""      # annotation file
    line: int = 0         # 1-based line number in ``source`` (0: not line-based)
    num_frames: int | None = None


def _where(source: str, line: int) -> str:
    return f"{source}:{line}" if line else source


def _join(root: str, path: str) -> str:
    path = os.path.expanduser(path)
    return path if not root or os.path.isabs(path) else os.path.join(root, path)


def _lines(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield n, line


# --------------------------------------------------------------------------------------------------
# Class names
# --------------------------------------------------------------------------------------------------

_CLASSIND = re.compile(r"^(\d+)\s+(.+)$")


def read_class_names(path: str) -> list[str]:
    """Class names from a file: one name per line; UCF101's ``classInd.txt`` (``1 ApplyEyeMakeup``, numbered
    1..N or 0..N-1); or JSON (a list of names, or SSv2's ``{name: "id"}``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"labels file not found: {path}")
    if path.lower().endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, list):
            return [str(x) for x in data]
        if isinstance(data, dict):
            try:
                pairs = sorted((int(v), str(k)) for k, v in data.items())
            except (TypeError, ValueError):
                raise AnnotationError(f"{path}: expected a JSON object mapping class name -> integer id") from None
            ids = [i for i, _ in pairs]
            if ids != list(range(len(ids))):
                raise AnnotationError(f"{path}: class ids must be 0..{len(ids) - 1} without gaps")
            return [k for _, k in pairs]
        raise AnnotationError(f"{path}: expected a JSON list of names or an object name -> id")
    rows = list(_lines(path))
    names = [line for _, line in rows]
    m = [_CLASSIND.match(line) for line in names]
    if names and all(m):
        nums = [int(x.group(1)) for x in m]
        start = min(nums)
        if start in (0, 1) and sorted(nums) == list(range(start, start + len(nums))):
            return [x.group(2).strip() for _, x in sorted(zip(nums, m), key=lambda t: t[0])]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AnnotationError(f"{path}: class name {dup!r} appears twice")
    return names


# --------------------------------------------------------------------------------------------------
# Annotation parsers: each returns a list of Sample (labels unchecked; -1 = unlabelled)
# --------------------------------------------------------------------------------------------------


def _parse_label(token: str, classes: Sequence[str] | None, where: str, line: str) -> int:
    try:
        return int(token)
    except ValueError:
        pass
    if classes is not None and token in classes:
        return list(classes).index(token)
    raise AnnotationError(f"{where}: label {token!r} is neither an integer nor a known class name: {line!r}")


def _parse_list(path: str, root: str, classes, require_label: bool) -> list[Sample]:
    out = []
    for n, line in _lines(path):
        parts = line.rsplit(maxsplit=1)
        where = _where(path, n)
        if len(parts) == 1:
            if require_label:
                raise AnnotationError(f"{where}: expected 'path label', got {line!r}")
            out.append(Sample(_join(root, parts[0]), -1, path, n))
            continue
        out.append(Sample(_join(root, parts[0]), _parse_label(parts[1], classes, where, line), path, n))
    return out


_PATH_COLS = ("path", "video", "filename", "file", "video_path")
_LABEL_COLS = ("label", "label_id", "class", "class_id")


def _parse_csv(path: str, root: str, classes, require_label: bool) -> list[Sample]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        sample = f.read(4096)
        f.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(f, dialect=dialect)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        pcol = next((c for c in _PATH_COLS if c in header), None)
        lcol = next((c for c in _LABEL_COLS if c in header), None)
        if pcol is None:
            raise AnnotationError(f"{path}:1: the CSV header needs a path column (one of {_PATH_COLS}), got {header}")
        if lcol is None and require_label:
            raise AnnotationError(f"{path}:1: the CSV header needs a label column (one of {_LABEL_COLS}), got {header}")
        names = {h.strip().lower(): h for h in reader.fieldnames or []}
        for n, row in enumerate(reader, 2):
            p = (row.get(names[pcol]) or "").strip()
            lab = (row.get(names[lcol]) or "").strip() if lcol else ""
            if not p:
                if not any((v or "").strip() for v in row.values()):
                    continue
                raise AnnotationError(f"{path}:{n}: empty path: {row}")
            if not lab:
                if require_label:
                    raise AnnotationError(f"{path}:{n}: empty label: {row}")
                out.append(Sample(_join(root, p), -1, path, n))
                continue
            out.append(Sample(_join(root, p), _parse_label(lab, classes, f"{path}:{n}", str(row)), path, n))
    return out


def _ssv2_ext(root: str, first_id: str) -> str:
    for ext in (".webm", ".mp4", ".mkv", ".avi"):
        if os.path.exists(os.path.join(root, first_id + ext)):
            return ext
    return ".webm"


def _parse_ssv2(path: str, root: str, classes, require_label: bool) -> list[Sample]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    if classes is None:
        raise AnnotationError(f"{path}: Something-Something v2 needs its labels JSON as labels_file")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{'id', 'template', ...}} entries")
    lookup = {c: i for i, c in enumerate(classes)}
    out = []
    ext = None
    for k, item in enumerate(data):
        where = f"{path}: entry {k}"
        if not isinstance(item, dict) or "id" not in item:
            raise AnnotationError(f"{where}: expected an object with an 'id', got {str(item)[:120]!r}")
        vid = str(item["id"])
        if ext is None:
            ext = _ssv2_ext(root, vid)
        template = item.get("template")
        if template is None:
            if require_label:
                raise AnnotationError(f"{where} (id {vid}): no 'template' (label); test annotations are unlabelled")
            label = -1
        else:
            key = template.replace("[", "").replace("]", "")
            if key not in lookup:
                raise AnnotationError(f"{where} (id {vid}): template {key!r} is not in the labels file")
            label = lookup[key]
        out.append(Sample(os.path.join(root, vid + ext), label, path, 0))
    return out


def _parse_ucf101(path: str, root: str, classes, require_label: bool) -> list[Sample]:
    if classes is None:
        raise AnnotationError(f"{path}: UCF101 needs classInd.txt as labels_file")
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    out = []
    for n, line in _lines(path):
        parts = line.split()
        where = _where(path, n)
        if len(parts) not in (1, 2):
            raise AnnotationError(f"{where}: expected 'Class/video.avi [label]', got {line!r}")
        rel = parts[0]
        folder = rel.replace("\\", "/").split("/")[0]
        if len(parts) == 2:
            try:
                label = int(parts[1]) - 1  # the split files count classes from 1
            except ValueError:
                raise AnnotationError(f"{where}: label {parts[1]!r} is not an integer: {line!r}") from None
        elif folder.lower() in lookup:
            label = lookup[folder.lower()]
        else:
            raise AnnotationError(f"{where}: class folder {folder!r} is not in the labels file: {line!r}")
        out.append(Sample(_join(root, rel), label, path, n))
    return out


_HMDB = re.compile(r"^(.+)_test_split(\d+)\.txt$")


def _hmdb_files(spec: str) -> list[str]:
    if os.path.isdir(spec):
        files = sorted(glob.glob(os.path.join(spec, "*_test_split1.txt")))
    elif any(ch in spec for ch in "*?["):
        files = sorted(glob.glob(spec))
    else:
        files = [spec] if os.path.isfile(spec) else []
    if not files:
        raise FileNotFoundError(f"no HMDB51 split files (<class>_test_split<k>.txt) found at {spec}")
    return files


def hmdb51_classes(spec: str) -> list[str]:
    names = []
    for f in _hmdb_files(spec):
        m = _HMDB.match(os.path.basename(f))
        if not m:
            raise AnnotationError(f"{f}: HMDB51 split files are named <class>_test_split<k>.txt")
        if m.group(1) not in names:
            names.append(m.group(1))
    return sorted(names)


def _parse_hmdb51(spec: str, root: str, classes, require_label: bool, split: str) -> list[Sample]:
    keep = "1" if split == "train" else "2"
    if classes is None:
        classes = hmdb51_classes(spec)
    lookup = {c: i for i, c in enumerate(classes)}
    out = []
    for f in _hmdb_files(spec):
        m = _HMDB.match(os.path.basename(f))
        if not m:
            raise AnnotationError(f"{f}: HMDB51 split files are named <class>_test_split<k>.txt")
        cls = m.group(1)
        if cls not in lookup:
            raise AnnotationError(f"{f}: class {cls!r} is not in the labels file")
        for n, line in _lines(f):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(f"{_where(f, n)}: expected 'video.avi 0|1|2', got {line!r}")
            if parts[1] == keep:
                out.append(Sample(_join(root, os.path.join(cls, parts[0])), lookup[cls], f, n))
    return out


def _parse_rawframes(path: str, root: str, classes, require_label: bool) -> list[Sample]:
    out = []
    for n, line in _lines(path):
        parts = line.split()
        where = _where(path, n)
        if len(parts) == 3:
            try:
                nf = int(parts[1])
            except ValueError:
                raise AnnotationError(f"{where}: expected 'frame_dir num_frames label', got {line!r}") from None
            out.append(Sample(_join(root, parts[0]), _parse_label(parts[2], classes, where, line), path, n, nf))
        elif len(parts) == 2:
            out.append(Sample(_join(root, parts[0]), _parse_label(parts[1], classes, where, line), path, n))
        elif len(parts) == 1 and not require_label:
            out.append(Sample(_join(root, parts[0]), -1, path, n))
        else:
            raise AnnotationError(f"{where}: expected 'frame_dir [num_frames] label', got {line!r}")
    return out


def load_annotations(cfg: DataConfig, split: str, classes: Sequence[str] | None = None) -> list[Sample]:
    """Parse the list for ``split`` (``train``/``val``/``test``) in ``cfg.dataset``'s format; labels are
    not range-checked here (see :func:`build_dataset`)."""
    spec = _list_for(cfg, split)
    require = split != "test"
    root = os.path.expanduser(cfg.root or "")
    fmt = cfg.dataset
    if fmt == "list":
        return _parse_list(spec, root, classes, require)
    if fmt == "csv":
        return _parse_csv(spec, root, classes, require)
    if fmt == "ssv2":
        return _parse_ssv2(spec, root, classes, require)
    if fmt == "ucf101":
        return _parse_ucf101(spec, root, classes, require)
    if fmt == "hmdb51":
        return _parse_hmdb51(spec, root, classes, require, split)
    if fmt == "rawframes":
        return _parse_rawframes(spec, root, classes, require)
    raise ValueError(f"unknown dataset format {fmt!r}")


def _list_for(cfg: DataConfig, split: str) -> str:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    spec = {"train": cfg.train_list, "val": cfg.val_list, "test": cfg.test_list}[split]
    if split == "test" and spec is None:
        spec = cfg.val_list  # the usual protocol: multi-view testing on the validation list
    if not spec:
        raise ValueError(f"DataConfig.{split}_list is not set")
    return os.path.expanduser(spec)


# --------------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------------


def resolve_mean_std(cfg: DataConfig, model=None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``cfg.mean``/``cfg.std`` if set, else the model card's (``model`` = a registered name or a
    ``ModelCard``), else PySlowFast's 0.45/0.225 (UniFormer's and UniFormerV2's)."""
    mean, std = cfg.mean, cfg.std
    if (mean is None or std is None) and model is not None:
        card = model
        if isinstance(model, str):
            from videoformers.registry import get_model_card

            card = get_model_card(model)
        mean = mean if mean is not None else tuple(card.mean)
        std = std if std is not None else tuple(card.std)
    return tuple(mean or DEFAULT_MEAN), tuple(std or DEFAULT_STD)


def build_transform(cfg: DataConfig, train: bool, mean=None, std=None) -> Callable:
    """The clip transform for training (one view ``(C, T, S, S)``) or testing (``(crops, C, T, S, S)``)
    from ``(3, T, H, W)`` uint8 frames."""
    if mean is None or std is None:
        mean, std = resolve_mean_std(cfg)
    # Geometry runs on uint8 (cheapest); Normalize converts uint8 itself, so ToFloat is only needed
    # before photometric ops.
    if not train:
        return Compose([ResizeCrop(cfg.img_size, cfg.test_scale, cfg.test_num_crops), Normalize(mean, std)])
    crop = (RandomResizedCrop(cfg.img_size) if cfg.random_resized_crop
            else ScaleJitterCrop(cfg.img_size, tuple(cfg.train_scale)))
    photometric = cfg.color_jitter > 0 or bool(cfg.randaugment)
    return Compose([
        crop,
        RandomHorizontalFlip(0.5) if cfg.hflip else None,
        ToFloat() if photometric else None,
        ColorJitter(cfg.color_jitter) if cfg.color_jitter > 0 else None,
        RandAugment(int(cfg.randaugment[0]), float(cfg.randaugment[1])) if cfg.randaugment else None,
        Normalize(mean, std),
        RandomErasing(cfg.random_erasing) if cfg.random_erasing > 0 else None,
    ])


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


class VideoDataset(Dataset):
    """Videos (or frame folders) with labels; items as the engine contract says:

    * train: ``{"video": (C, T, H, W) float, "label": int, "index": int, "num_skipped": int}``
    * val/test: ``{"video": (V, C, T, H, W) float, ...}`` with ``V = test_num_clips * test_num_crops``, ordered
      clip-major (clip 0 crop 0, clip 0 crop 1, ...).

    ``index`` is the index of the sample actually returned (it differs from the requested one when a
    broken video was skipped). ``broken_files`` / ``num_broken`` / ``num_attempts`` are per process (each
    DataLoader worker counts its own); ``num_skipped`` in the items is what the engine sums globally.
    """

    # Below this many draws the broken fraction is not judged (except when everything fails).
    min_attempts_for_limit = 20
    max_consecutive_failures = 50

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        cfg: DataConfig,
        split: str = "train",
        transform: Callable | None = None,
        mean=None,
        std=None,
    ):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if not samples:
            raise ValueError(f"the {split} annotations list no videos")
        self.samples = list(samples)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.cfg = cfg
        self.split = split
        self.train = split == "train"
        if mean is None or std is None:
            mean, std = resolve_mean_std(cfg)
        self.mean, self.std = tuple(mean), tuple(std)
        self.transform = transform if transform is not None else build_transform(cfg, self.train, self.mean, self.std)
        self.num_clips = 1 if self.train else int(cfg.test_num_clips)
        self.broken_files: dict[str, str] = {}
        self.num_broken = 0
        self.num_attempts = 0

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def load_clips(self, index: int) -> torch.Tensor:
        """Decode and sample video ``index`` without transforms: ``uint8 (num_clips, T, H, W, 3)``."""
        s = self.samples[index]
        cfg = self.cfg
        with open_video(s.path, decoder=cfg.decoder, threads=1) as reader:
            idx = sample_indices(cfg.sampling, reader.num_frames, cfg.num_frames, train=self.train,
                                 frame_interval=cfg.frame_interval, num_clips=self.num_clips,
                                 short_video=cfg.short_video)
            frames = reader.read(idx.reshape(-1))
        return torch.from_numpy(frames).view(self.num_clips, cfg.num_frames, *frames.shape[1:])

    def _video(self, index: int) -> torch.Tensor:
        clips = self.load_clips(index)
        if self.train:
            return self.transform(frames_to_clip(clips[0])).contiguous()
        views = [self.transform(frames_to_clip(c)) for c in clips]  # each (crops, C, T, S, S)
        return torch.cat(views, 0).contiguous()

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if index < 0:
            index += len(self)
        skipped = 0
        i = index
        while True:
            self.num_attempts += 1
            try:
                video = self._video(i)
            except VideoDecodeError as e:
                skipped += 1
                self._record_broken(self.samples[i], e, skipped)
                i = self._another(i)
                continue
            return {"video": video, "label": self.samples[i].label, "index": i, "num_skipped": skipped}

    def _another(self, i: int) -> int:
        n = len(self)
        if n == 1:
            return i
        if self.train:
            j = int(torch.randint(n - 1, ()))
            return j if j < i else j + 1
        return (i + 1) % n  # deterministic for evaluation

    def _record_broken(self, sample: Sample, err: VideoDecodeError, consecutive: int) -> None:
        self.num_broken += 1
        if sample.path not in self.broken_files:
            self.broken_files[sample.path] = err.reason
            log.warning("skipping undecodable video %s (%s) [%s]; %d broken of %d tried in this process",
                        sample.path, err.reason, _where(sample.source, sample.line), self.num_broken,
                        self.num_attempts)
        limit = self.cfg.max_broken_fraction
        n, k = self.num_attempts, self.num_broken
        too_many = consecutive >= self.max_consecutive_failures or len(self) == 1
        if not too_many and n >= min(self.min_attempts_for_limit, 2 * len(self)) and limit < 1.0:
            # Stop only when the broken rate is clearly above the limit (2 standard errors), so that a
            # data set just under the limit does not stop a run by bad luck.
            p = k / n
            too_many = p - 2 * math.sqrt(max(p * (1 - p), 1e-12) / n) > limit
        if too_many:
            examples = "; ".join(f"{p} ({r})" for p, r in list(self.broken_files.items())[:3])
            raise BrokenDataError(
                f"{k} of {n} video reads failed in this process ({len(self.broken_files)} distinct files), more "
                f"than max_broken_fraction={limit}: the {self.split} data looks mostly broken. Examples: {examples}"
            )

    def broken_summary(self) -> str:
        return (f"{self.split}: {len(self.broken_files)} broken files, {self.num_broken} skipped reads of "
                f"{self.num_attempts} in this process")


def _class_names(cfg: DataConfig) -> list[str] | None:
    if cfg.labels_file:
        return read_class_names(os.path.expanduser(cfg.labels_file))
    if cfg.dataset == "hmdb51":
        spec = cfg.train_list or cfg.val_list or cfg.test_list
        return hmdb51_classes(os.path.expanduser(spec)) if spec else None
    return None


def _num_classes_from_lists(cfg: DataConfig, classes) -> int:
    best = -1
    for split in ("train", "val", "test"):
        spec = {"train": cfg.train_list, "val": cfg.val_list, "test": cfg.test_list}[split]
        if spec:
            for s in load_annotations(cfg, split, classes):
                best = max(best, s.label)
    if best < 0:
        raise ValueError("cannot infer num_classes: no labelled samples; set DataConfig.num_classes or labels_file")
    return best + 1


def build_dataset(cfg: DataConfig, split: str, *, model=None) -> VideoDataset:
    """The dataset for ``split`` (``"train"``, ``"val"`` or ``"test"``; test falls back to ``val_list``).

    ``num_classes``: ``cfg.num_classes``, else the number of names in ``labels_file``, else the largest
    label in any of the configured lists + 1 (so train and val agree). ``model`` (a registered name or a
    ``ModelCard``) supplies ``mean``/``std`` when ``cfg`` leaves them ``None``; without it the PySlowFast
    statistics 0.45/0.225 are used.
    """
    classes = _class_names(cfg)
    samples = load_annotations(cfg, split, classes)
    if cfg.num_classes is not None:
        num_classes = int(cfg.num_classes)
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f"DataConfig.num_classes={num_classes} but {cfg.labels_file} lists {len(classes)} classes")
    elif classes is not None:
        num_classes = len(classes)
    else:
        num_classes = _num_classes_from_lists(cfg, None)
    if classes is None:
        classes = [str(i) for i in range(num_classes)]
    for s in samples:
        if s.label == -1 and split == "test":
            continue
        if not 0 <= s.label < num_classes:
            raise AnnotationError(f"{_where(s.source, s.line)}: label {s.label} is out of range [0, {num_classes}) "
                                  f"for video {s.path}")
    mean, std = resolve_mean_std(cfg, model)
    return VideoDataset(samples, classes, cfg, split, mean=mean, std=std)
