"""The catalogue of released checkpoints (:mod:`videoformers.checkpoints.zoo`): where each file lives,
what it holds and how its model was fed, with the source of each fact.

Only files a program can fetch are listed: Hugging Face Hub files (``Sense-X/uniformer_video``,
``Sense-X/uniformer_image``, the first author's ``Andy1621/*`` repos, ``google/vivit-b-16x2-kinetics400``)
and MMAction2's ``download.openmmlab.com`` files. Left out, with the reason:

* Google-Drive-only releases (DualFormer T/S/B, UniFormer-S 16x4 K400, B-LS / L image, XS image and video,
  most XXS variants): no stable direct link;
* UniFormerV2's own Aliyun OSS links (``pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com``): reported dead
  (404) by users (OpenGVLab/UniFormerV2 #77, #82); MMAction2 hosts converted K400/K600/K700/K710 files;
* OpenAI's CLIP ``.pt`` files: TorchScript archives, which ``torch.load(weights_only=True)`` refuses;
  UniFormerV2 arms CLIP from an image checkpoint the user converts (``load_image_pretrained``);
* scenic's Flax ViViT checkpoints: not a layout this library reads (use the HF port).

Hash prefixes are the files' SHA-256 prefixes (Git LFS object ids on the Hub, the suffix of MMAction2's
file names) and are checked after download. The entries were compiled from the cited files (repository,
commit, file and line); none of the files could be downloaded where this library is developed.
"""

from __future__ import annotations

from .zoo import Pretrained, register_pretrained

__all__: list[str] = []


register_pretrained(Pretrained(
    model='uniformer_small',
    tag='k400_16x8',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_small_k400_16x8.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='d5fd7b0c',
    num_classes=400,
    labels='kinetics400_uniformer',
    preprocess={'num_frames': 16, 'sampling': 'dense', 'frame_interval': 8, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 80.8},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L64 (UniFormer-S 16x1x4, stride 8, 80.8); hf_hub_download usage: BioMedIA-MBZUAI/CoReEcho@2b6f1d2 README.md:L47; file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/commit/703ba75 (LFS oid/size)',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: kinetics400 in the UniFormer authors' order (NOT alphabetical): 'riding a bike'=0, 'marching'=1, ... as in Sense-X/UniFormer video_classification/data_list/k400 Notes: Plain state_dict (pickle imports OrderedDict only). Identical file (same sha256) also in HF Andy1621/uniformer (commit 310df16). Google Drive original at README L64.",
    default=True,
))

