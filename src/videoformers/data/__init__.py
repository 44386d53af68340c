"""Video data: frame-accurate decoding, the papers' samplers, tensor transforms, datasets.

Entry points (the contract with ``videoformers.engine``):

* :class:`DataConfig` and :func:`build_dataset` ``(cfg, split)`` -> dataset of dicts
  ``{"video", "label", "index", "num_skipped"}``; ``dataset.skip_stats(reset=False)`` ->
  ``{"count", "files", "reasons"}``: distinct skipped files over all DataLoader workers (see
  :class:`VideoDataset`); ``train_list`` may be a folder-per-class directory;
* :class:`MixupCutmix` for batch-level mixing with label smoothing;
* :func:`probe` / :func:`read_frames` / :func:`open_video` for decoding (:class:`VideoDecodeError` on
  broken files);
* ``videoformers.data.synthetic.generate_dataset`` for the generated temporal data set;
* ``videoformers prepare`` (``videoformers.data.prepare``) to re-encode a data set for fast training.
"""

from .config import DATASET_FORMATS, SAMPLINGS, DataConfig
from .datasets import (
    AnnotationError,
    BrokenDataError,
    VIDEO_EXTENSIONS,
    Sample,
    VideoDataset,
    build_dataset,
    build_transform,
    load_annotations,
    read_class_names,
    resolve_mean_std,
)
from .decoding import (
    NotAVideoError,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    available_decoders,
    open_video,
    probe,
    read_frames,
    read_frames_sequential,
)
from .mixup import MixupCutmix, one_hot_smooth
from .sampling import dense_indices, sample_indices, sparse_indices, uniform_indices

__all__ = [
    "DATASET_FORMATS",
    "SAMPLINGS",
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "BrokenDataError",
    "DataConfig",
    "MixupCutmix",
    "Sample",
    "VideoDataset",
    "NotAVideoError",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "available_decoders",
    "build_dataset",
    "build_transform",
    "dense_indices",
    "load_annotations",
    "one_hot_smooth",
    "open_video",
    "probe",
    "read_class_names",
    "read_frames",
    "read_frames_sequential",
    "resolve_mean_std",
    "sample_indices",
    "sparse_indices",
    "uniform_indices",
]
