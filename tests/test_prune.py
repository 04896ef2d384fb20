"""GAL pruning: masks, critic and generator dynamics, budget, connectivity guard, runs, inheritance, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nasgal
from nasgal.cli.main import main
from nasgal.compiler import compile_network
from nasgal.errors import NasgalError
from nasgal.prune import (
    Critic, GALStep, MaskFista, PruneConfig, candidates, inherit_weights, prune, resolve_prune_config, select_nodes,
)
from nasgal.runfiles import PRUNE_LOG as LOG, PRUNED
from nasgal.engine.rundir import load_checkpoint, save_checkpoint

from datafiles import fashion_mnist_root, offline

ROOT = Path(__file__).resolve().parents[1]
GENO = ROOT / "genotypes" / "darts_v2.json"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    offline(monkeypatch)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets run fastest on one thread, and a busy 2-core machine makes more threads thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return fashion_mnist_root(tmp_path, n_train=120, n_test=20)


def tiny_network(auxiliary: bool = False, cells: int = 3, channels: int = 4) -> nasgal.Network:
    return nasgal.stack(nasgal.load(GENO), cells=cells, channels=channels, classes=10, in_channels=1,
                        input_size=28, auxiliary=auxiliary)


def paper_network(reductions=None) -> nasgal.Network:
    return nasgal.stack(nasgal.load(GENO), cells=5, channels=16, classes=10, in_channels=1, input_size=28,
                        reductions=reductions)


def random_state(net: nasgal.Network, seed: int = 0, zero_shift: bool = False) -> dict[str, torch.Tensor]:
    """Random weights and BN statistics; ``zero_shift``: BN maps 0 to 0 (bias and running mean 0)."""
    torch.manual_seed(seed)
    model = compile_network(net)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith("running_mean") or (name.endswith("bias") and t.dim() == 1 and "classifier" not in name):
                t.copy_(torch.zeros_like(t) if zero_shift else 0.1 * torch.randn_like(t))
            elif name.endswith("weight") and t.dim() == 1:  # BN scale
                t.copy_(torch.rand_like(t) + 0.5)
            else:
                t.copy_(0.3 * torch.randn_like(t))
    return {k: v.clone() for k, v in model.state_dict().items()}


def small_config(**kw) -> PruneConfig:
    base = dict(epochs=2, batch_size=20, device="cpu", val_fraction=0.2, channels_last=False)
    base.update(kw)
    return resolve_prune_config(**base)


def run_prune(tmp_path, data_dir, name="run", net=None, state=None, **kw):
    net = net or tiny_network()
    state = state if state is not None else random_state(net)
    return prune(net, state, dataset="fashion_mnist", config=small_config(**kw), out_dir=tmp_path / name,
                 data_dir=data_dir)


def gal_parts(net, *, lam_mask_lr=0.01, critic_lr=5e-5, mu=1.0, clip=0.01, seed=0):
    state = random_state(net, seed)
    teacher = compile_network(net)
    teacher.load_state_dict(state)
    teacher.eval().requires_grad_(False)
    gen = compile_network(net, gates=True)
    gen.load_state_dict(state, strict=False)
    gen.eval()
    torch.manual_seed(seed)
    critic = Critic(net.classes)
    weights = [p for n, p in gen.named_parameters() if not n.endswith(".gate")]
    opt_g = torch.optim.SGD(weights, lr=0.01, momentum=0.9, weight_decay=3e-4)
    opt_d = torch.optim.RMSprop(critic.parameters(), lr=critic_lr)
    gates = gen.gates()
    fista = MaskFista([gates[p] for p in sorted(gates)], lam_mask_lr, restart=100)
    step = GALStep(teacher, gen, critic, opt_g, opt_d, fista, mu=mu, clip=clip)
    return step, gen, gates, fista


# Masks ------------------------------------------------------------------------------------
def test_masks_stay_non_negative_after_every_step():
    net = tiny_network()
    step, gen, gates, fista = gal_parts(net, lam_mask_lr=0.5)
    x = torch.randn(8, 1, 28, 28)
    for _ in range(12):
        step(x, lam=0.3)
        assert all((g >= 0).all() for g in gates.values())
        assert all((m >= 0).all() for m in fista.masks())
    masks = torch.cat(fista.masks())
    assert (masks == 0).any(), "a strong λ sets some masks exactly to zero"


def test_fista_is_a_proximal_step_on_a_quadratic():
    """On f(m) = ½‖m − a‖², λ‖m‖₁, m ≥ 0, FISTA reaches max(a − λ, 0)."""
    g = torch.nn.Parameter(torch.ones(4))
    a = torch.tensor([2.0, 0.5, 0.05, -1.0])
    opt = MaskFista([g], lr=0.2, restart=20)
    for _ in range(300):
        opt.zero_grad()
        (0.5 * ((g - a) ** 2).sum()).backward()
        opt.step(lam=0.1)
        assert (g >= 0).all()
    assert torch.allclose(opt.masks()[0], torch.tensor([1.9, 0.4, 0.0, 0.0]), atol=1e-4)


# Critic and generator ----------------------------------------------------------------------------
def test_critic_wasserstein_estimate_grows_while_the_critic_trains_alone():
    net = tiny_network()
    step, gen, gates, _ = gal_parts(net, critic_lr=1e-3)
    with torch.no_grad():
        for g in gates.values():
            g.mul_(0.3)  # G differs from T
    step.train_generator = False
    torch.manual_seed(1)
    x = torch.randn(16, 1, 28, 28)
    estimates = []
    for _ in range(6):
        for _ in range(3):
            step(x, lam=0.0)
        estimates.append(step.read_stats()["wasserstein"])
    assert estimates[-1] > estimates[0] > -1e-6
    assert estimates == sorted(estimates)


def test_generator_data_loss_falls_when_it_trains_with_mu():
    net = tiny_network()
    step, gen, gates, fista = gal_parts(net, lam_mask_lr=0.2, mu=10.0)
    with torch.no_grad():
        for g in gates.values():
            g.mul_(0.3)
        for x in fista.x:
            x.mul_(0.3)
    torch.manual_seed(2)
    xs = [torch.randn(16, 1, 28, 28) for _ in range(3)]
    losses = []
    for _ in range(5):
        for x in xs:
            step(x, lam=0.0)
        losses.append(step.read_stats()["data_loss"])
    assert losses[-1] < 0.7 * losses[0]


def test_generator_starts_equal_to_the_teacher_in_eval_mode():
    net = tiny_network()
    step, gen, gates, _ = gal_parts(net)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(step.real(x), torch.softmax(gen(x), 1))


def test_noise_z_is_dropout_on_the_generator_input_only():
    net = tiny_network()
    step, gen, gates, _ = gal_parts(net)
    seen: dict[str, list[torch.Tensor]] = {"g": [], "t": []}
    gen.register_forward_pre_hook(lambda m, args: seen["g"].append(args[0]))
    step.teacher.register_forward_pre_hook(lambda m, args: seen["t"].append(args[0]))
    torch.manual_seed(0)
    x = torch.randn(8, 1, 28, 28)
    step(x, lam=0.0)  # noise 0 (GALStep's default): the generator sees the batch itself
    assert seen["g"][-1] is x
    step.noise = 0.5
    step(x, lam=0.0)
    g, t = seen["g"][-1], seen["t"][-1]
    assert torch.equal(t, x)  # the teacher's "real" samples come from the clean batch
    dropped = g == 0
    assert 0.4 < dropped.float().mean().item() < 0.6
    torch.testing.assert_close(g[~dropped], x[~dropped] / 0.5)  # inverted dropout
    step(x, lam=0.0)
    assert not torch.equal(seen["g"][-1], g)  # a fresh draw per iteration
    step.train_generator = False  # critic-only iterations: no generator update, no noise
    step(x, lam=0.0)
    assert seen["g"][-1] is x


def test_paper_terms_are_options_with_documented_defaults():
    from nasgal.prune.config import CRITIC_WEIGHT_DECAY, NOISE_DROPOUT

    cfg = PruneConfig()
    assert cfg.critic_weight_decay == CRITIC_WEIGHT_DECAY == cfg.weight_decay  # R(W_D) on, sized as R(W_G)
    assert cfg.noise_dropout == NOISE_DROPOUT == 0  # z off by default: the measurement in docs/pruning.md
    assert {"critic_weight_decay", "noise_dropout"} <= cfg.record().keys()
    changed = resolve_prune_config(critic_weight_decay=0, noise_dropout=0.1)
    assert changed.critic_weight_decay == 0 and changed.noise_dropout == 0.1
    for bad in ({"noise_dropout": 1.0}, {"noise_dropout": -0.1}, {"critic_weight_decay": -1}):
        with pytest.raises(NasgalError):
            resolve_prune_config(**bad)


def test_critic_weight_decay_and_noise_reach_the_run(tmp_path, data_dir):
    pruned, _ = run_prune(tmp_path, data_dir, epochs=1, critic_weight_decay=0.5, noise_dropout=0.2, gp=10.0,
                          clip=None)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["opt_d"]["param_groups"][0]["weight_decay"] == 0.5  # Adam with GP
    assert pruned.pruning.params["critic_weight_decay"] == 0.5 and pruned.pruning.params["noise_dropout"] == 0.2
    pruned, _ = run_prune(tmp_path, data_dir, name="clip", epochs=1, critic_weight_decay=0.0, noise_dropout=0.0)
    ckpt = load_checkpoint(tmp_path / "clip" / "checkpoint.pt")
    assert ckpt["opt_d"]["param_groups"][0]["weight_decay"] == 0.0  # RMSprop with clipping
    assert pruned.pruning.params["noise_dropout"] == 0.0


# Node selection ----------------------------------------------------------------------------------
def _random_masks(net, seed):
    g = torch.Generator().manual_seed(seed)
    return [{n: float(torch.rand(1, generator=g)) * (torch.rand(1, generator=g) > 0.3).item() for n in nodes}
            for nodes in candidates(net)]


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.4, 0.5, 0.75, 1.0])
def test_keep_nodes_budget_is_met_within_one_node(fraction):
    for net in (paper_network(), tiny_network(auxiliary=True)):
        total = sum(len(c) for c in candidates(net))
        for seed in range(6):
            sel = select_nodes(net, _random_masks(net, seed), keep_nodes=fraction)
            live = sum(len(k) for k in sel.kept)
            # the guard keeps a live node in every cell: a smaller budget yields to it, and says so
            asked = max(1, round(fraction * total))
            assert abs(live - max(len(net.positions), asked)) <= 1, (seed, sel.kept)
            assert sel.budget_met == (abs(live - asked) <= 1)
            pruned = net.with_kept_nodes(sel.kept)  # validates: connected
            assert nasgal.count_params(pruned) <= nasgal.count_params(net)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.6, 0.9])
def test_keep_params_budget_is_a_ceiling_met_within_one_node(fraction):
    net = paper_network()
    ceiling = fraction * nasgal.count_params(net)
    for seed in range(4):
        sel = select_nodes(net, _random_masks(net, seed), keep_params=fraction)
        pruned = net.with_kept_nodes(sel.kept)
        params = nasgal.count_params(pruned)
        assert params <= ceiling
        # maximal: adding any one more node would exceed the ceiling
        for p, nodes in enumerate(candidates(net)):
            for n in set(nodes) - set(sel.kept[p]):
                kept = [list(k) for k in sel.kept]
                kept[p] = kept[p] + [n]
                grown = nasgal.count_params(net.with_kept_nodes(kept))
                assert grown > ceiling or grown == params, (p, n)


def test_threshold_without_budget_keeps_masks_above_it():
    net = paper_network()
    masks = [{n: (0.0 if n % 2 else 0.8) for n in nodes} for nodes in candidates(net)]
    masks[2][3] = 0.05
    sel = select_nodes(net, masks, threshold=0.1)
    assert sel.revived == [] and sel.budget_met
    assert [set(k) <= {0, 2} for k in sel.kept] == [True] * 5
    sel0 = select_nodes(net, masks, threshold=0.0)
    assert 3 in sel0.kept[2]


def test_all_zero_masks_revive_the_strongest_nodes_to_stay_connected():
    net = paper_network()
    masks = [{n: 0.0 for n in nodes} for nodes in candidates(net)]
    integral = [{n: float(p * 10 + n) for n in nodes} for p, nodes in enumerate(candidates(net))]
    sel = select_nodes(net, masks, integral=integral)
    assert sel.revived and sel.events and all("revived" in e for e in sel.events)
    pruned = net.with_kept_nodes(sel.kept)
    assert not any(cell.dead for cell in nasgal.spec.plan_network(pruned).cells)
    assert [len(k) for k in sel.kept] == [1] * len(net.positions)  # the fewest: one live node per cell


@pytest.mark.parametrize("keep_nodes", [0.1, 0.25, 0.45])
def test_tied_masks_under_a_budget_keep_every_cell_alive(keep_nodes):
    """Tied masks (every node equal, as when λ drives them all to one value) rank by position:
    a budget alone would spend its nodes on the first cells and leave a later one with none."""
    net = paper_network()
    masks = [{n: 0.5 for n in nodes} for nodes in candidates(net)]
    sel = select_nodes(net, masks, keep_nodes=keep_nodes)
    assert all(sel.kept), sel.kept
    assert not any(cell.dead for cell in nasgal.spec.plan_network(net.with_kept_nodes(sel.kept)).cells)
    total = sum(len(c) for c in candidates(net))
    assert abs(sum(len(k) for k in sel.kept) - max(len(net.positions), round(keep_nodes * total))) <= 1


def test_dead_last_cell_revives_one_node_and_aux_position_is_guarded():
    net = tiny_network(auxiliary=True)
    masks = [{n: 0.9 for n in nodes} for nodes in candidates(net)]
    masks[-1] = {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}
    masks[net.auxiliary.position] = {n: 0.0 for n in masks[net.auxiliary.position]}
    sel = select_nodes(net, masks)
    positions = {r["position"] for r in sel.revived}
    assert len(net.positions) - 1 in positions and net.auxiliary.position in positions
    net.with_kept_nodes(sel.kept)


# Runs ----------------------------------------------------------------------------------
def test_huge_lambda_is_caught_by_the_connectivity_guard(tmp_path, data_dir):
    net = tiny_network()
    pruned, res = run_prune(tmp_path, data_dir, net=net, epochs=1, lam=1000.0, mask_lr=0.1, lam_warmup=0)
    assert res["revived"] and any("revived" in e for e in res["events"])
    assert all(v == 0.0 for m in res["masks"] for v in m.values())
    assert not nasgal.spec.plan_network(pruned).cells[-1].dead
    assert res["params_after"] < res["params_before"]
    assert pruned.pruning.params["revived"] == res["revived"]
    model = compile_network(pruned)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_run_directory_and_pruned_spec(tmp_path, data_dir):
    net = tiny_network()
    pruned, res = run_prune(tmp_path, data_dir, net=net, keep_nodes=0.5)
    out = tmp_path / "run"
    for name in ("network.json", "config.json", "checkpoint.pt", LOG, PRUNED, "metrics.json", "env.json"):
        assert (out / name).exists(), name
    assert nasgal.load(out / PRUNED) == pruned
    assert json.loads((out / "metrics.json").read_text()) == res
    rows = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"critic_loss", "wasserstein", "adv_loss", "data_loss", "mask_l1", "nodes_alive", "masks"} <= rows[0].keys()
    assert set(load_checkpoint(out / "checkpoint.pt")) >= {"generator", "critic", "fista", "epochs_done"}
    # budget: 12 nodes, keep 6
    assert abs(res["nodes_after"] - 6) <= 1 and res["budget_met"]
    # provenance
    assert pruned.pruning.method == "gal" and pruned.pruning.parent == nasgal.spec_hash(net)
    assert pruned.pruning.threshold == 0.0
    for key in ("lam", "mu", "epochs", "critic_steps", "clip", "seed", "budget", "mask_lr"):
        assert key in pruned.pruning.params, key
    assert [p.mask is not None for p in pruned.positions] == [True] * 3
    # validates, compiles, fewer parameters matching the analytic count
    params = nasgal.count_params(pruned)
    assert params == res["params_after"] < res["params_before"] == nasgal.count_params(net)
    model = compile_network(pruned)
    assert sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux_head")) == params
    for key in ("val_accuracy_teacher", "val_accuracy_generator", "val_accuracy_generator_pruned"):
        assert 0.0 <= res[key] <= 1.0


def test_same_seed_gives_the_same_pruned_spec(tmp_path, data_dir):
    kw = dict(epochs=1, lam=0.5, mask_lr=0.1)
    a, ra = run_prune(tmp_path, data_dir, name="a", **kw)
    b, rb = run_prune(tmp_path, data_dir, name="b", **kw)
    assert nasgal.spec_hash(a) == nasgal.spec_hash(b)
    assert ra["masks"] == rb["masks"]


def test_resume_equals_uninterrupted_and_complete_runs_return_their_result(tmp_path, data_dir):
    kw = dict(lam=0.5, mask_lr=0.1)
    full, rfull = run_prune(tmp_path, data_dir, name="full", **kw)
    net = tiny_network()
    state = random_state(net)
    cfg = small_config(**kw)
    res = prune(net, state, dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "part", data_dir=data_dir,
                stop_after=1)
    assert res == (None, {"interrupted_after_epoch": 1})
    resumed, rres = prune(net, state, dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "part",
                          data_dir=data_dir)
    assert nasgal.spec_hash(resumed) == nasgal.spec_hash(full)
    assert rres["masks"] == rfull["masks"]
    rows = lambda d: [{k: v for k, v in json.loads(line).items() if not k.endswith("_s")}  # noqa: E731
                      for line in (tmp_path / d / LOG).read_text().splitlines()]
    assert rows("full") == rows("part")
    # complete: returned without work; other settings or other weights are refused
    stamp = (tmp_path / "part" / PRUNED).stat().st_mtime_ns
    again, ragain = prune(net, state, dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "part",
                          data_dir=data_dir)
    assert again == resumed and ragain == rres and (tmp_path / "part" / PRUNED).stat().st_mtime_ns == stamp
    with pytest.raises(NasgalError, match=r"other settings \(lam: 0.5 -> 0.6\)"):
        prune(net, state, dataset="fashion_mnist", config=small_config(lam=0.6, mask_lr=0.1),
              out_dir=tmp_path / "part", data_dir=data_dir)
    with pytest.raises(NasgalError, match="another teacher weights"):
        prune(net, random_state(net, seed=5), dataset="fashion_mnist", config=cfg, out_dir=tmp_path / "part",
              data_dir=data_dir)


def test_weights_of_another_network_are_refused(tmp_path, data_dir):
    other = random_state(tiny_network(channels=8))
    with pytest.raises(NasgalError, match="do not fit"):
        run_prune(tmp_path, data_dir, state=other)


def test_config_refuses_two_budgets():
    with pytest.raises(NasgalError, match="at most one of keep_params and keep_nodes"):
        resolve_prune_config(keep_params=0.5, keep_nodes=0.5)


# Weight inheritance ----------------------------------------------------------------------------
def test_inheriting_into_an_unpruned_mask_gives_the_teachers_weights_exactly():
    net = tiny_network(auxiliary=True)
    state = random_state(net)
    same = net.with_kept_nodes([list(c.nodes) for c in (net.cell_at(p) for p in range(3))])
    got = inherit_weights(same, state)
    assert got.keys() == state.keys()
    assert all(torch.equal(got[k], state[k]) for k in state)


@pytest.mark.parametrize("kept", [
    [[1, 2], [0, 3], [1, 2, 3]],  # concat shrinks before FactorizedReduce, pre1 and the classifier
    [[0, 1, 2, 3], [], [2]],  # a dead cell
    [[3], [0, 1, 2, 3], [0]],
])
def test_inherited_model_is_exactly_the_masked_teacher(kept):
    net = tiny_network(auxiliary=True)  # reductions at positions 1 and 2: position 2's pre0 is a FactorizedReduce
    state = random_state(net, zero_shift=True)  # BN maps 0 to 0, so removed signals contribute nothing
    pruned = net.with_kept_nodes(kept)
    model = compile_network(pruned)
    model.load_state_dict(inherit_weights(pruned, state))
    masked = compile_network(net, gates=True)
    masked.load_state_dict(state, strict=False)
    with torch.no_grad():
        for p, g in masked.gates().items():
            ids = list(net.cell_at(p).nodes)
            for j, n in enumerate(ids):
                if n not in kept[p]:
                    g[j] = 0.0
    model.eval()
    masked.eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), masked(x), atol=1e-5, rtol=1e-4)
        model.train()
        masked.train()
        # training mode: the auxiliary head's first conv is sliced too
        assert torch.allclose(model(x)[1], masked(x)[1], atol=1e-4, rtol=1e-3)


def test_inherit_refuses_weights_of_another_network():
    net = tiny_network()
    pruned = net.with_kept_nodes([[0, 1], [0, 1], [0, 1]])
    with pytest.raises(NasgalError, match="do not belong to"):
        inherit_weights(pruned, random_state(tiny_network(channels=8)))


# CLI ------------------------------------------------------------------------------------------
def _cli(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    return code, cap.out, cap.err


@pytest.fixture
def teacher_files(tmp_path):
    net = tiny_network()
    nasgal.save(net, tmp_path / "net.json")
    run = tmp_path / "teacher"
    save_checkpoint(run / "weights.pt", random_state(net))
    return tmp_path / "net.json", run


def test_cli_prune_prints_table_and_json(tmp_path, data_dir, teacher_files, capsys):
    net, run = teacher_files
    base = ["prune", net, "--weights", run, "--dataset", "fashion_mnist", "--data-dir", data_dir, "--epochs", "1",
            "--batch-size", "20", "--device", "cpu", "--keep-nodes", "0.5", "--critic-weight-decay", "0.001",
            "--noise-dropout", "0.2"]
    code, out, err = _cli(capsys, *base, "--out", tmp_path / "p", "--json")
    assert code == 0, err
    res = json.loads(out)
    params = nasgal.load(tmp_path / "p" / "pruned.json").pruning.params
    assert params["critic_weight_decay"] == 0.001 and params["noise_dropout"] == 0.2
    assert abs(res["nodes_after"] - 6) <= 1 and (tmp_path / "p" / "pruned.json").exists()
    assert "prune epoch 1/1" in err
    code, out, err = _cli(capsys, *base, "--out", tmp_path / "p")  # complete: prints the table again
    assert code == 0, err
    assert "Cell" in out and "reduction" in out and "normal" in out and "parameters:" in out
    # retrain the result with inherited weights
    code, out, err = _cli(capsys, "train", tmp_path / "p" / "pruned.json", "--dataset", "fashion_mnist",
                          "--data-dir", data_dir, "--epochs", "1", "--batch-size", "20", "--device", "cpu",
                          "--inherit", run, "--out", tmp_path / "r", "--json")
    assert code == 0, err
    assert json.loads(out)["params"] == res["params_after"]


def test_cli_prune_bad_weights_path_and_mismatched_weights(tmp_path, data_dir, teacher_files, capsys):
    net, run = teacher_files
    code, _, err = _cli(capsys, "prune", net, "--weights", tmp_path / "nope", "--dataset", "fashion_mnist",
                        "--data-dir", data_dir, "--out", tmp_path / "p")
    assert code == 1 and "Error:" in err and "does not exist" in err
    other = tmp_path / "other"
    save_checkpoint(other / "weights.pt", random_state(tiny_network(channels=8)))
    code, _, err = _cli(capsys, "prune", net, "--weights", other, "--dataset", "fashion_mnist",
                        "--data-dir", data_dir, "--out", tmp_path / "p")
    assert code == 1 and "do not fit" in err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, _, err = _cli(capsys, "prune", net, "--weights", tmp_path / "junk.pt", "--dataset", "fashion_mnist",
                        "--data-dir", data_dir, "--out", tmp_path / "p")
    assert code == 1 and "Error:" in err
    code, _, err = _cli(capsys, "prune", net, "--weights", run, "--dataset", "fashion_mnist", "--data-dir", data_dir,
                        "--out", tmp_path / "p", "--keep-nodes", "0.5", "--keep-params", "0.5")
    assert code == 1 and "not both" in err


# Real data ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_fashion_mnist_run_removes_nodes(tmp_path):
    from nasgal.train import load_weights, resolve_config, train

    data = "/usr/share/datasets"
    if not Path(data, "fashion-mnist").exists():
        pytest.skip("FashionMNIST not installed (Debian package dataset-fashion-mnist)")
    net = tiny_network()
    train(net, dataset="fashion_mnist", config=resolve_config("paper", epochs=2, subset=2000, lr=0.025, device="cpu"),
          out_dir=tmp_path / "t", data_dir=data)
    pruned, res = prune(net, load_weights(tmp_path / "t"), dataset="fashion_mnist", out_dir=tmp_path / "p",
                        data_dir=data, config=resolve_prune_config(epochs=4, subset=4000, lam=0.05, mask_lr=0.1,
                                                                      device="cpu"))
    assert res["nodes_after"] < res["nodes_before"]
    assert nasgal.count_params(nasgal.load(tmp_path / "p" / "pruned.json")) == res["params_after"] < res["params_before"]
    model = compile_network(pruned)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# Baseline methods --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["random", "magnitude", "ablation"])
def test_baseline_methods_meet_the_budget_are_seeded_and_compile(tmp_path, data_dir, method):
    net = tiny_network()
    total = sum(len(c) for c in candidates(net))
    pruned, res = run_prune(tmp_path, data_dir, name=method, net=net, method=method, keep_nodes=0.5, seed=3)
    assert pruned.pruning.method == method and pruned.name.endswith(f"-{method}")
    assert abs(res["nodes_after"] - max(len(net.positions), round(0.5 * total))) <= 1 and res["budget_met"]
    assert pruned.positions[0].mask is None and len(pruned.pruning.params["scores"]) == len(net.positions)
    nasgal.compile_network(pruned)  # a valid, compilable spec
    again, _ = run_prune(tmp_path, data_dir, name=f"{method}-again", net=net, method=method, keep_nodes=0.5, seed=3)
    assert again.kept_nodes() == pruned.kept_nodes()  # deterministic by seed
    assert not (tmp_path / method / "checkpoint.pt").exists()  # one pass, no epochs


def test_random_scores_depend_on_the_seed_only():
    from nasgal.prune.methods import random_scores

    net = tiny_network()
    assert random_scores(net, 1) == random_scores(net, 1) != random_scores(net, 2)


def test_ablation_ranks_a_node_made_useless_last(data_dir):
    """Zero every weight into one node (its output is then a constant the next BN removes):
    removing it changes nothing, so its ablation score is the smallest of its cell."""
    from nasgal.data import DeviceLoader
    from nasgal.engine.data import prepare_splits
    from nasgal.prune.methods import ablation_scores, magnitude_scores
    from nasgal.spec import plan_network

    net = tiny_network()
    state = random_state(net, seed=1)
    position, node = 0, candidates(net)[0][-1]
    for e in plan_network(net).cells[position].edges:
        if e.dst == node:
            for k in state:
                if k.startswith(f"cells.{position}.edges.{e.index}.") and state[k].dim() == 4:
                    state[k] = torch.zeros_like(state[k])
    splits = prepare_splits(net, "fashion_mnist", str(data_dir), subset=None, val_fraction=0.5, seed=0, download=False)
    loader = DeviceLoader(splits.val, batch_size=64, shuffle=False, drop_last=False)
    scores = ablation_scores(net, state, loader, "fp32", torch.device("cpu"))
    assert scores[position][node] == pytest.approx(min(scores[position].values()), abs=1e-6)
    assert magnitude_scores(net, state)[position][node] == 0.0


def test_a_baseline_without_a_budget_is_refused():
    from nasgal.errors import ConfigError
    from nasgal.prune import resolve_prune_config

    with pytest.raises(ConfigError, match="give keep_nodes or keep_params"):
        resolve_prune_config(method="random")
