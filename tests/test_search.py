"""DARTS search: space spec, supernet (count, oracle), derivation rule, α gradients, runs."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from benchscripts import load_benchmark
from datafiles import fashion_mnist_root

from nasgal.compiler import compile_network
from nasgal.errors import NasgalError
from nasgal.progress import Reporter
from nasgal.search import architect
from nasgal.search.derive import derive_cell, derive_genotype, edge_normalisation, softmax_rows
from nasgal.search.space import DEFAULT_SPACE_PATH, SearchSpace, default_space
from nasgal.search.supernet import Architecture, Supernet
from nasgal.spec import Genotype, load, stack, validate_spec

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


# The space --------------------------------------------------------------------------
def test_shipped_space_is_the_packaged_one():
    assert (ROOT / "spaces" / "darts.json").read_text() == DEFAULT_SPACE_PATH.read_text()
    space = load(ROOT / "spaces" / "darts.json")
    assert isinstance(space, SearchSpace)
    assert space.ops[0] == "none" and len(space.ops) == 8 and space.num_edges == 14
    assert space.reduction_positions() == [2, 5]


def test_space_rejects_bad_ops_and_positions():
    with pytest.raises(NasgalError) as e:
        default_space().resized(ops=["none", "conv_9x9", "none"], reductions=[9])
    text = str(e.value)
    assert "unknown op 'conv_9x9'" in text and "none listed more than once" in text and "out of range" in text
    with pytest.raises(NasgalError, match="at least one op other than 'none'"):
        default_space().resized(ops=["none"])


# The supernet -----------------------------------------------------------------------
def test_supernet_weight_count_matches_reference():
    # docs/design.md, "Reference parameter counts": C=16, 8 cells, 3 input channels, 10 classes, default reductions.
    model = Supernet(default_space(), in_channels=3, classes=10)
    assert model.num_weights() == 1_930_618
    arch = Architecture(default_space())
    assert [tuple(p.shape) for p in arch.parameters()] == [(14, 8), (14, 8)]
    assert not {id(p) for p in arch.parameters()} & {id(p) for p in model.parameters()}


@pytest.mark.parametrize(
    "update, size, partial",
    [
        ({"cells": 3, "channels": 4}, 8, 1),
        ({"cells": 4, "channels": 4, "reductions": [1, 2]}, 9, 1),  # odd sizes, back-to-back reductions
        ({"cells": 3, "channels": 4, "nodes": 3, "ops": ["none", "max_pool_3x3", "skip_connect", "sep_conv_7x7", "conv_7x1_1x7", "dil_conv_3x3"]}, 8, 1),
        ({"cells": 3, "channels": 8}, 9, 2),  # PC-DARTS, odd size: the strided bypass pools with ceil
        ({"cells": 3, "channels": 8, "nodes": 3}, 8, 4),
    ],
)
def test_batched_supernet_equals_a_plain_darts_supernet(update, size, partial):
    """Oracle: the reference-style supernet (one module per op and edge, sum(w * op(x)); with
    partial channels, PC-DARTS per edge) with the same weights computes the same logits and
    α (and β) gradients."""
    bench = load_benchmark("search_step")
    torch.manual_seed(0)
    space = default_space().resized(**update)
    fused = Supernet(space, 3, 5, partial=partial).double()
    plain = bench.PlainSupernet(space, 3, 5, partial=partial).double()
    assert fused.num_weights() == sum(p.numel() for p in plain.parameters())
    bench.port_weights(fused, plain)
    arch = Architecture(space, partial).double()
    with torch.no_grad():
        for p in arch.parameters():
            p.normal_()
    x = torch.randn(3, 3, size, size, dtype=torch.double)
    yf, yp = fused(x, arch.as_dict()), plain(x, arch.as_dict())
    torch.testing.assert_close(yf, yp)
    gf = torch.autograd.grad(yf.square().sum(), list(arch.parameters()))
    gp = torch.autograd.grad(yp.square().sum(), list(arch.parameters()))
    for a, b in zip(gf, gp):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("partial", [1, 2])
def test_stage1_convs_with_copied_sources_equal_the_channel_multiplier_convs(partial):
    """The CPU layout of the supernet's first depthwise convs (each source copied per target)
    and the other devices' (a channel multiplier) give the same logits and the same gradients
    of every weight and of α."""
    from nasgal.compiler.cpu_paths import other_device_paths

    torch.manual_seed(0)
    space = default_space().resized(cells=3, channels=8)
    model = Supernet(space, 3, 5, partial=partial).double()
    arch = Architecture(space, partial).double()
    x = torch.randn(2, 3, 9, 9, dtype=torch.double)
    results = []
    for cpu in (True, False):
        with contextlib.nullcontext() if cpu else other_device_paths():
            y = model(x, arch.as_dict())
            results.append([y, *torch.autograd.grad(y.square().sum(), [*model.parameters(), *arch.parameters()])])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_partial_channels_and_stride2_stem_run_forward_and_backward():
    space = default_space().resized(cells=3, channels=8, stem="stride2")
    model = Supernet(space, 1, 4, partial=4)
    arch = Architecture(space, 4)
    assert {k for k in arch.as_dict()} == {"normal", "reduce", "beta_normal", "beta_reduce"}
    y = model(torch.randn(2, 1, 16, 16), arch.as_dict())
    assert y.shape == (2, 4)
    y.sum().backward()
    assert all(p.grad is not None for p in arch.parameters())
    with pytest.raises(NasgalError, match="must divide"):
        Supernet(default_space().resized(channels=6), 1, 4, partial=4)


# The derivation rule ------------------------------------------------------------------
def _space(nodes=4, ops=None, k=2) -> SearchSpace:
    upd = {"nodes": nodes, "edges_per_node": k}
    if ops:
        upd["ops"] = ops
    return default_space().resized(**upd)


def _uniform(space, value=0.1):
    return [[value] * len(space.ops) for _ in range(space.num_edges)]


def test_derivation_keeps_two_strongest_non_none_edges_and_ops():
    # Ops: none, max, avg, skip, sep3, sep5, dil3, dil5 (columns 0..7).
    sp = _space()
    w = _uniform(sp, 0.05)
    # Node 0 (rows 0, 1): row 0's 'none' is huge but does not count; sep3 wins on row 0.
    w[0] = [0.9, 0.01, 0.01, 0.01, 0.04, 0.01, 0.01, 0.01]
    w[1] = [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.1]  # dil3
    # Node 1 (rows 2, 3, 4): row 3 strongest (0.5, skip), row 4 next (0.4, sep5), row 2 dropped.
    w[2] = [0.0, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    w[3] = [0.0, 0.1, 0.1, 0.5, 0.1, 0.1, 0.0, 0.0]
    w[4] = [0.0, 0.1, 0.1, 0.1, 0.1, 0.4, 0.1, 0.0]
    # Node 2 (rows 5..8): a huge 'none' on row 8 must not make it strong; rows 6 and 5 win.
    w[5] = [0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8][::-1]  # dil5 0.8 -> reversed: none=0.8? see below
    w[5] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.8]  # dil5 0.8
    w[6] = [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.1]  # avg 0.9
    w[7] = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0]
    w[8] = [0.99, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0]
    cell = derive_cell(sp, w)
    got = [(e.src, e.dst, e.op) for e in cell.edges]
    assert got[:2] == [("c_{k-1}", 0, "dil_conv_3x3"), ("c_{k-2}", 0, "sep_conv_3x3")]
    assert got[2:4] == [("c_{k-1}", 1, "skip_connect"), (0, 1, "sep_conv_5x5")]
    assert got[4:6] == [("c_{k-1}", 2, "avg_pool_3x3"), ("c_{k-2}", 2, "dil_conv_5x5")]
    assert cell.concat == [0, 1, 2, 3] and cell.nodes == [0, 1, 2, 3]
    assert len(cell.edges) == 8


def test_derivation_ties_go_to_the_earlier_edge_and_op():
    sp = _space()
    w = _uniform(sp, 0.125)  # every non-none weight ties everywhere
    cell = derive_cell(sp, w)
    for j in range(4):
        ins = [(e.src, e.op) for e in cell.edges if e.dst == j]
        assert ins == [("c_{k-2}", "max_pool_3x3"), ("c_{k-1}", "max_pool_3x3")]


def test_derivation_on_a_five_node_space_without_none():
    ops = ["max_pool_3x3", "skip_connect", "sep_conv_3x3"]
    sp = _space(nodes=5, ops=ops, k=2)
    assert sp.num_edges == 2 + 3 + 4 + 5 + 6
    w = [[0.3, 0.3, 0.4] for _ in range(sp.num_edges)]
    # Node 4 (rows 14..19): make node 3 -> 4 (row 19) and node 1 -> 4 (row 17) the strongest, via max_pool.
    w[19] = [0.9, 0.05, 0.05]
    w[17] = [0.1, 0.8, 0.1]
    cell = derive_cell(sp, w)
    last = [(e.src, e.op) for e in cell.edges if e.dst == 4]
    assert last == [(3, "max_pool_3x3"), (1, "skip_connect")]
    assert cell.concat == [0, 1, 2, 3, 4]
    # One edge per node.
    one = derive_cell(_space(nodes=5, ops=ops, k=1), w)
    assert [e.dst for e in one.edges] == [0, 1, 2, 3, 4]


def test_derivation_with_edge_normalisation():
    sp = _space()
    w = _uniform(sp, 0.1)
    w[0][4] = 0.5  # c_{k-2} -> 0 has the strongest op ...
    beta = [0.0] * sp.num_edges
    beta[1] = 5.0  # ... but PC-DARTS's edge weight favours c_{k-1} -> 0
    en = edge_normalisation(sp, beta)
    assert math.isclose(sum(en[:2]), 1.0)
    cell = derive_cell(sp, w, en)
    assert [e.src for e in cell.edges if e.dst == 0] == ["c_{k-1}", "c_{k-2}"]


def test_derived_genotype_is_a_valid_stackable_spec():
    sp = default_space()
    torch.manual_seed(0)
    a_n = softmax_rows(torch.randn(14, 8).tolist())
    a_r = softmax_rows(torch.randn(14, 8).tolist())
    g = derive_genotype(sp, a_n, a_r, name="x", search={"dataset": "d"})
    g2 = validate_spec(Genotype, json.loads(g.model_dump_json(by_alias=True)))
    assert g2 == g
    net = stack(g, cells=5, channels=8, classes=10, in_channels=1, input_size=28)
    assert compile_network(net)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(NasgalError, match="expected 14 rows"):
        derive_cell(sp, a_n[:3])


# α gradients ----------------------------------------------------------------------------
def test_second_order_gradient_matches_exact_autograd():
    """The finite-difference DARTS gradient against d/dα L_val(w − η(∇_w L_train(w, α) + m·buf + wd·w), α)."""
    torch.manual_seed(0)
    space = default_space().resized(cells=2, channels=4, nodes=2, ops=["none", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3"], reductions=[1])
    model = Supernet(space, 1, 3).double()
    arch = Architecture(space).double()
    with torch.no_grad():
        for p in arch.parameters():
            p.mul_(300.0)  # away from uniform, so the gradient has structure
    x, y = torch.randn(6, 1, 6, 6, dtype=torch.double), torch.randint(0, 3, (6,))
    xv, yv = torch.randn(6, 1, 6, 6, dtype=torch.double), torch.randint(0, 3, (6,))
    lr, mom, wd = 0.05, 0.9, 3e-4
    names = [n for n, _ in model.named_parameters()]
    bufs = [0.01 * torch.randn_like(p) for p in model.parameters()]

    # DARTS's r = 0.01 perturbs the weights across ReLU kinks of so small a net (an O(jump/ε)
    # error); in float64 a smaller r isolates what is tested: the formula and its wiring.
    fd = architect.second_order(model, arch, x, y, xv, yv, lr, mom, wd, bufs, r=1e-4)

    from torch.func import functional_call

    from nasgal.search.bn import KeepOutputBatchNorm2d

    for m in model.modules():  # the exact oracle differentiates twice: torch's own BN
        if isinstance(m, KeepOutputBatchNorm2d):
            m.keep_output = False
    params = list(model.parameters())
    loss_tr = F.cross_entropy(model(x, arch.as_dict()), y)
    g = torch.autograd.grad(loss_tr, params, create_graph=True)  # depends on α
    w_virtual = {n: p - lr * (gi + mom * b + wd * p) for n, p, gi, b in zip(names, params, g, bufs)}
    loss_val = F.cross_entropy(functional_call(model, w_virtual, (xv, arch.as_dict())), yv)
    exact = torch.autograd.grad(loss_val, list(arch.parameters()))
    first = architect.first_order(model, arch, xv, yv)
    for a, b, c in zip(fd, exact, first):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(b, c, rtol=1e-3, atol=0)  # the second-order term matters here


def _reference_alpha_grad(model, arch, x, y, xv, yv, lr, mom, wd, bufs, order, r=0.01):
    """The α gradient computed the way the reference DARTS code does it, in the model's own
    dtype: the virtual step w' written into a copy of the model, w ± ε·v into the weights of
    another (the Hessian-vector product is taken at w, with v = ∇_w' L_val)."""
    import copy

    alphas = list(arch.parameters())
    model = copy.deepcopy(model)
    params = list(model.parameters())
    if order == "first":
        return list(torch.autograd.grad(F.cross_entropy(model(xv, arch.as_dict()), yv), alphas))
    unrolled = copy.deepcopy(model)
    g = torch.autograd.grad(F.cross_entropy(model(x, arch.as_dict(detach=True)), y), params)
    with torch.no_grad():
        for p, gi, b in zip(unrolled.parameters(), g, bufs):
            p.sub_(lr * (gi + wd * p + mom * b))
    w_virtual = list(unrolled.parameters())
    grads = torch.autograd.grad(F.cross_entropy(unrolled(xv, arch.as_dict()), yv), alphas + w_virtual)
    d_alpha, v = grads[: len(alphas)], grads[len(alphas):]
    eps = r / torch.cat([t.reshape(-1) for t in v]).norm()
    original = [p.detach().clone() for p in params]

    def at(sign):
        with torch.no_grad():
            for p, w, vi in zip(params, original, v):
                p.copy_(w + sign * eps * vi)
        return torch.autograd.grad(F.cross_entropy(model(x, arch.as_dict()), y), alphas)

    g_plus, g_minus = at(1.0), at(-1.0)
    return [da - lr * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, g_plus, g_minus)]