register_pretrained(Pretrained(
    model='uniformer_small',
    tag='k600_16x8',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_small_k600_16x8.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='2a9143a6',
    num_classes=600,
    labels=None,
    preprocess={'num_frames': 16, 'sampling': 'dense', 'frame_interval': 8, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 82.7},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L76; filename also in mvkhanh/pbl5@1c8b391 model.py:L14 (comment); file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/commit/0a4d284',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: kinetics600 in the authors' order (authors' data_list/k600; not verified) Notes: K600 head; authors' K600 class order (from their data_list/k600 lists) - not verified, treat as authors' order, not MMAction2's.",
))

register_pretrained(Pretrained(
    model='uniformer_base',
    tag='k400_32x4',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_base_k400_32x4.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='b4324505',
    num_classes=400,
    labels='kinetics400_uniformer',
    overrides={'num_frames': 32},
    preprocess={'num_frames': 32, 'sampling': 'dense', 'frame_interval': 4, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 82.9},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L69; file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/commit/5065353',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: kinetics400 in the UniFormer authors' order (NOT alphabetical): 'riding a bike'=0, 'marching'=1, ... as in Sense-X/UniFormer video_classification/data_list/k400 Notes: 32-frame checkpoint; our uniformer_base default is 16 frames. A third-party note (unverified) says no parameter shape depends on T, so it loads at 16 frames, but accuracy at 16 frames is not the repor",
    default=True,
))

register_pretrained(Pretrained(
    model='uniformer_base',
    tag='k600_32x4',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_base_k600_32x4.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='d44685e1',
    num_classes=600,
    labels=None,
    overrides={'num_frames': 32},
    preprocess={'num_frames': 32, 'sampling': 'dense', 'frame_interval': 4, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 84.5},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L79 (84.5*, multi-node trained); hf_hub_download: mvkhanh/pbl5@1c8b391 model.py:L15 and mymodel.py; file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/commit/439ebd0',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: kinetics600 in the authors' order (not verified) Notes: README L81: K600 32x4 trained multi-node, result lower than expected.",
))

register_pretrained(Pretrained(
    model='uniformer_small',
    tag='ssv1_16_from_k600',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_small_sthv1_16_prek600.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='9a4dbb1e',
    num_classes=174,
    labels=None,
    preprocess={'num_frames': 16, 'sampling': 'uniform', 'num_clips': 1, 'num_crops': 3},
    metrics={'top1': 57.6},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L90; file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/blob/aede221/uniformer_small_sthv1_16_prek600.pth (LFS details; size shown only as 85.3 MB)',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: SSv1 order of authors' video_classification/data_list/sthv1/category.txt Notes: size_bytes not shown exactly (85.3 MB). SSv1 uses sparse segment sampling (SlowFast 'sth' dataset), 16x3x1 = 1 clip x 3 crops.",
))

register_pretrained(Pretrained(
    model='uniformer_small',
    tag='ssv2_16_from_k600',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_small_sthv2_16_prek600.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='6b085f96',
    num_classes=174,
    labels='ssv2',
    preprocess={'num_frames': 16, 'sampling': 'uniform', 'num_clips': 1, 'num_crops': 3},
    metrics={'top1': 69.4},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L103; file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/commit/2b91204',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: SSv2 order of authors' video_classification/data_list/sthv2/category.txt Notes: Sparse segment sampling; 16x3x1.",
))

register_pretrained(Pretrained(
    model='uniformer_base',
    tag='ssv1_32_from_k600',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_base_sthv1_32_prek600.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='8da7f948',
    num_classes=174,
    labels=None,
    overrides={'num_frames': 32},
    preprocess={'num_frames': 32, 'sampling': 'uniform', 'num_clips': 1, 'num_crops': 3},
    metrics={'top1': 61.0},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L96; file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/commit/4733286',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: SSv1 order of authors' data_list/sthv1/category.txt Notes: 32 frames; sparse segments.",
))

register_pretrained(Pretrained(
    model='uniformer_base',
    tag='ssv2_32_from_k600',
    hf_repo='Sense-X/uniformer_video',
    filename='uniformer_base_sthv2_32_prek600.pth',
    revision='f9448914e6161573b14ba47b72fcef170e03a1f9',
    sha256_prefix='b7a74408',
    num_classes=174,
    labels='ssv2',
    overrides={'num_frames': 32},
    preprocess={'num_frames': 32, 'sampling': 'uniform', 'num_clips': 1, 'num_crops': 3},
    metrics={'top1': 71.2},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L109; file list/sha256/size: huggingface.co/Sense-X/uniformer_video/tree/f944891 and huggingface.co/Sense-X/uniformer_video/commit/97b6ead',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: SSv2 order of authors' data_list/sthv2/category.txt Notes: 32 frames; sparse segments. Used via hf_hub_download in third-party code (find_string hit, repo not identified).",
))

register_pretrained(Pretrained(
    model='uniformer_base',
    tag='k400_16x4',
    hf_repo='Andy1621/uniformer',
    filename='uniformer_base_k400_16x4.pth',
    revision='310df1626eac756cbe900a63fa4e2eeb393cbd54',
    sha256_prefix='a36e08ec',
    num_classes=400,
    labels='kinetics400_uniformer',
    preprocess={'num_frames': 16, 'sampling': 'dense', 'frame_interval': 4, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 82.0},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L67 (UniFormer-B 16x1x4 stride 4, 82.0); file/sha/size: huggingface.co/Andy1621/uniformer/commit/d89142a (LFS pointer)',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: kinetics400 in the UniFormer authors' order (NOT alphabetical): 'riding a bike'=0, 'marching'=1, ... as in Sense-X/UniFormer video_classification/data_list/k400 Notes: Personal HF repo of the first author (not the Sense-X org). The only public non-Drive copy of the 16-frame K400 base (matches our default). Same file name as authors' slowfast/models/uniformer.py:L24 ",
))

register_pretrained(Pretrained(
    model='uniformer_small_image',
    tag='in1k',
    hf_repo='Sense-X/uniformer_image',
    filename='uniformer_small_in1k.pth',
    revision='main (ae70a7d is the last weight commit)',
    num_classes=1000,
    labels=None,
    metrics={'top1': 82.9},
    source='Sense-X/UniFormer@52a0415 image_classification/README.md:L66; HF file in Sense-X/uniformer_image commit 06b31d8 (huggingface.co/Sense-X/uniformer_image/commits/main); hf_hub_download example in the HF model card',
    verified='Not downloaded here (no network). Host, file name, classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: ImageNet-1k standard synset order (imagenet_class_index) Notes: sha256 of the Sense-X copy not seen. HF Andy1621/uniformer has a file of the same name: sha256 fd192c31..., 86,314,461 bytes (huggingface.co/Andy1621/uniformer/commit/df8260f) - probably identical, un',
    default=True,
))

register_pretrained(Pretrained(
    model='uniformer_small_plus_image',
    tag='in1k',
    hf_repo='Sense-X/uniformer_image',
    filename='uniformer_small_plus_in1k.pth',
    sha256_prefix='53bc5518',
    num_classes=1000,
    labels=None,
    metrics={'top1': 83.4},
    source='Sense-X/UniFormer@52a0415 image_classification/README.md:L67 (S-dagger, head_dim=32); file/sha huggingface.co/Sense-X/uniformer_image/blob/main/uniformer_small_plus_in1k.pth',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: ImageNet-1k standard synset order (imagenet_class_index) Notes: 96.3 MB (exact bytes not shown). This is the head_dim=32 S-dagger; a head_dim=64 retrain is on Drive only (README L78).',
    default=True,
))

register_pretrained(Pretrained(
    model='uniformer_base_image',
    tag='in1k',
    hf_repo='Sense-X/uniformer_image',
    filename='uniformer_base_in1k.pth',
    revision='ae70a7dc23e2d85972370501db47717efcd2c6f1',
    sha256_prefix='82c01015',
    num_classes=1000,
    labels=None,
    metrics={'top1': 83.8},
    source='Sense-X/UniFormer@52a0415 image_classification/README.md:L68; file/sha/size huggingface.co/Sense-X/uniformer_image/commit/ae70a7d',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: ImageNet-1k standard synset order (imagenet_class_index) Notes: Base without Layer Scale (the one used to initialise video models, video README L35).',
    default=True,
))

register_pretrained(Pretrained(
    model='uniformer_xxs_image',
    tag='in1k_160',
    hf_repo='Andy1621/uniformer_light',
    filename='uniformer_xxs_160_in1k.pth',
    revision='fb0bfcd749bdcda39b6ca96b4b4af13e8d9d635d',
    sha256_prefix='f53dffcf',
    num_classes=1000,
    labels=None,
    overrides={'img_size': 160},
    metrics={'top1': 79.1},
    source='Sense-X/UniFormer@52a0415 image_classification/README.md:L49 (XXS 160x160, 79.1); file/sha/size huggingface.co/Andy1621/uniformer_light/commit/fb0bfcd',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: ImageNet-1k standard synset order (imagenet_class_index) Notes: HF model repo Andy1621/uniformer_light (distinct from the Space of the same name linked in README L2/L47) holds only 2 weight files: this one and uniformer_xxs16_160_k400.pth. Local name matches Sense',
    default=True,
))

register_pretrained(Pretrained(
    model='uniformer_xxs',
    tag='k400_16f_160',
    hf_repo='Andy1621/uniformer_light',
    filename='uniformer_xxs16_160_k400.pth',
    revision='fb0bfcd749bdcda39b6ca96b4b4af13e8d9d635d',
    sha256_prefix='af23d349',
    num_classes=400,
    labels='kinetics400_uniformer',
    preprocess={'num_frames': 16, 'sampling': 'uniform', 'num_clips': 1, 'num_crops': 1},
    metrics={'top1': 75.1},
    source='Sense-X/UniFormer@52a0415 video_classification/README.md:L50 (XXS 16x1x1, 160, 75.1; sparse sampling L54); file/sha/size huggingface.co/Andy1621/uniformer_light/commit/fb0bfcd',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformer) is the one our converter and parity tests cover. Label order: kinetics400 in the UniFormer authors' order (NOT alphabetical): 'riding a bike'=0, 'marching'=1, ... as in Sense-X/UniFormer video_classification/data_list/k400 Notes: Light model uses Layer Scale and token pruning (README L54-57, exp_light configs); needs the uniformer_light architecture, not plain UniFormer.",
    default=True,
))

