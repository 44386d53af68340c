"""The catalogue of released checkpoints (:mod:`videoformers.checkpoints.zoo`): where each file lives,
what it holds and how its model was fed, with the source of each fact.

The entries are data, ``catalogue.json`` next to this module (one object per release, the fields of
:class:`~videoformers.checkpoints.zoo.Pretrained`). Listed: Hugging Face Hub files (``Sense-X/uniformer_video``,
``Sense-X/uniformer_image``, the first author's ``Andy1621/*`` repos, ``google/vivit-b-16x2-kinetics400``),
MMAction2's ``download.openmmlab.com`` files (UniFormer V1/V2 models and the CLIP visual encoders UniFormerV2
starts from, ``init="image"``), and DualFormer's Google Drive files (``drive.usercontent.google.com`` direct
links; Drive may answer with a quota page instead, which the downloader refuses). Left out, with the reason:

* Google-Drive-only UniFormer releases (S 16x4 K400, B-LS / L image, XS image and video, most XXS
  variants): the Drive folder links of the authors' README give no file ids;
* UniFormerV2's own Aliyun OSS links (``pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com``): reported dead
  (404) by users (OpenGVLab/UniFormerV2 #77, #82); MMAction2 hosts converted K400/K600/K700/K710 files;
* OpenAI's CLIP ``.pt`` files: TorchScript archives, which ``torch.load(weights_only=True)`` refuses;
  MMAction2's re-hosted state dicts of the same encoders are listed instead;
* scenic's Flax ViViT checkpoints: not a layout this library reads (use the HF port).

Hash prefixes are the files' SHA-256 prefixes (Git LFS object ids on the Hub, the suffix of MMAction2's
file names) and are checked after download. The entries were compiled from the cited files (repository,
commit, file and line); none of the files could be downloaded where this library is developed.
"""

from __future__ import annotations

import json
from importlib import resources

from .zoo import Pretrained, register_pretrained

__all__: list[str] = []

for _entry in json.loads(resources.files(__package__).joinpath("catalogue.json").read_text()):
    register_pretrained(Pretrained(**_entry))
