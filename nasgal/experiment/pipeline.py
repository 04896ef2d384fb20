"""`nasgal run`: search → stack → train baseline → GAL prune → retrain → report.

Each stage writes into the experiment directory and is skipped when complete; the stages
that train resume inside themselves, so an interrupted experiment continues where it
stopped when run again. Layout::

    EXP/search/            (optional) the DARTS search run
    EXP/network.json       the stacked network
    EXP/seed<S>/baseline/  training run of the network
    EXP/seed<S>/prune/     GAL pruning run (pruned.json)
    EXP/seed<S>/retrain/   training run of the pruned network
    EXP/report.md, report.html, figures/, summary.json
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NasgalError
from ..progress import Reporter
from ..spec import Genotype, Network, load, save, stack
from ..spec.library import resolve_spec_path
from ..engine import distributed
from ..engine.loop import QuietReporter
from ..engine.rundir import read_json_object, run_lock
from ..runfiles import NETWORK, RESULTS
from .config import Experiment, method_dirs

STAGES = ("search", "stack", "baseline", "prune", "retrain", "report")


class Interrupted(Exception):
    """Raised when a run is stopped on purpose at ``interrupt`` (tests, time boxes)."""


@dataclass
class MethodResult:
    prune: dict[str, Any]
    retrain: dict[str, Any]
    pruned: Network


@dataclass
class SeedResult:
    """One seed's runs; ``prune``, ``retrain`` and ``pruned`` are those of the first method
    (GAL unless the experiment lists others), ``methods`` holds every method's."""

    seed: int
    baseline: dict[str, Any]
    prune: dict[str, Any]
    retrain: dict[str, Any]
    pruned: Network
    methods: dict[str, MethodResult] = field(default_factory=dict)


@dataclass
class ExperimentResult:
    out: Path
    network: Network
    genotype: Genotype
    seeds: list[SeedResult] = field(default_factory=list)
    search: dict[str, Any] | None = None
    stage_times: dict[str, float] = field(default_factory=dict)


def _dataset_info(exp: Experiment, download: bool):
    from ..data import load_dataset

    kwargs: dict[str, Any] = {"download": download}
    if exp.image_size:
        kwargs["image_size"] = exp.image_size
    return load_dataset(exp.dataset, exp.data_dir, split="test", **kwargs).info


def _stop(interrupt: tuple[str, int] | None, stage: str) -> int | None:
    """Epochs after which ``stage`` must stop (0: before it starts), or None."""
    if interrupt and interrupt[0] == stage:
        if interrupt[1] == 0:
            raise Interrupted(f"stopped before {stage}")
        return interrupt[1]
    return None


def run_search(exp: Experiment, out: Path, reporter: Reporter, download: bool,
               interrupt: tuple[str, int] | None) -> tuple[Genotype, dict[str, Any]]:
    from ..data import load_dataset
    from ..search.config import SearchConfig
    from ..search.run import search
    from ..search.space import load_space
    from ..engine.rundir import resolve_device

    s = exp.search
    assert s is not None
    stop = _stop(interrupt, "search")
    kwargs: dict[str, Any] = {"download": download}
    if exp.image_size:
        kwargs["image_size"] = exp.image_size
    ds = load_dataset(exp.dataset, exp.data_dir, split="train", **kwargs)
    if s.subset is not None and s.subset < len(ds):
        ds = ds.subset(s.subset, seed=exp.seed)
    update: dict[str, Any] = {"cells": s.cells, "channels": s.channels}
    if exp.network.stem == "stride2":
        update["stem"] = "stride2"
    space = load_space(s.space).resized(**update)
    cfg = SearchConfig.resolve(**s.settings(), seed=exp.seed, device=str(resolve_device(exp.device)),
                               dataset=ds.info.name)
    t0 = time.perf_counter()
    reporter.message(f"search: {s.epochs} epochs on {len(ds)} images")
    genotype = search(space, ds, cfg, out / "search", reporter=reporter, stop_after=stop)
    if genotype is None:
        raise Interrupted(f"stopped inside the search after {stop} epochs")
    return genotype, {"wall_time_s": time.perf_counter() - t0}


def run_experiment(
    exp: Experiment,
    *,
    base_dir: Path | None = None,
    reporter: Reporter | None = None,
    seeds: int | None = None,
    download: bool = True,
    interrupt: tuple[str, int] | None = None,
) -> ExperimentResult:
    """Run every stage of ``exp`` (skipping complete ones) and write the report.

    ``interrupt=(stage, n)`` stops the run after ``n`` epochs of ``stage`` (``n=0``: just
    before it), as a crash would; running again continues from there.
    """
    from .config import with_overrides

    if seeds is not None:
        exp = with_overrides(exp, {"seeds": seeds}, source="seeds")
    out = exp.out_dir(base_dir)
    # Under torchrun one process group serves every stage; rank 0 holds the directory, writes
    # the stacked network and the report, and reports progress.
    with distributed.session():
        main = distributed.is_main()
        reporter = (reporter or Reporter()) if main else QuietReporter()
        lock = distributed.agree(lambda: _hold(out) if main else None, f"holding {out}")
        with lock or contextlib.nullcontext():
            return _run_experiment(exp, out, reporter, download, interrupt)


