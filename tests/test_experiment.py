"""`nasgal run`: a whole experiment end to end on tiny data, resumption, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nasgal
from nasgal.cli.main import main
from nasgal.errors import SpecError
from nasgal.experiment import Interrupted, load_experiment, parse_experiment, run_experiment

from datafiles import fashion_mnist_root, offline


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    offline(monkeypatch)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return fashion_mnist_root(tmp_path, n_train=120, n_test=40)


def tiny(data_dir: Path, out: Path, search: bool = False, **extra) -> dict:
    cfg = {
        "name": "tiny",
        "dataset": "fashion_mnist",
        "data_dir": str(data_dir),
        "out": str(out),
        "device": "cpu",
        "paper": "fashion_mnist",
        "network": {"genotype": "darts_v2", "cells": 3, "channels": 4},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05},
        "prune": {"epochs": 1, "batch_size": 20, "keep_nodes": 0.5},
        "retrain": {"inherit": False, "epochs": 1},
    }
    if search:
        cfg["search"] = {"epochs": 1, "cells": 3, "channels": 4, "batch_size": 16}
    cfg.update(extra)
    return cfg


def test_tiny_experiment_runs_every_stage_and_reports(tmp_path, data_dir):
    exp = parse_experiment(tiny(data_dir, tmp_path / "exp", search=True))
    res = run_experiment(exp)
    out = tmp_path / "exp"
    for path in ("search/genotype.json", "network.json", "seed0/baseline/metrics.json", "seed0/prune/pruned.json",
                 "seed0/retrain/metrics.json", "report.md", "report.html", "summary.json"):
        assert (out / path).exists(), path
    pruned = nasgal.load(out / "seed0/prune/pruned.json")
    assert nasgal.count_params(pruned) < nasgal.count_params(res.network)
    assert json.loads((out / "seed0/retrain/metrics.json").read_text())["params"] == nasgal.count_params(pruned)
    report = (out / "report.md").read_text()
    assert "| DARTS (baseline) |" in report and "92.33 / 0.13M" in report and "92.50 / 0.10M" in report
    assert "## Kept nodes per cell" in report and "| 1 | normal |" in report
    assert "## Wall time per stage" in report and "| search |" in report
    lat = json.loads((out / "summary.json").read_text())["latency"]
    assert lat["runtime"] == "torch eager" and lat["baseline"]["1"] > 0 and lat["pruned"]["64"] > 0
    assert f"| {lat['baseline']['1']:,.2f} / {lat['baseline']['64']:,.2f} |" in report
    assert f"on {lat['device']}, {lat['machine']}" in report
    assert "<table>" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["searched"] and summary["seeds"][0]["kept"] == pruned.kept_nodes()
    # every stage complete: a second run trains nothing and gives the same results
    stamp = (out / "seed0/baseline/weights.pt").stat().st_mtime_ns
    again = run_experiment(exp)
    assert (out / "seed0/baseline/weights.pt").stat().st_mtime_ns == stamp
    assert again.seeds[0].retrain == res.seeds[0].retrain


@pytest.mark.parametrize("interrupt", [("prune", 0), ("baseline", 1)], ids=["stage-boundary", "inside-stage"])
def test_interrupted_experiment_resumes_to_the_same_result(tmp_path, data_dir, interrupt):
    straight = run_experiment(parse_experiment(tiny(data_dir, tmp_path / "a")))
    exp = parse_experiment(tiny(data_dir, tmp_path / "b"))
    with pytest.raises(Interrupted):
        run_experiment(exp, interrupt=interrupt)
    assert not (tmp_path / "b" / "report.md").exists()
    resumed = run_experiment(exp)
    assert resumed.seeds[0].pruned.kept_nodes() == straight.seeds[0].pruned.kept_nodes()
    assert resumed.seeds[0].retrain["test_accuracy"] == straight.seeds[0].retrain["test_accuracy"]
    assert resumed.seeds[0].baseline["test_accuracy"] == straight.seeds[0].baseline["test_accuracy"]


def test_seeds_report_mean_and_std(tmp_path, data_dir):
    cfg = tiny(data_dir, tmp_path / "s")
    cfg["train"]["epochs"] = 1
    res = run_experiment(parse_experiment(cfg), seeds=2)
    assert [s.seed for s in res.seeds] == [0, 1]
    assert (tmp_path / "s" / "seed1" / "retrain" / "metrics.json").exists()
    assert " ± " in (tmp_path / "s" / "report.md").read_text()


@pytest.mark.parametrize(
    "change,message",
    [
        ({"epochz": 3}, "epochz: unknown field"),
        ({"train": {"epochs": 2, "batchsize": 3}}, "train: unknown option(s) batchsize"),
        ({"prune": {"lamda": 0.1}}, "prune: unknown option(s) lamda"),
        ({"seeds": 0}, "seeds: Input should be greater than or equal to 1"),
        ({"network": {"cells": "five"}}, "network.cells: Input should be a valid integer"),
        ({"train": {"seed": 3}}, "set 'seed' at the top level"),
    ],
)
def test_config_errors_are_clear(tmp_path, data_dir, change, message):
    cfg = tiny(data_dir, tmp_path / "x")
    cfg.update(change)
    with pytest.raises(SpecError) as err:
        parse_experiment(cfg)
    assert message in str(err.value)


def test_cli_run_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ndataset = "fashion_mnist"\n[network\n')
    assert main(["run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "malformed TOML" in err and "Traceback" not in err
    missing = tmp_path / "m.toml"
    missing.write_text(f'name = "m"\ndataset = "cifar10"\ndata_dir = "{tmp_path}"\n')
    assert main(["run", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "could not find the cifar10" in err and "Traceback" not in err
    assert main(["run", str(tmp_path / "nope.toml")]) == 1
    assert "no experiment file" in capsys.readouterr().err


def test_shipped_examples_are_valid():
    root = Path(__file__).resolve().parents[1] / "examples"
    names = {p.stem for p in root.glob("*.toml")}
    assert {"fashion_mnist_quick", "fashion_mnist_paper", "mnist_paper", "cifar10_paper", "cifar100_paper",
            "cats_vs_dogs", "fashion_mnist_cpu"} <= names
    for p in root.glob("*.toml"):
        exp = load_experiment(p)
        assert exp.name == p.stem
