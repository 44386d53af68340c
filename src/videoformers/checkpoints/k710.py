"""Kinetics-710 (UniFormerV2 Sec. 4 and Appendix F): the merged label list and 710 -> 400/600/700 heads.

K710 is the union of the Kinetics-400/600/700 classes after "filtering symbols and replacing
synonyms" (Appendix F): 700 Kinetics-700 classes + 8 found only in K400 + 2 only in K600. The
paper stresses that fine-tuning a K710 model on K400/600/700 needs the K710 classifier *mapped by
rows* ("it is vital to load the pretrained weight of the classification layer").

* :func:`kinetics_labels` reads the class lists shipped in ``videoformers/labels/`` (K400/600/700
  alphabetical as MMAction2's ``label_map_k*.txt``; K710 in the *head order* of the released K710
  checkpoints, MMAction2's ``label_map_k710.txt``: K400's 400 classes in K400 order, then the
  K700-only, the K600-and-K700, and the K600-only classes).
* :func:`merge_kinetics_labels` rebuilds the 710 names from the three lists (same groups; the
  authors' order inside a group came from an unordered set, so it is alphabetical here).
* :func:`k710_index_map` gives, for every class of a target dataset, its row in a 710-way head
  (identical to MMAction2's ``k710_channel_map/map_k{400,600,700}.json``);
  :func:`map_k710_head` / :func:`map_k710_state_dict` slice a head (ours, the authors' or
  MMAction2's keys), :func:`load_k710_checkpoint` loads a K710 checkpoint into a 400/600/700-way model.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Mapping, Sequence

import torch

__all__ = [
    "K710_SYNONYMS",
    "LABEL_SETS",
    "kinetics_labels",
    "normalize_kinetics_label",
    "merge_kinetics_labels",
    "k710_index_map",
    "map_k710_head",
    "map_k710_state_dict",
    "load_k710_checkpoint",
]

#: Older Kinetics names -> the K710 (mostly Kinetics-700) spelling. 13 K400 renames, 2 K600 ones
#: (case, and "picking fruit" already listed) and the K600/K700 "throwing ball" qualifier.
K710_SYNONYMS: dict[str, str] = {
    "balloon blowing": "inflating balloons",
    "changing wheel": "changing wheel (not on bike)",
    "cooking sausages": "cooking sausages (not on barbeque)",
    "drinking": "sipping cup",
    "dying hair": "dyeing hair",
    "garbage collecting": "person collecting garbage",
    "hugging": "hugging (not baby)",
    "making bed": "making the bed",
    "opening bottle": "opening bottle (not wine)",
    "picking fruit": "picking apples",
    "skiing (not slalom or crosscountry)": "skiing mono",
    "sniffing": "smelling feet",
    "tying tie": "tying necktie",
    "passing american football (not in game)": "passing American football (not in game)",
    "throwing ball (not baseball or American football)": "throwing ball",
}

#: Shipped label files (``videoformers/labels/<name>.txt``).
LABEL_SETS = ("kinetics400", "kinetics600", "kinetics700", "kinetics710", "kinetics400_uniformer_order")
_ALIASES = {"k400": "kinetics400", "k600": "kinetics600", "k700": "kinetics700", "k710": "kinetics710",
            400: "kinetics400", 600: "kinetics600", 700: "kinetics700", 710: "kinetics710"}


def kinetics_labels(name: str | int) -> list[str]:
    """Class names of a shipped label set (``"kinetics400"``, ``"k600"``, ``700``, ``"kinetics710"``,
    ``"kinetics400_uniformer_order"``: the UniFormer V1 authors' non-alphabetical K400 order)."""
    key = _ALIASES.get(name, name)
    if key not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; choose one of {LABEL_SETS}")
    text = resources.files("videoformers").joinpath("labels", f"{key}.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def normalize_kinetics_label(name: str, synonyms: Mapping[str, str] = K710_SYNONYMS) -> str:
    """The K710 spelling of a Kinetics class name (whitespace collapsed, synonyms replaced)."""
    name = " ".join(name.strip().split())
    return synonyms.get(name, name)


def merge_kinetics_labels(
    k400: Sequence[str] | None = None,
    k600: Sequence[str] | None = None,
    k700: Sequence[str] | None = None,
    synonyms: Mapping[str, str] = K710_SYNONYMS,
) -> list[str]:
    """Build the Kinetics-710 label list from the K400/600/700 lists (Appendix F).

    Names are normalised with ``synonyms``; the result is K400 in its own order, then the classes
    only in K700, then those in K600 and K700 (not K400), then those only in K600, each group
    alphabetical. The released heads use the same groups in another within-group order:
    read them with ``kinetics_labels("kinetics710")``.
    """
    k400 = [normalize_kinetics_label(n, synonyms) for n in (k400 if k400 is not None else kinetics_labels(400))]
    s600 = {normalize_kinetics_label(n, synonyms) for n in (k600 if k600 is not None else kinetics_labels(600))}
    s700 = {normalize_kinetics_label(n, synonyms) for n in (k700 if k700 is not None else kinetics_labels(700))}
    if len(set(k400)) != len(k400):
        raise ValueError("the K400 list has duplicate names after normalisation")
    s400 = set(k400)
    only700 = sorted(s700 - s600 - s400)
    both = sorted((s600 & s700) - s400)
    only600 = sorted(s600 - s700 - s400)
    return k400 + only700 + both + only600


def k710_index_map(target: str | int | Sequence[str], k710: Sequence[str] | None = None,
                   synonyms: Mapping[str, str] = K710_SYNONYMS) -> list[int]:
    """Row of the 710-way head for every class of ``target`` (400/600/700, a label-set name, or
    class names), in the target's order. Raises ``KeyError`` naming classes K710 lacks."""
    names = kinetics_labels(target) if isinstance(target, (str, int)) else list(target)
    k710 = list(k710) if k710 is not None else kinetics_labels(710)
    row = {n: i for i, n in enumerate(k710)}
    out, missing = [], []
    for n in names:
        key = normalize_kinetics_label(n, synonyms)
        if key in row:
            out.append(row[key])
        else:
            missing.append(n)
    if missing:
        raise KeyError(f"{len(missing)} class(es) not in Kinetics-710: {missing[:10]}")
    return out


def map_k710_head(weight: torch.Tensor, bias: torch.Tensor | None, target: str | int | Sequence[str] | Sequence[int]
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows of a 710-way classifier for ``target`` (classes, or explicit row indices)."""
    if weight.shape[0] != 710:
        raise ValueError(f"expected a 710-way head, got {weight.shape[0]} rows")
    if isinstance(target, (str, int)) or (len(target) and isinstance(target[0], str)):
        idx = k710_index_map(target)
    else:
        idx = [int(i) for i in target]
    idx_t = torch.as_tensor(idx, dtype=torch.long, device=weight.device)
    return weight.index_select(0, idx_t), None if bias is None else bias.index_select(0, idx_t)


_HEAD_KEYS = (
    ("head.weight", "head.bias"),  # ours
    ("backbone.transformer.proj.2.weight", "backbone.transformer.proj.2.bias"),  # the authors' .pyth
    ("transformer.proj.2.weight", "transformer.proj.2.bias"),
    ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"),  # MMAction2
)


def map_k710_state_dict(sd: Mapping[str, torch.Tensor], target: str | int | Sequence[str] | Sequence[int]
                        ) -> dict[str, torch.Tensor]:
    """A copy of ``sd`` whose 710-way classifier keeps only ``target``'s rows (any known layout)."""
    out = dict(sd)
    found = False
    for wk, bk in _HEAD_KEYS:
        if wk in out and out[wk].shape[0] == 710:
            out[wk], b = map_k710_head(out[wk], out.get(bk), target)
            if b is not None:
                out[bk] = b
            found = True
    if not found:
        raise ValueError("no 710-way classifier found (looked for " + ", ".join(w for w, _ in _HEAD_KEYS) + ")")
    return out


def load_k710_checkpoint(model: torch.nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor],
                         target: str | int | Sequence[str] | None = None, strict: bool = True):
    """Load a Kinetics-710 checkpoint into a model with a 400/600/700-way (or custom) head.

    ``target`` defaults to the Kinetics set with ``model.num_classes`` classes. Returns the
    :class:`videoformers.checkpoints.LoadReport`.
    """
    from .loading import load_checkpoint, read_checkpoint, unwrap_state_dict

    obj = read_checkpoint(source)[0] if isinstance(source, (str, os.PathLike)) else source
    sd = unwrap_state_dict(obj)
    if target is None:
        n = getattr(model, "num_classes", None)
        if n not in (400, 600, 700):
            raise ValueError(f"cannot infer the target classes of a {n}-way model; pass target=")
        target = n
    return load_checkpoint(model, map_k710_state_dict(sd, target), strict=strict)
