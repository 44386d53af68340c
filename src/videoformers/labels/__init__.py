"""Class-name lists (label maps) shipped with the package, in the order of the classifier rows.

A label map is the list ``names`` with ``names[i]`` the class of logit ``i``. Getting the order wrong
does not raise anything -- it silently ruins accuracy -- so the maps are named by *order*, not only
by data set:

==========================  =====  ==========================================================
name                        size   order
==========================  =====  ==========================================================
``kinetics400``             400    alphabetical (MMAction2's ``label_map_k400.txt``)
``kinetics400_uniformer``   400    the UniFormer authors' non-alphabetical order
                                   (``kinetics_400_categroies.txt``: ``riding a bike`` = 0);
                                   the order of their released K400 heads
``kinetics600``             600    alphabetical
``kinetics700``             700    alphabetical
``kinetics710``             710    UniFormerV2's Kinetics-710 (UniFormerV2 Appendix F): rows 0-399 are
                                   K400, then the K600/K700 classes K400 lacks
``ssv2``                    174    Something-Something v2 label ids 0..173 (the official
                                   ``something-something-v2-labels.json`` order)
``ucf101``                  101    UCF101 ``classInd.txt`` (1-based ids there, 0-based here)
``hmdb51``                  51     HMDB51, alphabetical (the usual 0..50 ids)
==========================  =====  ==========================================================

The SSv2, UCF101 and HMDB51 lists are the data sets' official class lists as MMAction2 ships them
(``tools/data/{sthv2,ucf101,hmdb51}/label_map.txt`` at open-mmlab/mmaction2@4d6c934).

:func:`get_labels` also takes a path: a text file with one name per line, UCF101's ``classInd.txt``
(``1 ApplyEyeMakeup``), or JSON (a list of names, or Something-Something's ``{name: "id"}``).
"""

from __future__ import annotations

import os
from importlib import resources

__all__ = ["LABEL_MAPS", "ALIASES", "list_label_maps", "get_labels", "label_map_path", "guess_label_map"]

# name -> file in this package folder
LABEL_MAPS: dict[str, str] = {
    "kinetics400": "kinetics400.txt",
    "kinetics400_uniformer": "kinetics400_uniformer_order.txt",
    "kinetics600": "kinetics600.txt",
    "kinetics700": "kinetics700.txt",
    "kinetics710": "kinetics710.txt",
    "ssv2": "ssv2.txt",
    "ucf101": "ucf101.txt",
    "hmdb51": "hmdb51.txt",
}

# Common spellings; resolved before LABEL_MAPS.
ALIASES: dict[str, str] = {
    "k400": "kinetics400",
    "k400_uniformer": "kinetics400_uniformer",
    "kinetics400_uniformer_order": "kinetics400_uniformer",
    "k600": "kinetics600",
    "k700": "kinetics700",
    "k710": "kinetics710",
    "sthv2": "ssv2",
    "sthsthv2": "ssv2",
    "something-something-v2": "ssv2",
    "somethingsomethingv2": "ssv2",
}


def _canonical(name: str) -> str | None:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in LABEL_MAPS else None


def _resource(name: str):
    return resources.files(__name__).joinpath(LABEL_MAPS[name])


def label_map_path(name: str) -> str | None:
    """Filesystem path of a shipped label map, or ``None`` when the name is unknown or the file is
    not part of this installation."""
    key = _canonical(name)
    if key is None:
        return None
    res = _resource(key)
    return str(res) if res.is_file() else None


def list_label_maps() -> list[str]:
    """Names of the label maps shipped with this installation (sorted)."""
    return sorted(n for n in LABEL_MAPS if _resource(n).is_file())


def _parse_lines(text: str, where: str) -> list[str]:
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise ValueError(f"label map {where} is empty")
    return names


def get_labels(name_or_path: "str | os.PathLike") -> list[str]:
    """The class names of a shipped label map (``"kinetics400"``, ``"ssv2"``, ... see
    :func:`list_label_maps`) or of a file (one name per line, ``classInd.txt`` or JSON).

    Raises ``ValueError`` for an unknown name (listing the known ones) and ``FileNotFoundError`` for
    a missing file or a known map whose file this installation lacks.
    """
    spec = os.fspath(name_or_path)
    key = _canonical(spec) if not os.path.exists(spec) else None
    if key is not None:
        res = _resource(key)
        if not res.is_file():
            raise FileNotFoundError(f"label map {key!r} ({LABEL_MAPS[key]}) is not shipped with this installation")
        names = _parse_lines(res.read_text(encoding="utf-8"), key)
    elif os.path.isfile(spec):
        from videoformers.data import read_class_names  # one-per-line, classInd.txt and JSON formats

        names = read_class_names(spec)
        if not names:
            raise ValueError(f"label file {spec} lists no classes")
    elif os.sep in spec or spec.endswith((".txt", ".json", ".csv")):
        raise FileNotFoundError(f"label file not found: {spec}")
    else:
        known = ", ".join(sorted(LABEL_MAPS))
        raise ValueError(f"unknown label map {spec!r}; known names: {known} (or pass a path to a text file)")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"label map {spec} names class {dup!r} twice")
    return names


def guess_label_map(num_classes: int, family: str | None = None) -> str | None:
    """The shipped label map a checkpoint with ``num_classes`` outputs most likely uses, or ``None``.

    Only unambiguous sizes are guessed. 400 classes maps to alphabetical ``kinetics400`` (MMAction2
    and every converted checkpoint); the UniFormer authors' own K400 heads use
    ``kinetics400_uniformer`` -- pass it explicitly (or convert with ``--labels``) for those.
    """
    by_size = {400: "kinetics400", 600: "kinetics600", 700: "kinetics700", 710: "kinetics710", 174: "ssv2",
               101: "ucf101", 51: "hmdb51"}
    name = by_size.get(int(num_classes))
    if name is None or not _resource(name).is_file():
        return None
    return name
