"""Annotation formats, the video dataset, and ``build_dataset`` (the engine's entry point).

Formats (``DataConfig.dataset``; the README's "Your own data" section has one example of each):

``list``       one video per line, ``path label`` (MMAction2 / Kinetics lists). ``#`` comments and blank
               lines are ignored; a path may contain spaces (the label is the last field). When the split's
               list (``train_list``, ...) is a **directory**, it is a folder-per-class data set (below).
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

Folder per class (``dataset: list``, ``train_list: /data/train`` a directory): each non-hidden sub-folder
of the directory is a class, and its videos are the files directly inside it with a known video extension
(:data:`VIDEO_EXTENSIONS`) and the sub-folders holding images (frame folders). Hidden entries (``.*``) and
other files are ignored; ``root`` is not used (the paths are found, not listed). A directory rather than
a new format name, because it is what people point ``train_list`` at when they have no list.

Labels: an integer is a class index. A class name is looked up in ``labels_file`` when one is given.
Without one (``list``, ``csv``, ``rawframes``, folders), the classes are the distinct names used by all
configured lists, **sorted** (as torchvision's ``ImageFolder`` does): sorting, not first-seen order, makes
train, val and test agree whatever order their rows are in, and makes a folder data set and a list of the
same videos give the same indices. Without a labels file a list is either all integers or all names.

Checked when the dataset is built (:class:`AnnotationError`, naming the file and the line): malformed
lines; a label outside ``[0, num_classes)``; a name that is not in ``labels_file`` (every unknown name is
listed, with the nearest known one); and, without ``labels_file``, a name that only the val/test list uses
(a typo there would silently add a class and shift the index of every class sorted after it). Integer
labels that leave classes without any sample only warn (subsets of big data sets do that on purpose).

Bad samples during an epoch: see :class:`VideoDataset` (skipped, counted, named; ``decode_timeout``
bounds hangs and native crashes; :class:`BrokenDataError` when the data is mostly unreadable).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import glob
import json
import logging
import math
import mmap
import os
import re
import signal
import tempfile
import time
import traceback
import warnings
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import DataConfig
from .decoding import IMAGE_EXTENSIONS, VideoDecodeError, open_video
from .sampling import clip_span, sample_indices
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
    "VIDEO_EXTENSIONS",
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

#: What a folder-per-class data set counts as a video (lower case; frame folders count too).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
                    ".ogv", ".ts", ".mts", ".m2ts", ".gif")


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and line."""


_WORKER_WRAP = re.compile(r"^Caught \w+ (in [^\n]*?)\.?\n")


class BrokenDataError(RuntimeError):
    """Too many undecodable videos: the data set is mostly broken (see ``DataConfig.max_broken_fraction``).

    The message is one line, also when the error comes from a DataLoader worker: torch re-raises a
    worker's exception as ``type("Caught X in DataLoader worker process N. Original Traceback: ...")``, a
    40-line message that buries the one that matters; the constructor recognises that form and keeps the
    original line (plus which worker)."""

    def __init__(self, message: object = "", *args):
        text = str(message)
        m = _WORKER_WRAP.match(text)
        if m and "Traceback" in text:
            last = [ln for ln in text.strip().splitlines() if ln.strip()][-1]
            inner = re.sub(r"^[\w.]+: ", "", last.strip(), count=1)
            text = f"{inner} ({m.group(1)})"
        super().__init__(text, *args)


@dataclass(frozen=True)
class Sample:
    path: str
    label: int            # class index (-1: unlabelled); parsers leave a class name here until resolved
    source: str = ""      # annotation file (the class folder for folder-per-class data)
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
# Annotation parsers: each returns a list of Sample (labels unchecked; -1 = unlabelled). The list, csv,
# rawframes and folder parsers leave class names as strings: which index a name gets depends on all the
# lists (or labels_file), see _resolve and _infer_classes.
# --------------------------------------------------------------------------------------------------


def _label(token: str) -> int | str:
    try:
        return int(token)
    except ValueError:
        return token


def _parse_list(path: str, root: str, require_label: bool) -> list[Sample]:
    out = []
    for n, line in _lines(path):
        parts = line.rsplit(maxsplit=1)
        where = _where(path, n)
        if len(parts) == 1:
            if require_label:
                raise AnnotationError(f"{where}: expected 'path label', got {line!r}")
            out.append(Sample(_join(root, parts[0]), -1, path, n))
            continue
        out.append(Sample(_join(root, parts[0]), _label(parts[1]), path, n))  # type: ignore[arg-type]
    return out


_PATH_COLS = ("path", "video", "filename", "file", "video_path")
_LABEL_COLS = ("label", "label_id", "class", "class_id")


def _parse_csv(path: str, root: str, require_label: bool) -> list[Sample]:
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
            out.append(Sample(_join(root, p), _label(lab), path, n))  # type: ignore[arg-type]
    return out


def _class_dirs(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)))


