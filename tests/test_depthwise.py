"""The depthwise conv with nasgal's CPU backward computes torch's gradients (oracle: autograd
through torch's own conv), in every geometry the op catalog and the supernet use."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasgal.compiler import depthwise
from nasgal.compiler.depthwise import DepthwiseConv2d, depthwise_conv2d

GEOMETRIES = [(3, 1), (5, 1), (3, 2), (5, 2), (7, 1)]


@pytest.mark.parametrize("k,d", GEOMETRIES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradients_equal_torchs(k, d, stride, multiplier, channels_last):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 9, 8, dtype=torch.double)  # odd and even sides: strided output sizes round up
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(4 * multiplier, 1, k, k, dtype=torch.double)
    pad = d * (k - 1) // 2
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    y1 = F.conv2d(x1, w1, None, stride, pad, d, 4)
    y2 = depthwise_conv2d(x2, w2, (stride, stride), (pad, pad), (d, d))
    torch.testing.assert_close(y2, y1)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x2.grad, x1.grad)
    torch.testing.assert_close(w2.grad, w1.grad)
    assert x2.grad.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_every_gradient_path_is_taken():
    """The oracle above covers both the conv-based and torch's own gradients."""
    seen_input = {depthwise._input_grad_by_conv((s, s), ((k - 1) * d // 2,) * 2, (d, d), (k, k), m)
                  for (k, d), s, m in itertools.product(GEOMETRIES, (1, 2), (1, 3))}
    seen_weight = {depthwise._weight_grad_by_conv((s, s), (d, d), (k, k), m, nchw)
                   for (k, d), s, m, nchw in itertools.product(GEOMETRIES, (1, 2), (1, 3), (True, False))}
    assert seen_input == {True, False} and seen_weight == {True, False}


def test_double_backward_matches_autograd():
    """Both gradients are built from differentiable ops (gradgradcheck in float64)."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, 6, dtype=torch.double, requires_grad=True)
    w = torch.randn(6, 1, 3, 3, dtype=torch.double, requires_grad=True)
    fn = lambda x, w: depthwise_conv2d(x, w, (1, 1), (2, 2), (2, 2))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_bf16_autocast_casts_like_torchs_conv():
    torch.manual_seed(2)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    conv = DepthwiseConv2d(4, 4, 5, padding=4, dilation=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
        ref = F.conv2d(x, conv.weight, None, 1, 4, 2, 4)
    assert y.dtype == ref.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and conv.weight.grad.dtype == torch.float32


def test_module_is_a_conv2d_with_the_same_state_dict():
    torch.manual_seed(3)
    ours = DepthwiseConv2d(8, 8, 3, stride=2, padding=1)
    plain = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
    assert isinstance(ours, nn.Conv2d) and ours.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(ours(x), plain(x))
    with torch.no_grad():  # no gradient wanted: torch's conv itself
        torch.testing.assert_close(ours(x), plain(x))


def test_other_devices_paths_run_torchs_conv_on_the_cpu():
    from nasgal.compiler.cpu_paths import cpu_paths, other_device_paths

    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    w = torch.randn(2, 1, 5, 5)
    assert cpu_paths(x)
    assert "DepthwiseConv2d" in type(depthwise_conv2d(x, w, (1, 1), (2, 2)).grad_fn).__name__
    with other_device_paths():
        assert not cpu_paths(x)
        assert "Convolution" in type(depthwise_conv2d(x, w, (1, 1), (2, 2)).grad_fn).__name__
    assert cpu_paths(x)
    # a plain 3x3 kernel keeps torch's backward on the CPU too: it is as fast there
    assert "Convolution" in type(depthwise_conv2d(x, torch.randn(2, 1, 3, 3), (1, 1), (1, 1)).grad_fn).__name__


def test_cli_switch_and_environment_turn_the_cpu_paths_off(tmp_path):
    """``nasgal --torch-kernels`` in this process; ``NASGAL_CPU_PATHS=0`` in a fresh one."""
    import subprocess
    import sys

    from typer.testing import CliRunner

    from nasgal.cli.main import app
    from nasgal.compiler.cpu_paths import cpu_paths, use_cpu_paths

    x = torch.zeros(1)
    try:
        res = CliRunner().invoke(app, ["--torch-kernels", "genotypes"])
        assert res.exit_code == 0, res.output
        assert not cpu_paths(x)
    finally:
        use_cpu_paths(True)
    probe = "import torch; from nasgal.compiler.cpu_paths import cpu_paths; print(cpu_paths(torch.zeros(1)))"
    for value, expected in (("0", "False"), ("1", "True")):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             env={**__import__("os").environ, "NASGAL_CPU_PATHS": value}).stdout.strip()
        assert out == expected
