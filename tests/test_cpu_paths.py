"""The CPU-only code paths (nasgal/compiler/cpu_paths.py) give the numbers of the paths other
devices take, and do what they are for: batch norms get contiguous gradients."""

from __future__ import annotations

import pytest
import torch

import nasgal
from nasgal.compiler import compile_network
from nasgal.compiler.cpu_paths import contiguous_grad, other_device_paths


def _net(cells: int = 5):
    return nasgal.stack(nasgal.load("darts_v2"), cells=cells, channels=4, classes=3, in_channels=1, input_size=12)


def test_contiguous_grad_lays_a_slice_gradient_out_like_its_input():
    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    seen = []
    y = contiguous_grad(x * 1.0)
    y.register_hook(lambda g: seen.append(g.is_contiguous(memory_format=torch.channels_last)))
    z = torch.cat([y, torch.ones_like(y)], dim=1)[:, :3]  # the gradient of y is a channel slice of z's
    (z * torch.randn_like(z)).sum().backward()
    assert seen == [False]  # what arrives is a slice; what leaves is laid out like x:
    assert x.grad is not None and x.grad.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert contiguous_grad(x) is x  # nothing added without gradients
    with other_device_paths():
        assert contiguous_grad(x) is x


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("gates", [False, True])
def test_network_gradients_equal_the_other_devices_paths(channels_last, gates):
    """Logits and every parameter's gradient, float64, drop path on: CPU paths on and off."""
    from nasgal.prune.gal import load_teacher

    net = _net()
    torch.manual_seed(0)
    model = compile_network(net).double()
    if gates:  # the GAL generator: the same cells with node gates
        model = load_teacher(net, model.state_dict(), gates=True).double()
    model.train()
    model.set_drop_path(0.2, enabled=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(3, 1, 12, 12, dtype=torch.double).contiguous(memory_format=fmt)
    results = []
    for on in (True, False):
        torch.manual_seed(1)  # the same drop-path draws
        with torch.enable_grad() if on else other_device_paths():
            out = model(x)
            logits = out[0] if isinstance(out, tuple) else out
            grads = torch.autograd.grad(logits.square().sum(), [p for p in model.parameters() if p.requires_grad])
            results.append([logits, *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_every_batch_norm_gets_a_contiguous_gradient():
    """What the CPU path is for: no batch norm or ReLU of the channels-last network receives a
    gradient laid out otherwise (torch's CPU batch norm backward is several times slower then)."""
    model = compile_network(_net()).train().to(memory_format=torch.channels_last)
    layouts: list[tuple[str, bool]] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(mod, grad_in, grad_out):
        layouts.append((names[mod], grad_out[0].is_contiguous(memory_format=torch.channels_last)))

    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.ReLU)):
            m.register_full_backward_hook(hook)
    x = torch.randn(2, 1, 12, 12).contiguous(memory_format=torch.channels_last)
    out = model(x)
    (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert len(layouts) > 40
    assert [name for name, ok in layouts if not ok] == []
    layouts.clear()
    with other_device_paths():  # without the CPU path some do not (else this test would prove nothing)
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert any(not ok for _, ok in layouts)
