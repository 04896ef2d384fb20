"""`nasgal run`: a whole experiment end to end on tiny data, resumption, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nasgal
from nasgal.cli.main import main
from nasgal.errors import SpecError
from nasgal.experiment import Interrupted, load_experiment, parse_experiment, run_experiment, with_overrides
from nasgal.spec.library import resolve_spec_path

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
    # the paper column states the paper's two 5-cell layouts
    assert "92.33 / 0.13M † (reductions 1, 3: 128,842; 1, 2: 189,162)" in report
    assert "92.50 / 0.10M † (reductions 1, 3: 49,338; 1, 2: 104,570)" in report
    assert "† The paper contradicts itself on its 5-cell layout" in report
    assert "## Kept nodes per cell" in report and "| 1 | normal |" in report
    assert "## Wall time per stage" in report and "| search |" in report
    # a short run says so, and says how far α moved
    assert "**A smoke run, not a result**: 2 training epochs (the paper: 50)" in report
    assert "mean largest op weight per edge is" in report and "against 0.125 for α that never moved" in report
    lat = json.loads((out / "summary.json").read_text())["latency"]
    assert lat["runtime"] == "torch eager" and lat["baseline"]["1"] > 0 and lat["pruned"]["64"] > 0
    assert f"| {lat['baseline']['1']:,.2f} / {lat['baseline']['64']:,.2f} |" in report
    assert f"on {lat['device']}, {lat['machine']}" in report
    page = (out / "report.html").read_text()
    assert "<table>" in page
    # self-contained: the figures travel inside the page (copied without figures/, it still shows them)
    assert 'src="figures/' not in page and page.count('src="data:image/') >= 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["searched"] and summary["seeds"][0]["kept"] == pruned.kept_nodes()
    # every stage complete: a second run trains nothing and gives the same results
    stamp = (out / "seed0/baseline/weights.pt").stat().st_mtime_ns
    again = run_experiment(exp)
    assert (out / "seed0/baseline/weights.pt").stat().st_mtime_ns == stamp
    assert again.seeds[0].retrain == res.seeds[0].retrain


def _resumes_to(straight, interrupted_dir: Path, data_dir: Path, interrupt, searched: bool) -> None:
    """Interrupt an experiment at ``interrupt``, run it again, and compare with ``straight``."""
    exp = parse_experiment(tiny(data_dir, interrupted_dir, search=searched))
    with pytest.raises(Interrupted):
        run_experiment(exp, interrupt=interrupt)
    assert not (interrupted_dir / "report.md").exists()
    resumed = run_experiment(exp)
    assert resumed.genotype == straight.genotype
    assert resumed.seeds[0].pruned.kept_nodes() == straight.seeds[0].pruned.kept_nodes()
    assert resumed.seeds[0].retrain["test_accuracy"] == straight.seeds[0].retrain["test_accuracy"]
    assert resumed.seeds[0].baseline["test_accuracy"] == straight.seeds[0].baseline["test_accuracy"]


def test_interrupted_experiment_resumes_to_the_same_result(tmp_path, data_dir):
    """Interrupted at a stage boundary (before pruning) and inside a stage (after the first
    training epoch), each resumed run ends where the uninterrupted one did (one uninterrupted
    run serves both)."""
    straight = run_experiment(parse_experiment(tiny(data_dir, tmp_path / "a")))
    _resumes_to(straight, tmp_path / "b", data_dir, ("prune", 0), searched=False)
    _resumes_to(straight, tmp_path / "c", data_dir, ("baseline", 1), searched=False)


@pytest.mark.slow
def test_experiment_interrupted_inside_the_search_resumes_to_the_same_result(tmp_path, data_dir):
    straight = run_experiment(parse_experiment(tiny(data_dir, tmp_path / "a", search=True)))
    _resumes_to(straight, tmp_path / "b", data_dir, ("search", 1), searched=True)


def test_seeds_report_mean_and_std(tmp_path, data_dir):
    cfg = tiny(data_dir, tmp_path / "s")
    cfg["train"]["epochs"] = 1
    res = run_experiment(parse_experiment(cfg), seeds=2)
    assert [s.seed for s in res.seeds] == [0, 1]
    assert (tmp_path / "s" / "seed1" / "retrain" / "metrics.json").exists()
    assert " ± " in (tmp_path / "s" / "report.md").read_text()


def test_several_pruning_methods_compare_at_the_same_budget(tmp_path, data_dir):
    """One baseline per seed, pruned by each method to the same budget and retrained; the report
    compares them and says when seeds are too few to tell them apart."""
    cfg = tiny(data_dir, tmp_path / "m")
    cfg["train"]["epochs"] = 1
    cfg["prune"] = {"epochs": 1, "batch_size": 20, "keep_nodes": 0.5, "method": ["gal", "random", "magnitude"]}
    res = run_experiment(parse_experiment(cfg), seeds=2)
    out = tmp_path / "m"
    for d in ("prune", "retrain", "prune-random", "retrain-random", "prune-magnitude", "retrain-magnitude"):
        assert (out / "seed1" / d / "metrics.json").exists(), d
    s0 = res.seeds[0]
    assert list(s0.methods) == ["gal", "random", "magnitude"] and s0.pruned == s0.methods["gal"].pruned
    live = {m: sum(len(k) for k in r.pruned.kept_nodes()) for m, r in s0.methods.items()}
    assert max(live.values()) - min(live.values()) <= 1  # the same budget
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"gal", "random", "magnitude"}
    assert summary["methods"]["gal"]["vs_random"]["n"] == 2 and "interval_95" not in summary["methods"]["gal"]["vs_random"]
    report = (out / "report.md").read_text()
    assert "## Pruning methods at the same budget" in report and "| random |" in report
    assert "too few seeds to tell (n=2" in report and "figures/methods.png" in report
    assert (out / "figures" / "methods.png").read_bytes()[:4] == b"\x89PNG"


def test_a_method_list_is_checked_when_the_file_is_read(tmp_path, data_dir):
    cfg = tiny(data_dir, tmp_path / "m")
    cfg["prune"] = {"method": ["gal", "random"]}  # random needs a budget
    with pytest.raises(SpecError, match="give keep_nodes or keep_params"):
        parse_experiment(cfg)
    cfg["prune"] = {"method": ["gal", "gal"], "keep_nodes": 0.5}
    with pytest.raises(SpecError, match="list each method once"):
        parse_experiment(cfg)


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


def test_prune_section_takes_the_papers_gal_terms(tmp_path, data_dir):
    from nasgal.prune import resolve_prune_config

    exp = parse_experiment(tiny(data_dir, tmp_path / "x", prune={"critic_weight_decay": 0.0, "noise_dropout": 0.3}))
    cfg = resolve_prune_config(**exp.prune)
    assert cfg.critic_weight_decay == 0.0 and cfg.noise_dropout == 0.3


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
        # what `nasgal run FILE --out DIR --seeds N --device cpu` does to it
        again = with_overrides(exp, {"out": "elsewhere", "seeds": 2, "device": "cpu"}, source="command line")
        assert again.out == "elsewhere" and again.search == exp.search


def test_search_section_takes_search_settings_but_not_the_experiments():
    exp = parse_experiment({"name": "x", "dataset": "fashion_mnist",
                            "search": {"epochs": 3, "arch_lr": 0.05, "order": "second"}})
    assert exp.search.settings()["arch_lr"] == 0.05 and "seed" not in exp.search.model_dump()
    with pytest.raises(SpecError, match="'seed' is set at the top of the experiment file"):
        parse_experiment({"name": "x", "dataset": "fashion_mnist", "search": {"seed": 1}})
    with pytest.raises(SpecError, match=r"search.lr_min"):
        parse_experiment({"name": "x", "dataset": "fashion_mnist", "search": {"lr_min": -1}})


def test_the_papers_two_5_cell_layouts_are_exact_counts():
    from nasgal.experiment import paper_tables

    tables = paper_tables()
    layouts = {k: v for k, v in tables["layout_5_cells"].items() if not k.startswith("_")}
    assert set(layouts) == {"fashion_mnist", "mnist"}
    genotype = nasgal.load(resolve_spec_path("darts_v2"))
    for row, layout in layouts.items():
        kept = tables["kept_nodes"][row]
        # the text's layout is the one the paper labels (cells numbered from 1)
        labelled = tables["setup"][row]["reduction_cells_as_labelled"]
        assert layout["text_table1"]["reductions"] == [c - 1 for c in labelled]
        for key in ("text_table1", "table2_fit"):
            net = nasgal.stack(genotype, cells=5, channels=16, classes=10, in_channels=1, input_size=28,
                               reductions=layout[key]["reductions"])
            assert nasgal.count_params(net) == layout[key]["params"]
            assert nasgal.count_params(net.with_kept_nodes(kept)) == layout[key]["pruned_params"]
        # Table 2's DARTS count (0.13M) fits positions 1 and 3, not the text's 1 and 2
        assert round(layout["table2_fit"]["params"] / 1e6, 2) == tables["results"][row]["DARTS"][1]
        assert round(layout["text_table1"]["params"] / 1e6, 2) != tables["results"][row]["DARTS"][1]


@pytest.mark.parametrize("name", ["fashion_mnist_paper", "mnist_paper", "fashion_mnist_cpu"])
def test_paper_presets_take_the_other_layout_with_one_line(name):
    import tomllib

    text = (Path(__file__).resolve().parents[1] / "examples" / f"{name}.toml").read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("reductions")]
    assert line.startswith("reductions = [1, 3]") and "[1, 2]" in line  # the comment names the other one
    other = text.replace(line, "reductions = [1, 2]")
    assert sum(a != b for a, b in zip(text.splitlines(), other.splitlines())) == 1
    for toml, params in ((text, 128_842), (other, 189_162)):
        n = parse_experiment(tomllib.loads(toml)).network
        net = nasgal.stack(nasgal.load(resolve_spec_path(n.genotype)), cells=n.cells, channels=n.channels, classes=10, in_channels=1,
                           input_size=28, reductions=n.reductions)
        assert nasgal.count_params(net) == params


def test_report_html_renders_tables_images_and_escapes_text():
    from nasgal.experiment.report import markdown_to_html

    page = markdown_to_html("# run <b>\n\nDataset **x**.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![curves](figures/c.png)\n",
                            title="nasgal: <t>")
    assert page.startswith("<!DOCTYPE html>") and "<title>nasgal: &lt;t&gt;</title>" in page
    assert "<h1>run &lt;b&gt;</h1>" in page and "<strong>x</strong>" in page
    assert "<table>" in page and "<th>a</th>" in page and "<td>2</td>" in page
    assert '<img src="figures/c.png" alt="curves"' in page


def test_methods_summary_gives_a_paired_interval_from_three_seeds():
    from nasgal.experiment.pipeline import ExperimentResult, MethodResult, SeedResult
    from nasgal.experiment.report import _methods_section, methods_summary

    net = nasgal.stack(nasgal.load("darts_v2"), cells=3, channels=4, classes=10, in_channels=1, input_size=28)
    pruned = net.with_kept_nodes([[0, 1], [0], [0, 1]])
    seeds = []
    for seed, (good, rnd) in enumerate([(0.80, 0.70), (0.82, 0.71), (0.79, 0.72), (0.81, 0.70)]):
        methods = {m: MethodResult({"wall_time_s": 1.0}, {"test_accuracy": acc, "wall_time_s": 2.0}, pruned)
                   for m, acc in (("gal", good), ("random", rnd), ("magnitude", rnd + (0.01 if seed % 2 else -0.01)))}
        seeds.append(SeedResult(seed, {"test_accuracy": 0.85}, methods["gal"].prune, methods["gal"].retrain, pruned,
                                methods))
    summary = {"methods": methods_summary(ExperimentResult(Path("."), net, nasgal.load("darts_v2"), seeds))}
    gal = summary["methods"]["gal"]["vs_random"]
    assert gal["mean"] == pytest.approx(0.0975) and 0 < gal["interval_95"][0] <= gal["interval_95"][1]
    text = "\n".join(_methods_section(summary, {}))
    assert "| gal |" in text and ": better |" in text and ": not told apart |" in text