def _is_frame_folder(path: str) -> bool:
    try:
        return any(n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".") for n in os.listdir(path))
    except OSError:
        return False


def _parse_folder(folder: str) -> list[Sample]:
    """``folder/<class>/<video>``: videos (known extensions) and frame folders directly in each class folder."""
    classes = _class_dirs(folder)
    if not classes:
        raise AnnotationError(f"{folder}: a folder-per-class data set needs one sub-folder per class "
                              "(<folder>/<class>/<video>); found no sub-folders")
    out: list[Sample] = []
    ignored: list[str] = []
    empty = []
    for c in classes:
        d = os.path.join(folder, c)
        before = len(out)
        for name in sorted(os.listdir(d)):
            if name.startswith("."):
                continue
            p = os.path.join(d, name)
            is_video = name.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(p)
            if is_video or os.path.isdir(p) and _is_frame_folder(p):
                out.append(Sample(p, c, d, 0))  # type: ignore[arg-type]
            else:
                ignored.append(p)
        if len(out) == before:
            empty.append(c)
    if not out:
        raise AnnotationError(f"{folder}: no videos in its {len(classes)} class folders ({', '.join(classes[:5])}"
                              f"{', ...' if len(classes) > 5 else ''}); videos are files ending in "
                              f"{', '.join(VIDEO_EXTENSIONS)} or folders of images")
    loose = [n for n in os.listdir(folder) if n.lower().endswith(VIDEO_EXTENSIONS) and not n.startswith(".")]
    if loose:
        log.warning("%s: %d video(s) directly in the folder, not in a class folder, are ignored (e.g. %s)",
                    folder, len(loose), loose[0])
    if ignored:
        log.info("%s: %d entries that are neither videos nor frame folders ignored (e.g. %s)", folder,
                 len(ignored), ignored[0])
    if empty:
        log.warning("%s: class folder(s) without any video: %s (kept as classes, so that the other classes keep "
                    "their indices)", folder, ", ".join(empty[:10]))
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


def _parse_rawframes(path: str, root: str, require_label: bool) -> list[Sample]:
    out = []
    for n, line in _lines(path):
        parts = line.split()
        where = _where(path, n)
        if len(parts) == 3:
            try:
                nf = int(parts[1])
            except ValueError:
                raise AnnotationError(f"{where}: expected 'frame_dir num_frames label', got {line!r}") from None
            out.append(Sample(_join(root, parts[0]), _label(parts[2]), path, n, nf))  # type: ignore[arg-type]
        elif len(parts) == 2:
            out.append(Sample(_join(root, parts[0]), _label(parts[1]), path, n))  # type: ignore[arg-type]
        elif len(parts) == 1 and not require_label:
            out.append(Sample(_join(root, parts[0]), -1, path, n))
        else:
            raise AnnotationError(f"{where}: expected 'frame_dir [num_frames] label', got {line!r}")
    return out


# Formats whose parsers leave class names unresolved (the others resolve them against their labels file).
_NAME_FORMATS = ("list", "csv", "rawframes")
_SPLITS = ("train", "val", "test")


def _is_folder_spec(cfg: DataConfig, spec: str) -> bool:
    return cfg.dataset == "list" and os.path.isdir(spec)


class _Annotations:
    """The configured lists of one ``DataConfig``, each parsed once: class inference, ``num_classes``
    inference and the split's own samples all read them."""

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self._raw: dict[str, list[Sample]] = {}

    def configured(self) -> list[str]:
        """The splits whose list is set (no test -> val fallback: that would read the val list twice)."""
        return [s for s in _SPLITS if getattr(self.cfg, f"{s}_list")]

    def raw(self, split: str) -> list[Sample]:
        """``split``'s samples with class names unresolved (list, csv, rawframes and folder data only)."""
        if split not in self._raw:
            cfg = self.cfg
            spec = _list_for(cfg, split)
            root = os.path.expanduser(cfg.root or "")
            require = split != "test"
            if _is_folder_spec(cfg, spec):
                self._raw[split] = _parse_folder(spec)
            elif cfg.dataset == "list":
                self._raw[split] = _parse_list(spec, root, require)
            elif cfg.dataset == "csv":
                self._raw[split] = _parse_csv(spec, root, require)
            elif cfg.dataset == "rawframes":
                self._raw[split] = _parse_rawframes(spec, root, require)
            else:
                raise ValueError(f"dataset format {cfg.dataset!r} resolves its labels while parsing")
        return self._raw[split]

    def samples(self, split: str, classes: Sequence[str] | None, origin: str = "labels_file") -> list[Sample]:
        cfg = self.cfg
        fmt = cfg.dataset
        if fmt in _NAME_FORMATS:
            return _resolve(self.raw(split), classes, origin)
        spec = _list_for(cfg, split)
        require = split != "test"
        root = os.path.expanduser(cfg.root or "")
        if fmt == "ssv2":
            return _parse_ssv2(spec, root, classes, require)
        if fmt == "ucf101":
            return _parse_ucf101(spec, root, classes, require)
        if fmt == "hmdb51":
            return _parse_hmdb51(spec, root, classes, require, split)
        raise ValueError(f"unknown dataset format {fmt!r}")


