"""The experiment report: the paper's tables beside ours, figures, diff, times, environment.

Writes ``report.md`` (with the figures it links under ``figures/``), ``report.html``
(the same content, self-contained apart from the figure files) and ``summary.json``.
"""

from __future__ import annotations

import html
import json
import logging
import statistics
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runfiles import ENV, WEIGHTS
from .config import method_dirs
from ..spec import network_cost
from ..spec.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from .config import Experiment
    from .pipeline import ExperimentResult

log = logging.getLogger(__name__)


def paper_tables() -> dict[str, Any]:
    """The figures reported by the DARTS-GAL paper (transcribed as data)."""
    return json.loads(resources.files("nasgal.experiment").joinpath("paper_tables.json").read_text())


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.2f}"
    return f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct):.2f}"


def _m(params: float) -> str:
    return f"{params / 1e6:.3f}M"


def layout_note(tables: dict[str, Any], paper_key: str | None) -> dict[str, Any] | None:
    """The paper's two 5-cell layouts for a row (``None`` for rows without the contradiction)."""
    return tables.get("layout_5_cells", {}).get(paper_key) if paper_key else None


def _layouts(layout: dict[str, Any], key: str) -> str:
    """``reductions 1, 3: 128,842; 1, 2: 189,162`` (Table 2's fit first, then the text's)."""
    parts = [f"{', '.join(map(str, layout[k]['reductions']))}: {layout[k][key]:,}" for k in ("table2_fit", "text_table1")]
    return "reductions " + "; ".join(parts)


def report_figures(exp: "Experiment", res: "ExperimentResult") -> dict[str, str]:
    """Render architecture figures and training curves into ``figures/``; returns {key: relative path}."""
    fig_dir = res.out / "figures"
    out: dict[str, str] = {}
    try:
        from ..render import dot_available, figures, write_graph
    except ImportError as e:  # pragma: no cover - graphviz's python package missing
        log.warning("architecture figures skipped: %s", e)
        return out
    fig_dir.mkdir(parents=True, exist_ok=True)
    fmt = "svg" if dot_available() else "dot"
    try:
        for f in figures(res.genotype):
            write_graph(f.graph, fig_dir / f"genotype_{f.key}.{fmt}", fmt)
            out[f"genotype_{f.key}"] = f"figures/genotype_{f.key}.{fmt}"
        write_graph(figures(res.network, network=True)[0].graph, fig_dir / f"network_before.{fmt}", fmt)
        out["network_before"] = f"figures/network_before.{fmt}"
        if res.seeds:
            pruned = res.seeds[0].pruned
            write_graph(figures(pruned, network=True)[0].graph, fig_dir / f"network_after.{fmt}", fmt)
            out["network_after"] = f"figures/network_after.{fmt}"
            for f in figures(pruned, cells=[str(p) for p in range(pruned.num_positions)]):
                write_graph(f.graph, fig_dir / f"pruned_{f.key}.{fmt}", fmt)
                out[f"pruned_{f.key}"] = f"figures/pruned_{f.key}.{fmt}"
    except Exception as e:  # a report without pictures beats no report
        log.warning("architecture figures failed: %s", e)
    try:
        from ..plot import load_run, plot_runs

        runs = []
        for s in res.seeds[:1]:
            runs.append(load_run(res.out / f"seed{s.seed}" / "baseline", name="baseline"))
            runs.append(load_run(res.out / f"seed{s.seed}" / method_dirs(exp.prune_methods()[0])[1],
                                 name="pruned, retrained"))
        if runs:
            plot_runs(runs, fig_dir / "curves.png", title=f"{exp.name}: training curves (seed {res.seeds[0].seed})")
            out["curves"] = "figures/curves.png"
    except Exception as e:
        log.warning("training curves failed: %s", e)
    if len(exp.prune_methods()) > 1 and res.seeds:
        try:
            _methods_figure(res, fig_dir / "methods.png")
            out["methods"] = "figures/methods.png"
        except Exception as e:
            log.warning("methods figure failed: %s", e)
    return out


