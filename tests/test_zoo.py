"""Released weights by name: the catalogue's entries, and downloads (a URL with its SHA-256, a Hugging Face
Hub file through huggingface_hub) from a server the test starts on 127.0.0.1 -- never another address."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from pathlib import Path

import pytest
import torch

import videoformers as vf
from videoformers.checkpoints import zoo
from videoformers.checkpoints.zoo import Pretrained, register_pretrained

TINY = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=32)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    hits: list[str]
    cut: set[str]  # paths whose next GET stops half-way (Content-Length promises the whole file)
    types: dict[str, str]  # Content-Type per path (default application/octet-stream)
    ranges: bool  # honour "Range: bytes=N-" (206); False: answer 200 with the whole file, as some hosts do


class _Handler(http.server.BaseHTTPRequestHandler):
    def _reply(self, body: bool) -> None:
        rng = self.headers.get("Range")
        self.server.hits.append(f"{self.command} {self.path}" + (f" Range:{rng}" if rng else ""))
        path = self.path.split("?")[0]
        data = self.server.files.get(path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = int(rng.split("=", 1)[1].split("-", 1)[0]) if rng and self.server.ranges else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Type", self.server.types.get(path, "application/octet-stream"))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if body:
            if path in self.server.cut:
                self.server.cut.discard(path)
                self.wfile.write(data[start: start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self._reply(False)

    def do_GET(self):  # noqa: N802
        self._reply(True)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files, srv.hits, srv.cut, srv.types, srv.ranges = {}, [], set(), {}, True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def scratch_zoo(tmp_path, monkeypatch):
    """Test entries are removed afterwards; caches go to tmp_path; no real Hub is reachable."""
    zoo._ensure_catalogue()
    before = dict(zoo._ZOO)
    monkeypatch.setenv("VIDEOFORMERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield
    zoo._ZOO.clear()
    zoo._ZOO.update(before)


def _authors_layout_bytes(num_classes: int = 3) -> tuple[bytes, dict]:
    """A UniFormer state dict in the authors' key layout (conv1/conv2, gamma-free), as torch.save bytes."""
    torch.manual_seed(1)
    m = vf.create_model("uniformer_small", num_classes=num_classes, **TINY)
    sd = {}
    for k, v in m.state_dict().items():
        k2 = k.replace("attn.value.", "conv1.").replace("attn.proj.", "conv2.") if k.startswith(("blocks1", "blocks2")) else k
        k2 = k2.replace("attn.affinity.", "attn.").replace("pos_embed.proj.", "pos_embed.")
        if k2.endswith(("conv1.weight", "conv2.weight")):
            v = v[:, :, None, None, None]
        sd[k2] = v
    buf = io.BytesIO()
    torch.save({"model": sd}, buf)
    return buf.getvalue(), m.state_dict()


def test_url_download_checks_the_hash_and_attaches_labels_and_preprocessing(server, scratch_zoo, tmp_path):
    data, ref = _authors_layout_bytes()
    server.files["/weights/uniformer_tiny_test.pth"] = data
    port = server.server_address[1]
    register_pretrained(Pretrained(
        model="uniformer_small", tag="test_url", url=f"http://127.0.0.1:{port}/weights/uniformer_tiny_test.pth",
        sha256=hashlib.sha256(data).hexdigest(), num_classes=3, labels=None, overrides=TINY,
        preprocess={"num_frames": 4, "frame_interval": 2, "img_size": 32, "short_side": 36},
        source="test", verified="test"))
    m = vf.create_model("uniformer_small.test_url", pretrained=True).eval()
    assert all(torch.equal(m.state_dict()[k], v) for k, v in ref.items())  # the authors' layout, converted
    assert m.pretrained_cfg.tag == "test_url" and m.preprocess_config["frame_interval"] == 2
    from videoformers.tools.predict import preprocess_for

    assert preprocess_for(m).frame_interval == 2 and preprocess_for(m).short_side == 36
    cached = tmp_path / "cache" / "uniformer_small" / "uniformer_tiny_test.pth"
    assert cached.is_file()
    n = len(server.hits)
    vf.create_model("uniformer_small.test_url", pretrained=True)  # cached: no second request
    assert len(server.hits) == n
    # A file that does not match its hash is refused and not kept.
    server.files["/weights/bad.pth"] = data[:-10] + b"0123456789"
    register_pretrained(Pretrained(model="uniformer_small", tag="test_bad", url=f"http://127.0.0.1:{port}/weights/bad.pth",
                                   sha256=hashlib.sha256(data).hexdigest(), num_classes=3, overrides=TINY))
    with pytest.raises(OSError, match="SHA-256"):
        vf.create_model("uniformer_small.test_bad", pretrained=True)
    assert not (tmp_path / "cache" / "uniformer_small" / "bad.pth").exists()
    assert not list((tmp_path / "cache" / "uniformer_small").glob(".*"))  # no temporary file left either


