"""Sharded data: WebDataset-format tar shards, written by ``videoformers prepare LIST OUT --shards`` and read
by ``data.dataset=shards`` (:class:`ShardDataset`, an ``IterableDataset``).

Why shards: at Kinetics scale on shared or object storage, the per-file random reads of a list dataset are
the bottleneck; a shard is read front to back in one stream.

Format (what ``prepare --shards`` writes; any WebDataset tar with ``.mp4`` + ``.json`` members reads)
--------------------------------------------------------------------------------------------------
``OUT/<split>-000000.tar``, ``OUT/<split>-000001.tar``, ... (``<split>``: the list file's stem, ``train.txt`` ->
``train-000000.tar``), plain (uncompressed) POSIX tars. Each sample is two adjacent members with the same key
(WebDataset's convention: the key is the member name up to the first dot of its base name, so keys have no
dots): ``<key>.mp4``, the video re-encoded exactly as ``prepare`` does without ``--shards`` (h264, short
keyframe interval, ``--short-side``), and ``<key>.json``::

    {"label": 3, "class": "dancing" (or null without --labels-file), "fps": 25.0, "frames": 250,
     "source": "/data/k400/train/x.mp4", "key": "000000012_x"}

A shard is closed when adding the next video would make it larger than ``--shard-size`` (default ``512MB``;
``KB``/``MB``/``GB`` or bytes; a shard holds at least one sample). Every file is written to ``<name>.tmp``
and renamed, so an interrupted run never leaves a file that looks complete. The manifest ``OUT/<split>.json``::

    {"format": "videoformers-shards", "version": 1, "split": "train", "num_samples": 240000,
     "classes": [...] or null, "num_classes": 400, "shards": [{"name": "train-000000.tar",
     "num_samples": 2131, "bytes": 536000000}, ...], "broken": [[source, reason], ...]}

The videos are first encoded into ``OUT/.encode-<split>/`` (resumable, as ``prepare``), packed, and that
folder is removed after the shards are complete.

Reading (``data.dataset: shards``)
----------------------------------
``data.train_shards`` / ``data.val_shards`` (``test`` uses ``val_shards``): a manifest (``OUT/train.json``), or
a brace pattern ``OUT/train-{000000..000031}.tar`` (several patterns may be separated by spaces or ``::``).
With a pattern, the manifest ``<dir>/<split>.json`` next to the shards is used when it exists (for the
sample counts and class names); otherwise every shard is scanned once to count its samples (local files
only cost a header walk; remote ones are downloaded once). Locations: local paths, ``http(s)://`` (streamed
with ``urllib``), and ``s3://``, ``gs://`` or any other ``fsspec`` protocol when ``fsspec`` (and its
backend, ``s3fs``/``gcsfs``) is installed.

Semantics:

* **Exactly once, balanced.** The epoch's shard order (shuffled from ``(seed, epoch)`` in training, the
  manifest order in evaluation) concatenates into one sequence of positions ``0..N-1`` (the per-shard
  counts come from the manifest, so nothing is read to compute this). Rank ``r`` of ``W`` takes the
  contiguous positions ``[r*N//W, (r+1)*N//W)``, and DataLoader worker ``k`` of ``K`` the same split of its
  rank's range: no overlap, sizes within one sample, and a process reads only the shards its range
  touches (at most two partially). Ranks and world size come from :meth:`ShardDataset.set_distributed`,
  else ``RANK``/``WORLD_SIZE``, else ``torch.distributed``.
* **Shuffling (training).** Shard order per epoch, plus a sample shuffle buffer of
  ``data.shuffle_buffer`` samples (raw bytes, decoded after leaving the buffer) per worker, seeded from
  ``(seed, epoch, rank, worker)``. The same seed gives the same order; another epoch another one. The
  augmentation of a sample is seeded from ``(seed, epoch, index)`` as ``SeededDataset`` does for lists.
* **Length.** ``len(ds)`` is this rank's number of samples per epoch: ``N // W`` in training (ranks
  must run the same number of steps; when ``W`` does not divide ``N`` a few positions of the epoch's
  order -- different samples each epoch -- are left to the ranks with one more sample and the trainer's
  ``steps_per_epoch`` ignores them), ``ceil(N / W)`` in evaluation, where the last rank's range is padded
  with the first samples again (as ``EvalSampler``) and the evaluator drops the repeats by ``index``.
* **Items** are those of :class:`~videoformers.data.VideoDataset` (same decoders and transforms,
  multi-view in evaluation): ``{"video", "label", "index", "num_skipped", "num_corrupt"}``; ``index`` is the
  sample's position in the manifest order (shard by shard), the same on every rank and epoch.
* **Broken samples** (undecodable video, missing or bad ``.json``, unreadable shard) are skipped, logged
  once, counted in the next item's ``num_skipped`` and in :meth:`ShardDataset.skip_stats`, and stop the run
  with :class:`~videoformers.data.BrokenDataError` under the same ``max_broken_fraction`` rule as lists.
* **Mid-epoch resume.** ``set_epoch(epoch, skip_batches, batch_size)``: the trainer passes the number of
  micro-batches this rank already consumed; each worker skips the samples of its own batches among them
  (the DataLoader takes batches from the workers in turn; after a resume worker ``k`` plays worker
  ``(k + skip_batches) % K``, so that the batches keep their order), i.e. the first ``micro * batch_size`` samples of
  the rank's deterministic order for the epoch are skipped, read but not decoded. Exact for the same
  ``(seed, world size, num_workers, batch size)``.

Library: the stdlib ``tarfile`` in streaming mode (``r|``), not ``webdataset``: the balanced exactly-once
split by sample position (not by whole shard), skipping into the middle of a shard, the resume skip and the
skip accounting need control over the sample stream that webdataset's pipeline stages
(``split_by_node``/``split_by_worker`` are whole-shard) do not give, and the tar layout it expects is
simple enough to produce and parse directly. Shards stay readable by ``webdataset`` (same layout).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import re
import shutil
import tarfile
import tempfile
import time
import urllib.request
import zlib
from typing import Iterator, Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .config import DataConfig

__all__ = ["ShardDataset", "build_shard_dataset", "expand_braces", "parse_size", "prepare_shards",
           "read_manifest", "resolve_shards"]

log = logging.getLogger("videoformers.data")

MANIFEST_FORMAT = "videoformers-shards"
_BRACE = re.compile(r"\{(\d+)\.\.(\d+)\}")


# --------------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------------


def parse_size(text: str | int) -> int:
    """``"512MB"`` -> bytes (``KB``/``MB``/``GB``/``TB`` are powers of 1000; ``KiB``/``MiB``/... of 1024)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)(i?)b?\s*", str(text), re.I)
    if not m:
        raise ValueError(f"not a size: {text!r} (expected e.g. 512MB, 1GB, 100000)")
    base = 1024 if m.group(3) else 1000
    power = " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * base ** power)


