"""Temporal samplers: which frames of a video make a clip.

Every sampler returns an ``int64`` array ``(num_clips, num_frames)`` of frame indices inside
``[0, num_video_frames)``. Training draws one random clip; testing returns ``num_clips`` deterministic
clips (the views that evaluation averages).

* ``dense`` -- ``num_frames`` frames at a fixed stride (``frame_interval``) from a random start in
  training and from ``num_clips`` evenly spaced starts at test: UniFormer's Kinetics setting
  (UniFormer TPAMI Sec. 6.2, "16x4" / "8x8" = frames x stride; PySlowFast's offset sampling at test).
* ``uniform`` -- TSN segment sampling (Wang et al. 2016), as used for Something-Something: the video
  is cut into ``num_frames`` equal segments and one frame is taken per segment, at a random position in
  training and at the centre at test (clip ``k`` of ``K`` at ``(k + 0.5) / K`` of each segment).
* ``sparse`` -- UniFormerV2's sampling (UniFormerV2 Sec. 4, code ``get_seq_frames``): segments of
  ``(n - 1) / num_frames`` frames with rounded bounds, a random frame in each in training, and at test
  clip ``k`` of ``K`` at ``(k + 1) / (K + 1)`` of each segment.

Videos shorter than a dense clip either loop (``short_video="loop"``: index modulo the length) or
repeat their last frame (``"repeat_last"``). Segment-based samplers cover the whole video by design and
simply repeat frames when the video has fewer frames than the clip.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["dense_indices", "uniform_indices", "sparse_indices", "sample_indices", "clip_span"]


def _randint(low: int, high: int, size: int | tuple = (), generator: torch.Generator | None = None) -> np.ndarray:
    """Uniform integers in ``[low, high]`` (inclusive) from torch's RNG, so DataLoader worker seeding
    applies."""
    shape = size if isinstance(size, tuple) else (size,)
    return torch.randint(low, high + 1, shape, generator=generator).numpy()


def _rand(size: int, generator: torch.Generator | None = None) -> np.ndarray:
    return torch.rand(size, generator=generator, dtype=torch.float64).numpy()


def _check(n: int, num_frames: int, num_clips: int) -> None:
    if n < 1:
        raise ValueError(f"the video has {n} frames; need at least 1")
    if num_frames < 1 or num_clips < 1:
        raise ValueError(f"num_frames ({num_frames}) and num_clips ({num_clips}) must be >= 1")


def clip_span(num_frames: int, frame_interval: int) -> int:
    """Frames covered by one dense clip: ``(num_frames - 1) * frame_interval + 1``."""
    return (num_frames - 1) * frame_interval + 1


def dense_indices(
    num_video_frames: int,
    num_frames: int,
    frame_interval: int,
    *,
    train: bool,
    num_clips: int = 1,
    short_video: str = "loop",
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Dense clips of ``num_frames`` frames at stride ``frame_interval`` (see the module docstring)."""
    n = int(num_video_frames)
    _check(n, num_frames, num_clips)
    if frame_interval < 1:
        raise ValueError(f"frame_interval must be >= 1, got {frame_interval}")
    span = clip_span(num_frames, frame_interval)
    delta = max(n - span, 0)
    if train:
        starts = _randint(0, delta, num_clips, generator)
    elif num_clips == 1:
        starts = np.array([delta // 2])
    else:
        # PySlowFast's offset sampling (UniFormer's test setting): first clip at the start, then equal
        # steps of floor(delta / (K - 1)).
        step = delta // (num_clips - 1)
        starts = np.arange(num_clips) * step
    idx = starts[:, None] + np.arange(num_frames)[None, :] * frame_interval
    if n < span:
        if short_video == "loop":
            idx = idx % n
        elif short_video == "repeat_last":
            idx = np.minimum(idx, n - 1)
        else:
            raise ValueError(f"short_video must be 'loop' or 'repeat_last', got {short_video!r}")
    return idx.astype(np.int64)


def uniform_indices(
    num_video_frames: int,
    num_frames: int,
    *,
    train: bool,
    num_clips: int = 1,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """TSN segment sampling: one frame per each of ``num_frames`` equal segments."""
    n = int(num_video_frames)
    _check(n, num_frames, num_clips)
    seg = n / num_frames
    base = np.arange(num_frames) * seg
    if train:
        offs = np.stack([base + _rand(num_frames, generator) * seg for _ in range(num_clips)])
    else:
        frac = (np.arange(num_clips) + 0.5) / num_clips
        offs = base[None, :] + frac[:, None] * seg
    idx = np.floor(offs).astype(np.int64)
    return np.clip(idx, 0, n - 1)


def sparse_indices(
    num_video_frames: int,
    num_frames: int,
    *,
    train: bool,
    num_clips: int = 1,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """UniFormerV2's sparse sampling (``get_seq_frames``): segments of ``(n - 1) / T`` frames."""
    n = int(num_video_frames)
    _check(n, num_frames, num_clips)
    seg = (n - 1) / num_frames
    # np.round rounds half to even, as the authors' code does.
    starts = np.round(seg * np.arange(num_frames)).astype(np.int64)
    ends = np.round(seg * np.arange(1, num_frames + 1)).astype(np.int64)
    if train:
        u = np.stack([_rand(num_frames, generator) for _ in range(num_clips)])
        idx = starts + np.floor(u * (ends - starts + 1)).astype(np.int64)
        idx = np.minimum(idx, ends)
    else:
        step = seg / (num_clips + 1)
        idx = starts[None, :] + np.array([int(step * (k + 1)) for k in range(num_clips)])[:, None]
    return np.clip(idx, 0, n - 1).astype(np.int64)


def sample_indices(
    sampling: str,
    num_video_frames: int,
    num_frames: int,
    *,
    train: bool,
    frame_interval: int = 1,
    num_clips: int = 1,
    short_video: str = "loop",
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Dispatch on ``sampling`` (``"dense"``, ``"uniform"``, ``"sparse"``); ``(num_clips, num_frames)``."""
    if sampling == "dense":
        return dense_indices(num_video_frames, num_frames, frame_interval, train=train, num_clips=num_clips,
                             short_video=short_video, generator=generator)
    if sampling == "uniform":
        return uniform_indices(num_video_frames, num_frames, train=train, num_clips=num_clips, generator=generator)
    if sampling == "sparse":
        return sparse_indices(num_video_frames, num_frames, train=train, num_clips=num_clips, generator=generator)
    raise ValueError(f"unknown sampling {sampling!r}; expected 'dense', 'uniform' or 'sparse'")