def test_hub_download_through_huggingface_hub(server, scratch_zoo, monkeypatch):
    pytest.importorskip("huggingface_hub")
    data, ref = _authors_layout_bytes(num_classes=4)
    server.files[f"/someone/uniformer-test/resolve/main/u.pth"] = data
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    register_pretrained(Pretrained(model="uniformer_small", tag="test_hub", hf_repo="someone/uniformer-test",
                                   filename="u.pth", num_classes=4, labels=None, overrides=TINY))
    m = vf.create_model("uniformer_small.test_hub", pretrained=True)
    assert all(torch.equal(m.state_dict()[k], v) for k, v in ref.items())
    assert any(h.startswith("GET /someone/uniformer-test/resolve/main/u.pth") for h in server.hits)
    # Offline, the cached file is enough.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server.files.clear()
    assert Path(zoo.download(zoo.get_pretrained("uniformer_small", "test_hub"))).is_file()


def test_names_tags_and_errors(scratch_zoo):
    for k in [k for k in zoo._ZOO if k.startswith("uniformer_small.")]:
        del zoo._ZOO[k]  # only the test's releases (the fixture restores the catalogue)
    register_pretrained(Pretrained(model="uniformer_small", tag="test_a", url="http://127.0.0.1:9/a.pth", num_classes=7,
                                   overrides=TINY, default=True))
    register_pretrained(Pretrained(model="uniformer_small", tag="test_b", url="http://127.0.0.1:9/b.pth", overrides=TINY))
    assert {"uniformer_small.test_a", "uniformer_small.test_b"} <= set(vf.list_pretrained("uniformer_small.*"))
    assert zoo.get_pretrained("uniformer_small").tag == "test_a"  # the default release
    m = vf.create_model("uniformer_small.test_a")  # a tag without pretrained: that architecture, untrained
    assert m.head.out_features == 7 and m.model_name == "uniformer_small" and m.pretrained_tag == "test_a"
    with pytest.raises(ValueError, match=r"unknown pretrained weights 'uniformer_small.nope'.*test_a"):
        vf.create_model("uniformer_small.nope")
    zoo._ZOO.pop("dualformer_tiny.test_none", None)
    for k in [k for k in zoo._ZOO if k.startswith("dualformer_tiny.")]:
        del zoo._ZOO[k]  # (restored by the fixture)
    with pytest.raises(ValueError, match="no released weights are catalogued for 'dualformer_tiny'"):
        vf.create_model("dualformer_tiny", pretrained=True)
    with pytest.raises(ValueError, match="either hf_repo"):
        Pretrained(model="x", tag="y")
    with pytest.raises(ValueError, match="registered twice"):
        register_pretrained(Pretrained(model="uniformer_small", tag="test_a", url="http://127.0.0.1:9/a.pth"))


