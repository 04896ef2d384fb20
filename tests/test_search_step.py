"""The capturable search step: its optimizers and step equal DARTS's torch.optim loop, and the
warm-up of a capture is undone exactly (the graph replay itself needs CUDA; see test_gpu.py)."""

from __future__ import annotations

import copy
import json
import math
import logging

import pytest
import torch
import torch.nn.functional as F

from nasgal.search import architect
from nasgal.search.space import default_space
from nasgal.search.step import SearchStep, make_optimizers
from nasgal.search.supernet import Architecture, Supernet
from nasgal.engine.optim import adam, set_lr, sgd
from nasgal.engine.step import StateSnapshot

HP = dict(lr=0.025, momentum=0.9, weight_decay=3e-4, arch_lr=3e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3)


def _nets(partial=1, seed=0):
    space = default_space().resized(cells=3, channels=4, nodes=3)
    torch.manual_seed(seed)
    model = Supernet(space, 1, 3, partial=partial).double()
    arch = Architecture(space, partial, generator=torch.Generator().manual_seed(seed)).double()
    return model, arch


def _batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (4,), generator=g),
         torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (4,), generator=g))
        for _ in range(n)
    ]


def _reference_loop(model, arch, batches, order):
    """DARTS's loop with torch.optim.SGD, torch.optim.Adam and clip_grad_norm_ (the oracle)."""
    w_opt = torch.optim.SGD(model.parameters(), HP["lr"], momentum=HP["momentum"], weight_decay=HP["weight_decay"])
    a_opt = torch.optim.Adam(arch.parameters(), HP["arch_lr"], betas=HP["arch_betas"], weight_decay=HP["arch_weight_decay"])
    losses = []
    for x, y, xv, yv in batches:
        a_opt.zero_grad()
        if order == "first":
            grads = architect.first_order(model, arch, xv, yv)
        else:
            grads = architect.second_order(
                model, arch, x, y, xv, yv, HP["lr"], HP["momentum"], HP["weight_decay"],
                architect.momentum_buffers(model, w_opt),
            )
        for p, g in zip(arch.parameters(), grads):
            p.grad = g
        a_opt.step()
        w_opt.zero_grad()
        loss = F.cross_entropy(model(x, arch.as_dict(detach=True)), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), 5.0)
        w_opt.step()
        losses.append(loss.item())
    return losses


def test_engine_adam_equals_plain_torch_adam_and_their_checkpoints_interchange():
    """The α optimizer (fused, capturable, tensor rate) computes what plain torch Adam computes,
    keeps the same state, and checkpoints load either way (with the rate on the device)."""
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    ref = torch.optim.Adam([a], 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    ours = adam([b], 3e-4, (0.5, 0.999), 1e-3, "cpu")
    ours.param_groups[0]["lr"] = torch.tensor(3e-4, dtype=torch.float64)  # compare at float64 precision
    for _ in range(25):
        g = torch.randn(5, 3, dtype=torch.float64)
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15)
    assert set(ours.state[b]) == set(ref.state[a]) == {"step", "exp_avg", "exp_avg_sq"}
    assert float(ours.state[b]["step"]) == 25
    # torch's checkpoint loads into it; set_lr then writes the rate the next step reads.
    back = adam([torch.nn.Parameter(b.detach().clone())], 1.0, (0.5, 0.999), 1e-3, "cpu")
    back.load_state_dict(copy.deepcopy(ref.state_dict()))  # torch loads same-device tensors without a copy
    (st,) = back.state.values()
    assert float(st["step"]) == 25 and float(back.param_groups[0]["lr"]) == pytest.approx(3e-4)
    set_lr(back, 0.0)
    (p,) = back.param_groups[0]["params"]
    before = p.detach().clone()
    p.grad = torch.ones_like(p)
    back.step()
    assert torch.equal(p, before)  # rate 0: the loaded state's step moved nothing
    # Its checkpoint loads into plain Adam and the next steps agree.
    again = torch.optim.Adam([b], 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    again.load_state_dict(ours.state_dict())
    g = torch.randn(5, 3, dtype=torch.float64)
    a.grad, b.grad = g.clone(), g.clone()
    ref.step()
    again.step()
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15)


