"""The catalogue of released checkpoints (:mod:`videoformers.checkpoints.zoo`): where each file lives,
what it holds and how its model was fed, with the source of each fact.

Entries are added per family below; ``videoformers.list_pretrained()`` lists them.
"""

from __future__ import annotations

from .zoo import Pretrained, register_pretrained

__all__: list[str] = []
