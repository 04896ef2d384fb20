"""Faults a killed, shared or damaged run directory can meet, for search, train, prune and run.

Oracle: an uninterrupted run. A run killed at any file write and resumed must leave the same
records (metrics rows without their wall times, per-epoch genotypes, α history, final
genotype) and no temporary files; damaged or foreign files give an error naming the file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from datafiles import fashion_mnist_root, offline

import nasgal
from nasgal.errors import NasgalError, SpecError
from nasgal.search.space import default_space
from nasgal.train import resolve_config, train
from nasgal.engine.rundir import run_lock, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = {"cells": 2, "channels": 4, "reductions": [1]}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    offline(monkeypatch)


@pytest.fixture(autouse=True)
def _one_thread():
    """These tiny runs are dominated by thread start-up; one thread keeps them fast on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _synthetic(n=16, size=8, classes=3, seed=0):
    from nasgal.data import Dataset, DatasetInfo

    g = torch.Generator().manual_seed(seed)
    info = DatasetInfo(name="synthetic", channels=1, size=(size, size), classes=classes,
                       class_names=tuple(str(i) for i in range(classes)), mean=(0.5,), std=(0.25,))
    images = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    return Dataset(images, torch.arange(n) % classes, info, "train")


def _search(out: Path, epochs: int = 2, **kw):
    from nasgal.search.config import SearchConfig
    from nasgal.search.run import search

    cfg = SearchConfig(epochs=epochs, batch_size=4, dataset="synthetic", seed=3, **kw)
    return search(default_space().resized(**TINY), _synthetic(), cfg, out)


def _records(out: Path) -> dict[str, object]:
    """Everything a search leaves for a person, with wall times left out."""
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "metrics": [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows],
        "genotypes": {p.name: p.read_text() for p in sorted((out / "genotypes").iterdir())},
        "genotype": (out / "genotype.json").read_text(),
        "alpha_history": (out / "alpha_history.json").read_text(),
        "temporaries": sorted(p.name for p in out.rglob("*.tmp")),
    }


