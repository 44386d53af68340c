"""Parameter and FLOP counting in the papers' convention.

The papers report "FLOPs" as fvcore counts them: one fused multiply-add = one FLOP, attention
matmuls included, normalisation layers counted per element, element-wise activations ignored.
``torch.utils.flop_counter.FlopCounterMode`` counts 2 per multiply-add and has no formula for the
fused CPU attention kernel; we count on the ``meta`` device (where SDPA decomposes into counted
matmuls, no memory is allocated and full-size models cost nothing), halve the matmul/conv count
and add fvcore's per-element norm costs.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_flops", "build_on_meta", "FlopReport", "LiveTensorMemory", "MemoryReport", "training_memory"]

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


class LiveTensorMemory:
    """Bytes of live tensor storages over a block, above those alive when it starts (peak and current).

    A ``TorchDispatchMode`` sees every op's outputs; each new storage is counted until it is freed
    (tracked by weak reference), so ``peak_mb`` is what a caching-free allocator would need at peak
    -- the CPU/meta counterpart of ``torch.cuda.max_memory_allocated`` (kernel-internal scratch is not
    seen). Works on any device, ``meta`` included, where it measures a step's memory without
    computing anything. ``mark()`` returns the live bytes now (e.g. at the end of the forward pass).
    """

    method = "peak live tensor bytes (dispatch tracker, untimed run)"

    def __init__(self, ignore: Sequence[torch.Tensor] = ()) -> None:
        self._ignore = {self._key(t) for t in ignore}

    @staticmethod
    def _key(t: torch.Tensor) -> int:
        return t.untyped_storage()._cdata

    def __enter__(self) -> "LiveTensorMemory":
        from torch.multiprocessing.reductions import StorageWeakRef
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        state = self

        class _Tracker(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                state._sweep()
                for t in tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        st = t.untyped_storage()
                        key, n = st._cdata, st.nbytes()
                        if n and key not in state.live and key not in state._ignore:
                            state.live[key] = (StorageWeakRef(st), n)
                            state.cur += n
                            state.peak = max(state.peak, state.cur)
                return out

        self.live: dict = {}
        self.cur = self.peak = 0
        self._mode = _Tracker()
        self._mode.__enter__()
        return self

    def _sweep(self) -> None:
        dead = [k for k, (ref, _) in self.live.items() if ref.expired()]
        for k in dead:
            self.cur -= self.live.pop(k)[1]

    def mark(self) -> int:
        self._sweep()
        return self.cur

    def __exit__(self, *exc) -> bool:
        self._mode.__exit__(*exc)
        self.peak_mb = self.peak / 2**20
        self.live.clear()
        return False


@contextlib.contextmanager
def _cpu_flash_on_meta():
    """On ``meta`` tensors SDPA falls back to the math path, which materialises and saves the
    attention matrix; on CPU (and in the flash / memory-efficient GPU kernels) only the output and
    the log-sum-exp are kept. Route meta SDPA calls to the CPU flash kernel's meta implementation so
    a meta run holds what a real run holds. (A patch of ``F.scaled_dot_product_attention`` rather
    than a TorchFunctionMode: activation checkpointing recomputes outside such modes.)"""
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        if not q.is_meta or kw:
            return original(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale, **kw)
        if attn_mask is not None and attn_mask.dtype == torch.bool:  # as SDPA does before its CPU kernel
            attn_mask = torch.where(attn_mask, 0.0, float("-inf")).to(q.dtype)
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


@dataclass
class MemoryReport:
    """Memory of one training step (forward + backward) in MiB; ``activations`` = tensors alive at
    the end of the forward pass (what is kept for backward), ``peak`` = the most alive at once
    during forward + backward above weights and input (activations, then gradients)."""

    input_shape: tuple
    params: float
    grads: float
    activations: float
    peak: float
    grad_checkpointing: object = None
    device: str = "meta"

    def as_dict(self) -> dict:
        return asdict(self)


def training_memory(model: nn.Module, input_shape: Sequence[int], *, grad_checkpointing=None,
                    device: str | torch.device = "meta") -> MemoryReport:
    """Measure the memory of a training step: on a ``meta`` copy by default (nothing is computed or
    allocated, seconds for any model size; ``model`` is not touched), or on ``device`` with the model
    itself (its train/eval mode is restored afterwards, a ``grad_checkpointing`` setting stays).

    ``grad_checkpointing`` is passed to ``set_grad_checkpointing`` when given (``True``, or a
    family's per-stage form); ``None`` keeps the model's setting. The loss is
    ``logits.logsumexp(-1).mean()``; the weights' gradients are counted, as a training step keeps
    them until the optimiser runs.
    """
    device = torch.device(device)
    if device.type == "meta":
        m = _to_meta(model)
        m = copy.deepcopy(m) if m is model else m  # settings below must not leak into the caller's model
    else:
        m = model
    was_training = m.training
    m.train()
    if grad_checkpointing is not None:
        m.set_grad_checkpointing(grad_checkpointing)
    params = [p for p in m.parameters()]
    for p in params:
        p.grad = None
    x = torch.randn(tuple(input_shape), device=device)
    flash = _cpu_flash_on_meta() if device.type == "meta" else contextlib.nullcontext()
    tracked = params + list(m.buffers()) + [x]
    with flash, LiveTensorMemory(ignore=tracked) as mem:
        out = m(x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        loss = out.float().logsumexp(-1).mean()
        activations = mem.mark()
        loss.backward()
        del out, loss
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    for p in params:
        p.grad = None
    m.train(was_training)
    mib = 2.0**20
    return MemoryReport(
        input_shape=tuple(input_shape), params=sum(p.numel() * p.element_size() for p in params) / mib,
        grads=grads / mib, activations=activations / mib, peak=mem.peak / mib,
        grad_checkpointing=grad_checkpointing, device=str(device))