def test_offline_url_without_cache_says_so(scratch_zoo, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    register_pretrained(Pretrained(model="uniformer_small", tag="test_off", url="http://127.0.0.1:9/x.pth"))
    with pytest.raises(OSError, match="not cached and downloads are off"):
        zoo.download(zoo.get_pretrained("uniformer_small", "test_off"))


def test_extract_and_predict_take_a_released_name(server, scratch_zoo, tmp_path, capsys):
    import json

    import numpy as np

    from videoformers.cli import main
    from videoformers.data.synthetic import index_frames, write_video

    data, _ = _authors_layout_bytes()
    server.files["/w/u.pth"] = data
    register_pretrained(Pretrained(
        model="uniformer_small", tag="test_cli", url=f"http://127.0.0.1:{server.server_address[1]}/w/u.pth",
        num_classes=3, overrides=TINY, preprocess={"num_frames": 4, "frame_interval": 2, "img_size": 32,
                                                   "short_side": 32}))
    video = tmp_path / "v.mp4"
    write_video(str(video), index_frames(20, 32, 48, seed=0), fps=10)
    assert main(["extract", str(video), "--model", "uniformer_small.test_cli", "--out", str(tmp_path / "f"),
                 "--no-progress"]) == 0
    meta = json.loads((tmp_path / "f" / "v.json").read_text())
    assert meta["model"]["tag"] == "test_cli" and meta["settings"]["frame_interval"] == 2
    assert np.load(tmp_path / "f" / "v.npy").shape[1] == 64
    assert main(["predict", str(video), "--model", "uniformer_small.test_cli", "--labels", str(_labels(tmp_path)),
                 "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["top"][0]["label"] in ("a", "b", "c")
    with pytest.raises(SystemExit, match="names no weights"):
        main(["predict", str(video), "--model", "uniformer_small"])


def _labels(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("a\nb\nc\n")
    return p


@pytest.mark.parametrize("name", vf.list_pretrained())
def test_catalogue_entry_is_consistent(name):
    """Every catalogued release names a registered model that builds (on meta) with its overrides and
    classes, a label map of as many names, a well-formed host, preprocessing the predict pipeline takes,
    and the source of its facts."""
    from videoformers.labels import get_labels
    from videoformers.tools.predict import Preprocess

    p = zoo.get_pretrained(*zoo.split_name(name))
    assert p.model in vf.list_models() and p.source and p.verified
    m = vf.build_on_meta(lambda: vf.create_model(name))
    if p.num_classes is not None:
        assert m.num_classes == p.num_classes
    if p.labels:
        assert len(get_labels(p.labels)) == p.num_classes
    if p.url:
        assert p.url.startswith("https://") and p.url.split("?")[0].rsplit("/", 1)[1]
    else:
        assert p.hf_repo.count("/") == 1 and p.filename
    assert set(p.preprocess) <= set(Preprocess.__dataclass_fields__)
    if p.sha256:
        assert len(p.sha256) == 64
    # the PretrainedCfg fields the issue lists, and that they agree with the host and the model
    assert p.layout in Pretrained.LAYOUTS and p.license and p.paper
    assert p.urls[0].startswith("https://") and all(u.startswith("https://") for u in p.urls)
    assert ("download.openmmlab.com" in p.urls[0]) == (p.layout == "mmaction2" and "openmmlab" in p.urls[0])
    assert p.file_size is None or p.file_size > 1_000_000
    assert (p.hf_hub_id, p.hf_filename) == ((p.hf_repo, p.filename) if p.hf_repo else (None, None))
    if p.init == "image":  # an image encoder: no classes of its own, a model that starts from one
        assert p.num_classes is None and p.labels is None and hasattr(m, "load_image_pretrained")
    card = m.model_card
    assert p.img_size == card.input_size[-1]
    if card.is_video and p.init is None:
        pipe = p.test_pipeline
        assert pipe.num_frames == card.input_size[1] == p.num_frames and pipe.img_size == p.img_size
        assert p.test_views == (pipe.num_clips, pipe.num_crops) and p.test_short_side >= p.img_size
        assert p.sampling in ("dense", "uniform", "sparse") and p.frame_interval >= 1
        assert len(p.mean) == len(p.std) == 3


def test_file_name_hash_cut_transfers_mirror_and_pretrained_forms(server, scratch_zoo, tmp_path, monkeypatch):
    data, ref = _authors_layout_bytes()
    digest = hashlib.sha256(data).hexdigest()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    good = f"/mm/uniformer_tiny_20221219-{digest[:8]}.pth"  # MMAction2-style name: the prefix is checked
    server.files[good] = data
    server.files["/mm/uniformer_tiny_20221219-deadbeef.pth"] = data
    # a hash prefix in the file name that does not match: error naming both hashes, no file kept
    with pytest.raises(OSError, match=r"SHA-256 .* expected deadbeef"):
        vf.create_model("uniformer_small", pretrained=base + "/mm/uniformer_tiny_20221219-deadbeef.pth", num_classes=3,
                        **TINY)
    assert not [p for p in (tmp_path / "cache").rglob("*deadbeef*") if p.suffix != ".lock"]
    # a transfer cut half-way: error, nothing left that passes as done; the next call succeeds
    server.cut.add(good)
    with pytest.raises(OSError, match="transfer stopped"):
        vf.create_model("uniformer_small", pretrained=base + good, num_classes=3, **TINY)
    assert not list((tmp_path / "cache").rglob("*.pth"))
    m = vf.create_model("uniformer_small", pretrained=base + good, num_classes=3, **TINY).eval()
    # the downloaded authors'-layout file gives the outputs of the same state dict loaded directly
    direct = vf.create_model("uniformer_small", num_classes=3, **TINY).eval()
    direct.load_state_dict(ref)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(x), direct(x), rtol=0, atol=0)
    # a catalogue entry fetched from a mirror as <base>/<file name>; a tag given as pretrained=
    register_pretrained(Pretrained(model="uniformer_small", tag="test_mirror", url="https://example.invalid/x/u.pth",
                                   num_classes=3, overrides=TINY))
    server.files["/mirror/u.pth"] = data
    monkeypatch.setenv("VIDEOFORMERS_MIRROR", base + "/mirror")
    m2 = vf.create_model("uniformer_small", pretrained="test_mirror")
    assert m2.pretrained_tag == "test_mirror" and any("GET /mirror/u.pth" in h for h in server.hits)
    # hf-hub:<repo>/<file> through the mirror as well (air-gapped: every file by its name)
    server.files["/mirror/v.pth"] = data
    vf.create_model("uniformer_small", pretrained="hf-hub:someone/repo/v.pth", num_classes=3, **TINY)
    # offline: the cached files are enough, a missing one is named
    monkeypatch.setenv("VIDEOFORMERS_OFFLINE", "1")
    n = len(server.hits)
    vf.create_model("uniformer_small", pretrained="test_mirror")
    assert len(server.hits) == n
    with pytest.raises(OSError, match="offline mode"):
        vf.create_model("uniformer_small", pretrained=base + "/mm/other-12345678.pth", num_classes=3, **TINY)


def test_cli_download_and_models_pretrained(server, scratch_zoo, capsys):
    from videoformers.cli import main

    data, _ = _authors_layout_bytes()
    server.files["/d/u.pth"] = data
    register_pretrained(Pretrained(model="uniformer_small", tag="test_dl", url=f"http://127.0.0.1:{server.server_address[1]}/d/u.pth",
                                   num_classes=3, overrides=TINY, metrics={"top1": 1.5}))
    assert main(["download", "uniformer_small.test_dl", "--no-progress"]) == 0
    assert "uniformer_small.test_dl:" in capsys.readouterr().out
    assert main(["models", "--pretrained", "uniformer_small"]) == 0
    out = capsys.readouterr().out
    assert "uniformer_small.test_dl" in out and "uniformer_small.k400_16x8 *" in out
    assert main(["download", "uniformer_small.nope"]) == 2  # a clear error, not a traceback


def test_docs_model_zoo_is_the_catalogue():
    from videoformers.tools.models_cmd import zoo_markdown

    doc = (Path(__file__).parents[1] / "docs" / "model_zoo.md").read_text()
    assert doc == zoo_markdown(), "docs/model_zoo.md is stale: videoformers models --pretrained --markdown > docs/model_zoo.md"


FAMILY_TINY = {
    "uniformer_small": TINY,
    "uniformer_xxs": dict(depth=(1, 1, 2, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_frames=4, img_size=64),
    "uniformerv2_b16": dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_frames=4,
                            global_layers=2),
    "vit_base_patch16_224": dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2),
    "vivit_base_factorised_encoder": dict(num_frames=4, img_size=32, tubelet_size=(2, 8, 8), embed_dim=32, depth=2,
                                          num_heads=2, mlp_dim=64, temporal_depth=1),
    "dualformer_tiny": dict(num_frames=4, img_size=64, embed_dim=16, depth=(2, 2, 2, 2), num_heads=1),
}


@pytest.mark.parametrize("name", sorted(FAMILY_TINY))
def test_save_pretrained_round_trip(name, tmp_path):
    torch.manual_seed(0)
    m = vf.create_model(name, num_classes=5, **FAMILY_TINY[name]).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # no zero-initialised parts hiding a mistake
    m.label_names = [f"c{i}" for i in range(5)]
    vf.save_pretrained(m, tmp_path / "saved")
    back = vf.from_pretrained(tmp_path / "saved")
    x = torch.randn(2, *m.model_card.input_size)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x), rtol=0, atol=0)
    assert back.label_names == m.label_names and back.model_name == name