register_pretrained(Pretrained(
    model='uniformer_small',
    tag='mmaction2_k400_16x4',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv1/uniformer-small_imagenet1k-pre_16x4x1_kinetics400-rgb_20221219-c630a037.pth',
    sha256_prefix='c630a037',
    num_classes=400,
    labels='kinetics400',
    preprocess={'num_frames': 16, 'sampling': 'dense', 'frame_interval': 4, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 80.9},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformer/metafile.yml:L28; README.md:L25',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics400 alphabetical as in MMAction2 tools/data/kinetics/label_map_k400.txt (MMAction2 re-mapped the authors' head rows by label name, mmaction2 configs/rec Notes: Converted from the authors' Drive weights (metafile 'Converted From'); head rows re-ordered to MMAction2 label map. Test: short-side 320 resize in MMAction2 ('Resolution: short-side 320'), 4 clips x 1",
))

register_pretrained(Pretrained(
    model='uniformer_base',
    tag='mmaction2_k400_16x4',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv1/uniformer-base_imagenet1k-pre_16x4x1_kinetics400-rgb_20221219-157c2e66.pth',
    sha256_prefix='157c2e66',
    num_classes=400,
    labels='kinetics400',
    preprocess={'num_frames': 16, 'sampling': 'dense', 'frame_interval': 4, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 82.0},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformer/metafile.yml:L49; README.md:L26',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics400 alphabetical as in MMAction2 tools/data/kinetics/label_map_k400.txt (MMAction2 re-mapped the authors' head rows by label name, mmaction2 configs/rec Notes: Converted from the authors' Drive weights (metafile 'Converted From'); head rows re-ordered to MMAction2 label map. Test: short-side 320 resize in MMAction2 ('Resolution: short-side 320'), 4 clips x 1",
))

