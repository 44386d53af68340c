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

__all__ = ["Pretrained", "PretrainedCfg", "register_pretrained", "list_pretrained", "get_pretrained", "get_pretrained_cfg",
           "split_name", "download", "download_url", "load_released", "reorder_classes", "fetch_source", "cache_dir"]


@dataclass(frozen=True)
class Pretrained:
    """One released checkpoint of a registered model (timm's ``pretrained_cfg``; also ``PretrainedCfg``).

    Where it lives: ``hf_repo`` + ``filename`` (+ ``revision``) on the Hugging Face Hub, or ``url``, and
    ``mirrors`` (other URLs of the same file); :attr:`urls` lists them primary first. What it is:
    ``sha256`` (full) or ``sha256_prefix`` (the 8+ hex digits MMAction2's and torch.hub's file names
    carry), ``file_size`` in bytes, ``layout`` (``"authors"``, ``"mmaction2"``, ``"hf"`` or ``"ours"``),
    ``num_classes`` and ``labels`` (the shipped label map in *this file's* head order, :attr:`label_map`).
    ``init="image"`` marks an image encoder (CLIP) a video model starts from: it is loaded by the model's
    ``load_image_pretrained`` and the video modules keep their initialisation. ``preprocess`` holds the
    test pipeline (:class:`videoformers.tools.predict.Preprocess` fields), read through the properties
    :attr:`num_frames`, :attr:`sampling`, :attr:`frame_interval`, :attr:`img_size`,
    :attr:`test_short_side`, :attr:`test_views`, :attr:`mean` and :attr:`std` (the model card fills
    what the entry does not say).
    """

    model: str
    tag: str
    hf_repo: str | None = None
    filename: str | None = None
    revision: str | None = None
    url: str | None = None
    mirrors: tuple[str, ...] = ()
    sha256: str | None = None          # the file's full SHA-256 when known (checked after download)
    sha256_prefix: str | None = None   # a hash prefix a file name carries (MMAction2's ``-c630a037``)
    file_size: int | None = None       # bytes, where the host lists it (Git LFS pointers)
    layout: str = "authors"            # authors | mmaction2 | hf | ours
    num_classes: int | None = None
    labels: str | None = None          # a label-map name of ``videoformers.labels``
    init: str | None = None            # "image": an image encoder a video model starts from
    overrides: dict = field(default_factory=dict)     # builder overrides the file needs
    preprocess: dict = field(default_factory=dict)    # ``videoformers.tools.predict.Preprocess`` fields
    metrics: dict = field(default_factory=dict)       # what the source reports (top1, top5, source)
    license: str = ""
    paper: str = ""
    source: str = ""                   # repository, file and line of the facts above
    verified: str = ""                 # what was and was not checked
    default: bool = False              # the tag ``pretrained=True`` takes for this model

    LAYOUTS = ("authors", "mmaction2", "hf", "ours")

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    def __post_init__(self) -> None:
        if (self.hf_repo is None) == (self.url is None):
            raise ValueError(f"{self.name}: give either hf_repo + filename or url")
        if self.hf_repo is not None and not self.filename:
            raise ValueError(f"{self.name}: a Hub entry needs its filename")
        if self.layout not in self.LAYOUTS:
            raise ValueError(f"{self.name}: layout must be one of {self.LAYOUTS}, got {self.layout!r}")
        if self.init not in (None, "image"):
            raise ValueError(f"{self.name}: init must be None or 'image', got {self.init!r}")
        object.__setattr__(self, "mirrors", tuple(self.mirrors))

    # ------------------------------------------------------------------ where
    @property
    def hf_hub_id(self) -> str | None:
        return self.hf_repo

    @property
    def hf_filename(self) -> str | None:
        return self.filename if self.hf_repo is not None else None

    @property
    def file_name(self) -> str:
        """The file's name (what ``VIDEOFORMERS_MIRROR`` serves and the cache stores)."""
        # A Hub file and a URL without a file name in it (Google Drive's ``download?id=``) name it themselves.
        return self.filename or Path(self.url.split("?")[0]).name

    @property
    def urls(self) -> tuple[str, ...]:
        """Every URL of the file, primary first (a Hub file's ``resolve`` URL on huggingface.co)."""
        if self.hf_repo is not None:
            primary = f"https://huggingface.co/{self.hf_repo}/resolve/{self.revision or 'main'}/{self.filename}"
        else:
            primary = self.url
        return (primary, *self.mirrors)

    # ------------------------------------------------------------------ what
    @property
    def label_map(self) -> str | None:
        return self.labels

    def _card(self):
        from videoformers.registry import get_model_card

        return get_model_card(self.model).with_overrides(**self.overrides)

    @property
    def test_pipeline(self):
        """The full test pipeline (:class:`videoformers.tools.predict.Preprocess`) of a video entry: the
        family's defaults for what the entry does not record; ``None`` for image models."""
        from videoformers.tools.predict import preprocess_for

        card = self._card()
        if not card.is_video:
            return None
        size = {"img_size": self.overrides["img_size"]} if "img_size" in self.overrides else {}
        return preprocess_for(self.model, **{"num_frames": card.input_size[1], **size, **self.preprocess})

    def _pre(self, key: str, default=None):
        pipe = self.test_pipeline
        return getattr(pipe, key) if pipe is not None else self.preprocess.get(key, default)

    @property
    def num_frames(self) -> int | None:
        return self._pre("num_frames")

    @property
    def img_size(self) -> int:
        return int(self._pre("img_size", self._card().input_size[-1]))

    @property
    def sampling(self) -> str | None:
        return self._pre("sampling")

    @property
    def frame_interval(self) -> int | None:
        return self._pre("frame_interval")

    @property
    def test_short_side(self) -> int:
        """The short side a test frame is resized to before the crop(s)."""
        return int(self._pre("short_side", round(self.img_size * 256 / 224)))  # image models: 224 -> 256

    @property
    def test_views(self) -> tuple[int, int]:
        """``(clips, crops)`` at test time."""
        return int(self._pre("num_clips", 1)), int(self._pre("num_crops", 1))

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self._pre("mean", self._card().mean))

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self._pre("std", self._card().std))