def test_converted_file_brings_its_overrides(tmp_path):
    from videoformers.tools.convert import convert_checkpoint

    m = vf.create_model("uniformer_small", num_classes=3, **TINY).eval()
    torch.save(m.state_dict(), tmp_path / "m.pth")
    convert_checkpoint(tmp_path / "m.pth", tmp_path / "m.safetensors", "uniformer_small", labels=["a", "b", "c"],
                       num_classes=3, **TINY)
    back = vf.create_model("uniformer_small", pretrained=str(tmp_path / "m.safetensors"))  # no overrides repeated
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x), rtol=0, atol=0)
    assert back.label_names == ["a", "b", "c"]


def test_from_hub_repo(server, scratch_zoo, tmp_path, monkeypatch):
    m = vf.create_model("uniformer_small", num_classes=3, **TINY).eval()
    vf.save_pretrained(m, tmp_path / "s")
    for f in ("config.json", "model.safetensors"):
        server.files[f"/org/mine/resolve/main/{f}"] = (tmp_path / "s" / f).read_bytes()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    back = vf.from_pretrained("hf-hub:org/mine")
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x), rtol=0, atol=0)


def test_fine_tuning_from_a_release_reinitialises_and_names_the_head(server, scratch_zoo):
    data, ref = _authors_layout_bytes(num_classes=3)
    server.files["/f/u.pth"] = data
    register_pretrained(Pretrained(model="uniformer_small", tag="test_ft", url=f"http://127.0.0.1:{server.server_address[1]}/f/u.pth",
                                   num_classes=3, overrides=TINY))
    with pytest.warns(UserWarning, match=r"3-class classifier left out for num_classes=7; re-initialised: head.bias, head.weight"):
        m = vf.create_model("uniformer_small.test_ft", pretrained=True, num_classes=7)
    assert m.head.out_features == 7 and m.label_names is None
    sd = m.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ref.items() if not k.startswith("head."))


