"""The oneDNN route of ``videoformers.ops.linear`` (and ``ops.conv3d`` at the end): same results and gradients as ``F.linear``, and it steps
aside wherever another mechanism must see an ordinary ``aten.linear`` (FLOP counting, autocast,
fp64, meta tensors, compile)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from videoformers.ops import onednn as layers
from videoformers.ops import Linear, linear, onednn_linear_enabled

needs_onednn = pytest.mark.skipif(not onednn_linear_enabled(), reason="this torch build has no oneDNN linear")


@pytest.fixture(autouse=True)
def _force_onednn(monkeypatch):
    """These tests check the oneDNN path itself, whatever the per-CPU measurement would pick here."""
    from videoformers.ops import onednn

    monkeypatch.setattr(onednn, "_FORCED", True)


@needs_onednn
@pytest.mark.parametrize("faster", [True, False])
def test_auto_mode_keeps_onednn_only_where_it_measured_faster(monkeypatch, faster):
    from videoformers.ops import onednn

    monkeypatch.setattr(onednn, "_FORCED", False)
    monkeypatch.setattr(onednn, "_AUTO", None)
    monkeypatch.setattr(onednn, "_measure", lambda: {"onednn": faster, "speedup": 2.0 if faster else 0.9,
                                                     "how": "measured"})
    x, w, b = _data((3, 5))
    ops = _ops(lambda: linear(x, w, b))
    assert ("mkldnn::_linear_pointwise" in ops) == faster
    assert onednn.linear_backend()["onednn"] == faster
    torch.testing.assert_close(linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_auto_measurement_is_a_real_timing(monkeypatch):
    from videoformers.ops import onednn

    r = onednn._measure()
    assert r["how"] == "measured" and r["speedup"] > 0 and r["gflops_mkl"] > 0 and r["gflops_onednn"] > 0
    assert r["onednn"] == (r["speedup"] >= 1.05)


def _ops(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def _data(shape, k=24, n=40, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, k, generator=g), torch.randn(n, k, generator=g),
            torch.randn(n, generator=g) if bias else None)


@needs_onednn
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_f_linear_and_uses_onednn(shape, bias):
    x, w, b = _data(shape, bias=bias)
    assert "mkldnn::_linear_pointwise" in _ops(lambda: linear(x, w, b))
    torch.testing.assert_close(linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    xt = torch.randn(24, 6).t()  # non-contiguous input
    torch.testing.assert_close(linear(xt, w, b), F.linear(xt, w, b), rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False), (False, True, True)])
def test_gradients_match_f_linear(bias, needs):
    x, w, b = _data((3, 5), bias=bias)
    leaves = [x, w] + ([b] if bias else [])
    for t, r in zip(leaves, needs):
        t.requires_grad_(r)
    gy = torch.randn(3, 5, 40)
    ours = torch.autograd.grad(linear(x, w, b), [t for t in leaves if t.requires_grad], gy)
    ref = torch.autograd.grad(F.linear(x, w, b), [t for t in leaves if t.requires_grad], gy)
    assert len(ours) == len(ref) > 0
    for a, r in zip(ours, ref):
        assert a.shape == r.shape
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_module_is_a_drop_in_nn_linear():
    torch.manual_seed(0)
    ref = nn.Linear(16, 8)
    ours = Linear(16, 8)
    ours.load_state_dict(ref.state_dict())
    assert isinstance(ours, nn.Linear) and list(ours.state_dict()) == ["weight", "bias"]
    x = torch.randn(4, 16, requires_grad=True)
    ours(x).square().sum().backward()
    g_ours = (x.grad.clone(), ours.weight.grad.clone(), ours.bias.grad.clone())
    x.grad = None
    ref(x).square().sum().backward()
    for a, r in zip(g_ours, (x.grad, ref.weight.grad, ref.bias.grad)):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


def test_flop_counter_sees_the_linear_on_cpu():
    x, w, b = _data((10,), k=32, n=16)
    with FlopCounterMode(display=False) as fc:
        linear(x, w, b)
    assert fc.get_total_flops() == 2 * 10 * 32 * 16


@pytest.mark.parametrize("case", ["fp64", "meta", "autocast", "switched_off", "mkldnn_disabled"])
def test_falls_back_to_f_linear(case, monkeypatch):
    x, w, b = _data((4,))
    if case == "fp64":
        x, w, b = x.double(), w.double(), b.double()
    if case == "meta":
        x, w, b = x.to("meta"), w.to("meta"), b.to("meta")
        assert linear(x, w, b).shape == (4, 40)
        return
    if case == "switched_off":
        monkeypatch.setattr(layers, "_ENV_ENABLED", False)
    if case == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not layers._use_onednn(x, w, b)
            assert linear(x, w, b).dtype == torch.bfloat16
        return
    if case == "mkldnn_disabled":
        with torch.backends.mkldnn.flags(enabled=False):
            assert not layers._use_onednn(x, w, b)
            assert "mkldnn::_linear_pointwise" not in _ops(lambda: linear(x, w, b))
        return
    assert not layers._use_onednn(x, w, b)
    assert "mkldnn::_linear_pointwise" not in _ops(lambda: linear(x, w, b))
    assert torch.equal(linear(x, w, b), F.linear(x, w, b))


def test_compiled_linear_has_no_graph_break():
    m = Linear(8, 4)
    x = torch.randn(3, 8)
    out = torch.compile(m, fullgraph=True, backend="eager")(x)
    torch.testing.assert_close(out, F.linear(x, m.weight, m.bias))


# ------------------------------------------------------------------ 3-D convolutions through oneDNN
from videoformers.ops import Conv3d, conv3d  # noqa: E402

CONV_CASES = [  # (in, out, kernel, stride, padding, groups): a 3-channel stem, a patch embedding, a depth-wise conv
    (3, 8, 3, (1, 2, 2), 1, 1),
    (8, 16, (1, 2, 2), (1, 2, 2), 0, 1),
    (8, 8, 3, 1, 1, 8),
]


@needs_onednn
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv3d_matches_f_conv3d_values_and_gradients(case):
    cin, cout, k, s, p, g = case
    torch.manual_seed(0)
    ref = nn.Conv3d(cin, cout, k, s, p, groups=g)
    ours = Conv3d(cin, cout, k, s, p, groups=g)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, cin, 4, 12, 12, requires_grad=True)
    assert "aten::mkldnn_convolution" in _ops(lambda: ours(x))
    y = ours(x)
    torch.testing.assert_close(y, ref(x), rtol=1e-5, atol=1e-5)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, ours.weight, ours.bias], gy)
    exp = torch.autograd.grad(ref(x), [x, ref.weight, ref.bias], gy)
    for a, r in zip(got, exp):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-4)


def test_conv3d_falls_back_where_it_must(monkeypatch):
    x, w = torch.randn(1, 3, 2, 8, 8), torch.randn(4, 3, 1, 2, 2)
    with FlopCounterMode(display=False) as fc:
        conv3d(x, w, None, (1, 2, 2))
    assert fc.get_total_flops() == 2 * (1 * 4 * 2 * 4 * 4) * (3 * 1 * 2 * 2)
    monkeypatch.setattr(layers, "_ENV_ENABLED", False)
    assert torch.equal(conv3d(x, w, None, (1, 2, 2)), F.conv3d(x, w, None, (1, 2, 2)))
    assert conv3d(x.double(), w.double(), None, (1, 2, 2)).dtype == torch.float64
    m = Conv3d(3, 4, 3, padding="same")  # string padding: nn.Conv3d's own path
    assert m(x).shape == (1, 4, 2, 8, 8)