class _Killed(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs, no handler catches it."""


#: Kill points: every write (slow), or a spread of them in the default run (the first write, the
#: last, and four between them, which fall on records and checkpoints of both epochs).
SWEEPS = ["sample", pytest.param("every", marks=pytest.mark.slow)]


def _kill_at_every_write(tmp_path, monkeypatch, run, records, writers, sweep: str = "every") -> int:
    """Kill ``run(out)`` before each of its file writes (``writers``: {module: names}, where the
    module looks each writer up), leaving a half-written temporary file, run it again, and
    compare ``records(out)`` with an uninterrupted run's; return the number of writes.
    ``sweep="sample"`` kills at six writes spread over the run instead of at every one."""
    whole = run(tmp_path / "whole")
    expected = records(tmp_path / "whole")
    counter = {"n": 0, "kill_at": None}

    def wrap(name, real):
        def writer(*a, **k):
            if counter["n"] == counter["kill_at"]:
                # a kill in the middle of an atomic write leaves its temporary file
                path = Path(next(x for x in a if isinstance(x, (str, os.PathLike))))
                path.parent.mkdir(parents=True, exist_ok=True)
                (path.parent / f".{path.name}.x1y2.tmp").write_bytes(b"half")
                raise _Killed(name)
            counter["n"] += 1
            return real(*a, **k)
        return writer

    for mod, names in writers.items():
        for name in names:
            real = getattr(mod, name)
            if name == "write_heatmap":
                # Heat maps are figures, not records: a stand-in keeps the write (and its kill
                # point) but not matplotlib's cost.
                def real(path, *a, **k):
                    return Path(path).write_bytes(b"figure")
            monkeypatch.setattr(mod, name, wrap(name, real))
    counter["kill_at"] = -1
    run(tmp_path / "count")
    writes = counter["n"]
    points = range(writes) if sweep == "every" else sorted({0, writes - 1, *range(0, writes, max(1, writes // 5))})
    for k in points:
        out = tmp_path / f"kill{k}"
        counter.update(n=0, kill_at=k)
        with pytest.raises(_Killed):
            run(out)
        counter.update(kill_at=-1)
        resumed = run(out)
        assert _same(resumed, whole), f"killed before write {k}"
        assert records(out) == expected, f"killed before write {k}"
        assert not list(out.rglob("*.tmp")), f"killed before write {k}"
    return writes


def _same(a, b) -> bool:
    """Results equal but for wall times (a resumed run's time differs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        drop = {"wall_time_s", "images_per_s"}
        return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _engine_writers():
    import nasgal.engine.loop as loop_mod
    import nasgal.engine.rundir as rundir_mod

    # the engine's checkpoint, and the run's spec and record (start_run)
    return {loop_mod: ("save_checkpoint", "write_jsonl"), rundir_mod: ("save", "write_json")}


@pytest.mark.parametrize("sweep", SWEEPS)
def test_search_killed_at_every_write_resumes_to_identical_records(tmp_path, monkeypatch, sweep):
    """Kill the search before each of its file writes of epochs 1 and 2 (so also between a
    checkpoint and the next records, and with a half-written temporary file left behind), run
    it again, and compare every record with an uninterrupted run."""
    import nasgal.search.run as run_mod

    writers = {run_mod: ("save", "write_jsonl", "atomic_write_text", "write_heatmap", "write_json"),
               **_engine_writers()}
    writes = _kill_at_every_write(tmp_path, monkeypatch, _search, _records, writers, sweep)
    assert writes >= 16  # spec and record, the records of two epochs, two checkpoints, the results


def _train_records(out: Path) -> dict[str, object]:
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    weights = torch.load(out / "weights.pt", weights_only=True)
    return {
        "metrics": [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")} for r in rows],
        "weights": {k: v.tolist() for k, v in weights.items()},
        "network": (out / "network.json").read_text(),
        "config": (out / "config.json").read_text(),
    }


@pytest.mark.parametrize("sweep", SWEEPS)
def test_train_killed_at_every_write_resumes_bit_identical(tmp_path, monkeypatch, data_dir, sweep):
    import nasgal.train.runner as runner_mod

    def run(out):
        return train(_net(), dataset="fashion_mnist", config=_cfg(epochs=2), out_dir=out, data_dir=data_dir)

    writers = {runner_mod: ("save_checkpoint", "write_json"), **_engine_writers()}
    writes = _kill_at_every_write(tmp_path, monkeypatch, run, _train_records, writers, sweep)
    assert writes >= 9  # network, config, 2 × (rows, checkpoint), weights, env, results


@pytest.mark.parametrize("sweep", SWEEPS)
def test_prune_killed_at_every_write_resumes_bit_identical(tmp_path, monkeypatch, data_dir, sweep):
    import nasgal.prune.gal as gal_mod
    from nasgal.prune import prune, resolve_prune_config

    net = _net()
    torch.manual_seed(0)
    state = nasgal.compile_network(net).state_dict()
    cfg = resolve_prune_config(epochs=2, batch_size=32, device="cpu", critic_steps=2)

    def run(out):
        return prune(net, state, dataset="fashion_mnist", config=cfg, out_dir=out, data_dir=data_dir)

    def records(out):
        rows = [json.loads(ln) for ln in (out / "prune_log.jsonl").read_text().splitlines()]
        return {"rows": [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")} for r in rows],
                "pruned": (out / "pruned.json").read_text()}

    writers = {gal_mod: ("save", "write_json"), **_engine_writers()}
    writes = _kill_at_every_write(tmp_path, monkeypatch, run, records, writers, sweep)
    assert writes >= 9


def _cli_search(out: Path, data: Path, epochs: int = 3) -> subprocess.Popen:
    args = [str(Path(sys.executable).parent / "nasgal"), "search", "-d", "fashion_mnist", "--data-dir", str(data),
            "--epochs", str(epochs), "--cells", "2", "--channels", "4", "--batch-size", "8", "--device", "cpu",
            "--seed", "1", "--quiet", "--out", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "NASGAL_NO_DOWNLOAD": "1"})


def _sigkill_and_rerun(tmp_path: Path, start, records, fractions=(0.55, 0.8)) -> None:
    """Run ``start(out)`` (a subprocess) uninterrupted, then again killed with SIGKILL at
    ``fractions`` of that run's duration, rerun it to its end, and compare ``records(out)``."""
    t0 = time.perf_counter()
    ref = start(tmp_path / "whole")
    assert ref.wait(timeout=600) == 0, ref.stderr.read().decode() if ref.stderr else ""
    duration = time.perf_counter() - t0
    expected = records(tmp_path / "whole")
    for i, frac in enumerate(fractions):
        out = tmp_path / f"killed{i}"
        proc = start(out)
        time.sleep(duration * frac)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        again = start(out)
        assert again.wait(timeout=600) == 0, again.stderr.read().decode() if again.stderr else ""
        assert records(out) == expected, f"killed at {frac:.0%} of the run"
        assert not list(out.rglob("*.tmp"))


def _cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "nasgal"), *args, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "NASGAL_NO_DOWNLOAD": "1"})