def test_training_config_takes_a_release_name(server, scratch_zoo):
    from videoformers.engine.config import Config
    from videoformers.engine.trainer import build_model

    data, ref = _authors_layout_bytes(num_classes=3)
    server.files["/t/u.pth"] = data
    register_pretrained(Pretrained(model="uniformer_small", tag="test_train",
                                   url=f"http://127.0.0.1:{server.server_address[1]}/t/u.pth", num_classes=3, overrides=TINY))
    cfg = Config()
    cfg.model.name = "uniformer_small"
    cfg.model.overrides = dict(TINY)
    cfg.model.pretrained = "uniformer_small.test_train"
    model = build_model(cfg, num_classes=5)  # fine-tuning: the 3-class head is dropped and reported
    assert model.head.out_features == 5 and "head.weight" in str(model.pretrained_report)
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ref.items() if not k.startswith("head."))


def test_hub_vivit_safetensors_in_the_hf_layout(server, scratch_zoo, monkeypatch):
    """A ViViT file laid out as on the Hub (HF ``VivitForVideoClassification`` safetensors, 4.x names)
    served as a Hub repo: loaded by name, the logits equal transformers' own model's."""
    pytest.importorskip("transformers")
    from safetensors.torch import save

    from test_vivit_hf import SMALL, _hf_model, _to_v4_names

    hf, sd = _hf_model(num_labels=5)
    blob = save({k: v.contiguous() for k, v in _to_v4_names(sd).items()})
    server.files["/google/vivit-test/resolve/main/model.safetensors"] = blob
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    register_pretrained(Pretrained(model="vivit_base_spatiotemporal", tag="test_hf", hf_repo="google/vivit-test",
                                   filename="model.safetensors", sha256=hashlib.sha256(blob).hexdigest(),
                                   num_classes=5, overrides=SMALL))
    ours = vf.create_model("vivit_base_spatiotemporal.test_hf", pretrained=True).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        ref = hf(pixel_values=x.permute(0, 2, 1, 3, 4)).logits
        out = ours(x)
    assert out.abs().max() > 0.1 and (out - ref).abs().max().item() < 1e-5