register_pretrained(Pretrained(
    model='uniformer_base',
    tag='mmaction2_k400_32x4',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv1/uniformer-base_imagenet1k-pre_32x4x1_kinetics400-rgb_20221219-b776322c.pth',
    sha256_prefix='b776322c',
    num_classes=400,
    labels='kinetics400',
    overrides={'num_frames': 32},
    preprocess={'num_frames': 32, 'sampling': 'dense', 'frame_interval': 4, 'num_clips': 4, 'num_crops': 1},
    metrics={'top1': 83.1},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformer/metafile.yml:L70; README.md:L27',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics400 alphabetical as in MMAction2 tools/data/kinetics/label_map_k400.txt (MMAction2 re-mapped the authors' head rows by label name, mmaction2 configs/rec Notes: Converted from the authors' Drive weights (metafile 'Converted From'); head rows re-ordered to MMAction2 label map. Test: short-side 320 resize in MMAction2 ('Resolution: short-side 320'), 4 clips x 1",
))

register_pretrained(Pretrained(
    model='uniformerv2_b16',
    tag='k400_from_k710',
    hf_repo='Andy1621/uniformerv2',
    filename='k400+k710_uniformerv2_b16_8x224.pyth',
    revision='d9872b5afdc8e56fd18afadc66f1f5e07f156ee5',
    sha256_prefix='743da61c',
    num_classes=400,
    labels=None,
    preprocess={'num_frames': 8, 'sampling': 'sparse', 'num_clips': 4, 'num_crops': 3},
    metrics={'top1': 85.6},
    source='OpenGVLab/UniFormerV2@722a434 MODEL_ZOO.md:L25 (B/16 CLIP+K710 -> K400, 8x3x4, 85.6; Aliyun name k400_k710_uniformerv2_b16_8x224.pyth); HF file/sha/size: huggingface.co/Andy1621/uniformerv2/commit/0504a68; hf_hub_download: OpenGVLab/Ask-Anything@4dd8210 video_chat_text/video_chat_with_ChatGPT/load_internvideo.py:L53-L57',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformerv2_pyth) is the one our converter and parity tests cover. Label order: kinetics400 in the authors' (UniFormer) order 'riding a bike'=0, 'marching'=1 ... (inferred: OpenGVLab/Ask-Anything@4dd8210 video_chat_with_ChatGPT/load_internv Notes: Only public non-OSS copy of this checkpoint. HF name uses '+' (k400+k710) vs '_' on Aliyun. Keys are loaded strictly into a wrapper whose attribute is 'backbone' (load_internvideo.py:L15-L21,L55-L57) ",
    default=True,
))

