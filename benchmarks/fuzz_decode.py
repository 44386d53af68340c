"""Fuzz the video decoder with damaged copies of real videos.

Writes six small videos whose frames carry their own index (``videoformers.data.synthetic.index_frames``)
in six containers (H.264/MP4, VP9/WebM, MPEG-4 Part 2/AVI, GIF, H.264/MPEG-TS, raw H.264), makes ``--n`` damaged
copies (truncation, random bit flips, zeroed byte ranges, damage to the first bytes where the headers
are), and decodes each through the library's public path (``open_video`` + ``read`` of every frame in a
shuffled order, so both the seeking and the damage handling are exercised) in a worker subprocess.
A worker that dies (a native crash) or does not answer within ``--timeout`` seconds (a hang) is
counted and replaced, so one bad file cannot stop the campaign.

Every returned frame is compared with the undamaged file's frame of the same index (read from the
picture): a frame more than ``--tolerance`` grey levels away on average is *damaged*. A damaged frame
the reader did not report in ``reader.last_corrupt`` is a *damaged frame returned without a flag*:
with the default ``corrupt_frames="skip"`` flagged frames are replaced by clean neighbours, so every
damaged frame that reaches the caller is one FFmpeg gave no sign of (typically a bit flip that still
decodes validly; VP9 and CABAC H.264 have no checksums to catch it).

    python benchmarks/fuzz_decode.py --n 600 --seed 0          # the campaign (a few minutes on 2 cores)
    python benchmarks/fuzz_decode.py --n 30 --seed 0 --json    # what the CI test runs

The last line with ``--json`` is a JSON object with the counts. Exit status 1 when any file raised an
exception other than ``VideoDecodeError``, crashed or hung.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

SOURCES = {
    # name: (file name, write_video keyword arguments, number of frames)
    "mp4": ("h264.mp4", dict(codec="libx264", gop=12, bframes=2), 48),
    "webm": ("vp9.webm", dict(codec="libvpx-vp9", gop=12), 48),
    "avi": ("mpeg4.avi", dict(codec="mpeg4", gop=12, bframes=2), 48),
    "gif": ("anim.gif", dict(codec="gif", fps=10), 24),
    "ts": ("h264.ts", dict(codec="libx264", gop=12, bframes=2, container_format="mpegts"), 48),
    # No timestamps and no seeking: frames are found by counting, and every rewind reopens the file.
    "h264": ("raw.h264", dict(codec="libx264", gop=12, bframes=2, container_format="h264"), 48),
}
MUTATIONS = ("truncate", "flip", "zero", "header")


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def write_sources(root: str) -> dict[str, str]:
    from videoformers.data.synthetic import index_frames, write_video

    frames = index_frames(48, 64, 96, seed=1)
    out = {}
    for name, (fname, kw, n) in SOURCES.items():
        path = os.path.join(root, fname)
        if not os.path.exists(path):
            write_video(path, frames[:n], **kw)
        out[name] = path
    return out


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    """One damaged copy of ``data``. Damage avoids nothing: headers, indices and payload alike."""
    b = bytearray(data)
    n = len(b)
    if kind == "truncate":
        return bytes(b[: rng.randint(max(1, n // 100), n - 1)])
    if kind == "flip":
        for _ in range(rng.randint(1, 30)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "zero":
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(n)
            k = rng.randint(8, 1024)
            b[i:i + k] = bytes(len(b[i:i + k]))
    elif kind == "header":
        end = min(n, max(64, n // 50))
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(end)] = rng.randrange(256)
    else:
        raise ValueError(f"unknown mutation {kind!r}; expected one of {MUTATIONS}")
    return bytes(b)


def make_cases(root: str, sources: dict[str, str], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    names = list(sources)
    blobs = {k: open(p, "rb").read() for k, p in sources.items()}
    cases = []
    for i in range(n):
        src = names[i % len(names)]
        kind = MUTATIONS[(i // len(names)) % len(MUTATIONS)] if i < 4 * len(names) else rng.choice(MUTATIONS)
        ext = os.path.splitext(sources[src])[1]
        path = os.path.join(root, f"fuzz_{i:04d}_{src}_{kind}{ext}")
        with open(path, "wb") as f:
            f.write(mutate(blobs[src], kind, rng))
        cases.append({"id": i, "path": path, "ref": sources[src], "source": src, "mutation": kind})
    return cases


# --------------------------------------------------------------------------------------------------
# Worker (runs in a subprocess)
# --------------------------------------------------------------------------------------------------


def worker_main() -> None:
    import numpy as np

    from videoformers.data import VideoDecodeError, open_video, read_frames_sequential, probe
    from videoformers.data.synthetic import decode_index

    refs: dict[str, dict] = {}

    def reference(path: str) -> dict:
        if path not in refs:
            n = probe(path, decoder="pyav").num_frames
            seq = read_frames_sequential(path, range(n)).numpy()
            refs[path] = {decode_index(f): f.astype(np.int16) for f in seq}
        return refs[path]

    print("ready", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        res = {"id": req["id"], "status": "ok", "frames": 0, "damaged_unflagged": 0, "flagged": 0, "replaced": 0}
        try:
            ref = reference(req["ref"])
            kw = {"corrupt_frames": req["policy"]} if req["policy"] != "skip" else {}
            with open_video(req["path"], **kw) as r:
                n = r.num_frames
                order = list(range(n))
                random.Random(req["id"]).shuffle(order)
                out = r.read(order)
                flagged = set(getattr(r, "last_corrupt", ()))  # getattr: also runs against older readers
                res.update(frames=n, flagged=len(flagged), replaced=len(getattr(r, "last_replaced", {})),
                           backend=r.info.backend)
            tol = req["tolerance"]
            for i, f in zip(order, out):
                k = decode_index(f)
                good = k in ref and ref[k].shape == f.shape and float(np.abs(f.astype(np.int16) - ref[k]).mean()) <= tol
                if not good and i not in flagged:
                    res["damaged_unflagged"] += 1
        except VideoDecodeError as e:
            res.update(status="decode_error", error=e.reason[:160])
        except Exception as e:  # what the campaign is looking for
            res.update(status="other", error=f"{type(e).__name__}: {str(e)[:160]}")
        print(json.dumps(res), flush=True)


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


class Worker:
    """One decoding subprocess; replaced after a crash or a hang."""

    def __init__(self, log_path: str, startup_timeout: float = 300.0):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self._readline(startup_timeout)
        if line != "ready":
            self.kill()
            raise RuntimeError(f"fuzz worker did not start (got {line!r}; see {log_path})")

    def _readline(self, timeout: float) -> str | None:
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            return None
        line = self.p.stdout.readline()
        return line.decode().strip() if line else ""

    def ask(self, req: dict, timeout: float) -> tuple[str, dict | None]:
        try:
            self.p.stdin.write((json.dumps(req) + "\n").encode())
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._readline(timeout)
        if line is None:
            return "hang", None
        if line == "":  # EOF: the worker died
            rc = self.p.wait()
            return "crash", {"returncode": rc}
        return "answer", json.loads(line)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.log.close()


def run_campaign(n: int, seed: int, timeout: float, policy: str, tolerance: float, workdir: str | None,
                 verbose: bool) -> dict:
    t0 = time.time()
    root = workdir or tempfile.mkdtemp(prefix="fuzz_decode_")
    os.makedirs(root, exist_ok=True)
    sources = write_sources(root)
    cases = make_cases(root, sources, n, seed)
    log_path = os.path.join(root, "worker_stderr.log")
    worker = Worker(log_path)
    counts = Counter()
    damaged_files = damaged_frames = flagged_files = flagged_frames = 0
    problems = []
    by_source: dict[str, Counter] = {}
    for case in cases:
        req = {"id": case["id"], "path": case["path"], "ref": case["ref"], "policy": policy, "tolerance": tolerance}
        kind, res = worker.ask(req, timeout)
        if kind != "answer":
            status = kind
            detail = f"exit status {res['returncode']}" if kind == "crash" else f"no answer in {timeout:g} s"
            worker.kill()
            worker = Worker(log_path)
        else:
            status = res["status"]
            detail = res.get("error", "")
            if res["damaged_unflagged"]:
                damaged_files += 1
                damaged_frames += res["damaged_unflagged"]
            if res["flagged"]:
                flagged_files += 1
                flagged_frames += res["flagged"]
        counts[status] += 1
        by_source.setdefault(case["source"], Counter())[status] += 1
        if status in ("other", "crash", "hang"):
            problems.append(f"{os.path.basename(case['path'])}: {status} ({detail})")
        if verbose:
            extra = "" if res is None or kind != "answer" else (
                f" frames={res['frames']} flagged={res['flagged']} damaged_unflagged={res['damaged_unflagged']}")
            print(f"{os.path.basename(case['path'])}: {status}{extra} {detail}", flush=True)
    worker.kill()
    return {
        "n": n, "seed": seed, "policy": policy, "timeout_s": timeout, "tolerance": tolerance,
        "ok": counts["ok"], "decode_error": counts["decode_error"], "other": counts["other"],
        "crash": counts["crash"], "hang": counts["hang"],
        "damaged_unflagged_files": damaged_files, "damaged_unflagged_frames": damaged_frames,
        "flagged_files": flagged_files, "flagged_frames": flagged_frames,
        "by_source": {k: dict(v) for k, v in sorted(by_source.items())},
        "problems": problems, "workdir": root, "seconds": round(time.time() - t0, 1),
    }


def print_report(r: dict) -> None:
    print(f"fuzz_decode: {r['n']} damaged files from {len(SOURCES)} sources ({', '.join(SOURCES)}), seed {r['seed']}, "
          f"corrupt_frames={r['policy']}, timeout {r['timeout_s']:g} s, {r['seconds']} s")
    print(f"  ok                                {r['ok']:5d}")
    print(f"  VideoDecodeError                  {r['decode_error']:5d}")
    print(f"  other exception                   {r['other']:5d}")
    print(f"  crash (worker died)               {r['crash']:5d}")
    print(f"  hang (timeout)                    {r['hang']:5d}")
    print(f"  damaged frames returned without a flag: {r['damaged_unflagged_frames']} frames in "
          f"{r['damaged_unflagged_files']} files")
    print(f"  frames flagged corrupt ({'replaced' if r['policy'] == 'skip' else r['policy']}): "
          f"{r['flagged_frames']} frames in {r['flagged_files']} files")
    for src, c in r["by_source"].items():
        print(f"    {src:5s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for p in r["problems"][:20]:
        print("  PROBLEM", p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=600, help="number of damaged files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a file may take before it counts as a hang")
    ap.add_argument("--policy", default="skip", choices=("skip", "keep", "error"), help="corrupt_frames policy")
    ap.add_argument("--tolerance", type=float, default=2.0,
                    help="mean absolute difference (grey levels) above which a returned frame counts as damaged")
    ap.add_argument("--workdir", default=None,
                    help="where to write the files and keep them (default: a temp folder, removed at the end)")
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON line at the end")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker_main()
        return 0
    if a.n < 1:
        ap.error(f"--n={a.n}: must be >= 1")
    r = run_campaign(a.n, a.seed, a.timeout, a.policy, a.tolerance, a.workdir, a.verbose)
    if a.workdir is None:
        shutil.rmtree(r["workdir"], ignore_errors=True)
        r["workdir"] = None
    print_report(r)
    if a.json:
        print(json.dumps(r))
    return 1 if (r["other"] or r["crash"] or r["hang"]) else 0


if __name__ == "__main__":
    sys.exit(main())
