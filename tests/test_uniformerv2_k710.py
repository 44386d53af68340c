"""Kinetics label lists and the Kinetics-710 head mapping (UniFormerV2 Sec. 4, Appendix F)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import videoformers as vf
from videoformers.checkpoints.k710 import (
    K710_SYNONYMS,
    k710_index_map,
    kinetics_labels,
    load_k710_checkpoint,
    map_k710_head,
    map_k710_state_dict,
    merge_kinetics_labels,
)
from videoformers.models.uniformerv2 import UniFormerV2

FIXTURES = Path(__file__).parent / "fixtures" / "uniformerv2"


def test_label_files():
    for n in (400, 600, 700):
        names = kinetics_labels(n)
        assert len(names) == n == len(set(names)) and names == sorted(names)
    k710 = kinetics_labels("k710")
    assert len(k710) == len(set(k710)) == 710
    uf = kinetics_labels("kinetics400_uniformer_order")
    assert len(uf) == 400 and set(uf) == set(kinetics_labels(400)) and uf != kinetics_labels(400)
    assert uf[:3] == ["riding a bike", "marching", "dodgeball"]
    with pytest.raises(ValueError):
        kinetics_labels("kinetics500")


def test_merge_builds_the_710_classes():
    merged = merge_kinetics_labels()
    k710 = kinetics_labels(710)
    assert len(merged) == 710 and set(merged) == set(k710)
    assert merged[:400] == k710[:400]  # K400 first, in K400 order (the heads' first 400 rows)
    for a, b in ((400, 492), (492, 708), (708, 710)):  # K700-only, K600&K700, K600-only groups
        assert set(merged[a:b]) == set(k710[a:b])
    # Appendix F: compared with K700, 8 labels only in K400 and 2 only in K600.
    k700 = {K710_SYNONYMS.get(n, n) for n in kinetics_labels(700)}
    only400 = {K710_SYNONYMS.get(n, n) for n in kinetics_labels(400)} - k700
    only600 = {K710_SYNONYMS.get(n, n) for n in kinetics_labels(600)} - k700 - only400
    assert len(only400) == 8 and len(only600) == 2


@pytest.mark.parametrize("n", [400, 600, 700])
def test_index_maps_equal_mmaction2(n):
    expected = json.loads((FIXTURES / f"mmaction2_k710_map_k{n}.json").read_text())
    assert k710_index_map(n) == expected
    assert k710_index_map(kinetics_labels(n)) == expected
    if n == 400:
        assert expected == list(range(400))


def test_map_head_and_load_k710_checkpoint(tmp_path):
    w, b = torch.randn(710, 16), torch.randn(710)
    w6, b6 = map_k710_head(w, b, 600)
    idx = k710_index_map(600)
    assert torch.equal(w6[5], w[idx[5]]) and torch.equal(b6, b[idx])
    with pytest.raises(KeyError):
        k710_index_map(["not a kinetics class"])
    # A K710 checkpoint (authors' layout) into a 700-way model: the head rows follow the labels.
    cfg = dict(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, global_layers=1)
    k710_model = UniFormerV2(**cfg, num_classes=710)
    sd = {"backbone." + k: v for k, v in k710_model.state_dict().items()}
    sd["backbone.transformer.proj.2.weight"] = sd.pop("backbone.head.weight")
    sd["backbone.transformer.proj.2.bias"] = sd.pop("backbone.head.bias")
    path = tmp_path / "k710.pyth"
    torch.save(sd, path)
    k700_model = UniFormerV2(**cfg, num_classes=700)
    report = load_k710_checkpoint(k700_model, path)
    assert report.ok
    rows = k710_index_map(700)
    row = kinetics_labels(710).index("throwing ball")
    assert torch.equal(k700_model.head.weight[kinetics_labels(700).index(
        "throwing ball (not baseball or American football)")], k710_model.head.weight[row])
    assert torch.equal(k700_model.head.bias, k710_model.head.bias[rows])
    # MMAction2 and our own keys too
    mm = map_k710_state_dict({"cls_head.fc_cls.weight": w, "cls_head.fc_cls.bias": b}, 400)
    assert torch.equal(mm["cls_head.fc_cls.weight"], w[:400])
    with pytest.raises(ValueError):
        map_k710_state_dict({"head.weight": torch.randn(400, 3)}, 400)
    with pytest.raises(vf.CheckpointError):  # without mapping, a 710-way head does not fit
        vf.load_checkpoint(UniFormerV2(**cfg, num_classes=700), path)
