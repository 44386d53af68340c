"""Reading, unwrapping, converting and inflating checkpoints, with a by-name report.

Pipeline of :func:`load_checkpoint`:

1. read ``.pth/.pt/.pyth/.bin`` with ``torch.load(weights_only=True)`` (no pickled code runs) or
   ``.safetensors``;
2. unwrap training wrappers: ``model`` / ``model_state`` / ``state_dict`` / ``module`` entries and
   the ``module.`` prefix of DDP;
3. MMAction2: ``backbone.`` -> backbone keys, ``cls_head.fc_cls.`` -> the model's classifier;
4. the model's own ``convert_state_dict`` (authors' key layout -> ours; a no-op on ours);
5. 2D -> 3D inflation where a checkpoint kernel lacks the temporal axis (average, as the
   UniFormer/ViViT authors' code, or central frame);
6. compare with the model: missing, unexpected and shape-mismatched keys are reported by name with
   both shapes; ``strict=True`` raises :class:`CheckpointError` carrying the report.

A model can declare what a checkpoint of its source task legitimately lacks or adds (UniFormer's dense
backbone loading an ImageNet or MMDetection/MMSegmentation checkpoint): ``checkpoint_ignored_prefixes``
(checkpoint keys left out on purpose, e.g. the classifier: ``report.ignored``) and
``checkpoint_new_prefixes`` (model tensors the source task has not got, e.g. the dense output norms:
``report.new``, left at their initialisation). Neither counts against a strict load. A wrapper (the
``features_only`` :class:`~videoformers.models.contract.FeatureExtractor`) names the module to load
into as ``checkpoint_module``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import torch
import torch.nn as nn

__all__ = [
    "CheckpointError",
    "LoadReport",
    "read_checkpoint",
    "unwrap_state_dict",
    "inflate_weight",
    "load_checkpoint",
    "save_checkpoint_atomic",
    "in_model_layout",
    "atomic_write",
]

StateDict = dict[str, torch.Tensor]
_WRAPPER_KEYS = ("state_dict", "model_state", "model", "module", "model_ema", "state_dict_ema")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model (see ``.report``)."""

    def __init__(self, message: str, report: "LoadReport | None" = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)
    # left at their initialisation because the checkpoint's shape differs (a new classifier: fine-tuning)
    dropped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    loaded: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    # checkpoint keys the model leaves out by design (its ``checkpoint_ignored_prefixes``)
    ignored: list[str] = field(default_factory=list)
    # model tensors the checkpoint's task has not got (``checkpoint_new_prefixes``): left at their init
    new: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    total: int = 0  # tensors of the model

    def __str__(self) -> str:
        """A few lines however large the model: one per kind of problem, keys grouped by their prefix."""
        lines = [f"loaded {self.loaded}" + (f" of {self.total}" if self.total else "") + " tensors"
                 + (f", {len(self.inflated)} inflated 2D->3D" if self.inflated else "")]
        if self.dropped:
            lines.append("re-initialised (the checkpoint's classifier has another shape): "
                         + ", ".join(f"{k} {tuple(a)} -> {tuple(b)}" for k, a, b in self.dropped))
        if self.new:
            lines.append(f"new in this model, left at their init ({len(self.new)}): {_grouped(self.new)}")
        if self.ignored:
            lines.append(f"ignored by design ({len(self.ignored)}): {_grouped(self.ignored)}")
        if self.missing:
            lines.append(f"missing in checkpoint ({len(self.missing)}): {_grouped(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected in checkpoint ({len(self.unexpected)}): {_grouped(self.unexpected)}")
        if self.mismatched:
            shown = "; ".join(f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched[:3])
            more = f"; ... {len(self.mismatched) - 3} more" if len(self.mismatched) > 3 else ""
            lines.append(f"shape mismatch ({len(self.mismatched)}): {shown}{more}")
        return "\n".join(lines)


