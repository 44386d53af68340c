"""``videoformers export``: ONNX export with a dynamic batch axis, checked against onnxruntime.

    videoformers export NAME --checkpoint FILE --onnx OUT.onnx [--opset 17] [--batch 2] [--atol 1e-4]

The graph takes ``video`` ``(batch, C, T, H, W)`` float32 (normalised as the model card says) and
returns ``logits`` ``(batch, num_classes)``; the clip length and crop size are fixed at export time
(the model card's, or ``--num-frames``/``--img-size``). The file's ``metadata_props`` record the model
name, mean/std, input shape and the label map, so a deployment needs nothing else.

Export uses PyTorch's TorchScript-based exporter (``dynamo=False``: it needs no ``onnxscript``), with
two export-time fixes that leave the eager models untouched:

* ``aten::movedim`` with negative dimensions (the channels-last views of UniFormer and H-UniFormer)
  is exported by a symbolic that normalises the dimensions; the stock one writes invalid ``perm``s;
* ``aten::addmv`` (UniFormerV2's BatchNorm folded into a Linear at eval) has no stock symbolic;
* models take in-place shortcuts (slice writes into preallocated tensors, in-place residuals) only
  when autograd records nothing; traced, slice writes bake the example batch size into the graph.
  Export therefore traces with every parameter requiring grad, so the models take their functional
  paths (they also check ``torch.jit.is_tracing()`` themselves). No model is patched.

After export the graph is run with onnxruntime on batch sizes different from the traced one and
compared with PyTorch; a difference above ``atol`` (default 1e-4) is an error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["export_onnx", "ExportResult", "check_onnx"]


@dataclass
class ExportResult:
    path: str
    input_shape: tuple[int, ...]
    output_names: list[str]
    opset: int
    max_abs_err: float | None = None
    checked_batches: list[int] = field(default_factory=list)
    size_mb: float = 0.0


# ------------------------------------------------------------------------------------------------
# Export-time fixes
# ------------------------------------------------------------------------------------------------


def _movedim_symbolic(g, self, source, destination):
    from torch.onnx import symbolic_helper as sh

    rank = sh._get_tensor_rank(self)
    if rank is None:
        raise RuntimeError("movedim: the input rank is unknown at export time")

    def ints(v) -> list[int]:
        node = v.node()
        c = sh._node_get(node, "value") if node.kind() == "onnx::Constant" else sh._maybe_get_const(v, "is")
        if isinstance(c, torch.Tensor):
            c = c.tolist()
        return [c] if isinstance(c, int) else list(c)

    src = [s % rank for s in ints(source)]
    dst = [d % rank for d in ints(destination)]
    perm = [-1] * rank
    for s, d in zip(src, dst):
        perm[d] = s
    rest = iter(i for i in range(rank) if i not in src)
    perm = [p if p >= 0 else next(rest) for p in perm]
    return g.op("Transpose", self, perm_i=perm)


def _addmv_symbolic(g, self, mat, vec, beta, alpha):
    # beta * self + alpha * (mat @ vec); UniFormerV2 folds eval BatchNorm into a Linear with addmv.
    from torch.onnx import symbolic_helper as sh

    out = g.op("MatMul", mat, vec)
    a, b = sh._maybe_get_scalar(alpha), sh._maybe_get_scalar(beta)
    a = float(a) if not isinstance(a, torch.Tensor) else float(a.item())
    b = float(b) if not isinstance(b, torch.Tensor) else float(b.item())
    if a != 1.0:
        out = g.op("Mul", out, g.op("Constant", value_t=torch.tensor(a)))
    base = self if b == 1.0 else g.op("Mul", self, g.op("Constant", value_t=torch.tensor(b)))
    return g.op("Add", base, out)


@contextlib.contextmanager
def _export_fixes(model: nn.Module):
    # Models take in-place shortcuts (slice writes into preallocated tensors) only when autograd records
    # nothing; the tracer would bake the example batch into those. With every parameter requiring grad
    # the functional paths are traced (the exported graph is the same computation).
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    symbolics = {"aten::movedim": _movedim_symbolic, "aten::addmv": _addmv_symbolic}
    for op, fn in symbolics.items():
        torch.onnx.register_custom_op_symbolic(op, fn, 9)
    try:
        with torch.enable_grad():
            yield
    finally:
        for op in symbolics:
            try:
                torch.onnx.unregister_custom_op_symbolic(op, 9)
            except Exception:  # nothing registered under that name: nothing to undo
                pass
        for p in frozen:
            p.requires_grad_(False)


# ------------------------------------------------------------------------------------------------
# Export and check
# ------------------------------------------------------------------------------------------------


def _output_names(out) -> list[str]:
    if isinstance(out, torch.Tensor):
        return ["logits"]
    if isinstance(out, dict):
        return [f"logits_{k}" for k in out]
    if isinstance(out, (tuple, list)):
        return [f"logits_{i}" for i in range(len(out))]
    raise ValueError(f"cannot export a model returning {type(out).__name__}")


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


def check_onnx(model: nn.Module, path: str, input_shape: Sequence[int], batches: Sequence[int] = (1, 3),
               seed: int = 0) -> float:
    """Max abs difference between ``model`` (eval, CPU, fp32) and onnxruntime on random inputs of
    shape ``(b, *input_shape[1:])`` for every ``b`` in ``batches``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in batches:
        x = torch.randn((b, *input_shape[1:]), generator=g)
        with torch.no_grad():
            ref = _flat(model(x))
        got = sess.run(None, {name: x.numpy()})
        if len(got) != len(ref):
            raise RuntimeError(f"ONNX graph returns {len(got)} outputs, PyTorch {len(ref)}")
        for r, o in zip(ref, got):
            if tuple(o.shape) != tuple(r.shape):
                raise RuntimeError(f"batch {b}: ONNX output shape {tuple(o.shape)} != PyTorch {tuple(r.shape)}")
            worst = max(worst, float((torch.from_numpy(o) - r.float()).abs().max()))
    return worst


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_shape: Sequence[int] | None = None,
    batch: int = 2,
    opset: int = 17,
    dynamic_batch: bool = True,
    check: bool = True,
    atol: float = 1e-4,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Export ``model`` (CPU, fp32, eval) to ONNX at ``path``.

    ``input_shape`` is ``(B, C, T, H, W)`` (default: ``batch`` x the model card's input size). With
    ``dynamic_batch`` the batch axis is symbolic. ``check`` runs onnxruntime on two other batch sizes
    and raises ``RuntimeError`` if any output differs from PyTorch by more than ``atol``.
    ``metadata`` goes into the file's ``metadata_props`` (with the model name, shape and mean/std).
    """
    import onnx

    path = os.fspath(path)
    model = model.eval().float().cpu()
    card = getattr(model, "model_card", None)
    if input_shape is None:
        if card is None:
            raise ValueError("input_shape is required for a model without a model_card")
        input_shape = (batch, *card.input_size)
    input_shape = tuple(int(s) for s in input_shape)
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        names = _output_names(model(x))
    axes = {"video": {0: "batch"}, **{n: {0: "batch"} for n in names}} if dynamic_batch else None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    from videoformers.models.contract import classifier_is_zero

    if classifier_is_zero(model):
        warnings.warn(f"{getattr(model, 'model_name', type(model).__name__)}: the classifier is all zeros (e.g. ViViT's "
                      "zero-initialised head without trained weights): every output is its bias, so the "
                      "onnxruntime check compares constants", stacklevel=2)
    final, path = path, os.path.join(os.path.dirname(os.path.abspath(path)),
                                     f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        result = _export_and_check(model, x, path, names, axes, opset, input_shape, dynamic_batch, card, metadata,
                                   check, atol, final)
        os.replace(path, final)  # only a file that passed its check gets the name asked for
    finally:
        if os.path.exists(path):
            os.unlink(path)
    result.path = final
    return result


def _export_and_check(model, x, path, names, axes, opset, input_shape, dynamic_batch, card, metadata, check, atol,
                      final) -> ExportResult:
    import onnx

    with _export_fixes(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints from shapes (checked below)
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset, input_names=["video"],
                          output_names=names, dynamic_axes=axes, do_constant_folding=True)

    props = {"model_name": str(getattr(model, "model_name", type(model).__name__)),
             "input_shape": json.dumps(["batch" if dynamic_batch else input_shape[0], *input_shape[1:]]),
             "input_layout": "(B, C, T, H, W)" if len(input_shape) == 5 else "(B, C, H, W)"}
    mean = getattr(model, "data_mean", None) or (card.mean if card else None)
    std = getattr(model, "data_std", None) or (card.std if card else None)
    if mean is not None:
        props["mean"], props["std"] = json.dumps(list(mean)), json.dumps(list(std))
    if getattr(model, "label_names", None):
        props["labels"] = json.dumps(list(model.label_names), ensure_ascii=False)
    props.update(metadata or {})
    proto = onnx.load(path, load_external_data=False)
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(proto, path)

    result = ExportResult(path, input_shape, names, opset, size_mb=os.path.getsize(path) / 2**20)
    if check:
        batches = [b for b in (1, input_shape[0] + 1) if b != input_shape[0]] if dynamic_batch else [input_shape[0]]
        err = check_onnx(model, path, input_shape, batches)
        result.max_abs_err, result.checked_batches = err, batches
        if not err <= atol:
            note = getattr(model, "export_note", "")  # what a model knows about its own export
            hint = f"; {note}" if note else ""
            raise RuntimeError(f"ONNX output differs from PyTorch by {err:.3g} (> atol {atol:g}) for {final}{hint}; "
                               "nothing was written")
    return result


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from videoformers.registry import create_model

    from .convert import load_model, model_overrides

    ov = model_overrides(args)
    name = args.name or args.model
    if args.checkpoint:
        model, _ = load_model(args.checkpoint, name, **ov)
    else:
        if name is None:
            raise ValueError("export needs a model name or a --checkpoint that records one")
        model = create_model(name, **ov).eval()
        print("warning: no --checkpoint: exporting randomly initialised weights")
    res = export_onnx(model, args.onnx, batch=args.batch, opset=args.opset, dynamic_batch=not args.static_batch,
                      check=not args.no_check, atol=args.atol)
    check = (f"onnxruntime max abs err {res.max_abs_err:.2e} on batches {res.checked_batches}"
             if res.max_abs_err is not None else "not checked")
    print(f"wrote {res.path} ({res.size_mb:.1f} MB, opset {res.opset}); input video "
          f"{['batch' if not args.static_batch else res.input_shape[0], *res.input_shape[1:]]}; {check}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from .convert import add_model_arguments

    p = sub.add_parser("export", help="export a model to ONNX (dynamic batch), checked with onnxruntime",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default=None, help="registered model name (optional for converted files)")
    add_model_arguments(p, checkpoint_required=False)
    p.add_argument("--onnx", required=True, metavar="OUT.onnx")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--batch", type=int, default=2, help="example batch size used for tracing")
    p.add_argument("--static-batch", action="store_true", help="fix the batch size instead of a dynamic axis")
    p.add_argument("--atol", type=float, default=1e-4, help="tolerance of the onnxruntime check")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    p.set_defaults(func=run)