def _resolve(samples: list[Sample], classes: Sequence[str] | None, origin: str) -> list[Sample]:
    """Class names -> indices into ``classes``; every unknown name is reported at once, with its lines."""
    if not any(isinstance(s.label, str) for s in samples):
        return samples
    if classes is None:
        s = next(s for s in samples if isinstance(s.label, str))
        raise AnnotationError(f"{_where(s.source, s.line)}: label {s.label!r} is neither an integer nor a known "
                              "class name (no class names given)")
    lookup = {c: i for i, c in enumerate(classes)}
    unknown: dict[str, list[str]] = {}
    out = []
    for s in samples:
        if isinstance(s.label, str):
            i = lookup.get(s.label)
            if i is None:
                unknown.setdefault(s.label, []).append(_where(s.source, s.line))
                continue
            s = dataclasses.replace(s, label=i)
        out.append(s)
    if unknown:
        raise AnnotationError(_unknown_labels(unknown, list(classes), origin))
    return out


def _did_you_mean(name: str, classes: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(classes), n=1, cutoff=0.6)
    if not close:
        low = {c.lower(): c for c in classes}
        close = [low[name.lower()]] if name.lower() in low else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_labels(unknown: dict[str, list[str]], classes: list[str], origin: str) -> str:
    items = list(unknown.items())
    parts = []
    for name, wheres in items[:5]:
        more = f" and {len(wheres) - 1} more line(s)" if len(wheres) > 1 else ""
        parts.append(f"{name!r} at {wheres[0]}{more}{_did_you_mean(name, classes)}")
    rest = f"; and {len(items) - 5} more unknown label(s)" if len(items) > 5 else ""
    first = items[0][1][0]
    return (f"{first}: label {items[0][0]!r} is not a known class name: {len(items)} label(s) are not among the "
            f"{len(classes)} classes of {origin}: " + "; ".join(parts) + rest)


def _infer_classes(ann: _Annotations) -> list[str] | None:
    """Without ``labels_file``: the sorted class names used by all configured lists (and the class folders
    of folder data), or ``None`` when the labels are integers."""
    cfg = ann.cfg
    names: dict[str, tuple[str, str]] = {}  # name -> (split, where first seen)
    first_int: tuple[str, int] | None = None
    first_name: tuple[str, str] | None = None
    for split in ann.configured():
        spec = _list_for(cfg, split)
        if _is_folder_spec(cfg, spec):
            for c in _class_dirs(spec):
                names.setdefault(c, (split, os.path.join(spec, c)))
                first_name = first_name or (os.path.join(spec, c), c)
        for s in ann.raw(split):
            if isinstance(s.label, str):
                names.setdefault(s.label, (split, _where(s.source, s.line)))
                first_name = first_name or (_where(s.source, s.line), s.label)
            elif s.label != -1 and first_int is None:
                first_int = (_where(s.source, s.line), s.label)
    if not names:
        return None
    if first_int is not None:
        assert first_name is not None
        raise AnnotationError(
            f"{first_name[0]}: label {first_name[1]!r} is neither an integer nor a known class name, and "
            f"{first_int[0]} has the integer label {first_int[1]}: without data.labels_file the labels of the lists "
            "must be all integers (class indices) or all class names; give labels_file to mix them")
    if "train" in ann.configured():
        extra = [(n, sp, w) for n, (sp, w) in names.items() if sp != "train"]
        if extra:
            train_names = sorted(n for n, (sp, _) in names.items() if sp == "train")
            shown = "; ".join(f"{n!r} at {w}{_did_you_mean(n, train_names)}" for n, _, w in extra[:5])
            more = f"; and {len(extra) - 5} more" if len(extra) > 5 else ""
            raise AnnotationError(
                f"{extra[0][2]}: label {extra[0][0]!r} of the {extra[0][1]} list is not a class of the training "
                f"list {_list_for(cfg, 'train')}: {len(extra)} class name(s) only the {extra[0][1]}/test lists use: "
                f"{shown}{more}. Without data.labels_file the classes are the names the lists use, so a typo adds a "
                "class and shifts the index of every class sorted after it: fix the name, or list all classes in "
                "data.labels_file")
    return sorted(names)


def load_annotations(cfg: DataConfig, split: str, classes: Sequence[str] | None = None) -> list[Sample]:
    """Parse the list for ``split`` (``train``/``val``/``test``) in ``cfg.dataset``'s format (a directory as
    the list of a ``list`` data set: folder per class). Class names are resolved with ``classes``, by default
    ``labels_file``'s names or the sorted names of all the lists (see the module docstring). Labels are not
    range-checked here (see :func:`build_dataset`)."""
    ann = _Annotations(cfg)
    origin = "the given class names"
    if classes is None and cfg.dataset in _NAME_FORMATS:
        classes, origin = _class_names(cfg, ann, split)
    return ann.samples(split, classes, origin)