def expand_braces(pattern: str) -> list[str]:
    """``a-{000..002}.tar`` -> ``[a-000.tar, a-001.tar, a-002.tar]`` (zero padding kept; several ranges and
    several patterns separated by whitespace or ``::``)."""
    out: list[str] = []
    for part in re.split(r"\s+|::", pattern.strip()):
        if not part:
            continue
        m = _BRACE.search(part)
        if not m:
            out.append(part)
            continue
        lo, hi = m.group(1), m.group(2)
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        for i in range(int(lo), int(hi) + 1):
            out.extend(expand_braces(part[: m.start()] + str(i).zfill(width) + part[m.end():]))
    return out


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return os.path.expanduser(path[len("file://"):] if path.startswith("file://") else path)


def open_stream(url: str):
    """A readable binary stream of a shard (local file, http(s) via urllib, other protocols via fsspec)."""
    if url.startswith(("http://", "https://")):
        return urllib.request.urlopen(url, timeout=60)  # noqa: S310 - the user's own shard locations
    if _is_url(url):
        try:
            import fsspec
        except ImportError:
            raise ImportError(f"reading {url} needs fsspec (pip install fsspec s3fs / gcsfs)") from None
        return fsspec.open(url, "rb").open()
    return open(_local(url), "rb")


def _join_url(base_dir: str, name: str) -> str:
    if _is_url(name) or os.path.isabs(name):
        return name
    return base_dir.rstrip("/") + "/" + name if _is_url(base_dir) else os.path.join(base_dir, name)


def _dirname(url: str) -> str:
    return url.rsplit("/", 1)[0] if _is_url(url) else os.path.dirname(_local(url))


