"""Data-parallel runs under torchrun's environment, on CPU with gloo, two processes.

Two processes with a global batch of B must take the steps one process takes with B: each
process gets half of every batch, batch norm normalises over the global batch (``sync_bn``),
and the gradients are averaged. So the weights (training), α (search) and masks (GAL) after a
few steps must equal those of one process up to float32 rounding: the sums behind the
gradients and the batch statistics are added in another order (two halves, then an
all-reduce), which changes results in the last bits (relative 1e-7 per operation), and a few
steps of SGD with momentum carry those differences on. Measured: at most 2.4e-7 on weights of
order 1 (two ulps). The tests allow an absolute 1e-5, forty times that, and three orders of
magnitude below a real difference: per-process batch statistics (``sync_bn`` off) move the
weights by 1e-2 after the same steps.

The processes are forked with ``torch.multiprocessing`` (spawned ones would import torch and
torch's compiler stack afresh, ten seconds each on a busy 2-core machine), with the environment that
torchrun gives (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR=127.0.0.1``, a free
``MASTER_PORT``): nothing reaches the network. Two launches in all, to keep the suite fast on
two cores: the first trains, searches and prunes (and checks that rank 1 writes nothing), then
is killed in the middle of a training run; the second resumes that run and tries a launch with
more processes than images.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import nasgal
from nasgal.compiler import compile_network
from nasgal.data import Dataset, DatasetInfo, DeviceLoader
from nasgal.engine import distributed
from nasgal.engine.data import DataSplits
from nasgal.engine.step import evaluate
from nasgal.errors import NasgalError

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-5  # see the module docstring


# Tiny problems ------------------------------------------------------------------------------------
def _dataset(n: int, seed: int, split: str = "train") -> Dataset:
    info = DatasetInfo(name="mnist", channels=1, size=(8, 8), classes=3, class_names=("0", "1", "2"),
                       mean=(0.5,), std=(0.25,))
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    return Dataset(images, torch.arange(n) % 3, info, split)


def _splits(n_train: int = 48, n_test: int = 21) -> DataSplits:
    train = _dataset(n_train, 0)
    return DataSplits(train, None, _dataset(n_test, 1, "test"), train.info)


def _network() -> nasgal.Network:
    return nasgal.stack(nasgal.load(ROOT / "genotypes" / "darts_v2.json"), cells=2, channels=4, classes=3,
                        in_channels=1, input_size=8, reductions=[1], auxiliary=False, drop_path=0.0)


def _train_config(**kw):
    from nasgal.train import resolve_config

    base = dict(epochs=1, batch_size=16, lr=0.05, device="cpu", val_fraction=0.0, eval_batch_size=8,
                channels_last=False, grad_clip=5.0)
    # No augmentation here: the loaders augment every image as one process does (tested below), but
    # zero-padded crops with cutout make max-pool ties, which float rounding can break either way.
    return resolve_config("paper", **{**base, **kw})


def _train(out: Path, **kw):
    from nasgal.train import train

    stop = kw.pop("stop_after", None)
    return train(_network(), dataset="mnist", config=_train_config(**kw), out_dir=out, data=_splits(),
                 stop_after=stop)


def _search(out: Path, **kw):
    from nasgal.search.config import SearchConfig
    from nasgal.search.run import search
    from nasgal.search.space import default_space

    space = default_space().resized(cells=2, channels=4, nodes=2, reductions=[1],
                                    ops=["none", "avg_pool_3x3", "skip_connect", "sep_conv_3x3"])
    cfg = SearchConfig(**{**dict(epochs=1, batch_size=8, dataset="synthetic", seed=3, device="cpu", arch_lr=0.05), **kw})
    return search(space, _dataset(32, 2), cfg, out)


PC_SECOND = {"order": "second", "partial_channels": 2}  # PC-DARTS with the second-order gradient


def _teacher():
    torch.manual_seed(7)
    model = compile_network(_network())
    return {k: v.clone() for k, v in model.state_dict().items()}


def _prune(out: Path):
    from nasgal.prune import prune, resolve_prune_config

    cfg = resolve_prune_config(epochs=1, batch_size=16, device="cpu", val_fraction=0.0, channels_last=False,
                               critic_steps=2, lam=0.5, mask_lr=0.2, lam_warmup=0)
    return prune(_network(), _teacher(), dataset="mnist", config=cfg, out_dir=out, data=_splits())


def _alpha(run: Path) -> torch.Tensor:
    doc = json.loads((run / "alpha_history.json").read_text())
    last = doc["epochs"][-1]
    return torch.tensor([last["alpha_normal"], last["alpha_reduce"]])


def _masks(result: dict) -> list[dict]:
    return result["masks"]


# Launching ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(job, world: int, *args) -> None:
    """Run ``job(rank, *args)`` in ``world`` spawned processes with torchrun's environment."""
    port = _free_port()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)])  # an optimizer imports torch._dynamo: once, here
    mp.start_processes(_entry, args=(world, port, job, args), nprocs=world, start_method="fork", join=True)