def test_engine_sgd_equals_plain_torch_sgd_and_follows_set_lr():
    torch.manual_seed(0)
    a = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    b = [t.detach().clone().requires_grad_() for t in a]
    ref = torch.optim.SGD(a, lr=0.05, momentum=0.9, weight_decay=3e-4)
    ours = sgd(b, 0.05, 0.9, 3e-4, "cpu")
    for step in range(4):
        for params, opt in ((a, ref), (b, ours)):
            opt.zero_grad()
            sum((p * (step + 1.5)).sin().sum() for p in params).backward()
            opt.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert set(ours.state[b[0]]) == set(ref.state[a[0]]) == {"momentum_buffer"}
    set_lr(ours, 0.01)
    assert isinstance(ours.param_groups[0]["lr"], torch.Tensor) and float(ours.param_groups[0]["lr"]) == pytest.approx(0.01)


@pytest.mark.parametrize("order,partial", [("first", 1), ("first", 2), ("second", 1)])
def test_search_step_equals_the_torch_optim_loop(order, partial):
    batches = _batches(3)
    model_a, arch_a = _nets(partial)
    ref_losses = _reference_loop(model_a, arch_a, batches, order)
    model_b, arch_b = _nets(partial)
    w_opt, a_opt = make_optimizers(model_b, arch_b, device=torch.device("cpu"), **HP)
    for opt, key in ((w_opt, "lr"), (a_opt, "arch_lr")):  # float64 rates, to compare at float64 precision
        assert opt.param_groups[0]["lr"].item() == pytest.approx(HP[key])
        opt.param_groups[0]["lr"] = torch.tensor(HP[key], dtype=torch.float64)
    step = SearchStep(model_b, arch_b, w_opt, a_opt, order=order, grad_clip=5.0)
    for b in batches:
        step(*b)
    # float64; the last cell's BNs see 4 images of 2x2 pixels, which amplifies rounding to ~1e-9
    # (a missing weight decay alone would move weights by ~1e-6, a wrong Adam α by ~1e-4).
    for (name, pa), pb in zip(model_a.named_parameters(), model_b.parameters()):
        torch.testing.assert_close(pb, pa, rtol=1e-6, atol=1e-8, msg=lambda m, name=name: f"{name}: {m}")
    for pa, pb in zip(arch_a.parameters(), arch_b.parameters()):
        torch.testing.assert_close(pb, pa, rtol=1e-6, atol=1e-8)
    loss, acc, seen = step.read_stats()
    assert seen == 12
    assert loss == pytest.approx(sum(ref_losses) / 3, rel=1e-6)  # accumulated in float32
    assert 0.0 <= acc <= 1.0
    assert step.read_stats()[2] == 0  # read once, then reset


def test_alpha_moves_and_weights_follow_the_device_learning_rate():
    model, arch = _nets()
    w_opt, a_opt = make_optimizers(model, arch, device=torch.device("cpu"), **HP)
    step = SearchStep(model, arch, w_opt, a_opt)
    before = [p.detach().clone() for p in model.parameters()]
    alpha0 = arch.alpha_normal.detach().clone()
    w_opt.param_groups[0]["lr"].fill_(0.0)  # the schedule writes into the tensor the step reads
    for b in _batches(1):
        step(*b)
    # With a learning rate of 0 the weights stay ...
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert not torch.equal(arch.alpha_normal, alpha0)  # ... but α's own optimizer does