@pytest.mark.slow
def test_search_sigkilled_mid_run_resumes_to_identical_records(tmp_path):
    """A real SIGKILL of `nasgal search` at points spread over the run (checkpoint writes
    included), then the same command again: the same records as an uninterrupted run."""
    data = fashion_mnist_root(tmp_path, n_train=96, n_test=8)
    _sigkill_and_rerun(tmp_path, lambda out: _cli_search(out, data), _records)


@pytest.mark.slow
def test_train_sigkilled_mid_run_resumes_bit_identical(tmp_path, data_dir):
    """`nasgal train` killed with SIGKILL mid-run and run again ends with the very weights of
    an uninterrupted run (CPU, fixed seed)."""
    nasgal.save(_net(), tmp_path / "net.json")
    args = ["train", str(tmp_path / "net.json"), "-d", "fashion_mnist", "--data-dir", str(data_dir), "--epochs", "4",
            "--batch-size", "32", "--device", "cpu", "--threads", "1"]
    _sigkill_and_rerun(tmp_path, lambda out: _cli([*args, "--out", str(out)]), _train_records, fractions=(0.6,))


@pytest.mark.slow
def test_prune_sigkilled_mid_run_resumes_bit_identical(tmp_path, data_dir):
    nasgal.save(_net(), tmp_path / "net.json")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "w.pt", nasgal.compile_network(_net()).state_dict())
    args = ["prune", str(tmp_path / "net.json"), "-w", str(tmp_path / "w.pt"), "-d", "fashion_mnist",
            "--data-dir", str(data_dir), "--epochs", "4", "--batch-size", "32", "--critic-steps", "2",
            "--device", "cpu", "--threads", "1"]

    def records(out):
        rows = [json.loads(ln) for ln in (out / "prune_log.jsonl").read_text().splitlines()]
        return {"rows": [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")} for r in rows],
                "pruned": (out / "pruned.json").read_text()}

    _sigkill_and_rerun(tmp_path, lambda out: _cli([*args, "--out", str(out)]), records)


@pytest.mark.slow
def test_experiment_sigkilled_across_stages_resumes_to_the_same_result(tmp_path, data_dir):
    """`nasgal run` killed at points that fall in different stages (search, training, pruning,
    retraining), then run again: the same kept nodes and accuracies as an uninterrupted run."""
    import tomllib  # noqa: F401 - the experiment file format

    def start(out):
        exp = out.parent / f"{out.name}.toml"
        exp.write_text(f"""name = "k"\ndataset = "fashion_mnist"\ndata_dir = "{data_dir}"\nout = "{out}"\ndevice = "cpu"
[search]\nepochs = 2\ncells = 3\nchannels = 4\nbatch_size = 8
[network]\ncells = 3\nchannels = 4
[train]\nepochs = 2\nbatch_size = 32
[prune]\nepochs = 2\nbatch_size = 32\ncritic_steps = 1\nkeep_nodes = 0.5
[retrain]\nepochs = 2
""")
        return _cli(["run", str(exp)])

    def records(out):
        summary = json.loads((out / "summary.json").read_text())
        return {"kept": [s["kept"] for s in summary["seeds"]],
                "acc": [summary["baseline_test_accuracy"], summary["pruned_test_accuracy"]],
                "genotype": (out / "search" / "genotype.json").read_text()}

    _sigkill_and_rerun(tmp_path, start, records, fractions=(0.15, 0.45, 0.75))


# Damaged or foreign files -------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_search_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _search(out, epochs=1)
    finally:
        torch.set_num_threads(before)
    return out / "checkpoint.pt"


@pytest.mark.parametrize(
    "damage, words",
    [
        ("truncate", "cannot read checkpoint"),
        ("empty", "cannot read checkpoint"),
        ("list", "is not a nasgal checkpoint"),
        ("train", "is the checkpoint of a train run, not of a search run"),
        ("format", "checkpoint format 2"),
        ("no-model", "no model"),
        ("other-net", "its supernet weights does not fit this run"),
        ("run", "its run record is unreadable"),
    ],
)
def test_search_refuses_a_damaged_or_foreign_checkpoint_with_a_hint(tmp_path, good_search_checkpoint, damage, words):
    good = good_search_checkpoint
    out = tmp_path / "run"
    out.mkdir()
    ck = torch.load(good, weights_only=True)
    if damage == "truncate":
        (out / "checkpoint.pt").write_bytes(good.read_bytes()[:1000])
    elif damage == "empty":
        (out / "checkpoint.pt").write_bytes(b"")
    elif damage == "list":
        torch.save([1, 2], out / "checkpoint.pt")
    elif damage == "train":
        torch.save({"stage": "train", "epoch": 0, "model": {}}, out / "checkpoint.pt")
    elif damage == "format":
        torch.save({**ck, "format": 2}, out / "checkpoint.pt")
    elif damage == "no-model":
        torch.save({k: v for k, v in ck.items() if k != "model"}, out / "checkpoint.pt")
    elif damage == "other-net":
        torch.save({**ck, "model": {"stem.0.weight": torch.zeros(1)}}, out / "checkpoint.pt")
    elif damage == "run":
        torch.save({**ck, "run": "{not json"}, out / "checkpoint.pt")
    with pytest.raises(NasgalError, match=words) as err:
        _search(out, epochs=1)
    assert "--restart" in (err.value.hint or "")


def test_search_rewrites_garbled_records_from_its_checkpoint(tmp_path, good_search_checkpoint):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(good_search_checkpoint.parent, out)
    expected = _records(out)
    (out / "metrics.jsonl").write_bytes(b"\xff\xfe garbage {\n")
    (out / "genotypes" / "epoch_001.json").unlink()
    (out / "metrics.json").unlink()  # killed after the last checkpoint, before the results
    _search(out, epochs=1)  # nothing left to train: rewrites what the checkpoint knows, then the results
    assert _records(out) == expected


def test_search_restart_forgets_the_old_run(tmp_path):
    from nasgal.search.config import SearchConfig
    from nasgal.search.run import search

    out = tmp_path / "run"
    _search(out, epochs=2)
    cfg = SearchConfig(epochs=1, batch_size=4, dataset="synthetic", seed=5)
    search(default_space().resized(**TINY), _synthetic(), cfg, out, restart=True)
    assert sorted(p.name for p in (out / "genotypes").iterdir()) == ["epoch_001.json"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


# Train: identity, locks, temporaries, divergence ------------------------------------------------
@pytest.fixture
def data_dir(tmp_path) -> Path:
    return fashion_mnist_root(tmp_path, n_train=96, n_test=16)


def _net():
    return nasgal.stack(nasgal.load(ROOT / "genotypes" / "darts_v2.json"), cells=3, channels=4, classes=10,
                        in_channels=1, input_size=28)


def _cfg(**kw):
    return resolve_config("paper", **{"epochs": 2, "batch_size": 32, "device": "cpu", **kw})


def test_resume_without_config_json_still_refuses_other_settings(tmp_path, data_dir):
    out = tmp_path / "run"
    train(_net(), dataset="fashion_mnist", config=_cfg(lr=0.01), out_dir=out, data_dir=data_dir, stop_after=1)
    (out / "config.json").unlink()
    with pytest.raises(NasgalError, match=r"other settings \(lr: 0.01 -> 0.05\)") as err:
        train(_net(), dataset="fashion_mnist", config=_cfg(lr=0.05), out_dir=out, data_dir=data_dir)
    assert "checkpoint.pt" in str(err.value)
    assert not (out / "config.json").exists()  # nothing rewritten by the refused run
    res = train(_net(), dataset="fashion_mnist", config=_cfg(lr=0.01), out_dir=out, data_dir=data_dir)
    assert res["epochs"] == 2


def test_a_second_writer_is_refused_and_the_lock_dies_with_its_process(tmp_path, data_dir):
    out = tmp_path / "run"
    with run_lock(out):
        with pytest.raises(NasgalError, match=f"{out} is in use: another nasgal process \\(pid {os.getpid()}\\)"):
            train(_net(), dataset="fashion_mnist", config=_cfg(), out_dir=out, data_dir=data_dir)
        net = tmp_path / "net.json"
        nasgal.save(_net(), net)
        res = subprocess.run([str(Path(sys.executable).parent / "nasgal"), "train", str(net), "-d", "fashion_mnist",
                              "--data-dir", str(data_dir), "-o", str(out)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 1 and "is in use" in res.stderr and "Traceback" not in res.stderr
    # a holder that was SIGKILLed leaves the lock file, but not the lock
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from pathlib import Path; from nasgal.engine.rundir import run_lock\n"
                               f"with run_lock(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(NasgalError, match="in use"):
        train(_net(), dataset="fashion_mnist", config=_cfg(epochs=1), out_dir=out, data_dir=data_dir)
    holder.kill()
    holder.wait(timeout=30)
    assert train(_net(), dataset="fashion_mnist", config=_cfg(epochs=1), out_dir=out, data_dir=data_dir)["epochs"] == 1


def test_stray_temporaries_are_removed_on_resume(tmp_path, data_dir):
    out = tmp_path / "run"
    train(_net(), dataset="fashion_mnist", config=_cfg(), out_dir=out, data_dir=data_dir, stop_after=1)
    strays = [out / ".checkpoint.pt.abc123.tmp", out / ".metrics.jsonl.def456.tmp"]
    for p in strays:
        p.write_bytes(b"half")
    train(_net(), dataset="fashion_mnist", config=_cfg(), out_dir=out, data_dir=data_dir)
    assert not any(p.exists() for p in strays)
    assert list(out.rglob("*.tmp")) == []


def test_a_failed_start_leaves_no_record_behind(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NasgalError):
        train(_net(), dataset="no_such_dataset", config=_cfg(), out_dir=out)
    assert not (out / "config.json").exists() and not (out / "network.json").exists()


def test_training_stops_on_a_non_finite_loss_and_keeps_json_valid(tmp_path, data_dir, monkeypatch):
    from nasgal.train.step import TrainStep

    real = TrainStep.read_stats
    calls = {"n": 0}

    def diverging(self):
        loss, acc, seen = real(self)
        calls["n"] += 1
        return (float("nan") if calls["n"] == 2 else loss), acc, seen

    monkeypatch.setattr(TrainStep, "read_stats", diverging)
    out = tmp_path / "run"
    with pytest.raises(NasgalError, match=r"epoch 2: the training loss is nan; the training run diverged") as err:
        train(_net(), dataset="fashion_mnist", config=_cfg(epochs=3), out_dir=out, data_dir=data_dir)
    assert "--lr" in (err.value.hint or "")
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epochs_done"] == 1
    assert not (out / "metrics.json").exists()


def test_json_records_never_hold_nan_or_infinity(tmp_path):
    from nasgal.engine.rundir import write_json, write_jsonl

    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [float("inf"), 1.0]})
    write_jsonl(tmp_path / "b.jsonl", [{"x": float("-inf")}])
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [None, 1.0]}
    assert json.loads((tmp_path / "b.jsonl").read_text()) == {"x": None}


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("config.json", b"\xff\xfe{}", "is not UTF-8 text"),
        ("config.json", b"[1, 2]", "holds a JSON list, not an object"),
        ("config.json", b'{"dataset": "fashion_mnist"', "is not valid JSON"),
    ],
)
def test_damaged_run_records_are_named(tmp_path, data_dir, name, content, words):
    out = tmp_path / "run"
    train(_net(), dataset="fashion_mnist", config=_cfg(epochs=1), out_dir=out, data_dir=data_dir, stop_after=1)
    (out / name).write_bytes(content)
    with pytest.raises(NasgalError, match=words) as err:
        train(_net(), dataset="fashion_mnist", config=_cfg(epochs=1), out_dir=out, data_dir=data_dir)
    assert str(out / name) in str(err.value)