def test_interrupted_download_resumes_with_a_range_request(server, scratch_zoo, tmp_path):
    """A cut transfer keeps its bytes in ``<file>.partial``; the next call asks only for the rest
    (``Range``), and a host that ignores ``Range`` (200, whole file) replaces the partial file."""
    data = bytes(range(256)) * 4000
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.files["/r/w.bin"] = data
    dest = tmp_path / "dl" / "w.bin"
    server.cut.add("/r/w.bin")
    with pytest.raises(OSError, match="next call resumes"):
        zoo.download_url(base + "/r/w.bin", dest, progress=False)
    part = dest.with_name("w.bin.partial")
    assert not dest.exists() and 0 < part.stat().st_size < len(data)
    have = part.stat().st_size
    assert zoo.download_url(base + "/r/w.bin", dest, sha256=hashlib.sha256(data).hexdigest(), progress=False) == dest
    assert dest.read_bytes() == data and not part.exists()
    assert server.hits[-1] == f"GET /r/w.bin Range:bytes={have}-"
    # a host without Range support: the whole file again, not appended to the partial one
    server.ranges = False
    dest2 = tmp_path / "dl" / "w2.bin"
    server.files["/r/w2.bin"] = data
    server.cut.add("/r/w2.bin")
    with pytest.raises(OSError):
        zoo.download_url(base + "/r/w2.bin", dest2, progress=False)
    assert zoo.download_url(base + "/r/w2.bin", dest2, progress=False).read_bytes() == data
    # a partial file that already holds everything (416 to the Range request) is completed, not refetched
    server.ranges = True
    dest3 = tmp_path / "dl" / "w3.bin"
    dest3.with_name("w3.bin.partial").write_bytes(data)
    server.files["/r/w3.bin"] = data
    assert zoo.download_url(base + "/r/w3.bin", dest3, size=len(data), progress=False).read_bytes() == data


def test_html_answer_wrong_size_and_mirror_fallback(server, scratch_zoo, tmp_path):
    """A web page instead of the file (Google Drive's quota or virus-scan page) is refused and not kept;
    a file whose size is not the catalogue's is deleted; a dead primary URL falls back to the mirrors."""
    data, ref = _authors_layout_bytes()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.files["/drive/download"] = b"<!DOCTYPE html><html>Google Drive - Quota exceeded</html>"
    server.types["/drive/download"] = "text/html; charset=utf-8"
    register_pretrained(Pretrained(model="uniformer_small", tag="test_html", url=base + "/drive/download?id=1x&confirm=t",
                                   filename="u_drive.pth", num_classes=3, overrides=TINY))
    with pytest.raises(OSError, match=r"web page \(text/html\)"):
        vf.create_model("uniformer_small.test_html", pretrained=True)
    assert not [p for p in (tmp_path / "cache").rglob("u_drive*") if p.suffix != ".lock"]
    server.files["/s/u.pth"] = data
    register_pretrained(Pretrained(model="uniformer_small", tag="test_size", url=base + "/s/u.pth",
                                   file_size=len(data) + 1, num_classes=3, overrides=TINY))
    with pytest.raises(OSError, match="catalogue says"):
        vf.create_model("uniformer_small.test_size", pretrained=True)
    assert not (tmp_path / "cache" / "uniformer_small" / "u.pth").exists()
    server.files["/mirror2/u_m.pth"] = data
    register_pretrained(Pretrained(model="uniformer_small", tag="test_mirrors", url=base + "/gone/u_m.pth",
                                   mirrors=(base + "/mirror2/u_m.pth",), file_size=len(data), num_classes=3,
                                   overrides=TINY))
    assert zoo.get_pretrained_cfg("uniformer_small.test_mirrors").urls == (base + "/gone/u_m.pth", base + "/mirror2/u_m.pth")
    m = vf.create_model("uniformer_small.test_mirrors", pretrained=True)
    assert all(torch.equal(m.state_dict()[k], v) for k, v in ref.items())
    assert "GET /gone/u_m.pth" in server.hits and "GET /mirror2/u_m.pth" in server.hits


def test_concurrent_downloads_of_one_file_wait_for_each_other(server, scratch_zoo, tmp_path):
    """Ranks of one job fetching the same file: one transfer, every caller gets the complete file."""
    data = bytes(range(256)) * 20000
    server.files["/c/f.bin"] = data
    url = f"http://127.0.0.1:{server.server_address[1]}/c/f.bin"
    dest = tmp_path / "dl" / "f.bin"
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(zoo.download_url(url, dest, progress=False)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and dest.read_bytes() == data
    assert sum(h.startswith("GET /c/f.bin") for h in server.hits) == 1


UV2_TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, global_layers=2)