def _methods_figure(res: "ExperimentResult", path: Path) -> None:
    """Test accuracy against parameters: every method's retrained networks (one point per seed)
    and the unpruned baseline."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from ..plot import RUN_COLORS

    fig = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = fig.subplots()
    base = network_cost(res.network).params
    ax.scatter([base] * len(res.seeds), [100 * s.baseline["test_accuracy"] for s in res.seeds], marker="*", s=120,
               color="#000000", label="baseline (unpruned)")
    for i, method in enumerate(res.seeds[0].methods):
        xs = [network_cost(s.methods[method].pruned).params for s in res.seeds]
        ys = [100 * s.methods[method].retrain["test_accuracy"] for s in res.seeds]
        ax.scatter(xs, ys, color=RUN_COLORS[i % len(RUN_COLORS)], label=method)
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Pruning methods at the same budget")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def methods_summary(res: "ExperimentResult", rounds: int = 10_000) -> dict[str, Any]:
    """Per method: parameters, MACs, test accuracy per seed, wall time; and each method's paired
    difference from ``random`` (same seed, same teacher) with a bootstrap 95 % interval."""
    import numpy as np

    if not res.seeds or not res.seeds[0].methods:
        return {}
    methods: dict[str, Any] = {}
    for method in res.seeds[0].methods:
        runs = [s.methods[method] for s in res.seeds]
        costs = [network_cost(r.pruned) for r in runs]
        methods[method] = {
            "params": [c.params for c in costs],
            "macs": [c.macs for c in costs],
            "test_accuracy": [r.retrain["test_accuracy"] for r in runs],
            "wall_time_s": [r.prune.get("wall_time_s", 0.0) + r.retrain.get("wall_time_s", 0.0) for r in runs],
        }
    if "random" in methods:
        ref = np.array(methods["random"]["test_accuracy"])
        rng = np.random.default_rng(0)
        for method, m in methods.items():
            if method == "random":
                continue
            d = np.array(m["test_accuracy"]) - ref
            paired: dict[str, Any] = {"mean": float(d.mean()), "n": len(d)}
            if len(d) >= 3:
                # A percentile bootstrap of the mean paired difference over seeds (numpy's
                # generator; no test statistic to assume for a handful of seeds).
                boots = rng.choice(d, size=(rounds, len(d)), replace=True).mean(axis=1)
                lo, hi = np.percentile(boots, [2.5, 97.5])
                paired["interval_95"] = [float(lo), float(hi)]
            m["vs_random"] = paired
    return methods


def _methods_section(summary: dict[str, Any], figs: dict[str, str]) -> list[str]:
    methods = summary.get("methods") or {}
    if len(methods) < 2:
        return []
    md = ["## Pruning methods at the same budget", "",
          "Each method pruned the same trained baseline of each seed to the same budget; each pruned network "
          "was then retrained the same way.", "",
          "| method | params | MACs | test accuracy % (mean ± std) | wall time s (prune + retrain) | vs random (points) |",
          "|---|---|---|---|---|---|"]
    for method, m in methods.items():
        vs = m.get("vs_random")
        if vs is None:
            cell = "–"
        elif "interval_95" in vs:
            lo, hi = vs["interval_95"]
            verdict = "better" if lo > 0 else ("worse" if hi < 0 else "not told apart")
            cell = f"{100 * vs['mean']:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]: {verdict}"
        else:
            cell = f"{100 * vs['mean']:+.2f}: too few seeds to tell (n={vs['n']}; 3 or more give an interval)"
        params = sorted(set(m["params"]))
        md.append(f"| {method} | {', '.join(_m(p) for p in params)} | "
                  f"{', '.join(f'{x / 1e6:.2f}M' for x in sorted(set(m['macs'])))} | {_mean_std(m['test_accuracy'])} | "
                  f"{sum(m['wall_time_s']) / len(m['wall_time_s']):,.1f} | {cell} |")
    md += ["", "vs random: the mean over seeds of (method − random) test accuracy on the same seed, with a "
           "bootstrap 95 % interval over seeds; \"not told apart\" when the interval includes 0.", ""]
    if "methods" in figs:
        md += [f"![accuracy against parameters]({figs['methods']})", ""]
    return md


def build_summary(exp: "Experiment", res: "ExperimentResult") -> dict[str, Any]:
    tables = paper_tables()
    paper_key = exp.paper
    paper_results = tables["results"].get(paper_key, {}) if paper_key else {}
    paper_kept = tables["kept_nodes"].get(paper_key) if paper_key else None
    base_cost = network_cost(res.network)
    seeds = []
    for s in res.seeds:
        pc = network_cost(s.pruned)
        seeds.append({
            "seed": s.seed,
            "baseline_test_accuracy": s.baseline["test_accuracy"],
            "pruned_test_accuracy": s.retrain["test_accuracy"],
            "baseline_params": base_cost.params,
            "pruned_params": pc.params,
            "baseline_macs": base_cost.macs,
            "pruned_macs": pc.macs,
            "kept": s.pruned.kept_nodes(),
            "live": [list(c.live) for c in pc.cells],
        })
    return {
        "name": exp.name,
        "dataset": exp.dataset,
        "genotype": res.genotype.name,
        "searched": res.search is not None,
        "network": {"name": res.network.name, "cells": res.network.num_positions, "channels": res.network.channels,
                    "reductions": res.network.reductions, "params": base_cost.params, "macs": base_cost.macs},
        "seeds": seeds,
        "baseline_test_accuracy": [s["baseline_test_accuracy"] for s in seeds],
        "pruned_test_accuracy": [s["pruned_test_accuracy"] for s in seeds],
        "paper": {"row": paper_key, "results": paper_results, "kept_nodes": paper_kept,
                  "setup": tables.get("setup", {}).get(paper_key) if paper_key else None,
                  "layout_5_cells": layout_note(tables, paper_key)},
        "stage_times_s": res.stage_times,
    }


LATENCY_BATCHES = (1, 64)


def report_latency(exp: "Experiment", res: "ExperimentResult") -> dict[str, Any] | None:
    """Batch-1 and batch-64 inference latency (torch eager) of the baseline and seed 0's pruned
    network, measured now, interleaved, on the machine writing the report; None when it fails."""
    if not res.seeds:
        return None
    try:
        from ..deploy import Candidate, measure_latency
        from ..engine.weights import load_weights

        def weights(run: Path):
            return load_weights(run) if (run / WEIGHTS).exists() else None  # same cost either way

        s = res.seeds[0]
        sdir = res.out / f"seed{s.seed}"
        cands = [Candidate("baseline", res.network, weights(sdir / "baseline")),
                 Candidate("pruned", s.pruned, weights(sdir / method_dirs(exp.prune_methods()[0])[1]))]
        lat = measure_latency(cands, device=exp.device, batches=LATENCY_BATCHES, runtimes=("eager",),
                              rounds=3, block_s=0.1)
    except Exception as e:  # a report without latency beats no report
        log.warning("latency measurement failed: %s", e)
        return None
    return {"machine": lat.machine, "device": lat.device, "runtime": "torch eager", "rounds": lat.rounds,
            "seed": res.seeds[0].seed, "load_avg": lat.load_avg,
            **{name: {str(b): lat.latency("eager", b, name) for b in LATENCY_BATCHES} for name in ("baseline", "pruned")}}


def _latency_cell(lat: dict[str, Any] | None, name: str) -> str:
    if lat is None or any(lat[name].get(str(b)) is None for b in LATENCY_BATCHES):
        return "–"
    return " / ".join(f"{lat[name][str(b)]:,.2f}" for b in LATENCY_BATCHES)


def _env(res: "ExperimentResult") -> dict[str, Any]:
    for s in res.seeds:
        p = res.out / f"seed{s.seed}" / "baseline" / ENV
        if p.exists():
            return json.loads(p.read_text())
    return {}


def _diff_lines(res: "ExperimentResult") -> list[str]:
    if not res.seeds:
        return []
    from ..diff import diff_specs

    d = diff_specs(res.network, res.seeds[0].pruned)
    lines = []
    for c in d.cells:
        removed = ", ".join(str(n) for n in c.nodes_removed) if hasattr(c, "nodes_removed") else ""
        lines.append(f"| {c.position} | {c.cell_a} | {c.status} | {len(c.nodes_a)} → {len(c.nodes_b)} | "
                     f"{c.edges_a} → {c.edges_b} | {c.params_a:,} → {c.params_b:,} | {removed or '–'} |")
    return lines


def write_report(exp: "Experiment", res: "ExperimentResult", figs: dict[str, str] | None = None) -> Path:
    """Write report.md, report.html and summary.json; ``figs`` from :func:`report_figures`
    (rendered here when not given)."""
    out = res.out
    if figs is None:
        figs = report_figures(exp, res)
    summary = build_summary(exp, res)
    summary["latency"] = lat = report_latency(exp, res)
    summary["methods"] = methods_summary(res)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    env = _env(res)
    paper = summary["paper"]
    n_seeds = len(summary["seeds"])
    pres = paper["results"]

    md: list[str] = [f"# DARTS-GAL experiment: {exp.name}", ""]
    md += [
        f"Dataset **{exp.dataset}**; genotype **{res.genotype.name}**"
        + (" (searched here)" if res.search is not None else " (shipped)")
        + f"; network {res.network.num_positions} cells, C={res.network.channels}, reductions at "
        f"{', '.join(map(str, res.network.reductions)) or 'none'} (0-indexed); {n_seeds} seed(s).",
        "",
        *_smoke_note(exp, res),
        *_voice_note(exp),
        *_search_note(res),
        "## Accuracy and parameters",
        "",
        "| network | params | MACs | latency ms, batch 1 / 64 | test accuracy % (mean ± std) | paper: accuracy % / params |",
        "|---|---|---|---|---|---|",
    ]
    base_p = summary["network"]["params"]
    pruned_ps = [s["pruned_params"] for s in summary["seeds"]]
    layout = paper["layout_5_cells"]

    def paper_cell(key: str, count: str) -> str:
        if key not in pres:
            return "–"
        text = f"{pres[key][0]:.2f} / {pres[key][1]:.2f}M"
        return f"{text} † ({_layouts(layout, count)})" if layout else text

    pruned_macs = [s["pruned_macs"] for s in summary["seeds"]]
    md.append(f"| DARTS (baseline) | {_m(base_p)} | {summary['network']['macs'] / 1e6:.2f}M | {_latency_cell(lat, 'baseline')} | "
              f"{_mean_std(summary['baseline_test_accuracy'])} | {paper_cell('DARTS', 'params')} |")
    md.append(f"| DARTS-GAL (pruned, retrained) | {', '.join(_m(p) for p in sorted(set(pruned_ps))) or '–'} | "
              f"{', '.join(f'{m / 1e6:.2f}M' for m in sorted(set(pruned_macs))) or '–'} | {_latency_cell(lat, 'pruned')} | "
              f"{_mean_std(summary['pruned_test_accuracy'])} | {paper_cell('DARTS-GAL', 'pruned_params')} |")
    md.append("")
    if lat is not None:
        load = f", load average {lat['load_avg'][0]:.2f}" if lat.get("load_avg") else ""
        md += [f"Latency: {lat['runtime']} inference on {lat['device']}, {lat['machine']}{load}; measured when this "
               f"report was written, baseline and pruned (seed {lat['seed']}) interleaved, median of {lat['rounds']} "
               "rounds. `nasgal latency` compares torch.compile and onnxruntime too.", ""]
    md += _paper_table(summary, res)
    md += _methods_section(summary, figs)
    if layout:
        t, f = layout["text_table1"], layout["table2_fit"]
        md += [f"† The paper contradicts itself on its 5-cell layout: its text and Table 1 put the reduction "
               f"cells at positions {', '.join(map(str, t['reductions']))} (0-indexed; {t['params']:,} parameters, "
               f"{t['pruned_params']:,} with Table 1's kept nodes), while its Table 2 count for DARTS fits positions "
               f"{', '.join(map(str, f['reductions']))} ({f['params']:,}; {f['pruned_params']:,}). The paper column "
               f"gives both layouts' exact counts for the 5-cell C=16 network; no single layout gives both of "
               f"Table 2's figures. This run has its reductions at "
               f"{', '.join(map(str, res.network.reductions)) or 'none'}.", ""]
    if summary["seeds"]:
        s0 = summary["seeds"][0]
        nodes_b = sum(len(x) for x in s0["live"])
        total = sum(len(res.network.cell_at(p).nodes) for p in range(res.network.num_positions))
        rate = 1 - s0["pruned_params"] / s0["baseline_params"]
        md += [f"Pruning rate (seed {s0['seed']}): {rate:.1%} of parameters removed "
               f"({s0['baseline_params']:,} → {s0['pruned_params']:,}); {nodes_b} of {total} nodes live; "
               f"MACs {s0['baseline_macs']:,} → {s0['pruned_macs']:,}.", ""]
    md += ["## Kept nodes per cell (the paper's Table 1)", ""]
    header = "| cell | type | " + " | ".join(f"seed {s['seed']}" for s in summary["seeds"]) + (" | paper |" if paper["kept_nodes"] else " |")
    md += [header, "|" + "---|" * (2 + n_seeds + (1 if paper["kept_nodes"] else 0))]
    for p in range(res.network.num_positions):
        kind = "reduction" if res.network.positions[p].reduction else "normal"
        row = f"| {p + 1} | {kind} | " + " | ".join(str(s["live"][p]) for s in summary["seeds"])
        if paper["kept_nodes"]:
            pk = paper["kept_nodes"]
            row += f" | {pk[p] if p < len(pk) else '–'}"
        md.append(row + " |")
    md += ["", "Cells are numbered from 1 as in the paper; nodes 0–3 are the intermediate nodes; "
           "the lists give live nodes (kept, with a live input).", ""]
    md += ["## Architecture", ""]
    for key, title in (("genotype_normal", "Normal cell"), ("genotype_reduction", "Reduction cell"),
                       ("network_before", "Network before pruning"), ("network_after", "Network after pruning")):
        if key in figs:
            md += [f"### {title}", "", f"![{title}]({figs[key]})", ""]
    pruned_figs = [k for k in figs if k.startswith("pruned_")]
    if pruned_figs:
        md += ["### Pruned cells by position (seed 0)", ""]
        md += [f"![{k}]({figs[k]})" for k in sorted(pruned_figs, key=lambda k: int(k.split("pos")[-1]) if "pos" in k else 0)]
        md.append("")
    if "curves" in figs:
        md += ["## Training curves", "", f"![training curves]({figs['curves']})", ""]
    diff = _diff_lines(res)
    if diff:
        md += ["## What pruning removed (seed 0)", "",
               "| position | cell | status | nodes | edges | params | nodes removed |", "|---|---|---|---|---|---|---|",
               *diff, ""]
    md += ["## Wall time per stage", "", "| stage | seconds |", "|---|---|"]
    md += [f"| {k} | {v:,.1f} |" for k, v in summary["stage_times_s"].items()]
    md += ["", "## Environment", ""]
    md += [f"- {k}: {v}" for k, v in env.items()] or ["- (no training run yet)"]
    md.append("")
    text = "\n".join(md)
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.html", markdown_to_html(text, title=f"nasgal: {exp.name}", embed_from=out))
    return out / "report.md"


#: Image types a report embeds, by suffix.
_IMAGE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


#: The paper's rows that this run's baseline and pruned network stand beside.
OURS = {"DARTS": ("baseline_test_accuracy", "baseline_params"), "DARTS-GAL": ("pruned_test_accuracy", "pruned_params")}


def _paper_table(summary: dict[str, Any], res: "ExperimentResult") -> list[str]:
    """The paper's whole table for this row (hand-designed networks and other searches too), with
    this run's baseline beside DARTS and its pruned network beside DARTS-GAL, and the paper's setup."""
    paper = summary["paper"]
    rows = paper["results"]
    if not rows:
        return []
    md = [f"## The paper's table for this experiment ({paper['row']})", "",
          "| method | paper: accuracy % | paper: params | this run: accuracy % | this run: params |",
          "|---|---|---|---|---|"]
    for method, (acc, params) in rows.items():
        ours = OURS.get(method)
        if ours and summary["seeds"]:
            counts = sorted({s[ours[1]] for s in summary["seeds"]})
            mine = f"{_mean_std(summary[ours[0]])} | {', '.join(_m(c) for c in counts)}"
        else:
            mine = "– | –"
        md.append(f"| {method} | {acc:.2f} | {params:.2f}M | {mine} |")
    md.append("")
    setup = paper.get("setup")
    if setup:
        said = [f"{setup['cells']} cells", f"C={setup['init_channels']}"]
        if "reduction_cells_as_labelled" in setup:
            said.append(f"reductions labelled {', '.join(map(str, setup['reduction_cells_as_labelled']))} (1-indexed)")
        if "image_size" in setup:
            said.append(f"{setup['image_size']}×{setup['image_size']} inputs")
        if "stem" in setup:
            said.append(f"stem: {setup['stem']}")
        if "classes" in setup:
            said.append(f"{setup['classes']} classes")
        net = res.network
        h, w = net.input.size
        md += [f"The paper's setup: {'; '.join(said)}. This run: {net.num_positions} cells, C={net.channels}, reductions "
               f"at positions {', '.join(map(str, net.reductions)) or 'none'} (0-indexed), {h}×{w} inputs, "
               f"stem {net.stem.kind}, {net.classes} classes.", ""]
    return md


def _smoke_note(exp: "Experiment", res: "ExperimentResult") -> list[str]:
    """A warning above the figures when the run is far shorter than the paper's protocol."""
    from ..train.config import RECIPES

    paper_epochs = RECIPES["paper"]["epochs"]
    short = []
    epochs = [s.baseline.get("epochs") for s in res.seeds if s.baseline.get("epochs") is not None]
    if epochs and min(epochs) < paper_epochs:
        short.append(f"{min(epochs)} training epochs (the paper: {paper_epochs})")
    if exp.train.get("subset"):
        short.append(f"a {exp.train['subset']:,}-image training subset")
    if exp.search is not None and exp.search.epochs < 50:
        short.append(f"a {exp.search.epochs}-epoch search (DARTS: 50)")
    if not short:
        return []
    return [f"**A smoke run, not a result**: {', '.join(short)}. These figures test the pipeline; they "
            "are not comparable with the paper's, which are shown beside them for orientation only.", ""]


