"""Image-ViT checkpoints in the layouts users have -> one canonical (timm-style) state dict.

Video models initialised from image ViTs (ViViT Sec. 3.4) need the ViT's weights under one set of
names, whatever library wrote them. :func:`convert_vit_state_dict` maps the three common layouts to
the canonical names below; :func:`load_image_vit` also reads the file (``.pth``/``.bin``/
``.safetensors``/``.npz``) and unwraps training wrappers.

Canonical layout (timm ``VisionTransformer``; ``D`` embed dim, ``g`` patches per side)::

    patch_embed.proj.weight   (D, C, ph, pw)      patch_embed.proj.bias   (D,)
    cls_token                 (1, 1, D)           (absent for GAP ViTs without a class token)
    pos_embed                 (1, [1 +] g*g, D)   (the CLS row first when the ViT has one)
    blocks.N.norm1.{weight,bias}
    blocks.N.attn.qkv.{weight (3D, D), bias (3D,)}    q, k, v stacked in that order
    blocks.N.attn.proj.{weight (D, D), bias}
    blocks.N.norm2.{weight,bias}
    blocks.N.mlp.fc1.{weight (M, D), bias}     blocks.N.mlp.fc2.{weight (D, M), bias}
    norm.{weight,bias}
    head.{weight (K, D), bias}                 (classifier, when present)
    pre_logits.fc.{weight,bias}                (representation layer Linear+tanh, when present)

Key maps (``N`` the block index):

=================================================  =====================================================
timm / DeiT (``facebookresearch/deit`` files)      already canonical. DeiT-distilled ``dist_token`` and
                                                   ``head_dist`` are dropped, and the distillation row
                                                   (row 1) of ``pos_embed`` is removed.
HF ``ViTModel`` / ``ViTForImageClassification``    optional ``vit.`` prefix;
  (transformers >= 5 names)                        ``embeddings.cls_token`` -> ``cls_token``,
                                                   ``embeddings.position_embeddings`` -> ``pos_embed``,
                                                   ``embeddings.patch_embeddings.projection`` ->
                                                   ``patch_embed.proj``, ``layers.N.layernorm_before`` ->
                                                   ``norm1``, ``layers.N.attention.{q,k,v}_proj`` ->
                                                   ``attn.qkv`` (concatenated), ``attention.o_proj`` ->
                                                   ``attn.proj``, ``layernorm_after`` -> ``norm2``,
                                                   ``mlp.fc1/fc2`` -> ``mlp.fc1/fc2``, ``layernorm`` ->
                                                   ``norm``, ``pooler.dense`` -> ``pre_logits.fc``,
                                                   ``classifier`` -> ``head``
HF (transformers 4.x / Hub names)                  ``encoder.layer.N.attention.attention.{query,key,value}``
                                                   -> ``attn.qkv``, ``attention.output.dense`` ->
                                                   ``attn.proj``, ``intermediate.dense`` -> ``mlp.fc1``,
                                                   ``output.dense`` -> ``mlp.fc2``; the rest as above
Google ``.npz`` (google-research/vision_transformer, optional ``opt/target/``, ``params/`` or ``params/img/``
  big_vision, scenic)                              prefix; ``embedding/kernel`` (ph, pw, C, D) ->
                                                   ``patch_embed.proj.weight`` (permuted), ``cls`` ->
                                                   ``cls_token``, ``Transformer/posembed_input/pos_embedding``
                                                   or ``pos_embedding`` -> ``pos_embed``,
                                                   ``Transformer/encoderblock_N/``: the first ``LayerNorm_*``
                                                   -> ``norm1``, the second -> ``norm2``,
                                                   ``MultiHeadDotProductAttention_*/{query,key,value}/kernel``
                                                   (D, H, hd) -> ``attn.qkv.weight`` rows, ``.../out/kernel``
                                                   (H, hd, D) -> ``attn.proj.weight``, ``MlpBlock_*/Dense_0``
                                                   -> ``mlp.fc1``, ``Dense_1`` -> ``mlp.fc2`` (Dense kernels
                                                   are transposed, ``scale`` -> ``weight``);
                                                   ``Transformer/encoder_norm`` -> ``norm``, ``head`` ->
                                                   ``head``, ``pre_logits`` -> ``pre_logits.fc``. big_vision's
                                                   scanned ``Transformer/encoderblock/`` (a leading depth
                                                   axis) is split into blocks.
=================================================  =====================================================

The original ViT files number the block's sub-modules ``LayerNorm_0, MultiHeadDotProductAttention_1,
LayerNorm_2, MlpBlock_3``; scenic/big_vision use ``LayerNorm_0, MultiHeadDotProductAttention_0,
LayerNorm_1, MlpBlock_0``. Both are handled by taking the sub-modules in index order.
"""