PretrainedCfg = Pretrained


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


def _lock(path: Path):
    """An exclusive lock on ``<path>.lock`` (POSIX ``flock``): ranks of one job fetching the same file
    wait for the first instead of appending to one partial file together."""
    import contextlib

    @contextlib.contextmanager
    def held():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "w") as f:
            try:
                import fcntl

                fcntl.flock(f, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: no lock, downloads are still atomic
                pass
            yield

    return held()


def download_url(url: str, dest: Path, sha256: str | None = None, progress: bool = True, what: str = "",
                 size: int | None = None) -> Path:
    """``url`` into ``dest``, resumable: bytes stream into ``<dest>.partial``; an interrupted transfer is
    continued with an HTTP ``Range`` request on the next call (a server that ignores it sends the whole
    file again, which replaces the partial one). ``dest`` appears only when the file is complete and its
    size (``size``) and SHA-256 (``sha256``, else the hex suffix of ``dest``'s name) check out. An HTML
    answer (a login, quota or virus-scan page, as Google Drive gives) is refused, not saved. A cached
    ``dest`` is returned without network access; offline (``VIDEOFORMERS_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``)
    a missing file is an error."""
    import urllib.error

    what = what or url
    dest = Path(dest)
    if dest.is_file():
        return dest
    if _offline():
        raise OSError(f"{what}: {dest} is not cached and downloads are off (offline mode); fetch it on a machine "
                      f"with network (`videoformers download`) and copy it there")
    want = _expected_hash(dest.name, sha256)
    part = dest.with_name(dest.name + ".partial")
    with _lock(dest):
        if dest.is_file():  # another process finished it while this one waited
            return dest
        have = part.stat().st_size if part.is_file() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            r = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing after what we hold: the partial file is complete
                r = None
            else:
                raise OSError(f"{what}: HTTP {e.code} {e.reason} from {url}") from None
        except urllib.error.URLError as e:
            raise OSError(f"{what}: cannot reach {url}: {e.reason}") from None
        if r is not None:
            with r:
                kind = (r.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if kind in ("text/html", "application/xhtml+xml"):
                    raise OSError(f"{what}: {url} answered with a web page ({kind}), not the checkpoint: the host "
                                  "wants a login or a confirmation, or a download quota is exceeded (Google Drive). "
                                  "Download it in a browser and pass the file's path, or set VIDEOFORMERS_MIRROR")
                resumed = r.status == 206
                if not resumed:
                    have = 0
                length = int(r.headers.get("Content-Length") or 0)
                total = have + length if length else (size or 0)
                _stream(r, part, "ab" if resumed else "wb", have, total, progress, dest.name, what)
        got = part.stat().st_size
        if size and got != size:
            part.unlink()
            raise OSError(f"{what}: the file has {got} bytes, the catalogue says {size}: a different file (deleted; "
                          "the next call downloads it again)")
        _check_hash(part, want, what)
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
    return dest


def _stream(r, part: Path, mode: str, have: int, total: int, progress: bool, label: str, what: str) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total or None, initial=have, unit="B", unit_scale=True, desc=label, leave=False)
    got = have
    try:
        with open(part, mode) as f:
            while True:
                try:
                    block = r.read(1 << 20)
                except (http.client.IncompleteRead, OSError) as e:
                    f.write(getattr(e, "partial", b""))
                    raise OSError(f"{what}: the transfer stopped after {f.tell()} bytes of {total or 'unknown'}; "
                                  "the next call resumes it") from None
                if not block:
                    break
                f.write(block)
                got += len(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    if total and got != total:
        raise OSError(f"{what}: the transfer stopped after {got} of {total} bytes; the next call resumes it")


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
    """The local path of ``entry``'s file, fetched first if needed: the Hub file through ``huggingface_hub``,
    else each of :attr:`Pretrained.urls` in turn until one answers. ``VIDEOFORMERS_MIRROR=<base url>``
    fetches every catalogue file as ``<base>/<file name>`` instead (air-gapped clusters)."""
    mirror = os.environ.get("VIDEOFORMERS_MIRROR")
    want = entry.sha256 or entry.sha256_prefix
    if entry.hf_repo is not None and not mirror:
        path = hub_download(entry.hf_repo, entry.filename, entry.revision)
        _check_hash(path, want, entry.name)
        return path
    name = entry.file_name
    dest = cache_dir() / entry.model / name
    urls = [f"{mirror.rstrip('/')}/{name}"] if mirror else [entry.url, *entry.mirrors]
    errors = []
    for url in urls:
        try:
            return download_url(url, dest, want, progress, entry.name, size=entry.file_size)
        except OSError as e:
            if _offline():
                raise
            errors.append(str(e))
    raise OSError(f"{entry.name}: no source answered:\n  " + "\n  ".join(errors))


def load_released(model, entry: Pretrained, strict: bool = True, source=None, min_loaded: float = 0.5):
    """Load the release ``entry`` into ``model`` as its kind asks; returns ``(report, how)``.

    * ``init="image"`` (a CLIP image encoder): ``model.load_image_pretrained`` -- the video modules keep
      their initialisation; ``how="image_init"``;
    * a Kinetics-710 head into a 400/600/700-class model: the head's rows of those classes are kept
      (UniFormerV2, arXiv:2211.09552, Appendix F: "it is vital to load the pretrained weight of the
      classification layer"); ``how="k710_mapped"``;
    * another number of classes: everything but the classifier (fine-tuning); a backbone tensor that does
      not fit is an error with ``strict``; ``how="head_dropped"``;
    * else a strict load; ``how="loaded"``.
    """
    from .loading import CheckpointError, load_checkpoint

    source = download(entry) if source is None else source
    n = getattr(model, "num_classes", None)
    if entry.init == "image":
        loader = getattr(model, "load_image_pretrained", None)
        if loader is None:
            raise TypeError(f"{entry.name} is an image encoder, and {getattr(model, 'model_name', type(model).__name__)} "
                            "has no load_image_pretrained to start from one")
        return loader(source, strict=strict), "image_init"
    if entry.num_classes == 710 and n in (400, 600, 700):
        from .k710 import load_k710_checkpoint

        return load_k710_checkpoint(model, source, target=n, strict=strict), "k710_mapped"
    if entry.num_classes is not None and n is not None and n != entry.num_classes:
        report = load_checkpoint(model, source, strict=False, drop_head_on_mismatch=True, min_loaded=min_loaded)
        heads = tuple(getattr(model, "classifier_prefixes", ("head.",)))
        other = [k for k in report.missing + report.unexpected + [m[0] for m in report.mismatched]
                 if not k.startswith(heads)]
        if strict and other:
            raise CheckpointError(f"{entry.name} does not fit beyond its classifier:\n{report}", report)
        return report, "head_dropped"
    return load_checkpoint(model, source, strict=strict, min_loaded=min_loaded), "loaded"


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


def reorder_classes(model, labels) -> None:
    """Permute ``model``'s classifier rows (every tensor under its ``classifier_prefixes`` with one row per
    class) so that logit ``i`` is ``labels[i]``; ``model.label_names`` must name the current order.

    ``labels`` is a list of names or a shipped label-map name. E.g. a UniFormer K400 release, whose head
    follows the authors' own (non-alphabetical) class order, to MMAction2's alphabetical one:
    ``reorder_classes(m, "kinetics400")``. Names are compared as Kinetics-710 does (whitespace, known
    renames); a class missing on either side is an error naming it.
    """
    import torch

    from videoformers.labels import get_labels

    from .k710 import normalize_kinetics_label

    current = getattr(model, "label_names", None)
    if not current:
        raise ValueError("the model has no label_names: its current class order is unknown")
    target = get_labels(labels) if isinstance(labels, str) else list(labels)
    where = {normalize_kinetics_label(n): i for i, n in enumerate(current)}
    missing = [n for n in target if normalize_kinetics_label(n) not in where]
    if missing or len(target) != len(current):
        extra = sorted(set(where) - {normalize_kinetics_label(n) for n in target})
        raise ValueError(f"cannot reorder {len(current)} classes to {len(target)}: not in the model "
                         f"{missing[:5]}, not in the target {extra[:5]}")
    index = torch.tensor([where[normalize_kinetics_label(n)] for n in target])
    heads = tuple(getattr(model, "classifier_prefixes", ("head.",)))
    sd = model.state_dict()
    with torch.no_grad():
        for k, v in sd.items():
            if k.startswith(heads) and v.ndim >= 1 and v.shape[0] == len(current):
                v.copy_(v[index])
    model.label_names = list(target)