def _voice_note(exp: "Experiment") -> list[str]:
    """For a voice run: what the prepared set holds and how it was split (the paper's split likely
    let pieces of one utterance be on both sides)."""
    from ..data.sources import VOICE, resolve_name

    try:
        source, path = resolve_name(exp.dataset)
        if source is not VOICE:
            return []
        from ..data.voice import MANIFEST, voice_folder

        m = json.loads((voice_folder(path or exp.data_dir) / MANIFEST).read_text(encoding="utf-8"))
        st, pieces, shape = m["settings"], m["pieces"], m["shape"]
    except Exception:  # a report without this note beats no report
        return []
    split = {"utterance": "no utterance on both sides", "video": "no video on both sides",
             "piece": "pieces of one utterance on both sides, as the paper likely did"}[st["split_by"]]
    return [f"Voice data: {len(m['speakers'])} speakers ({m['layout']} layout), {pieces['train']:,} training and "
            f"{pieces['test']:,} test pieces of {st['segment_seconds']:g} s as {shape[2]}×{shape[3]} log spectrograms, "
            f"{st['test_pieces']} test pieces per speaker, split by {st['split_by']} ({split}); cache {m['key']}.", ""]


def _search_note(res: "ExperimentResult") -> list[str]:
    """How far α moved in the search: the mean, over edges, of softmax(α)'s largest op weight."""
    import math

    path = res.out / "search" / "alpha_history.json"
    if res.search is None or not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        last = doc["epochs"][-1]
        parts = []
        for key, word in (("alpha_normal", "normal"), ("alpha_reduce", "reduction")):
            rows = last[key]
            peaks = []
            for row in rows:
                top = max(row)
                z = sum(math.exp(v - top) for v in row)
                peaks.append(1.0 / z)  # the largest softmax weight of the row
            parts.append(f"{sum(peaks) / len(peaks):.3f} ({word})")
        uniform = 1.0 / len(doc["ops"])
    except (OSError, ValueError, KeyError, IndexError, TypeError, ZeroDivisionError):
        return []
    return [f"Search: after {last.get('epoch', '?')} epochs, the mean largest op weight per edge is "
            f"{' and '.join(parts)}, against {uniform:.3f} for α that never moved.", ""]


def markdown_to_html(text: str, title: str, embed_from: Path | None = None) -> str:
    """``text`` (CommonMark with tables) as a standalone HTML page; raw HTML in the text is escaped.

    With ``embed_from`` (the folder the Markdown's relative image paths start from), every image
    found there is embedded as a ``data:`` URI, so the page shows its figures wherever it is
    copied, without its ``figures/`` folder.
    """
    import base64

    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    if embed_from is not None:
        for token in tokens:
            for child in token.children or []:
                src = str(child.attrGet("src") or "") if child.type == "image" else ""
                path = embed_from / src
                kind = _IMAGE_TYPES.get(Path(src).suffix.lower())
                if src and kind and "://" not in src and not Path(src).is_absolute() and path.is_file():
                    child.attrSet("src", f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}")
    body = md.renderer.render(tokens, md.options, {})
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}"
             "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:4px}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + body + "</body></html>\n")