def _list_for(cfg: DataConfig, split: str) -> str:
    if split not in _SPLITS:
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
    crop = (RandomResizedCrop(cfg.img_size, tuple(cfg.rrc_scale), tuple(cfg.rrc_ratio)) if cfg.random_resized_crop
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
# Per-sample isolation: skip records shared by worker processes, and a decoder process with a time limit
# --------------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(e: BaseException) -> str:
    """One line for a skipped sample: the decoder's own reason, or the exception type, message and where
    it was raised (a bug in a transform then reads as one, not as a broken file)."""
    if isinstance(e, VideoDecodeError):
        return e.reason
    if isinstance(e, _IsolatedError):
        return str(e)
    msg = _one_line(str(e))
    tb = traceback.extract_tb(e.__traceback__)
    at = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}{': ' + msg if msg else ''}{at}"


class _IsolatedError(RuntimeError):
    """An exception raised in the decoder process, carried back as its one-line reason."""


def _remove_if_owner(path: str, owner: int) -> None:
    if os.getpid() == owner:
        for p in (path, path + ".reading"):
            try:
                os.remove(p)
            except OSError:
                pass


class _SkipLog:
    """Which files a dataset skipped and why, shared by every process that uses the dataset object.

    DataLoader workers are separate processes (forked or spawned copies of the dataset) and a counter in
    them dies with them. Instead, the first skip of each file in each process appends one ``path<TAB>reason``
    line to a small file in the temp folder (one ``O_APPEND`` write, so lines from concurrent workers do not
    interleave); the file's name travels with the pickled dataset, whatever the start method. The file is
    removed when the dataset that created it is garbage-collected, or at exit."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="videoformers-skipped-", suffix=".tsv")
        os.close(fd)
        self.owner = os.getpid()
        weakref.finalize(self, _remove_if_owner, self.path, self.owner)

    def __getstate__(self):
        return {"path": self.path, "owner": self.owner}

    def add(self, path: str, reason: str) -> None:
        line = f"{_one_line(path, 4096).replace(chr(9), ' ')}\t{_one_line(reason)}\n".encode("utf-8", "replace")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as e:  # counting must never stop a run
            log.debug("could not record a skipped sample in %s: %s", self.path, e)

    def read(self, reset: bool = False) -> list[tuple[str, str]]:
        path = self.path
        if reset:
            # Rename first: a worker that writes meanwhile creates a fresh file, so its line counts next time.
            try:
                os.replace(self.path, self.path + ".reading")
                path = self.path + ".reading"
            except OSError:
                return []
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                rows = [ln.rstrip("\n").split("\t", 1) for ln in f if "\t" in ln]
        except OSError:
            rows = []
        if reset:
            try:
                os.remove(path)
            except OSError:
                pass
        return [(r[0], r[1]) for r in rows]

    def stats(self, reset: bool = False) -> dict:
        """``{"count": distinct files, "files": [path, ...] (first reported first), "reasons": {path: the
        first reason}}`` -- what every dataset's ``skip_stats`` returns."""
        reasons: dict[str, str] = {}
        for path, why in self.read(reset=reset):
            reasons.setdefault(path, why)
        return {"count": len(reasons), "files": list(reasons), "reasons": reasons}


_MAP_FLAGS = getattr(mmap, "MAP_SHARED", 1) | getattr(mmap, "MAP_POPULATE", 0)


def _send_frames(conn, frames, parent: int, corrupt: tuple) -> None:
    """Frames to the parent: through a memfd (Linux; the parent maps it, no pickling, one copy), else
    pickled through the pipe (~3x slower for 16 HD frames, still small next to decoding them)."""
    if not hasattr(os, "memfd_create") or frames.nbytes == 0:
        conn.send(("ok", (frames, corrupt)))
        return
    from multiprocessing.reduction import send_handle

    fd = os.memfd_create("videoformers-frames", getattr(os, "MFD_CLOEXEC", 0))
    try:
        os.ftruncate(fd, frames.nbytes)
        with mmap.mmap(fd, frames.nbytes, flags=_MAP_FLAGS) as mm:
            view = np.frombuffer(mm, dtype=frames.dtype).reshape(frames.shape)
            view[...] = frames
            del view  # an exported buffer would keep mm from closing
        conn.send(("shm", frames.shape, frames.dtype.str, corrupt))
        send_handle(conn, fd, parent)
    finally:
        os.close(fd)


def _recv_frames(conn, shape: tuple, dtype: str):
    from multiprocessing.reduction import recv_handle

    fd = recv_handle(conn)
    try:
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dt.itemsize
        mm = mmap.mmap(fd, nbytes, flags=_MAP_FLAGS)
    finally:
        os.close(fd)
    return np.frombuffer(mm, dtype=dt).reshape(shape)  # the array keeps the mapping alive


