"""Image-ViT checkpoints in the layouts users have -> one canonical (timm-style) state dict.

Video models initialised from image ViTs (ViViT Sec. 3.4, UniFormerV2 Sec. 3) and the image ViT
itself need the ViT's weights under one set of names, whatever library wrote them. This is the one
module that reads image-ViT layouts: :func:`convert_vit_state_dict` maps the common layouts (timm/DeiT,
HF ViT, OpenAI and HF CLIP, Google ``.npz``) to the canonical names below, and
:func:`resample_pos_embed` is the one positional-embedding resampler; :func:`load_image_vit` also reads the file (``.pth``/``.bin``/
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
    blocks.N.ls1.gamma, blocks.N.ls2.gamma     (layer scale, DeiT-III / CaiT, when present)
    norm_pre.{weight,bias}                     (CLIP's ln_pre, when present)
    norm.{weight,bias}
    embed_proj.weight (E, D)                   (CLIP's image-text projection, when present)
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
OpenAI CLIP (``visual.`` prefix or    ``conv1``, ``class_embedding``, ``positional_embedding``, ``ln_pre``,
  already stripped), HF ``CLIPVisionModel``      ``transformer.resblocks.N.*`` / HF ``embeddings.*``, ``pre_layrnorm``,
  / ``CLIPModel``                                  ``encoder.layers.N.*``: see :func:`_from_clip`
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

import math
import os
import re
from typing import Literal, Mapping

import torch
import torch.nn.functional as F

__all__ = [
    "VitLayout",
    "detect_vit_layout",
    "convert_vit_state_dict",
    "load_image_vit",
    "convert_hf_blocks",
    "resample_pos_embed",
    "HF_TOP_KEYS",
]

VitLayout = Literal["timm", "hf", "clip", "npz"]
StateDict = dict[str, torch.Tensor]

_NPZ_PREFIXES = ("opt/target/", "params/img/", "params/")


def detect_vit_layout(sd: Mapping[str, torch.Tensor]) -> VitLayout:
    """Which layout ``sd`` is in: ``"timm"`` (timm/DeiT), ``"hf"`` (transformers ViT) or ``"npz"``
    (Google's Flax ViT files, keys separated by ``/``)."""
    keys = list(sd)
    if any("/" in k for k in keys):
        return "npz"
    if any(k.startswith(("visual.", "vision_model.", "transformer.resblocks.", "encoder.layers.")) for k in keys) or \
            "class_embedding" in sd or "embeddings.class_embedding" in sd:
        return "clip"
    if any(k.startswith(("patch_embed.", "blocks.")) for k in keys):
        return "timm"
    if any(k.startswith(("embeddings.", "vit.embeddings.", "encoder.layer.", "vit.encoder.layer.", "layers.",
                         "vit.layers.")) for k in keys):
        return "hf"
    raise ValueError(
        "cannot tell the image-ViT layout of this checkpoint (expected timm/DeiT 'patch_embed.*'/'blocks.*', "
        "HF 'vit.embeddings.*'/'vit.encoder.layer.*', CLIP 'visual.*'/'vision_model.*', or Google .npz "
        "'embedding/kernel'/'Transformer/...'); "
        f"first keys: {keys[:8]}"
    )


def convert_vit_state_dict(
    sd: Mapping[str, torch.Tensor],
    layout: VitLayout | Literal["auto"] = "auto",
    strict: bool = False,
) -> StateDict:
    """Map an image-ViT state dict in ``layout`` to the canonical timm names (see the module doc).

    Keys this converter does not understand (a MAP head, register tokens, a model's own video modules)
    are kept under their names, so a loader's report names them; ``strict=True`` raises ``ValueError``
    listing them instead.
    """
    if layout == "auto":
        try:
            layout = detect_vit_layout(sd)
        except ValueError:
            if strict:
                raise
            return dict(sd)  # nothing of an image ViT in it: left for the loader to report by name
    if layout == "timm":
        out, unknown = _from_timm(sd)
    elif layout == "hf":
        out, unknown = _from_hf(sd)
    elif layout == "clip":
        out = _from_clip(sd)
        unknown = [k for k in out if not (k in _TIMM_TOP or _TIMM_BLOCK.match(k))]
    elif layout == "npz":
        out, unknown = _from_npz(sd)
    else:
        raise ValueError(f"unknown image-ViT layout {layout!r}; use 'timm', 'hf', 'clip', 'npz' or 'auto'")
    if unknown and strict:
        raise ValueError(
            f"{len(unknown)} key(s) of this {layout} ViT checkpoint have no canonical ViT equivalent: "
            f"{sorted(unknown)[:12]}{' ...' if len(unknown) > 12 else ''}"
        )
    for k in unknown:
        if k not in out and k in sd:
            out[k] = sd[k]
    return out


def load_image_vit(
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    layout: VitLayout | Literal["auto"] = "auto",
    strict: bool = True,
) -> StateDict:
    """Read (if a path) and convert an image-ViT checkpoint to the canonical layout (``strict``: refuse
    keys without a canonical name)."""
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


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
    mode: str = "bicubic",
    align_corners: bool = False,
    antialias: bool | None = None,
) -> torch.Tensor:
    """Interpolate a ``(1, prefix + Gh*Gw, D)`` positional embedding to another grid: the one resampler
    of every family (ViT/CLIP at another resolution, UniFormerV2's frames, ViViT's image init).

    The prefix (class token) embeddings are kept as they are; the grid part is resized. Defaults are
    timm's: bicubic, ``align_corners=False``, antialiased when shrinking (``antialias=None``).
    ViViT's "resize" of the authors is ``mode="bilinear", align_corners=True`` (corner to corner, as
    ``scipy.ndimage.zoom(order=1)``). ``old_grid`` defaults to the square grid the token count implies.
    """
    squeeze = pos_embed.ndim == 2
    if squeeze:
        pos_embed = pos_embed.unsqueeze(0)
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    n = grid.shape[1]
    if old_grid is None:
        side = int(math.isqrt(n))
        if side * side != n:
            raise ValueError(f"cannot infer the grid of a positional embedding with {n} patch tokens; pass old_grid")
        old_grid = (side, side)
    new_grid = tuple(int(g) for g in new_grid)
    if tuple(old_grid) != new_grid:
        if mode not in ("bilinear", "bicubic"):
            raise ValueError(f"mode must be 'bilinear' or 'bicubic', got {mode!r}")
        dtype = grid.dtype
        g = grid.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2).float()
        if antialias is None:
            antialias = new_grid[0] < old_grid[0] or new_grid[1] < old_grid[1]
        g = F.interpolate(g, size=new_grid, mode=mode, align_corners=align_corners, antialias=antialias)
        grid = g.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(dtype)
    out = torch.cat([prefix, grid], dim=1)
    return out[0] if squeeze else out


