"""Output parity with the authors' UniFormerV2 (and MMAction2's port) on the fixtures in
``tests/fixtures/uniformerv2`` (see its README): same seeded weights, same input, fp32 eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import videoformers as vf
from fixtures.seeded import seeded_state_dict, seeded_tensor
from videoformers.models.uniformerv2 import UniFormerV2

FIXTURES = Path(__file__).parent / "fixtures" / "uniformerv2"
CASES = sorted(p.stem for p in FIXTURES.glob("*.json") if not p.stem.startswith("mmaction2_k710_map"))


def _load(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.json").read_text())


def _ours(fx: dict, **kw) -> UniFormerV2:
    # Built on the meta device and materialised uninitialised: every tensor comes from the fixture
    # (strict loading checks that), and the full-width case skips seconds of weight init.
    with torch.device("meta"):
        model = UniFormerV2(**fx["videoformers_config"], **kw)
    return model.to_empty(device="cpu").eval()


def test_fixtures_present():
    assert {"kinetics_tiny", "ssv2_tiny", "kinetics_frozen_tiny", "ssv2_b16_res32", "mmaction_kinetics_tiny"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_parity_with_authors(case):
    fx = _load(case)
    sd = seeded_state_dict(fx["manifest"], fx["seed"])  # the authors' key layout
    model = _ours(fx)
    report = vf.load_checkpoint(model, sd, strict=True)
    assert report.ok and report.loaded > 0
    x = seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"])
    with torch.no_grad():
        out = model(x)
    expected = torch.tensor(fx["output"], dtype=torch.float32)
    assert list(out.shape) == fx["output_shape"]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_parity_factorized_attention_and_pyth_file(tmp_path):
    """The factorized global attention and a PySlowFast ``model_state`` file give the same outputs."""
    fx = _load("ssv2_tiny")
    path = tmp_path / "best.pyth"
    torch.save({"epoch": 1, "model_state": seeded_state_dict(fx["manifest"], fx["seed"])}, path)
    model = _ours(fx, global_attn="factorized")
    vf.load_checkpoint(model, path, strict=True)
    with torch.no_grad():
        out = model(seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"]))
    torch.testing.assert_close(out, torch.tensor(fx["output"], dtype=torch.float32), atol=1e-5, rtol=0)


def test_parity_is_sensitive():
    """Negative control: one wrong mapping (the sign of the fusion weight) breaks parity."""
    fx = _load("kinetics_tiny")
    sd = seeded_state_dict(fx["manifest"], fx["seed"])
    model = _ours(fx)
    vf.load_checkpoint(model, sd, strict=True)
    with torch.no_grad():
        model.alpha.neg_()
        out = model(seeded_tensor(fx["input_shape"], fx["seed"], fx["input_key"]))
    assert (out - torch.tensor(fx["output"])).abs().max() > 1e-3
