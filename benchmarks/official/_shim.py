"""Torch-only stand-ins for the packages the authors' model files import (shared by the loaders).

The loaders in this folder (``uniformer_v1``, ``uniformerv2``, ``dualformer``) execute the authors'
model files at runtime. Those files import ``timm``, PySlowFast, MMCV/MMEngine/MMAction2/MMDet
helpers; where a package cannot be imported (timm, for one, is installed here but breaks without
torchvision) a stand-in module is put into ``sys.modules`` first. Several loaders can run in one
process (``benchmarks/compare_official.py``, ``benchmarks/activation_memory.py``), in any order, so
they share one rule, implemented here:

1. **Real first.** :func:`provide` uses the real package when every module it checks imports for
   real (:func:`importable`); a stand-in already in ``sys.modules`` does not count as real. A failed
   real import leaves half-initialised modules in ``sys.modules``; those are removed (stand-ins are
   kept) so that stand-ins can take their place.
2. **Stand-ins only add.** :func:`stand_in` creates a missing module (and its missing parents) as an
   empty package marked with :data:`MARKER`, and gives it the attributes it *lacks*: what a real
   module or another loader's stand-in already holds is left as it is. So a second loader only
   completes what the first one installed, and the result does not depend on the order.
   ``replace=True`` (the loaders' ``install_shim(force=True)``) overwrites instead, real modules
   included: the stand-ins are then used even where the real package exists.
3. **One implementation per name.** Every loader that stands in for the same name uses the same
   object from this module (:data:`TIMM_LAYERS`, :data:`SLOWFAST_LOGGING`), so whichever loader
   came first, the authors' models are built from the same parts.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import types
from typing import Any, Callable, Iterable, Mapping

import torch.nn as nn

from videoformers.models.layers import DropPath

__all__ = [
    "MARKER",
    "is_stand_in",
    "importable",
    "stand_in",
    "provide",
    "Registry",
    "TimmDropPath",
    "to_2tuple",
    "TIMM_LAYERS",
    "SLOWFAST_LOGGING",
]

#: Attribute set (to ``True``) on every module this file creates.
MARKER = "__vf_stand_in__"


def is_stand_in(mod: Any) -> bool:
    """Whether ``mod`` is a module created by :func:`stand_in`."""
    return bool(getattr(mod, MARKER, False))


def importable(name: str) -> bool:
    """Whether ``name`` imports as a real module (a stand-in already in ``sys.modules`` is not real).

    A failed import (``ImportError``, or any error of a broken install, e.g. timm without
    torchvision) may leave partly initialised real modules ``name`` / ``name.*`` in ``sys.modules``;
    they are removed so that stand-ins can replace them. Stand-ins are never removed.
    """
    if is_stand_in(sys.modules.get(name)):
        return False
    try:
        importlib.import_module(name)
    except Exception:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            if not is_stand_in(sys.modules[key]):
                del sys.modules[key]
        return False
    return True


def stand_in(name: str, *, replace: bool = False, **attrs: Any) -> types.ModuleType:
    """``sys.modules[name]`` with ``attrs`` added where it lacks them (all of them if ``replace``).

    A missing module is created as an empty package (``__path__ = []``, so submodules resolve)
    marked with :data:`MARKER`, after its missing parents, and set as an attribute of its parent.
    """
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        mod.__path__ = []
        setattr(mod, MARKER, True)
        sys.modules[name] = mod
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(stand_in(parent), child, mod)
    for key, value in attrs.items():
        if replace or not hasattr(mod, key):
            setattr(mod, key, value)
    return mod


def provide(check: str | Iterable[str], modules: Mapping[str, Mapping[str, Any]], force: bool = False) -> str:
    """Use the real package if every module in ``check`` is :func:`importable` (and not ``force``):
    returns ``"real"``. Otherwise installs ``{module: attributes}`` with :func:`stand_in`
    (``replace=force``) and returns ``"shim"``."""
    names = [check] if isinstance(check, str) else list(check)
    if not force and all(importable(n) for n in names):
        return "real"
    for name, attrs in modules.items():
        stand_in(name, replace=force, **attrs)
    return "shim"


class Registry:
    """Stands in for PySlowFast's ``MODEL_REGISTRY`` and MMCV/MMDet/MMAction2 registries.

    ``register`` / ``register_module`` work as ``@reg.register()``, ``@reg.register_module(name=...)``
    or ``reg.register_module(cls)``; the object is recorded in ``entries`` under its name and returned
    unchanged (the loaders call the authors' classes directly, never through a registry).
    """

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}

    def register(self, *args: Any, **kwargs: Any) -> Any:
        obj = kwargs.get("module")
        if obj is None and args and (inspect.isclass(args[0]) or inspect.isfunction(args[0])):
            obj = args[0]

        def deco(o: Any) -> Any:
            self.entries[o.__name__] = o
            return o

        return deco if obj is None else deco(obj)

    register_module = register


class TimmDropPath(DropPath):
    """timm's ``DropPath(drop_prob)``: ``videoformers.models.layers.DropPath`` (the same computation:
    per-sample Bernoulli mask over dim 0, kept samples scaled by 1/keep, identity in eval) under
    timm's attribute name ``drop_prob``, which the authors' code writes to (DualFormer's
    ``reset_drop_path``)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__(drop_prob)

    @property
    def drop_prob(self) -> float:
        return self.p

    @drop_prob.setter
    def drop_prob(self, value: float) -> None:
        self.p = float(value)


def to_2tuple(x: Any) -> tuple:
    """timm's ``to_2tuple``: a list/tuple as a tuple, anything else repeated twice."""
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x, x)


#: ``timm.models.layers``: everything the authors' files take from it.
TIMM_LAYERS: dict[str, Any] = {"DropPath": TimmDropPath, "to_2tuple": to_2tuple, "trunc_normal_": nn.init.trunc_normal_}
#: ``slowfast.utils.logging``.
SLOWFAST_LOGGING: dict[str, Callable] = {"get_logger": logging.getLogger}