def test_a_list_valued_metrics_json_is_named(tmp_path, data_dir):
    out = tmp_path / "run"
    train(_net(), dataset="fashion_mnist", config=_cfg(epochs=1), out_dir=out, data_dir=data_dir)
    (out / "metrics.json").write_text("[]")
    with pytest.raises(NasgalError, match="metrics.json holds a JSON list, not an object"):
        train(_net(), dataset="fashion_mnist", config=_cfg(epochs=1), out_dir=out, data_dir=data_dir)


@pytest.mark.parametrize("stage", ["search", "prune"])
def test_train_refuses_the_checkpoint_of_another_stage(tmp_path, data_dir, stage):
    out = tmp_path / "run"
    save_checkpoint(out / "checkpoint.pt", {"stage": stage, "epoch": 0, "generator": {}})
    with pytest.raises(NasgalError, match=f"checkpoint of a {stage} run, not of a train run"):
        train(_net(), dataset="fashion_mnist", config=_cfg(epochs=1), out_dir=out, data_dir=data_dir)


def test_train_refuses_the_checkpoint_of_another_network(tmp_path, data_dir):
    out = tmp_path / "run"
    train(_net(), dataset="fashion_mnist", config=_cfg(epochs=2), out_dir=out, data_dir=data_dir, stop_after=1)
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    del ck["run"]  # an older checkpoint without the run record: the weights themselves must not fit
    ck["model"] = {k: v[:1] if v.dim() else v for k, v in ck["model"].items()}
    torch.save(ck, out / "checkpoint.pt")
    with pytest.raises(NasgalError, match="its model does not fit this run"):
        train(_net(), dataset="fashion_mnist", config=_cfg(epochs=2), out_dir=out, data_dir=data_dir)


# Experiments ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/b", "..", ".", "", "x" * 200])
def test_experiment_names_stay_inside_runs(name):
    from nasgal.experiment import parse_experiment

    with pytest.raises(SpecError) as err:
        parse_experiment({"name": name, "dataset": "fashion_mnist"})
    assert any(loc == "name" for loc, _ in err.value.problems)


def test_experiment_seed_counts_are_bounded():
    from nasgal.experiment import parse_experiment

    for bad in (0, -2, 99999999999999999999):
        with pytest.raises(SpecError, match="seeds"):
            parse_experiment({"name": "x", "dataset": "fashion_mnist", "seeds": bad})
    with pytest.raises(SpecError, match="seed"):
        parse_experiment({"name": "x", "dataset": "fashion_mnist", "seed": 2**40})
