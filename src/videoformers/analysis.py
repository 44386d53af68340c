"""Parameter and FLOP counting in the papers' convention.

The papers report "FLOPs" as fvcore counts them: one fused multiply-add = one FLOP, attention
matmuls included, normalisation layers counted per element, element-wise activations ignored.
``torch.utils.flop_counter.FlopCounterMode`` counts 2 per multiply-add and has no formula for the
fused CPU attention kernel; we count on the ``meta`` device (where SDPA decomposes into counted
matmuls, no memory is allocated and full-size models cost nothing), halve the matmul/conv count
and add fvcore's per-element norm costs.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_flops", "build_on_meta", "FlopReport"]

aten = torch.ops.aten


def count_params(model: nn.Module, trainable_only: bool = False, exclude: Sequence[str] = ()) -> int:
    """Number of parameter elements (shared parameters counted once).

    ``exclude`` drops parameters whose name starts with one of the prefixes (e.g. ``("head.",)``
    for papers that report backbone-only counts).
    """
    seen: set[int] = set()
    total = 0
    for name, p in model.named_parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        if any(name.startswith(e) for e in exclude):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


# fvcore's per-element costs for norms (fvcore/nn/jit_handles.py): layer/group norm 5 per element
# with affine, batch norm in eval 1 per element (+1 with affine), in training like layer norm.
def _layer_norm_flops(input_shape, normalized_shape, weight_shape=None, *a, out_shape=None, **kw) -> int:
    return _numel(input_shape) * (5 if weight_shape is not None else 4) * 2  # x2: halved later


def _bn_eval_flops(input_shape, weight_shape=None, *a, out_shape=None, **kw) -> int:
    return _numel(input_shape) * (2 if weight_shape is not None else 1) * 2


def _sdpa_cpu_flops(q, k, v, *a, out_shape=None, **kw) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(q, k, v)


def _custom_mapping(include_norms: bool) -> dict:
    # FlopCounterMode wraps these so they receive shapes, not tensors.
    mapping: dict = {}
    cpu_sdpa = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        mapping[cpu_sdpa] = _sdpa_cpu_flops
    if include_norms:
        mapping[aten.native_layer_norm] = _layer_norm_flops
        for op_name in ("_native_batch_norm_legit_no_training",):
            op = getattr(aten, op_name, None)
            if op is not None:
                mapping[op] = _bn_eval_flops
    return mapping


class FlopReport(dict):
    """``{module_name: GFLOPs}`` with ``.total`` (GFLOPs, papers' convention)."""

    total: float = 0.0


def build_on_meta(builder: Callable[[], nn.Module]) -> nn.Module:
    """Construct a model without allocating weights (parameters live on the ``meta`` device)."""
    with torch.device("meta"):
        return builder()


def count_flops(
    model: nn.Module,
    input_shape: Sequence[int],
    include_norms: bool = True,
    by_module: bool = False,
) -> float | FlopReport:
    """GFLOPs (10^9 multiply-adds, fvcore convention) of one forward pass with ``input_shape``.

    ``input_shape`` includes the batch dimension, e.g. ``(1, 3, 16, 224, 224)``. The model is
    evaluated in ``eval()`` mode on a ``meta`` copy, so nothing is allocated and the original model
    (on any device) is left untouched. Works on models built on the meta device.
    """
    meta_model = _to_meta(model)
    meta_model.eval()
    x = torch.empty(tuple(input_shape), device="meta")
    counter = FlopCounterMode(display=False, custom_mapping=_custom_mapping(include_norms))
    with counter, torch.no_grad():
        meta_model(x)
    total = counter.get_total_flops() / 2e9
    if not by_module:
        return total
    report = FlopReport()
    for mod, counts in counter.get_flop_counts().items():
        report[mod] = sum(counts.values()) / 2e9
    report.total = total
    return report


def _to_meta(model: nn.Module) -> nn.Module:
    if all(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
        return model
    # Pre-seeding deepcopy's memo with meta stand-ins copies the module structure, not the weights.
    memo: dict[int, torch.Tensor] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)