register_pretrained(Pretrained(
    model='uniformerv2_b16',
    tag='mit_from_k710_k400',
    hf_repo='Andy1621/uniformerv2',
    filename='mit_uniformerv2_b16_8x224.pyth',
    revision='d9872b5afdc8e56fd18afadc66f1f5e07f156ee5',
    sha256_prefix='99af00a7',
    num_classes=339,
    labels=None,
    preprocess={'num_frames': 8, 'sampling': 'sparse', 'num_clips': 4, 'num_crops': 3},
    metrics={'top1': 42.6},
    source='OpenGVLab/UniFormerV2@722a434 MODEL_ZOO.md:L78 (Aliyun mitv1/mit_uniformerv2_b16_8x224.pyth, 42.6); HF file/sha/size: huggingface.co/Andy1621/uniformerv2/commit/d9872b5',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (authors_uniformerv2_pyth) is the one our converter and parity tests cover. Label order: MiT v1 authors' order (Drive meta files) Notes: HF repo Andy1621/uniformerv2 holds exactly 2 weight files (this and the K400 one).",
))

register_pretrained(Pretrained(
    model='uniformerv2_b16',
    tag='mmaction2_k400_clip',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb/uniformerv2-base-p16-res224_clip_8xb32-u8_kinetics400-rgb_20230313-e29fc968.pth',
    sha256_prefix='e29fc968',
    num_classes=400,
    labels='kinetics400',
    preprocess={'num_frames': 8, 'sampling': 'sparse', 'num_clips': 4, 'num_crops': 3},
    metrics={'top1': 84.3},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L29; README.md:L25',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics400 alphabetical as in MMAction2 tools/data/kinetics/label_map_k400.txt (MMAction2 re-mapped the authors' head rows by label name, mmaction2 configs/rec Notes: Trained by MMAction2 (not converted).",
))