def read_manifest(url: str) -> dict:
    with open_stream(url) as f:
        data = json.loads(f.read().decode("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("shards"), list):
        raise ValueError(f"{url}: not a shard manifest (expected a JSON object with a 'shards' list)")
    return data


def _exists(url: str) -> bool:
    if not _is_url(url):
        return os.path.isfile(_local(url))
    try:
        with open_stream(url):
            return True
    except Exception:  # noqa: BLE001 - any failure means 'no manifest there'
        return False


def _count_samples(url: str) -> int:
    keys = set()
    with open_stream(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            if m.isfile():
                keys.add(_split_name(m.name)[0])
    return len(keys)


def resolve_shards(spec: str) -> tuple[list[str], list[int], dict]:
    """``(shard urls, samples per shard, manifest or {})`` for a manifest path or a brace pattern."""
    spec = str(spec).strip()
    if spec.endswith(".json"):
        man = read_manifest(spec)
        base = _dirname(spec)
        urls = [_join_url(base, s["name"]) for s in man["shards"]]
        return urls, [int(s["num_samples"]) for s in man["shards"]], man
    urls = expand_braces(spec)
    if not urls:
        raise ValueError(f"no shards in {spec!r}")
    m = re.match(r"(.*)-\d+\.tar$", os.path.basename(urls[0].rstrip("/")))
    man: dict = {}
    if m:
        cand = _join_url(_dirname(urls[0]), m.group(1) + ".json")
        if _exists(cand):
            man = read_manifest(cand)
    counts_by_name = {s["name"]: int(s["num_samples"]) for s in man.get("shards", [])}
    counts = []
    for u in urls:
        name = u.rstrip("/").rsplit("/", 1)[-1]
        if name in counts_by_name:
            counts.append(counts_by_name[name])
        else:
            log.warning("%s is not in a manifest: counting its samples by reading it", u)
            counts.append(_count_samples(u))
    return urls, counts, man


# --------------------------------------------------------------------------------------------------
# Reading tar streams
# --------------------------------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset's key/extension split: the key ends at the first dot of the base name."""
    d, _, base = name.rpartition("/")
    key, _, ext = base.partition(".")
    return (d + "/" + key if d else key), ext.lower()


def iter_tar_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {ext: bytes})`` for each sample of a shard, in tar order (adjacent members share a key)."""
    with open_stream(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        key, parts = None, {}
        for m in tar:
            if not m.isfile():
                continue
            k, ext = _split_name(m.name)
            if k != key:
                if key is not None:
                    yield key, parts
                key, parts = k, {}
            fo = tar.extractfile(m)
            parts[ext] = fo.read() if fo is not None else b""
        if key is not None:
            yield key, parts


def _segments(order: Sequence[int], counts: Sequence[int], lo: int, hi: int) -> list[tuple[int, int, int]]:
    """``(shard, start, stop)`` covering positions ``[lo, hi)`` of the cyclic concatenation of the shards
    in ``order``."""
    total = sum(counts[s] for s in order)
    out: list[tuple[int, int, int]] = []
    if total == 0 or hi <= lo:
        return out
    pos = lo
    while pos < hi:
        cycle_base = (pos // total) * total
        off = cycle_base
        for s in order:
            c = counts[s]
            a, b = max(pos, off), min(hi, off + c)
            if a < b:
                out.append((s, a - off, b - off))
                pos = b
            off += c
            if pos >= hi:
                break
    return out


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------


class ShardDataset(IterableDataset):
    """Samples of WebDataset tar shards as :class:`VideoDataset` items (see the module docstring)."""

    min_attempts_for_limit = 20
    max_consecutive_failures = 50

    def __init__(self, shards: Sequence[str], counts: Sequence[int], classes: Sequence[str], cfg: DataConfig,
                 split: str = "train", mean=None, std=None, seed: int = 0, shuffle_buffer: int | None = None,
                 rank: int | None = None, world_size: int | None = None):
        from .datasets import Sample, VideoDataset

        if not shards:
            raise ValueError(f"the {split} shards list is empty")
        self.shards = list(shards)
        self.counts = [int(c) for c in counts]
        self.offsets = [sum(self.counts[:i]) for i in range(len(self.counts))]  # manifest-order index base
        self.num_samples_total = sum(self.counts)
        if self.num_samples_total == 0:
            raise ValueError(f"the {split} shards hold no samples")
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.cfg = cfg
        self.split = split
        self.train = split == "train"
        self.seed = int(seed)
        self.epoch = 0
        self.shuffle_buffer = int(shuffle_buffer if shuffle_buffer is not None
                                  else getattr(cfg, "shuffle_buffer", 256) or 0)
        self._rank, self._world = rank, world_size
        self._skip_batches, self._batch_size = 0, 1
        # One VideoDataset does the decoding, sampling and transforms of every sample (its ``samples[0]``
        # is pointed at the temporary file of the sample at hand).
        self._decoder = VideoDataset([Sample("<shard sample>", -1)], self.classes, cfg, split, mean=mean, std=std)
        self.mean, self.std = self._decoder.mean, self._decoder.std
        self.broken_files: dict[str, str] = {}
        self.num_broken = 0
        self.num_attempts = 0
        self._tmpdir: str | None = None
        self._tmp_owner = -1
        self._n_tmp = 0

    # ------------------------------------------------------------------ distribution
    def set_distributed(self, rank: int, world_size: int) -> None:
        self._rank, self._world = int(rank), int(world_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0, batch_size: int = 1) -> None:
        """The epoch (shuffling and augmentation seeds) and, for a resumed epoch, how many micro-batches of
        ``batch_size`` this rank already consumed (skipped, see the module docstring)."""
        self.epoch = int(epoch)
        self._skip_batches, self._batch_size = int(skip_batches), max(1, int(batch_size))

    def rank_world(self) -> tuple[int, int]:
        if self._rank is not None and self._world is not None:
            return self._rank, self._world
        if "WORLD_SIZE" in os.environ:
            return int(os.environ.get("RANK", 0)), int(os.environ["WORLD_SIZE"])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        _, world = self.rank_world()
        n = self.num_samples_total
        return n // world if self.train else math.ceil(n / world)

    def shard_order(self, epoch: int | None = None) -> list[int]:
        order = list(range(len(self.shards)))
        if self.train:
            random.Random(_seed(self.seed, "shards", self.epoch if epoch is None else epoch)).shuffle(order)
        return order

    def _range(self) -> tuple[int, int, int, int]:
        """``(lo, hi, worker, num_workers)``: this process's positions of the epoch order."""
        rank, world = self.rank_world()
        n = self.num_samples_total
        if self.train:
            lo, hi = rank * n // world, (rank + 1) * n // world
        else:
            per = math.ceil(n / world)
            lo, hi = rank * per, (rank + 1) * per
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        # After a resume the DataLoader asks worker 0 first: it plays the part of the worker whose batch
        # came next in the uninterrupted epoch, so the batches keep their order.
        wid = (wid + self._skip_batches) % nw
        span = hi - lo
        return lo + wid * span // nw, lo + (wid + 1) * span // nw, wid, nw

    # ------------------------------------------------------------------ iteration
    def _raw(self, order, lo, hi, wid) -> Iterator[tuple[int, str, str, dict]]:
        """(index, shard url, key, parts) for this process's positions, shuffled in training."""
        def stream():
            for s, a, b in _segments(order, self.counts, lo, hi):
                url = self.shards[s]
                try:
                    for j, (key, parts) in enumerate(iter_tar_samples(url)):
                        if j >= b:
                            break
                        if j >= a:
                            yield self.offsets[s] + j, url, key, parts
                except (tarfile.TarError, OSError, EOFError) as e:
                    self._broken(f"{url}", f"unreadable shard ({type(e).__name__}: {e})", 1)
        if not self.train or self.shuffle_buffer <= 1:
            yield from stream()
            return
        rank, _ = self.rank_world()
        rng = random.Random(_seed(self.seed, "buffer", self.epoch, rank, wid))
        buf: list = []
        for item in stream():
            if len(buf) < self.shuffle_buffer:
                buf.append(item)
                continue
            j = rng.randrange(len(buf))
            buf[j], item = item, buf[j]
            yield item
        rng.shuffle(buf)
        yield from buf

    def __iter__(self):
        lo, hi, wid, nw = self._range()
        # Resume: this worker's batches among the first ``skip_batches`` (round robin over workers).
        mine = len(range(wid, self._skip_batches, nw)) if self._skip_batches > 0 else 0
        skip = mine * self._batch_size
        skipped = 0
        for n, (index, url, key, parts) in enumerate(self._raw(self.shard_order(), lo, hi, wid)):
            if n < skip:
                continue
            item, reason = self._item(index, url, key, parts)
            if item is None:
                skipped += 1
                self._broken(f"{url}#{key}", reason, skipped)
                continue
            item["num_skipped"] = skipped
            skipped = 0
            yield item

    def _tmp(self) -> str:
        if self._tmpdir is None or self._tmp_owner != os.getpid():
            base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self._tmpdir = tempfile.mkdtemp(prefix="vf-shard-", dir=base)
            self._tmp_owner = os.getpid()
        self._n_tmp += 1
        return os.path.join(self._tmpdir, f"{self._n_tmp}.mp4")

    def _item(self, index: int, url: str, key: str, parts: dict):
        from .datasets import _PROPAGATE, Sample, _reason

        from videoformers.engine.state import get_rng_state, seed_everything, set_rng_state

        self.num_attempts += 1
        video = parts.get("mp4")
        if video is None:
            return None, f"no .mp4 member (has {sorted(parts) or 'nothing'})"
        try:
            meta = json.loads(parts["json"].decode("utf-8")) if "json" in parts else {}
            label = int(meta.get("label", -1))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as e:
            return None, f"bad .json member ({e})"
        if not (label == -1 or 0 <= label < max(self.num_classes, 1)):
            return None, f"label {label} is out of range [0, {self.num_classes})"
        path = self._tmp()
        saved = None if get_worker_info() is not None else get_rng_state()
        try:
            with open(path, "wb") as f:
                f.write(video)
            seed_everything(_seed(self.seed, self.epoch, index))  # augmentation as SeededDataset's
            dec = self._decoder
            dec.samples[0] = Sample(path, label, f"{url}#{key}", 0)
            out = dec._video(0)
            return {"video": out, "label": label, "index": index, "num_skipped": 0,
                    "num_corrupt": len(dec.last_corrupt)}, ""
        except _PROPAGATE:
            raise
        except Exception as e:  # noqa: BLE001 - one bad sample costs that sample
            return None, _reason(e)
        finally:
            if saved is not None:
                set_rng_state(saved)
            try:
                os.remove(path)
            except OSError:
                pass

    # ------------------------------------------------------------------ broken samples
    def _broken(self, name: str, reason: str, consecutive: int) -> None:
        from .datasets import BrokenDataError

        self.num_broken += 1
        if name not in self._decoder._reported:
            self._decoder._reported.add(name)
            self._decoder._skips.add(name, reason)
        if name not in self.broken_files:
            self.broken_files[name] = reason
            log.warning("skipping unreadable sample %s (%s); %d broken of %d tried in this process", name, reason,
                        self.num_broken, self.num_attempts)
        limit = self.cfg.max_broken_fraction
        n, k = max(self.num_attempts, 1), self.num_broken
        too_many = consecutive >= self.max_consecutive_failures
        if not too_many and n >= min(self.min_attempts_for_limit, 2 * self.num_samples_total) and limit < 1.0:
            p = k / n
            too_many = p - 2 * math.sqrt(max(p * (1 - p), 1e-12) / n) > limit
        if too_many:
            examples = "; ".join(f"{p} ({r})" for p, r in list(self.broken_files.items())[:3])
            raise BrokenDataError(f"{k} of {n} shard samples failed in this process, more than "
                                  f"max_broken_fraction={limit}: the {self.split} shards look mostly broken. "
                                  f"Examples: {examples}")

    def skip_stats(self, reset: bool = False) -> dict:
        return self._decoder.skip_stats(reset=reset)

    def reset_skip_stats(self) -> None:
        self.skip_stats(reset=True)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tmpdir"] = None
        return state

    def __del__(self):
        d = getattr(self, "_tmpdir", None)
        if d and getattr(self, "_tmp_owner", -1) == os.getpid():
            shutil.rmtree(d, ignore_errors=True)


def build_shard_dataset(cfg: DataConfig, split: str, *, model=None, seed: int | None = None) -> ShardDataset:
    """``build_dataset`` for ``data.dataset=shards``."""
    from .datasets import read_class_names, resolve_mean_std

    spec = cfg.train_shards if split == "train" else (cfg.val_shards if split != "test" else
                                                      (getattr(cfg, "test_shards", None) or cfg.val_shards))
    if not spec:
        raise ValueError(f"data.dataset=shards needs data.{'train' if split == 'train' else 'val'}_shards "
                         "(a manifest OUT/<split>.json or a pattern OUT/<split>-{000000..000009}.tar)")
    urls, counts, man = resolve_shards(spec)
    if cfg.labels_file:
        classes = read_class_names(os.path.expanduser(cfg.labels_file))
    elif man.get("classes"):
        classes = list(man["classes"])
    else:
        n = cfg.num_classes or man.get("num_classes")
        if not n and split != "train" and cfg.train_shards:
            n = resolve_shards(cfg.train_shards)[2].get("num_classes")
        if not n:
            raise ValueError(f"{spec}: cannot tell the number of classes (no manifest with num_classes); "
                             "set data.num_classes or data.labels_file")
        classes = [str(i) for i in range(int(n))]
    if cfg.num_classes is not None and int(cfg.num_classes) != len(classes):
        raise ValueError(f"DataConfig.num_classes={cfg.num_classes} but the shards have {len(classes)} classes")
    mean, std = resolve_mean_std(cfg, model)
    return ShardDataset(urls, counts, classes, cfg, split, mean=mean, std=std, seed=seed or 0)


# --------------------------------------------------------------------------------------------------
# Writing (prepare --shards)
# --------------------------------------------------------------------------------------------------


def _key(i: int, rel: str) -> str:
    stem = os.path.splitext(os.path.basename(rel))[0]
    return f"{i:09d}_" + re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:80]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), 0, 0o444
    tar.addfile(ti, io.BytesIO(data))