def test_kinetics710_release_fine_tuned_to_k400_keeps_the_head_rows(server, scratch_zoo):
    """A 710-class release loaded for 400 classes keeps the head rows of the K400 classes (UniFormerV2
    App. F) -- the logits are the 710-way model's at those rows -- and names the K400 classes."""
    from videoformers.checkpoints.k710 import k710_index_map
    from videoformers.labels import get_labels

    torch.manual_seed(0)
    full = vf.create_model("uniformerv2_b16", num_classes=710, **UV2_TINY).eval()
    with torch.no_grad():
        for p in full.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # zero-initialised video modules must matter too
    buf = io.BytesIO()
    torch.save({"state_dict": full.state_dict()}, buf)
    server.files["/k710/u.pth"] = buf.getvalue()
    register_pretrained(Pretrained(model="uniformerv2_b16", tag="test_k710", num_classes=710, labels="kinetics710",
                                   url=f"http://127.0.0.1:{server.server_address[1]}/k710/u.pth", overrides=UV2_TINY))
    m = vf.create_model("uniformerv2_b16.test_k710", pretrained=True, num_classes=400).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(x), full(x)[:, k710_index_map(400)], rtol=0, atol=1e-6)
    assert m.label_names == get_labels("kinetics400")
    # the 710-way model itself keeps the K710 names
    assert vf.create_model("uniformerv2_b16.test_k710", pretrained=True).label_names == get_labels("kinetics710")


def test_clip_image_encoder_release_starts_a_video_model(server, scratch_zoo):
    """An ``init="image"`` release (MMAction2's CLIP visual encoder: OpenAI names without ``visual.``)
    initialises the image-ViT part through ``load_image_pretrained``; the video modules keep their init."""
    transformers = pytest.importorskip("transformers")
    from test_vit import _openai_layout  # noqa: PLC0415 (an independent key writer)

    hf = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, patch_size=8,
        image_size=32, hidden_act="quick_gelu", projection_dim=48))
    visual = {k.removeprefix("visual."): v for k, v in _openai_layout(hf.state_dict()).items() if k.startswith("visual.")}
    buf = io.BytesIO()
    torch.save(visual, buf)
    server.files["/clip/vit-tiny_clip-rgb.pth"] = buf.getvalue()
    register_pretrained(Pretrained(model="uniformerv2_b16", tag="test_clip", layout="mmaction2", init="image",
                                   url=f"http://127.0.0.1:{server.server_address[1]}/clip/vit-tiny_clip-rgb.pth",
                                   overrides=UV2_TINY))
    m = vf.create_model("uniformerv2_b16.test_clip", pretrained=True, num_classes=5)
    assert m.num_classes == 5 and m.label_names is None
    torch.testing.assert_close(m.patch_embed.proj.weight[:, :, m.patch_embed.proj.weight.shape[2] // 2],
                               visual["conv1.weight"])
    report = m.pretrained_report
    assert not report.unexpected and not report.mismatched and report.missing
    assert not any(t.is_meta for t in m.parameters())  # the video modules were initialised, not left on meta


def test_reorder_classes_moves_head_rows_with_their_names():
    """UniFormer's K400 head is in the authors' class order; reordering to MMAction2's alphabetical order
    moves every logit with its name (and refuses a target that is not the same set of classes)."""
    from videoformers.labels import get_labels

    torch.manual_seed(0)
    m = vf.create_model("uniformer_small", num_classes=400, **{k: v for k, v in TINY.items()}).eval()
    m.label_names = get_labels("kinetics400_uniformer")
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        before = m(x)[0]
        vf.reorder_classes(m, "kinetics400")
        after = m(x)[0]
    authors, alpha = get_labels("kinetics400_uniformer"), get_labels("kinetics400")
    assert authors != alpha and m.label_names == alpha
    for j in (0, 1, 137, 399):
        assert after[j] == before[authors.index(alpha[j])]
    with pytest.raises(ValueError, match="cannot reorder 400 classes to 600"):
        vf.reorder_classes(m, "kinetics600")
