"""Shipped label maps: sizes, order (the UniFormer K400 order is not alphabetical), file formats."""

import json

import pytest

from videoformers.labels import LABEL_MAPS, get_labels, guess_label_map, label_map_path, list_label_maps

SIZES = {"kinetics400": 400, "kinetics400_uniformer": 400, "kinetics600": 600, "kinetics700": 700,
         "kinetics710": 710, "ssv2": 174, "ucf101": 101, "hmdb51": 51}


def _need(name):
    if label_map_path(name) is None:
        pytest.skip(f"{LABEL_MAPS[name]} is not in this checkout yet")


@pytest.mark.parametrize("name", sorted(SIZES))
def test_size_and_unique(name):
    _need(name)
    names = get_labels(name)
    assert len(names) == SIZES[name]
    assert len(set(names)) == len(names)
    assert all(n == n.strip() and n for n in names)
    assert name in list_label_maps()


def test_own_maps_are_shipped():
    assert {"ssv2", "ucf101", "hmdb51"} <= set(list_label_maps())


def test_ssv2_ucf_hmdb_order():
    ssv2 = get_labels("ssv2")
    assert ssv2[0] == "Approaching something with your camera"
    assert ssv2[-1] == "Wiping something off of something"
    assert ssv2 == sorted(ssv2)  # the official label ids follow the sorted template text
    ucf = get_labels("ucf101")
    assert (ucf[0], ucf[36], ucf[-1]) == ("ApplyEyeMakeup", "HandstandPushups", "YoYo")  # classInd 1, 37, 101
    assert ucf == sorted(ucf, key=str.lower)
    hmdb = get_labels("hmdb51")
    assert (hmdb[0], hmdb[-1]) == ("brush_hair", "wave") and hmdb == sorted(hmdb)


@pytest.mark.parametrize("name", ["kinetics400", "kinetics600", "kinetics700"])
def test_kinetics_alphabetical(name):
    _need(name)
    names = get_labels(name)
    assert names == sorted(names)
    assert names[0] == "abseiling"


def test_uniformer_k400_order_is_a_permutation_not_alphabetical():
    _need("kinetics400")
    _need("kinetics400_uniformer")
    alpha, uni = get_labels("kinetics400"), get_labels("kinetics400_uniformer")
    assert set(alpha) == set(uni) and alpha != uni
    # The UniFormer authors' kinetics_400_categroies.txt: riding a bike = 0, abseiling = 341, ...
    assert uni[0] == "riding a bike" and uni.index("abseiling") == 341 and uni[399] == "playing badminton"


def test_kinetics710_starts_with_kinetics400():
    _need("kinetics710")
    _need("kinetics400")
    k710, k400 = get_labels("kinetics710"), get_labels("kinetics400")
    # UniFormerV2 Appendix F: rows 0-399 are K400 (13 names are spelt differently in the K710 list).
    assert sum(a == b for a, b in zip(k710[:400], k400)) >= 380


def test_aliases_and_errors(tmp_path):
    assert get_labels("sthv2") == get_labels("ssv2") == get_labels("SSV2")
    with pytest.raises(ValueError, match="unknown label map"):
        get_labels("kinetics401")
    with pytest.raises(FileNotFoundError):
        get_labels(str(tmp_path / "missing.txt"))


def test_files_in_every_format(tmp_path):
    plain = tmp_path / "classes.txt"
    plain.write_text("walk\n\nrun\njump\n")
    assert get_labels(plain) == ["walk", "run", "jump"]
    classind = tmp_path / "classInd.txt"
    classind.write_text("2 run\n1 walk\n3 jump\n")
    assert get_labels(str(classind)) == ["walk", "run", "jump"]
    js = tmp_path / "labels.json"
    js.write_text(json.dumps({"run": "1", "walk": "0"}))
    assert get_labels(str(js)) == ["walk", "run"]
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na\n")
    with pytest.raises(ValueError):
        get_labels(str(dup))


def test_guess_by_size():
    assert guess_label_map(174) == "ssv2"
    assert guess_label_map(6) is None
    if label_map_path("kinetics400"):
        assert guess_label_map(400) == "kinetics400"