from __future__ import annotations

import os
import re
from typing import Literal, Mapping

import torch

__all__ = [
    "VitLayout",
    "detect_vit_layout",
    "convert_vit_state_dict",
    "load_image_vit",
    "convert_hf_blocks",
    "vit_grid_has_cls",
]

VitLayout = Literal["timm", "hf", "npz"]
StateDict = dict[str, torch.Tensor]

_NPZ_PREFIXES = ("opt/target/", "params/img/", "params/")


def detect_vit_layout(sd: Mapping[str, torch.Tensor]) -> VitLayout:
    """Which layout ``sd`` is in: ``"timm"`` (timm/DeiT), ``"hf"`` (transformers ViT) or ``"npz"``
    (Google's Flax ViT files, keys separated by ``/``)."""
    keys = list(sd)
    if any("/" in k for k in keys):
        return "npz"
    if any(k.startswith(("patch_embed.", "blocks.")) for k in keys):
        return "timm"
    if any(k.startswith(("embeddings.", "vit.embeddings.", "encoder.layer.", "vit.encoder.layer.", "layers.",
                         "vit.layers.")) for k in keys):
        return "hf"
    raise ValueError(
        "cannot tell the image-ViT layout of this checkpoint (expected timm/DeiT 'patch_embed.*'/'blocks.*', "
        "HF 'vit.embeddings.*'/'vit.encoder.layer.*', or Google .npz 'embedding/kernel'/'Transformer/...'); "
        f"first keys: {keys[:8]}"
    )


def convert_vit_state_dict(
    sd: Mapping[str, torch.Tensor],
    layout: VitLayout | Literal["auto"] = "auto",
    strict: bool = True,
) -> StateDict:
    """Map an image-ViT state dict in ``layout`` to the canonical timm names (see the module doc).

    ``strict=True`` raises ``ValueError`` listing keys this converter does not understand (e.g. a
    MAP head, layer-scale or register tokens, which a plain ViT cannot represent); with
    ``strict=False`` they are dropped.
    """
    if layout == "auto":
        layout = detect_vit_layout(sd)
    if layout == "timm":
        out, unknown = _from_timm(sd)
    elif layout == "hf":
        out, unknown = _from_hf(sd)
    elif layout == "npz":
        out, unknown = _from_npz(sd)
    else:
        raise ValueError(f"unknown image-ViT layout {layout!r}; use 'timm', 'hf', 'npz' or 'auto'")
    if unknown and strict:
        raise ValueError(
            f"{len(unknown)} key(s) of this {layout} ViT checkpoint have no canonical ViT equivalent: "
            f"{sorted(unknown)[:12]}{' ...' if len(unknown) > 12 else ''} (pass strict=False to drop them)"
        )
    return out


def load_image_vit(
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    layout: VitLayout | Literal["auto"] = "auto",
    strict: bool = True,
) -> StateDict:
    """Read (if a path) and convert an image-ViT checkpoint to the canonical layout."""
    from .loading import read_checkpoint, unwrap_state_dict

    if isinstance(source, (str, os.PathLike)):
        obj, _ = read_checkpoint(source)
    else:
        obj = source
    if hasattr(obj, "keys") and not isinstance(obj, dict):
        obj = {k: obj[k] for k in obj.keys()}  # np.load(...) result
    if isinstance(obj, dict) and any(type(v).__module__ == "numpy" for v in obj.values()):
        obj = {k: torch.as_tensor(v) if type(v).__module__ == "numpy" else v for k, v in obj.items()}
    return convert_vit_state_dict(unwrap_state_dict(obj), layout, strict=strict)


def vit_grid_has_cls(sd: Mapping[str, torch.Tensor]) -> bool:
    """Whether the canonical ``pos_embed`` carries a CLS row (a square grid plus one)."""
    n = sd["pos_embed"].shape[1]
    if "cls_token" in sd:
        return True
    g = int(round(n**0.5))
    return g * g != n


