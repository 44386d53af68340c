"""The model contract every registered model keeps (timm's, so that users and tools already know it).

* ``forward_features(x)``: the unpooled output of the trunk: ``(B, C, T, H, W)`` / ``(B, C, H, W)``
  maps for hierarchical models (UniFormer, H-UniFormer, DualFormer), ``(B, N, C)`` tokens for plain
  transformers (ViT, ViViT); UniFormerV2 returns what its head reads (the contexts of its global
  UniBlocks, ``(B, S, T, 1 + H*W, C)``), and its multi-stage fusion is part of ``forward_head``.
* ``forward_head(features, pre_logits=False)``: ``forward(x) == forward_head(forward_features(x))``;
  with ``pre_logits=True`` a ``(B, num_features)`` embedding, the same kind of vector in every family.
* ``forward_intermediates(x, indices=None, norm=False, output_fmt="NCTHW", intermediates_only=False,
  return_prefix_tokens=False)``: the outputs of the chosen stages (hierarchical models) or blocks
  (ViT-likes, reshaped to maps; class tokens returned separately on request). ``indices`` is an
  ``int`` n (the last n) or a sequence of indices (negative ones count from the end). Without
  ``intermediates_only`` the final features (what ``forward_features`` returns) come first:
  ``(final, intermediates)``. The returned maps are the tensors the trunk continues from, so
  gradients of later outputs with respect to them exist (Grad-CAM reads them that way).
* ``prune_intermediate_layers(indices)``: drops what lies after the last chosen layer (and the head).
* ``feature_info``: one entry per intermediate: ``num_chs``, ``reduction`` (spatial stride),
  ``temporal_reduction`` (temporal stride, 1 for image models), ``module`` (the module's name).
* ``num_features``, ``reset_classifier(num_classes)`` (on the model's device and dtype),
  ``set_grad_checkpointing(enable)`` (``True``/``False``, an ``int`` n: the first n blocks, or one
  count per stage), ``no_weight_decay()``.

``create_model(name, features_only=True, out_indices=...)`` wraps a model in :class:`FeatureExtractor`,
a module returning the list of feature maps, which FPN necks, segmentation heads and temporal
localisation pipelines plug into. A family with a dedicated dense-prediction form implements
``to_dense_backbone(out_indices)``, which the wrapper calls (UniFormer image models: the authors'
detection / segmentation / pose backbone, a LayerNorm on every returned map; TPAMI Sec. 6.3-6.5).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .layers import create_classifier, run_blocks, to_ntuple

__all__ = ["FeatureInfo", "ModelContract", "FeatureExtractor", "feature_take_indices", "OUTPUT_FORMATS"]

OUTPUT_FORMATS = ("NCTHW", "NTHWC", "NCHW", "NHWC")


class FeatureInfo(list):
    """``feature_info`` of a model: a list of dicts (``num_chs``, ``reduction``, ``temporal_reduction``,
    ``module``), with timm's accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def temporal_reduction(self) -> list[int]:
        return [f["temporal_reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


def feature_take_indices(num: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """``indices`` -> (sorted non-negative indices, the largest). ``None``: all ``num``; an ``int`` n:
    the last n; a sequence: those (negative ones count from the end). Out of range raises."""
    if indices is None:
        take = list(range(num))
    elif isinstance(indices, int):
        if not 0 < indices <= num:
            raise ValueError(f"indices={indices}: can take the last 1..{num} of {num} intermediates")
        take = list(range(num - indices, num))
    else:
        take = []
        for i in indices:
            j = int(i) + num if int(i) < 0 else int(i)
            if not 0 <= j < num:
                raise ValueError(f"index {i} is out of range for {num} intermediates")
            take.append(j)
        take = sorted(set(take))
        if not take:
            raise ValueError("indices is empty")
    return take, max(take)


def check_output_fmt(output_fmt: str, video: bool) -> bool:
    """Validate ``output_fmt``; returns whether it is channels-first."""
    ok = ("NCTHW", "NTHWC") if video else ("NCHW", "NHWC")
    if output_fmt not in ok:
        raise ValueError(f"output_fmt must be one of {ok} for this model, got {output_fmt!r}")
    return output_fmt[1] == "C"


def take_map(x: torch.Tensor, channels_first: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A channels-last map ``(B, *S, C)`` -> (the feature in the requested layout, the tensor to
    continue from). Both are views of ``x``; continuing from a view of the returned feature keeps it
    in the graph (gradients with respect to it exist)."""
    if not channels_first:
        return x, x
    feat = x.movedim(-1, 1)
    return feat, feat.movedim(1, -1)


def take_tokens(x: torch.Tensor, num_prefix: int, grid: Sequence[int], channels_first: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens ``(B, P + prod(grid), C)`` -> (the map ``(B, C, *grid)`` or ``(B, *grid, C)``, the prefix
    tokens ``(B, P, C)``, the tokens to continue from, rebuilt from the returned map so that the map
    stays in the graph)."""
    B, _, C = x.shape
    prefix = x[:, :num_prefix]
    grid_cl = x[:, num_prefix:].reshape(B, *grid, C)
    feat, cont = take_map(grid_cl, channels_first)
    tokens = cont.reshape(B, -1, C)
    if num_prefix:
        tokens = torch.cat([prefix, tokens], dim=1)
    return feat, prefix, tokens


def run_blocks_taking(blocks, x: torch.Tensor, checkpoint: int, take: Sequence[int], take_fn) -> tuple[torch.Tensor, list]:
    """:func:`~videoformers.models.layers.run_blocks` that, after each block whose index is in ``take``, calls
    ``take_fn(x) -> (feature, x)`` (the feature recorded, the trunk continuing from the returned ``x``)."""
    if not take:
        return run_blocks(blocks, x, checkpoint), []
    feats = []
    for i, blk in enumerate(blocks):
        x = run_blocks([blk], x, int(i < checkpoint))
        if i in take:
            f, x = take_fn(x)
            feats.append(f)
    return x, feats


class ModelContract:
    """Mixin with the parts of the contract every family shares (see the module docstring).

    A family sets ``num_features``, ``num_classes``, ``head`` (from :func:`create_classifier`) and
    ``feature_info``, implements ``forward_features``, ``forward_head``, ``forward_intermediates``,
    ``prune_intermediate_layers`` and ``_stage_depths`` (blocks per checkpointing stage), and reads
    ``self.grad_checkpointing`` (one count per stage) where it runs its blocks.
    """

    head_prefix = "head."
    #: Every tensor with one row per class (the classifier and any auxiliary per-class head): what
    #: fine-tuning to another ``num_classes`` re-initialises, the optimiser's head group and what
    #: ``convert`` strips for a backbone-only file.
    classifier_prefixes: tuple[str, ...] = ("head.",)
    feature_info: FeatureInfo

    # ---------------------------------------------------------------- classifier
    def _init_head(self) -> None:
        """Initialise a freshly created ``head`` (the family's classifier init); default: as built."""

    def reset_classifier(self, num_classes) -> None:
        """A new classifier for ``num_classes`` (0: none, ``forward`` returns pre-logits), on the model's
        device and dtype."""
        self.num_classes = num_classes
        self.head = create_classifier(self.num_features, num_classes, like=next(self.parameters()))
        self._init_head()

    # ---------------------------------------------------------------- gradient checkpointing
    def _stage_depths(self) -> tuple[int, ...]:
        raise NotImplementedError

    def set_grad_checkpointing(self, enable: bool | int | Sequence[int] = True) -> None:
        """Recompute activations in backward: ``True`` every block, ``False`` none, an ``int`` n the first
        n blocks (counted over all stages in order, the authors' ``checkpoint_num``), or one count per
        stage (``[n1, n2, ...]``: the first n_i blocks of stage i, UniFormer's ``CHECKPOINT_NUM``)."""
        depths = self._stage_depths()
        if isinstance(enable, bool):
            counts = depths if enable else (0,) * len(depths)
        elif isinstance(enable, int):
            left, out = int(enable), []
            for d in depths:
                out.append(min(d, max(left, 0)))
                left -= d
            counts = tuple(out)
        else:
            counts = to_ntuple(enable, len(depths))
            if any(c < 0 or c > d for c, d in zip(counts, depths)):
                raise ValueError(f"per-stage checkpoint counts {counts} must lie in [0, depth] for depths {depths}")
        self.grad_checkpointing = tuple(int(c) for c in counts)
        self._on_grad_checkpointing()

    def _on_grad_checkpointing(self) -> None:
        """Hook for families whose blocks hold the switch themselves."""

    def no_weight_decay(self) -> set[str]:
        return set()


class FeatureExtractor(nn.Module):
    """``create_model(name, features_only=True, out_indices=...)``: the model's trunk, returning the list
    of feature maps ``forward_intermediates`` gives for ``out_indices`` (all by default), with their
    ``feature_info``. What lies after the last index (and the classifier) is pruned.

    Dense-prediction hook: a model whose family defines the backbone its dense-task heads read (the
    UniFormer image models: the authors' detection/segmentation/pose backbone with a LayerNorm on every
    returned map) implements ``to_dense_backbone(out_indices)``, called here after pruning unless
    ``dense=False``; models without it are wrapped as they are. :func:`videoformers.load_checkpoint`
    on the extractor loads into the wrapped model (its key layout, its report).
    """

    def __init__(self, model: nn.Module, out_indices: int | Sequence[int] | None = None, output_fmt: str | None = None,
                 norm: bool = False, dense: bool = True) -> None:
        super().__init__()
        if not hasattr(model, "forward_intermediates"):
            raise TypeError(f"{type(model).__name__} has no forward_intermediates")
        self.out_indices = model.prune_intermediate_layers(out_indices)
        to_dense = getattr(model, "to_dense_backbone", None)
        if dense and callable(to_dense) and not _is_video(model):
            to_dense(self.out_indices)
        self.model = model
        self.output_fmt = output_fmt or ("NCTHW" if _is_video(model) else "NCHW")
        self.norm = norm
        self.feature_info = FeatureInfo(model.feature_info[i] for i in self.out_indices)
        self.model_card = getattr(model, "model_card", None)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, indices=self.out_indices, norm=self.norm,
                                                output_fmt=self.output_fmt, intermediates_only=True)

    @property
    def checkpoint_module(self) -> nn.Module:
        """The module :func:`videoformers.load_checkpoint` loads into (the wrapped model)."""
        return self.model

    def set_window_attention(self, window_size, window_pattern: str = "w") -> None:
        """The wrapped model's ``set_window_attention`` (e.g. UniFormer's stage-3 global / window /
        hybrid switch, TPAMI Sec. 4.3); ``TypeError`` for a family without one."""
        fn = getattr(self.model, "set_window_attention", None)
        if not callable(fn):
            raise TypeError(f"{type(self.model).__name__} has no window attention to configure")
        fn(window_size, window_pattern)


def _is_video(model: nn.Module) -> bool:
    card = getattr(model, "model_card", None)
    if card is not None:
        return card.is_video
    return getattr(model, "dims", 3) == 3


def classifier_is_zero(model: nn.Module) -> bool:
    """Whether every weight under the model's ``classifier_prefixes`` is zero (ViViT initialises its head
    so, Sec. 4.1): its logits are then the bias whatever the input, which makes an export check, a CAM or a
    prediction say nothing. ``False`` for a model without such weights."""
    prefixes = tuple(getattr(model, "classifier_prefixes", ("head.",)))
    ws = [p for n, p in model.named_parameters() if n.startswith(prefixes) and n.endswith("weight")]
    return bool(ws) and all(not p.is_meta and not bool(p.detach().any()) for p in ws)

