"""``videoformers predict`` end to end: generated videos, a tiny converted checkpoint, JSON output."""

import json
import os

import numpy as np
import pytest
import torch

import videoformers as vf
from videoformers.cli import main
from videoformers.data.synthetic import TEMPORAL_CLASSES, render_clip, write_video
from videoformers.tools.convert import convert_checkpoint, load_converted
from videoformers.tools.predict import find_videos, load_views, parse_views, predict_files, preprocess_for

TINY = dict(depth=(1, 1, 1, 1), embed_dim=(16, 32, 64, 64), head_dim=16, num_classes=6, num_frames=4, img_size=64)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    vids = d / "videos"
    for i in range(3):
        frames = render_clip("temporal", i, [7, i], size=64, num_frames=16)
        write_video(str(vids / "sub" / f"clip{i}.mp4") if i == 2 else str(vids / f"clip{i}.mp4"), frames, fps=12)
    (vids / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(200))  # an mp4 header, then junk
    (vids / "notes.txt").write_text("not a video")  # ignored when searching a folder
    frames_dir = d / "frames" / "clip3"
    frames_dir.mkdir(parents=True)
    from PIL import Image

    for t, f in enumerate(render_clip("temporal", 3, [7, 3], size=64, num_frames=12)):
        Image.fromarray(f).save(frames_dir / f"img_{t + 1:05d}.png")
    torch.manual_seed(0)
    model = vf.create_model("uniformer_small", **TINY)
    with torch.no_grad():  # a non-trivial head so that the ranking is not a tie
        model.head.weight.normal_(0, 1.0)
    torch.save({"state_dict": model.state_dict()}, d / "tiny.pth")
    labels = d / "classes.txt"
    labels.write_text("\n".join(TEMPORAL_CLASSES) + "\n")
    ckpt = d / "tiny.safetensors"
    convert_checkpoint(d / "tiny.pth", ckpt, "uniformer_small", labels=str(labels),
                       preprocess={"frame_interval": 3}, **TINY)
    return d


def test_cli_json_end_to_end(workdir, capsys):
    vids = workdir / "videos"
    rc = main(["predict", str(vids), str(workdir / "frames" / "clip3"), str(workdir / "missing.mp4"),
               "--checkpoint", str(workdir / "tiny.safetensors"), "--topk", "3", "--json"])
    out, err = capsys.readouterr()
    results = json.loads(out)  # stdout is pure JSON: the progress bar is on stderr
    assert "predict" in err
    assert rc == 1  # some inputs failed
    paths = [r["path"] for r in results]
    assert paths == [str(vids / "broken.mp4"), str(vids / "clip0.mp4"), str(vids / "clip1.mp4"),
                     str(vids / "sub" / "clip2.mp4"), str(workdir / "frames" / "clip3"), str(workdir / "missing.mp4")]
    errors = {r["path"]: r["error"] for r in results if "error" in r}
    assert set(errors) == {str(vids / "broken.mp4"), str(workdir / "missing.mp4")}
    assert "not found" in errors[str(workdir / "missing.mp4")]
    good = [r for r in results if "top" in r]
    assert len(good) == 4
    for r in good:
        top = r["top"]
        assert len(top) == 3
        probs = [t["prob"] for t in top]
        assert probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-6
        assert all(t["label"] == TEMPORAL_CLASSES[t["index"]] for t in top)  # names from the label map
        assert len({t["index"] for t in top}) == 3


def test_matches_manual_pipeline(workdir):
    """Probabilities equal the model's softmax on views cut by hand with the recorded preprocessing."""
    model = load_converted(workdir / "tiny.safetensors")
    pre = preprocess_for(model)
    assert (pre.num_frames, pre.img_size, pre.frame_interval, pre.sampling) == (4, 64, 3, "dense")
    path = str(workdir / "videos" / "clip1.mp4")
    (res,) = predict_files([path], model, topk=6, progress=False)
    from videoformers.data import read_frames

    idx = [3 + 3 * k for k in range(4)]  # 16 frames, 4 at stride 3 span 10: centred start (16 - 10) // 2
    frames = read_frames(path, idx).permute(3, 0, 1, 2).float() / 255  # (C, T, H, W), already 64x64
    x = ((frames - 0.45) / 0.225)[None]
    with torch.no_grad():
        ref = model(x).softmax(-1)[0]
    got = torch.zeros(6)
    for t in res["top"]:
        got[t["index"]] = t["prob"]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    assert abs(sum(t["prob"] for t in res["top"]) - 1) < 1e-5  # topk = all classes