# ---------------------------------------------------------------------------------------------
# timm / DeiT

_TIMM_BLOCK = re.compile(r"^blocks\.\d+\.(norm1|norm2)\.(weight|bias)$|"
                         r"^blocks\.\d+\.attn\.(qkv|proj)\.(weight|bias)$|"
                         r"^blocks\.\d+\.mlp\.(fc1|fc2)\.(weight|bias)$")
_TIMM_TOP = {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed", "norm.weight",
             "norm.bias", "head.weight", "head.bias", "pre_logits.fc.weight", "pre_logits.fc.bias"}


def _from_timm(sd: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    out: StateDict = {}
    unknown: list[str] = []
    distilled = "dist_token" in sd
    for k, v in sd.items():
        if k in _TIMM_TOP or _TIMM_BLOCK.match(k):
            out[k] = v
        elif k in ("dist_token", "head_dist.weight", "head_dist.bias"):
            continue  # DeiT distillation token/head: not part of a plain ViT
        else:
            unknown.append(k)
    if distilled and "pos_embed" in out:
        # DeiT-distilled pos_embed rows are [cls, dist, grid...]; keep cls and the grid.
        pe = out["pos_embed"]
        out["pos_embed"] = torch.cat([pe[:, :1], pe[:, 2:]], dim=1)
    return out, unknown


# ---------------------------------------------------------------------------------------------
# HF transformers ViT (v5 and v4 names)

_HF_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
    "pooler.dense.weight": "pre_logits.fc.weight",
    "pooler.dense.bias": "pre_logits.fc.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}
# per-block suffix -> canonical suffix ("qkv:q" marks a piece of the packed qkv)
_HF_BLOCK = {
    # transformers >= 5
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.q_proj": "qkv:q",
    "attention.k_proj": "qkv:k",
    "attention.v_proj": "qkv:v",
    "attention.o_proj": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    # transformers 4.x (and the files on the Hub)
    "attention.attention.query": "qkv:q",
    "attention.attention.key": "qkv:k",
    "attention.attention.value": "qkv:v",
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
_HF_LAYER = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias)$")
_HF_IGNORED = ("embeddings.mask_token",)


def _hf_strip(sd: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


def convert_hf_blocks(
    sd: Mapping[str, torch.Tensor], block_prefix: str = "blocks."
) -> tuple[StateDict, list[str], list[str]]:
    """Map HF-style encoder layers (``encoder.layer.N.*`` or ``layers.N.*``) to timm block names.

    Returns ``(converted, used_keys, leftover_keys)``; shared by the ViT and ViViT converters.
    """
    out: StateDict = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    used, leftover = [], []
    for k, v in sd.items():
        m = _HF_LAYER.match(k)
        if not m or m.group(2) not in _HF_BLOCK:
            leftover.append(k)
            continue
        i, sub, kind = int(m.group(1)), _HF_BLOCK[m.group(2)], m.group(3)
        used.append(k)
        if sub.startswith("qkv:"):
            qkv.setdefault((i, kind), {})[sub[4:]] = v
        else:
            out[f"{block_prefix}{i}.{sub}.{kind}"] = v
    for (i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"layer {i}: incomplete q/k/v {kind} ({sorted(parts)})")
        out[f"{block_prefix}{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out, used, leftover


def _from_hf(sd: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    flat = _hf_strip(sd, ("vit.",))
    out, _, leftover = convert_hf_blocks(flat)
    unknown = []
    for k in leftover:
        if k in _HF_TOP:
            out[_HF_TOP[k]] = flat[k]
        elif k not in _HF_IGNORED:
            unknown.append(k)
    return out, unknown


# ---------------------------------------------------------------------------------------------
# Google .npz (vision_transformer / big_vision / scenic Flax parameter trees)

_NPZ_BLOCK = re.compile(r"^Transformer/encoderblock(?:_(\d+))?/([A-Za-z]+)_(\d+)/(.+)$")


def _t(v) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.as_tensor(v)


def _npz_prefix(keys: list[str]) -> str:
    for p in _NPZ_PREFIXES:
        if f"{p}embedding/kernel" in keys:
            return p
    return ""


def _from_npz(sd: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    keys = list(sd)
    prefix = _npz_prefix(keys)
    w = {k[len(prefix):]: _t(v) for k, v in sd.items() if k.startswith(prefix)}
    unknown = [k for k in keys if not k.startswith(prefix)]
    out: StateDict = {}

    def dense(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = w.pop(f"{src}/kernel").t().contiguous()
        out[f"{dst}.bias"] = w.pop(f"{src}/bias")

    def norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = w.pop(f"{src}/scale")
        out[f"{dst}.bias"] = w.pop(f"{src}/bias")

    if "embedding/kernel" in w:
        out["patch_embed.proj.weight"] = w.pop("embedding/kernel").permute(3, 2, 0, 1).contiguous()
        out["patch_embed.proj.bias"] = w.pop("embedding/bias")
    if "cls" in w:
        out["cls_token"] = w.pop("cls")
    for name in ("Transformer/posembed_input/pos_embedding", "pos_embedding"):
        if name in w:
            out["pos_embed"] = w.pop(name)
    if "Transformer/encoder_norm/scale" in w:
        norm("Transformer/encoder_norm", "norm")
    if "head/kernel" in w:
        dense("head", "head")
    if "pre_logits/kernel" in w:
        dense("pre_logits", "pre_logits.fc")

    # Group block parameters: {block index or None (scanned): {(module type, index): {leaf: tensor}}}
    blocks: dict[int | None, dict[tuple[str, int], dict[str, torch.Tensor]]] = {}
    for k in list(w):
        m = _NPZ_BLOCK.match(k)
        if not m:
            continue
        idx = None if m.group(1) is None else int(m.group(1))
        blocks.setdefault(idx, {}).setdefault((m.group(2), int(m.group(3))), {})[m.group(4)] = w.pop(k)
    if None in blocks:  # big_vision scan=True: every leaf has a leading depth axis
        scanned = blocks.pop(None)
        depth = next(iter(next(iter(scanned.values())).values())).shape[0]
        for i in range(depth):
            blocks[i] = {mod: {leaf: t[i] for leaf, t in leaves.items()} for mod, leaves in scanned.items()}
    for i, mods in sorted(blocks.items()):
        _npz_block(i, mods, out)
    unknown += list(w)
    return out, unknown


def _npz_block(i: int, mods: dict[tuple[str, int], dict[str, torch.Tensor]], out: StateDict) -> None:
    by_type: dict[str, list[dict[str, torch.Tensor]]] = {}
    for (typ, _), leaves in sorted(mods.items(), key=lambda kv: kv[0][1]):
        by_type.setdefault(typ, []).append(leaves)
    lns, mhas, mlps = by_type.pop("LayerNorm", []), by_type.pop("MultiHeadDotProductAttention", []), by_type.pop("MlpBlock", [])
    if len(lns) != 2 or len(mhas) != 1 or len(mlps) != 1 or by_type:
        raise ValueError(
            f"encoderblock_{i}: expected 2 LayerNorm, 1 MultiHeadDotProductAttention and 1 MlpBlock, got "
            f"{sorted(f'{t}_{n}' for t, n in mods)}"
        )
    p = f"blocks.{i}."
    for j, ln in enumerate(lns):
        out[f"{p}norm{j + 1}.weight"] = ln["scale"]
        out[f"{p}norm{j + 1}.bias"] = ln["bias"]
    mha = mhas[0]
    # q/k/v kernels are (D, H, hd): flatten the heads, then Linear wants (out, in).
    out[f"{p}attn.qkv.weight"] = torch.cat([mha[f"{n}/kernel"].flatten(1).t() for n in ("query", "key", "value")], 0)
    out[f"{p}attn.qkv.bias"] = torch.cat([mha[f"{n}/bias"].reshape(-1) for n in ("query", "key", "value")], 0)
    # out kernel is (H, hd, D).
    out[f"{p}attn.proj.weight"] = mha["out/kernel"].flatten(0, 1).t().contiguous()
    out[f"{p}attn.proj.bias"] = mha["out/bias"]
    mlp = mlps[0]
    for j in range(2):
        out[f"{p}mlp.fc{j + 1}.weight"] = mlp[f"Dense_{j}/kernel"].t().contiguous()
        out[f"{p}mlp.fc{j + 1}.bias"] = mlp[f"Dense_{j}/bias"]
