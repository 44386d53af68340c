"""Users' own models as folders (and Hugging Face Hub repos): ``save_pretrained`` / ``from_pretrained``.

A folder holds ``config.json`` (the registry name, the builder overrides, classes, label names, test
preprocessing) and ``model.safetensors`` (our key layout). ``from_pretrained`` rebuilds exactly that
model; ``"hf-hub:<org>/<repo>"`` reads the two files from a Hub repo through ``huggingface_hub``
(``HF_ENDPOINT``, ``HF_HOME``, tokens as usual). To publish one: ``huggingface_hub.upload_folder(
repo_id="org/name", folder_path=DIR)`` (needs a token and network, so it is not exercised in the tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

__all__ = ["save_pretrained", "from_pretrained"]

FORMAT = "videoformers-pretrained"


def _jsonable(v):
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"override value {v!r} cannot be written to config.json")


def save_pretrained(model: nn.Module, folder: str | os.PathLike) -> Path:
    """Write ``model`` (built by ``create_model``) as ``folder/config.json`` + ``folder/model.safetensors``."""
    from .loading import atomic_write, save_checkpoint_atomic

    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError("save_pretrained needs a model built by videoformers.create_model (it records its name)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card = getattr(model, "model_card", None)
    cfg = {
        "format": FORMAT, "format_version": 1, "model_name": name,
        "overrides": _jsonable(dict(getattr(model, "model_overrides", {}))),
        "num_classes": _jsonable(getattr(model, "num_classes", None)),
        "labels": list(getattr(model, "label_names", None) or []) or None,
        "preprocess": _jsonable(dict(getattr(model, "preprocess_config", None) or {})),
        "mean": list(getattr(model, "data_mean", None) or (card.mean if card else ())) or None,
        "std": list(getattr(model, "data_std", None) or (card.std if card else ())) or None,
        "pretrained_from": getattr(getattr(model, "pretrained_cfg", None), "name", None),
    }
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint_atomic((sd, {"format": FORMAT}), folder / "model.safetensors")
    atomic_write(folder / "config.json", lambda tmp: Path(tmp).write_text(json.dumps(cfg, indent=2)))
    return folder


def from_pretrained(source: str | os.PathLike, **overrides) -> nn.Module:
    """The model ``save_pretrained`` wrote into a folder, or ``"hf-hub:<org>/<repo>"``; ``overrides``
    update the recorded ones (e.g. ``num_frames``)."""
    from videoformers.registry import create_model

    from .loading import load_checkpoint

    if isinstance(source, str) and source.startswith("hf-hub:"):
        from .zoo import hub_download

        repo = source[len("hf-hub:"):]
        cfg_path, weights = hub_download(repo, "config.json"), hub_download(repo, "model.safetensors")
    else:
        folder = Path(source)
        cfg_path, weights = folder / "config.json", folder / "model.safetensors"
        if not cfg_path.is_file() or not weights.is_file():
            raise FileNotFoundError(f"{folder} is not a saved model folder (config.json + model.safetensors)")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{cfg_path} is not a videoformers config (format {cfg.get('format')!r})")
    ov = {**cfg.get("overrides", {}), **overrides}
    with torch.device("meta"):
        model = create_model(cfg["model_name"], **ov)
    load_checkpoint(model, weights, strict=True)
    model.model_overrides = ov
    if cfg.get("labels"):
        model.label_names = list(cfg["labels"])
    model.preprocess_config = dict(cfg.get("preprocess") or {})
    if cfg.get("mean"):
        model.data_mean, model.data_std = tuple(cfg["mean"]), tuple(cfg["std"])
    return model.eval()
