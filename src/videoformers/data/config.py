"""``DataConfig``: everything the data pipeline needs, shared with the engine's YAML/CLI config."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DataConfig", "SegConfig", "PoseConfig", "DATASET_FORMATS", "DENSE_DATASETS", "SAMPLINGS"]

# Image datasets of the dense tasks (UniFormer TPAMI Sec. 6.4-6.5): an ADE20K-layout folder, COCO keypoints.
DENSE_DATASETS = ("ade20k", "coco_keypoints")
DATASET_FORMATS = ("list", "csv", "ssv2", "ucf101", "hmdb51", "rawframes", "shards") + DENSE_DATASETS
SAMPLINGS = ("dense", "uniform", "sparse")


@dataclass
class DataConfig:
    """Data pipeline settings. Field names and defaults are the contract with ``videoformers.engine``.

    Defaults follow UniFormer's Kinetics recipe (UniFormer TPAMI Sec. 6.2): dense 16x4 clips, short-side jitter
    256-320 and a 224 crop in training, short side 224 and a centre crop at test.
    """

    dataset: str = "list"              # "list" (lines "path label"), "csv" (header with path,label), "ssv2" (json), "ucf101", "hmdb51", "rawframes"
    train_list: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    root: str = ""                     # joined to relative paths in the lists
    labels_file: str | None = None     # class names, one per line (or the SSv2 labels json)
    num_classes: int | None = None     # None -> from labels_file / max label + 1
    num_frames: int = 16
    sampling: str = "dense"            # "dense" | "uniform" (TSN segments) | "sparse" (UniFormerV2)
    frame_interval: int = 4            # stride for dense sampling
    img_size: int = 224                # crop size
    train_scale: tuple[int, int] = (256, 320)   # short-side jitter range for training
    test_scale: int = 224              # short side at test
    random_resized_crop: bool = False  # use RandomResizedCrop instead of scale jitter + random crop
    rrc_scale: tuple[float, float] = (0.08, 1.0)    # RandomResizedCrop area range, relative to the frame
                                                    # (PySlowFast DATA.TRAIN_JITTER_SCALES_RELATIVE)
    rrc_ratio: tuple[float, float] = (0.75, 1.3333)  # its aspect range (DATA.TRAIN_JITTER_ASPECT_RELATIVE)
    num_samples: int = 1               # repeated augmentation (PySlowFast AUG.NUM_SAMPLE): N augmented clips per
                                       # decoded video; train.batch_size counts videos, a step sees B x N clips
    num_samples_temporal: bool = False  # True: the N clips are also at N random temporal positions of the one
                                       # open video (MMAction2 RepeatAugDataset); False: the same frames (PySlowFast)
    hflip: bool = True                 # False for Something-Something
    color_jitter: float = 0.0
    randaugment: tuple[int, float] | None = None   # (n, m)
    random_erasing: float = 0.0
    mean: tuple[float, float, float] | None = None  # None -> the model card's
    std: tuple[float, float, float] | None = None
    test_num_clips: int = 1
    test_num_crops: int = 1            # 1 (centre) or 3 (three-crop)
    short_video: str = "loop"          # "loop" | "repeat_last"
    num_workers: int = 2
    decoder: str = "auto"              # "auto" (PyAV) | "pyav" | "opencv" | "torchcodec" | "torchcodec-cuda" | "decord"
    corrupt_frames: str = "skip"       # frames FFmpeg flags as damaged: "skip" (nearest clean frame) | "keep" | "error"
    max_broken_fraction: float = 0.1   # a run stops when more than this fraction of samples are broken
    decode_timeout: float = 60.0       # s per sample; >0 decodes in a child process (a hang or native crash
                                       # skips the sample); 0: decode in-process, unbounded
    # dataset: shards (WebDataset tars from `prepare --shards`; see videoformers.data.shards)
    train_shards: str | None = None    # a manifest OUT/train.json or a pattern OUT/train-{000000..000031}.tar
    val_shards: str | None = None      # the same for val (test uses it too)
    shuffle_buffer: int = 256          # training samples mixed in each worker's shuffle buffer (0: none)

    def __post_init__(self) -> None:
        # YAML gives lists where the dataclass wants tuples.
        for name in ("train_scale", "randaugment", "mean", "std", "rrc_scale", "rrc_ratio"):
            v = getattr(self, name)
            if isinstance(v, list):
                setattr(self, name, tuple(v))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field for any value the pipeline cannot use."""
        from .decoding import CORRUPT_POLICIES, DECODERS

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"DataConfig.{name}={getattr(self, name)!r}: {why}")

        if self.dataset not in DATASET_FORMATS:
            raise bad("dataset", f"expected one of {DATASET_FORMATS}")
        if self.sampling not in SAMPLINGS:
            raise bad("sampling", f"expected one of {SAMPLINGS}")
        if self.short_video not in ("loop", "repeat_last"):
            raise bad("short_video", "expected 'loop' or 'repeat_last'")
        if self.decoder not in DECODERS:
            raise bad("decoder", f"expected one of {DECODERS}")
        if self.decoder == "torchcodec-cuda" and self.num_workers > 0:
            raise bad("decoder", "GPU decoding runs in the main process (forked DataLoader workers cannot use "
                                 "CUDA): set data.num_workers=0, or decode on the CPU")
        if self.corrupt_frames not in CORRUPT_POLICIES:
            raise bad("corrupt_frames", f"expected one of {CORRUPT_POLICIES}")
        for name in ("num_frames", "frame_interval", "img_size", "test_scale", "test_num_clips"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        if self.test_num_crops not in (1, 3):
            raise bad("test_num_crops", "expected 1 (centre crop) or 3 (three-crop)")
        if len(self.train_scale) != 2 or not 0 < self.train_scale[0] <= self.train_scale[1]:
            raise bad("train_scale", "expected (min, max) short-side sizes with 0 < min <= max")
        if len(self.rrc_scale) != 2 or not 0 < self.rrc_scale[0] <= self.rrc_scale[1] <= 1:
            raise bad("rrc_scale", "expected (min, max) area fractions with 0 < min <= max <= 1")
        if len(self.rrc_ratio) != 2 or not 0 < self.rrc_ratio[0] <= self.rrc_ratio[1]:
            raise bad("rrc_ratio", "expected (min, max) aspect ratios with 0 < min <= max")
        if int(self.num_samples) < 1:
            raise bad("num_samples", "must be >= 1 (1: no repeated augmentation)")
        if self.img_size > self.test_scale:
            raise bad("img_size", f"the {self.img_size}-px crop is larger than the test resize "
                                  f"(test_scale={self.test_scale}): the crop would be padded; raise test_scale")
        if not self.random_resized_crop and self.img_size > self.train_scale[0]:
            raise bad("img_size", f"the {self.img_size}-px crop is larger than the smallest training resize "
                                  f"(train_scale={tuple(self.train_scale)}); raise train_scale or use random_resized_crop")
        if self.randaugment is not None and len(self.randaugment) != 2:
            raise bad("randaugment", "expected (n, m), e.g. (4, 7)")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if v is not None and len(v) != 3:
                raise bad(name, "expected 3 values (R, G, B)")
        if self.std is not None and min(self.std) <= 0:
            raise bad("std", "values must be > 0")
        if not 0.0 <= self.max_broken_fraction <= 1.0:
            raise bad("max_broken_fraction", "expected a fraction in [0, 1]")
        if not 0.0 <= float(self.decode_timeout) < float("inf"):
            raise bad("decode_timeout", "expected seconds >= 0 (0: no time limit, decode in-process)")
        if not 0.0 <= self.random_erasing <= 1.0:
            raise bad("random_erasing", "expected a probability in [0, 1]")
        if self.color_jitter < 0:
            raise bad("color_jitter", "must be >= 0")
        if self.num_classes is not None and int(self.num_classes) < 1:
            raise bad("num_classes", "must be >= 1")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class SegConfig:
    """Semantic segmentation settings (``data.dataset=ade20k``; the ``seg`` section of a recipe).

    Defaults are the mmseg ADE20K pipeline the UniFormer authors trained with (TPAMI Sec. 6.4):
    resize to ``img_scale`` with a random ratio in ``ratio_range``, random ``crop_size`` crop keeping
    at most ``cat_max_ratio`` of one class, flip, photometric distortion; test at ``img_scale``.
    """

    reduce_zero_label: bool = True          # ADE20K: label 0 ("other") -> ignore, classes 1..150 -> 0..149
    ignore_index: int = 255
    img_scale: tuple[int, int] = (2048, 512)  # (long side max, short side) as mmseg's Resize
    ratio_range: tuple[float, float] = (0.5, 2.0)
    crop_size: tuple[int, int] = (512, 512)  # (H, W)
    cat_max_ratio: float = 0.75
    photometric: bool = True
    test_mode: str = "whole"                 # "whole" | "slide"
    slide_stride: tuple[int, int] = (341, 341)
    test_scales: tuple[float, ...] = (1.0,)  # multi-scale test ratios of img_scale (e.g. 0.5 ... 1.75)
    test_flip: bool = False
    aux_weight: float = 0.4                  # UperNet's auxiliary FCN head loss weight
    # Test resize rounds each side up to a multiple (the authors' AlignResize for Semantic FPN: 32); None: keep ratio only
    size_divisor: int | None = None
    slide_crop: tuple[int, int] | None = None  # sliding-window crop (H, W); None: crop_size
    classes_file: str | None = None          # class names, one a line (relative to data.root); default root/classes.txt

    def __post_init__(self) -> None:
        for name, v in vars(self).items():
            if isinstance(v, list):
                setattr(self, name, tuple(v))


@dataclass
class PoseConfig:
    """Top-down pose estimation settings (``data.dataset=coco_keypoints``; the ``pose`` section).

    Defaults are the mmpose COCO top-down pipeline of the UniFormer authors (TPAMI Sec. 6.5): ground-truth
    person boxes, affine crop to ``input_size``, Gaussian target heatmaps at 1/4 resolution, flip test.
    """

    train_ann: str | None = None             # COCO person_keypoints json (relative to data.root)
    val_ann: str | None = None
    train_images: str = "train2017"          # image folder (relative to data.root)
    val_images: str = "val2017"
    input_size: tuple[int, int] = (192, 256)  # (W, H)
    heatmap_size: tuple[int, int] = (48, 64)  # (W, H)
    sigma: float = 2.0
    flip_test: bool = True
    # Training augmentation (mmpose TopDownRandomFlip / TopDownHalfBodyTransform /
    # TopDownGetRandomScaleRotation as the authors' configs set them; 0 turns one off)
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    scale_factor: float = 0.5                # scale ~ N(1, f) clipped to [1 - f, 1 + f]
    rot_factor: float = 40.0                 # degrees ~ N(0, r) clipped to +-2r, applied with rot_prob
    rot_prob: float = 0.6
    padding: float = 1.25                    # box -> crop context

    def __post_init__(self) -> None:
        for name, v in vars(self).items():
            if isinstance(v, list):
                setattr(self, name, tuple(v))
        for name in ("input_size", "heatmap_size"):
            v = getattr(self, name)
            if len(v) != 2 or min(v) <= 0:
                raise ValueError(f"pose.{name} must be two positive sizes (W, H), got {v}")
        for name in ("flip_prob", "half_body_prob", "rot_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"pose.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.sigma <= 0 or self.padding <= 0 or not 0 <= self.scale_factor < 1:
            raise ValueError(f"pose.sigma and pose.padding must be > 0 and pose.scale_factor in [0, 1), got "
                             f"{self.sigma}, {self.padding}, {self.scale_factor}")