register_pretrained(Pretrained(
    model='uniformerv2_b16',
    tag='mmaction2_k400_from_k710',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb/uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics400-rgb_20230313-75be0806.pth',
    sha256_prefix='75be0806',
    num_classes=400,
    labels='kinetics400',
    preprocess={'num_frames': 8, 'sampling': 'sparse', 'num_clips': 4, 'num_crops': 3},
    metrics={'top1': 85.8},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L51; README.md:L26',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics400 alphabetical as in MMAction2 tools/data/kinetics/label_map_k400.txt (MMAction2 re-mapped the authors' head rows by label name, mmaction2 configs/rec Notes: Trained by MMAction2; mm-Kinetics top1 85.8 (README col), reference 85.6.",
))

register_pretrained(Pretrained(
    model='uniformerv2_l14',
    tag='mmaction2_k400_from_k710_u8',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/kinetics400/uniformerv2-large-p14-res224_clip-kinetics710-pre_u8_kinetics400-rgb_20221219-972ea063.pth',
    sha256_prefix='972ea063',
    num_classes=400,
    labels='kinetics400',
    preprocess={'num_frames': 8, 'sampling': 'sparse', 'num_clips': 4, 'num_crops': 3},
    metrics={'top1': 88.7},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L72; README.md:L27',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics400 alphabetical as in MMAction2 tools/data/kinetics/label_map_k400.txt (MMAction2 re-mapped the authors' head rows by label name, mmaction2 configs/rec Notes: Converted from authors. u16 (6dc86d05, L93) and u32 (56a46f64, L114) also exist.",
    default=True,
))

register_pretrained(Pretrained(
    model='uniformerv2_l14_336',
    tag='mmaction2_k400_from_k710_u32',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/kinetics400/uniformerv2-large-p14-res336_clip-kinetics710-pre_u32_kinetics400-rgb_20221219-1dd7650f.pth',
    sha256_prefix='1dd7650f',
    num_classes=400,
    labels='kinetics400',
    overrides={'num_frames': 32},
    preprocess={'num_frames': 32, 'sampling': 'sparse', 'num_clips': 2, 'num_crops': 3},
    metrics={'top1': 89.5},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L135; README.md:L30',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics400 alphabetical as in MMAction2 tools/data/kinetics/label_map_k400.txt (MMAction2 re-mapped the authors' head rows by label name, mmaction2 configs/rec Notes: metafile L122 says 'Resolution: 224x224' for this @336 model (metafile error; file name says res336).",
    default=True,
))

register_pretrained(Pretrained(
    model='uniformerv2_b16',
    tag='mmaction2_k600_from_k710',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics600-rgb/uniformerv2-base-p16-res224_clip-kinetics710-pre_8xb32-u8_kinetics600-rgb_20230313-544f06f0.pth',
    sha256_prefix='544f06f0',
    num_classes=600,
    labels='kinetics600',
    preprocess={'num_frames': 8, 'sampling': 'sparse', 'num_clips': 4, 'num_crops': 3},
    metrics={'top1': 86.4},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L157; README.md:L36',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics600 as in MMAction2 tools/data/kinetics/label_map_k600.txt',
))

register_pretrained(Pretrained(
    model='uniformerv2_l14_336',
    tag='mmaction2_k700_from_k710_u32',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/kinetics700/uniformerv2-large-p14-res336_clip-kinetics710-pre_u32_kinetics700-rgb_20221219-95cf9046.pth',
    sha256_prefix='95cf9046',
    num_classes=700,
    labels='kinetics700',
    overrides={'num_frames': 32},
    preprocess={'num_frames': 32, 'sampling': 'sparse', 'num_clips': 2, 'num_crops': 3},
    metrics={'top1': 82.1},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L361; README.md:L51',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: kinetics700 as in MMAction2 tools/data/kinetics/label_map_k700.txt Notes: HASH CONFLICT: README.md:L51 gives suffix 95cf9046 (used here); metafile.yml:L361 gives ...-bfb9f401.pth, identical to the L14@224 u8 K700 file (L301) - metafile copy-paste error; metafile L356 also m',
))