def prepare_shards(list_path: str, out_dir: str, shard_size: str | int = "512MB", labels_file: str | None = None,
                   progress: bool = True, **prepare_kwargs) -> dict:
    """Encode ``list_path`` as :func:`~videoformers.data.prepare.prepare_dataset` does, then pack the videos
    into tar shards + a manifest in ``out_dir`` (see the module docstring). Returns the manifest plus
    ``"manifest_path"`` and ``"seconds"``."""
    from .datasets import read_class_names
    from .decoding import probe
    from .prepare import MANIFEST, prepare_dataset

    t0 = time.time()
    limit = parse_size(shard_size)
    split = os.path.splitext(os.path.basename(list_path))[0]
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    staging = os.path.join(out_dir, f".encode-{split}")
    summary = prepare_dataset(list_path, staging, progress=progress, **prepare_kwargs)
    records = {}
    with open(os.path.join(staging, MANIFEST), encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
                records[r["out"]] = r
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    classes = read_class_names(os.path.expanduser(labels_file)) if labels_file else None
    entries = []
    with open(summary["list"], encoding="utf-8") as f:
        for line in f:
            parts = line.strip().rsplit(maxsplit=1)
            if parts:
                entries.append((parts[0], int(parts[1]) if len(parts) == 2 else -1))
    shards: list[dict] = []
    tar = None
    cur = {"name": "", "num_samples": 0, "bytes": 0}

    def close():
        nonlocal tar
        if tar is None:
            return
        tar.close()
        final = os.path.join(out_dir, cur["name"])
        cur["bytes"] = os.path.getsize(final + ".tmp")
        os.replace(final + ".tmp", final)
        shards.append(dict(cur))
        tar = None

    for i, (rel, label) in enumerate(entries):
        path = os.path.join(staging, rel)
        with open(path, "rb") as f:
            video = f.read()
        rec = records.get(rel, {})
        try:
            info = probe(path, decoder="pyav")
            fps, frames = info.fps, info.num_frames
        except Exception:  # noqa: BLE001 - metadata only
            fps, frames = None, rec.get("frames")
        key = _key(i, rel)
        meta = {"label": label, "class": classes[label] if classes and 0 <= label < len(classes) else None,
                "fps": fps, "frames": frames, "source": rec.get("src", rel), "key": key}
        payload = json.dumps(meta, sort_keys=True).encode("utf-8")
        size = len(video) + len(payload) + 3 * 512
        if tar is not None and cur["num_samples"] and cur["bytes"] + size > limit:
            close()
        if tar is None:
            cur = {"name": f"{split}-{len(shards):06d}.tar", "num_samples": 0, "bytes": 1024}
            tar = tarfile.open(os.path.join(out_dir, cur["name"]) + ".tmp", "w")
        _add(tar, key + ".mp4", video)
        _add(tar, key + ".json", payload)
        cur["num_samples"] += 1
        cur["bytes"] += size
    close()
    labels = [lab for _, lab in entries if lab >= 0]
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "split": split, "num_samples": len(entries),
                "classes": classes, "num_classes": len(classes) if classes else (max(labels) + 1 if labels else 0),
                "shards": shards, "broken": [list(b) for b in summary["broken"]]}
    man_path = os.path.join(out_dir, f"{split}.json")
    with open(man_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    os.replace(man_path + ".tmp", man_path)
    shutil.rmtree(staging, ignore_errors=True)
    return {**manifest, "manifest_path": man_path, "seconds": time.time() - t0}
