"""UniFormer: unifying convolution and self-attention (Li et al., ICLR 2022 / TPAMI 2023).

One implementation serves the image (2D) and video (3D) backbones of *UniFormer: Unifying
Convolution and Self-attention for Visual Recognition* (TPAMI 2023, arXiv 2201.09450; "TPAMI"
below) and *UniFormer: Unified Transformer for Efficient Spatiotemporal Representation Learning*
(ICLR 2022, arXiv 2201.04676):

* **UniFormer block** (TPAMI Sec. 3.1, Eq. 1-3): ``X = DPE(X) + X``; ``Y = MHRA(Norm(X)) + X``;
  ``Z = FFN(Norm(Y)) + Y`` -- the shared pre-norm :class:`~videoformers.models.layers.Block` with a
  DPE in front.
* **DPE** (Sec. 3.4): depth-wise 3x3(x3) convolution with zero padding, added as a residual.
* **Local MHRA** (Sec. 3.2, Eq. 5-6): ``BN -> V (point-wise) -> A (depth-wise 5x5(x5), the
  learnable local affinity) -> U (point-wise)``; stages 1-2 (:class:`LocalUniFormerBlock`).
* **Global MHRA** (Sec. 3.3, Eq. 7): ``LN -> multi-head self-attention over all T*H*W tokens``;
  stages 3-4 (:class:`GlobalUniFormerBlock`). Optionally computed inside windows (Sec. 4.3, "window" /
  "hybrid" blocks for high-resolution input), all windows batched into one SDPA call.
* **Backbones** (Sec. 4, Table 1): four stages at strides 4/8/16/32; the video stem is a
  3x4x4 convolution with stride 2x4x4 (the only temporal down-sampling), later stems 1x2x2.
* **Dense-task backbone** (Sec. 4.3, 6.3-6.5; :meth:`UniFormer.to_dense_backbone`, what
  ``features_only=True`` gives for image models): the authors' detection / segmentation / pose copy, with a
  LayerNorm on each stage output, windows zero-padded to their full size, any input size, and
  :meth:`UniFormer.set_window_attention` for train-global / test-hybrid.

Tensors move between blocks channels-last (``(B, T, H, W, C)`` / ``(B, H, W, C)``): point-wise
convolutions become ``Linear`` layers (PyTorch's point-wise ``Conv3d`` takes a slow CPU path),
depth-wise convolutions get the fast channels-last kernels, and global attention reads its tokens
without a copy. The authors' checkpoints load through :meth:`UniFormer.convert_state_dict`.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Literal, Sequence

import torch
import torch.nn as nn

from ..ops import Conv3d, Linear
from ..registry import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD, ModelCard, build_model, register_model
from .contract import FeatureInfo, ModelContract, check_output_fmt, feature_take_indices, take_map
from .layers import (
    Attention, Block, PatchEmbed, check_input, create_classifier, run_blocks, stochastic_depth_rates, to_ntuple,
    trunc_normal_init, window_partition, window_reverse,
)

__all__ = [
    "UniFormer",
    "DPE",
    "LocalMHRA",
    "GlobalMHRA",
    "LocalUniFormerBlock",
    "GlobalUniFormerBlock",
    "ConvStem",
    "channels_first",
]

BlockType = Literal["local", "global", "window"]
WindowPad = Literal["shrink", "authors"]
_WINDOW_PADS = ("shrink", "authors")


def _check_window_pad(window_pad: str) -> str:
    if window_pad not in _WINDOW_PADS:
        raise ValueError(f"window_pad must be one of {_WINDOW_PADS}, got {window_pad!r}")
    return window_pad


def _check_window_pattern(window_pattern: str) -> str:
    if not isinstance(window_pattern, str) or not window_pattern or set(window_pattern) - {"w", "g"}:
        raise ValueError(f"window_pattern must be a non-empty string over {{'w', 'g'}} ('w': window block, "
                         f"'g': global block, cycled over the stage-3 blocks, e.g. 'wwwg' = hybrid), "
                         f"got {window_pattern!r}")
    return window_pattern


def channels_first(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a channels-first module (conv, BatchNorm) on a channels-last tensor ``(B, *S, C)``.

    Both ``movedim`` calls are views: the module sees an NC(D)HW tensor in channels-last memory
    format, which the CPU/GPU conv and BN kernels handle natively (and ``SyncBatchNorm``
    conversion keeps working because the modules are the standard ones).
    """
    return module(x.movedim(-1, 1)).movedim(1, -1)


def _conv(dims: int) -> type[nn.Module]:
    return Conv3d if dims == 3 else nn.Conv2d


def _bn(dims: int) -> type[nn.Module]:
    return nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d