# --------------------------------------------------------------------------- checkpoint layouts
_OPENAI_BLOCK = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "attn.in_proj_weight": "attn.qkv.weight",
    "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj": "attn.proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}
_HF_CLIP_BLOCK = {
    "layer_norm1": "norm1",
    "layer_norm2": "norm2",
    "self_attn.out_proj": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def _rename_block_key(rest: str, table: Mapping[str, str]) -> str | None:
    for src, dst in table.items():
        if rest == src or rest.startswith(src + "."):
            return dst + rest[len(src):]
    return None


def _from_clip(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an image-ViT state dict in the OpenAI CLIP or HF CLIP layout to the canonical names.

    - **OpenAI CLIP** (``visual.`` prefix or already stripped): ``conv1``, ``class_embedding``,
      ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.{ln_1, attn.in_proj_*,
      attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``, ``ln_post``, ``proj`` (``(D, E)``, stored
      transposed as ``embed_proj.weight``). The text tower of a full CLIP state dict is dropped.
    - **HF** ``CLIPVisionModel`` / ``CLIPModel`` (``vision_model.`` prefix in transformers 4.x and
      in ``CLIPModel``, none in 5.x ``CLIPVisionModel``): ``embeddings.*``, ``pre_layrnorm``,
      ``encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2}``
      (q, k, v concatenated into one qkv), ``post_layernorm``, ``visual_projection``.

    Keys this function does not recognise are passed through, so the loader's report names them.
    """
    sd = dict(sd)
    if any(k.startswith("visual.") for k in sd):  # full OpenAI CLIP: keep the image tower only
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    if any(k.startswith("vision_model.") for k in sd):  # HF CLIPModel / 4.x CLIPVisionModel
        sd = {k.removeprefix("vision_model."): v for k, v in sd.items()
              if k.startswith("vision_model.") or k == "visual_projection.weight"}
    out: dict[str, torch.Tensor] = {}
    hf_qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k in ("class_embedding", "embeddings.class_embedding"):
            out["cls_token"] = v.reshape(1, 1, -1)
        elif k in ("positional_embedding", "embeddings.position_embedding.weight"):
            out["pos_embed"] = v.reshape(1, v.shape[-2], v.shape[-1])
        elif k in ("conv1.weight", "embeddings.patch_embedding.weight"):
            out["patch_embed.proj.weight"] = v
        elif k == "embeddings.patch_embedding.bias":
            out["patch_embed.proj.bias"] = v
        elif k == "embeddings.position_ids":
            continue
        elif k.startswith(("ln_pre.", "pre_layrnorm.")):
            out["norm_pre." + k.split(".", 1)[1]] = v
        elif k.startswith(("ln_post.", "post_layernorm.")):
            out["norm." + k.split(".", 1)[1]] = v
        elif k == "proj":
            out["embed_proj.weight"] = v.t().contiguous()
        elif k == "visual_projection.weight":
            out["embed_proj.weight"] = v
        elif m := re.match(r"transformer\.resblocks\.(\d+)\.(.+)$", k):
            new = _rename_block_key(m.group(2), _OPENAI_BLOCK)
            out[f"blocks.{m.group(1)}.{new}" if new else k] = v
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", k):
            hf_qkv.setdefault((int(m.group(1)), m.group(3)), {})[m.group(2)] = v
        elif m := re.match(r"encoder\.layers\.(\d+)\.(.+)$", k):
            new = _rename_block_key(m.group(2), _HF_CLIP_BLOCK)
            out[f"blocks.{m.group(1)}.{new}" if new else k] = v
        else:
            out[k] = v
    for (i, leaf), parts in sorted(hf_qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            for p, v in parts.items():  # incomplete: leave them for the loader to report
                out[f"encoder.layers.{i}.self_attn.{p}_proj.{leaf}"] = v
            continue
        out[f"blocks.{i}.attn.qkv.{leaf}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


# ---------------------------------------------------------------------------------------------
# timm / DeiT

_TIMM_BLOCK = re.compile(r"^blocks\.\d+\.(norm1|norm2)\.(weight|bias)$|^blocks\.\d+\.ls[12]\.gamma$|"
                         r"^blocks\.\d+\.attn\.(qkv|proj)\.(weight|bias)$|"
                         r"^blocks\.\d+\.mlp\.(fc1|fc2)\.(weight|bias)$")
_TIMM_TOP = {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed", "norm.weight",
             "norm.bias", "head.weight", "head.bias", "pre_logits.fc.weight", "pre_logits.fc.bias", "norm_pre.weight",
             "norm_pre.bias", "embed_proj.weight"}


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

HF_TOP_KEYS = {
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
        if k in HF_TOP_KEYS:
            out[HF_TOP_KEYS[k]] = flat[k]
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