def _grouped(keys: list[str], limit: int = 6) -> str:
    """``blocks.* (170), head.weight, head.bias`` -- keys grouped by their first name component."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.split(".")[0], []).append(k)
    parts = [g[0] if len(g) == 1 else f"{p}.* ({len(g)})" for p, g in groups.items()]
    return ", ".join(parts[:limit]) + (f", ... {len(parts) - limit} more groups" if len(parts) > limit else "")


def read_checkpoint(path: str | os.PathLike) -> tuple[Any, dict[str, str]]:
    """Load a checkpoint file without running pickled code. Returns (object, safetensors metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read safetensors file {path}: {e}") from e
    if path.suffix == ".npz":
        import numpy as np

        try:
            with np.load(path) as z:
                return {k: torch.from_numpy(z[k]) for k in z.files}, {}
        except Exception as e:
            raise CheckpointError(f"cannot read npz file {path}: {e}") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True), {}
    except Exception as e:
        text = str(e)
        first = (text.strip().splitlines() or [type(e).__name__])[0][:200]
        if "weights_only" in text.lower() or "Unsupported global" in text or "GLOBAL" in text:
            detail = next((ln.strip() for ln in text.splitlines() if "Unsupported global" in ln), "a Python object")
            raise CheckpointError(
                f"{path} holds pickled objects other than tensors ({detail[:200]}), which torch.load(weights_only=True) "
                "refuses on purpose, as loading them could run code: re-save the state dict only "
                "(torch.save(model.state_dict(), ...))"
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path} ({path.stat().st_size} bytes): truncated, or not a "
                              f"PyTorch checkpoint ({first})") from None


def unwrap_state_dict(obj: Any) -> StateDict:
    """Find the flat ``{name: tensor}`` mapping inside training wrappers and strip ``module.``."""
    depth = 0
    while isinstance(obj, Mapping) and depth < 4:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj, depth = inner, depth + 1
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"no tensors found in checkpoint; top-level keys: {list(obj)[:10]}")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _mmaction_to_flat(sd: StateDict, head_prefix: str) -> StateDict:
    if not any(k.startswith(("backbone.", "cls_head.")) for k in sd):
        return sd
    out: StateDict = {}
    for k, v in sd.items():
        if k.startswith("backbone."):
            out[k[len("backbone."):]] = v
        elif k.startswith("cls_head.fc_cls."):
            out[head_prefix + k[len("cls_head.fc_cls."):]] = v
        else:
            out[k] = v
    return out