def _entry(rank: int, world: int, port: int, job, args) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    job(rank, *args)


def _record_writes(root: Path) -> list[str]:
    """Record every file this process replaces, renames, saves or makes under ``root``."""
    seen: list[str] = []
    real_replace, real_save, real_mkdir = os.replace, torch.save, Path.mkdir

    def note(path) -> None:
        if str(path).startswith(str(root)):
            seen.append(str(path))

    def replace(src, dst, *a, **k):
        note(dst)
        return real_replace(src, dst, *a, **k)

    def save(obj, f, *a, **k):
        note(f)
        return real_save(obj, f, *a, **k)

    def mkdir(self, *a, **k):
        note(self)
        return real_mkdir(self, *a, **k)

    os.replace = replace  # type: ignore[assignment]
    torch.save = save  # type: ignore[assignment]
    Path.mkdir = mkdir  # type: ignore[method-assign]
    return seen


def _first_launch(rank: int, tmp: Path) -> None:
    writes = _record_writes(tmp) if rank == 1 else []
    with distributed.session():  # one group for all the runs, as `nasgal run` keeps it
        result = _train(tmp / "train2", epochs=2)
        (tmp / f"train2.rank{rank}.json").write_text(json.dumps(result))
        genotype = _search(tmp / "search2")
        (tmp / f"search2.rank{rank}.json").write_text(genotype.model_dump_json())
        _search(tmp / "search2-pc-second", **PC_SECOND)
        _, pres = _prune(tmp / "prune2")
        (tmp / f"prune2.rank{rank}.json").write_text(json.dumps(pres))
        # The sharded evaluation of given weights, for the comparison with one process.
        model = compile_network(_network())
        model.load_state_dict(torch.load(tmp / "train2" / "weights.pt", weights_only=True))
        loader = DeviceLoader(_splits().test, batch_size=8, shuffle=False, drop_last=False, rank=rank, world=2)
        (tmp / f"eval.rank{rank}.json").write_text(json.dumps(evaluate(model, loader)))
        if rank == 1:
            (tmp / "rank1_writes.json").write_text(json.dumps(writes))
        _train(tmp / "switch", epochs=3, stop_after=1)  # continued by one process (a test below)
        bf16 = _train(tmp / "bf16", epochs=1, precision="bf16")
        (tmp / f"bf16.rank{rank}.json").write_text(json.dumps(bf16))
        (tmp / f"before_kill.rank{rank}").touch()
        # A run killed in its second epoch: rank 1 dies at its third step there (rank 0 then
        # waits in the gradient all-reduce until the launcher ends it).
        from nasgal.train import step as train_step

        calls = {"n": 0}
        real_call = train_step.TrainStep.__call__

        def dying(self, *a):
            calls["n"] += 1
            if rank == 1 and calls["n"] == 3 + 3:  # 3 steps per epoch
                os.kill(os.getpid(), signal.SIGKILL)
            return real_call(self, *a)

        train_step.TrainStep.__call__ = dying  # type: ignore[method-assign]
        _train(tmp / "killed", epochs=3)


def _second_launch(rank: int, tmp: Path) -> None:
    with distributed.session():
        result = _train(tmp / "killed", epochs=3)
        (tmp / f"killed.rank{rank}.json").write_text(json.dumps(result))
        try:  # two processes and one training image
            from nasgal.train import train

            train(_network(), dataset="mnist", config=_train_config(batch_size=2), out_dir=tmp / "bad",
                  data=_splits(n_train=1))
        except NasgalError as e:
            (tmp / f"bad.rank{rank}.txt").write_text(f"{e}\n{e.hint}")


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    # Rank 1 is killed; the launcher then ends rank 0 (or rank 0 fails first, its peer gone).
    with pytest.raises((mp.ProcessExitedException, mp.ProcessRaisedException)) as killed:
        _launch(_first_launch, 2, tmp)
    assert all((tmp / f"before_kill.rank{r}").exists() for r in (0, 1)), str(killed.value)
    assert (tmp / "killed" / "checkpoint.pt").exists() and not (tmp / "killed" / "metrics.json").exists()
    _launch(_second_launch, 2, tmp)
    return tmp


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "weights.pt", weights_only=True)


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst < ATOL, f"largest difference {worst}"