def _serve(conn, parent: int) -> None:
    """The decoder process: opens and reads videos on request until its parent goes away."""
    import faulthandler

    # A crash here must end this process quietly (the parent names the file): no faulthandler dump, no
    # DataLoader worker's segfault handler. Ctrl-C / SIGTERM to the process group are for the trainer,
    # which stops at a step boundary; this process ends when its pipe closes or its parent dies.
    if faulthandler.is_enabled():
        faulthandler.disable()
    for sig in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT"):
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reader = None

    def close() -> None:
        nonlocal reader
        if reader is not None:
            try:
                reader.close()
            except Exception:
                pass
            reader = None

    while True:
        try:
            if not conn.poll(1.0):
                if os.getppid() != parent:
                    return
                continue
            msg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if msg[0] == "open":
                close()
                reader = open_video(msg[1], decoder=msg[2], threads=1, corrupt_frames=msg[3])
                conn.send(("ok", reader.num_frames))
            elif msg[0] == "read":
                frames = reader.read(msg[1])  # type: ignore[union-attr]
                corrupt = tuple(getattr(reader, "last_corrupt", ()))
                close()
                _send_frames(conn, frames, parent, corrupt)
            else:
                close()
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent as one line
            close()
            kind = ("memory" if isinstance(e, MemoryError) else "import" if isinstance(e, ImportError)
                    else "decode" if isinstance(e, VideoDecodeError) else "other")
            payload = ((e.path, e.reason) if isinstance(e, VideoDecodeError)
                       else str(e) if kind == "import" else _reason(e))
            try:
                conn.send(("err", kind, payload))
            except (OSError, ValueError):
                return


def _stop_helper(state: dict) -> None:
    if state.get("pid") and os.getpid() == state.get("owner"):
        conn, pid = state.pop("conn", None), state.pop("pid")
        if conn is not None:
            conn.close()
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass


