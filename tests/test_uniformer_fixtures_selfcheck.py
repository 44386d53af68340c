"""Self-check of the UniFormer V1 parity fixtures (``tests/fixtures/uniformer/*.json``).

These tests do not touch our model: they check that each fixture is complete and internally
consistent, and that the weights/inputs a parity test regenerates from it are deterministic.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from fixtures.seeded import seeded_state_dict, seeded_tensor

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "uniformer"
FIXTURES = sorted(FIXTURE_DIR.glob("*.json"))
EXPECTED_CASES = {
    "video_small",
    "video_base",
    "video_small_t16",
    "image_small",
    "image_base",
    "image_small_plus",
    "image_large_tl",
    "image_base_ls",
    "image_xxs_light",
    "image_xs_light",
    "video_xxs_light",
    "video_xxs_light_ls",
    "det_window",
    "det_hybrid",
    "seg_global",
    "seg_hybrid",
    "pose_global",
    "det_light_xxs",
}
REQUIRED_KEYS = {
    "case",
    "source_file",
    "source_commit",
    "builder",
    "config",
    "seed",
    "input_shape",
    "input_key",
    "manifest",
    "output",
    "output_shape",
}
DTYPES = {"float32", "int64"}


def _load(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _nested_shape(x) -> list[int]:
    """Shape of a rectangular nested list; raises if ragged."""
    if not isinstance(x, list):
        assert isinstance(x, (int, float)) and not isinstance(x, bool), f"non-numeric leaf {x!r}"
        assert math.isfinite(x)
        return []
    assert len(x) > 0
    subs = [_nested_shape(y) for y in x]
    assert all(s == subs[0] for s in subs), "ragged nested list"
    return [len(x)] + subs[0]


def test_all_cases_present():
    assert {p.stem for p in FIXTURES} == EXPECTED_CASES
    readme = (FIXTURE_DIR / "README.md").read_text()
    for case in EXPECTED_CASES:
        assert f"`{case}`" in readme, f"README does not describe {case}"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_well_formed(path: Path):
    fx = _load(path)
    assert REQUIRED_KEYS <= fx.keys(), REQUIRED_KEYS - fx.keys()
    assert fx["case"] == path.stem
    assert re.fullmatch(r"[0-9a-f]{40}", fx["source_commit"])
    assert fx["source_file"].endswith(".py") and not fx["source_file"].startswith("/")
    assert isinstance(fx["seed"], int) and isinstance(fx["input_key"], str)

    # manifest: {key: [[int, ...], dtype]}
    manifest = fx["manifest"]
    assert len(manifest) > 100  # real depths, not toy configs
    for key, spec in manifest.items():
        shape, dtype = spec
        assert isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape), key
        assert dtype in DTYPES, (key, dtype)
        assert (dtype == "int64") == key.endswith("num_batches_tracked"), key

    # input shape: video (B,3,T,H,W) / image (B,3,H,W)
    in_shape = fx["input_shape"]
    assert all(isinstance(s, int) for s in in_shape) and in_shape[1] == 3
    assert len(in_shape) == (5 if fx["source_file"].startswith("video_classification") else 4)

    # output matches output_shape (dense backbones: list of 4 feature maps; the pose one returns the last)
    if fx["case"].startswith(("det_", "seg_", "pose_")):
        n_out = 1 if fx["case"].startswith("pose_") else 4
        assert len(fx["output"]) == len(fx["output_shape"]) == n_out
        strides = [4, 8, 16, 32][-n_out:]
        for out, shape, s, c in zip(fx["output"], fx["output_shape"], strides, fx["config"]["embed_dim"][-n_out:]):
            assert _nested_shape(out) == shape
            assert shape == [in_shape[0], c, in_shape[2] // s, in_shape[3] // s]
    else:
        assert _nested_shape(fx["output"]) == fx["output_shape"]
        assert fx["output_shape"] == [in_shape[0], fx["config"]["num_classes"]]
        assert "head.weight" in manifest and manifest["head.weight"][0][0] == fx["config"]["num_classes"]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_regeneration_deterministic(path: Path):
    fx = _load(path)
    manifest = fx["manifest"]
    # all small tensors plus a few large ones keeps this fast; the full state dict of one
    # fixture is regenerated in test_full_state_dict_regenerates
    big = [k for k, (s, _) in manifest.items() if math.prod(s) > 4096]
    keys = [k for k, (s, _) in manifest.items() if math.prod(s) <= 4096] + big[:3] + big[-2:]
    sub = {k: manifest[k] for k in keys}
    a = seeded_state_dict(sub, fx["seed"])
    b = seeded_state_dict(sub, fx["seed"])
    assert a.keys() == b.keys() == sub.keys()
    for k in keys:
        assert list(a[k].shape) == sub[k][0] and str(a[k].dtype) == "torch." + sub[k][1], k
        assert torch.equal(a[k], b[k]), k
        if a[k].is_floating_point():
            assert torch.isfinite(a[k]).all(), k
    # another seed must change the float weights
    c = seeded_state_dict({big[0]: manifest[big[0]]}, fx["seed"] + 1)
    assert not torch.equal(a[big[0]], c[big[0]])

    x1 = seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"])
    x2 = seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"])
    assert x1.dtype == torch.float32 and list(x1.shape) == fx["input_shape"]
    assert torch.equal(x1, x2)


def test_full_state_dict_regenerates():
    fx = _load(FIXTURE_DIR / "video_xxs_light.json")
    a = seeded_state_dict(fx["manifest"], fx["seed"])
    b = seeded_state_dict(fx["manifest"], fx["seed"])
    assert a.keys() == fx["manifest"].keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    n = sum(v.numel() for k, v in a.items() if v.is_floating_point() and "running_" not in k)
    assert n == 9_833_896  # video UniFormer-XXS with 400 classes (9.83M, as measured in the notes)


def test_light_fixtures_exercise_token_pruning():
    for case in ("image_xxs_light", "image_xs_light", "video_xxs_light", "video_xxs_light_ls"):
        fx = _load(FIXTURE_DIR / f"{case}.json")
        pruned = [r for r in fx["token_pruning_eval"] if r["prune_ratio"] < 1]
        assert pruned and all(0 < r["kept"] < r["tokens"] for r in pruned), case
        assert any(r["block"].startswith("blocks4") for r in pruned), case
        # eval returns one head; train returns (head, head_cls)
        n_cls = fx["config"]["num_classes"]
        assert fx["train_forward"]["output_shapes"] == [[1, n_cls], [1, n_cls]]
