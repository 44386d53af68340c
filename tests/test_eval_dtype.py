"""`videoformers eval ... eval.dtype=bf16|int8` (issue 20): the engine's evaluation in reduced precision on
CPU gives the fp32 scores up to the precision's error, and records the dtype it ran in."""

import csv
import json

import pytest

from videoformers.data.synthetic import generate_dataset
from videoformers.engine.config import load_config
from videoformers.engine.run import evaluate_checkpoint
from videoformers.engine.trainer import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("evaldtype")
    d = generate_dataset(str(base / "gen"), num_train=16, num_val=12, size=32, num_frames=8, workers=1, task="scene")
    common = [f"data.root={d['root']}", f"data.train_list={d['train_list']}", f"data.val_list={d['val_list']}",
              f"data.labels_file={d['labels_file']}", "data.num_frames=4", "data.frame_interval=2",
              "data.num_workers=0", "data.decode_timeout=0", "model.overrides.depth=[1,1,1,1]",
              "model.overrides.embed_dim=[16,32,64,64]", "model.overrides.head_dim=16", "train.batch_size=4",
              f"train.output_dir={base / 'run'}", "train.progress=false", "train.tensorboard=false"]
    tr = Trainer(load_config("demo", common + ["train.epochs=1", "train.final_eval=false", "train.eval_every=0"]),
                 log=lambda m: None)
    tr.fit()
    tr.close()
    return base, common


def _scores(path):
    """{clip index: (predicted class, its probability)} from predictions.csv."""
    with open(path) as f:
        return {r["index"]: (r["pred"], float(r["prob"])) for r in csv.DictReader(f)}


def test_eval_in_bf16_and_int8_agrees_with_fp32(trained):
    base, common = trained
    out = {}
    for dtype in ("fp32", "bf16", "int8"):
        cfg = load_config("demo", common + [f"eval.checkpoint={base / 'run' / 'checkpoint_last.pth'}",
                                            f"eval.dtype={dtype}", f"eval.output_dir={base / dtype}"])
        m = evaluate_checkpoint(cfg)
        assert m["num_samples"] == 12
        assert json.loads((base / dtype / "metrics.json").read_text())["dtype"] == dtype
        out[dtype] = _scores(base / dtype / "predictions.csv")
    ref = out["fp32"]
    assert len(ref) == 12
    for dtype in ("bf16", "int8"):
        got = out[dtype]
        assert got.keys() == ref.keys()
        # the probability of fp32's top class under the reduced precision: a few percent at most
        same = [k for k in ref if got[k][0] == ref[k][0]]
        assert len(same) >= 10, (dtype, ref, got)
        assert max(abs(got[k][1] - ref[k][1]) for k in same) < 0.05, (dtype, ref, got)


def test_unknown_eval_dtype_is_refused_at_load():
    with pytest.raises(ValueError, match="eval.dtype"):
        load_config("demo", ["eval.dtype=int4"])