def inflate_weight(w2d: torch.Tensor, time_size: int, mode: Literal["average", "center"] = "average") -> torch.Tensor:
    """Inflate a 2D kernel ``(O, I, kh, kw)`` to 3D ``(O, I, t, kh, kw)``.

    ``average`` repeats it over time divided by ``t`` (I3D / the UniFormer authors' code), so a
    static video gives the image response; ``center`` puts it on the central frame and zeros
    elsewhere (ViViT Sec. 3.4 "central frame initialisation", MMAction2's default).
    """
    if mode == "average":
        return w2d.unsqueeze(2).repeat_interleave(time_size, dim=2) / time_size
    if mode == "center":
        out = w2d.new_zeros(w2d.shape[:2] + (time_size,) + w2d.shape[2:])
        out[:, :, time_size // 2] = w2d
        return out
    raise ValueError(f"unknown inflation mode {mode!r}; use 'average' or 'center'")


def in_model_layout(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> StateDict:
    """``sd`` in ``model``'s current key layout: the model's ``convert_state_dict`` (a no-op on its own
    layout) maps older names, e.g. UniFormer's layer scale ``gamma_1`` -> ``ls1.gamma``. For resuming our
    own training checkpoints with ``load_state_dict`` after a key rename."""
    convert = getattr(model, "convert_state_dict", None)
    return convert(dict(sd)) if callable(convert) else dict(sd)


def load_checkpoint(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    strict: bool = True,
    inflate: Literal["average", "center"] = "average",
    drop_head_on_mismatch: bool = False,
    min_loaded: float = 0.5,
    allow_nonfinite: bool = False,
) -> LoadReport:
    """Load ``source`` (a path or a state dict in any supported layout) into ``model``.

    ``drop_head_on_mismatch`` leaves the classifier at its initialisation when the checkpoint
    has another number of classes (fine-tuning on a new dataset); otherwise that is a mismatch.
    Returns a :class:`LoadReport`; with ``strict=True`` any missing/unexpected/mismatched key
    raises :class:`CheckpointError` whose message lists them by name with both shapes. A non-strict load
    that fills fewer than ``min_loaded`` of the model's tensors (another model's checkpoint: it would
    train from scratch without a word) is an error too; ``min_loaded=0`` allows it. Weights that are NaN
    or infinite are refused (naming the tensors) unless ``allow_nonfinite``.
    """
    inner = getattr(model, "checkpoint_module", None)
    if isinstance(inner, nn.Module) and inner is not model:
        model = inner
    meta: dict[str, str] = {}
    if isinstance(source, (str, os.PathLike)):
        obj, meta = read_checkpoint(source)
    else:
        obj = source
    sd = unwrap_state_dict(obj)
    head_prefix = getattr(model, "head_prefix", "head.")
    heads = tuple(getattr(model, "classifier_prefixes", (head_prefix,)))  # every per-class tensor
    sd = _mmaction_to_flat(sd, head_prefix)
    convert = getattr(model, "convert_state_dict", None)
    if callable(convert):
        sd = convert(sd)

    target = model.state_dict()
    report = LoadReport(metadata=meta)
    ignored = tuple(getattr(model, "checkpoint_ignored_prefixes", ()) or ())
    new = tuple(getattr(model, "checkpoint_new_prefixes", ()) or ())
    to_load: StateDict = {}
    for k, v in sd.items():
        if k not in target:
            (report.ignored if ignored and k.startswith(ignored) else report.unexpected).append(k)
            continue
        dst = target[k]
        if v.shape != dst.shape and v.ndim + 1 == dst.ndim == 5 and v.shape[:2] == dst.shape[:2] and v.shape[2:] == dst.shape[3:]:
            v = inflate_weight(v, dst.shape[2], inflate)
            report.inflated.append(k)
        if v.shape != dst.shape:
            if drop_head_on_mismatch and k.startswith(heads):
                report.dropped.append((k, tuple(v.shape), tuple(dst.shape)))
                continue
            report.mismatched.append((k, tuple(v.shape), tuple(dst.shape)))
            continue
        to_load[k] = v.to(dst.dtype)
    skipped_head = drop_head_on_mismatch and any(k.startswith(heads) for k in target if k not in to_load)
    report.missing = [k for k in target if k not in to_load and k not in {m[0] for m in report.mismatched}
                      and not (skipped_head and k.startswith(heads))]
    report.missing = [k for k in report.missing if not k.endswith("num_batches_tracked")]
    if new:
        report.new = [k for k in report.missing if k.startswith(new)]
        report.missing = [k for k in report.missing if not k.startswith(new)]
    report.loaded, report.total = len(to_load), len(target)
    bad = [k for k, v in to_load.items() if v.is_floating_point() and not v.is_meta and not bool(torch.isfinite(v).all())]
    if bad and not allow_nonfinite:
        raise CheckpointError(f"checkpoint has NaN or infinite values in {len(bad)} tensor(s): {', '.join(bad[:5])}"
                              + (" ..." if len(bad) > 5 else "") + " (a diverged or corrupted run)", report)
    if strict and not report.ok:
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointError(f"checkpoint does not fit {name}:\n{report}", report)
    if not strict and target and report.loaded < min_loaded * len(target):
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointError(f"only {report.loaded} of {len(target)} tensors of {name} come from the checkpoint "
                              f"(less than {min_loaded:.0%}): is it another model's? (min_loaded=0 allows it)\n{report}",
                              report)
    # A model built on the meta device (no memory, no init cost) takes the tensors as they are.
    on_meta = any(t.is_meta for t in target.values())
    if on_meta and (report.missing or report.mismatched):
        raise CheckpointError(f"model is on the meta device but the checkpoint does not cover it:\n{report}", report)
    model.load_state_dict(to_load, strict=False, assign=on_meta)
    if on_meta and report.new:
        _materialise(model, report.new, next((v.device for v in to_load.values()), torch.device("cpu")))
    return report


def _materialise(model: nn.Module, keys: list[str], device: torch.device) -> None:
    """Give the modules holding ``keys`` (all their own tensors, still on the meta device) real storage
    and their default initialisation (``reset_parameters``)."""
    owners = {k.rsplit(".", 1)[0] if "." in k else "" for k in keys}
    for name in sorted(owners):
        mod = model.get_submodule(name)
        own = [f"{name}.{n}" if name else n for n, _ in
               list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False))]
        if set(own) - set(keys) or not callable(getattr(mod, "reset_parameters", None)):
            raise CheckpointError(f"model is on the meta device and {name or 'the model'} is not in the checkpoint "
                                  "and cannot be initialised on its own: build the model on a real device")
        mod.to_empty(device=device, recurse=False)
        mod.reset_parameters()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """``write(tmp)`` into a temporary file next to ``path``, synced, then renamed onto ``path``: a kill at
    any moment leaves either the old or the new file, never a truncated one (nor the temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        # the permissions of any file the user creates (safetensors writes 0600, private to its owner)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` (or safetensors for ``.safetensors``: ``obj`` is ``tensors`` or ``(tensors, metadata)``)
    through :func:`atomic_write`."""
    def write(tmp: str) -> None:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import save_file

            tensors, metadata = obj if isinstance(obj, tuple) else (obj, None)
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        else:
            torch.save(obj, tmp)

    atomic_write(path, write)