@pytest.mark.parametrize("order", ["first", "second"])
def test_alpha_gradient_in_float64_equals_the_exact_computation(order):
    """No float32 inside the α step: in float64 it agrees with the computation done in float64
    throughout to rounding (~1e-12; with a float32 loss or ε it was ~1e-8 and ~1e-5)."""
    torch.manual_seed(0)
    space = default_space().resized(cells=3, channels=4, nodes=2, reductions=[1])
    model = Supernet(space, 1, 3).double()
    arch = Architecture(space).double()
    with torch.no_grad():
        for p in arch.parameters():
            p.mul_(300.0)
    x, y = torch.randn(6, 1, 8, 8, dtype=torch.double), torch.randint(0, 3, (6,))
    xv, yv = torch.randn(6, 1, 8, 8, dtype=torch.double), torch.randint(0, 3, (6,))
    lr, mom, wd = 0.025, 0.9, 3e-4
    bufs = [0.01 * torch.randn_like(p) for p in model.parameters()]
    expected = _reference_alpha_grad(model, arch, x, y, xv, yv, lr, mom, wd, bufs, order)
    if order == "first":
        ours = architect.first_order(model, arch, xv, yv)
    else:
        ours = architect.second_order(model, arch, x, y, xv, yv, lr, mom, wd, bufs)
    for a, b in zip(ours, expected):
        assert a.dtype == torch.float64
        assert (a - b).abs().max().item() <= 1e-12 * max(1.0, b.abs().max().item())
    # The α step itself (DARTS's Adam on these gradients) then agrees to the same precision.
    steps = []
    for grads in (ours, expected):
        alphas = [torch.nn.Parameter(p.detach().clone()) for p in arch.parameters()]
        opt = torch.optim.Adam(alphas, 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        for p, g in zip(alphas, grads):
            p.grad = g
        opt.step()
        steps.append(alphas)
    for a, b in zip(*steps):
        assert (a - b).abs().max().item() <= 1e-12


def test_loss_keeps_float64_and_lifts_bf16():
    assert architect.at_least_fp32(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64
    assert architect.at_least_fp32(torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.float32
    assert architect.at_least_fp32(torch.zeros(2)).dtype == torch.float32


# Runs -----------------------------------------------------------------------------------
def _synthetic(n=16, size=8, classes=3, seed=0):
    from nasgal.data import Dataset, DatasetInfo

    g = torch.Generator().manual_seed(seed)
    info = DatasetInfo(
        name="synthetic", channels=1, size=(size, size), classes=classes,
        class_names=tuple(str(i) for i in range(classes)), mean=(0.5,), std=(0.25,),
    )
    images = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    return Dataset(images, torch.arange(n) % classes, info, "train")


TINY = {"cells": 2, "channels": 4, "reductions": [1]}


def _config(**kw):
    from nasgal.search.config import SearchConfig

    base = dict(epochs=2, batch_size=4, dataset="synthetic", seed=3)
    base.update(kw)
    return SearchConfig(**base)


def _check_genotype(path: Path, cells=3):
    g = load(path)
    assert isinstance(g, Genotype)
    net = stack(g, cells=cells, channels=4, classes=3, in_channels=1, input_size=8, reductions=[1])
    out = compile_network(net)(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 3)
    return g


def test_tiny_search_end_to_end(tmp_path):
    from nasgal.search.run import search

    space = default_space().resized(**TINY)
    g = search(space, _synthetic(), _config(), tmp_path)
    on_disk = _check_genotype(tmp_path / "genotype.json")
    assert on_disk == g
    facts = g.provenance.search
    assert facts["dataset"] == "synthetic" and facts["seed"] == 3 and facts["epochs"] == 2 and facts["order"] == "first"
    assert len(facts["alpha_normal"]) == 14 and len(facts["alpha_normal"][0]) == 8
    assert sorted(p.name for p in (tmp_path / "genotypes").iterdir()) == ["epoch_001.json", "epoch_002.json"]
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert set(lines[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s"}
    hist = json.loads((tmp_path / "alpha_history.json").read_text())
    assert [h["epoch"] for h in hist["epochs"]] == [1, 2] and hist["ops"] == list(space.ops)
    for name in ("alpha_normal.png", "alpha_reduce.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["epochs_done"] == 2


def test_second_order_and_partial_channel_searches_run(tmp_path):
    from nasgal.search.run import search

    space = default_space().resized(cells=2, channels=8, reductions=[1])
    search(space, _synthetic(), _config(epochs=1, order="second"), tmp_path / "second")
    _check_genotype(tmp_path / "second" / "genotype.json")
    g = search(space, _synthetic(), _config(epochs=1, partial_channels=2), tmp_path / "pc")
    assert "beta_normal" in g.provenance.search
    _check_genotype(tmp_path / "pc" / "genotype.json")


def test_alpha_is_outside_weight_decay_and_clipping(tmp_path):
    """With α's own learning rate at 0, a whole epoch of weight steps (SGD weight decay,
    gradient clipping at a tiny norm) leaves α bit for bit unchanged."""
    from nasgal.search.run import SearchStage

    space = default_space().resized(**TINY)
    run = SearchStage(space, _synthetic(), _config(arch_lr=0.0, grad_clip=1e-3, weight_decay=0.5), tmp_path)
    run.setup()
    run.ready(0)
    in_w_opt = {id(p) for group in run.w_opt.param_groups for p in group["params"]}
    assert not in_w_opt & {id(p) for p in run.arch.parameters()}
    assert in_w_opt == {id(p) for p in run.model.parameters()}
    before_a = [p.detach().clone() for p in run.arch.parameters()]
    before_w = [p.detach().clone() for p in run.model.parameters()]
    run.run_epoch(0, Reporter())
    for a, b in zip(before_a, run.arch.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(before_w, run.model.parameters()))
    # The α gradient of the last step is whole: clipping (at 1e-3) never saw it.
    assert max(p.grad.abs().max().item() for p in run.arch.parameters()) > 0
    assert sum(p.grad.norm() ** 2 for p in run.model.parameters()).sqrt() <= 1e-3 * 1.01


class _Stop(Exception):
    pass


class _Recorder(Reporter):
    """Records every call; ``stop_after=n`` raises :class:`_Stop` at the end of epoch n."""

    def __init__(self, stop_after: int | None = None):
        self.calls: list[tuple] = []
        self.stop_after = stop_after

    def start(self, title, epoch, epochs, steps):
        self.calls.append(("start", title, epoch, epochs, steps))

    def advance(self, n=1):
        self.calls.append(("advance", n))

    def end(self, row):
        self.calls.append(("end", row))
        if row["epoch"] == self.stop_after:
            raise _Stop

    def message(self, text):
        self.calls.append(("message", text))

    def close(self):
        self.calls.append(("close",))


def test_search_reports_steps_epochs_and_resume(tmp_path):
    from nasgal.search.derive import summary
    from nasgal.search.run import search

    space = default_space().resized(**TINY)
    out = tmp_path / "run"
    steps = 2  # 16 images: halves of 8, batches of 4
    metric_keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s"}

    def epoch_calls(calls, epoch):
        assert calls[0] == ("start", "search", epoch - 1, 3, steps)
        assert calls[1:1 + steps] == [("advance", 1)] * steps
        kind, row = calls[1 + steps]
        assert kind == "end" and set(row) == metric_keys | {"genotype"} and row["epoch"] == epoch
        assert row["genotype"] == summary(load(out / "genotypes" / f"epoch_{epoch:03d}.json"))
        return calls[2 + steps:]

    first = _Recorder(stop_after=1)
    with pytest.raises(_Stop):
        search(space, _synthetic(), _config(epochs=3), out, reporter=first)
    assert epoch_calls(first.calls, 1) == [("close",)]

    resumed = _Recorder()
    g = search(space, _synthetic(), _config(epochs=3), out, reporter=resumed)
    assert resumed.calls[0] == ("message", f"resuming {out} after epoch 1/3")
    rest = epoch_calls(epoch_calls(resumed.calls[1:], 2), 3)
    assert rest == [("close",)]
    assert resumed.calls[-2][1]["genotype"] == summary(g)

    done = _Recorder()
    assert search(space, _synthetic(), _config(epochs=3), out, reporter=done) == g
    assert done.calls == [("message", f"{out} is already complete (3 epochs); nothing to do"), ("close",)]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    from nasgal.search.run import search

    space = default_space().resized(**TINY)
    whole = search(space, _synthetic(), _config(epochs=3), tmp_path / "whole")

    with pytest.raises(_Stop):
        search(space, _synthetic(), _config(epochs=3), tmp_path / "cut", reporter=_Recorder(stop_after=1))
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epochs_done"] == 1
    resumed = search(space, _synthetic(), _config(epochs=3), tmp_path / "cut")
    assert resumed.provenance.search == whole.provenance.search
    assert resumed.cells == whole.cells
    m_whole = [json.loads(ln) for ln in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    m_cut = [json.loads(ln) for ln in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    strip = lambda ms: [{k: v for k, v in m.items() if k != "epoch_time_s"} for m in ms]  # noqa: E731
    assert strip(m_cut) == strip(m_whole)
    # A different configuration refuses to resume.
    with pytest.raises(NasgalError, match=r"other settings \(seed: 3 -> 4\)"):
        search(space, _synthetic(), _config(epochs=3, seed=4), tmp_path / "cut")


def test_cli_search_prints_plain_progress_lines_when_not_a_terminal(tmp_path, capsys):
    from nasgal.cli.main import main

    data = fashion_mnist_root(tmp_path, n_train=64, n_test=8)
    args = ["search", "--dataset", "fashion_mnist", "--data-dir", str(data), "--epochs", "1",
            "--cells", "2", "--channels", "4", "--batch-size", "16", "--device", "cpu"]
    code = main([*args, "--out", str(tmp_path / "run")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "search epoch 1/1: epoch=1 train_loss=" in cap.err and " genotype=normal: " in cap.err
    assert cap.out.startswith(f"{tmp_path / 'run' / 'genotype.json'}: normal: ")
    assert "Traceback" not in cap.err
    code = main([*args, "--out", str(tmp_path / "quiet"), "--quiet"])
    cap = capsys.readouterr()
    assert code == 0 and cap.err == ""


def test_cli_reports_bad_options_without_traceback(capsys):
    from nasgal.cli.main import main

    code = main(["search", "--dataset", "fashion_mnist", "--out", "/tmp/never", "--order", "third"])
    err = capsys.readouterr().err
    assert code == 1 and "Error:" in err and "--order" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_first_order_search_on_real_fashion_mnist(tmp_path, capsys):
    from nasgal.cli.main import main

    out = tmp_path / "run"
    code = main([
        "search", "--dataset", "fashion_mnist", "--data-dir", str(FASHION), "--subset", "256", "--epochs", "1",
        "--cells", "3", "--channels", "4", "--batch-size", "32", "--device", "cpu", "--out", str(out),
    ])
    assert code == 0, capsys.readouterr().err
    g = load(out / "genotype.json")
    assert g.provenance.search["dataset"] == "fashion_mnist" and g.provenance.search["subset"] == 256
    net = stack(g, cells=5, channels=16, classes=10, in_channels=1, input_size=28)
    assert compile_network(net)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
