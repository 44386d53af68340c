"""Inference precision: fp32, bf16 / fp16 autocast, int8 dynamic quantisation of the linear layers.

One place for every command that runs a model for inference (``predict``, ``extract``, ``bench``, the
engine's evaluation): :func:`prepare_for_inference` readies the model once, :func:`inference_context`
(or :func:`autocast_for` alone) wraps each forward pass.

* ``bf16`` / ``fp16``: ``torch.autocast`` on the model's device, weights and input stay fp32. Matmuls and
  convolutions run in the low precision, the ops autocast keeps in fp32 (softmax, norms, H-UniFormer's
  token scores, our explicit ``.float()`` upcasts) stay there -- casting the weights instead breaks
  those ("mixed dtype (CPU)" in H-UniFormer's token selection) and loses accuracy in the norms.
  On a CPU, bf16 is fast where the ISA has bf16 instructions (AVX512-BF16, AMX-BF16) and slower
  than fp32 where it is emulated; fp16 has no fast CPU GEMM in PyTorch (measured on the AMD EPYC
  (Zen 4) of docs/performance.md: a 1576x768x3072 GEMM at 18 GFLOP/s in fp16 against 103 in fp32,
  UniFormer-S 8x224 7-12x slower), so it is allowed but warned about.
* ``int8``: ``torch.ao.quantization.quantize_dynamic`` turns every ``nn.Linear`` whose forward the
  model calls into a dynamically quantised one (qint8 weights per tensor, activations quantised per
  batch on the fly, fbgemm/x86 kernels with VNNI where the CPU has it). Convolutions, attention
  (SDPA) and norms stay fp32, and so does a linear layer whose weight the model reads directly (e.g.
  UniFormerV2's local MHRA folds eval BatchNorm into ``v.weight``): a probe forward pass finds them.
  CPU only, inference only.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Iterator

import torch
import torch.nn as nn

__all__ = ["PRECISIONS", "parse_precision", "torch_dtype", "autocast_for", "quantize_for_inference",
           "prepare_for_inference", "inference_context", "is_quantized"]

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
_ALIASES = {"fp32": "fp32", "float32": "fp32", "float": "fp32", "bf16": "bf16", "bfloat16": "bf16",
            "fp16": "fp16", "float16": "fp16", "half": "fp16", "int8": "int8", "qint8": "int8"}
_TORCH = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_BY_TORCH = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.qint8: "int8",
             torch.int8: "int8"}

# Measured on the 2-core AMD EPYC (Zen 4, AVX512-BF16, no AVX512-FP16) of docs/performance.md: UniFormer-S
# 8x224, one thread, 3.9-6.1 s per clip in fp16 against 0.50-0.52 s in fp32; issue 20 reports 3-4x on AVX-512 Xeons.
FP16_CPU_WARNING = ("fp16 on CPU has no fast matrix path in PyTorch (measured 7-12x slower than fp32 on an AMD "
                    "EPYC, 3-4x reported on AVX-512 Xeons); use --dtype bf16 (or int8)")


def parse_precision(dtype: str | torch.dtype | None) -> str:
    """``"fp32"|"bf16"|"fp16"|"int8"`` from a name (``bfloat16``, ``float16``, ...) or a torch dtype."""
    if dtype is None:
        return "fp32"
    if isinstance(dtype, torch.dtype):
        if dtype in _BY_TORCH:
            return _BY_TORCH[dtype]
        raise ValueError(f"unsupported inference dtype {dtype}; use one of {', '.join(PRECISIONS)}")
    key = str(dtype).strip().lower().replace("torch.", "")
    if key not in _ALIASES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(PRECISIONS)}")
    return _ALIASES[key]


def torch_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """The floating dtype tensors are in: fp32 for ``int8`` (quantisation is inside the linear layers)."""
    return _TORCH.get(parse_precision(dtype), torch.float32)


def _device_type(device: str | torch.device | None) -> str:
    return torch.device(device).type if device is not None else "cpu"


def autocast_for(device: str | torch.device | None, dtype: str | torch.dtype | None, *, warn: bool = True
                 ) -> contextlib.AbstractContextManager:
    """The context manager each inference forward pass runs under for ``dtype`` on ``device``.

    ``bf16``/``fp16``: ``torch.autocast(device.type, dtype)``; ``fp32``/``int8``: a no-op context (an int8
    model is prepared once by :func:`quantize_for_inference`). fp16 on a CPU warns (slower than fp32).
    """
    p = parse_precision(dtype)
    kind = _device_type(device)
    if p in ("fp32", "int8"):
        if p == "int8" and kind != "cpu":
            raise ValueError(f"int8 (dynamic quantisation) runs on CPU only, not on {kind}")
        return contextlib.nullcontext()
    if kind == "cpu" and p == "fp16" and warn:
        warnings.warn(FP16_CPU_WARNING, UserWarning, stacklevel=2)
    if kind == "meta":
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=_TORCH[p])


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` holds dynamically quantised linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return any(isinstance(m, QLinear) for m in model.modules())


def _example_input(model: nn.Module) -> torch.Tensor:
    card = getattr(model, "model_card", None)
    size = getattr(card, "input_size", None)
    if not size:
        raise ValueError("quantize_for_inference needs an example input for a model without a model_card "
                         "(pass example=torch.randn(1, 3, T, H, W))")
    return torch.randn(1, *size)


def _called_linears(model: nn.Module, example: torch.Tensor) -> set[str]:
    """Names of the ``nn.Linear`` modules whose forward runs in an eval forward pass on ``example``."""
    called: set[str] = set()
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            hooks.append(m.register_forward_pre_hook(lambda mod, inp, n=name: called.add(n)))
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return called


def quantize_for_inference(model: nn.Module, example: torch.Tensor | None = None, *, inplace: bool = False
                           ) -> nn.Module:
    """int8 dynamic quantisation (qint8 weights) of the linear layers ``model`` calls; eval mode, CPU.

    ``example`` (default: random input of the model card's size, batch 1) drives one probe forward pass
    that finds the linear layers actually called as modules; the others (weights read directly by their
    parent) stay fp32. Our :class:`videoformers.ops.Linear` (an ``nn.Linear`` subclass, which
    ``torch.ao`` does not match by type) is quantised like ``nn.Linear``. Returns a copy unless ``inplace``.
    """
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 (dynamic quantisation) runs on CPU only: move the model to the CPU first")
    if is_quantized(model):
        return model
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    example = _example_input(model) if example is None else example
    called = _called_linears(model, example)
    engine = torch.backends.quantized.engine
    if engine == "none":
        raise ValueError("this torch build has no quantised CPU engine (torch.backends.quantized.engine is 'none')")
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao eager quantisation is deprecated in favour of torchao; it is what this torch ships.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        for name, m in list(model.named_modules()):
            if name not in called or not isinstance(m, nn.Linear) or isinstance(m, QLinear):
                continue
            plain = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            plain.weight, plain.bias = m.weight, m.bias
            plain.qconfig = qconfig
            q = QLinear.from_float(plain)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, q)
    return model


def prepare_for_inference(model: nn.Module, dtype: str | torch.dtype | None = "fp32",
                          device: str | torch.device | None = None, example: torch.Tensor | None = None
                          ) -> nn.Module:
    """``model`` in eval mode on ``device`` with fp32 weights, quantised for ``int8`` (a copy); bf16/fp16 are
    autocast at each forward (:func:`inference_context` / :func:`autocast_for`), not cast here."""
    p = parse_precision(dtype)
    if device is not None:
        model = model.to(device)
    model.eval()
    # Low-precision weights (e.g. a checkpoint saved in bf16) go back to fp32: fp32 computes in fp32, autocast
    # casts per op, and quantize_dynamic quantises from fp32.
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in model.parameters()):
        model = model.float()
    if p == "int8":
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"int8 (dynamic quantisation) runs on CPU only, not on {torch.device(device).type}")
        model = quantize_for_inference(model, example)
    return model


@contextlib.contextmanager
def inference_context(model: nn.Module | None, dtype: str | torch.dtype | None = "fp32",
                      device: str | torch.device | None = None) -> Iterator[None]:
    """``torch.inference_mode()`` plus :func:`autocast_for` on the model's device (or ``device``)."""
    if device is None and model is not None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else "cpu"
    with torch.inference_mode(), autocast_for(device, dtype, warn=True):
        yield