# The tests ---------------------------------------------------------------------------------------
def test_two_processes_train_like_one(launched, tmp_path):
    one = _train(tmp_path / "train1", epochs=2)
    two = json.loads((launched / "train2.rank0.json").read_text())
    w1, w2 = _weights(tmp_path / "train1"), _weights(launched / "train2")
    _close(w1, w2)
    assert any(not torch.equal(w1[k], _teacher_like()[k]) for k in w1 if w1[k].is_floating_point())
    assert two["processes"] == 2 and two["train_images"] == one["train_images"]
    assert abs(two["final_train_accuracy"] - one["final_train_accuracy"]) <= 1 / 48
    assert abs(two["test_loss"] - one["test_loss"]) < 1e-4
    # Every process returns the same results.
    assert json.loads((launched / "train2.rank1.json").read_text())["test_accuracy"] == two["test_accuracy"]
    rows = [json.loads(line) for line in (launched / "train2" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2


def _teacher_like() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return compile_network(_network()).state_dict()


def test_sharded_evaluation_equals_one_process(launched):
    model = compile_network(_network())
    model.load_state_dict(_weights(launched / "train2"))
    loader = DeviceLoader(_splits().test, batch_size=8, shuffle=False, drop_last=False)
    loss, acc = evaluate(model, loader)
    for rank in (0, 1):
        loss2, acc2 = json.loads((launched / f"eval.rank{rank}.json").read_text())
        assert acc2 == acc  # the counts are added: exactly equal
        assert loss2 == pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize("run, kw", [("search2", {}), ("search2-pc-second", PC_SECOND)])
def test_two_processes_search_like_one(launched, tmp_path, run, kw):
    _search(tmp_path / "search1", **kw)
    a1, a2 = _alpha(tmp_path / "search1"), _alpha(launched / run)
    assert (a1 - a2).abs().max().item() < ATOL
    # Adam's steps hardly depend on the gradients' size, so the supernet's SGD-trained weights
    # are the sharper check.
    c1 = torch.load(tmp_path / "search1" / "checkpoint.pt", weights_only=True)
    c2 = torch.load(launched / run / "checkpoint.pt", weights_only=True)
    _close(c1["model"], c2["model"])
    _close(c1["arch"], c2["arch"])  # β too, for PC-DARTS
    # Every process returns the same genotype, provenance included.
    if run == "search2":
        assert (launched / "search2.rank0.json").read_text() == (launched / "search2.rank1.json").read_text()


def test_two_processes_prune_like_one(launched, tmp_path):
    _, one = _prune(tmp_path / "prune1")
    two = json.loads((launched / "prune2.rank0.json").read_text())
    for m1, m2 in zip(_masks(one), _masks(two)):
        assert m1.keys() == m2.keys()
        assert all(abs(m1[n] - m2[n]) < ATOL for n in m1)
    assert any(v != 1.0 for m in _masks(one) for v in m.values())  # the masks moved
    assert json.loads((launched / "prune2.rank1.json").read_text())["masks"] == two["masks"]


def test_only_rank_zero_writes(launched):
    assert json.loads((launched / "rank1_writes.json").read_text()) == []
    for run in ("train2", "search2", "prune2"):
        assert (launched / run / "config.json").exists()


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """An uninterrupted three-epoch run of one process."""
    out = tmp_path_factory.mktemp("whole")
    _train(out, epochs=3)
    return out


def test_killed_run_resumes_under_torchrun(launched, whole):
    assert json.loads((launched / "killed.rank0.json").read_text())["epochs"] == 3
    _close(_weights(whole), _weights(launched / "killed"))
    rows = [json.loads(line) for line in (launched / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_run_of_two_processes_continues_on_one(launched, whole):
    result = _train(launched / "switch", epochs=3)
    assert "processes" not in result
    _close(_weights(whole), _weights(launched / "switch"))


def test_bf16_under_ddp(launched):
    r0, r1 = (json.loads((launched / f"bf16.rank{r}.json").read_text()) for r in (0, 1))
    assert r0["test_accuracy"] == r1["test_accuracy"] and r0["processes"] == 2
    assert all(torch.isfinite(w).all() for w in _weights(launched / "bf16").values() if w.is_floating_point())


def test_cuda_graph_under_ddp_is_refused(monkeypatch):
    from nasgal.engine.optim import sgd
    from nasgal.train.step import TrainStep

    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    model = compile_network(_network())
    with pytest.raises(NasgalError, match="capture 'cuda-graph' under torchrun") as e:
        TrainStep(model, sgd(model, 0.1, 0.9, 0.0, "cpu"), capture="cuda-graph", device=torch.device("cuda"))
    assert "--capture none" in (e.value.hint or "")


def test_more_processes_than_images_is_refused(launched):
    for rank in (0, 1):
        text = (launched / f"bad.rank{rank}.txt").read_text()
        assert "2 processes but only 1 training images" in text and "fewer processes" in text, text
    assert not (launched / "bad" / "config.json").exists()


# In one process -----------------------------------------------------------------------------------
@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "2"}, "RANK is not"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "RANK 2 is outside 0..1"),
    ({"WORLD_SIZE": "x", "RANK": "0", "LOCAL_RANK": "0"}, "WORLD_SIZE must be a whole number"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0"}, "MASTER_ADDR and MASTER_PORT are not"),
])
def test_bad_launch_is_a_clear_error(monkeypatch, tmp_path, capsys, env, words):
    from nasgal.cli.main import main

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    net = tmp_path / "net.json"
    nasgal.save(_network(), net)
    assert main(["validate", str(net)]) == 1
    err = capsys.readouterr().err
    assert words in err and "torchrun" in err and "Traceback" not in err


def test_loader_parts_cover_every_batch_once_augmented_alike():
    from nasgal.data import Augment

    ds = _dataset(23, 0)
    kw = dict(batch_size=8, shuffle=True, drop_last=False, seed=4, augment=Augment(random_crop_padding=2, hflip=True,
                                                                                    cutout=3))
    for epoch in (0, 1):
        one = DeviceLoader(ds, **kw)
        one.set_epoch(epoch)
        whole = [x for x, _ in one]
        parts = []
        for r in range(3):
            loader = DeviceLoader(ds, rank=r, world=3, **kw)
            loader.set_epoch(epoch)
            parts.append([x for x, _ in loader])
        for i, batch in enumerate(whole):
            assert torch.equal(torch.cat([p[i] for p in parts if i < len(p)]), batch)
    # A batch smaller than the world: some processes get no images of it.
    tiny = dict(kw, batch_size=2)
    whole = torch.cat([x for x, _ in DeviceLoader(ds, **tiny)])
    parts = [[x for x, _ in DeviceLoader(ds, rank=r, world=3, **tiny)] for r in range(3)]
    iters = [iter(p) for p in parts]
    merged = [next(iters[r]) for first in range(0, 23, 2) for r in range(min(2, 23 - first))]
    assert torch.equal(torch.cat(merged), whole)
    with pytest.raises(NasgalError, match="does not divide among 3 processes"):
        DeviceLoader(ds, batch_size=8, drop_last=True, rank=0, world=3)


# Through torchrun itself --------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_runs_the_command_line(tmp_path, monkeypatch):
    """``torchrun -m nasgal train``: two processes, one JSON result on standard output, rank 0's files."""
    import subprocess
    import sys

    from datafiles import fashion_mnist_root

    data = fashion_mnist_root(tmp_path, n_train=64, n_test=16)
    net = tmp_path / "net.json"
    nasgal.save(nasgal.stack(nasgal.load(ROOT / "genotypes" / "darts_v2.json"), cells=2, channels=4, classes=10,
                             in_channels=1, input_size=28), net)
    env = {**os.environ, "NASGAL_NO_DOWNLOAD": "1", "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NASGAL_DATA_DIR"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "nasgal", "train", str(net), "--dataset", "fashion_mnist",
           "--data-dir", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16",
           "--device", "cpu", "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # one JSON object: rank 1 printed nothing
    assert result["processes"] == 2
    assert json.loads((tmp_path / "run" / "env.json").read_text())["processes"] == 2
    assert "Traceback" not in done.stderr