register_pretrained(Pretrained(
    model='uniformerv2_b16',
    tag='mmaction2_k710',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/uniformerv2-base-p16-res224_clip-pre_u8_kinetics710-rgb_20230612-63cdbad9.pth',
    sha256_prefix='63cdbad9',
    num_classes=710,
    labels=None,
    preprocess={'num_frames': 8, 'sampling': 'sparse'},
    metrics={'top1': 78.9},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L376; README.md:L65',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: Kinetics-710 as in MMAction2 tools/data/kinetics710/label_map_k710.txt Notes: URL path differs between metafile.yml:L376 (no sub-folder) and README.md:L65 (sub-folder uniformerv2-base-p16-res224_clip-pre_u8_kinetics710-rgb/); README top1 78.9. Metafile URL used here. K710 head ',
))

register_pretrained(Pretrained(
    model='uniformerv2_l14',
    tag='mmaction2_k710',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/kinetics710/uniformerv2-large-p14-res224_clip-pre_u8_kinetics710-rgb_20230612-d002a407.pth',
    sha256_prefix='d002a407',
    num_classes=710,
    labels=None,
    preprocess={'num_frames': 8, 'sampling': 'sparse'},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L390; README.md:L66',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: Kinetics-710 as in MMAction2 tools/data/kinetics710/label_map_k710.txt Notes: K710 head re-mapped to MMAction2 label_map_k710.txt (README L76). Best public source for the K710 (post-pretrain) weights if Aliyun is dead.',
))

register_pretrained(Pretrained(
    model='uniformerv2_l14_336',
    tag='mmaction2_k710',
    url='https://download.openmmlab.com/mmaction/v1.0/recognition/uniformerv2/kinetics710/uniformerv2-large-p14-res336_clip-pre_u8_kinetics710-rgb_20230612-d723ddc1.pth',
    sha256_prefix='d723ddc1',
    num_classes=710,
    labels=None,
    preprocess={'num_frames': 8, 'sampling': 'sparse'},
    source='open-mmlab/mmaction2@4d6c934 configs/recognition/uniformerv2/metafile.yml:L404; README.md:L67',
    verified='Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (mmaction2) is the one our converter and parity tests cover. Label order: Kinetics-710 as in MMAction2 tools/data/kinetics710/label_map_k710.txt Notes: K710 head re-mapped to MMAction2 label_map_k710.txt (README L76). Best public source for the K710 (post-pretrain) weights if Aliyun is dead.',
))

register_pretrained(Pretrained(
    model='vivit_base_spatiotemporal',
    tag='k400',
    hf_repo='google/vivit-b-16x2-kinetics400',
    filename='pytorch_model.bin',
    sha256_prefix='160c7952',
    num_classes=400,
    labels=None,
    preprocess={'num_frames': 32, 'sampling': 'dense', 'frame_interval': 2, 'num_clips': 4, 'num_crops': 3},
    metrics={'top1': 79.9},
    source='google-research/scenic@4a38d47 scenic/projects/vivit/README.md:L49 (ViViT-B/16x2 K400 79.9, 4x3); HF file/sha: huggingface.co/google/vivit-b-16x2-kinetics400/blob/990d41c/pytorch_model.bin (LFS SHA256), tree main @8a7171a; conversion: huggingface/transformers src/transformers/models/vivit/convert_vivit_flax_to_pytorch.py:L35,L45-L51 (line numbers counted from the stored copy at 00ca929)',
    verified="Not downloaded here (no network). Host, file name, hash prefix (LFS oid / file-name suffix), classes, frames and views read from the cited sources; the key layout (hf_vivit) is the one our converter and parity tests cover. Label order: config.json id2label = huggingface/label-files kinetics400-id2label.json (transformers convert_vivit_flax_to_pytorch.py:L45-L51); expected alphabetical 'abseili Notes: 356 MB; refs/pr/3 (990d41c) adds model.safetensors (356 MB) not merged into main as of the pages seen. Preprocessing: shortest_edge 256, center crop 224, rescale 1/255 + zero-centering, no mean/std no",
    default=True,
))