def test_views_and_batching(workdir):
    model = load_converted(workdir / "tiny.safetensors")
    files = [str(workdir / "videos" / "clip0.mp4"), str(workdir / "videos" / "clip1.mp4")]
    one = predict_files(files, model, views="2x3", batch_size=1, progress=False)
    many = predict_files(files, model, views="2x3", batch_size=64, progress=False)
    for a, b in zip(one, many):
        assert [t["index"] for t in a["top"]] == [t["index"] for t in b["top"]]
        np.testing.assert_allclose([t["prob"] for t in a["top"]], [t["prob"] for t in b["top"]], atol=1e-5)
    pre = preprocess_for(model, num_clips=2, num_crops=3)
    views, pixels = load_views(files[0], pre)
    assert views.shape == (6, 3, 4, 64, 64) and pixels.dtype == torch.uint8
    single = predict_files(files[:1], model, views="1x1", progress=False)[0]
    assert single["top"] != one[0]["top"]  # multi-view averaging changes the numbers


def test_metadata_normalisation_is_used(workdir, tmp_path):
    dst = tmp_path / "other_norm.safetensors"
    convert_checkpoint(workdir / "tiny.safetensors", dst, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = load_converted(dst)
    pre = preprocess_for(model)
    assert pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.5, 0.5, 0.5)
    path = str(workdir / "videos" / "clip0.mp4")
    a = predict_files([path], load_converted(workdir / "tiny.safetensors"), topk=6, progress=False)[0]
    b = predict_files([path], model, topk=6, progress=False)[0]
    assert {t["index"]: t["prob"] for t in a["top"]} != pytest.approx({t["index"]: t["prob"] for t in b["top"]})


def test_labels_override_and_mismatch(workdir):
    model = load_converted(workdir / "tiny.safetensors")
    path = [str(workdir / "videos" / "clip0.mp4")]
    res = predict_files(path, model, labels=list("abcdef"), topk=2, progress=False)[0]
    assert all(t["label"] == "abcdef"[t["index"]] for t in res["top"])
    with pytest.raises(ValueError, match="6 classes"):
        predict_files(path, model, labels="hmdb51", progress=False)


def test_find_videos_and_views_parsing(workdir):
    found = find_videos([workdir / "videos"])
    assert [os.path.basename(p) for p in found] == ["broken.mp4", "clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert parse_views("4x3") == (4, 3) and parse_views("4 x 1") == (4, 1) and parse_views("2") == (2, 1)
    with pytest.raises(ValueError):
        parse_views("4x2")


def test_family_sampling_defaults():
    assert preprocess_for("uniformerv2_b16").sampling == "sparse"
    v = preprocess_for("vivit_base_factorised_encoder")
    assert (v.num_frames, v.frame_interval, v.short_side, v.mean) == (32, 2, 256, (0.5, 0.5, 0.5))
    assert preprocess_for("uniformer_small").frame_interval == 4
    with pytest.raises(ValueError, match="image model"):
        preprocess_for("uniformer_small_image")


def test_predict_and_eval_combine_views_the_same_way(workdir):
    """predict's probabilities over 2x3 views are the softmax of eval's averaged logits (its default), and
    ``average="probs"`` is eval's ``view_average=probs``: one rule, so the two never disagree."""
    from videoformers.engine.evaluator import predict_views

    model = load_converted(workdir / "tiny.safetensors").eval()
    path = str(workdir / "videos" / "clip0.mp4")
    pre = preprocess_for(model, num_clips=2, num_crops=3)
    views, _ = load_views(path, pre)
    for how in ("logits", "probs"):
        (res,) = predict_files([path], model, topk=6, preprocess=pre, average=how, progress=False)
        got = torch.zeros(6)
        for t in res["top"]:
            got[t["index"]] = t["prob"]
        with torch.no_grad():
            scores = predict_views(model, views[None], how)[0]
        ref = scores.softmax(-1) if how == "logits" else scores
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_predict_uses_the_recorded_views_and_the_command_line_sizes(workdir, tmp_path, capsys):
    """The views a checkpoint records are what predict runs (and what ``-v`` prints); ``--views``,
    ``--num-frames`` and ``--img-size`` change the preprocessing, not only the model."""
    dst = tmp_path / "views.safetensors"
    convert_checkpoint(workdir / "tiny.safetensors", dst, preprocess={"num_clips": 2, "num_crops": 3})
    path = str(workdir / "videos" / "clip0.mp4")
    assert main(["predict", path, "--checkpoint", str(dst), "--json", "--no-progress", "-v"]) == 0
    err = capsys.readouterr().err
    used = json.loads(err.split("preprocessing: ", 1)[1].splitlines()[0])
    assert (used["num_clips"], used["num_crops"]) == (2, 3)
    assert main(["predict", path, "--checkpoint", str(dst), "--json", "--no-progress", "-v", "--views", "1x1",
                 "--num-frames", "8", "--img-size", "32"]) == 0
    used = json.loads(capsys.readouterr().err.split("preprocessing: ", 1)[1].splitlines()[0])
    assert (used["num_clips"], used["num_crops"], used["num_frames"], used["img_size"]) == (1, 1, 8, 32)
