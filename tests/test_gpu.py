"""CUDA-only checks: a step replayed from a CUDA graph computes what the eager step computes.

Skipped without a GPU (CI has none); `benchmarks/gpu_suite.sh` runs them on a lent device.
"""

from __future__ import annotations

import pytest
import torch

from nasgal.search.space import default_space
from nasgal.search.step import SearchStep, make_optimizers
from nasgal.search.supernet import Architecture, Supernet
from nasgal.engine.optim import sgd
from nasgal.train.step import TrainStep

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

HP = {"lr": 0.025, "momentum": 0.9, "weight_decay": 3e-4, "arch_lr": 3e-4, "arch_betas": (0.5, 0.999),
      "arch_weight_decay": 1e-3}


def _search(capture: str, order: str, partial: int, steps: int, prime: int = 0):
    dev = torch.device("cuda")
    space = default_space().resized(cells=5, channels=8)
    torch.manual_seed(0)
    model = Supernet(space, 3, 10, partial=partial).to(dev)
    arch = Architecture(space, partial, generator=torch.Generator().manual_seed(0)).to(dev)
    w_opt, a_opt = make_optimizers(model, arch, device=dev, **HP)
    g = torch.Generator(device=dev).manual_seed(1)
    batches = [
        (torch.randn(8, 3, 16, 16, device=dev, generator=g), torch.randint(0, 10, (8,), device=dev, generator=g),
         torch.randn(8, 3, 16, 16, device=dev, generator=g), torch.randint(0, 10, (8,), device=dev, generator=g))
        for _ in range(prime + steps)
    ]
    # ``prime`` eager steps first: optimizer state exists when the graph is captured, as after a resume.
    eager = SearchStep(model, arch, w_opt, a_opt, order=order, device=dev)
    for b in batches[:prime]:
        eager(*b)
    step = SearchStep(model, arch, w_opt, a_opt, order=order, capture=capture, device=dev)
    for b in batches[prime:]:
        step(*b)
    torch.cuda.synchronize()
    # A step that fell back to eager would also equal the eager run: check the graph exists.
    assert step.captured == (capture == "cuda-graph")
    return model, arch, step.read_stats()


@pytest.mark.parametrize("order,partial,prime", [("first", 1, 0), ("first", 4, 2), ("second", 1, 1)])
def test_captured_search_step_equals_eager(order, partial, prime):
    torch.backends.cudnn.deterministic = True
    m_e, a_e, s_e = _search("none", order, partial, 4, prime)
    m_g, a_g, s_g = _search("cuda-graph", order, partial, 4, prime)
    for (name, p), q in zip(m_e.named_parameters(), m_g.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    for p, q in zip(a_e.parameters(), a_g.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)
    assert s_g[2] == s_e[2] == 32
    assert s_g[0] == pytest.approx(s_e[0], rel=1e-4)


def test_captured_train_step_keeps_resumed_momentum():
    from pathlib import Path

    import nasgal
    from nasgal.compiler import compile_network

    dev = torch.device("cuda")
    genotype = nasgal.load(Path(__file__).resolve().parents[1] / "genotypes" / "darts_v2.json")
    net = nasgal.stack(genotype, cells=5, channels=8, classes=10, in_channels=1, input_size=16)
    results = []
    for capture in ("none", "cuda-graph"):
        torch.manual_seed(0)
        model = compile_network(net).to(dev)
        opt = sgd(model, 0.025, 0.9, 3e-4, dev)
        g = torch.Generator(device=dev).manual_seed(1)
        data = [(torch.randn(16, 1, 16, 16, device=dev, generator=g), torch.randint(0, 10, (16,), device=dev, generator=g))
                for _ in range(5)]
        eager = TrainStep(model, opt, grad_clip=5.0, device=dev)
        for x, y in data[:2]:  # momentum exists before the capture, as after a resume
            eager(x, y)
        step = TrainStep(model, opt, grad_clip=5.0, capture=capture, device=dev)
        for x, y in data[2:]:
            step(x, y)
        torch.cuda.synchronize()
        assert step.captured == (capture == "cuda-graph")
        results.append([p.detach().clone() for p in model.parameters()])
    for p, q in zip(*results):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