def _exit_reason(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown"
        return f"signal {sig}, {name}"
    return f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"status {status}"


class _DecodeHelper:
    """A forked child that opens and reads videos for one dataset in one process, so that a decoder that
    hangs or crashes natively costs one sample, not the run: the parent waits at most ``timeout`` seconds
    per sample, kills a hung child, names the signal of a crashed one, and forks a new one for the next
    sample. The child only decodes; sampling (the RNG) and transforms stay in the parent, so results are
    identical to decoding in-process. Frames come back through a memfd (Linux) or the pipe.

    The child is stopped and reaped when the helper is garbage-collected or its process exits, also when
    that process is a DataLoader worker (``multiprocessing.util.Finalize`` runs there, ``atexit`` does not),
    so no orphan is left for a container's init (which may not reap) after each epoch's workers."""

    def __init__(self) -> None:
        from multiprocessing.util import Finalize

        self.state: dict = {"owner": os.getpid(), "pid": None, "conn": None}
        Finalize(self, _stop_helper, args=(self.state,), exitpriority=10)

    def _start(self) -> None:
        import multiprocessing

        parent_end, child_end = multiprocessing.Pipe(duplex=True)
        owner = os.getpid()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded, fork() may deadlock": bounded here
            pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                parent_end.close()
                _serve(child_end, owner)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        child_end.close()
        self.state.update(pid=pid, conn=parent_end)

    def _died(self) -> str:
        pid, conn = self.state["pid"], self.state["conn"]
        self.state.update(pid=None, conn=None)
        conn.close()
        status = None
        deadline = time.monotonic() + 2.0
        while status is None and time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            else:
                time.sleep(0.01)
        if status is None:
            _stop_helper({"owner": os.getpid(), "pid": pid})
            return "closed its pipe"
        return _exit_reason(status)

    def _kill(self) -> None:
        _stop_helper(self.state)
        self.state.update(pid=None, conn=None)

    def call(self, msg: tuple, path: str, deadline: float, timeout: float):
        if self.state["pid"] is None:
            self._start()
        conn = self.state["conn"]
        reply = None
        try:
            conn.send(msg)
            if conn.poll(max(0.0, deadline - time.monotonic())):
                reply = conn.recv()
                if reply[0] == "shm":
                    reply = ("ok", (_recv_frames(conn, reply[1], reply[2]), reply[3]))
        except (EOFError, OSError, RuntimeError):  # RuntimeError: recv_handle on a closed socket
            raise VideoDecodeError(path, f"the decoder crashed ({self._died()}); a new decoder process "
                                         "takes the next sample") from None
        except BaseException:
            self._kill()  # interrupted mid-request: its reply would be taken for the next sample's
            raise
        if reply is None:
            self._kill()
            raise VideoDecodeError(path, f"decoding timed out after {timeout:g} s (data.decode_timeout); "
                                         "the decoder process was killed and replaced")
        if reply[0] == "ok":
            return reply[1]
        kind, payload = reply[1], reply[2]
        if kind == "decode":
            raise VideoDecodeError(*payload)
        if kind == "memory":
            raise MemoryError(f"{path}: {payload}")
        if kind == "import":
            raise ImportError(payload)  # a decoder that is not installed: setup, not data (see _PROPAGATE)
        raise _IsolatedError(payload)


_fork_warned = False


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------

# Not skipped: the process is out of memory, or a decoder is not installed (setup, not data).
_PROPAGATE = (MemoryError, ImportError)


class VideoDataset(Dataset):
    """Videos (or frame folders) with labels; items as the engine contract says:

    * train: ``{"video": (C, T, H, W) float, "label": int, "index": int, "num_skipped": int}``
    * val/test: ``{"video": (V, C, T, H, W) float, ...}`` with ``V = test_num_clips * test_num_crops``, ordered
      clip-major (clip 0 crop 0, clip 0 crop 1, ...).

    ``index`` is the index of the sample actually returned (it differs from the requested one when a
    broken video was skipped).

    **One bad sample costs that sample.** Any exception while one sample is opened, decoded, sampled or
    transformed (``VideoDecodeError``, but also ``AttributeError``, ``RuntimeError``, ``struct.error``, ...)
    makes it a skipped sample: another sample is drawn (at random in training, the next one at test), the
    file is logged once per process with its list line and a one-line reason. Not skipped: ``MemoryError``,
    ``ImportError`` (a missing decoder is a setup problem) and ``KeyboardInterrupt``/``SystemExit``. With
    ``cfg.decode_timeout > 0`` decoding runs in a forked child process (:class:`_DecodeHelper`), so that a
    hang is cut after that many seconds and a native crash (segfault) kills only the child: both are
    skipped samples ("decoding timed out after N s", "the decoder crashed (signal 11, SIGSEGV)"). The run
    stops with :class:`BrokenDataError` (one line, also from a worker) only when this process's broken
    draws are clearly more than ``max_broken_fraction`` of its draws, or after
    ``max_consecutive_failures`` in a row.

    **Counting skips** (for the trainer's epoch line, ``metrics.json`` and the evaluator):

    * ``item["num_skipped"]``: broken draws replaced to produce this item (events, summed by the engine
      for its global broken-fraction check);
    * :meth:`skip_stats` ``(reset=False) -> {"count": int, "files": [path, ...], "reasons": {path: reason}}``:
      *distinct files* skipped since the dataset was built or last reset, over every process that used
      this dataset object, DataLoader workers included (fork or spawn; see :class:`_SkipLog`), in the order
      first reported. ``reset=True`` starts a new count; call it once after each epoch or evaluation pass
      (with ``persistent_workers=True`` a worker reports a file only the first time it meets it). Under DDP
      each rank's dataset counts its own; gather ``files`` to count distinct files globally.

    ``broken_files`` / ``num_broken`` / ``num_attempts`` are this process's own view (each worker counts
    its own, for the per-process limit).
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
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if not samples:
            raise ValueError(f"the {split} annotations list no videos")
        self.samples = list(samples)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.check_labels(self.num_classes)
        self.cfg = cfg
        self.split = split
        self.train = split == "train"
        if mean is None or std is None:
            mean, std = resolve_mean_std(cfg)
        self.mean, self.std = tuple(mean), tuple(std)
        self.transform = transform if transform is not None else build_transform(cfg, self.train, self.mean, self.std)
        # Repeated augmentation with temporal draws decodes N clips of one open video in training.
        self.num_samples = int(getattr(cfg, "num_samples", 1) or 1) if self.train else 1
        self.num_clips = ((self.num_samples if getattr(cfg, "num_samples_temporal", False) else 1) if self.train
                          else int(cfg.test_num_clips))
        self.broken_files: dict[str, str] = {}
        self.num_broken = 0
        self.num_attempts = 0
        self._skips = _SkipLog()
        self._reported: set[str] = set()  # files this process put in the skip log since the last reset
        self._helper: _DecodeHelper | None = None
        self._corrupt_policy = getattr(cfg, "corrupt_frames", "skip")
        self.num_short = 0  # videos shorter than a clip's span met by this process (warned once)
        self.last_corrupt: tuple = ()  # frame numbers of the last load that FFmpeg flagged (the reader's own)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_helper"] = None  # a process and a pipe: each process starts its own
        return state

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def check_labels(self, num_classes: int) -> None:
        """Raise :class:`AnnotationError` naming the file and line of the first label outside
        ``[0, num_classes)`` (``-1``, unlabelled, passes): a model with fewer outputs than the data has
        classes would otherwise fail mid-epoch with ``IndexError: Target 5 is out of bounds``."""
        bad = [s for s in self.samples
               if not isinstance(s.label, int) or not (0 <= s.label < num_classes or s.label == -1)]
        if bad:
            s = bad[0]
            more = f"; {len(bad) - 1} more out of range" if len(bad) > 1 else ""
            raise AnnotationError(f"{_where(s.source, s.line)}: label {s.label!r} is out of range [0, {num_classes}) "
                                  f"for video {s.path}{more}")

    # ------------------------------------------------------------------ reading one sample
    def load_clips(self, index: int) -> torch.Tensor:
        """Decode and sample video ``index`` without transforms: ``uint8 (num_clips, T, H, W, 3)``."""
        s = self.samples[index]
        cfg = self.cfg
        timeout = float(getattr(cfg, "decode_timeout", 0) or 0)
        if timeout > 0 and _can_fork():
            frames, self.last_corrupt = self._load_isolated(s, timeout)
        else:
            with open_video(s.path, decoder=cfg.decoder, threads=1, corrupt_frames=self._corrupt_policy) as reader:
                frames = reader.read(self._indices(reader.num_frames).reshape(-1))
                self.last_corrupt = tuple(getattr(reader, "last_corrupt", ()))
        return torch.from_numpy(frames).view(self.num_clips, cfg.num_frames, *frames.shape[1:])

    def _indices(self, num_frames: int):
        cfg = self.cfg
        need = clip_span(cfg.num_frames, cfg.frame_interval) if cfg.sampling == "dense" else cfg.num_frames
        if num_frames < need:
            self.num_short += 1
            if self.num_short == 1:  # once per process; the count is dataset.num_short
                what = ("wraps around to the start, which breaks the order of the frames (PySlowFast clamps to the "
                        "last frame: data.short_video=repeat_last)" if cfg.short_video == "loop"
                        else "repeats the last frame, as PySlowFast")
                warnings.warn(f"{self.split}: a video has {num_frames} frames, fewer than the {need} a clip spans "
                              f"({cfg.num_frames} frames" + (f" x interval {cfg.frame_interval}" if cfg.sampling == "dense"
                                                             else "") + f"); short_video={cfg.short_video!r} {what}. "
                              "Further ones are counted (dataset.num_short), not repeated here", stacklevel=2)
        return sample_indices(cfg.sampling, num_frames, cfg.num_frames, train=self.train,
                              frame_interval=cfg.frame_interval, num_clips=self.num_clips,
                              short_video=cfg.short_video)

    def _load_isolated(self, s: Sample, timeout: float):
        helper = self._helper
        if helper is None or helper.state["owner"] != os.getpid():
            helper = self._helper = _DecodeHelper()  # a forked DataLoader worker starts its own
        deadline = time.monotonic() + timeout
        n = helper.call(("open", s.path, self.cfg.decoder, self._corrupt_policy), s.path, deadline, timeout)
        idx = self._indices(int(n)).reshape(-1)  # sampled here: the same RNG draws as in-process
        return helper.call(("read", idx), s.path, deadline, timeout)  # (frames, corrupt frame numbers)

    def _video(self, index: int) -> torch.Tensor:
        clips = self.load_clips(index)
        if self.train and self.num_samples > 1:
            # PySlowFast's AUG.NUM_SAMPLE: one decode, N independently augmented copies -> (N, C, T, S, S)
            return torch.stack([self.transform(frames_to_clip(clips[k % len(clips)]))
                                for k in range(self.num_samples)]).contiguous()
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
            except _PROPAGATE:
                raise
            except Exception as e:  # noqa: BLE001 - one bad sample costs that sample (see the class docstring)
                reason = _reason(e)
            else:
                # num_corrupt: frames FFmpeg flagged damaged in this clip (replaced or kept, data.corrupt_frames)
                return {"video": video, "label": self.samples[i].label, "index": i, "num_skipped": skipped,
                        "num_corrupt": len(self.last_corrupt)}
            # Outside the except block: a BrokenDataError raised here is one line, not a chained traceback.
            skipped += 1
            self._record_broken(self.samples[i], reason, skipped)
            i = self._another(i)

    def _another(self, i: int) -> int:
        n = len(self)
        if n == 1:
            return i
        if self.train:
            j = int(torch.randint(n - 1, ()))
            return j if j < i else j + 1
        return (i + 1) % n  # deterministic for evaluation

    def _record_broken(self, sample: Sample, reason: str, consecutive: int) -> None:
        self.num_broken += 1
        if sample.path not in self._reported:
            self._reported.add(sample.path)
            self._skips.add(sample.path, reason)
        if sample.path not in self.broken_files:
            self.broken_files[sample.path] = reason
            log.warning("skipping unreadable video %s (%s) [%s]; %d broken of %d tried in this process",
                        sample.path, reason, _where(sample.source, sample.line), self.num_broken,
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

    def skip_stats(self, reset: bool = False) -> dict:
        """Distinct skipped files over all processes using this dataset (see the class docstring):
        ``{"count": int, "files": [path, ...] (first reported first), "reasons": {path: reason}}``."""
        if reset:
            self._reported.clear()
        return self._skips.stats(reset=reset)

    def reset_skip_stats(self) -> None:
        self.skip_stats(reset=True)

    def broken_summary(self) -> str:
        return (f"{self.split}: {len(self.broken_files)} broken files, {self.num_broken} skipped reads of "
                f"{self.num_attempts} in this process")


def _can_fork() -> bool:
    global _fork_warned
    if hasattr(os, "fork"):
        return True
    if not _fork_warned:
        _fork_warned = True
        log.warning("data.decode_timeout needs os.fork (Linux/macOS); decoding in-process, without a time limit")
    return False


def _class_names(cfg: DataConfig, ann: _Annotations | None = None,
                 split: str | None = None) -> tuple[list[str] | None, str]:
    """The class names and where they come from (for messages): labels_file, HMDB51's split files, or the
    sorted names the lists use; ``(None, ...)`` for integer labels. With ``split`` whose list has integer
    labels, the other lists are not read (an eval machine may lack the training list)."""
    ann = ann or _Annotations(cfg)
    if cfg.labels_file:
        path = os.path.expanduser(cfg.labels_file)
        return read_class_names(path), f"labels_file {path}"
    if cfg.dataset == "hmdb51":
        spec = cfg.train_list or cfg.val_list or cfg.test_list
        return (hmdb51_classes(os.path.expanduser(spec)) if spec else None), "the HMDB51 split files"
    if cfg.dataset in _NAME_FORMATS:
        if split is not None and not _is_folder_spec(cfg, _list_for(cfg, split)) and not any(
                isinstance(s.label, str) for s in ann.raw(split)):
            return None, "the lists"
        return _infer_classes(ann), "the class names the lists use (no labels_file)"
    return None, "the lists"


def _num_classes_from_lists(ann: _Annotations) -> int:
    best, where, used = -1, "", set()
    for split in ann.configured():
        for s in ann.samples(split, None):
            used.add(s.label)
            if s.label > best:
                best, where = s.label, _where(s.source, s.line)
    if best < 0:
        raise ValueError("cannot infer num_classes: no labelled samples; set DataConfig.num_classes or labels_file")
    unused = [c for c in range(best + 1) if c not in used]
    if unused:
        shown = ", ".join(map(str, unused[:8])) + (", ..." if len(unused) > 8 else "")
        log.warning("num_classes=%d comes from the largest label, %d (%s), but %d class(es) have no sample in any "
                    "list (%s): a typo? Set data.labels_file or data.num_classes to state the number of classes",
                    best + 1, best, where, len(unused), shown)
    return best + 1


def build_dataset(cfg: DataConfig, split: str, *, model=None) -> VideoDataset:
    """The dataset for ``split`` (``"train"``, ``"val"`` or ``"test"``; test falls back to ``val_list``).

    ``num_classes``: ``cfg.num_classes``, else the number of names in ``labels_file`` (or the class names
    the lists use), else the largest label in any of the configured lists + 1 (so train and val agree).
    Every label is checked here, not mid-epoch (see the module docstring). ``model`` (a registered name or a
    ``ModelCard``) supplies ``mean``/``std`` when ``cfg`` leaves them ``None``; without it the PySlowFast
    statistics 0.45/0.225 are used.
    """
    if cfg.dataset == "shards":  # WebDataset tar shards: an IterableDataset (videoformers.data.shards)
        from .shards import build_shard_dataset

        return build_shard_dataset(cfg, split, model=model)  # type: ignore[return-value]
    ann = _Annotations(cfg)
    classes, origin = _class_names(cfg, ann, split)
    samples = ann.samples(split, classes, origin)
    if cfg.num_classes is not None:
        num_classes = int(cfg.num_classes)
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f"DataConfig.num_classes={num_classes} but there are {len(classes)} classes in {origin}")
        why = f"DataConfig.num_classes={num_classes}"
    elif classes is not None:
        num_classes = len(classes)
        why = f"{num_classes} classes in {origin}"
    else:
        num_classes = _num_classes_from_lists(ann)
        why = "num_classes from the largest label of the lists"
    if classes is None:
        classes = [str(i) for i in range(num_classes)]
    bad = [s for s in samples if not (s.label == -1 and split == "test") and not 0 <= s.label < num_classes]
    if bad:
        s = bad[0]
        more = (f"; {len(bad) - 1} more line(s) out of range, e.g. " +
                ", ".join(f"{_where(b.source, b.line)} ({b.label})" for b in bad[1:4])) if len(bad) > 1 else ""
        raise AnnotationError(f"{_where(s.source, s.line)}: label {s.label} is out of range [0, {num_classes}) "
                              f"for video {s.path} ({why}){more}")
    mean, std = resolve_mean_std(cfg, model)
    return VideoDataset(samples, classes, cfg, split, mean=mean, std=std)
