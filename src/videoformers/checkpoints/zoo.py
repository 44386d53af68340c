"""Released weights by name: ``create_model("uniformer_small.k400_16x4", pretrained=True)``.

A :class:`Pretrained` entry says where one released file lives (a Hugging Face Hub repo and file, or a
URL), what it holds (its key layout, classes and label order) and how the model it holds was fed (frames,
sampling, resize, crop, test views), with the source of every fact (repository, file and line). Loading
one is one call: the file is fetched (Hub files through ``huggingface_hub``, which honours ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_HUB_OFFLINE``; URLs into ``$VIDEOFORMERS_CACHE``, default
``~/.cache/videoformers/checkpoints``, checked against their SHA-256 when the entry knows it), converted
by the model's ``convert_state_dict`` and loaded strictly, and the model carries ``pretrained_cfg``, its
``labels`` and the ``preprocess_config`` that ``videoformers predict`` and ``extract`` read.

Nothing can be downloaded where this library is tested: each entry's ``verified`` field says what was
checked (the key layout against the authors' code, the file's size) and what was not.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import os
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .loading import atomic_write

__all__ = ["Pretrained", "register_pretrained", "list_pretrained", "get_pretrained", "get_pretrained_cfg",
           "split_name", "download", "download_url", "fetch_source", "cache_dir"]


@dataclass(frozen=True)
class Pretrained:
    """One released checkpoint of a registered model."""

    model: str
    tag: str
    hf_repo: str | None = None
    filename: str | None = None
    revision: str | None = None
    url: str | None = None
    sha256: str | None = None          # the file's full SHA-256 when known (checked after download)
    sha256_prefix: str | None = None   # a hash prefix a file name carries (MMAction2's ``-c630a037``)
    num_classes: int | None = None
    labels: str | None = None          # a label-map name of ``videoformers.labels``
    overrides: dict = field(default_factory=dict)     # builder overrides the file needs
    preprocess: dict = field(default_factory=dict)    # ``videoformers.tools.predict.Preprocess`` fields
    metrics: dict = field(default_factory=dict)       # what the source reports (e.g. top1)
    source: str = ""                   # repository, file and line of the facts above
    verified: str = ""                 # what was and was not checked
    default: bool = False              # the tag ``pretrained=True`` takes for this model

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    def __post_init__(self) -> None:
        if (self.hf_repo is None) == (self.url is None):
            raise ValueError(f"{self.name}: give either hf_repo + filename or url")
        if self.hf_repo is not None and not self.filename:
            raise ValueError(f"{self.name}: a Hub entry needs its filename")


_ZOO: dict[str, Pretrained] = {}


def register_pretrained(entry: Pretrained) -> Pretrained:
    if entry.name in _ZOO:
        raise ValueError(f"pretrained weights {entry.name!r} are registered twice")
    _ZOO[entry.name] = entry
    return entry


def _ensure_catalogue() -> None:
    from . import catalogue  # noqa: F401  (registers the entries)


def list_pretrained(pattern: str | None = None) -> list[str]:
    """``model.tag`` names of the released weights, sorted; ``pattern`` is a shell-style wildcard."""
    _ensure_catalogue()
    names = sorted(_ZOO)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def split_name(name: str) -> tuple[str, str | None]:
    """``"uniformer_small.k400_16x4"`` -> ``("uniformer_small", "k400_16x4")``; no tag -> ``(name, None)``."""
    model, _, tag = name.partition(".")
    return model, (tag or None)


def get_pretrained(model: str, tag: str | None = None) -> Pretrained:
    """The entry for ``model`` and ``tag`` (``None``: the model's default tag). Unknown names raise
    ``ValueError`` listing what exists."""
    _ensure_catalogue()
    if tag is None:
        mine = [p for p in _ZOO.values() if p.model == model]
        if not mine:
            raise ValueError(f"no released weights are catalogued for {model!r}; see videoformers.list_pretrained()")
        defaults = [p for p in mine if p.default] or sorted(mine, key=lambda p: p.tag)
        return defaults[0]
    key = f"{model}.{tag}"
    if key not in _ZOO:
        known = [n for n in sorted(_ZOO) if n.startswith(model + ".")]
        hint = f" Tags for {model}: {', '.join(n.split('.', 1)[1] for n in known)}." if known else ""
        raise ValueError(f"unknown pretrained weights {key!r}.{hint} See videoformers.list_pretrained().")
    return _ZOO[key]


def get_pretrained_cfg(name: str) -> Pretrained:
    """The entry ``"model.tag"`` names (``"model"``: its default release)."""
    return get_pretrained(*split_name(name))


def cache_dir() -> Path:
    return Path(os.environ.get("VIDEOFORMERS_CACHE", Path.home() / ".cache" / "videoformers" / "checkpoints"))


def _offline() -> bool:
    return any(os.environ.get(v, "0").strip().lower() not in ("0", "", "false", "no")
               for v in ("VIDEOFORMERS_OFFLINE", "HF_HUB_OFFLINE"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def _expected_hash(filename: str, sha256: str | None) -> str | None:
    """The full hash given, else the hex prefix a ``name-<hex>.ext`` file name carries (torch.hub's rule)."""
    if sha256:
        return sha256.lower()
    m = _NAME_HASH.search(filename)
    return m.group(1) if m else None


def _check_hash(path: Path, want: str | None, what: str) -> None:
    if not want:
        return
    digest = _sha256(path)
    if not digest.startswith(want.lower()):
        path.unlink(missing_ok=True)
        raise OSError(f"{what}: the downloaded file has SHA-256 {digest}, expected {want}...: a corrupt or "
                      "different file (deleted; the next call downloads it again)")


def download_url(url: str, dest: Path, sha256: str | None = None, progress: bool = True, what: str = "") -> Path:
    """``url`` into ``dest``: streamed into a temporary file next to it and renamed only when complete and
    its SHA-256 (``sha256`` or the file name's hex suffix) checks out. A cached ``dest`` is returned without
    network access; offline (``VIDEOFORMERS_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``) a missing file is an error."""
    what = what or url
    if dest.is_file():
        return dest
    if _offline():
        raise OSError(f"{what}: {dest} is not cached and downloads are off (offline mode); fetch it on a machine "
                      f"with network (`videoformers download`) and copy it there")
    want = _expected_hash(Path(url.split("?")[0]).name, sha256)

    def fetch(tmp: str) -> None:  # streamed into the temporary file; checked before it becomes ``dest``
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=Path(dest).name, leave=False)
            got = 0
            try:
                while True:
                    block = r.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    if bar is not None:
                        bar.update(len(block))
            except http.client.IncompleteRead as e:
                raise OSError(f"{what}: the transfer stopped after {got + len(e.partial)} bytes "
                              f"of {total or 'unknown'}") from None
            finally:
                if bar is not None:
                    bar.close()
            if total and got != total:
                raise OSError(f"{what}: the transfer stopped after {got} of {total} bytes; try again")
        _check_hash(Path(tmp), want, what)

    atomic_write(dest, fetch)
    return dest


def hub_download(repo: str, filename: str, revision: str | None = None) -> Path:
    """One file of a Hugging Face Hub repo through ``huggingface_hub`` (cached; ``HF_HUB_OFFLINE`` honoured)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover - an optional dependency
        raise ImportError("Hub weights need huggingface_hub: pip install 'videoformers[hub]'") from e
    # The environment is read now, not when huggingface_hub was imported (its constants are fixed then).
    hub_cache = os.environ.get("HF_HUB_CACHE") or (os.path.join(os.environ["HF_HOME"], "hub")
                                                   if os.environ.get("HF_HOME") else None)
    return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=hub_cache,
                                endpoint=os.environ.get("HF_ENDPOINT") or None))


def download(entry: Pretrained, progress: bool = True) -> Path:
    """The local path of ``entry``'s file, fetched first if needed. ``VIDEOFORMERS_MIRROR=<base url>``
    fetches every catalogue file as ``<base>/<file name>`` instead (air-gapped clusters)."""
    mirror = os.environ.get("VIDEOFORMERS_MIRROR")
    if entry.hf_repo is not None and not mirror:
        path = hub_download(entry.hf_repo, entry.filename, entry.revision)
        _check_hash(path, entry.sha256 or entry.sha256_prefix, entry.name)
        return path
    name = entry.filename if entry.hf_repo is not None else Path(entry.url.split("?")[0]).name
    url = f"{mirror.rstrip('/')}/{name}" if mirror else entry.url
    return download_url(url, cache_dir() / entry.model / name, entry.sha256 or entry.sha256_prefix, progress,
                        entry.name)


def fetch_source(model: str, pretrained):
    """What ``create_model(model, pretrained=...)`` loads when ``pretrained`` is not a release (the registry
    resolves ``True`` and tags): an ``http(s)://`` URL or ``"hf-hub:<repo_id>/<filename>"`` is fetched and
    cached; anything else (a path, a state dict) is returned as it is."""
    if isinstance(pretrained, str):
        if pretrained.startswith(("http://", "https://")):
            name = Path(pretrained.split("?")[0]).name
            return download_url(pretrained, cache_dir() / "urls" / name)
        if pretrained.startswith("hf-hub:"):
            repo_file = pretrained[len("hf-hub:"):]
            repo, _, filename = repo_file.rpartition("/")
            if repo.count("/") != 1 or not filename:
                raise ValueError(f"expected 'hf-hub:<org>/<repo>/<filename>', got {pretrained!r}")
            return download(Pretrained(model=model, tag="hf_hub", hf_repo=repo, filename=filename))
    return pretrained
