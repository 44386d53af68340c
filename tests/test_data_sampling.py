"""Temporal samplers: property tests over many video lengths and settings, plus the papers' formulas."""

import random

import numpy as np
import pytest
import torch

from videoformers.data import dense_indices, sample_indices, sparse_indices, uniform_indices


def _cases(seed=0, count=300):
    rng = random.Random(seed)
    for _ in range(count):
        yield rng.randint(1, 400), rng.choice([1, 2, 4, 8, 16, 32]), rng.choice([1, 2, 4, 8]), rng.choice([1, 2, 4, 10])


@pytest.mark.parametrize("sampling", ["dense", "uniform", "sparse"])
@pytest.mark.parametrize("train", [True, False])
def test_indices_inside_video_with_right_count(sampling, train):
    torch.manual_seed(0)
    for n, t, interval, clips in _cases():
        for short in ("loop", "repeat_last"):
            idx = sample_indices(sampling, n, t, train=train, frame_interval=interval, num_clips=clips,
                                 short_video=short)
            assert idx.shape == (clips, t) and idx.dtype == np.int64
            assert idx.min() >= 0 and idx.max() < n, (sampling, n, t, interval)


@pytest.mark.parametrize("train", [True, False])
def test_dense_is_sorted_with_fixed_stride_when_video_is_long_enough(train):
    torch.manual_seed(1)
    for n, t, interval, clips in _cases(1):
        if n < (t - 1) * interval + 1:
            continue
        idx = dense_indices(n, t, interval, train=train, num_clips=clips)
        assert np.all(np.diff(idx, axis=1) == interval)


@pytest.mark.parametrize("sampling", ["uniform", "sparse"])
@pytest.mark.parametrize("train", [True, False])
def test_segment_samplers_are_sorted_and_one_frame_per_segment(sampling, train):
    torch.manual_seed(2)
    for n, t, _, clips in _cases(2):
        idx = sample_indices(sampling, n, t, train=train, num_clips=clips)
        assert np.all(np.diff(idx, axis=1) >= 0)
        if n >= 2 * t and sampling == "uniform":
            seg = n / t
            k = np.arange(t)
            assert np.all(idx >= np.floor(k * seg)) and np.all(idx < np.ceil((k + 1) * seg))
            if not train:
                assert len(set(idx[0].tolist())) == t


def test_dense_test_clips_evenly_spaced_and_centred():
    # One clip: centred. K clips: PySlowFast offset sampling, first at the start, equal steps.
    idx = dense_indices(100, 8, 4, train=False, num_clips=1)
    span = 7 * 4 + 1
    assert idx[0, 0] == (100 - span) // 2
    idx = dense_indices(250, 16, 4, train=False, num_clips=4)
    starts = idx[:, 0]
    assert starts[0] == 0 and len(set(np.diff(starts).tolist())) == 1
    assert starts[-1] + 15 * 4 < 250


def test_dense_training_start_is_random_and_covers_the_range():
    torch.manual_seed(3)
    starts = {int(dense_indices(50, 4, 2, train=True)[0, 0]) for _ in range(400)}
    assert starts == set(range(0, 50 - 7 + 1))


def test_short_video_loop_and_repeat_last():
    loop = dense_indices(10, 8, 4, train=True, short_video="loop")
    assert loop[0].tolist() == [0, 4, 8, 2, 6, 0, 4, 8]
    rep = dense_indices(10, 8, 4, train=False, short_video="repeat_last")
    assert rep[0].tolist() == [0, 4, 8, 9, 9, 9, 9, 9]
    with pytest.raises(ValueError, match="short_video"):
        dense_indices(10, 8, 4, train=True, short_video="pad")


def test_uniform_test_takes_segment_centres():
    # TSN at test: the centre of each of T equal segments.
    assert uniform_indices(80, 8, train=False)[0].tolist() == [5, 15, 25, 35, 45, 55, 65, 75]
    three = uniform_indices(90, 3, train=False, num_clips=3)
    assert three.tolist() == [[5, 35, 65], [15, 45, 75], [25, 55, 85]]


def _authors_sparse(video_length, num_frames, train, k=0, num_views=1):
    # The formula of UniFormerV2's get_seq_frames, restated for the check.
    seg_size = float(video_length - 1) / num_frames
    seq = []
    for i in range(num_frames):
        start = int(np.round(seg_size * i))
        end = int(np.round(seg_size * (i + 1)))
        if train:
            seq.append((start, end))
        else:
            seq.append(start + int(seg_size / (num_views + 1) * (k + 1)))
    return seq


def test_sparse_matches_uniformerv2_formula():
    torch.manual_seed(4)
    for n in (9, 17, 64, 100, 301):
        for t in (8, 16):
            for views in (1, 2, 4):
                idx = sparse_indices(n, t, train=False, num_clips=views)
                for k in range(views):
                    assert idx[k].tolist() == [min(v, n - 1) for v in _authors_sparse(n, t, False, k, views)]
            bounds = _authors_sparse(n, t, True)
            for _ in range(20):
                tr = sparse_indices(n, t, train=True)[0]
                assert all(lo <= v <= hi for v, (lo, hi) in zip(tr.tolist(), bounds))


def test_generator_makes_sampling_reproducible():
    a = sample_indices("dense", 300, 16, train=True, frame_interval=4, generator=torch.Generator().manual_seed(5))
    b = sample_indices("dense", 300, 16, train=True, frame_interval=4, generator=torch.Generator().manual_seed(5))
    assert np.array_equal(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown sampling"):
        sample_indices("random", 10, 4, train=True)
    with pytest.raises(ValueError, match="at least 1"):
        sample_indices("dense", 0, 4, train=True)
