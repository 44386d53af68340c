"""Model families, one module per paper; importing this package registers every model.

Modules are discovered automatically so that adding a family is adding a file.
"""

import importlib
import pkgutil

_SKIP = {"layers", "contract"}

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _SKIP and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
