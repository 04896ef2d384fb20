"""The step counter of benchmarks/_count.py, and what it guards: the search and training steps
neither read a value back to the host nor copy one in (a CUDA graph could not hold them
otherwise), and the search step launches a fraction of the kernels and moves less data than a
reference-style supernet."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
from benchscripts import load_benchmark

from nasgal.search.space import default_space
from nasgal.search.supernet import Architecture, Supernet

count = load_benchmark("_count")


def test_grouped_conv_flops_bytes_and_kernels_by_hand():
    x = torch.randn(2, 8, 10, 10, requires_grad=True)
    w = torch.randn(16, 4, 3, 3, requires_grad=True)  # groups=2: each output sums 4*3*3 products
    c = count.count_step(lambda: F.conv2d(x, w, groups=2, padding=1).sum().backward())
    macs = 2 * 16 * 10 * 10 * (4 * 3 * 3)
    assert c.flops == 3 * 2 * macs  # forward, input gradient, weight gradient
    assert c.by_op["aten.convolution"] == 1 and c.by_op["aten.convolution_backward"] == 1
    assert c.syncs == 0
    # the forward conv reads x and w and writes its output
    fwd = count.count_step(lambda: F.conv2d(x.detach(), w.detach(), groups=2, padding=1))
    assert fwd.kernels == 1 and fwd.bytes == 4 * (x.numel() + w.numel() + 2 * 16 * 10 * 10)


def test_views_are_free_and_host_reads_are_syncs():
    t = torch.randn(4, 6)
    c = count.count_step(lambda: (t.view(24).t(), t[1:], t.transpose(0, 1)))
    assert c.kernels == 0 and c.bytes == 0
    c = count.count_step(lambda: float(t.sum()))
    assert c.syncs == 1 and c.kernels == 1
    # indexing with a Python list makes a host tensor (on a GPU, a copy a graph cannot hold)
    c = count.count_step(lambda: (t[:, [0, 2]], torch.tensor([1.0]) + t))
    assert c.host_tensors == 2 and c.kernels == 2


def _args(**kw):
    base = dict(batch=4, in_channels=3, size=8, classes=10, channels_last=False, order="first", bf16=False, capture="none")
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("order,partial", [("first", 1), ("second", 1), ("first", 2)])
def test_search_step_reads_nothing_back_and_copies_nothing_in(order, partial):
    """What a CUDA graph of the step needs (the version before these counts made 196 host
    tensors per step, from indexing α with Python lists: its capture would have failed)."""
    bench = load_benchmark("search_step")
    space = default_space().resized(cells=3, channels=4, nodes=3)
    model, arch = Supernet(space, 3, 10, partial=partial), Architecture(space, partial)
    step = bench.make_nasgal_step(model, arch, _args(order=order), torch.device("cpu"))
    step()
    c = count.count_step(step)
    assert c.syncs == 0 and c.host_tensors == 0, c.by_op
    assert c.kernels > 100


def test_search_step_launches_a_fraction_of_the_reference_kernels():
    """The batched supernet's point, as counts that do not depend on the machine: on the
    DARTS space it launches under a quarter of the reference-style kernels per step and moves
    less data (8 cells, C=16: 5,570 against 30,218 kernels)."""
    bench = load_benchmark("search_step")
    space = default_space().resized(cells=3, channels=4)
    torch.manual_seed(0)
    counts = {}
    for name, model, make in (
        ("nasgal", Supernet(space, 3, 10), bench.make_nasgal_step),
        ("reference", bench.PlainSupernet(space, 3, 10), bench.make_reference_step),
    ):
        step = make(model, Architecture(space, 1), _args(), torch.device("cpu"))
        step()
        counts[name] = count.count_step(step)
    ours, ref = counts["nasgal"], counts["reference"]
    assert ours.kernels * 4 < ref.kernels, (ours.kernels, ref.kernels)
    assert ours.bytes < ref.bytes
    assert ours.syncs == 0


def test_training_step_reads_nothing_back_and_copies_nothing_in():
    import nasgal
    from nasgal.compiler import compile_network
    from nasgal.spec.library import resolve_spec_path
    from nasgal.engine.optim import sgd
    from nasgal.train.step import TrainStep

    net = nasgal.stack(nasgal.load(resolve_spec_path("darts_v2")), cells=3, channels=4, classes=10,
                       in_channels=1, input_size=8)
    model = compile_network(net).train()
    step = TrainStep(model, sgd(model, 0.025, 0.9, 3e-4, torch.device("cpu")), grad_clip=5.0)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    step(x, y)
    c = count.count_step(lambda: step(x, y))
    assert c.syncs == 0 and c.host_tensors == 0, c.by_op


def test_train_step_benchmark_runs_with_its_reference_loop(monkeypatch, capsys):
    """`python benchmarks/train_step.py --device cpu --reference` (docs/benchmarks.md), shrunk:
    both loops run interleaved, and the ratios are per round and their median."""
    import json
    import statistics
    import sys

    bench = load_benchmark("train_step")
    monkeypatch.setattr(sys, "argv", ["train_step.py", "--device", "cpu", "--reference", "--cells", "2",
                                      "--channels", "4", "--batch", "4", "--warmup", "1", "--steps", "1",
                                      "--rounds", "3", "--variant", "nasgal", "--variant", "nasgal-nchw", "--json"])
    bench.main()
    out = json.loads(capsys.readouterr().out)
    assert out["rounds"] == 3 and "load" in out["machine"]
    for name in ("nasgal", "nasgal-nchw"):
        up = out[name]["speedup_vs_reference"]
        assert len(up["per_round"]) == 3 and up["median"] == pytest.approx(statistics.median(up["per_round"]), rel=1e-2)
        assert up["min"] <= up["median"] <= up["max"]
    assert out["nasgal"]["channels_last"] and not out["nasgal-nchw"]["channels_last"]
    assert out["nasgal"]["graph_captured"] is False and out["reference"]["images_per_s"] > 0


def test_interleaving_rotates_the_order_and_keeps_every_round():
    bench = load_benchmark("_interleave")
    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    res = bench.interleave(steps, rounds=3, steps_per_round=2, warmup=1)
    timed = calls[3:]  # after one warm-up call of each
    firsts = [timed[i * 6] for i in range(3)]
    assert firsts == ["a", "b", "c"] and all(len(v) == 3 for v in res.seconds.values())
    res.seconds = {"a": [2.0, 2.0, 4.0], "b": [1.0, 4.0, 1.0], "c": [1.0, 1.0, 1.0]}
    assert res.speedups("b", "a") == [2.0, 0.5, 4.0] and res.median_speedup("b", "a") == 2.0


def test_reference_style_network_computes_what_the_compiled_network_computes():
    """The baseline of train_step.py --reference is the same function, built the reference's way."""
    import nasgal
    from nasgal.compiler import compile_network

    ref_mod = load_benchmark("_reference_net")
    net = nasgal.stack(nasgal.load("darts_v2"), cells=5, channels=4, classes=10, in_channels=1, input_size=16)
    torch.manual_seed(0)
    ours = compile_network(net).double()
    ref = ref_mod.ReferenceNetwork(net).double()
    ref.load_state_dict(ours.state_dict(), strict=True)
    from nasgal.compiler.depthwise import DepthwiseConv2d

    assert any(isinstance(m, DepthwiseConv2d) for m in ours.modules())
    assert not any(isinstance(m, DepthwiseConv2d) for m in ref.modules())  # the reference runs torch's convs
    x = torch.randn(4, 1, 16, 16, dtype=torch.double)
    for train in (True, False):
        ours.train(train)
        ref.train(train)
        torch.testing.assert_close(ref(x), ours(x))