def test_snapshot_restore_undoes_steps_including_new_optimizer_state():
    model, arch = _nets()
    w_opt, a_opt = make_optimizers(model, arch, device=torch.device("cpu"), **HP)
    step = SearchStep(model, arch, w_opt, a_opt)
    batches = _batches(4)
    step(*batches[0])  # optimizer state exists (as after a resume) ...
    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    buf0 = [w_opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    snap = StateSnapshot([model, arch], [w_opt, a_opt])
    for b in batches[1:3]:  # ... a warm-up changes it ...
        step(*b)
    snap.restore()  # ... and is undone in place
    for k, v in model.state_dict().items():
        assert torch.equal(v, state0[k]), k
    for p, b in zip(model.parameters(), buf0):
        assert torch.equal(w_opt.state[p]["momentum_buffer"], b)
    # State created after the snapshot is zeroed, which for our optimizers means "no step yet".
    model2, arch2 = _nets()
    w2, a2 = make_optimizers(model2, arch2, device=torch.device("cpu"), **HP)
    fresh = SearchStep(model2, arch2, w2, a2)
    snap2 = StateSnapshot([model2, arch2], [w2, a2])
    fresh(*batches[1])
    snap2.restore()
    assert all(float(a2.state[p]["step"]) == 0 for p in arch2.parameters())
    model3, arch3 = _nets()
    w3, a3 = make_optimizers(model3, arch3, device=torch.device("cpu"), **HP)
    never = SearchStep(model3, arch3, w3, a3)
    for b in batches[:2]:
        fresh(*b)
        never(*b)
    for pa, pb in zip(model2.parameters(), model3.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=1e-15)
    for pa, pb in zip(arch2.parameters(), arch3.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=1e-15)


def test_cuda_graph_capture_falls_back_with_a_warning_on_cpu(caplog):
    model, arch = _nets()
    w_opt, a_opt = make_optimizers(model, arch, device=torch.device("cpu"), **HP)
    with caplog.at_level(logging.WARNING):
        step = SearchStep(model, arch, w_opt, a_opt, capture="cuda-graph")
    assert step.capture == "none" and "needs a CUDA device" in caplog.text
    with pytest.raises(ValueError, match="capture must be one of"):
        SearchStep(model, arch, w_opt, a_opt, capture="graph")
    assert isinstance(w_opt, torch.optim.SGD) and isinstance(a_opt, torch.optim.Adam)
    assert w_opt.defaults["fused"] and a_opt.defaults["fused"] and a_opt.defaults["capturable"]


def test_keep_output_batch_norm_equals_torch_batch_norm():
    from nasgal.search.bn import KeepOutputBatchNorm2d

    torch.manual_seed(0)
    ours, ref = KeepOutputBatchNorm2d(5).double(), torch.nn.BatchNorm2d(5, affine=False).double()
    assert ours.state_dict().keys() == ref.state_dict().keys()
    for _ in range(3):  # training mode: output, input gradient, running statistics
        x = (3 * torch.randn(4, 5, 6, 7, dtype=torch.float64) + 1).requires_grad_(True)
        dy = torch.randn(4, 5, 6, 7, dtype=torch.float64)
        y1, y2 = ours(x), ref(x)
        torch.testing.assert_close(y1, y2)
        (g1,) = torch.autograd.grad(y1, x, dy)
        (g2,) = torch.autograd.grad(y2, x, dy)
        torch.testing.assert_close(g1, g2)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[k], v)
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: KeepOutputBatchNorm2d(5).double()(t), (x,))
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x))
    # bf16 autocast-style input: statistics in float32, output in bf16, gradient close to float32's.
    xb = torch.randn(8, 5, 4, 4).bfloat16().requires_grad_(True)
    yb = KeepOutputBatchNorm2d(5).train()(xb)
    assert yb.dtype == torch.bfloat16
    yf = torch.nn.BatchNorm2d(5, affine=False)(xb.detach().float())
    torch.testing.assert_close(yb.float(), yf, rtol=1e-2, atol=1e-2)