class DPE(nn.Module):
    """Dynamic position embedding (TPAMI Sec. 3.4): ``X + DWConv3x3(x3)(X)`` with zero padding."""

    def __init__(self, dim: int, dims: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = _conv(dims)(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + channels_first(self.proj, x)


class LocalMHRA(nn.Module):
    """Local multi-head relation aggregator (TPAMI Eq. 5-6).

    ``V`` is a point-wise projection, the local affinity ``A`` a learnable depth-wise
    ``5x5(x5)`` kernel shared across positions (one "head" per channel), ``U`` a point-wise
    fusion. The preceding normalisation is BatchNorm (held by the block).
    """

    def __init__(self, dim: int, dims: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.value = Linear(dim, dim)
        self.affinity = _conv(dims)(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(channels_first(self.affinity, self.value(x)))


class GlobalMHRA(Attention):
    """Global multi-head relation aggregator (TPAMI Eq. 7): self-attention over all tokens of a
    channels-last grid ``(B, *S, C)``.

    With ``window_size`` the attention runs inside non-overlapping windows (TPAMI Sec. 4.3); the
    input is zero-padded (after the norm, as in the authors' dense-task code) to a multiple of the
    window and all windows are batched into one SDPA call. A window entry of 0 spans the whole axis.

    ``window_pad`` says what happens where an axis is shorter than its window:

    * ``"shrink"`` (classification models): the window shrinks to the axis, so a 7x7 map with window
      14 is plain global attention;
    * ``"authors"`` (the dense-task backbones, :meth:`UniFormer.to_dense_backbone`): the window keeps
      its size and the map is zero-padded up to it, padding attended without a mask, as the authors'
      ``SABlock_Windows`` in their detection/segmentation/pose code does (the zero tokens still receive
      softmax weight through their ``qkv`` bias, so this is a different function from shrinking).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, window_size: Sequence[int] | None = None,
                 window_pad: WindowPad = "shrink") -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.window_size = tuple(window_size) if window_size is not None else None
        self.window_pad = _check_window_pad(window_pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        B, *S, C = x.shape
        if self.window_size is None:
            return super().forward(x.reshape(B, -1, C)).view(B, *S, C)
        if self.window_pad == "authors":
            ws = [w if w > 0 else s for w, s in zip(self.window_size[-len(S):], S)]
        else:
            ws = [min(w, s) if w > 0 else s for w, s in zip(self.window_size[-len(S):], S)]
        win, grid = window_partition(x, ws)
        return window_reverse(super().forward(win), B, grid, ws, S)


class LocalUniFormerBlock(Block):
    """UniFormer block with local MHRA (stages 1-2; the authors' ``CBlock``): DPE, then the pre-norm
    block with BatchNorm as the norm (applied channels-first) and :class:`LocalMHRA`.

    Input/output channels-last ``(B, *S, C)``.
    """

    def __init__(self, dim: int, dims: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = None, drop: float = 0.0) -> None:
        super().__init__(dim, LocalMHRA(dim, dims), int(dim * mlp_ratio), norm_layer=_bn(dims), drop=drop,
                         drop_path=drop_path, init_values=layer_scale_init_value)
        self.pos_embed = DPE(dim, dims)

    def attention_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls1(self.attn(channels_first(self.norm1, x)))

    def mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.ls2(self.mlp(channels_first(self.norm2, x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pos_embed(x))


class GlobalUniFormerBlock(Block):
    """UniFormer block with global (or windowed) MHRA (stages 3-4; the authors' ``SABlock``): DPE, then
    the pre-norm block with LayerNorm and :class:`GlobalMHRA`."""

    def __init__(self, dim: int, dims: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, layer_scale_init_value: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, window_size: Sequence[int] | None = None) -> None:
        attn = GlobalMHRA(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop,
                          window_size=window_size)
        super().__init__(dim, attn, int(dim * mlp_ratio), norm_layer=partial(nn.LayerNorm, eps=1e-6), drop=drop,
                         drop_path=drop_path, init_values=layer_scale_init_value)
        self.pos_embed = DPE(dim, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pos_embed(x))


class ConvStem(nn.Module):
    """Overlapping convolutional stem (UniFormer-S+, light models; TPAMI Sec. 4, Sec. 5.2).

    ``two_layer``: ``conv3 s2 -> BN -> GELU -> conv3 s2 -> BN`` (stage 1, stride 4);
    otherwise ``conv3 s2 -> BN`` (stages 2-4). No LayerNorm, as in the authors' code.
    In 3D the first conv of the two-layer stem keeps time and the second halves it.
    Input channels-first ``(B, C, [T,] H, W)``, output channels-last, as :class:`PatchEmbed`.
    """

    def __init__(self, in_dim: int, dim: int, dims: int, two_layer: bool) -> None:
        super().__init__()
        conv, bn = _conv(dims), _bn(dims)
        if two_layer:
            s1 = (1, 2, 2) if dims == 3 else 2
            s2 = (2, 2, 2) if dims == 3 else 2
            self.proj = nn.Sequential(
                conv(in_dim, dim // 2, 3, s1, 1), bn(dim // 2), nn.GELU(), conv(dim // 2, dim, 3, s2, 1), bn(dim)
            )
        else:
            s = (1, 2, 2) if dims == 3 else 2
            self.proj = nn.Sequential(conv(in_dim, dim, 3, s, 1), bn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).movedim(1, -1)


class UniFormer(ModelContract, nn.Module):
    """UniFormer image (``dims=2``) or video (``dims=3``) backbone with a linear classifier.

    Args mirror the papers' hyper-parameters: ``depth``/``embed_dim`` per stage, ``head_dim``
    (heads = dim // head_dim in global stages), ``mlp_ratio`` (one value or one per stage),
    ``drop_path_rate`` (linear over all blocks), ``stage_types`` (``"local"``/``"global"`` per
    stage; the papers' default is ``[L, L, G, G]``), ``window_size`` and ``window_pattern`` for
    stage 3 (a string over ``{"w", "g"}`` cycled over the blocks, e.g. ``"wwwg"`` = the hybrid
    block of TPAMI Sec. 4.3), ``conv_stem``/``conv_downsample`` (S+ / light models),
    ``layer_scale_init_value`` (L and ``*_ls`` models; ``layer_scale_local=False``: global blocks
    only), ``token_label_head`` (the auxiliary token-labelling head of the authors' L checkpoint:
    eval logits = head(mean) + 0.5 * max over tokens of aux_head(tokens)). Subclasses replace blocks
    by overriding :meth:`_make_block`.

    Model contract (:mod:`videoformers.models.contract`): ``forward_features`` is the last stage's map
    after the final BatchNorm, ``(B, C4, T/2, H/32, W/32)`` (video) / ``(B, C4, H/32, W/32)``; the four
    stages are the intermediates (strides 4, 8, 16, 32; time halved by the stem).

    Dense prediction (image models; TPAMI Sec. 4.3 and 6.3-6.5): ``dense=True``, or
    ``create_model(name, features_only=True)`` (which calls :meth:`to_dense_backbone`), gives the
    backbone of the authors' detection / segmentation / pose code: a LayerNorm (eps 1e-6) ``norm1`` ..
    ``norm4`` on each returned stage map, no final BatchNorm or classifier, windows zero-padded to their
    full size (``window_pad="authors"``) and any input size of at least 32 (their stride-equal patch
    convolutions floor). :meth:`set_window_attention` switches stage 3 between global, window and
    hybrid blocks at run time (train global, test hybrid for segmentation, Sec. 4.3).
    """

    classifier_prefixes = ("head.", "aux_head.")  # the token-labelling head has a row per class too

    def __init__(
        self,
        dims: int = 3,
        num_classes: int = 400,
        in_chans: int = 3,
        depth: Sequence[int] = (3, 4, 8, 3),
        embed_dim: Sequence[int] = (64, 128, 320, 512),
        head_dim: int = 64,
        mlp_ratio: float | Sequence[float] = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        stage_types: Sequence[BlockType] = ("local", "local", "global", "global"),
        window_size: int | Sequence[int] | None = None,
        window_pattern: str = "w",
        window_pad: WindowPad = "shrink",
        dense: bool = False,
        conv_stem: bool = False,
        conv_downsample: bool = False,
        layer_scale_init_value: float | None = None,
        layer_scale_local: bool = True,
        token_label_head: bool = False,
        num_frames: int | None = None,
        img_size: int | Sequence[int] = 224,
        stem_temporal_kernel: int = 3,
        stem_temporal_stride: int = 2,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 (image) or 3 (video), got {dims}")
        if dims == 2 and num_frames is not None:
            raise ValueError(f"num_frames={num_frames}: an image UniFormer (dims=2) takes no frames")
        num_frames = 16 if dims == 3 and num_frames is None else num_frames
        depth, embed_dim = tuple(depth), tuple(embed_dim)
        if len(depth) != 4 or len(embed_dim) != 4:
            raise ValueError(f"depth and embed_dim need 4 stages, got {depth} and {embed_dim}")
        mlp_ratios = ((float(mlp_ratio),) * 4 if isinstance(mlp_ratio, (int, float))
                      else tuple(float(m) for m in mlp_ratio))
        if len(mlp_ratios) != 4:
            raise ValueError(f"mlp_ratio needs 1 or 4 values, got {mlp_ratio}")
        self.dims = dims
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depth, self.embed_dim, self.head_dim = depth, embed_dim, head_dim
        self.num_frames, self.img_size = num_frames, to_ntuple(img_size, 2)
        self.num_features = embed_dim[-1]
        self.grad_checkpointing: tuple[int, ...] = (0, 0, 0, 0)
        self.num_stages = 4  # fewer after prune_intermediate_layers
        self.window_size = self._window_tuple(window_size)
        self.window_pattern = _check_window_pattern(window_pattern)
        self.window_pad = _check_window_pad(window_pad)
        self.dense = False  # set by to_dense_backbone

        # Stems (TPAMI Sec. 4): stride 4 then 2, 2, 2; the video stem alone strides time.
        if conv_stem:
            if dims == 3 and (stem_temporal_kernel, stem_temporal_stride) != (3, 2):
                raise ValueError("the convolutional video stem has a fixed 3x3x3 kernel with temporal stride 2")
            self.patch_embed1: nn.Module = ConvStem(in_chans, embed_dim[0], dims, two_layer=True)
            t_stride = 2
        else:
            if dims == 3:
                k, s, p = (stem_temporal_kernel, 4, 4), (stem_temporal_stride, 4, 4), (stem_temporal_kernel // 2, 0, 0)
            else:
                k, s, p = (4, 4), (4, 4), (0, 0)
            self.patch_embed1 = PatchEmbed(in_chans, embed_dim[0], k, s, p, norm_layer=nn.LayerNorm)
            t_stride = stem_temporal_stride
        for i in range(1, 4):
            if conv_downsample:
                pe: nn.Module = ConvStem(embed_dim[i - 1], embed_dim[i], dims, two_layer=False)
            else:
                pe = PatchEmbed(embed_dim[i - 1], embed_dim[i], (1, 2, 2) if dims == 3 else (2, 2),
                                norm_layer=nn.LayerNorm)
            setattr(self, f"patch_embed{i + 1}", pe)

        self.pos_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        dpr = stochastic_depth_rates(drop_path_rate, depth)
        for s in range(4):
            blocks = []
            for i in range(depth[s]):
                kind = stage_types[s]
                if kind == "global" and s == 2 and self.window_size is not None:
                    kind = "window" if window_pattern[i % len(window_pattern)] == "w" else "global"
                if kind != "local" and embed_dim[s] % head_dim:
                    raise ValueError(f"embed_dim {embed_dim[s]} of stage {s + 1} is not divisible by "
                                     f"head_dim {head_dim}")
                ls = layer_scale_init_value if (kind != "local" or layer_scale_local) else None
                blocks.append(self._make_block(
                    s, i, kind, embed_dim[s], num_heads=embed_dim[s] // head_dim, mlp_ratio=mlp_ratios[s],
                    qkv_bias=qkv_bias, drop_path=dpr[s][i], layer_scale_init_value=ls, drop=drop_rate,
                    attn_drop=attn_drop_rate, window_size=self.window_size if kind == "window" else None,
                ))
            setattr(self, f"blocks{s + 1}", nn.ModuleList(blocks))
        for blk in self.blocks3:
            if isinstance(getattr(blk, "attn", None), GlobalMHRA):
                blk.attn.window_pad = self.window_pad
        self.feature_info = FeatureInfo(
            dict(num_chs=embed_dim[s], reduction=4 * 2**s, temporal_reduction=t_stride if dims == 3 else 1,
                 module=f"blocks{s + 1}")
            for s in range(4)
        )

        self.norm = _bn(dims)(embed_dim[-1])
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.head = create_classifier(embed_dim[-1], num_classes)
        self.aux_head = Linear(embed_dim[-1], num_classes) if token_label_head else None
        self.apply(trunc_normal_init)
        if dense:
            self.to_dense_backbone()

    def _window_tuple(self, window_size: int | Sequence[int] | None) -> tuple[int, ...] | None:
        """``window_size`` as one entry per grid axis (video: time first, 0 = the whole clip length)."""
        if window_size is None:
            return None
        ws = (((0,) if self.dims == 3 else ()) + (int(window_size), int(window_size))
              if isinstance(window_size, int) else to_ntuple(window_size, self.dims))
        if any(w < 0 for w in ws) or not any(ws):
            raise ValueError(f"window_size must be positive (0 = a whole axis, video only), got {window_size}")
        return ws

    # ------------------------------------------------------------------ dense prediction
    def set_window_attention(self, window_size: int | Sequence[int] | None, window_pattern: str = "w") -> None:
        """Reconfigure the global MHRA of stage 3 (TPAMI Sec. 4.3) without touching any parameter.

        ``window_size=None``: every stage-3 block global; otherwise block ``i`` attends inside windows
        when ``window_pattern[i % len(window_pattern)] == "w"`` and globally for ``"g"``: ``"w"`` = all
        window blocks, ``"wwwg"`` = hybrid (every fourth block global, the authors' ``(i + 1) % 4 == 0``).
        The segmentation models train global and test hybrid h32 with ``set_window_attention(32, "wwwg")``.
        Stages 1-2 (local MHRA) and 4 (7x7 tokens at 224) are unaffected, as in the paper.
        """
        ws = self._window_tuple(window_size)
        pattern = _check_window_pattern(window_pattern)
        blocks = list(self.blocks3)
        attns = [getattr(blk, "attn", None) for blk in blocks]
        if ws is not None and not all(isinstance(a, GlobalMHRA) for a in attns):
            raise ValueError(f"{getattr(self, 'model_name', type(self).__name__)}: stage 3 has no global MHRA "
                             "blocks whose attention can be windowed")
        if ws is not None and any(getattr(blk, "shrink_ratio", None) is not None for blk in blocks):
            raise ValueError("H-UniFormer (light) blocks attend over shrunk token sets: stage 3 cannot be windowed")
        for i, a in enumerate(attns):
            if isinstance(a, GlobalMHRA):
                a.window_size = ws if ws is not None and pattern[i % len(pattern)] == "w" else None
        self.window_size, self.window_pattern = ws, pattern

    def to_dense_backbone(self, out_indices: Sequence[int] | None = None) -> None:
        """Turn this image model into the authors' dense-task backbone (``object_detection/``,
        ``semantic_segmentation/``, ``pose_estimation/`` in Sense-X/UniFormer; TPAMI Sec. 6.3-6.5).
        :class:`~videoformers.models.contract.FeatureExtractor` calls it (``features_only=True``).

        * ``norm1`` .. ``norm4``: a LayerNorm (eps 1e-6, the authors' names and init) on each stage map
          returned (only for the stages in ``out_indices``, all four by default), so that FPN / UperNet /
          the pose head read normalised maps; the trunk continues from the un-normalised map;
        * the final BatchNorm and the classifier go: the dense heads never read them, and the
          authors' dense checkpoints have none (an ImageNet checkpoint's ``head.*``/``norm.*`` are
          reported as ignored, not unexpected, see :attr:`checkpoint_ignored_prefixes`);
        * window attention zero-pads to full windows (``window_pad="authors"``);
        * inputs of any size of at least 32 x 32 (the authors' segmentation test pipeline feeds e.g.
          512 x 683); stage sizes are floored as by the stride-equal patch convolutions.

        Idempotent. Video models have no dense form (the authors ship none): ``ValueError``.
        """
        if self.dims != 2:
            raise ValueError("the dense-task backbone exists for image UniFormers only (dims=2)")
        take = list(range(self.num_stages)) if out_indices is None else sorted(int(i) for i in out_indices)
        like = next(self.parameters())
        for s in range(4):
            name = f"norm{s + 1}"
            if s in take and not isinstance(getattr(self, name, None), nn.LayerNorm):
                setattr(self, name, nn.LayerNorm(self.embed_dim[s], eps=1e-6, device=like.device, dtype=like.dtype))
            elif s not in take and name in self._modules:
                delattr(self, name)  # an unused norm would be a parameter without gradient (DDP refuses)
        self.norm = nn.Identity()
        if self.num_classes:
            self.reset_classifier(0)
        self.window_pad = "authors"
        for blk in self.blocks3:
            if isinstance(getattr(blk, "attn", None), GlobalMHRA):
                blk.attn.window_pad = "authors"
        self.dense = True

    #: Checkpoint keys a dense backbone leaves out by design: the classification model's classifier and
    #: final norm, and the detector / segmentor / pose heads of an MMDetection / MMSegmentation / MMPose
    #: checkpoint (``backbone.`` stripped by the loader).
    _DENSE_IGNORED = ("head.", "norm.", "aux_head.", "head_cls.", "norm_cls.", "neck.", "decode_head.",
                      "auxiliary_head.", "rpn_head.", "roi_head.", "bbox_head.", "mask_head.", "keypoint_head.")

    @property
    def checkpoint_ignored_prefixes(self) -> tuple[str, ...]:
        """Read by :func:`~videoformers.checkpoints.load_checkpoint`: key prefixes of a checkpoint this
        model ignores on purpose (reported in ``report.ignored``): see :attr:`_DENSE_IGNORED`, and the
        output norms of stages it does not return."""
        if not self.dense:
            return ()
        # the authors' pose backbone has norm1..norm4 but returns the last map only: the norms of stages
        # this model does not return are unused there and here
        unused = tuple(f"norm{s + 1}." for s in range(4) if f"norm{s + 1}" not in self._modules)
        return self._DENSE_IGNORED + unused

    @property
    def checkpoint_new_prefixes(self) -> tuple[str, ...]:
        """Read by :func:`~videoformers.checkpoints.load_checkpoint`: this model's tensors that a
        checkpoint of the source task (ImageNet classification) cannot have: the dense backbone's
        output norms, left at their init and reported in ``report.new`` when absent."""
        return tuple(f"norm{s + 1}." for s in range(4) if f"norm{s + 1}" in self._modules) if self.dense else ()

    def _take(self, s: int, x: torch.Tensor, channels_first: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage ``s``'s returned map and the tensor the trunk continues from (see ``take_map``)."""
        if self.dense:
            f = getattr(self, f"norm{s + 1}")(x)  # channels-last LayerNorm, as the authors' x.permute(0, 2, 3, 1)
            return (f.movedim(-1, 1) if channels_first else f), x
        return take_map(x, channels_first)

    def _make_block(self, stage: int, index: int, kind: BlockType, dim: int, *, num_heads: int, mlp_ratio: float,
                    qkv_bias: bool, drop_path: float, layer_scale_init_value: float | None, drop: float,
                    attn_drop: float, window_size: Sequence[int] | None) -> nn.Module:
        """Block ``index`` of ``stage`` (both 0-based) of the given kind; the constructor calls it for
        every block, so a subclass (H-UniFormer) overriding it builds its own blocks once.

        The keywords are the block arguments the constructor derived for that position (``num_heads``
        and ``window_size`` only matter to global/window blocks). Runs before ``self.apply(trunc_normal_init)``.
        """
        if kind == "local":
            return LocalUniFormerBlock(dim, self.dims, mlp_ratio, drop_path, layer_scale_init_value, drop)
        return GlobalUniFormerBlock(dim, self.dims, num_heads, mlp_ratio, qkv_bias, drop_path, layer_scale_init_value,
                              drop, attn_drop, window_size)

    # ------------------------------------------------------------------ contract
    def _stage_depths(self) -> tuple[int, ...]:
        return tuple(len(getattr(self, f"blocks{s + 1}")) for s in range(4))

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.aux_head is not None:
            self.aux_head = (create_classifier(self.num_features, num_classes, like=next(self.parameters()))
                             if num_classes > 0 else None)

    def _check(self, x: torch.Tensor) -> None:
        video = self.dims == 3
        # The dense backbone floors like the authors' patch convolutions; it needs one token in the
        # last stage it runs (32 px for all four stages).
        smallest = 4 * 2 ** (self.num_stages - 1) if self.dense else 32
        check_input(x, ndim=5 if video else 4, channels=self.in_chans, multiple_of=None if self.dense else (32, 32),
                    min_size=(smallest, smallest), layout="(B, C, T, H, W)" if video else "(B, C, H, W)",
                    model=getattr(self, "model_name", type(self).__name__ + (" (video)" if video else " (image)")))

    def _run_stage(self, s: int, x: torch.Tensor) -> torch.Tensor:
        return run_blocks(getattr(self, f"blocks{s + 1}"), x, self.grad_checkpointing[s])

    def _forward_stages(self, x: torch.Tensor, take: Sequence[int] = (), channels_first: bool = True,
                        stop: int = 3) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Stages ``0..stop``: the last one's channels-last output and the maps of the stages in ``take``."""
        self._check(x)
        feats: list[torch.Tensor] = []
        x = self.pos_drop(self.patch_embed1(x))
        for s in range(min(stop, self.num_stages - 1) + 1):
            if s:
                x = getattr(self, f"patch_embed{s + 1}")(x.movedim(-1, 1))
            x = self._run_stage(s, x)
            if s in take:
                f, x = self._take(s, x, channels_first)
                feats.append(f)
        return x, feats

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(-1, 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map after the final BatchNorm, ``(B, C4, T', H/32, W/32)`` (video)."""
        return self._final_norm(self._forward_stages(x)[0])

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              output_fmt: str | None = None, intermediates_only: bool = False):
        """Stage outputs (see :mod:`videoformers.models.contract`); ``norm`` applies the final BatchNorm to
        the last stage's map."""
        cf = check_output_fmt(output_fmt or ("NCTHW" if self.dims == 3 else "NCHW"), self.dims == 3)
        take, last = feature_take_indices(self.num_stages, indices)
        x, feats = self._forward_stages(x, take, cf, last if intermediates_only else 3)
        final = None
        if norm and 3 in take and not self.dense:  # (dense: no final norm; norm4 is already applied)
            final = self._final_norm(x)  # (B, C, ...): the map the head reads (a view of the returned one)
            if not cf:
                feats[-1] = final.movedim(1, -1)
                final = feats[-1].movedim(-1, 1)
            else:
                feats[-1] = final
        if intermediates_only:
            return feats
        return (final if final is not None else self._final_norm(x)), feats

    def prune_intermediate_layers(self, indices: int | Sequence[int] | None = None, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take, last = feature_take_indices(self.num_stages, indices)
        for s in range(last + 1, 4):
            setattr(self, f"patch_embed{s + 1}", nn.Identity())
            setattr(self, f"blocks{s + 1}", nn.ModuleList())
            if f"norm{s + 1}" in self._modules:
                delattr(self, f"norm{s + 1}")
        self.num_stages = last + 1
        if prune_norm or last < 3:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        tokens = x.flatten(2)
        pooled = tokens.mean(-1)
        if pre_logits:
            return pooled
        out = self.head(self.head_drop(pooled))
        if self.aux_head is not None:
            out = out + 0.5 * self.aux_head(tokens.transpose(1, 2)).max(1)[0]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ----------------------------------------------------------- checkpoints
    def convert_state_dict(self, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map the authors' (Sense-X/UniFormer, MMAction2 after ``backbone.`` stripping) keys to ours.

        Local blocks: ``conv1`` -> ``attn.value``, ``attn`` (depth-wise) -> ``attn.affinity``,
        ``conv2`` -> ``attn.proj``; ``pos_embed`` -> ``pos_embed.proj``; point-wise conv kernels
        ``(O, I, 1, 1[, 1])`` become ``Linear`` weights ``(O, I)``; layer-scale ``gamma_i`` of shape
        ``(C,)`` or ``(1, C, 1, 1)`` become ``ls_i.gamma`` ``(C,)``. Our own layout passes through unchanged.
        """
        out: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            k2 = k
            m = re.match(r"^(blocks\d\.\d+)\.(.*)$", k)
            if m:
                prefix, rest = m.groups()
                rest = re.sub(r"^conv1\.", "attn.value.", rest)
                rest = re.sub(r"^conv2\.", "attn.proj.", rest)
                rest = re.sub(r"^attn\.(weight|bias)$", r"attn.affinity.\1", rest)
                rest = re.sub(r"^pos_embed\.(weight|bias)$", r"pos_embed.proj.\1", rest)
                rest = re.sub(r"^gamma_(\d)$", r"ls\1.gamma", rest)  # layer scale (ours before 0.2 too)
                k2 = f"{prefix}.{rest}"
                if v.ndim > 2 and re.search(r"(attn\.value|attn\.proj|mlp\.fc\d)\.weight$", k2) and all(
                    s == 1 for s in v.shape[2:]
                ):
                    v = v.flatten(1)
                if re.search(r"ls\d\.gamma$", k2) and v.ndim > 1:
                    v = v.flatten()
            out[k2] = v
        return out


    def authors_state_dict(self) -> dict[str, torch.Tensor]:
        """This model's weights in the authors' key layout (Sense-X/UniFormer image and dense-task code):
        the inverse of :meth:`convert_state_dict` for image models without layer scale.

        Local blocks: ``attn.value`` -> ``conv1``, ``attn.affinity`` -> ``attn``, ``attn.proj`` -> ``conv2``
        and the point-wise ``Linear`` weights (also ``mlp.fc1/fc2``) back to ``(O, I, 1, 1)`` convolution
        kernels; ``pos_embed.proj`` -> ``pos_embed`` in every block. Everything else (global blocks, patch
        embeddings, ``norm1..4`` of the dense backbone, ``norm``/``head``) keeps its name. What MMDetection /
        MMSegmentation / MMPose load as ``model.backbone.pretrained_path`` (their ``mmcv_custom.load_checkpoint``,
        non-strict) or, with a ``backbone.`` prefix, as part of a detector's ``state_dict``.
        """
        if self.dims != 2:
            raise ValueError("authors_state_dict: the authors' image / dense-task layout needs an image model (dims=2)")
        if any(k.endswith(".gamma") for k in self.state_dict()):
            raise ValueError("authors_state_dict: layer scale (ls*.gamma) is not part of the authors' dense backbones")
        local = {f"blocks{s + 1}.{i}" for s in range(4) for i, blk in enumerate(getattr(self, f"blocks{s + 1}"))
                 if isinstance(blk, LocalUniFormerBlock)}
        out: dict[str, torch.Tensor] = {}
        for k, v in self.state_dict().items():
            m = re.match(r"^(blocks\d\.\d+)\.(.*)$", k)
            if m:
                prefix, rest = m.groups()
                rest = re.sub(r"^pos_embed\.proj\.", "pos_embed.", rest)
                if prefix in local:
                    if rest.endswith("weight") and re.match(r"^(attn\.value|attn\.proj|mlp\.fc\d)\.", rest):
                        v = v.reshape(*v.shape, 1, 1)
                    rest = re.sub(r"^attn\.value\.", "conv1.", rest)
                    rest = re.sub(r"^attn\.proj\.", "conv2.", rest)
                    rest = re.sub(r"^attn\.affinity\.", "attn.", rest)
                k = f"{prefix}.{rest}"
            out[k] = v
        return out


# --------------------------------------------------------------------------- builders
_PAPER_V = "UniFormer (ICLR 2022, arXiv 2201.04676 / TPAMI 2023, arXiv 2201.09450)"
_PAPER_I = "UniFormer (TPAMI 2023, arXiv 2201.09450)"


def _video_card(name: str, params: float, gflops: float, table: str, frames: int = 16, extra=()) -> ModelCard:
    return ModelCard(
        name=name, family="uniformer", paper=_PAPER_V, table=table, input_size=(3, frames, 224, 224),
        num_classes=400, mean=KINETICS_MEAN, std=KINETICS_STD, paper_params_m=params, paper_gflops=gflops,
        extra_flops=extra, notes="GFLOPs per view; the paper prints GFLOPs x 4 views (1 crop x 4 clips) for Kinetics.",
    )


def _image_card(name: str, params: float, gflops: float, notes: str = "") -> ModelCard:
    return ModelCard(
        name=name, family="uniformer", paper=_PAPER_I, table="TPAMI Table 2 (ImageNet-1K)", input_size=(3, 224, 224),
        num_classes=1000, mean=IMAGENET_MEAN, std=IMAGENET_STD, paper_params_m=params, paper_gflops=gflops, notes=notes,
    )


_S = dict(depth=(3, 4, 8, 3), embed_dim=(64, 128, 320, 512), head_dim=64, drop_path_rate=0.1)
_B = dict(depth=(5, 8, 20, 7), embed_dim=(64, 128, 320, 512), head_dim=64, drop_path_rate=0.3)


@register_model(_video_card("uniformer_small", 21.4, 41.8, "ICLR Table 1 / TPAMI Table 4 (K400, 16x4)"))
def uniformer_small(**kwargs) -> UniFormer:
    """UniFormer-S video backbone (depths 3-4-8-3, dims 64-128-320-512, head_dim 64)."""
    return build_model(UniFormer, dict(dims=3, num_frames=16, **_S), kwargs)


@register_model(_video_card("uniformer_base", 49.8, 96.7, "ICLR Table 1 / TPAMI Table 4 (K400, 16x4)",
                            extra=(((3, 32, 224, 224), 259.0), ((3, 8, 224, 224), 40.3))))
def uniformer_base(**kwargs) -> UniFormer:
    """UniFormer-B video backbone (depths 5-8-20-7)."""
    return build_model(UniFormer, dict(dims=3, num_frames=16, **_B), kwargs)


@register_model(_image_card("uniformer_small_image", 21.5, 3.6))
def uniformer_small_image(**kwargs) -> UniFormer:
    """UniFormer-S image backbone (TPAMI Table 1)."""
    return build_model(UniFormer, dict(dims=2, num_classes=1000, **_S), kwargs)


@register_model(_image_card("uniformer_small_plus_image", 24.0, 4.2,
                            "S+ (S-dagger): overlapping conv stems, depths 3-5-9-3, head_dim 32."))
def uniformer_small_plus_image(**kwargs) -> UniFormer:
    """UniFormer-S+ image backbone: convolutional stems (no LayerNorm), depths 3-5-9-3, head_dim 32."""
    model_args = dict(dims=2, num_classes=1000, depth=(3, 5, 9, 3), embed_dim=(64, 128, 320, 512), head_dim=32,
                      drop_path_rate=0.1, conv_stem=True, conv_downsample=True)
    return build_model(UniFormer, model_args, kwargs)


@register_model(_image_card("uniformer_base_image", 50.0, 8.3))
def uniformer_base_image(**kwargs) -> UniFormer:
    """UniFormer-B image backbone (TPAMI Table 1)."""
    return build_model(UniFormer, dict(dims=2, num_classes=1000, **_B), kwargs)


@register_model(_image_card("uniformer_base_ls_image", 50.0, 8.3,
                            "B with layer scale (1e-6) on the global blocks only (the authors' uniformer_base_ls)."))
def uniformer_base_ls_image(**kwargs) -> UniFormer:
    """UniFormer-B image backbone with layer scale on the global blocks (stages 3-4) only."""
    model_args = dict(dims=2, num_classes=1000, **_B, layer_scale_init_value=1e-6, layer_scale_local=False)
    return build_model(UniFormer, model_args, kwargs)


@register_model(_image_card(
    "uniformer_large_image", 100.0, 19.8,
    "L: dims 128-192-448-640, depths 5-10-24-7, layer scale 1e-6 on every block, token-labelling aux head "
    "(the authors' only L checkpoint). The paper prints 12.6G; the authors later corrected it to ~19.8G "
    "(their counter skipped checkpointed blocks).",
))
def uniformer_large_image(**kwargs) -> UniFormer:
    """UniFormer-L image backbone (TPAMI Table 1; token-labelling variant as released)."""
    model_args = dict(dims=2, num_classes=1000, depth=(5, 10, 24, 7), embed_dim=(128, 192, 448, 640), head_dim=64,
                      drop_path_rate=0.4, layer_scale_init_value=1e-6, token_label_head=True)
    return build_model(UniFormer, model_args, kwargs)
