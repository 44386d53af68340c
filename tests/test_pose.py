"""Top-down pose estimation (UniFormer TPAMI Sec. 6.5, Table 10): head, heatmaps, geometry, data, OKS AP,
params/FLOPs against the paper, the engine task end to end and the ``videoformers pose`` tool."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from videoformers import create_model
from videoformers.analysis import build_on_meta, count_flops, count_params
from videoformers.data.keypoints import (
    COCO_FLIP_PAIRS, CocoKeypoints, affine_matrix, affine_points, box_to_center_size, decode_heatmaps,
    encode_heatmaps, flip_back, flip_joints, heatmap_to_image, invert_affine, make_stick_figures,
)
from videoformers.engine.tasks_pose import coco_keypoint_eval, joints_mse_loss

TINY = dict(backbone_overrides=dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 128], head_dim=16),
            deconv_channels=16)


@pytest.fixture(scope="module")
def stick(tmp_path_factory):
    root = tmp_path_factory.mktemp("stick")
    return make_stick_figures(root, n_train=12, n_val=6, size=64, seed=1)


# --------------------------------------------------------------------------- model
def test_head_output_shape_and_input_check():
    m = create_model("uniformer_small_pose", img_size=(64, 32), **TINY).eval()
    out = m(torch.randn(2, 3, 64, 32))
    assert out.shape == (2, 17, 16, 8)  # heatmaps at 1/4 of the crop
    assert m.model_card.task == "pose" and m.model_card.input_size == (3, 64, 32)
    from videoformers import list_models

    assert list_models(task="pose") == ["uniformer_base_pose", "uniformer_small_pose"]
    head = m.head.deconv_layers
    convs = [l for l in head if isinstance(l, torch.nn.ConvTranspose2d)]
    assert len(convs) == 3 and all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    with pytest.raises(ValueError, match="multiples of 32"):
        m(torch.randn(1, 3, 60, 32))
    with pytest.raises(ValueError, match="multiples of 32"):
        create_model("uniformer_small_pose", img_size=(250, 192), **TINY)


# Table 10 (params M, GFLOPs per input size); our counter includes the attention matmuls the authors added by
# hand to mmpose's counter (Sense-X/UniFormer#50).
@pytest.mark.parametrize("name,params,flops", [
    ("uniformer_small_pose", 25.2, {(256, 192): 4.7, (384, 288): 11.1, (448, 320): 14.8}),
    ("uniformer_base_pose", 53.5, {(256, 192): 9.2, (384, 288): 22.1, (448, 320): 29.6}),
])
def test_params_flops_match_table10(name, params, flops):
    m = build_on_meta(lambda: create_model(name))  # one network for all sizes: only the input differs
    assert count_params(m) / 1e6 == pytest.approx(params, rel=0.02)
    for hw, g in flops.items():
        assert count_flops(m, (1, 3) + hw) == pytest.approx(g, rel=0.05)


# --------------------------------------------------------------------------- heatmaps
def _gauss(w, h, x, y, sigma=2.0):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def test_decode_recovers_subpixel_peak_within_quarter_pixel():
    rng = np.random.default_rng(0)
    w, h = 48, 64
    pts = rng.uniform([2.5, 2.5], [w - 3.5, h - 3.5], size=(200, 2))
    hm = np.stack([_gauss(w, h, x, y) for x, y in pts])[None]
    coords, scores = decode_heatmaps(hm)
    err = np.abs(coords[0] - pts)
    assert err.max() <= 0.25 + 1e-6
    assert (scores > 0.5).all()
    # The quarter step matters: plain argmax is off by up to half a pixel.
    assert np.abs(np.round(pts) - pts).max() > 0.4


def test_msra_encode_decode_round_trip():
    rng = np.random.default_rng(1)
    input_size, hm_size = (192, 256), (48, 64)
    joints = rng.uniform([12, 12], [180, 244], size=(17, 2)).astype(np.float32)
    target, weight = encode_heatmaps(joints, np.ones(17), input_size, hm_size, sigma=2)
    assert target.shape == (17, 64, 48) and (weight == 1).all()
    assert np.allclose(target.max(axis=(1, 2)), 1.0)
    coords, _ = decode_heatmaps(target[None])
    # The plain target is centred on the rounded grid point: decoding returns exactly that point ...
    assert np.array_equal(coords[0], np.floor(joints / 4 + 0.5))
    # ... so the round trip is within half a heatmap pixel (2 input pixels) of the joint.
    assert np.abs(coords[0] * 4 - joints).max() <= 2.0 + 1e-5


def test_target_weights_zero_for_invisible_and_out_of_crop():
    joints = np.array([[50, 60], [-40, 50], [100, 500], [-3, 50], [10, 10]], dtype=np.float32)
    vis = np.array([1, 1, 1, 1, 0])
    target, weight = encode_heatmaps(joints, vis, (192, 256), (48, 64), sigma=2)
    assert weight[:, 0].tolist() == [1, 0, 0, 1, 0]  # a joint just left of the crop keeps its clipped Gaussian
    assert target[1].max() == 0 and target[2].max() == 0 and target[4].max() == 0
    assert target[3].max() > 0


def test_joints_mse_loss_matches_per_joint_definition():
    g = torch.Generator().manual_seed(0)
    out, tgt = torch.randn(3, 5, 8, 6, generator=g), torch.randn(3, 5, 8, 6, generator=g)
    w = (torch.rand(3, 5, 1, generator=g) > 0.3).float()
    ref = sum(torch.nn.functional.mse_loss(out[:, k] * w[:, k, :, None], tgt[:, k] * w[:, k, :, None])
              for k in range(5)) / 5
    assert torch.allclose(joints_mse_loss(out, tgt, w), ref)
    assert joints_mse_loss(out, out, w) == 0


# --------------------------------------------------------------------------- geometry
def test_affine_crop_and_back_projection_identities():
    import cv2

    c, s = box_to_center_size((30, 40, 60, 100), 192 / 256)
    assert np.allclose(c, [60, 90]) and np.allclose(s, [75 * 1.25, 100 * 1.25])
    for rot in (0.0, 30.0, -75.0):
        m = affine_matrix(c, s, rot, (192, 256))
        assert np.allclose(affine_points(c, m), [96, 128])  # the box center goes to the crop center
        mi = invert_affine(m)
        p = np.random.default_rng(2).uniform(0, 200, size=(10, 2))
        assert np.allclose(affine_points(affine_points(p, m), mi), p)
        # heatmap_to_image inverts image -> crop -> heatmap (stride 4)
        hm = affine_points(p, m)[None] / 4
        assert np.allclose(heatmap_to_image(hm, c[None], s[None], np.array([rot]), (192, 256), (48, 64))[0], p)
    # mmpose's get_affine_transform: three point pairs (center, a point half a box width "up" rotated by
    # the angle, the point perpendicular to both) through cv2.getAffineTransform.
    for rot in (0.0, 90.0, 33.0):
        t = np.radians(rot)
        d_src = np.array([0.5 * s[0] * np.sin(t), -0.5 * s[0] * np.cos(t)])
        src = np.stack([c, c + d_src, c + d_src + np.array([d_src[1], -d_src[0]])]).astype(np.float32)
        d_dst = np.array([0.0, -96.0])
        o = np.array([96.0, 128.0])
        dst = np.stack([o, o + d_dst, o + d_dst + np.array([d_dst[1], -d_dst[0]])]).astype(np.float32)
        assert np.allclose(affine_matrix(c, s, rot, (192, 256)), cv2.getAffineTransform(src, dst), atol=1e-4)
    # cv2.warpAffine with the matrix puts a pixel where affine_points says.
    img = np.zeros((200, 150, 3), np.uint8)
    img[70, 50] = 255
    crop = cv2.warpAffine(img, affine_matrix((75, 100), (150, 200), 0, (75, 100)), (75, 100), flags=cv2.INTER_LINEAR)
    assert np.unravel_index(crop[..., 0].argmax(), crop.shape[:2]) == (35, 25)


def test_flip_test_symmetric_case():
    input_size, hm_size = (96, 128), (24, 32)
    joints = np.array([[4 * u, 4 * v] for u, v in zip(range(3, 20), range(5, 22))], dtype=np.float32)
    vis = np.ones(17)
    tgt, _ = encode_heatmaps(joints, vis, input_size, hm_size, 2)
    fj, fv = flip_joints(joints, vis, input_size[0], COCO_FLIP_PAIRS)
    assert np.allclose(fj[1, 0], input_size[0] - 1 - joints[2, 0])  # left eye <- mirrored right eye
    ftgt, _ = encode_heatmaps(fj, fv, input_size, hm_size, 2)
    back = flip_back(torch.from_numpy(ftgt)[None], COCO_FLIP_PAIRS, shift=True)
    # The flipped crop's heatmaps, flipped back and shifted one pixel, peak where the original's do.
    c0, _ = decode_heatmaps(tgt[None])
    c1, _ = decode_heatmaps(back)
    avg, _ = decode_heatmaps((torch.from_numpy(tgt)[None] + back) / 2)
    assert np.array_equal(c0, c1) and np.array_equal(c0, avg)
    noshift, _ = decode_heatmaps(flip_back(torch.from_numpy(ftgt)[None], COCO_FLIP_PAIRS, shift=False))
    assert np.allclose(noshift[..., 0], c0[..., 0] - 1)  # without the shift it is one pixel off
    assert torch.equal(flip_back(flip_back(torch.from_numpy(tgt)[None], shift=False), shift=False),
                       torch.from_numpy(tgt)[None])


# --------------------------------------------------------------------------- data
def test_generated_dataset_loads_with_pycocotools(stick):
    from pycocotools.coco import COCO

    coco = COCO(str(stick["train_ann"]))
    assert len(coco.getImgIds()) == 12 and len(coco.getAnnIds()) >= 12
    cat = coco.loadCats(1)[0]
    assert len(cat["keypoints"]) == 17 and len(cat["skeleton"]) == 19
    for ann in coco.loadAnns(coco.getAnnIds()):
        kp = np.array(ann["keypoints"]).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        vis = kp[:, 2] > 0
        assert ann["num_keypoints"] == vis.sum() and ann["area"] == pytest.approx(w * h, rel=1e-3)
        assert (kp[vis, 0] >= x - 1e-3).all() and (kp[vis, 0] <= x + w + 1e-3).all()
        assert (kp[~vis, :2] == 0).all()
    ds = CocoKeypoints(stick["train_ann"], stick["root"] / "train2017", train=True, input_size=(32, 64),
                       heatmap_size=(8, 16))
    item = ds[0]
    assert item["img"].shape == (3, 64, 32) and item["target"].shape == (17, 16, 8)
    assert item["target_weight"].shape == (17, 1) and item["num_skipped"] == 0


def test_dataset_skips_crowd_unlabelled_and_broken(tmp_path, stick, caplog):
    ann = json.loads(stick["val_ann"].read_text())
    a0 = ann["annotations"][0]
    ann["annotations"].append({**a0, "id": 9001, "iscrowd": 1})
    ann["annotations"].append({**a0, "id": 9002, "num_keypoints": 0, "keypoints": [0] * 51})
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    for im in ann["images"]:
        (img_dir / im["file_name"]).write_bytes((stick["root"] / "val2017" / im["file_name"]).read_bytes())
    n_good = len(ann["annotations"]) - 2
    ds = CocoKeypoints(tmp_path / "ann.json", img_dir, input_size=(32, 64), heatmap_size=(8, 16))
    assert len(ds) == n_good
    broken = ds.samples[0]["file"]
    (img_dir / broken).write_bytes(b"not a jpeg")
    item = ds[0]
    assert item["num_skipped"] >= 1 and ds.samples[item["index"]]["file"] != broken
    assert ds.skip_stats()["files"] == [str(img_dir / broken)]
    with pytest.raises(ValueError, match="not found"):
        CocoKeypoints(tmp_path / "missing.json", img_dir)


def test_oks_ap_100_for_ground_truth_and_lower_when_perturbed(stick):
    from pycocotools.coco import COCO

    coco = COCO(str(stick["val_ann"]))
    anns = coco.loadAnns(coco.getAnnIds())
    exact = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0} for a in anns]
    assert coco_keypoint_eval(coco, exact)["AP"] == pytest.approx(100.0)
    rng = np.random.default_rng(0)
    noisy = []
    for r, a in zip(exact, anns):
        kp = np.array(r["keypoints"], dtype=float).reshape(17, 3)
        kp[:, :2] += rng.normal(0, 0.08 * np.sqrt(a["area"]), size=(17, 2))
        noisy.append({**r, "keypoints": kp.reshape(-1).tolist()})
    m = coco_keypoint_eval(coco, noisy)
    assert 0 < m["AP"] < 90
    assert coco_keypoint_eval(coco, [])["AP"] == 0.0


# --------------------------------------------------------------------------- engine and tool
def _demo_overrides(stick, out):
    return [f"data.root={stick['root']}", "train.epochs=1", f"train.output_dir={out}", "train.batch_size=4",
            "data.num_workers=0", "pose.input_size=[32,64]", "pose.heatmap_size=[8,16]", "pose.sigma=1.5",
            "train.tensorboard=false", "model.overrides.backbone_overrides.embed_dim=[16,32,64,128]",
            "model.overrides.backbone_overrides.head_dim=16", "model.overrides.deconv_channels=16"]


def test_pose_demo_through_the_engine_writes_ap(stick, tmp_path):
    from videoformers.engine.config import load_config
    from videoformers.engine.run import train

    out = tmp_path / "run"
    cfg = load_config("pose_demo", _demo_overrides(stick, out))
    train(cfg)
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["AP"] <= 100.0 and {"AP50", "AP75", "AR"} <= set(m)
    assert m["num_samples"] == len(CocoKeypoints(stick["val_ann"], stick["root"] / "val2017"))
    res = json.loads((out / "keypoints_results.json").read_text())
    assert len(res) == m["num_samples"] and len(res[0]["keypoints"]) == 51
    assert (out / "checkpoint_last.pth").is_file()


def test_pose_tool_writes_png_and_json(stick, tmp_path):
    import cv2

    from videoformers.cli import main

    img = sorted((stick["root"] / "val2017").glob("*.jpg"))[0]
    out, js = tmp_path / "pose.png", tmp_path / "pose.json"
    ov = ["--override", "backbone_overrides={depth: [1,1,1,1], embed_dim: [16,32,64,128], head_dim: 16}",
          "--override", "deconv_channels=16", "--override", "img_size=[64,32]"]
    rc = main(["pose", str(img), "--model", "uniformer_small_pose", *ov, "--boxes", "2,3,40,50;10,10,20,30",
               "--out", str(out), "--json", str(js)])
    assert rc == 0
    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape == cv2.imread(str(img)).shape
    people = json.loads(js.read_text())
    assert len(people) == 2 and np.array(people[0]["keypoints"]).shape == (17, 3)
    assert main(["pose", str(img), "--model", "uniformer_small_image", "--out", str(out)]) == 2  # not a pose model


def test_backbone_pretrained_loads_an_image_checkpoint(tmp_path):
    bo = TINY["backbone_overrides"]
    src = create_model("uniformer_small_image", **bo)
    torch.save(src.state_dict(), tmp_path / "in1k.pth")
    m = create_model("uniformer_small_pose", backbone_pretrained=str(tmp_path / "in1k.pth"), **TINY)
    ours, theirs = m.backbone.model.state_dict(), src.state_dict()
    shared = [k for k in ours if k in theirs]
    assert len(shared) >= len(ours) - 4  # all but the dense-task output norms (absent from ImageNet files)
    assert all(torch.equal(ours[k], theirs[k]) for k in shared)


def test_pose_recipes_follow_the_authors_configs():
    from videoformers.engine.config import load_config

    # (recipe, model, drop path, lr, total batch of the lr, per-process batch, input (W, H), sigma)
    want = [
        ("uniformer_small_pose_coco", "uniformer_small_pose", 0.2, 2e-3, 1024, 128, (192, 256), 2.0),
        ("uniformer_small_pose_coco_384x288", "uniformer_small_pose", 0.2, 2e-3, 1024, 128, (288, 384), 3.0),
        ("uniformer_small_pose_coco_448x320", "uniformer_small_pose", 0.2, 1e-3, 512, 64, (320, 448), 3.0),
        ("uniformer_base_pose_coco", "uniformer_base_pose", 0.4, 2e-3, 1024, 128, (192, 256), 2.0),
        ("uniformer_base_pose_coco_384x288", "uniformer_base_pose", 0.5, 5e-4, 256, 32, (288, 384), 3.0),
        ("uniformer_base_pose_coco_448x320", "uniformer_base_pose", 0.55, 5e-4, 256, 32, (320, 448), 3.0),
    ]
    for recipe, name, dp, lr, ref, bs, size, sigma in want:
        c = load_config(recipe)
        assert (c.model.name, c.model.drop_path_rate, c.optim.lr, c.optim.lr_scale_ref, c.train.batch_size,
                c.pose.input_size, c.pose.sigma) == (name, dp, lr, ref, bs, size, sigma), recipe
        assert c.data.dataset == "coco_keypoints" and c.train.epochs == 210 and c.optim.weight_decay == 0.01
        assert tuple(c.pose.heatmap_size) == (size[0] // 4, size[1] // 4)


def test_checkpoints_in_our_and_the_mmpose_layout_load(tmp_path):
    from videoformers import load_checkpoint

    src = create_model("uniformer_small_pose", **TINY)
    sd = src.state_dict()
    dst = create_model("uniformer_small_pose", **TINY)
    load_checkpoint(dst, {"model": sd}, strict=True)  # the loader strips "backbone." (MMAction2/mmpose layout)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())
    # mmpose TopDown: backbone.<backbone keys>, keypoint_head.<head keys>
    mm = {("backbone." + k[len("backbone.model."):]) if k.startswith("backbone.model.") else "keypoint_head." + k[5:]: v
          for k, v in sd.items()}
    dst = create_model("uniformer_small_pose", **TINY)
    load_checkpoint(dst, {"state_dict": mm}, strict=True)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())


class _Oracle(torch.nn.Module):
    """Returns the dataset's target heatmaps for each crop it has seen (looked up by the crop's bytes)."""

    def __init__(self, ds):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.table = {}
        for i in range(len(ds)):
            it = ds[i]
            self.table[it["img"].numpy().tobytes()] = it["target"]

    def forward(self, x):
        return torch.stack([self.table[c.numpy().tobytes()] for c in x]) + self.w


def test_evaluate_scores_each_person_once_through_cocoeval(stick):
    from torch.utils.data import DataLoader

    from videoformers.engine.config import load_config
    from videoformers.engine.tasks_pose import PoseTask

    cfg = load_config("pose_demo", [f"data.root={stick['root']}", "pose.flip_test=false"])
    task = PoseTask()
    ds = task.build_datasets(cfg, ("val",))["val"]
    oracle = _Oracle(ds)
    n = len(ds)
    once = task.evaluate(oracle, DataLoader(ds, batch_size=4), torch.device("cpu"), None, cfg)[1]
    # a padded distributed sampler repeats samples: the metrics must not change
    twice = task.evaluate(oracle, DataLoader(ds, batch_size=4, sampler=list(range(n)) + [0, 1, 1]),
                          torch.device("cpu"), None, cfg)[1]
    assert once["num_samples"] == twice["num_samples"] == n
    assert once["AP"] == twice["AP"] >= 95  # the targets, decoded and mapped back: only the 1/4 grid errs
    assert once["loss"] == pytest.approx(0.0, abs=1e-12)


def test_imagenet_and_authors_pose_checkpoints_load_with_a_clean_report():
    from videoformers import load_checkpoint

    src = create_model("uniformer_small_image", **TINY["backbone_overrides"])
    m = create_model("uniformer_small_pose", **TINY)
    rep = load_checkpoint(m, src.state_dict(), strict=False)  # model.pretrained=<ImageNet file>
    assert not rep.unexpected and not rep.mismatched, rep
    assert all(k.startswith(("head.", "backbone.model.norm4.")) for k in rep.missing + rep.new), rep
    # the authors' pose backbone also has norm1..norm3 (computed, never returned): ignored by design
    sd = {("backbone." + k[len("backbone.model."):]) if k.startswith("backbone.model.") else "keypoint_head." + k[5:]: v
          for k, v in m.state_dict().items()}
    for s, c in ((1, 16), (2, 32), (3, 64)):
        sd[f"backbone.norm{s}.weight"], sd[f"backbone.norm{s}.bias"] = torch.ones(c), torch.zeros(c)
    rep = load_checkpoint(create_model("uniformer_small_pose", **TINY), sd, strict=True)
    assert sorted(rep.ignored) == sorted(f"backbone.model.norm{s}.{p}" for s in (1, 2, 3) for p in ("weight", "bias"))


AUTHORS_MIRROR = "/work/.mirror/Sense-X+UniFormer/repo"


def _authors_module(tmp_path, path: str, name: str, fixes: dict):
    """Import one file of the authors' mmpose copy (read from the bare git mirror, with its package imports
    pointed at the sibling files written next to it)."""
    import importlib.util
    import subprocess

    text = subprocess.run(["git", f"--git-dir={AUTHORS_MIRROR}", "show", f"HEAD:pose_estimation/{path}"],
                          capture_output=True, text=True, check=True).stdout
    for a, b in fixes.items():
        text = text.replace(a, b)
    f = tmp_path / f"{name}.py"
    f.write_text(text)
    spec = importlib.util.spec_from_file_location(name, f)
    mod = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not __import__("os").path.isdir(AUTHORS_MIRROR), reason="the authors' code (git mirror) is absent")
def test_pipeline_matches_the_authors_mmpose_functions(tmp_path):
    pt = _authors_module(tmp_path, "mmpose/core/post_processing/post_transforms.py", "_ref_post_transforms", {})
    te = _authors_module(tmp_path, "mmpose/core/evaluation/top_down_eval.py", "_ref_top_down_eval",
                         {"from mmpose.core.post_processing import": "from _ref_post_transforms import"})
    tt = _authors_module(tmp_path, "mmpose/datasets/pipelines/top_down_transform.py", "_ref_tdt", {
        "from mmpose.core.post_processing import": "from _ref_post_transforms import",
        "from mmpose.datasets.registry import PIPELINES":
            "class _R:\n    def register_module(self, *a, **k):\n        return lambda c: c\nPIPELINES = _R()"})
    rng = np.random.default_rng(0)
    for trial in range(30):
        out = [(192, 256), (288, 384), (320, 448)][trial % 3]
        hm, sigma = (out[0] // 4, out[1] // 4), 2 if out[0] == 192 else 3
        c = rng.uniform(50, 400, 2).astype(np.float32)
        w = rng.uniform(40, 300)
        size = np.array([w, w * out[1] / out[0]], np.float32)  # boxes have the input's aspect ratio
        rot = 0.0 if trial % 2 else float(rng.uniform(-80, 80))
        # mmpose's scale is the size / 200; their float32 three-point solve rounds at ~1e-3 px
        np.testing.assert_allclose(affine_matrix(c, size, rot, out),
                                   pt.get_affine_transform(c, size / 200, rot, np.array(out)), atol=5e-3)
        j = rng.uniform(-30, np.array(out) + 30, size=(17, 2)).astype(np.float32)
        vis = (rng.random(17) > 0.2).astype(np.float32)
        j3, v3 = np.zeros((17, 3), np.float32), np.zeros((17, 3), np.float32)
        j3[:, :2], v3[:, 0], v3[:, 1] = j, vis, vis
        cfg = dict(num_joints=17, image_size=np.array(out), heatmap_size=np.array(hm),
                   joint_weights=np.ones((17, 1)), use_different_joint_weights=False)
        t_ref, w_ref = tt.TopDownGenerateTarget(sigma=sigma)._msra_generate_target(cfg, j3, v3, sigma)
        t_ours, w_ours = encode_heatmaps(j, vis, out, hm, sigma)
        assert np.array_equal(t_ref, t_ours) and np.array_equal(w_ref.reshape(-1), w_ours.reshape(-1))
        heat = rng.random((2, 17, hm[1], hm[0])).astype(np.float32) ** 8
        cs, ss = np.stack([c, c + 10]), np.stack([size, size * 1.1])
        p_ref, s_ref = te.keypoints_from_heatmaps(heat, cs, ss / 200, post_process="default")
        co, s_ours = decode_heatmaps(heat)
        np.testing.assert_allclose(heatmap_to_image(co, cs, ss, np.zeros(2), out, hm), p_ref, atol=1e-3)
        np.testing.assert_array_equal(s_ours, s_ref[..., 0])
        fb = pt.flip_back(heat, COCO_FLIP_PAIRS)
        fb[..., 1:] = fb[..., :-1].copy()  # the head's shift_heatmap=True
        np.testing.assert_array_equal(flip_back(torch.from_numpy(heat), COCO_FLIP_PAIRS).numpy(), fb)
        width = int(rng.integers(100, 640))
        fj, fv = pt.fliplr_joints(j3.copy(), v3.copy(), width, COCO_FLIP_PAIRS)
        oj, ov = flip_joints(j, vis, width, COCO_FLIP_PAIRS)
        np.testing.assert_allclose(oj, fj[:, :2], atol=1e-4)
        np.testing.assert_array_equal(ov, fv[:, 0])
    from videoformers.data.keypoints import half_body_box

    for t in range(30):  # half body: the same global numpy draws give the same box
        j = rng.uniform(0, 300, size=(17, 2)).astype(np.float32)
        vis = (rng.random(17) > 0.4).astype(np.float32)
        j3, v3 = np.zeros((17, 3), np.float32), np.zeros((17, 3), np.float32)
        j3[:, :2], v3[:, 0], v3[:, 1] = j, vis, vis
        cfg = dict(num_joints=17, upper_body_ids=list(range(11)), image_size=np.array([192, 256]))
        np.random.seed(t)
        c_ref, s_ref = tt.TopDownHalfBodyTransform.half_body_transform(cfg, j3, v3)
        np.random.seed(t)
        ours = half_body_box(j, vis, 192 / 256)
        if c_ref is None:
            assert ours is None
        else:
            np.testing.assert_allclose(ours[0], c_ref, atol=1e-4)
            np.testing.assert_allclose(ours[1], s_ref * 200, rtol=1e-5)