def _hold(out: Path) -> contextlib.ExitStack:
    """``run_lock(out)``, entered now (so that a failure to take it is one of the agreed phase)."""
    stack = contextlib.ExitStack()
    stack.enter_context(run_lock(out))
    return stack


def _run_experiment(exp: Experiment, out: Path, reporter: Reporter, download: bool,
                    interrupt: tuple[str, int] | None) -> ExperimentResult:
    from ..engine.inherit import inherit_weights
    from ..engine.weights import load_weights
    from ..prune import prune, resolve_prune_config
    from ..train import resolve_config, train
    from .report import report_figures, write_report

    n_seeds = exp.seeds
    times: dict[str, float] = {}

    # search (optional) or a shipped genotype
    search_info = None
    if exp.search is not None:
        t0 = time.perf_counter()
        genotype, search_info = run_search(exp, out, reporter, download, interrupt)
        times["search"] = _search_time(out / "search", time.perf_counter() - t0)
    else:
        genotype = load(resolve_spec_path(exp.network.genotype))
        if not isinstance(genotype, Genotype):
            raise NasgalError(f"network.genotype: {exp.network.genotype} is not a genotype")

    # stack
    _stop(interrupt, "stack")
    t0 = time.perf_counter()
    info = _dataset_info(exp, download)
    n = exp.network
    network = stack(
        genotype, cells=n.cells, channels=n.channels, classes=info.classes, in_channels=info.channels,
        input_size=tuple(info.size), reductions=n.reductions, stem=n.stem, auxiliary=n.auxiliary,
        drop_path=n.drop_path, name=f"{exp.name}",
    )
    if distributed.is_main():
        save(network, out / NETWORK)
    times["stack"] = time.perf_counter() - t0
    result = ExperimentResult(out, network, genotype, search=search_info, stage_times=times)

    for i in range(n_seeds):
        seed = exp.seed + i
        sdir = out / f"seed{seed}"
        reporter.message(f"seed {seed}: baseline training")
        stop = _stop(interrupt, "baseline")
        cfg = resolve_config(exp.train.get("recipe", "paper"),
                             **{k: v for k, v in exp.train.items() if k != "recipe"}, seed=seed, device=exp.device)
        base = train(network, dataset=exp.dataset, config=cfg, out_dir=sdir / "baseline", data_dir=exp.data_dir,
                     reporter=reporter, stop_after=stop, download=download)
        if stop is not None and "interrupted_after_epoch" in base:
            raise Interrupted(f"stopped inside baseline training after {stop} epochs")
        times[f"baseline/seed{seed}"] = base["wall_time_s"]

        teacher_state = load_weights(sdir / "baseline")
        methods: dict[str, MethodResult] = {}
        for method in exp.prune_methods():
            prune_dir, retrain_dir = method_dirs(method)
            reporter.message(f"seed {seed}: pruning ({method})")
            stop = _stop(interrupt, "prune")
            pcfg = resolve_prune_config(**exp.prune_options(method), seed=seed, device=exp.device)
            pruned, pres = prune(network, teacher_state, dataset=exp.dataset, config=pcfg, out_dir=sdir / prune_dir,
                                 data_dir=exp.data_dir, reporter=reporter, stop_after=stop, download=download)
            if pruned is None:
                raise Interrupted(f"stopped inside pruning after {stop} epochs")
            times[f"{prune_dir}/seed{seed}"] = pres.get("wall_time_s", 0.0)

            reporter.message(f"seed {seed}: retraining the pruned network ({method})")
            stop = _stop(interrupt, "retrain")
            overrides = {**exp.train, **exp.retrain.overrides}
            cfg2 = resolve_config(overrides.get("recipe", "paper"),
                                  **{k: v for k, v in overrides.items() if k != "recipe"}, seed=seed, device=exp.device)
            init = inherit_weights(pruned, teacher_state) if exp.retrain.inherit else None
            ret = train(pruned, dataset=exp.dataset, config=cfg2, out_dir=sdir / retrain_dir, data_dir=exp.data_dir,
                        init_state=init, reporter=reporter, stop_after=stop, download=download)
            if stop is not None and "interrupted_after_epoch" in ret:
                raise Interrupted(f"stopped inside retraining after {stop} epochs")
            times[f"{retrain_dir}/seed{seed}"] = ret["wall_time_s"]
            methods[method] = MethodResult(pres, ret, pruned)
        first = methods[exp.prune_methods()[0]]
        result.seeds.append(SeedResult(seed, base, first.prune, first.retrain, first.pruned, methods))

    _stop(interrupt, "report")
    if distributed.is_main():  # rank 0 writes the report
        t0 = time.perf_counter()
        figs = report_figures(exp, result)  # the slow part of the report, done once
        times["report"] = time.perf_counter() - t0
        write_report(exp, result, figs)
    distributed.barrier()
    return result


def _search_time(run: Path, fallback: float) -> float:
    """The search's own wall time (its results), which a resumed search still knows."""
    try:
        return float(read_json_object(run / RESULTS).get("wall_time_s") or 0.0) or fallback
    except (NasgalError, ValueError, TypeError):  # a damaged record costs the figure, not the run
        return fallback
