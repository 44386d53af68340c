"""The recipe audit (docs/recipes_audit.yaml, docs/recipes.md) matches the shipped recipes.

docs/recipes_audit.yaml maps recipe name -> {key: {value, authors, source, note}}: our resolved value next to
the authors' key, value and source. This test resolves every recipe with ``load_config`` and checks each audited
``value``, so a later edit of a recipe cannot drift from the audit silently (change both, with the authors'
source, or say why in the note).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from videoformers.data.config import DENSE_DATASETS
from videoformers.engine.config import list_recipes, load_config

DOCS = Path(__file__).resolve().parents[1] / "docs"
AUDIT_FILE = DOCS / "recipes_audit.yaml"
TABLE_FILE = DOCS / "recipes.md"
PROCESSES = 8  # ``total_batch`` = train.batch_size x 8 processes x train.accum_steps (the authors' 8 GPUs)
FIELDS = {"value", "authors", "source", "note"}
# Keys every recipe's audit covers (issue #17); model-specific ones (drop path, presets, ...) come on top.
REQUIRED = {
    "optim.name", "optim.lr", "optim.lr_scale_ref", "total_batch", "optim.weight_decay", "optim.warmup_epochs",
    "train.epochs", "optim.min_lr", "model.drop_path_rate", "train.label_smoothing", "train.mixup", "train.cutmix", "train.ema_decay",
    "data.num_frames", "data.sampling", "data.frame_interval", "data.img_size", "data.train_scale",
    "data.random_resized_crop", "data.rrc_scale", "data.rrc_ratio", "data.hflip", "data.randaugment",
    "data.random_erasing", "data.num_samples", "data.test_num_clips", "data.test_num_crops", "data.test_scale",
    "eval.view_average",
}

DENSE_REQUIRED = {"optim.name", "optim.lr", "optim.lr_scale_ref", "total_batch", "optim.weight_decay",
                  "optim.warmup_epochs", "optim.sched", "train.epochs", "model.drop_path_rate"}


def _audit() -> dict:
    with open(AUDIT_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


AUDIT = _audit()
RECIPES = sorted(n for n in list_recipes() if not n.startswith("demo") and not n.endswith("_demo"))


def resolve(cfg, key: str):
    """Our value for an audited key: ``section.field``, ``model.overrides.X`` or the derived ``total_batch``."""
    if key == "total_batch":
        return cfg.train.batch_size * PROCESSES * cfg.train.accum_steps
    section, _, rest = key.partition(".")
    obj = getattr(cfg, section)
    for part in rest.split("."):
        if isinstance(obj, dict):
            if part not in obj:
                raise KeyError(f"{key}: {part!r} is not set")
            obj = obj[part]
        else:
            obj = getattr(obj, part)
    return obj


def same(ours, audited) -> bool:
    if isinstance(ours, tuple):
        ours = list(ours)
    if isinstance(ours, bool) or isinstance(audited, bool) or ours is None or audited is None:
        return ours is audited or ours == audited and type(ours) is type(audited)
    if isinstance(ours, (int, float)) and isinstance(audited, (int, float)):
        return math.isclose(float(ours), float(audited), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(ours, list) and isinstance(audited, list):
        return len(ours) == len(audited) and all(same(a, b) for a, b in zip(ours, audited))
    if isinstance(ours, dict) and isinstance(audited, dict):
        return ours.keys() == audited.keys() and all(same(ours[k], audited[k]) for k in ours)
    return ours == audited


def test_every_training_recipe_is_audited():
    assert RECIPES, "no recipes found"
    assert set(RECIPES) <= set(AUDIT), f"recipes without an audit entry: {sorted(set(RECIPES) - set(AUDIT))}"
    assert set(AUDIT) <= set(RECIPES), f"audit entries for unknown recipes: {sorted(set(AUDIT) - set(RECIPES))}"


@pytest.mark.parametrize("name", RECIPES)
def test_audited_values_match_the_recipe(name):
    entry = AUDIT.get(name)
    assert entry, f"{name} has no entry in {AUDIT_FILE.name}"
    cfg = load_config(name)
    # The video keys; the image recipes of the dense tasks (segmentation, pose) audit their own sections.
    required = REQUIRED if cfg.data.dataset not in DENSE_DATASETS else DENSE_REQUIRED
    missing = required - set(entry)
    assert not missing, f"{name}: audit lacks {sorted(missing)}"
    drift = []
    for key, row in entry.items():
        assert set(row) == FIELDS, f"{name}.{key}: fields {sorted(row)}, expected {sorted(FIELDS)}"
        assert row["authors"] and row["source"], f"{name}.{key}: no authors' value or source"
        ours = resolve(cfg, key)
        if not same(ours, row["value"]):
            drift.append(f"{key}: recipe {ours!r} != audited {row['value']!r}")
    assert not drift, f"{name} drifted from docs/recipes_audit.yaml:\n  " + "\n  ".join(drift)


def test_sources_name_a_commit_and_a_line_or_the_paper():
    bad = []
    for name, entry in AUDIT.items():
        for key, row in entry.items():
            src = row["source"]
            if not (re.search(r"[\w.-]+/[\w.-]+@[0-9a-f]{7,} \S+", src) or src.startswith("paper:")):
                bad.append(f"{name}.{key}: {src}")
    assert not bad, "sources without repository@commit or paper:\n  " + "\n  ".join(bad)


def test_markdown_table_agrees_with_the_yaml():
    """docs/recipes.md holds the same rows: one section per recipe, one row per audited key with its value."""
    text = TABLE_FILE.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M))
    assert set(sections) == set(AUDIT), sorted(set(sections) ^ set(AUDIT))
    for name, entry in AUDIT.items():
        rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| `([^`]*)` \|", sections[name], flags=re.M)}
        assert list(rows) == list(entry), f"{name}: the markdown rows differ from the YAML keys"
        for key, row in entry.items():
            assert same(_cell(yaml.safe_load(rows[key])), row["value"]), \
                f"{name}.{key}: markdown {rows[key]!r} vs yaml {row['value']!r}"


def _cell(v):
    """A markdown cell read back: YAML 1.1 reads ``1e-05`` as a string, so numbers are re-parsed."""
    if isinstance(v, list):
        return [_cell(x) for x in v]
    if isinstance(v, dict):
        return {k: _cell(x) for k, x in v.items()}
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v