def test_recompute_keeps_results_and_saves_memory():
    from nasgal.search.supernet import SourceBatch

    space = default_space().resized(cells=3, channels=4, nodes=3)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (4,))
    out = {}
    for recompute in (False, True):
        torch.manual_seed(0)
        model = Supernet(space, 1, 3).double()
        arch = Architecture(space, 1, generator=torch.Generator().manual_seed(0)).double()
        for m in model.modules():
            if isinstance(m, SourceBatch):
                m.recompute = recompute
        saved = {}

        def pack(t, saved=saved):
            saved.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(model(x, arch.as_dict(detach=True)), y)
        loss.backward()
        out[recompute] = (sum(saved.values()), [p.grad.clone() for p in model.parameters()])
    assert out[True][0] < 0.75 * out[False][0]
    for a, b in zip(out[False][1], out[True][1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_recompute_under_functional_call_uses_the_swapped_weights():
    """The second-order step runs the supernet through torch.func.functional_call with virtual
    weights; a recomputation in backward must see those, not the module's own."""
    batches = _batches(2)
    results = []
    for recompute in (False, True):
        model, arch = _nets()
        model.set_recompute(recompute)
        w_opt, a_opt = make_optimizers(model, arch, device=torch.device("cpu"), **HP)
        step = SearchStep(model, arch, w_opt, a_opt, order="second")
        for b in batches:
            step(*b)
        results.append([p.detach().clone() for p in [*arch.parameters(), *model.parameters()]])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


def test_keep_output_batch_norm_refuses_double_backward():
    from nasgal.search.bn import KeepOutputBatchNorm2d

    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    (g,) = torch.autograd.grad(KeepOutputBatchNorm2d(3)(x).pow(3).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_search_run_options_capture_recompute_and_lr_schedule(tmp_path, caplog):
    from test_search import TINY, _config, _synthetic

    from nasgal.errors import NasgalError
    from nasgal.search.run import search

    space = default_space().resized(**TINY)
    plain = search(space, _synthetic(), _config(), tmp_path / "plain")
    # Recompute changes memory, not results; a CUDA graph falls back to eager on CPU.
    with caplog.at_level(logging.WARNING):
        other = search(space, _synthetic(), _config(recompute=True, capture="cuda-graph"), tmp_path / "other")
    assert "needs a CUDA device" in caplog.text
    assert other.cells == plain.cells
    torch.testing.assert_close(
        torch.tensor(other.provenance.search["alpha_normal"]), torch.tensor(plain.provenance.search["alpha_normal"]),
        rtol=1e-4, atol=1e-6,
    )
    # The weights' rate follows the cosine schedule of CosineAnnealingLR, one value per epoch.
    lines = (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()
    cfg = _config()
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr_min)
    for line in lines:
        assert json.loads(line)["lr"] == pytest.approx(sched.get_last_lr()[0], rel=1e-9)
        opt.step()
        sched.step()
    # A checkpoint of another format is refused with a hint, not a traceback.
    ck = torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=True)
    ck["format"] = 1
    torch.save(ck, tmp_path / "plain" / "checkpoint.pt")
    (tmp_path / "plain" / "config.json").unlink()  # the checkpoint alone must be refused
    with pytest.raises(NasgalError, match="checkpoint format 1") as info:
        search(space, _synthetic(), _config(epochs=3), tmp_path / "plain")
    assert "--restart" in info.value.hint
    from nasgal.search.config import search_config

    with pytest.raises(NasgalError, match="capture") as bad:  # validated by the config model, before any run
        search_config(epochs=2, batch_size=4, capture="graph")
    assert "cuda-graph" in str(bad.value)


def test_a_failed_capture_is_undone_and_the_step_runs_eagerly(caplog):
    batches = _batches(2)
    model, arch = _nets()
    w_opt, a_opt = make_optimizers(model, arch, device=torch.device("cpu"), **HP)
    step = SearchStep(model, arch, w_opt, a_opt)
    step.capture = "cuda-graph"  # as on a GPU; recording then fails after a partial warm-up

    def failing_record(tensors):
        step._body(*tensors)
        step._body(*tensors)
        raise RuntimeError("operation not permitted when stream is capturing")

    step._record = failing_record
    with caplog.at_level(logging.WARNING):
        step(*batches[0])
        step(*batches[1])
    assert step.capture == "none" and "capture failed (RuntimeError" in caplog.text
    # The result is that of two eager steps: the warm-up left no trace.
    model2, arch2 = _nets()
    w2, a2 = make_optimizers(model2, arch2, device=torch.device("cpu"), **HP)
    eager = SearchStep(model2, arch2, w2, a2)
    for b in batches:
        eager(*b)
    for p, q in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)
    for p, q in zip(arch.parameters(), arch2.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)
    assert step.read_stats()[2] == eager.read_stats()[2] == 8


@pytest.mark.parametrize("order", ["first", "second"])
@pytest.mark.parametrize("partial,recompute,channels_last", [(1, True, True), (2, True, False), (2, False, True)])
def test_bf16_steps_run_with_every_memory_option(order, partial, recompute, channels_last):
    space = default_space().resized(cells=3, channels=8)
    torch.manual_seed(0)
    model, arch = Supernet(space, 3, 10, partial=partial, recompute=recompute), Architecture(space, partial)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    w_opt, a_opt = make_optimizers(model, arch, device=torch.device("cpu"), **HP)
    step = SearchStep(model, arch, w_opt, a_opt, order=order, precision="bf16")
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    alpha0 = arch.alpha_normal.detach().clone()
    step(x, torch.randint(0, 10, (4,)), x.clone(), torch.randint(0, 10, (4,)))
    loss, _, seen = step.read_stats()
    assert seen == 4 and math.isfinite(loss)
    assert not torch.equal(arch.alpha_normal, alpha0)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_supernet_advances_every_bn_batch_counter_once_per_training_forward():
    """The supernet advances its search BNs' counters with one foreach kernel; the counts must
    be what nn.BatchNorm2d keeps: one per training forward, none in eval mode."""
    model, arch = _nets()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    model(x, arch.as_dict())
    model(x, arch.as_dict())
    assert {int(m.num_batches_tracked) for m in bns} == {2}
    model.eval()
    model(x, arch.as_dict())
    bns[1].train()  # one module back in training mode: only it counts
    model(x, arch.as_dict())
    assert sorted(int(m.num_batches_tracked) for m in bns) == [2] * (len(bns) - 1) + [3]
