"""``videoformers bench``: timings, memory, MFU arithmetic and device peaks."""

import json

import pytest
import torch

from videoformers.cli import main
from videoformers.tools import bench as bench_mod
from videoformers.tools.bench import benchmark, peak_flops

TINY = dict(depth=[1, 1, 1, 1], embed_dim=[16, 32, 64, 64], head_dim=16)


def test_cpu_benchmark_fields():
    r = benchmark("uniformer_small", frames=4, size=64, batch=2, warmup=1, iters=2, **TINY)
    assert r.input_shape == (2, 3, 4, 64, 64)
    assert r.forward_ms > 0 and r.backward_ms > 0
    assert r.forward_clips_per_s == pytest.approx(2 / (r.forward_ms / 1e3))
    assert r.backward_clips_per_s == pytest.approx(2 / (r.backward_ms / 1e3))
    # forward+backward holds activations for backward and the gradients: more than inference
    assert 0 < r.forward_peak_mem_mb < r.backward_peak_mem_mb
    assert r.gflops_per_clip > 0 and r.params_m > 0
    # the CPU is named and its peak known where its clock is: the MFU exists exactly then
    assert r.device_name and r.cpu is not None and (r.forward_mfu is None) == (r.peak_tflops is None)


def test_mfu_arithmetic(monkeypatch):
    monkeypatch.setattr(bench_mod, "peak_flops", lambda device, dtype: 1e12)
    r = benchmark("uniformer_small", frames=4, size=64, batch=2, warmup=0, iters=1, **TINY)
    flop = 2 * r.gflops_per_clip * 1e9 * 2  # multiply-adds x 2, batch 2
    assert r.forward_mfu == pytest.approx(flop / (r.forward_ms / 1e3) / 1e12, rel=1e-2)
    assert r.backward_mfu == pytest.approx(3 * flop / (r.backward_ms / 1e3) / 1e12, rel=1e-2)


@pytest.mark.parametrize("name,dtype,expected", [
    ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989e12),
    ("NVIDIA H200", torch.bfloat16, 989e12),
    ("NVIDIA H100 PCIe", torch.float16, 756e12),
    ("NVIDIA GeForce GTX 1080", torch.bfloat16, None),
])
def test_device_peaks(monkeypatch, name, dtype, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops(torch.device("cuda"), dtype) == expected
    assert peak_flops(torch.device("cpu"), dtype) is None


def test_cli_json(capsys):
    args = ["bench", "uniformer_small", "--frames", "4", "--size", "64", "--iters", "1", "--warmup", "0",
            "--no-backward", "--json", "--device", "cpu"]
    for k, v in TINY.items():
        args += ["--override", f"{k}={json.dumps(v)}"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "uniformer_small" and out["backward_ms"] is None and out["forward_ms"] > 0


@pytest.mark.gpu
def test_gpu_bf16_mfu():
    r = benchmark("uniformer_small", frames=8, size=224, batch=8, device="cuda", dtype="bf16", warmup=2, iters=3)
    assert r.forward_peak_mem_mb > 0
    if "H100" in r.device_name or "H200" in r.device_name:
        assert 0 < r.forward_mfu < 1 and 0 < r.backward_mfu < 1


def test_train_memory_cli_reports_both_checkpointing_modes(capsys):
    from videoformers.cli import main

    assert main(["bench", "uniformer_small", "--frames", "4", "--size", "64", "--train-memory", "--json",
                 "--override", "depth=[1,1,1,1]", "--override", "embed_dim=[16,32,64,64]",
                 "--override", "head_dim=16"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert [r["grad_checkpointing"] for r in rows] == [None, True]
    assert rows[1]["activations"] < rows[0]["activations"] and rows[0]["input_shape"] == [1, 3, 4, 64, 64]


def test_cpu_bf16_autocast_runs_h_uniformer_and_fp16_is_warned():
    """bf16 on CPU runs under autocast (H-UniFormer's fp32 token scores used to crash a weight cast with
    "mixed dtype"); fp16 on CPU is named as slower than fp32."""
    from videoformers.tools.bench import benchmark

    r = benchmark("uniformer_xxs", frames=4, size=64, batch=1, device="cpu", dtype="bf16", warmup=0, iters=1)
    assert r.dtype == "bfloat16"
    with pytest.warns(UserWarning, match="fp16 on CPU"):
        benchmark("uniformer_xxs", frames=4, size=64, batch=1, device="cpu", dtype="fp16", warmup=0, iters=1)
