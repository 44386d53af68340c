"""Classification losses for single-, multi-output and multi-head models.

- Hard labels ``(B,)``: cross-entropy with optional label smoothing (Szegedy et al.; ViViT eq. 11).
- Soft labels ``(B, K)`` (mixup/cutmix, which fold label smoothing into the targets):
  ``-sum(y * log_softmax(x))``.
- A model returning a tuple/list of logits in train mode (the light-weight UniFormer returns
  ``(head, score_token_head)``): weighted sum of the per-output losses. The default weights are
  equal and sum to 1, i.e. ``0.5 * L(head) + 0.5 * L(score token)`` as in the authors' light
  training loop (Sense-X/UniFormer ``video_classification/tools/train_net_cls.py``).
- A model returning a dict of logits (ViViT Epic-Kitchens verb/noun heads) with a dict of labels
  of the same keys: the sum of per-head losses.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = ["classification_loss", "compute_loss", "main_logits"]


def classification_loss(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    logits = logits.float()
    if target.ndim == 2 and target.is_floating_point():
        return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing)


def compute_loss(
    outputs: Any,
    target: Any,
    label_smoothing: float = 0.0,
    output_weights: Sequence[float] | None = None,
) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return classification_loss(outputs, target, label_smoothing)
    if isinstance(outputs, (tuple, list)):
        n = len(outputs)
        w = list(output_weights) if output_weights is not None else [1.0 / n] * n
        if len(w) != n:
            raise ValueError(f"train.output_weights has {len(w)} weights but the model returned {n} outputs")
        return sum(wi * classification_loss(o, target, label_smoothing) for wi, o in zip(w, outputs))
    if isinstance(outputs, dict):
        if not isinstance(target, dict):
            raise ValueError(
                f"the model returns a dict of logits {sorted(outputs)} (several heads) but the dataset gives a "
                "single label per clip; multi-head training needs a dataset whose 'label' is a dict with the same keys"
            )
        missing = sorted(set(outputs) - set(target))
        if missing:
            raise ValueError(f"labels missing for head(s) {missing}; the dataset gives {sorted(target)}")
        return sum(classification_loss(outputs[k], target[k], label_smoothing) for k in outputs)
    raise TypeError(f"cannot compute a loss on model output of type {type(outputs).__name__}")


def main_logits(outputs: Any) -> torch.Tensor | None:
    """The logits used for accuracy: the tensor itself or the first of a tuple (None for dicts)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    return None
